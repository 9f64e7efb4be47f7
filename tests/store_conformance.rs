//! The store conformance suite: the same behaviour on every backend.
//! SQLite always; PostgreSQL when `CRONLEASE_TEST_POSTGRES_URL` is set.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cronlease::store::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, Lease, PlanClaim, Renewal, SuccessWrite,
};
use cronlease::{ClaimOutcome, Pause, Scope, SkipReason, SkipSpan, Status, Store};

const JOB: &str = "conformance";
const STALE: Duration = Duration::from_secs(60);

fn plan(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 60 + minute * 60, 0).unwrap()
}

fn scope(i: usize) -> Scope {
    Scope::new("tenant", i.to_string())
}

fn request<'a>(runner: &'a str, plans: Vec<PlanClaim>) -> ClaimRequest<'a> {
    ClaimRequest {
        job: JOB,
        max_attempts: 3,
        runner_id: runner,
        stale_timeout: STALE,
        allow_stale_reentry: true,
        steal_not_after: None,
        plans,
    }
}

async fn claim_one(
    store: &dyn Store,
    runner: &str,
    scope: Scope,
    at: DateTime<Utc>,
) -> Vec<Claimed> {
    store
        .execution_claim(&request(runner, vec![PlanClaim::new(scope, at)]))
        .await
        .expect("claim")
}

async fn claim_with(store: &dyn Store, req: ClaimRequest<'_>) -> Vec<Claimed> {
    store.execution_claim(&req).await.expect("claim")
}

fn failure(lease: Lease, status: Status, retry_in: Option<Duration>) -> FailureWrite {
    FailureWrite {
        lease,
        status,
        code: "handler_error".into(),
        message: "boom".into(),
        retry_in,
        extend_budget: false,
        duration_ms: 7,
    }
}

fn success(lease: Lease) -> SuccessWrite {
    SuccessWrite {
        lease,
        duration_ms: 12,
        rows_affected: 5,
        result: r#"{"ok":true}"#.into(),
    }
}

async fn get(store: &dyn Store, id: uuid::Uuid) -> cronlease::Execution {
    store.execution_get(id).await.unwrap().expect("row exists")
}

fn close(a: DateTime<Utc>, b: DateTime<Utc>, within: TimeDelta) -> bool {
    (a - b).abs() <= within
}

