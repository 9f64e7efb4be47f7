//! Planning held to a plain reference model (property test).
//!
//! The system under test is what a tick does, without actors: read the database clock, take
//! the due retries (`due_retries`), plan each scope (`TickPlans`), claim everything through a real
//! store (SQLite always; PostgreSQL and MySQL, fewer cases, when `CRONLEASE_TEST_POSTGRES_URL` or
//! `CRONLEASE_TEST_MYSQL_URL` names a server), run a handler whose failures are drawn from the case's seed, and record each
//! outcome with the retry decision (`retry::decide`). Time jumps between ticks through the
//! store's clock skew: short gaps and downtimes of up to a day, across real DST transitions.
//!
//! The reference model is the contract written plainly: the schedule's instants listed one by
//! one; LatestOnly starts the newest instant due at each tick, EveryPlan every instant after the
//! scope's newest start inside the window, oldest first, `max_plans_per_tick` at a time; each
//! started plan is attempted again at the first tick after its backoff until it succeeds or runs
//! out of attempts. Both must agree on every plan started, skipped, retried, succeeded and
//! dead-lettered.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::{CatchUp, TickPlans, due_retries};
use crate::execution::Status;
use crate::retry::{Backoff, RetryDecision, decide};
use crate::schedule::Schedule;
use crate::scope::Scope;
use crate::store::{
    ClaimRequest, ExecutionFilter, FailureWrite, MySqlStore, PgStore, PlanClaim, SqliteStore,
    Store, SuccessWrite,
};

/// Instants near which the cases start: real DST transitions and an ordinary day.
const STARTS: [&str; 5] = [
    "2026-03-29T00:00:00Z", // Berlin springs forward at 01:00Z
    "2026-10-25T00:00:00Z", // Berlin falls back at 01:00Z
    "2026-11-01T05:00:00Z", // New York falls back at 06:00Z
    "2026-10-03T15:00:00Z", // Lord Howe springs forward 30 minutes at 15:30Z
    "2026-11-22T10:00:00Z",
];

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Australia/Sydney",
];

/// One generated case, printed as is when it fails.
#[derive(Debug, Clone)]
struct Case {
    /// `every:<seconds>+<offset seconds>` or a cron pattern.
    schedule: String,
    zone: &'static str,
    start: String,
    /// Seconds between ticks (some are downtimes).
    gaps: Vec<u32>,
    catch_up: CatchUp,
    scopes: usize,
    max_attempts: u32,
    /// Backoff in whole seconds (a quarter second is added, so a retry never falls due exactly
    /// on a tick, which all sit half a second past a whole second).
    backoff_secs: u32,
    /// Draws the handler's failures.
    seed: u64,
}

impl Case {
    fn schedule(&self) -> Schedule {
        match self.schedule.strip_prefix("every:") {
            Some(spec) => {
                let (cadence, offset) = spec.split_once('+').expect("every:<s>+<s>");
                Schedule::every(&format!("{cadence}s"))
                    .and_then(|s| s.with_offset(&format!("{offset}s")))
                    .expect("a valid cadence")
            }
            None => Schedule::cron_in(&self.schedule, self.zone).expect("a valid pattern"),
        }
    }

    fn ticks(&self) -> Vec<DateTime<Utc>> {
        let first = self.start.parse::<DateTime<Utc>>().unwrap() + TimeDelta::milliseconds(500);
        let mut t = first;
        let mut ticks = vec![t];
        for gap in &self.gaps {
            t += TimeDelta::seconds(i64::from(*gap));
            ticks.push(t);
        }
        ticks
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(u64::from(self.backoff_secs) * 1000 + 250)
    }

    /// Whether attempt `attempt` of `scope`'s plan at `plan` fails (about one in three).
    fn fails(&self, scope: &Scope, plan: DateTime<Utc>, attempt: u32) -> bool {
        let mut h = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for byte in scope.id.bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= plan.timestamp() as u64;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= u64::from(attempt);
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        (h >> 33).is_multiple_of(3)
    }
}

