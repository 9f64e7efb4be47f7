//! Every metric of `docs/metrics.md` moves when its event happens, seen through a test recorder
//! installed on the test's thread (where the actors run).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use chrono::TimeDelta;
use common::{FlakyStore, NoSweepStore, Runs, scheduler};
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim, SuccessWrite};
use cronlease::telemetry as t;
use cronlease::{
    Backoff, DbRetry, JobContext, JobError, JobOutput, JobSpec, Scheduler, Scope, Status, Store,
    floor_plan,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const HOUR: Duration = Duration::from_secs(3600);

/// What the recorder saw. Snapshots drain counters and histograms, so they are accumulated
/// here; gauges hold the values set since the previous refresh.
struct Recorded {
    snapshotter: Snapshotter,
    counters: HashMap<String, u64>,
    histograms: HashMap<String, usize>,
    gauges: HashMap<String, f64>,
}

impl Recorded {
    fn new(recorder: &DebuggingRecorder) -> Self {
        Recorded {
            snapshotter: recorder.snapshotter(),
            counters: HashMap::new(),
            histograms: HashMap::new(),
            gauges: HashMap::new(),
        }
    }

    /// Takes a snapshot. Keys read `name{label=value,...}`, labels sorted.
    fn refresh(&mut self) {
        self.gauges.clear();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *self.counters.entry(id).or_default() += n,
                DebugValue::Gauge(g) => {
                    self.gauges.insert(id, g.into_inner());
                }
                DebugValue::Histogram(values) => {
                    *self.histograms.entry(id).or_default() += values.len()
                }
            }
        }
    }

    fn counter(&self, name: &str, labels: &str) -> u64 {
        self.counters
            .get(&format!("{name}{{{labels}}}"))
            .copied()
            .unwrap_or(0)
    }

    /// A counter summed over all its label sets.
    fn counter_total(&self, name: &str) -> u64 {
        let prefix = format!("{name}{{");
        self.counters
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum()
    }

    fn histogram(&self, name: &str, labels: &str) -> usize {
        self.histograms
            .get(&format!("{name}{{{labels}}}"))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str, labels: &str) -> Option<f64> {
        self.gauges.get(&format!("{name}{{{labels}}}")).copied()
    }
}

fn failing(
    permanent: bool,
) -> impl Fn(JobContext) -> std::future::Ready<Result<JobOutput, JobError>> + Send + Sync + 'static
{
    move |_ctx| {
        std::future::ready(Err(if permanent {
            JobError::permanent("bad input")
        } else {
            JobError::retryable("upstream down")
        }))
    }
}