on_every_store! {
    async fn migrate_is_idempotent(db: TestDb) {
        db.store.migrate().await.unwrap();
        let concurrent: Vec<_> = (0..4)
            .map(|_| {
                let store = db.store.clone();
                tokio::spawn(async move { store.migrate().await })
            })
            .collect();
        for task in concurrent {
            task.await.unwrap().unwrap();
        }
        assert!(db.store.execution_list(&ExecutionFilter::default()).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn migration_status_reports_a_migrated_schema_as_current(db: TestDb) {
        let status = db.store.migration_status().await.unwrap();
        assert!(status.known >= 6, "{status:?}");
        assert_eq!(status.applied, status.known);
        assert!(status.is_current());
        db.store.migrate().await.unwrap();
        assert_eq!(db.store.migration_status().await.unwrap(), status, "reading changes nothing");
    }
}

on_every_store! {
    async fn migration_status_of_an_empty_database_is_zero(db: TestDb) {
        // A second, empty database beside the test's: a schema on PostgreSQL, a database on
        // MySQL, a file on SQLite.
        let dir = tempfile::tempdir().unwrap();
        let empty: Arc<dyn Store> = match db.backend {
            "postgres" => {
                let (url, schema) = db.pg_schema().unwrap();
                let admin = sqlx::PgPool::connect(url).await.unwrap();
                let fresh = format!("{schema}_empty");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {fresh}"))).execute(&admin).await.unwrap();
                let options = db.pg_options.clone().unwrap().options([("search_path", fresh.as_str())]);
                let store = Arc::new(cronlease::PgStore::connect_with(options).await.unwrap());
                let status = store.migration_status().await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {fresh} CASCADE"))).execute(&admin).await.unwrap();
                assert_eq!(status.applied, 0);
                assert!(!status.is_current());
                return;
            }
            "mysql" => {
                let (url, database) = db.mysql_database().unwrap();
                let fresh = format!("{database}_e");
                let admin = sqlx::MySqlPool::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {fresh}"))).execute(&admin).await.unwrap();
                let options = db.mysql_options.clone().unwrap().database(&fresh);
                let store = cronlease::MySqlStore::connect_with(options).await.unwrap();
                let status = store.migration_status().await;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {fresh}"))).execute(&admin).await.unwrap();
                let status = status.unwrap();
                assert_eq!(status.applied, 0);
                assert!(!status.is_current());
                return;
            }
            _ => Arc::new(cronlease::SqliteStore::open(dir.path().join("empty.db")).await.unwrap()),
        };
        let status = empty.migration_status().await.unwrap();
        assert_eq!(status.applied, 0);
        assert!(!status.is_current());
        empty.migrate().await.unwrap();
        assert!(empty.migration_status().await.unwrap().is_current());
    }
}

on_every_store! {
    async fn won_row_has_fresh_lease_stamps(db: TestDb) {
        let before = db.store.db_now().await.unwrap();
        let claimed = claim_one(&*db.store, "runner-a", Scope::global(), plan(0)).await;
        let after = db.store.db_now().await.unwrap();
        assert_eq!(claimed.len(), 1);
        let c = &claimed[0];
        assert_eq!(c.outcome, ClaimOutcome::Won);
        assert_eq!(c.attempt, 1);
        let row = get(&*db.store, c.lease.id).await;
        assert_eq!(row.status, Status::Running);
        assert_eq!(row.attempt, 1);
        assert_eq!(row.max_attempts, 3);
        assert_eq!(row.id.get_version_num(), 7, "id is a UUID v7");
        assert_eq!(row.lease_token.get_version_num(), 4, "token is a UUID v4");
        assert_eq!(row.lease_token, c.lease.token);
        assert_eq!(row.runner_id, "runner-a");
        assert_eq!(row.scope, Scope::global());
        assert_eq!(row.plan_time, plan(0));
        assert_eq!(row.claim_outcome, ClaimOutcome::Won);
        let started = row.started_at.unwrap();
        assert!(started >= before - TimeDelta::milliseconds(1) && started <= after + TimeDelta::milliseconds(1));
        assert_eq!(row.heartbeat_at, Some(started));
        assert_eq!(row.stale_after, Some(started + TimeDelta::seconds(60)));
        assert!(row.finished_at.is_none() && row.next_retry_at.is_none());
        assert_eq!(row.result, serde_json::json!({}));
        assert!(row.failures.is_empty());
    }
}

on_every_store! {
    async fn a_claimed_plan_conflicts(db: TestDb) {
        assert_eq!(claim_one(&*db.store, "a", Scope::global(), plan(0)).await.len(), 1);
        assert!(claim_one(&*db.store, "b", Scope::global(), plan(0)).await.is_empty());
        // A different plan time or scope is a different plan.
        assert_eq!(claim_one(&*db.store, "b", Scope::global(), plan(1)).await.len(), 1);
        assert_eq!(claim_one(&*db.store, "b", scope(1), plan(0)).await.len(), 1);
    }
}

on_every_store! {
    async fn sixteen_concurrent_claimers_one_winner(db: TestDb) {
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = db.store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let runner = format!("runner-{i}");
                    claim_one(&*store, &runner, Scope::global(), plan(0)).await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            let claimed = task.await.unwrap();
            won += claimed.iter().filter(|c| c.outcome == ClaimOutcome::Won).count();
            assert!(claimed.len() <= 1);
        }
        assert_eq!(won, 1, "exactly one claimer wins");
        assert_eq!(common::rows(&*db.store, JOB).await.len(), 1);
    }
}

on_every_store! {
    async fn one_statement_claims_a_batch(db: TestDb) {
        let plans: Vec<_> = (0..100).map(|i| PlanClaim::new(scope(i), plan(0))).collect();
        let claimed = claim_with(&*db.store, request("a", plans.clone())).await;
        assert_eq!(claimed.len(), 100);
        assert!(claimed.iter().all(|c| c.outcome == ClaimOutcome::Won));
        for c in &claimed {
            let sent = plans.iter().find(|p| p.scope == c.scope).unwrap();
            assert_eq!(c.lease.id, sent.id);
            assert_eq!(c.lease.token, sent.token);
        }
        // Fresh ids and tokens, same plans: all conflict.
        let again: Vec<_> = (0..100).map(|i| PlanClaim::new(scope(i), plan(0))).collect();
        assert!(claim_with(&*db.store, request("b", again)).await.is_empty());
    }
}

on_every_store! {
    async fn a_batch_mixing_new_and_taken_plans_claims_the_new_ones(db: TestDb) {
        let taken = claim_one(&*db.store, "a", scope(1), plan(0)).await.remove(0);
        let plans: Vec<_> = (0..4).map(|i| PlanClaim::new(scope(i), plan(0))).collect();
        let before = db.store.db_now().await.unwrap();
        let mut claimed = claim_with(&*db.store, request("b", plans.clone())).await;
        claimed.sort_by(|x, y| x.scope.cmp(&y.scope));
        let scopes: Vec<_> = claimed.iter().map(|c| c.scope.clone()).collect();
        assert_eq!(scopes, vec![scope(0), scope(2), scope(3)], "the taken plan is left out");
        for c in &claimed {
            let sent = plans.iter().find(|p| p.scope == c.scope).unwrap();
            assert_eq!((c.lease.id, c.lease.token), (sent.id, sent.token));
            assert_eq!((c.outcome, c.attempt, c.max_attempts), (ClaimOutcome::Won, 1, 3));
            let row = get(&*db.store, c.lease.id).await;
            assert_eq!(row.runner_id, "b");
            assert_eq!(row.started_at, Some(c.started_at), "the claim reports the stored start");
            assert!(c.started_at >= before - TimeDelta::milliseconds(1));
        }
        let row = get(&*db.store, taken.lease.id).await;
        assert_eq!((row.runner_id.as_str(), row.lease_token), ("a", taken.lease.token));
    }
}

on_every_store! {
    async fn a_success_batch_reports_only_the_rows_it_wrote(db: TestDb) {
        let plans: Vec<_> = (0..3).map(|i| PlanClaim::new(scope(i), plan(0))).collect();
        let claimed = claim_with(&*db.store, request("a", plans)).await;
        let mut stolen = claimed[1].lease;
        // A lease whose token is not the row's (taken over meanwhile) is fenced out of the batch.
        stolen.token = uuid::Uuid::new_v4();
        let writes = [success(claimed[0].lease), success(stolen), success(claimed[2].lease)];
        let mut written = db.store.execution_finish_success(&writes).await.unwrap();
        written.sort();
        let mut expected = vec![claimed[0].lease.id, claimed[2].lease.id];
        expected.sort();
        assert_eq!(written, expected);
        assert_eq!(get(&*db.store, claimed[1].lease.id).await.status, Status::Running);
        assert_eq!(get(&*db.store, claimed[2].lease.id).await.status, Status::Success);
    }
}

on_every_store! {
    async fn failed_rows_are_retried_once_due(db: TestDb) {
        let first = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let written = db
            .store
            .execution_finish_failure(&[failure(first.lease, Status::Failed, Some(Duration::from_secs(3600)))])
            .await
            .unwrap();
        assert_eq!(written, vec![first.lease.id]);
        let now = db.store.db_now().await.unwrap();
        let row = get(&*db.store, first.lease.id).await;
        assert_eq!(row.status, Status::Failed);
        assert_eq!(row.error_code.as_deref(), Some("handler_error"));
        assert_eq!(row.error_msg.as_deref(), Some("boom"));
        assert_eq!(row.duration_ms, Some(7));
        let retry_at = row.next_retry_at.unwrap();
        assert!(close(retry_at, now + TimeDelta::hours(1), TimeDelta::seconds(5)));
        // Not yet due.
        assert!(claim_one(&*db.store, "b", Scope::global(), plan(0)).await.is_empty());
        // Due for a runner whose database clock is two hours later.
        let later = db.skewed(TimeDelta::hours(2));
        let retried = claim_one(&*later, "b", Scope::global(), plan(0)).await.remove(0);
        assert_eq!(retried.outcome, ClaimOutcome::Retried);
        assert_eq!(retried.attempt, 2);
        assert_eq!(retried.lease.id, first.lease.id, "same row, same idempotency key");
        assert_ne!(retried.lease.token, first.lease.token, "a fresh token");
        let row = get(&*db.store, first.lease.id).await;
        assert_eq!(row.status, Status::Running);
        assert_eq!(row.runner_id, "b");
        assert_eq!(row.claim_outcome, ClaimOutcome::Retried);
        assert!(row.error_code.is_none() && row.next_retry_at.is_none() && row.finished_at.is_none());
        assert_eq!(row.failures.len(), 1, "history kept");
    }
}

on_every_store! {
    async fn retry_times_and_dead_rows(db: TestDb) {
        let a = claim_one(&*db.store, "a", scope(1), plan(0)).await.remove(0);
        let b = claim_one(&*db.store, "a", scope(2), plan(0)).await.remove(0);
        db.store
            .execution_finish_failure(&[
                failure(a.lease, Status::Failed, Some(Duration::ZERO)),
                failure(b.lease, Status::Dead, None),
            ])
            .await
            .unwrap();
        let dead = get(&*db.store, b.lease.id).await;
        assert_eq!(dead.status, Status::Dead);
        assert!(dead.next_retry_at.is_none(), "DEAD rows have no retry time");
        // DEAD is never claimed again, whatever the clock says.
        let far = db.skewed(TimeDelta::days(30));
        assert!(claim_one(&*far, "b", scope(2), plan(0)).await.is_empty());
        // FAILED with retry_in = 0 is due at once.
        assert_eq!(claim_one(&*db.store, "b", scope(1), plan(0)).await[0].outcome, ClaimOutcome::Retried);
    }
}

on_every_store! {
    async fn exhausted_plans_never_run_again(db: TestDb) {
        let mut req = request("a", vec![PlanClaim::new(Scope::global(), plan(0))]);
        req.max_attempts = 2;
        let first = claim_with(&*db.store, req.clone()).await.remove(0);
        db.store.execution_finish_failure(&[failure(first.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap();
        let second = claim_with(&*db.store, request("a", vec![PlanClaim::new(Scope::global(), plan(0))])).await.remove(0);
        assert_eq!(second.attempt, 2);
        assert_eq!(second.max_attempts, 2, "the budget copied at insert is kept");
        // A (mis)written FAILED row at its last attempt is still not claimable.
        db.store.execution_finish_failure(&[failure(second.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap();
        let far = db.skewed(TimeDelta::days(1));
        assert!(claim_one(&*far, "b", Scope::global(), plan(0)).await.is_empty());
        let candidates = db.store.execution_retry_candidates(JOB, 10).await.unwrap();
        assert!(candidates.is_empty(), "exhausted rows are not retry candidates");
    }
}

on_every_store! {
    async fn stale_leases_are_stolen_with_history(db: TestDb) {
        let first = claim_one(&*db.store, "dead-runner", Scope::global(), plan(0)).await.remove(0);
        // Live lease: not stolen.
        assert!(claim_one(&*db.store, "b", Scope::global(), plan(0)).await.is_empty());
        // Two minutes later the 60 s lease is stale.
        let later = db.skewed(TimeDelta::minutes(2));
        let stolen = claim_one(&*later, "b", Scope::global(), plan(0)).await.remove(0);
        assert_eq!(stolen.outcome, ClaimOutcome::Stole);
        assert_eq!(stolen.attempt, 2);
        assert_eq!(stolen.lease.id, first.lease.id);
        let row = get(&*db.store, first.lease.id).await;
        assert_eq!(row.runner_id, "b");
        assert_eq!(row.claim_outcome, ClaimOutcome::Stole);
        assert_eq!(row.failures.len(), 1);
        assert_eq!(row.failures[0].attempt, 1);
        assert_eq!(row.failures[0].code, "stale_timeout");
        assert!(row.failures[0].started_at.is_some());
    }
}

on_every_store! {
    async fn stale_leases_of_non_reentrant_jobs_are_not_stolen(db: TestDb) {
        claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let mut req = request("b", vec![PlanClaim::new(Scope::global(), plan(0))]);
        req.allow_stale_reentry = false;
        assert!(claim_with(&*later, req).await.is_empty());
    }
}

on_every_store! {
    async fn sixteen_concurrent_stealers_one_winner(db: TestDb) {
        claim_one(&*db.store, "dead-runner", Scope::global(), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = later.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    claim_one(&*store, &format!("thief-{i}"), Scope::global(), plan(0)).await
                })
            })
            .collect();
        let mut stole = 0;
        for task in tasks {
            stole += task.await.unwrap().iter().filter(|c| c.outcome == ClaimOutcome::Stole).count();
        }
        assert_eq!(stole, 1, "exactly one stealer wins");
        assert_eq!(common::rows(&*db.store, JOB).await[0].attempt, 2);
    }
}

on_every_store! {
    async fn writes_are_fenced_by_the_lease_token(db: TestDb) {
        let old = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let new = claim_one(&*later, "b", Scope::global(), plan(0)).await.remove(0);
        let before = get(&*db.store, old.lease.id).await;
        // The old owner's heartbeat, success and failure writes change nothing.
        let renewal = Renewal { lease: old.lease, stale_timeout: STALE };
        assert!(db.store.execution_heartbeat(&[renewal]).await.unwrap().is_empty());
        assert!(db.store.execution_finish_success(&[success(old.lease)]).await.unwrap().is_empty());
        assert!(db.store.execution_finish_failure(&[failure(old.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap().is_empty());
        assert_eq!(get(&*db.store, old.lease.id).await, before, "nothing changed");
        // The new owner's write succeeds.
        assert_eq!(db.store.execution_finish_success(&[success(new.lease)]).await.unwrap(), vec![new.lease.id]);
        let row = get(&*db.store, new.lease.id).await;
        assert_eq!(row.status, Status::Success);
        assert_eq!(row.rows_affected, Some(5));
        assert_eq!(row.duration_ms, Some(12));
        assert_eq!(row.result, serde_json::json!({"ok": true}));
        assert!(row.finished_at.is_some());
        // A finished row is fenced too.
        assert!(db.store.execution_finish_failure(&[failure(new.lease, Status::Failed, None)]).await.unwrap().is_empty());
        assert!(db.store.execution_heartbeat(&[Renewal { lease: new.lease, stale_timeout: STALE }]).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn heartbeats_extend_the_lease(db: TestDb) {
        let c = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let first = get(&*db.store, c.lease.id).await;
        actix_rt::time::sleep(Duration::from_millis(30)).await;
        let renewed = db
            .store
            .execution_heartbeat(&[Renewal { lease: c.lease, stale_timeout: Duration::from_secs(600) }])
            .await
            .unwrap();
        assert_eq!(renewed, vec![c.lease.id]);
        let row = get(&*db.store, c.lease.id).await;
        let beat = row.heartbeat_at.unwrap();
        assert!(beat > first.heartbeat_at.unwrap());
        assert_eq!(row.stale_after, Some(beat + TimeDelta::minutes(10)));
        assert_eq!(row.status, Status::Running);
    }
}

on_every_store! {
    async fn the_sweep_moves_only_stale_rows(db: TestDb) {
        let stale = claim_one(&*db.store, "a", scope(1), plan(0)).await.remove(0);
        let mut last = request("a", vec![PlanClaim::new(scope(2), plan(0))]);
        last.max_attempts = 1;
        let exhausted = claim_with(&*db.store, last).await.remove(0);
        let mut other_job = request("a", vec![PlanClaim::new(scope(1), plan(0))]);
        other_job.job = "other-job";
        claim_with(&*db.store, other_job).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        // A fresh lease taken in the future is not stale for the sweep either.
        let fresh = claim_one(&*later, "b", scope(3), plan(0)).await.remove(0);

        let swept = later.execution_sweep_stale(JOB, true, None).await.unwrap();
        assert_eq!(swept.len(), 2, "{swept:?}");
        let row = get(&*db.store, stale.lease.id).await;
        assert_eq!(row.status, Status::Failed);
        assert_eq!(row.error_code.as_deref(), Some("stale_timeout"));
        assert_eq!(row.error_msg.as_deref(), Some("lease expired without heartbeat"));
        let retry_at = row.next_retry_at.expect("retry-eligible at once");
        assert!(retry_at <= later.db_now().await.unwrap());
        assert_eq!(row.failures.len(), 1);
        assert_eq!(get(&*db.store, exhausted.lease.id).await.status, Status::Dead, "no attempts left");
        assert_eq!(get(&*db.store, fresh.lease.id).await.status, Status::Running);
        let others = common::rows(&*db.store, "other-job").await;
        assert_eq!(others[0].status, Status::Running, "other jobs untouched");
        // The swept row is retried by a claim.
        assert_eq!(claim_one(&*later, "b", scope(1), plan(0)).await[0].outcome, ClaimOutcome::Retried);
    }
}

on_every_store! {
    async fn takeovers_held_up_past_their_deadline_change_nothing(db: TestDb) {
        // A lease gone stale while the database was away; the statements that would take it
        // over were decided before the outage and run only now, past their deadline.
        let owner = claim_one(&*db.store, "owner", scope(1), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let now = later.db_now().await.unwrap();
        let decided = now - TimeDelta::seconds(30);
        let swept = later.execution_sweep_stale(JOB, true, Some(decided)).await.unwrap();
        assert!(swept.is_empty(), "a late sweep swept {swept:?}");
        let mut steal = request("rival", vec![PlanClaim::new(scope(1), plan(0))]);
        steal.steal_not_after = Some(decided);
        assert!(claim_with(&*later, steal).await.is_empty(), "a late claim stole the lease");
        let row = get(&*db.store, owner.lease.id).await;
        assert_eq!((row.status, row.lease_token), (Status::Running, owner.lease.token));
        // The owner renews past its stale_after: nobody took the row, so it is still its own.
        let renewed = later
            .execution_heartbeat(&[Renewal { lease: owner.lease, stale_timeout: STALE }])
            .await
            .unwrap();
        assert_eq!(renewed, vec![owner.lease.id]);
        // Prompt statements (deadline ahead) do act, once the lease is stale again.
        let much_later = db.skewed(TimeDelta::minutes(5));
        let now = much_later.db_now().await.unwrap();
        let mut steal = request("rival", vec![PlanClaim::new(scope(1), plan(0))]);
        steal.steal_not_after = Some(now + TimeDelta::seconds(10));
        let stolen = claim_with(&*much_later, steal).await;
        assert_eq!(stolen.len(), 1);
        assert_eq!(stolen[0].outcome, ClaimOutcome::Stole);
        let other = claim_one(&*db.store, "owner", scope(2), plan(0)).await.remove(0);
        let swept = much_later
            .execution_sweep_stale(JOB, true, Some(now + TimeDelta::seconds(10)))
            .await
            .unwrap();
        assert_eq!(swept.iter().map(|s| s.id).collect::<Vec<_>>(), vec![other.lease.id]);
    }
}

on_every_store! {
    async fn the_sweep_dead_letters_non_reentrant_jobs(db: TestDb) {
        let c = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let swept = later.execution_sweep_stale(JOB, false, None).await.unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].status, Status::Dead);
        let row = get(&*db.store, c.lease.id).await;
        assert_eq!(row.status, Status::Dead);
        assert!(row.next_retry_at.is_none());
        let far = db.skewed(TimeDelta::days(1));
        assert!(claim_one(&*far, "c", Scope::global(), plan(0)).await.is_empty());
    }
}

on_every_store! {
    async fn failure_history_and_utf8_messages_round_trip(db: TestDb) {
        let first = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let message = "é".repeat(2000); // 4000 bytes, multi-byte
        let mut write = failure(first.lease, Status::Failed, Some(Duration::ZERO));
        write.code = "handler_panic".into();
        write.message = message.clone();
        db.store.execution_finish_failure(&[write]).await.unwrap();
        let second = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        db.store
            .execution_finish_failure(&[failure(second.lease, Status::Dead, None)])
            .await
            .unwrap();
        let row = get(&*db.store, first.lease.id).await;
        assert_eq!(row.status, Status::Dead);
        assert_eq!(row.attempt, 2);
        assert_eq!(row.failures.len(), 2);
        assert_eq!(row.failures[0].attempt, 1);
        assert_eq!(row.failures[0].code, "handler_panic");
        assert_eq!(row.failures[0].message, message);
        assert_eq!(row.failures[1].attempt, 2);
        assert_eq!(row.failures[1].code, "handler_error");
        for f in &row.failures {
            let (started, finished) = (f.started_at.unwrap(), f.finished_at.unwrap());
            assert!(started <= finished);
        }
    }
}

on_every_store! {
    async fn results_up_to_the_cap_are_stored_intact(db: TestDb) {
        let c = claim_one(&*db.store, "a", Scope::global(), plan(0)).await.remove(0);
        let body = "x".repeat(cronlease::MAX_RESULT_BYTES - 12);
        let result = serde_json::json!({ "b": body });
        let text = result.to_string();
        assert!(text.len() <= cronlease::MAX_RESULT_BYTES);
        let write = SuccessWrite { result: text, ..success(c.lease) };
        db.store.execution_finish_success(&[write]).await.unwrap();
        assert_eq!(get(&*db.store, c.lease.id).await.result, result);
    }
}

on_every_store! {
    async fn canceled_attempts_do_not_use_up_the_budget(db: TestDb) {
        let mut req = request("a", vec![PlanClaim::new(Scope::global(), plan(0))]);
        req.max_attempts = 1;
        let c = claim_with(&*db.store, req).await.remove(0);
        let mut write = failure(c.lease, Status::Failed, Some(Duration::ZERO));
        write.code = "canceled".into();
        write.extend_budget = true;
        db.store.execution_finish_failure(&[write]).await.unwrap();
        let row = get(&*db.store, c.lease.id).await;
        assert_eq!(row.max_attempts, 2);
        let again = claim_one(&*db.store, "b", Scope::global(), plan(0)).await.remove(0);
        assert_eq!((again.outcome, again.attempt), (ClaimOutcome::Retried, 2));
    }
}

on_every_store! {
    async fn latest_plans_are_grouped_per_scope(db: TestDb) {
        for (s, minute) in [(1, 0), (1, 5), (1, 3), (2, 1)] {
            claim_one(&*db.store, "a", scope(s), plan(minute)).await;
        }
        let mut latest = db.store.execution_latest_plans(JOB).await.unwrap();
        latest.sort();
        assert_eq!(latest, vec![(scope(1), plan(5)), (scope(2), plan(1))]);
        assert!(db.store.execution_latest_plans("nobody").await.unwrap().is_empty());
        // Streamed row by row, the same answer.
        let mut handed = Vec::new();
        let n = db
            .store
            .execution_latest_plans_each(JOB, &mut |scope, at| handed.push((scope.clone(), at)))
            .await
            .unwrap();
        handed.sort();
        assert_eq!((n, handed), (2, latest));
    }
}

on_every_store! {
    async fn which_plans_exist_is_answered_in_the_order_asked(db: TestDb) {
        claim_one(&*db.store, "a", scope(1), plan(0)).await;
        claim_one(&*db.store, "a", scope(2), plan(1)).await;
        let asked = vec![
            (scope(2), plan(1)),
            (scope(1), plan(1)),
            (scope(3), plan(0)),
            (scope(1), plan(0)),
        ];
        assert_eq!(
            db.store.execution_plans_exist(JOB, &asked).await.unwrap(),
            vec![true, false, false, true]
        );
        // Another job's rows are not this job's.
        assert_eq!(
            db.store.execution_plans_exist("nobody", &asked).await.unwrap(),
            vec![false; 4]
        );
        assert!(db.store.execution_plans_exist(JOB, &[]).await.unwrap().is_empty());
        // A batch as large as a tick's is answered whole.
        let many: Vec<_> = (0..5_000).map(|i| (scope(i), plan(0))).collect();
        let exist = db.store.execution_plans_exist(JOB, &many).await.unwrap();
        assert_eq!(exist.len(), 5_000);
        assert_eq!(exist.iter().filter(|e| **e).count(), 1);
        assert!(exist[1]);
    }
}

on_every_store! {
    async fn retry_candidates_are_ordered_and_bounded(db: TestDb) {
        let mut leases = Vec::new();
        for minute in 0..4 {
            leases.push(claim_one(&*db.store, "a", Scope::global(), plan(minute)).await.remove(0).lease);
        }
        db.store
            .execution_finish_failure(&[
                failure(leases[0], Status::Failed, Some(Duration::from_secs(30))),
                failure(leases[1], Status::Failed, Some(Duration::ZERO)),
                failure(leases[2], Status::Dead, None),
            ])
            .await
            .unwrap();
        db.store.execution_finish_success(&[success(leases[3])]).await.unwrap();
        let all = db.store.execution_retry_candidates(JOB, 10).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].plan_time, all[0].due), (plan(1), true));
        assert_eq!((all[1].plan_time, all[1].due), (plan(0), false));
        assert_eq!(db.store.execution_retry_candidates(JOB, 1).await.unwrap().len(), 1);
    }
}

on_every_store! {
    async fn listing_filters_and_counts(db: TestDb) {
        for i in 0..3 {
            let c = claim_one(&*db.store, "a", scope(i), plan(i as i64)).await.remove(0);
            if i == 0 {
                db.store.execution_finish_success(&[success(c.lease)]).await.unwrap();
            }
        }
        let all = common::rows(&*db.store, JOB).await;
        assert_eq!(all.iter().map(|r| r.plan_time).collect::<Vec<_>>(), vec![plan(2), plan(1), plan(0)]);
        let by_scope = db.store.execution_list(&ExecutionFilter { scope: Some(scope(1)), ..Default::default() }).await.unwrap();
        assert_eq!(by_scope.len(), 1);
        let by_status = db.store.execution_list(&ExecutionFilter { status: Some(Status::Success), ..Default::default() }).await.unwrap();
        assert_eq!(by_status.len(), 1);
        let page = db.store.execution_list(&ExecutionFilter { job: Some(JOB.into()), plan_before: Some(plan(2)), plan_from: Some(plan(1)), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].plan_time, plan(1));
        let mut counts = db.store.execution_count_by_status(Some(JOB)).await.unwrap();
        counts.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(counts, vec![(Status::Running, 2), (Status::Success, 1)]);
        assert!(db.store.execution_count_by_status(Some("nobody")).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn the_clock_is_the_databases(db: TestDb) {
        let now = db.store.db_now().await.unwrap();
        assert!(close(now, Utc::now() + db.base_skew, TimeDelta::seconds(5)), "this machine's database runs on its clock");
        let ahead = db.skewed(TimeDelta::hours(1)).db_now().await.unwrap();
        assert!((ahead - now - TimeDelta::hours(1)).abs() <= TimeDelta::seconds(5));
    }
}

on_every_store! {
    async fn a_claim_sent_again_after_a_lost_reply_gets_its_rows_back(db: TestDb) {
        // The first try committed (a won row and a stolen one) but its reply was lost; the
        // runtime sends the same request again (same ids and tokens).
        let stale = claim_one(&*db.store, "dead", scope(1), plan(0)).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        let plans = vec![PlanClaim::new(scope(0), plan(0)), PlanClaim::new(scope(1), plan(0))];
        let first = claim_with(&*later, request("r", plans.clone())).await;
        let again = claim_with(&*later, request("r", plans)).await;
        assert_eq!(again.len(), 2, "both rows come back: {again:?}");
        for (a, b) in first.iter().zip(&again) {
            assert_eq!((a.lease, a.attempt, a.outcome), (b.lease, b.attempt, b.outcome));
        }
        let stolen = get(&*db.store, stale.lease.id).await;
        assert_eq!((stolen.attempt, stolen.failures.len()), (2, 1), "history written once");
        // Another request (fresh tokens) still conflicts on the live leases.
        let plans = vec![PlanClaim::new(scope(0), plan(0)), PlanClaim::new(scope(1), plan(0))];
        assert!(claim_with(&*later, request("other", plans)).await.is_empty());
    }
}

on_every_store! {
    async fn a_terminal_write_sent_again_after_a_lost_reply_is_reported_written(db: TestDb) {
        let won = claim_one(&*db.store, "r", scope(0), plan(0)).await.remove(0);
        let write = success(won.lease);
        assert_eq!(db.store.execution_finish_success(std::slice::from_ref(&write)).await.unwrap(), vec![won.lease.id]);
        let done = get(&*db.store, won.lease.id).await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(db.store.execution_finish_success(&[write]).await.unwrap(), vec![won.lease.id]);
        assert_eq!(get(&*db.store, won.lease.id).await, done, "nothing changed");

        let won = claim_one(&*db.store, "r", scope(1), plan(0)).await.remove(0);
        let write = failure(won.lease, Status::Failed, Some(Duration::from_secs(30)));
        assert_eq!(db.store.execution_finish_failure(std::slice::from_ref(&write)).await.unwrap(), vec![won.lease.id]);
        let failed = get(&*db.store, won.lease.id).await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(db.store.execution_finish_failure(&[write]).await.unwrap(), vec![won.lease.id]);
        let again = get(&*db.store, won.lease.id).await;
        assert_eq!(again, failed, "no second history entry, same retry time");
        assert_eq!(again.failures.len(), 1);
        // A different outcome for the same lease is still fenced out.
        assert!(db.store.execution_finish_success(&[success(won.lease)]).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn a_swept_lease_still_fences_its_owners_late_write(db: TestDb) {
        let won = claim_with(&*db.store, ClaimRequest { stale_timeout: Duration::from_secs(1), ..request("r", vec![PlanClaim::new(scope(0), plan(0))]) }).await.remove(0);
        let later = db.skewed(TimeDelta::minutes(2));
        assert_eq!(later.execution_sweep_stale(JOB, true, None).await.unwrap().len(), 1);
        let swept = get(&*db.store, won.lease.id).await;
        // The swept row keeps the owner's token, but neither late outcome matches it.
        assert!(db.store.execution_finish_success(&[success(won.lease)]).await.unwrap().is_empty());
        assert!(db.store.execution_finish_failure(&[failure(won.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap().is_empty());
        assert_eq!(get(&*db.store, won.lease.id).await, swept);
    }
}

/// A claimed row of `job` at `at`, failed to DEAD through `store` (whose clock sets its times).
async fn dead_row(store: &dyn Store, job: &str, scope: Scope, at: DateTime<Utc>) -> Claimed {
    let mut req = request("a", vec![PlanClaim::new(scope, at)]);
    req.job = job;
    let c = claim_with(store, req).await.remove(0);
    store
        .execution_finish_failure(&[failure(c.lease, Status::Dead, None)])
        .await
        .unwrap();
    c
}

on_every_store! {
    async fn replay_revives_dead_rows_once_with_their_history(db: TestDb) {
        let c = dead_row(&*db.store, JOB, Scope::global(), plan(0)).await;
        let before = get(&*db.store, c.lease.id).await;
        let replayed = db.store.execution_replay(&[c.lease.id], 2).await.unwrap();
        let now = db.store.db_now().await.unwrap();
        assert_eq!(replayed.len(), 1);
        let row = &replayed[0];
        assert_eq!(row, &get(&*db.store, c.lease.id).await, "the statement returns the row it wrote");
        assert_eq!((row.status, row.attempt, row.max_attempts), (Status::Failed, 1, 3));
        assert!(row.next_retry_at.unwrap() <= now, "due at once");
        assert!(row.replayed_at.is_some() && before.replayed_at.is_none());
        assert_eq!(row.failures, before.failures, "history kept");
        assert_eq!((row.id, row.plan_time, &row.scope), (before.id, before.plan_time, &before.scope));
        // No longer DEAD: a second replay, unknown ids and live rows change nothing.
        let live = claim_one(&*db.store, "a", scope(9), plan(0)).await.remove(0);
        let unknown = uuid::Uuid::now_v7();
        assert!(db.store.execution_replay(&[c.lease.id, unknown, live.lease.id], 2).await.unwrap().is_empty());
        assert_eq!(get(&*db.store, live.lease.id).await.status, Status::Running);
        // Offered for retry, marked as replayed.
        let candidates = db.store.execution_retry_candidates(JOB, 10).await.unwrap();
        assert_eq!(candidates.len(), 1);
        assert!(candidates[0].replayed && candidates[0].due);
        // The next claim is a replay of the same row; the marker is spent by it.
        let claimed = claim_one(&*db.store, "b", Scope::global(), plan(0)).await.remove(0);
        assert_eq!((claimed.outcome, claimed.attempt, claimed.max_attempts), (ClaimOutcome::Replayed, 2, 3));
        assert_eq!(claimed.lease.id, c.lease.id, "same idempotency key");
        assert_eq!(get(&*db.store, c.lease.id).await.claim_outcome, ClaimOutcome::Replayed);
        db.store.execution_finish_failure(&[failure(claimed.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap();
        // Failed again after the replay: still a retry candidate (no longer marked), never
        // stranded FAILED.
        let candidates = db.store.execution_retry_candidates(JOB, 10).await.unwrap();
        assert_eq!(candidates.len(), 1);
        assert!(!candidates[0].replayed && candidates[0].due);
        let again = claim_one(&*db.store, "b", Scope::global(), plan(0)).await.remove(0);
        assert_eq!((again.outcome, again.attempt), (ClaimOutcome::Retried, 3));
        assert_eq!(get(&*db.store, c.lease.id).await.failures.len(), 2);
    }
}

on_every_store! {
    async fn concurrent_replays_of_one_row_replay_it_once(db: TestDb) {
        let c = dead_row(&*db.store, JOB, Scope::global(), plan(0)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = db.store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.execution_replay(&[c.lease.id], 1).await.unwrap().len()
                })
            })
            .collect();
        let mut replayed = 0;
        for task in tasks {
            replayed += task.await.unwrap();
        }
        assert_eq!(replayed, 1, "exactly one replay wins");
        assert_eq!(get(&*db.store, c.lease.id).await.max_attempts, 2, "the budget grew once");
    }
}

on_every_store! {
    async fn prune_deletes_only_what_is_past_retention_in_batches(db: TestDb) {
        let days_ago = |d: i64| db.skewed(TimeDelta::days(-d));
        let done = |store: Arc<dyn Store>, s: usize, minute: i64| async move {
            let c = claim_one(&*store, "a", scope(s), plan(minute)).await.remove(0);
            store.execution_finish_success(&[success(c.lease)]).await.unwrap();
            c.lease.id
        };
        // Scope 1: three SUCCESS rows finished 40 days ago, and a recent newest one.
        let mut old = Vec::new();
        for minute in 0..3 {
            old.push(done(days_ago(40), 1, minute).await);
        }
        let recent = done(db.store.clone(), 1, 3).await;
        // Scope 2: one old SUCCESS row, the newest of its scope: kept for planning.
        let newest_of_scope = done(days_ago(40), 2, 0).await;
        // Scope 3: an old FAILED row (its retry ahead) under a newer RUNNING one: never pruned.
        let failed = claim_one(&*days_ago(40), "a", scope(3), plan(0)).await.remove(0);
        days_ago(40).execution_finish_failure(&[failure(failed.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap();
        let running = claim_one(&*days_ago(40), "a", scope(3), plan(1)).await.remove(0);
        // Scope 5: a FAILED row superseded 40 days ago by a newer success: finished for good.
        let superseded = claim_one(&*days_ago(40), "a", scope(5), plan(0)).await.remove(0);
        days_ago(40).execution_finish_failure(&[failure(superseded.lease, Status::Failed, Some(Duration::from_secs(60)))]).await.unwrap();
        done(days_ago(40), 5, 1).await;
        assert_eq!(days_ago(40).execution_supersede(JOB).await.unwrap(), vec![superseded.lease.id]);
        // Scope 4: DEAD rows 10 and 3 days after their last failure, one replayed, then a success.
        let dead_old = dead_row(&*days_ago(10), JOB, scope(4), plan(0)).await.lease.id;
        let dead_recent = dead_row(&*days_ago(3), JOB, scope(4), plan(1)).await.lease.id;
        let replayed = dead_row(&*days_ago(10), JOB, scope(4), plan(2)).await.lease.id;
        db.store.execution_replay(&[replayed], 1).await.unwrap();
        done(db.store.clone(), 4, 3).await;

        let thirty_days = Duration::from_secs(30 * 24 * 3600);
        let week = Duration::from_secs(7 * 24 * 3600);
        use cronlease::store::PruneSet;
        assert_eq!(db.store.execution_count_prunable(PruneSet::Finished, cronlease::store::PruneJobs::All, thirty_days).await.unwrap(), 4, "a dry run counts what the prune deletes");
        assert_eq!(db.store.execution_count_prunable(PruneSet::Dead, cronlease::store::PruneJobs::All, week).await.unwrap(), 1);
        let mut batches = Vec::new();
        loop {
            let n = db.store.execution_prune(cronlease::store::PruneSet::Finished, cronlease::store::PruneJobs::All, thirty_days, 2).await.unwrap();
            batches.push(n);
            if n < 2 {
                break;
            }
        }
        assert_eq!(batches, vec![2, 2, 0], "four rows, two per statement, until a short batch");
        for id in old.iter().chain([&superseded.lease.id]) {
            assert!(db.store.execution_get(*id).await.unwrap().is_none());
        }
        for id in [recent, newest_of_scope, running.lease.id, failed.lease.id, dead_old, dead_recent, replayed] {
            assert!(db.store.execution_get(id).await.unwrap().is_some(), "{id} kept");
        }
        assert_eq!(db.store.execution_count_prunable(PruneSet::Finished, cronlease::store::PruneJobs::All, thirty_days).await.unwrap(), 0);
        assert_eq!(db.store.execution_prune(cronlease::store::PruneSet::Dead, cronlease::store::PruneJobs::All, week, 100).await.unwrap(), 1);
        assert!(db.store.execution_get(dead_old).await.unwrap().is_none());
        assert_eq!(get(&*db.store, dead_recent).await.status, Status::Dead, "younger than its retention");
        assert_eq!(get(&*db.store, replayed).await.status, Status::Failed, "awaiting its replay");
        assert_eq!(db.store.execution_prune(cronlease::store::PruneSet::Dead, cronlease::store::PruneJobs::All, week, 100).await.unwrap(), 0);
        assert_eq!(db.store.execution_count_prunable(PruneSet::Dead, cronlease::store::PruneJobs::All, week).await.unwrap(), 0);
    }
}

on_every_store! {
    async fn prune_selects_jobs_for_their_own_retention(db: TestDb) {
        use cronlease::store::{PruneJobs, PruneSet};
        // Jobs a, b and c: one SUCCESS row finished 40 days ago under a newer one of its scope.
        let mut old = std::collections::BTreeMap::new();
        for job in ["a", "b", "c"] {
            let mut ids = Vec::new();
            for minute in 0..2 {
                let store = if minute == 0 { db.skewed(TimeDelta::days(-40)) } else { db.store.clone() };
                let mut req = request("r", vec![PlanClaim::new(scope(1), plan(minute))]);
                req.job = job;
                let c = claim_with(&*store, req).await.remove(0);
                store.execution_finish_success(&[success(c.lease)]).await.unwrap();
                ids.push(c.lease.id);
            }
            old.insert(job, ids[0]);
        }
        let month = Duration::from_secs(30 * 24 * 3600);
        let exists = |id| {
            let store = db.store.clone();
            async move { store.execution_get(id).await.unwrap().is_some() }
        };
        // A dry run counts what each selection would delete.
        let except = vec!["a".to_owned()];
        let count = |jobs| {
            let store = db.store.clone();
            async move { store.execution_count_prunable(PruneSet::Finished, jobs, month).await.unwrap() }
        };
        assert_eq!(count(PruneJobs::All).await, 3);
        assert_eq!(count(PruneJobs::Only("b")).await, 1);
        assert_eq!(count(PruneJobs::Only("nobody")).await, 0);
        assert_eq!(count(PruneJobs::Except(&except)).await, 2);
        // Only b: a and c stay.
        assert_eq!(db.store.execution_prune(PruneSet::Finished, PruneJobs::Only("b"), month, 100).await.unwrap(), 1);
        assert!(!exists(old["b"]).await);
        assert!(exists(old["a"]).await && exists(old["c"]).await);
        // Every job but a: c goes, a stays.
        assert_eq!(count(PruneJobs::Except(&except)).await, 1);
        assert_eq!(db.store.execution_prune(PruneSet::Finished, PruneJobs::Except(&except), month, 100).await.unwrap(), 1);
        assert!(!exists(old["c"]).await);
        assert!(exists(old["a"]).await, "left out of the pass");
        // A pass of a job within its retention deletes nothing.
        assert_eq!(db.store.execution_prune(PruneSet::Finished, PruneJobs::Only("a"), Duration::from_secs(50 * 24 * 3600), 100).await.unwrap(), 0);
        assert_eq!(db.store.execution_prune(PruneSet::Finished, PruneJobs::All, month, 100).await.unwrap(), 1);
        assert!(!exists(old["a"]).await);
    }
}

on_every_store! {
    async fn supersede_closes_only_failed_plans_with_a_newer_success(db: TestDb) {
        let fail = |lease| failure(lease, Status::Failed, Some(Duration::from_secs(60)));
        // Scope 1: FAILED at minute 0, SUCCESS at minute 1: superseded.
        let old = claim_one(&*db.store, "a", scope(1), plan(0)).await.remove(0);
        db.store.execution_finish_failure(&[fail(old.lease)]).await.unwrap();
        let newer = claim_one(&*db.store, "a", scope(1), plan(1)).await.remove(0);
        db.store.execution_finish_success(&[success(newer.lease)]).await.unwrap();
        // Scope 2: FAILED at minute 0 under a newer FAILED and a newer RUNNING plan: kept.
        let kept = claim_one(&*db.store, "a", scope(2), plan(0)).await.remove(0);
        let newer_failed = claim_one(&*db.store, "a", scope(2), plan(1)).await.remove(0);
        db.store.execution_finish_failure(&[fail(kept.lease), fail(newer_failed.lease)]).await.unwrap();
        claim_one(&*db.store, "a", scope(2), plan(2)).await;
        // Scope 3: FAILED at minute 1, SUCCESS only at an older plan: kept.
        let older_success = claim_one(&*db.store, "a", scope(3), plan(0)).await.remove(0);
        db.store.execution_finish_success(&[success(older_success.lease)]).await.unwrap();
        let failed_latest = claim_one(&*db.store, "a", scope(3), plan(1)).await.remove(0);
        db.store.execution_finish_failure(&[fail(failed_latest.lease)]).await.unwrap();
        // Scope 4: replayed by an operator, with a newer success: kept (the operator asked).
        let replayed = dead_row(&*db.store, JOB, scope(4), plan(0)).await.lease.id;
        db.store.execution_replay(&[replayed], 1).await.unwrap();
        let later = claim_one(&*db.store, "a", scope(4), plan(1)).await.remove(0);
        db.store.execution_finish_success(&[success(later.lease)]).await.unwrap();

        assert!(db.store.execution_supersede("another-job").await.unwrap().is_empty());
        assert_eq!(db.store.execution_supersede(JOB).await.unwrap(), vec![old.lease.id]);
        let row = get(&*db.store, old.lease.id).await;
        assert_eq!(row.status, Status::Superseded);
        assert_eq!(row.next_retry_at, None);
        assert!(row.finished_at.is_some());
        assert_eq!(row.failures.len(), 1, "history kept");
        assert_eq!(row.error_code.as_deref(), Some("handler_error"), "last error kept");
        for id in [kept.lease.id, newer_failed.lease.id, failed_latest.lease.id, replayed] {
            assert_eq!(get(&*db.store, id).await.status, Status::Failed, "{id} kept");
        }
        // No longer a retry candidate, and a second pass changes nothing.
        let candidates = db.store.execution_retry_candidates(JOB, 10).await.unwrap();
        assert!(candidates.iter().all(|c| !(c.scope == scope(1) && c.plan_time == plan(0))));
        assert!(db.store.execution_supersede(JOB).await.unwrap().is_empty());
        let counts = db.store.execution_count_by_status(Some(JOB)).await.unwrap();
        assert!(counts.contains(&(Status::Superseded, 1)));
    }
}

on_every_store! {
    async fn stale_running_rows_are_counted_per_job(db: TestDb) {
        for (job, n) in [("job-a", 1), ("job-b", 2)] {
            let plans = (0..n).map(|i| PlanClaim::new(scope(i), plan(0))).collect();
            let mut req = request("a", plans);
            req.job = job;
            claim_with(&*db.store, req).await;
        }
        let done = claim_one(&*db.store, "a", scope(5), plan(0)).await.remove(0);
        db.store.execution_finish_success(&[success(done.lease)]).await.unwrap();
        assert!(db.store.execution_count_stale().await.unwrap().is_empty(), "live leases");
        let mut stale = db.skewed(TimeDelta::minutes(2)).execution_count_stale().await.unwrap();
        stale.sort();
        assert_eq!(stale, vec![("job-a".to_owned(), 1), ("job-b".to_owned(), 2)]);
    }
}

on_every_store! {
    async fn failing_rows_since_a_plan_time_are_counted_per_job(db: TestDb) {
        // job-a: DEAD at minutes 0 and 10, FAILED at 20; job-b: DEAD at 10; SUCCESS and
        // RUNNING rows at 20 of job-b count for nothing.
        for (job, minute) in [("job-a", 0), ("job-a", 10), ("job-b", 10)] {
            dead_row(&*db.store, job, scope(minute as usize), plan(minute)).await;
        }
        let mut req = request("a", vec![PlanClaim::new(scope(1), plan(20))]);
        req.job = "job-a";
        let failed = claim_with(&*db.store, req).await.remove(0);
        db.store.execution_finish_failure(&[failure(failed.lease, Status::Failed, Some(STALE))]).await.unwrap();
        let mut req = request("a", vec![PlanClaim::new(scope(1), plan(20)), PlanClaim::new(scope(2), plan(20))]);
        req.job = "job-b";
        let claimed = claim_with(&*db.store, req).await;
        db.store.execution_finish_success(&[success(claimed[0].lease)]).await.unwrap();

        let store = &db.store;
        let count = |since| async move {
            let mut counts = store.execution_count_failing(since).await.unwrap();
            counts.sort();
            counts
        };
        assert_eq!(count(plan(0)).await, vec![("job-a".to_owned(), 3), ("job-b".to_owned(), 1)]);
        assert_eq!(count(plan(10)).await, vec![("job-a".to_owned(), 2), ("job-b".to_owned(), 1)], "the bound is inclusive");
        assert_eq!(count(plan(11)).await, vec![("job-a".to_owned(), 1)]);
        assert!(count(plan(21)).await.is_empty());
    }
}

on_every_store! {
    async fn pages_follow_a_keyset_cursor_without_gaps_or_repeats(db: TestDb) {
        // Seven scopes share each plan time: a plan-time cursor alone would skip or repeat rows.
        let plans: Vec<_> = (0..7).flat_map(|s| (0..3).map(move |m| PlanClaim::new(scope(s), plan(m)))).collect();
        claim_with(&*db.store, request("a", plans)).await;
        let all = common::rows(&*db.store, JOB).await;
        assert_eq!(all.len(), 21);
        let mut filter = ExecutionFilter { job: Some(JOB.into()), limit: 4, ..Default::default() };
        let mut paged = Vec::new();
        loop {
            let page = db.store.execution_list(&filter).await.unwrap();
            assert!(page.len() <= 4);
            paged.extend(page.iter().cloned());
            match filter.next_page(&page) {
                Some(next) => filter = next,
                None => break,
            }
        }
        assert_eq!(paged, all, "every row once, newest plan first");
        assert!(all.windows(2).all(|w| (w[0].plan_time, w[0].id) > (w[1].plan_time, w[1].id)));
        // The cursor combines with the other filters and survives its text form.
        let cursor: cronlease::ExecutionCursor = cronlease::ExecutionCursor::of(&all[9]).to_string().parse().unwrap();
        let rest = db.store.execution_list(&ExecutionFilter {
            after: Some(cursor),
            plan_from: Some(plan(1)),
            limit: 100,
            ..Default::default()
        }).await.unwrap();
        assert_eq!(rest, all[10..14].to_vec());
    }
}

/// SQLite only: the WAL is copied back into the database file by a background checkpoint on a
/// reader connection, not left for the writer's own (raised) threshold.
#[tokio::test]
async fn sqlite_checkpoints_the_wal_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.db");
    let store = cronlease::SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = std::fs::metadata(&path).unwrap().len();
    let plans: Vec<_> = (0..2000)
        .map(|i| PlanClaim::new(scope(i), plan(0)))
        .collect();
    assert_eq!(claim_with(&store, request("a", plans)).await.len(), 2000);
    // Far below the writer's threshold: only the background checkpoint grows the main file.
    let mut grown = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::fs::metadata(&path).unwrap().len() > before {
            grown = true;
            break;
        }
    }
    assert!(
        grown,
        "the claimed rows reached the database file without a writer checkpoint"
    );
}

/// Whether `error` is a deadlock the database broke (PostgreSQL 40P01, MySQL 1213).
fn is_deadlock(error: &cronlease::Error) -> bool {
    match error {
        cronlease::Error::Database {
            source: sqlx::Error::Database(db),
            ..
        } => {
            db.code().as_deref() == Some("40P01")
                || db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|my| my.number() == 1213)
        }
        _ => false,
    }
}

on_every_store! {
    async fn concurrent_batched_writes_never_deadlock(db: TestDb) {
        // 200 RUNNING rows whose ids run against their key order (claimed one at a time, the
        // last plan key first), renewed, claimed (conflicting), and finished by concurrent
        // batches that each list them in a random order: each statement must lock in one global
        // order, or two of them wait for each other. Deadlocks are counted twice: as errors the
        // calls return, and through `cronlease_db_deadlocks_total`, which also sees those the
        // MySQL store absorbs by running a claim again at once.
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _local = metrics::set_default_local_recorder(&recorder);
        let mut claimed = Vec::new();
        for i in (0..200).rev() {
            claimed.push(claim_one(&*db.store, "owner", scope(i), plan(0)).await.remove(0));
        }
        let tasks: Vec<_> = (0..6)
            .map(|task| {
                let store = db.store.clone();
                let claimed = claimed.clone();
                actix_rt::spawn(async move {
                    let mut deadlocks = 0;
                    for _ in 0..12 {
                        let mut batch = claimed.clone();
                        fastrand::shuffle(&mut batch);
                        let outcome = match task % 3 {
                            0 | 1 => {
                                let renewals: Vec<Renewal> = batch.iter().map(|c| Renewal { lease: c.lease, stale_timeout: STALE }).collect();
                                store.execution_heartbeat(&renewals).await.map(|_| ())
                            }
                            _ => {
                                let plans = batch.iter().map(|c| PlanClaim::new(c.scope.clone(), c.plan_time)).collect();
                                store.execution_claim(&request("rival", plans)).await.map(|_| ())
                            }
                        };
                        match outcome {
                            Err(error) if is_deadlock(&error) => deadlocks += 1,
                            other => other.expect("a batched write"),
                        }
                    }
                    deadlocks
                })
            })
            .collect();
        // Meanwhile the owner records its outcomes in random-order batches too.
        let mut finishing = claimed.clone();
        fastrand::shuffle(&mut finishing);
        let mut deadlocks = 0;
        for chunk in finishing.chunks(50) {
            let (ok, failed) = chunk.split_at(25);
            let outcome = match db.store.execution_finish_success(&ok.iter().map(|c| success(c.lease)).collect::<Vec<_>>()).await {
                Ok(_) => db.store.execution_finish_failure(&failed.iter().map(|c| failure(c.lease, Status::Failed, Some(STALE))).collect::<Vec<_>>()).await.map(|_| ()),
                Err(error) => Err(error),
            };
            match outcome {
                Err(error) if is_deadlock(&error) => deadlocks += 1,
                other => other.expect("a terminal write"),
            }
        }
        for task in tasks {
            deadlocks += task.await.unwrap();
        }
        assert_eq!(deadlocks, 0, "the runtime's own statements deadlocked each other");
        let counted: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == cronlease::telemetry::DB_DEADLOCKS)
            .map(|(key, _, _, value)| format!("{:?} {value:?}", key.key()))
            .collect();
        assert!(counted.is_empty(), "deadlocks counted in the metrics: {counted:?}");
        let counts = db.store.execution_count_by_status(Some(JOB)).await.unwrap();
        assert!(counts.contains(&(Status::Success, 100)) && counts.contains(&(Status::Failed, 100)), "{counts:?}");
    }
}

on_every_store! {
    async fn concurrent_claims_of_new_plans_never_deadlock_with_heartbeats(db: TestDb) {
        // Claims that race to insert the same new plans while they also meet existing rows
        // (locked, then Conflicted), and heartbeats that renew existing and freshly won rows in
        // one batch: a claim that waited on a rival's new row by its plan key while holding an
        // existing row by id, against a heartbeat holding the first and waiting for the second,
        // is a deadlock unless every writer takes its locks in one global order.
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _local = metrics::set_default_local_recorder(&recorder);
        const SCOPES: usize = 100;
        const ROUNDS: i64 = 20;
        let mut owned = Vec::new();
        for i in (0..SCOPES).rev() {
            owned.push(claim_one(&*db.store, "owner", scope(i), plan(0)).await.remove(0).lease);
        }
        let won: Arc<std::sync::Mutex<Vec<Lease>>> = Arc::new(std::sync::Mutex::new(owned.clone()));
        let claimers: Vec<_> = (0..3)
            .map(|task| {
                let store = db.store.clone();
                let won = won.clone();
                actix_rt::spawn(async move {
                    let runner = format!("claimer-{task}");
                    let mut deadlocks = 0;
                    for round in 1..=ROUNDS {
                        // Each claimer meets its own third of the existing rows, and all of
                        // them race for the same new plans.
                        let mut plans: Vec<PlanClaim> = (0..SCOPES)
                            .filter(|i| i % 3 == task)
                            .map(|i| PlanClaim::new(scope(i), plan(0)))
                            .chain((0..SCOPES).map(|i| PlanClaim::new(scope(i), plan(round))))
                            .collect();
                        fastrand::shuffle(&mut plans);
                        match store.execution_claim(&request(&runner, plans)).await {
                            Ok(claimed) => won.lock().unwrap().extend(claimed.iter().map(|c| c.lease)),
                            Err(error) if is_deadlock(&error) => deadlocks += 1,
                            Err(error) => panic!("a claim: {error}"),
                        }
                    }
                    deadlocks
                })
            })
            .collect();
        let renewers: Vec<_> = (0..2)
            .map(|_| {
                let store = db.store.clone();
                let won = won.clone();
                actix_rt::spawn(async move {
                    let mut deadlocks = 0;
                    for _ in 0..60 {
                        let mut leases = won.lock().unwrap().clone();
                        fastrand::shuffle(&mut leases);
                        let renewals: Vec<Renewal> = leases.iter().map(|l| Renewal { lease: *l, stale_timeout: STALE }).collect();
                        match store.execution_heartbeat(&renewals).await {
                            Ok(_) => {}
                            Err(error) if is_deadlock(&error) => deadlocks += 1,
                            Err(error) => panic!("a heartbeat: {error}"),
                        }
                    }
                    deadlocks
                })
            })
            .collect();
        let mut deadlocks = 0;
        for task in claimers.into_iter().chain(renewers) {
            deadlocks += task.await.unwrap();
        }
        assert_eq!(deadlocks, 0, "the runtime's own statements deadlocked each other");
        let counted: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == cronlease::telemetry::DB_DEADLOCKS)
            .map(|(key, _, _, value)| format!("{:?} {value:?}", key.key()))
            .collect();
        assert!(counted.is_empty(), "deadlocks counted in the metrics: {counted:?}");
        // Every plan has one row, held by one claimer; the owner's rows were never taken.
        let rows = db.store.execution_list(&ExecutionFilter { job: Some(JOB.to_owned()), limit: 10_000, ..ExecutionFilter::default() }).await.unwrap();
        assert_eq!(rows.len(), SCOPES * (ROUNDS as usize + 1));
        assert!(rows.iter().all(|r| r.status == Status::Running && r.attempt == 1), "{rows:?}");
        let owner_rows = rows.iter().filter(|r| r.plan_time == plan(0)).collect::<Vec<_>>();
        assert!(owner_rows.iter().all(|r| r.runner_id == "owner"));
        let held = won.lock().unwrap().len();
        assert_eq!(held, SCOPES * (ROUNDS as usize + 1), "each plan won once");
    }
}

on_every_store! {
    async fn racing_claims_of_the_same_new_plans_never_deadlock(db: TestDb) {
        // Six claimers offer the same 50 new plans each round, plus a plan that already has a
        // row and sorts last: a claimer that inserted the new ones and then meets that row
        // undoes its inserts, and rivals queued on them by plan key must not then deadlock on
        // each other (as two InnoDB inserts holding a duplicate-key lock each would).
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _local = metrics::set_default_local_recorder(&recorder);
        const NEW: usize = 50;
        const ROUNDS: i64 = 15;
        let last = Scope::new("tenant", "~last");
        for round in 1..=ROUNDS {
            claim_one(&*db.store, "owner", last.clone(), plan(round)).await;
        }
        let claimers: Vec<_> = (0..6)
            .map(|task| {
                let store = db.store.clone();
                let last = last.clone();
                actix_rt::spawn(async move {
                    let runner = format!("claimer-{task}");
                    let (mut won, mut deadlocks) = (Vec::new(), 0);
                    for round in 1..=ROUNDS {
                        let mut plans: Vec<PlanClaim> =
                            (0..NEW).map(|i| PlanClaim::new(scope(i), plan(round))).collect();
                        plans.push(PlanClaim::new(last.clone(), plan(round)));
                        fastrand::shuffle(&mut plans);
                        match store.execution_claim(&request(&runner, plans)).await {
                            Ok(claimed) => won.extend(claimed.into_iter().map(|c| (c.scope, c.plan_time))),
                            Err(error) if is_deadlock(&error) => deadlocks += 1,
                            Err(error) => panic!("a claim: {error}"),
                        }
                    }
                    (won, deadlocks)
                })
            })
            .collect();
        let (mut won, mut deadlocks) = (Vec::new(), 0);
        for task in claimers {
            let (w, d) = task.await.unwrap();
            won.extend(w);
            deadlocks += d;
        }
        assert_eq!(deadlocks, 0, "the claims deadlocked each other");
        let counted: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == cronlease::telemetry::DB_DEADLOCKS)
            .map(|(key, _, _, value)| format!("{:?} {value:?}", key.key()))
            .collect();
        assert!(counted.is_empty(), "deadlocks counted in the metrics: {counted:?}");
        // Each new plan was won by exactly one claimer; the owner's rows stayed its own.
        let distinct: HashSet<_> = won.iter().cloned().collect();
        assert_eq!((won.len(), distinct.len()), (NEW * ROUNDS as usize, NEW * ROUNDS as usize));
        assert!(!distinct.iter().any(|(s, _)| *s == last));
    }
}

on_every_store! {
    async fn the_ledger_records_a_span_once_and_finds_it_by_scope(db: TestDb) {
        let store = &*db.store;
        let shared = SkipSpan::new(JOB, None, SkipReason::LatestOnly, plan(1), plan(5))
            .counts(Some(5), 100);
        let own = SkipSpan::new(JOB, Some(scope(7)), SkipReason::OutsideWindow, plan(2), plan(3))
            .counts(Some(2), 1);
        store.skip_record(&[shared, own]).await.unwrap();
        // Another replica decided the same skip a moment later, one plan further.
        let wider = SkipSpan::new(JOB, None, SkipReason::LatestOnly, plan(1), plan(6))
            .counts(Some(6), 100);
        store.skip_record(&[wider]).await.unwrap();
        store.skip_record(&[]).await.unwrap();

        let all = store.skip_list(Some(JOB), 10).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let shared = all.iter().find(|s| s.scope.is_none()).unwrap();
        assert_eq!(
            (shared.reason, shared.from, shared.to, shared.plans, shared.scopes),
            (SkipReason::LatestOnly, plan(1), plan(6), Some(6), 100)
        );
        let now = store.db_now().await.unwrap();
        assert!(
            (now - shared.recorded_at).num_seconds().abs() <= 60,
            "recorded_at {} is not the database clock {now}",
            shared.recorded_at
        );

        // A scope finds its own rows and the shared ones that may cover the plan.
        let found = store.skip_find(JOB, &scope(7), plan(2), plan(2)).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let found = store.skip_find(JOB, &scope(8), plan(2), plan(2)).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].scope, None);
        assert!(store.skip_find(JOB, &scope(7), plan(9), plan(9)).await.unwrap().is_empty());
        assert!(store.skip_list(Some("other"), 10).await.unwrap().is_empty());
        assert_eq!(store.skip_list(None, 1).await.unwrap().len(), 1);
    }
}

fn described(job: &str, every: &str) -> cronlease::JobDescription {
    cronlease::JobDescription::of(
        &cronlease::JobSpec::builder(job)
            .every(every)
            .stagger("30s")
            .max_attempts(4)
            .handler(|_ctx: cronlease::JobContext| async { Ok(cronlease::JobOutput::rows(0)) })
            .build()
            .unwrap(),
    )
}

fn runner(id: &str, starting: bool) -> cronlease::store::RunnerRegistration {
    cronlease::store::RunnerRegistration {
        id: id.to_owned(),
        host: "host-1".into(),
        pid: 4242,
        version: "9.9.9".into(),
        refresh_interval: Duration::from_secs(10),
        starting,
    }
}

fn runner_named<'a>(runners: &'a [cronlease::Runner], id: &str) -> &'a cronlease::Runner {
    runners
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("runner {id} in {runners:?}"))
}

on_every_store! {
    async fn registering_is_idempotent_and_replaces_the_runners_job_set(db: TestDb) {
        use cronlease::RunnerState;
        let store = &*db.store;
        let (x, y) = (described("x", "5m"), described("y", "1h"));
        store.runner_register(&runner("a", true), &[x.clone(), y.clone()]).await.unwrap();
        let first = store.runner_list().await.unwrap();
        store.runner_register(&runner("a", false), &[x.clone(), y.clone()]).await.unwrap();
        let runners = store.runner_list().await.unwrap();
        assert_eq!(runners.len(), 1, "{runners:?}");
        let a = &runners[0];
        assert_eq!((a.id.as_str(), a.host.as_str(), a.pid, a.version.as_str()), ("a", "host-1", 4242, "9.9.9"));
        assert_eq!((a.state, a.stopped_at, a.refresh_interval), (RunnerState::Live, None, Duration::from_secs(10)));
        assert_eq!(a.started_at, first[0].started_at, "registering again while running keeps started_at");
        assert!(a.last_seen >= first[0].last_seen);

        let jobs = store.registered_jobs(None).await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["x", "y"]);
        let job = &jobs[0];
        assert_eq!(job.spec, x, "every setting comes back as registered");
        assert!(!job.conflicting);
        assert_eq!(job.variants.len(), 1);
        assert_eq!(job.variants[0].runners, ["a"]);
        assert_eq!(job.runners, [("a".to_owned(), RunnerState::Live)]);
        let schedule = job.spec.schedule().expect("a schedule").expect("parses back");
        assert_eq!(schedule, cronlease::Schedule::every("5m").unwrap());
        assert_eq!(job.spec.stagger, Duration::from_secs(30));
        assert_eq!(job.spec.max_attempts, 4);

        // The set is replaced: a job no longer given is no longer registered by this runner.
        store.runner_register(&runner("a", false), std::slice::from_ref(&x)).await.unwrap();
        let jobs = store.registered_jobs(None).await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["x"]);
        assert_eq!(store.registered_jobs(Some("y")).await.unwrap(), []);
        assert_eq!(store.registered_jobs(Some("x")).await.unwrap(), jobs);

        // Starting again sets a new started_at and forgets a former stop.
        assert!(store.runner_stop("a").await.unwrap());
        assert!(!store.runner_stop("unknown").await.unwrap());
        store.runner_register(&runner("a", true), &[x]).await.unwrap();
        let again = store.runner_list().await.unwrap();
        assert_eq!((again[0].state, again[0].stopped_at), (RunnerState::Live, None));
        assert!(again[0].started_at >= a.last_seen, "{:?} after {:?}", again[0].started_at, a.last_seen);
    }
}

on_every_store! {
    async fn ledger_spans_past_their_retention_are_pruned_oldest_first(db: TestDb) {
        let store = &*db.store;
        let spans: Vec<SkipSpan> = (0..3)
            .map(|i| SkipSpan::new(JOB, Some(scope(i)), SkipReason::LatestOnly, plan(1), plan(2)).counts(Some(2), 1))
            .collect();
        store.skip_record(&spans).await.unwrap();
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(store.skip_prune(month, 2).await.unwrap(), 0, "recorded just now");
        // Sixty days later (a runner whose database clock is ahead), in batches of two.
        let later = db.skewed(TimeDelta::days(60));
        assert_eq!(later.skip_prune(month, 2).await.unwrap(), 2);
        assert_eq!(later.skip_prune(month, 2).await.unwrap(), 1);
        assert_eq!(later.skip_prune(month, 2).await.unwrap(), 0);
        assert!(store.skip_list(Some(JOB), 10).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn lifting_a_pause_records_the_paused_interval_in_the_ledger(db: TestDb) {
        let store = &*db.store;
        let scope_pause = store
            .pause_set(&Pause::new(JOB, Some(scope(1)), "ops", "tenant migration"))
            .await
            .unwrap();
        let job_pause = store.pause_set(&Pause::new(JOB, None, "ops", "upstream down")).await.unwrap();
        // Paused for a while (the clock has millisecond resolution).
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(store.pause_clear(JOB, Some(&scope(1))).await.unwrap());
        assert!(store.pause_clear(JOB, None).await.unwrap());
        assert!(!store.pause_clear(JOB, None).await.unwrap(), "nothing left to lift");

        let spans = store.skip_list(Some(JOB), 10).await.unwrap();
        assert_eq!(spans.len(), 2, "{spans:?}");
        let of_scope = spans.iter().find(|s| s.scope.is_some()).unwrap();
        assert_eq!(of_scope.scope, Some(scope(1)));
        assert_eq!((of_scope.reason, of_scope.plans, of_scope.scopes), (SkipReason::Paused, None, 1));
        assert_eq!(of_scope.from, scope_pause.paused_at);
        assert!(of_scope.to >= of_scope.from);
        assert!(of_scope.detail.contains("ops") && of_scope.detail.contains("tenant migration"), "{}", of_scope.detail);
        let of_job = spans.iter().find(|s| s.scope.is_none()).unwrap();
        assert_eq!((of_job.reason, of_job.scopes), (SkipReason::Paused, 0));
        assert_eq!(of_job.from, job_pause.paused_at);
        // A plan that came due while the job was paused is covered; one due after is not.
        let inside = of_job.from;
        assert!(of_job.covers(inside, inside));
        assert!(!of_job.covers(of_job.to, of_job.to));
        let found = store.skip_find(JOB, &scope(5), inside, inside).await.unwrap();
        assert!(found.iter().any(|s| s.scope.is_none() && s.reason == SkipReason::Paused));
    }
}

on_every_store! {
    async fn last_seen_comes_from_the_database_clock(db: TestDb) {
        // A runner whose view of the database clock is an hour ahead stamps an hour ahead: the
        // stamps are the database's, never the runner's local clock.
        let ahead = db.skewed(TimeDelta::hours(1));
        ahead.runner_register(&runner("ahead", true), &[]).await.unwrap();
        let now = db.store.db_now().await.unwrap();
        let seen = runner_named(&db.store.runner_list().await.unwrap(), "ahead").last_seen;
        assert!(seen > now + TimeDelta::minutes(59), "last_seen {seen} vs database now {now}");

        db.store.runner_register(&runner("here", true), &[]).await.unwrap();
        let before = runner_named(&db.store.runner_list().await.unwrap(), "here").last_seen;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(db.store.runner_seen("here").await.unwrap());
        let after = runner_named(&db.store.runner_list().await.unwrap(), "here").last_seen;
        assert!(after > before, "refreshed: {before} -> {after}");
        assert!(after <= db.store.db_now().await.unwrap());
        assert!(!db.store.runner_seen("unknown").await.unwrap(), "no row: register again");
    }
}

on_every_store! {
    async fn silent_runners_are_gone_then_pruned_and_a_clean_stop_is_recorded(db: TestDb) {
        use cronlease::RunnerState;
        let store = &*db.store;
        let job = described("x", "5m");
        // Last seen an hour ago (its clock read an hour behind), refreshing every 10 s: gone.
        db.skewed(TimeDelta::hours(-1))
            .runner_register(&runner("silent", true), std::slice::from_ref(&job))
            .await
            .unwrap();
        store.runner_register(&runner("live", true), std::slice::from_ref(&job)).await.unwrap();
        store.runner_register(&runner("quit", true), std::slice::from_ref(&job)).await.unwrap();
        store.runner_stop("quit").await.unwrap();

        let runners = store.runner_list().await.unwrap();
        assert_eq!(runner_named(&runners, "silent").state, RunnerState::Gone);
        assert_eq!(runner_named(&runners, "live").state, RunnerState::Live);
        let quit = runner_named(&runners, "quit");
        assert_eq!(quit.state, RunnerState::Stopped);
        let stopped_at = quit.stopped_at.expect("stopped_at");
        assert!(stopped_at <= store.db_now().await.unwrap());
        let jobs = store.registered_jobs(Some("x")).await.unwrap();
        assert_eq!(jobs[0].variants.len(), 1);
        assert_eq!(jobs[0].variants[0].runners, ["live"], "only live runners make variants");
        assert_eq!(jobs[0].runners.len(), 3);

        // Pruned after the retention period only: the silent runner and its jobs go.
        assert_eq!(store.runner_prune(Duration::from_secs(1800)).await.unwrap(), 1);
        let ids: Vec<String> = store.runner_list().await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["live", "quit"]);
        let jobs = store.registered_jobs(Some("x")).await.unwrap();
        let runners: Vec<&str> = jobs[0].runners.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(runners, ["live", "quit"]);
        assert_eq!(store.runner_prune(Duration::from_secs(1800)).await.unwrap(), 0);
    }
}

// ---- Overlap policy and concurrency limit (the guarded claim) ----

fn guard(overlap: cronlease::OverlapPolicy, max_running: Option<u32>) -> cronlease::ClaimGuard {
    cronlease::ClaimGuard {
        overlap,
        max_running,
        ..Default::default()
    }
}

async fn claim_guarded(
    store: &dyn Store,
    runner: &str,
    plans: Vec<PlanClaim>,
    guard: &cronlease::ClaimGuard,
) -> cronlease::store::GuardedClaim {
    store
        .execution_claim_guarded(&request(runner, plans), guard)
        .await
        .expect("guarded claim")
}

/// A plan time `secs` after `t`, whole milliseconds (the resolution of every backend).
fn after(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis() + secs * 1000).unwrap()
}

on_every_store! {
    async fn skip_records_a_plan_that_came_due_while_its_scope_ran(db: TestDb) {
        use cronlease::OverlapPolicy::Skip;
        let g = guard(Skip, None);
        let store = &*db.store;
        let first = claim_guarded(store, "a", vec![PlanClaim::new(scope(1), plan(0))], &g).await;
        assert_eq!(first.claimed.len(), 1);
        let running = first.claimed[0].clone();
        // Scope 1 is busy: its plan due after the attempt started is skipped and recorded; its
        // plan due before (backlog) waits without a row; scope 2 is free and starts.
        let fresh = after(running.started_at, 60);
        let out = claim_guarded(
            store,
            "b",
            vec![PlanClaim::new(scope(1), fresh), PlanClaim::new(scope(2), fresh)],
            &g,
        )
        .await;
        assert_eq!(out.claimed.len(), 1);
        assert_eq!(out.claimed[0].scope, scope(2));
        assert_eq!(out.skipped, vec![(scope(1), fresh)]);
        let rows = store
            .execution_list(&ExecutionFilter { job: Some(JOB.into()), scope: Some(scope(1)), ..Default::default() })
            .await
            .unwrap();
        let skipped = rows.iter().find(|r| r.plan_time == fresh).expect("a SKIPPED row");
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(skipped.error_code.as_deref(), Some(cronlease::SKIPPED_OVERLAP));
        assert!(skipped.finished_at.is_some() && skipped.started_at.is_none());
        // Offered again (another replica), the skipped plan is handled: nothing happens.
        let again = claim_guarded(store, "c", vec![PlanClaim::new(scope(1), fresh)], &g).await;
        assert!(again.claimed.is_empty() && again.skipped.is_empty() && again.waiting.is_empty());
        // Backlog (due before the attempt started) waits its turn, with no row.
        let backlog = claim_guarded(store, "c", vec![PlanClaim::new(scope(1), plan(1))], &g).await;
        assert_eq!(backlog.waiting, vec![(scope(1), plan(1))]);
        assert!(backlog.claimed.is_empty());
        // Once the scope's attempt ends, the backlog plan starts.
        store.execution_finish_success(&[success(running.lease)]).await.unwrap();
        let turn = claim_guarded(store, "c", vec![PlanClaim::new(scope(1), plan(1))], &g).await;
        assert_eq!(turn.claimed.len(), 1);
        let counts = store.execution_count_by_status(Some(JOB)).await.unwrap();
        assert!(counts.contains(&(Status::Skipped, 1)), "{counts:?}");
        // SKIPPED rows are finished for good: pruned with SUCCESS rows (once a newer plan of
        // the scope has a row: the newest row of a scope is kept for planning).
        claim_one(store, "c", scope(1), after(fresh, 60)).await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let pruned = store
            .execution_prune(cronlease::store::PruneSet::Finished, cronlease::store::PruneJobs::All, Duration::ZERO, 100)
            .await
            .unwrap();
        assert!(pruned >= 1);
        assert!(store.execution_get(skipped.id).await.unwrap().is_none());
    }
}

on_every_store! {
    async fn live_runners_with_different_specs_are_reported_not_overwritten(db: TestDb) {
        let store = &*db.store;
        let (old, new) = (described("x", "5m"), described("x", "10m"));
        assert_ne!(old.spec_hash, new.spec_hash);
        store.runner_register(&runner("a", true), std::slice::from_ref(&old)).await.unwrap();
        store.runner_register(&runner("b", true), std::slice::from_ref(&new)).await.unwrap();
        store.runner_register(&runner("c", true), std::slice::from_ref(&old)).await.unwrap();
        let job = store.registered_jobs(Some("x")).await.unwrap().remove(0);
        assert!(job.conflicting, "{job:?}");
        assert_eq!(job.variants.len(), 2);
        assert_eq!((job.variants[0].spec.clone(), job.variants[0].runners.clone()), (old.clone(), vec!["a".to_owned(), "c".to_owned()]));
        assert_eq!((job.variants[1].spec.clone(), job.variants[1].runners.clone()), (new.clone(), vec!["b".to_owned()]));

        // A gone runner with yet another spec does not make a conflict.
        db.skewed(TimeDelta::hours(-1))
            .runner_register(&runner("old", true), &[described("x", "15m")])
            .await
            .unwrap();
        // The rolling deploy completes: every live runner has the new spec.
        store.runner_register(&runner("a", false), std::slice::from_ref(&new)).await.unwrap();
        store.runner_register(&runner("c", false), std::slice::from_ref(&new)).await.unwrap();
        let job = store.registered_jobs(Some("x")).await.unwrap().remove(0);
        assert!(!job.conflicting, "{job:?}");
        assert_eq!(job.variants.len(), 1);
        assert_eq!(job.variants[0].runners, ["a", "b", "c"]);
        assert_eq!(job.spec, new);
        assert_eq!(job.runners.len(), 4);
    }
}

on_every_store! {
    async fn skip_holds_a_retry_until_its_scope_is_free(db: TestDb) {
        use cronlease::OverlapPolicy::Skip;
        let g = guard(Skip, None);
        let store = &*db.store;
        let failed = claim_one(store, "a", scope(1), plan(0)).await.remove(0);
        store.execution_finish_failure(&[failure(failed.lease, Status::Failed, Some(Duration::ZERO))]).await.unwrap();
        let running = claim_one(store, "a", scope(1), plan(1)).await.remove(0);
        let retry = claim_guarded(store, "b", vec![PlanClaim::new(scope(1), plan(0))], &g).await;
        assert_eq!(retry.waiting, vec![(scope(1), plan(0))]);
        assert_eq!(get(store, failed.lease.id).await.status, Status::Failed);
        store.execution_finish_success(&[success(running.lease)]).await.unwrap();
        let retry = claim_guarded(store, "b", vec![PlanClaim::new(scope(1), plan(0))], &g).await;
        assert_eq!(retry.claimed.len(), 1);
        assert_eq!(retry.claimed[0].outcome, ClaimOutcome::Retried);
    }
}

on_every_store! {
    async fn buffer_one_keeps_the_newest_plan_waiting_and_skips_older(db: TestDb) {
        use cronlease::OverlapPolicy::BufferOne;
        let g = guard(BufferOne, None);
        let store = &*db.store;
        let running = claim_guarded(store, "a", vec![PlanClaim::new(scope(1), plan(0))], &g).await.claimed.remove(0);
        let (older, newer) = (after(running.started_at, 60), after(running.started_at, 120));
        let out = claim_guarded(
            store,
            "b",
            vec![PlanClaim::new(scope(1), older), PlanClaim::new(scope(1), newer)],
            &g,
        )
        .await;
        assert!(out.claimed.is_empty());
        assert_eq!(out.skipped, vec![(scope(1), older)]);
        assert_eq!(out.waiting, vec![(scope(1), newer)]);
        store.execution_finish_success(&[success(running.lease)]).await.unwrap();
        let out = claim_guarded(store, "b", vec![PlanClaim::new(scope(1), newer)], &g).await;
        assert_eq!(out.claimed.len(), 1, "the buffered plan starts once the scope is free");
        let counts = store.execution_count_by_status(Some(JOB)).await.unwrap();
        assert!(counts.contains(&(Status::Skipped, 1)), "{counts:?}");
    }
}

on_every_store! {
    async fn cancel_other_closes_the_running_lease_and_starts_the_new_plan(db: TestDb) {
        use cronlease::OverlapPolicy::CancelOther;
        let g = guard(CancelOther, None);
        let store = &*db.store;
        let old = claim_guarded(store, "a", vec![PlanClaim::new(scope(1), plan(0))], &g).await.claimed.remove(0);
        let fresh = after(old.started_at, 60);
        let out = claim_guarded(store, "b", vec![PlanClaim::new(scope(1), fresh)], &g).await;
        assert_eq!(out.claimed.len(), 1);
        assert_eq!(out.cancelled, vec![(old.lease.id, old.lease.token)]);
        let row = get(store, old.lease.id).await;
        assert_eq!(row.status, Status::Superseded);
        assert_eq!(row.error_code.as_deref(), Some(cronlease::CANCELLED_OVERLAP));
        assert!(row.finished_at.is_some());
        // The old owner learns through its lease: its heartbeat finds it gone and its late
        // write is fenced out.
        let held = store.execution_heartbeat(&[Renewal { lease: old.lease, stale_timeout: STALE }]).await.unwrap();
        assert!(held.is_empty());
        assert!(store.execution_finish_success(&[success(old.lease)]).await.unwrap().is_empty());
        assert_eq!(get(store, old.lease.id).await.status, Status::Superseded);
    }
}

on_every_store! {
    async fn max_concurrent_defers_claims_beyond_the_limit(db: TestDb) {
        use cronlease::OverlapPolicy::AllowAll;
        let g = guard(AllowAll, Some(2));
        let store = &*db.store;
        let plans = (0..3).map(|i| PlanClaim::new(scope(i), plan(i as i64))).collect();
        let out = claim_guarded(store, "a", plans, &g).await;
        assert_eq!(out.claimed.len(), 2);
        // The newest plan is held back, with no row, not lost.
        assert_eq!(out.limited, vec![(scope(2), plan(2))]);
        let rows = store.execution_list(&ExecutionFilter { job: Some(JOB.into()), ..Default::default() }).await.unwrap();
        assert_eq!(rows.len(), 2);
        // Another replica is held back too, whatever it offers.
        let other = claim_guarded(store, "b", vec![PlanClaim::new(scope(7), plan(0))], &g).await;
        assert!(other.claimed.is_empty() && other.limited.len() == 1);
        store.execution_finish_success(&[success(out.claimed[0].lease)]).await.unwrap();
        let out = claim_guarded(store, "b", vec![PlanClaim::new(scope(2), plan(2))], &g).await;
        assert_eq!(out.claimed.len(), 1, "a slot freed: the deferred plan starts");
    }
}

on_every_store! {
    async fn concurrent_guarded_claims_never_overlap_a_scope_nor_exceed_the_limit(db: TestDb) {
        // Eight claimers at once, each offering the same four scopes at its own plan time
        // (all due now): under Skip with a limit of 3, at most one attempt per scope and three
        // in all may be RUNNING, whoever wins.
        let base = db.store.db_now().await.unwrap();
        let g = guard(cronlease::OverlapPolicy::Skip, Some(3));
        let tasks: Vec<_> = (0..8)
            .map(|k| {
                let store = db.store.clone();
                actix_rt::spawn(async move {
                    let plans = (0..4).map(|i| PlanClaim::new(scope(i), after(base, -100 + k))).collect();
                    let runner = format!("r{k}");
                    store.execution_claim_guarded(&request(&runner, plans), &g).await.expect("guarded claim").claimed.len()
                })
            })
            .collect();
        let mut started = 0;
        for task in tasks {
            started += task.await.unwrap();
        }
        let running = db.store
            .execution_list(&ExecutionFilter { job: Some(JOB.into()), status: Some(Status::Running), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(running.len(), started);
        assert!(running.len() <= 3, "{} running, limit 3", running.len());
        assert!(!running.is_empty());
        let mut scopes: Vec<_> = running.iter().map(|r| r.scope.clone()).collect();
        scopes.sort_by(|a, b| a.id.cmp(&b.id));
        scopes.dedup();
        assert_eq!(scopes.len(), running.len(), "two attempts of one scope ran at once");
    }
}

on_every_store! {
    async fn cancel_other_claims_never_deadlock_with_heartbeats_and_writes(db: TestDb) {
        // Owners renew and finish their leases in random-order batches while rivals cancel
        // them (CancelOther) with newer plans: every statement locks in the one global order.
        let mut claimed = Vec::new();
        for i in (0..60).rev() {
            claimed.push(claim_one(&*db.store, "owner", scope(i), plan(0)).await.remove(0));
        }
        let future = DateTime::from_timestamp(4_102_444_800, 0).unwrap();
        let g = guard(cronlease::OverlapPolicy::CancelOther, None);
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let store = db.store.clone();
                let claimed = claimed.clone();
                actix_rt::spawn(async move {
                    let mut deadlocks = 0;
                    for round in 0..6 {
                        let mut batch = claimed.clone();
                        fastrand::shuffle(&mut batch);
                        let outcome = if task % 2 == 0 {
                            let renewals: Vec<Renewal> = batch.iter().map(|c| Renewal { lease: c.lease, stale_timeout: STALE }).collect();
                            store.execution_heartbeat(&renewals).await.map(|_| ())
                        } else {
                            let at = after(future, (task * 10 + round) as i64);
                            let plans = batch.iter().take(20).map(|c| PlanClaim::new(c.scope.clone(), at)).collect();
                            store.execution_claim_guarded(&request("rival", plans), &g).await.map(|_| ())
                        };
                        match outcome {
                            Err(error) if is_deadlock(&error) => deadlocks += 1,
                            other => other.expect("a batched write"),
                        }
                    }
                    deadlocks
                })
            })
            .collect();
        let mut finishing = claimed.clone();
        fastrand::shuffle(&mut finishing);
        let mut deadlocks = 0;
        for chunk in finishing.chunks(20) {
            match db.store.execution_finish_success(&chunk.iter().map(|c| success(c.lease)).collect::<Vec<_>>()).await {
                Err(error) if is_deadlock(&error) => deadlocks += 1,
                other => { other.expect("a terminal write"); }
            }
        }
        for task in tasks {
            deadlocks += task.await.unwrap();
        }
        assert_eq!(deadlocks, 0, "the runtime's own statements deadlocked each other");
    }
}

on_every_store! {
    async fn latest_per_scope_gives_each_scopes_newest_row_in_scope_pages(db: TestDb) {
        let store = &*db.store;
        // tenant/1: an older success and a newer failure; tenant/2: one success; tenant/3: one
        // running; another job's row for tenant/1 must not show.
        let old = claim_one(store, "r", scope(1), plan(0)).await;
        store.execution_finish_success(&[success(old[0].lease)]).await.unwrap();
        let newer = claim_one(store, "r", scope(1), plan(2)).await;
        store
            .execution_finish_failure(&[failure(newer[0].lease, Status::Failed, Some(STALE))])
            .await
            .unwrap();
        let two = claim_one(store, "r", scope(2), plan(1)).await;
        store.execution_finish_success(&[success(two[0].lease)]).await.unwrap();
        let three = claim_one(store, "r", scope(3), plan(0)).await;
        let other = ClaimRequest { job: "another-job", ..request("r", vec![PlanClaim::new(scope(1), plan(9))]) };
        claim_with(store, other).await;

        let all = store.execution_latest_per_scope(JOB, None, 10).await.unwrap();
        let seen: Vec<_> = all.iter().map(|e| (e.scope.id.clone(), e.id, e.status)).collect();
        assert_eq!(
            seen,
            vec![
                ("1".to_owned(), newer[0].lease.id, Status::Failed),
                ("2".to_owned(), two[0].lease.id, Status::Success),
                ("3".to_owned(), three[0].lease.id, Status::Running),
            ]
        );
        assert!(all.iter().all(|e| e.job_name == JOB));

        let first = store.execution_latest_per_scope(JOB, None, 2).await.unwrap();
        assert_eq!(first.len(), 2);
        let after = first.last().map(|e| e.scope.clone());
        let rest = store.execution_latest_per_scope(JOB, after.as_ref(), 2).await.unwrap();
        let ids: Vec<_> = rest.iter().map(|e| e.scope.id.as_str()).collect();
        assert_eq!(ids, vec!["3"], "the second page starts after the first page's last scope");
        assert!(store.execution_latest_per_scope("nothing", None, 10).await.unwrap().is_empty());
    }
}

on_every_store! {
    async fn history_partitions_exist_only_on_a_converted_postgres_history(db: TestDb) {
        let today = db.store.db_now().await.unwrap().date_naive();
        match db.store.history_partitions().await.unwrap() {
            Some(state) => {
                assert_eq!(db.backend, "postgres");
                assert!(state.days.contains(&today), "{:?}", state.days);
                assert_eq!(db.store.history_partitions_create(&[today]).await.unwrap(), 0, "exists");
            }
            None => {
                // A plain history: nothing to create, drop or prune by partition.
                let err = db.store.history_partitions_create(&[today]).await.unwrap_err();
                let keep = cronlease::store::PartitionKeep::default();
                let drop = db.store.history_partition_drop(today, &keep).await;
                if db.backend == "postgres" {
                    assert!(err.to_string().contains("not partitioned"), "{err}");
                } else {
                    assert!(err.to_string().contains("needs PostgreSQL"), "{err}");
                    assert!(drop.unwrap_err().to_string().contains("needs PostgreSQL"));
                }
            }
        }
    }
}