fn case() -> impl Strategy<Value = Case> {
    let cadence = (1u32..=900).prop_flat_map(|c| (Just(c), 0..c));
    let schedule = prop_oneof![
        cadence.prop_map(|(c, o)| format!("every:{c}+{o}")),
        (1u32..=30).prop_map(|k| format!("*/{k} * * * * *")),
        (0u32..60, 1u32..=20).prop_map(|(s, m)| format!("{s} */{m} * * * *")),
        (0u32..60).prop_map(|m| format!("{m} * * * *")),
        Just("*/15 * * * *".to_owned()),
        (0u32..24, 0u32..60).prop_map(|(h, m)| format!("{m} {h} * * *")),
        Just("30 2 * * *".to_owned()),
        Just("0 0 2 * * *".to_owned()),
        Just("* * 2 * * *".to_owned()),
    ];
    let gap = prop_oneof![
        8 => 1u32..=90,
        2 => 600u32..=6 * 3600,
        1 => 6 * 3600u32..=86_400,
    ];
    let catch_up = prop_oneof![
        Just(CatchUp::LatestOnly),
        (0u64..=2 * 86_400, 1usize..=5).prop_map(|(window, max)| CatchUp::EveryPlan {
            window: Duration::from_secs(window),
            max_plans_per_tick: max,
        }),
    ];
    (
        schedule,
        prop::sample::select(&ZONES[..]),
        prop::sample::select(&STARTS[..]),
        -7200i64..=7200,
        prop::collection::vec(gap, 1..25),
        catch_up,
        1usize..=3,
        1u32..=4,
        1u32..=120,
        any::<u64>(),
    )
        .prop_map(
            |(
                schedule,
                zone,
                start,
                shift,
                gaps,
                catch_up,
                scopes,
                max_attempts,
                backoff,
                seed,
            )| {
                let start = start.parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(shift);
                Case {
                    schedule,
                    zone,
                    start: start.to_rfc3339(),
                    gaps,
                    catch_up,
                    scopes,
                    max_attempts,
                    backoff_secs: backoff,
                    seed,
                }
            },
        )
}

/// The end of every started plan: (status, attempts used), plus the attempts run, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    rows: BTreeMap<(String, DateTime<Utc>), (Status, u32)>,
    attempts: Vec<(String, DateTime<Utc>, u32, DateTime<Utc>)>,
}

/// The contract, plainly.
fn reference(case: &Case) -> Outcome {
    let schedule = case.schedule();
    let ticks = case.ticks();
    let last = *ticks.last().unwrap();
    // Every instant of the schedule from the newest one at the first tick to the last tick.
    let mut instants = Vec::new();
    let mut cursor = schedule.latest_plan(ticks[0]);
    while let Some(t) = cursor.filter(|t| *t <= last) {
        instants.push(t);
        cursor = schedule.next_plan(t);
    }
    let mut outcome = Outcome::default();
    for s in 0..case.scopes {
        let scope = Scope::new("tenant", s.to_string());
        let mut newest: Option<DateTime<Utc>> = None;
        // Plans started, with the tick index of their first attempt.
        let mut started: Vec<(DateTime<Utc>, usize)> = Vec::new();
        for (i, tick) in ticks.iter().enumerate() {
            let due: Vec<DateTime<Utc>> = instants
                .iter()
                .copied()
                .filter(|p| p <= tick && newest.is_none_or(|n| *p > n))
                .collect();
            let picked: Vec<DateTime<Utc>> = match (case.catch_up, newest) {
                (
                    CatchUp::EveryPlan {
                        window,
                        max_plans_per_tick,
                    },
                    Some(_),
                ) if !window.is_zero() => due
                    .into_iter()
                    .filter(|p| *p >= *tick - TimeDelta::from_std(window).unwrap())
                    .take(max_plans_per_tick)
                    .collect(),
                _ => due.last().copied().into_iter().collect(),
            };
            for plan in picked {
                started.push((plan, i));
                newest = Some(plan);
            }
        }
        for (plan, first_tick) in started {
            let mut at_tick = first_tick;
            let mut attempt = 1;
            loop {
                outcome
                    .attempts
                    .push((scope.id.clone(), plan, attempt, ticks[at_tick]));
                if !case.fails(&scope, plan, attempt) {
                    outcome
                        .rows
                        .insert((scope.id.clone(), plan), (Status::Success, attempt));
                    break;
                }
                if attempt >= case.max_attempts {
                    outcome
                        .rows
                        .insert((scope.id.clone(), plan), (Status::Dead, attempt));
                    break;
                }
                let retry_at = ticks[at_tick] + TimeDelta::from_std(case.backoff()).unwrap();
                match ticks.iter().position(|t| *t >= retry_at) {
                    Some(next) => {
                        at_tick = next;
                        attempt += 1;
                    }
                    None => {
                        outcome
                            .rows
                            .insert((scope.id.clone(), plan), (Status::Failed, attempt));
                        break;
                    }
                }
            }
        }
    }
    outcome.attempts.sort();
    outcome
}