on_every_backend! {
    async fn attempt_outcomes_move_their_metrics(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let runs = Runs::default();
        let fixed = floor_plan(db.store.db_now().await.unwrap(), HOUR) - TimeDelta::hours(2);
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("m-ok").every("1h").handler(runs.ok_handler()).build().unwrap())
            .job(
                JobSpec::builder("m-flaky")
                    .every("1h")
                    .max_attempts(2)
                    .backoff(Backoff::list(["0s"]).unwrap())
                    .handler(failing(false))
                    .build()
                    .unwrap(),
            )
            .job(JobSpec::builder("m-perm").every("1h").handler(failing(true)).build().unwrap())
            // A hook that keeps offering one plan: the second claim of it conflicts.
            .job(JobSpec::builder("m-hook").planner(move |_, _, _| Ok(vec![fixed])).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 4);
        s.wait_idle(Duration::from_secs(10)).await;
        m.refresh();
        for job in ["m-ok", "m-flaky", "m-perm", "m-hook"] {
            assert_eq!(m.counter(t::CLAIMS, &format!("job={job},outcome=won")), 1, "{job}");
            assert_eq!(m.histogram(t::HANDLER_DURATION, &format!("job={job}")), 1, "{job}");
            assert_eq!(m.histogram(t::START_LAG, &format!("job={job}")), 1, "{job}");
        }
        assert_eq!(m.counter(t::EXECUTIONS, "code=,job=m-ok,outcome=success"), 1);
        assert_eq!(m.counter(t::EXECUTIONS, "code=handler_error,job=m-flaky,outcome=failed"), 1);
        assert_eq!(m.counter(t::RETRIES, "attempt=1,job=m-flaky"), 1);
        assert_eq!(m.counter(t::EXECUTIONS, "code=permanent,job=m-perm,outcome=dead"), 1);
        assert_eq!(m.counter(t::DEAD_LETTERED, "job=m-perm"), 1);
        assert_eq!(m.counter_total(t::DEAD_LETTERED), 1);
        let offset = m.gauge(t::CLOCK_OFFSET, "").expect("clock offset measured each tick");
        let skew = db.base_skew.num_milliseconds() as f64 / 1000.0;
        assert!((offset - skew).abs() < 5.0, "offset {offset}, the test database's skew {skew}");
        assert_eq!(m.gauge(t::RUNNING, ""), Some(0.0), "all finished");

        let report = s.tick_now().await.unwrap();
        assert_eq!((report.retried, report.conflicted), (1, 1), "{report:?}");
        s.wait_idle(Duration::from_secs(10)).await;
        m.refresh();
        assert_eq!(m.counter(t::CLAIMS, "job=m-flaky,outcome=retried"), 1);
        assert_eq!(m.counter(t::CLAIMS, "job=m-hook,outcome=conflicted"), 1);
        assert_eq!(m.counter(t::EXECUTIONS, "code=handler_error,job=m-flaky,outcome=dead"), 1);
        assert_eq!(m.counter(t::DEAD_LETTERED, "job=m-flaky"), 1, "out of attempts");
        assert_eq!(m.counter_total(t::RETRIES), 1, "the last attempt schedules no retry");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn lease_metrics_move(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        for (job, reentry) in [("m-steal", true), ("m-sweep", true), ("m-once", false)] {
            common::orphan(&*db.store, job, latest, Duration::from_secs(1), reentry).await;
        }
        let runs = Runs::default();
        let later = db.skewed(TimeDelta::seconds(10));
        // The sweep normally wins the stale lease; without it, a claim of the plan steals it.
        let thief = scheduler(Arc::new(NoSweepStore { inner: later.clone() }))
            .job(JobSpec::builder("m-steal").planner(move |_, _, _| Ok(vec![latest])).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        assert_eq!(thief.tick_now().await.unwrap().stole, 1);
        thief.wait_idle(Duration::from_secs(10)).await;
        thief.shutdown().await;
        let sweeper = scheduler(later.clone())
            .job(JobSpec::builder("m-sweep").every("1h").handler(runs.ok_handler()).build().unwrap())
            .job(JobSpec::builder("m-once").every("1h").allow_stale_reentry(false).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let (swept, retried) = sweep_ticks(&sweeper, 2).await;
        assert_eq!((swept, retried), (2, 1));
        sweeper.wait_idle(Duration::from_secs(10)).await;
        sweeper.shutdown().await;
        m.refresh();
        assert_eq!(m.counter(t::CLAIMS, "job=m-steal,outcome=stole"), 1);
        assert_eq!(m.counter(t::SWEPT_STALE, "job=m-sweep"), 1);
        assert_eq!(m.counter(t::SWEPT_STALE, "job=m-once"), 1);
        assert_eq!(m.counter(t::CLAIMS, "job=m-sweep,outcome=retried"), 1);
        assert_eq!(m.counter(t::DEAD_LETTERED, "job=m-once"), 1, "swept to DEAD");
        assert_eq!(m.counter_total(t::DEAD_LETTERED), 1);

        // A lease taken over while its handler runs: the runner finds out and counts it.
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("m-lost")
                    .every("1h")
                    .run_timeout(Duration::from_secs(2))
                    .stale_timeout(Duration::from_secs(5))
                    .heartbeat_interval(Duration::from_millis(50))
                    .handler(|ctx: JobContext| async move {
                        ctx.cancelled().await;
                        Err::<JobOutput, _>(JobError::retryable("stopped"))
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 1);
        m.refresh();
        assert_eq!(m.gauge(t::RUNNING, ""), Some(1.0));
        let stolen = db
            .skewed(TimeDelta::minutes(1))
            .execution_claim(&ClaimRequest {
                job: "m-lost",
                max_attempts: 3,
                runner_id: "thief",
                stale_timeout: HOUR,
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: vec![PlanClaim::new(Scope::global(), latest)],
            })
            .await
            .unwrap();
        assert_eq!(stolen.len(), 1);
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        m.refresh();
        assert_eq!(m.counter(t::LEASE_LOST, "job=m-lost"), 1);
        assert_eq!(m.counter(t::EXECUTIONS, "code=lease_lost,job=m-lost,outcome=lease_lost"), 1);
        assert_eq!(m.gauge(t::RUNNING, ""), Some(0.0));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn database_error_metrics_move(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let runs = Runs::default();
        let blip = Arc::new(FlakyStore { inner: db.store.clone(), fail_finishes: AtomicUsize::new(2) });
        let s = scheduler(blip)
            .job(JobSpec::builder("m-blip").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        common::settled(&*db.store, "m-blip", 1).await;
        s.wait_idle(Duration::from_secs(10)).await;
        s.shutdown().await;
        m.refresh();
        assert_eq!(m.counter(t::DB_TRANSIENT_ERRORS, "operation=execution_finish_success"), 2);
        assert_eq!(m.counter_total(t::DB_GAVE_UP), 0);

        // A database that stays down past `give_up_after`: the runtime gives up and says so.
        let down = Arc::new(FlakyStore { inner: db.store.clone(), fail_finishes: AtomicUsize::new(usize::MAX) });
        let s = scheduler(down)
            .db_retry(DbRetry {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(10),
                give_up_after: Duration::from_millis(30),
            })
            .job(JobSpec::builder("m-down").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        s.shutdown().await;
        m.refresh();
        assert_eq!(m.counter(t::DB_GAVE_UP, "operation=execution_finish_success"), 1);
        assert!(m.counter(t::DB_TRANSIENT_ERRORS, "operation=execution_finish_success") >= 1);
        assert_eq!(db.store.execution_list(&Default::default()).await.unwrap().iter().filter(|r| r.job_name == "m-down" && r.status == Status::Running).count(), 1, "left for the sweep, not failed");
    }
}

on_every_backend! {
    async fn retention_and_replay_metrics_move(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        common::orphan(&*db.store, "m-orphan", latest, Duration::from_secs(1), true).await;
        // Old history: two SUCCESS rows past 30 days and one DEAD row past 7, each under a newer row.
        let finish = |store: Arc<dyn Store>, job: &'static str, plan_time, dead: bool| async move {
            let c = store
                .execution_claim(&ClaimRequest { job, max_attempts: 1, runner_id: "earlier", stale_timeout: HOUR, allow_stale_reentry: true, steal_not_after: None, plans: vec![PlanClaim::new(Scope::global(), plan_time)] })
                .await
                .unwrap()
                .remove(0);
            if dead {
                store.execution_finish_failure(&[FailureWrite { lease: c.lease, status: Status::Dead, code: "permanent".into(), message: "bad input".into(), retry_in: None, extend_budget: false, duration_ms: 1 }]).await.unwrap();
            } else {
                store.execution_finish_success(&[SuccessWrite { lease: c.lease, duration_ms: 1, rows_affected: 0, result: "{}".into() }]).await.unwrap();
            }
            c.lease.id
        };
        for h in [3, 2] {
            finish(db.skewed(TimeDelta::days(-40)), "m-old", latest - TimeDelta::hours(h), false).await;
        }
        finish(db.store.clone(), "m-old", latest, false).await;
        finish(db.skewed(TimeDelta::days(-10)), "m-old-dead", latest - TimeDelta::hours(1), true).await;
        finish(db.store.clone(), "m-old-dead", latest, false).await;
        let dead = finish(db.store.clone(), "m-replay", latest, true).await;

        let runs = Runs::default();
        let s = scheduler(db.skewed(TimeDelta::minutes(2)))
            .job(JobSpec::builder("m-orphan").every("1h").handler(runs.ok_handler()).build().unwrap())
            .job(JobSpec::builder("m-replay").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = s.prune_now().await.unwrap();
        assert_eq!((report.stale_running, report.finished, report.dead), (1, 2, 1), "{report:?}");
        m.refresh();
        assert_eq!(m.gauge(t::STALE_RUNNING, "job=m-orphan"), Some(1.0), "not swept yet");
        assert_eq!(m.counter(t::PRUNED, "set=finished"), 2);
        assert_eq!(m.counter(t::PRUNED, "set=dead"), 1);

        s.replay(dead).await.unwrap();
        m.refresh();
        assert_eq!(m.counter(t::REPLAYED, "job=m-replay"), 1);
        // The tick sweeps the orphan (then retries it) and runs the replay.
        let (swept, retried) = sweep_ticks(&s, 1).await;
        assert_eq!((swept, retried), (1, 2));
        s.wait_idle(Duration::from_secs(10)).await;
        s.prune_now().await.unwrap();
        m.refresh();
        assert_eq!(m.counter(t::CLAIMS, "job=m-replay,outcome=replayed"), 1);
        assert_eq!(m.counter(t::CLAIMS, "job=m-orphan,outcome=retried"), 1);
        assert_eq!(m.gauge(t::STALE_RUNNING, "job=m-orphan"), Some(0.0), "back to zero once swept");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn supersede_and_tick_error_metrics_move(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        // A FAILED plan under a newer SUCCESS of the same scope.
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        for (plan_time, fail) in [(latest - TimeDelta::hours(2), true), (latest - TimeDelta::hours(1), false)] {
            let c = db
                .store
                .execution_claim(&ClaimRequest { job: "m-super", max_attempts: 3, runner_id: "earlier", stale_timeout: HOUR, allow_stale_reentry: true, steal_not_after: None, plans: vec![PlanClaim::new(Scope::global(), plan_time)] })
                .await
                .unwrap()
                .remove(0);
            if fail {
                db.store.execution_finish_failure(&[FailureWrite { lease: c.lease, status: Status::Failed, code: "handler_error".into(), message: "boom".into(), retry_in: Some(HOUR), extend_budget: false, duration_ms: 1 }]).await.unwrap();
            } else {
                db.store.execution_finish_success(&[SuccessWrite { lease: c.lease, duration_ms: 1, rows_affected: 0, result: "{}".into() }]).await.unwrap();
            }
        }
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("m-super").every("1h").supersede_failed(true).handler(runs.ok_handler()).build().unwrap())
            .job(
                JobSpec::builder("m-panic")
                    .every("1h")
                    .scopes(cronlease::Scopes::provider(|| async { panic!("no tenants table") }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .job(
                JobSpec::builder("m-invalid")
                    .every("1h")
                    .scopes(cronlease::Scopes::provider(|| async {
                        Ok(vec![Scope::new("tenant", ""), Scope::new("tenant", "a\0b"), Scope::new("tenant", "ok")])
                    }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.superseded, 1, "{report:?}");
        assert_eq!(report.job_errors, 3, "{report:?}");
        s.wait_idle(Duration::from_secs(10)).await;
        s.shutdown().await;
        m.refresh();
        assert_eq!(m.counter(t::SUPERSEDED, "job=m-super"), 1);
        assert_eq!(m.counter(t::TICK_ERRORS, "job=m-panic,reason=scope_provider_panic"), 1);
        assert_eq!(m.counter(t::TICK_ERRORS, "job=m-invalid,reason=invalid_scope"), 2);
    }
}

/// `cronlease_db_deadlocks_total` counts a real deadlock met by a store call. Another session
/// updates row B (so that InnoDB, which rolls back the lighter transaction, picks the store's)
/// while a heartbeat of A and B locks A and waits for B; the session then asks for A. The
/// database breaks the cycle by failing the heartbeat (PostgreSQL: the first waiter runs the
/// deadlock check; MySQL: the transaction that changed nothing). SQLite has one writer and
/// cannot deadlock.
#[actix::test]
async fn a_deadlock_is_counted_postgres() {
    match common::postgres().await {
        Some(db) => a_deadlock_is_counted(db).await,
        None => eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR),
    }
}

#[actix::test]
async fn a_deadlock_is_counted_mysql() {
    match common::mysql().await {
        Some(db) => a_deadlock_is_counted(db).await,
        None => eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR),
    }
}

async fn a_deadlock_is_counted(db: common::TestDb) {
    use sqlx::Connection;
    let recorder = DebuggingRecorder::new();
    let mut m = Recorded::new(&recorder);
    let _local = metrics::set_default_local_recorder(&recorder);
    let now = db.store.db_now().await.unwrap();
    let plan = floor_plan(now, HOUR);
    // Claimed one at a time: ids and plan keys ascend together (a, b, c).
    let mut leases = Vec::new();
    for scope in ["a", "b", "c"] {
        let request = ClaimRequest {
            job: "m-deadlock",
            max_attempts: 3,
            runner_id: "r",
            stale_timeout: HOUR,
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::new("t", scope), plan)],
        };
        leases.push(db.store.execution_claim(&request).await.unwrap()[0].lease);
    }
    let (a, b, c) = (leases[0], leases[1], leases[2]);
    let renewals = [a, b].map(|lease| cronlease::store::Renewal {
        lease,
        stale_timeout: HOUR,
    });
    enum Session {
        Pg(sqlx::PgConnection),
        MySql(sqlx::MySqlConnection),
    }
    let mut session = match (&db.pg_options, &db.mysql_options) {
        (Some(options), _) => {
            let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
            sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query(
                "UPDATE cronlease_executions SET rows_affected = 7 WHERE id = $1 OR id = $2",
            )
            .bind(b.id)
            .bind(c.id)
            .execute(&mut conn)
            .await
            .unwrap();
            Session::Pg(conn)
        }
        (None, Some(options)) => {
            let mut conn = sqlx::MySqlConnection::connect_with(options).await.unwrap();
            sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("UPDATE cronlease_executions SET rows_affected = 7 WHERE id = ? OR id = ?")
                .bind(b.id)
                .bind(c.id)
                .execute(&mut conn)
                .await
                .unwrap();
            Session::MySql(conn)
        }
        _ => unreachable!("SQLite cannot deadlock"),
    };
    let store = db.store.clone();
    let heartbeat = actix_rt::spawn(async move { store.execution_heartbeat(&renewals).await });
    // Wait until the heartbeat holds A and waits for B (for this session's lock, in this test's
    // database: other tests run beside this one).
    let waiting = match &mut session {
        Session::Pg(conn) => {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            format!(
                "SELECT COUNT(*) FROM pg_locks w JOIN pg_locks h ON h.transactionid = w.transactionid \
                 WHERE NOT w.granted AND w.locktype = 'transactionid' AND h.granted AND h.pid = {pid}"
            )
        }
        Session::MySql(_) => "SELECT COUNT(*) FROM information_schema.innodb_trx \
             WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id IN \
             (SELECT id FROM information_schema.processlist WHERE db = DATABASE())"
            .to_owned(),
    };
    common::eventually(10, "the heartbeat waits for B", || {
        let (db, waiting) = (&db, sqlx::AssertSqlSafe(waiting.clone()));
        async move {
            let n: i64 = match (&db.pg_options, &db.mysql_options) {
                (Some(options), _) => {
                    let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
                    sqlx::query_scalar(waiting)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap()
                }
                (None, Some(options)) => {
                    let mut conn = sqlx::MySqlConnection::connect_with(options).await.unwrap();
                    sqlx::query_scalar(waiting)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap()
                }
                _ => unreachable!(),
            };
            if n == 0 {
                // InnoDB refreshes its transaction table only after 100 ms without a reader.
                actix_rt::time::sleep(Duration::from_millis(150)).await;
            }
            (n > 0).then_some(())
        }
    })
    .await;
    // Now ask for A: a cycle.
    match &mut session {
        Session::Pg(conn) => {
            sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = $1 FOR UPDATE")
                .bind(a.id)
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
        }
        Session::MySql(conn) => {
            sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = ? FOR UPDATE")
                .bind(a.id)
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
        }
    }
    let error = heartbeat.await.unwrap().unwrap_err();
    assert!(error.is_transient(), "{error}");
    m.refresh();
    assert_eq!(
        m.counter(t::DB_DEADLOCKS, "operation=execution_heartbeat"),
        1,
        "{error}"
    );
    assert_eq!(m.counter_total(t::DB_DEADLOCKS), 1);
}

on_every_backend! {
    async fn plans_skipped_by_the_overlap_policy_are_counted(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        // The previous plan of the scope has run for two hours (its attempt started then, by a
        // store whose clock reads two hours back): the newest plan came due during it.
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let earlier = db.skewed(TimeDelta::hours(-2));
        earlier
            .execution_claim(&ClaimRequest { job: "m-skip", max_attempts: 3, runner_id: "earlier", stale_timeout: 4 * HOUR, allow_stale_reentry: true, steal_not_after: None, plans: vec![PlanClaim::new(Scope::global(), latest - TimeDelta::hours(2))] })
            .await
            .unwrap();
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("m-skip").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!((report.skipped, report.started()), (1, 0), "{report:?}");
        s.shutdown().await;
        m.refresh();
        assert_eq!(m.counter(t::PLANS_SKIPPED, "job=m-skip,reason=overlap"), 1);
        assert_eq!(runs.len(), 0);
    }
}

/// Starting a scheduler describes every metric to the installed recorder: a Prometheus
/// rendering prints `# HELP` for each metric once it has a value.
#[actix::test]
async fn every_metric_has_a_help_line_once_a_scheduler_started() {
    let db = common::sqlite().await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let runs = Runs::default();
    let s = scheduler(db.store.clone())
        .job(
            JobSpec::builder("m-help")
                .every("1h")
                .handler(runs.ok_handler())
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    s.tick_now().await.unwrap();
    s.wait_idle(Duration::from_secs(10)).await;
    s.shutdown().await;
    // Give every metric a value, so the exporter renders it (it renders only series it holds).
    for metric in t::METRICS {
        match metric.kind {
            t::MetricKind::Counter => metrics::counter!(metric.name).increment(1),
            t::MetricKind::Gauge => metrics::gauge!(metric.name).set(1.0),
            t::MetricKind::Histogram => metrics::histogram!(metric.name).record(1.0),
            _ => unreachable!("a new kind needs a line here"),
        }
    }
    let text = handle.render();
    for metric in t::METRICS {
        assert!(
            !metric.help.trim().is_empty(),
            "{} has no description",
            metric.name
        );
        let help = format!("# HELP {} {}\n", metric.name, metric.help);
        assert!(
            text.contains(&help),
            "missing `{}` in:\n{text}",
            help.trim_end()
        );
    }
}

on_every_backend! {
    async fn failing_scope_providers_are_counted_by_auto_ticks(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let runs = Runs::default();
        let job = |name: &str, scopes: cronlease::Scopes| {
            JobSpec::builder(name)
                .every("1h")
                .scopes(scopes)
                .planning_timeout(Duration::from_millis(100))
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        // Real timers: the scheduler ticks by itself every 50 ms.
        let s = scheduler(db.store.clone())
            .auto_tick(true)
            .tick_interval(Duration::from_millis(50))
            .job(job("m-prov-error", cronlease::Scopes::provider(|| async { Err("tenants table missing".into()) })))
            .job(job("m-prov-panic", cronlease::Scopes::provider(|| async { panic!("tenant list corrupt") })))
            .job(job("m-prov-hang", cronlease::Scopes::provider(std::future::pending)))
            .start()
            .await
            .unwrap();
        let expected = [
            ("m-prov-error", "error", "scope_provider_error"),
            ("m-prov-panic", "panic", "scope_provider_panic"),
            ("m-prov-hang", "timeout", "scope_provider_timeout"),
        ];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            m.refresh();
            let seen = expected.iter().all(|(job, reason, _)| {
                m.counter(t::SCOPE_PROVIDER_FAILURES, &format!("job={job},reason={reason}")) >= 2
            });
            if seen {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "auto ticks never counted every provider failure twice: {:?}", m.counters);
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        s.shutdown().await;
        m.refresh();
        for (job, reason, tick_reason) in expected {
            let failures = m.counter(t::SCOPE_PROVIDER_FAILURES, &format!("job={job},reason={reason}"));
            // Each failed tick counts once in both series.
            assert_eq!(m.counter(t::TICK_ERRORS, &format!("job={job},reason={tick_reason}")), failures, "{job}");
        }
        assert_eq!(m.counter_total(t::SCOPE_PROVIDER_FAILURES), m.counter_total(t::TICK_ERRORS));
        assert_eq!(runs.len(), 0, "no scopes, no plans");
    }
}

on_every_backend! {
    async fn the_last_success_gauge_holds_the_newest_successful_plan_time(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let hours_ago = |h: i64| latest - TimeDelta::hours(h);
        // The planner offers one plan per tick, in this order: a recent one, an older one (a
        // late success), then the newest, whose handler fails.
        let queue = Arc::new(std::sync::Mutex::new(vec![latest, hours_ago(3), hours_ago(1)]));
        let offered = queue.clone();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("m-last")
                    .planner(move |_, _, _| Ok(offered.lock().unwrap().pop().into_iter().collect()))
                    .handler(move |ctx: JobContext| async move {
                        if ctx.plan_time() == latest {
                            Err(JobError::permanent("the newest plan fails"))
                        } else {
                            Ok(JobOutput::rows(1))
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let newest_success = hours_ago(1).timestamp() as f64;
        // The test recorder reads a gauge nobody set since the previous refresh as 0.
        let expected = [("a success", newest_success), ("an older plan's success", newest_success), ("a failure", 0.0)];
        for (why, value) in expected {
            assert_eq!(s.tick_now().await.unwrap().won, 1, "{why}");
            assert!(s.wait_idle(Duration::from_secs(10)).await);
            m.refresh();
            assert_eq!(m.gauge(t::LAST_SUCCESS, "job=m-last"), Some(value), "after {why}");
        }
        assert_eq!(m.counter(t::EXECUTIONS, "code=permanent,job=m-last,outcome=dead"), 1);
        s.shutdown().await;
    }
}

/// A finished SUCCESS row of `job` for `scope` at `plan_time`: history a catch-up decides from.
async fn succeeded(
    store: &dyn Store,
    job: &'static str,
    scope: Scope,
    plan_time: chrono::DateTime<chrono::Utc>,
) {
    let c = store
        .execution_claim(&ClaimRequest {
            job,
            max_attempts: 1,
            runner_id: "earlier",
            stale_timeout: HOUR,
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(scope, plan_time)],
        })
        .await
        .unwrap()
        .remove(0);
    store
        .execution_finish_success(&[SuccessWrite {
            lease: c.lease,
            duration_ms: 1,
            rows_affected: 0,
            result: "{}".into(),
        }])
        .await
        .unwrap();
}

on_every_backend! {
    async fn catch_up_skips_are_counted_under_each_reason(db: TestDb) {
        let recorder = DebuggingRecorder::new();
        let mut m = Recorded::new(&recorder);
        let _local = metrics::set_default_local_recorder(&recorder);
        let db_now = db.store.db_now().await.unwrap();
        let latest = floor_plan(db_now, HOUR);
        let hours_ago = |h: i64| latest - TimeDelta::hours(h);
        let (a, b) = (Scope::new("t", "a"), Scope::new("t", "b"));
        // One tick, two reasons: scope a last ran on this schedule (its missed plans are
        // latest_only); scope b last ran at :30, under a schedule since changed (schedule_change).
        succeeded(&*db.store, "m-mixed", a.clone(), hours_ago(3)).await;
        succeeded(&*db.store, "m-mixed", b.clone(), hours_ago(3) + TimeDelta::minutes(30)).await;
        // EveryPlan with a two-hour window, last run five hours ago: the older misses fall out.
        succeeded(&*db.store, "m-window", Scope::global(), hours_ago(5)).await;
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("m-mixed").every("1h").scopes(vec![a, b]).catch_up(cronlease::CatchUp::LatestOnly).handler(runs.ok_handler()).build().unwrap())
            .job(
                JobSpec::builder("m-window")
                    .every("1h")
                    .overlap(cronlease::OverlapPolicy::AllowAll)
                    .catch_up(cronlease::CatchUp::EveryPlan { window: 2 * HOUR, max_plans_per_tick: 10 })
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        s.wait_idle(Duration::from_secs(10)).await;
        s.shutdown().await;
        m.refresh();
        // Scope a skipped 2h and 1h ago; scope b the same plans, for the other reason.
        assert_eq!(m.counter(t::PLANS_SKIPPED, "job=m-mixed,reason=latest_only"), 2, "{:?}", m.counters);
        assert_eq!(m.counter(t::PLANS_SKIPPED, "job=m-mixed,reason=schedule_change"), 2, "{:?}", m.counters);
        let outside = (1..=4).filter(|h| hours_ago(*h) < db_now - TimeDelta::hours(2)).count() as u64;
        assert!(outside > 0);
        assert_eq!(m.counter(t::PLANS_SKIPPED, "job=m-window,reason=outside_window"), outside, "{:?}", m.counters);
    }
}

/// Ticks until `stale` stale leases are swept (at most five ticks): `(swept, retried)` summed
/// over those ticks. A sweep passes over rows another transaction holds (MySQL's `SKIP LOCKED`)
/// and leaves them to the next tick, so one tick may sweep only some of them.
async fn sweep_ticks(scheduler: &Scheduler, stale: usize) -> (usize, usize) {
    let (mut swept, mut retried) = (0, 0);
    for _ in 0..5 {
        let report = scheduler.tick_now().await.unwrap();
        swept += report.swept;
        retried += report.retried;
        if swept >= stale {
            break;
        }
    }
    (swept, retried)
}