/// The planning code and a real store, tick by tick; `store(skew)` is the store seen through a
/// clock shifted by `skew`.
async fn system(case: &Case, store: impl Fn(TimeDelta) -> Arc<dyn Store>) -> Outcome {
    let schedule = case.schedule();
    let job = "model";
    let scopes: Vec<Scope> = (0..case.scopes)
        .map(|s| Scope::new("tenant", s.to_string()))
        .collect();
    let backoff =
        Backoff::list([humantime::format_duration(case.backoff()).to_string()]).expect("a backoff");
    let mut outcome = Outcome::default();
    for tick in case.ticks() {
        let db = store(tick - Utc::now());
        let db_now = db.db_now().await.unwrap();
        let candidates = db.execution_retry_candidates(job, 10_000).await.unwrap();
        let (retries, _) = due_retries(candidates, db_now);
        let newest: HashMap<Scope, DateTime<Utc>> = db
            .execution_latest_plans(job)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let mut plans = TickPlans::new(&schedule, case.catch_up, db_now, db_now, Duration::ZERO);
        let mut claims: Vec<PlanClaim> = retries
            .into_iter()
            .map(|(scope, plan)| PlanClaim::new(scope, plan))
            .collect();
        for scope in &scopes {
            for plan in plans.plans_for(Duration::ZERO, newest.get(scope).copied()) {
                claims.push(PlanClaim::new(scope.clone(), plan));
            }
        }
        if claims.is_empty() {
            continue;
        }
        let claimed = db
            .execution_claim(&ClaimRequest {
                job,
                max_attempts: case.max_attempts,
                runner_id: "model",
                stale_timeout: Duration::from_secs(3 * 86_400),
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: claims,
            })
            .await
            .unwrap();
        for claim in claimed {
            outcome
                .attempts
                .push((claim.scope.id.clone(), claim.plan_time, claim.attempt, tick));
            if case.fails(&claim.scope, claim.plan_time, claim.attempt) {
                let (status, retry_in) =
                    match decide(&backoff, claim.attempt, claim.max_attempts, false, 0.5) {
                        RetryDecision::RetryIn(delay) => (Status::Failed, Some(delay)),
                        RetryDecision::Dead => (Status::Dead, None),
                    };
                let write = FailureWrite {
                    lease: claim.lease,
                    status,
                    code: "handler_error".into(),
                    message: "drawn to fail".into(),
                    retry_in,
                    extend_budget: false,
                    duration_ms: 0,
                };
                db.execution_finish_failure(&[write]).await.unwrap();
            } else {
                let write = SuccessWrite {
                    lease: claim.lease,
                    duration_ms: 0,
                    rows_affected: 0,
                    result: "{}".into(),
                };
                db.execution_finish_success(&[write]).await.unwrap();
            }
        }
    }
    let rows = store(TimeDelta::zero())
        .execution_list(&ExecutionFilter {
            job: Some(job.into()),
            limit: 100_000,
            ..ExecutionFilter::default()
        })
        .await
        .unwrap();
    for row in rows {
        outcome.rows.insert(
            (row.scope.id.clone(), row.plan_time),
            (row.status, row.attempt),
        );
    }
    outcome.attempts.sort();
    outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn planning_and_retries_match_the_reference_model(case in case()) {
        let expected = reference(&case);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let actual = runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("model.db")).await.unwrap();
            store.migrate().await.unwrap();
            system(&case, |skew| Arc::new(store.clone().with_clock_skew(skew))).await
        });
        prop_assert_eq!(&actual.rows, &expected.rows);
        prop_assert_eq!(&actual.attempts, &expected.attempts);
    }
}

/// Fewer cases on a server: each gets a fresh schema or database.
const SERVER_CASES: u32 = 12;

proptest! {
    #![proptest_config(ProptestConfig { cases: SERVER_CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn planning_and_retries_match_the_reference_model_on_postgres(case in case()) {
        let Ok(url) = std::env::var("CRONLEASE_TEST_POSTGRES_URL") else {
            return Ok(());
        };
        let expected = reference(&case);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let actual = runtime.block_on(async {
            let schema = format!("cronlease_model_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&url).await.unwrap();
            let create = format!("CREATE SCHEMA {schema}");
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
            let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            let store = PgStore::connect_with(options.options([("search_path", schema.as_str())]))
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let outcome = system(&case, |skew| Arc::new(store.clone().with_clock_skew(skew))).await;
            store.pool().close().await;
            let drop = format!("DROP SCHEMA {schema} CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
            outcome
        });
        prop_assert_eq!(&actual.rows, &expected.rows);
        prop_assert_eq!(&actual.attempts, &expected.attempts);
    }

    #[test]
    fn planning_and_retries_match_the_reference_model_on_mysql(case in case()) {
        let Ok(url) = std::env::var("CRONLEASE_TEST_MYSQL_URL") else {
            return Ok(());
        };
        let expected = reference(&case);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let actual = runtime.block_on(async {
            let database = format!("cronlease_model_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::MySqlPool::connect(&url).await.unwrap();
            let create = format!("CREATE DATABASE {database}");
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
            let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
            let store = MySqlStore::connect_with(options.database(&database)).await.unwrap();
            store.migrate().await.unwrap();
            let outcome = system(&case, |skew| Arc::new(store.clone().with_clock_skew(skew))).await;
            store.pool().close().await;
            let drop = format!("DROP DATABASE {database}");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
            outcome
        });
        prop_assert_eq!(&actual.rows, &expected.rows);
        prop_assert_eq!(&actual.attempts, &expected.attempts);
    }
}
