//! The dead-letter set through the public API: listing dead executions with their history,
//! replaying one plan or a filtered set (same row, same id, extended budget, history kept),
//! whatever the catch-up mode, from any replica, exactly once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, rows, scheduler};
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim, SuccessWrite};
use cronlease::{
    Backoff, CatchUp, ClaimOutcome, Error, ExecutionFilter, JobContext, JobError, JobOutput,
    JobSpec, Scope, Status, Store, floor_plan,
};
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);

/// A handler that fails permanently while `broken` is set, and otherwise succeeds with the
/// execution id and attempt it saw.
fn fixable(
    broken: Arc<AtomicBool>,
    runs: Runs,
) -> impl Fn(JobContext) -> std::future::Ready<Result<JobOutput, JobError>> + Send + Sync + 'static
{
    move |ctx: JobContext| {
        runs.record(&ctx);
        std::future::ready(if broken.load(Ordering::SeqCst) {
            Err(JobError::permanent("upstream schema changed"))
        } else {
            Ok(JobOutput::rows(1).with_result(serde_json::json!({
                "execution_id": ctx.execution_id(),
                "attempt": ctx.attempt(),
            })))
        })
    }
}

/// A DEAD row of `job` at `plan_time` whose one attempt failed permanently, written directly.
async fn dead_plan(store: &dyn Store, job: &str, scope: Scope, plan_time: DateTime<Utc>) -> Uuid {
    let claimed = store
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
        .execution_finish_failure(&[FailureWrite {
            lease: claimed.lease,
            status: Status::Dead,
            code: "permanent".into(),
            message: "bad input".into(),
            retry_in: None,
            extend_budget: false,
            duration_ms: 1,
        }])
        .await
        .unwrap();
    claimed.lease.id
}

fn job_filter(job: &str) -> ExecutionFilter {
    ExecutionFilter {
        job: Some(job.into()),
        ..ExecutionFilter::default()
    }
}

on_every_backend! {
    async fn a_replayed_plan_runs_again_with_the_same_id_and_its_history(db: TestDb) {
        let broken = Arc::new(AtomicBool::new(true));
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("report").every("1h").max_attempts(3).handler(fixable(broken.clone(), runs.clone())).build().unwrap())
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        s.wait_idle(Duration::from_secs(10)).await;
        let dead = s.dead_executions(&job_filter("report")).await.unwrap();
        assert_eq!(dead.len(), 1, "a permanent error dead-letters after one attempt");
        let id = dead[0].id;
        assert_eq!((dead[0].attempt, dead[0].max_attempts), (1, 3));
        assert_eq!(dead[0].failures.len(), 1);
        assert_eq!(dead[0].failures[0].code, "permanent");
        assert_eq!(dead[0].failures[0].message, "upstream schema changed");
        assert_eq!(s.dead_execution(id).await.unwrap(), dead[0]);
        // Nothing runs it again on its own.
        assert_eq!(s.tick_now().await.unwrap().started(), 0);

        broken.store(false, Ordering::SeqCst);
        let replayed = s.replay(id).await.unwrap();
        assert_eq!((replayed.id, replayed.status, replayed.max_attempts), (id, Status::Failed, 2));
        assert!(replayed.replayed_at.is_some());
        assert!(s.dead_executions(&job_filter("report")).await.unwrap().is_empty());
        let report = s.tick_now().await.unwrap();
        assert_eq!((report.retried, report.won), (1, 0), "{report:?}");
        s.wait_idle(Duration::from_secs(10)).await;

        let row = s.execution(id).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt), (Status::Success, 2), "{row:?}");
        assert_eq!(row.claim_outcome, ClaimOutcome::Replayed);
        assert_eq!(row.result["execution_id"], id.to_string(), "the same idempotency key");
        assert_eq!(row.failures.len(), 1, "history kept");
        assert_eq!(row.failures[0].code, "permanent");
        assert_eq!(runs.all().iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(runs.all()[0].1, runs.all()[1].1, "the same plan");
        assert_eq!(rows(&*db.store, "report").await.len(), 1, "one row per plan");

        // Errors: not dead any more, unknown id.
        match s.replay(id).await {
            Err(Error::NotDead { id: got, status }) => assert_eq!((got, status.as_str()), (id, "SUCCESS")),
            other => panic!("expected NotDead, got {other:?}"),
        }
        assert!(matches!(s.dead_execution(id).await, Err(Error::NotDead { .. })));
        let unknown = Uuid::now_v7();
        assert!(matches!(s.replay(unknown).await, Err(Error::ExecutionNotFound(u)) if u == unknown));
        assert!(matches!(s.dead_execution(unknown).await, Err(Error::ExecutionNotFound(_))));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn an_exhausted_plan_replayed_fails_again_with_its_whole_history(db: TestDb) {
        let runs = Runs::default();
        let recorder = runs.clone();
        let s = scheduler(db.store.clone())
            .replay_attempts(2)
            .job(
                JobSpec::builder("flaky")
                    .every("1h")
                    .max_attempts(2)
                    .backoff(Backoff::list(["0s"]).unwrap())
                    .handler(move |ctx: JobContext| {
                        recorder.record(&ctx);
                        std::future::ready(Err::<JobOutput, _>(JobError::retryable(format!("attempt {} failed", ctx.attempt()))))
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let drive = || async {
            let started = s.tick_now().await.unwrap().started();
            s.wait_idle(Duration::from_secs(10)).await;
            started
        };
        assert_eq!((drive().await, drive().await, drive().await), (1, 1, 0));
        let dead = s.dead_executions(&job_filter("flaky")).await.unwrap().remove(0);
        assert_eq!((dead.attempt, dead.max_attempts, dead.failures.len()), (2, 2, 2));

        let replayed = s.replay(dead.id).await.unwrap();
        assert_eq!(replayed.max_attempts, 4, "two more attempts");
        assert_eq!((drive().await, drive().await, drive().await), (1, 1, 0));
        let row = s.dead_execution(dead.id).await.unwrap();
        assert_eq!((row.attempt, row.max_attempts), (4, 4));
        assert_eq!(row.failures.iter().map(|f| f.attempt).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(row.failures[3].message, "attempt 4 failed");
        for f in &row.failures {
            assert_eq!(f.code, "handler_error");
            assert!(f.started_at.unwrap() <= f.finished_at.unwrap());
        }
        assert_eq!(runs.len(), 4);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_replayed_old_plan_runs_whatever_the_catch_up_mode(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let old = latest - TimeDelta::hours(3);
        let mut dead = Vec::new();
        for job in ["latest-only", "narrow-window"] {
            dead.push(dead_plan(&*db.store, job, Scope::global(), old).await);
            // The latest plan is done, so the dead plan is neither current nor in the window.
            let ok = db.store.execution_claim(&ClaimRequest {
                job,
                max_attempts: 3,
                runner_id: "earlier",
                stale_timeout: HOUR,
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: vec![PlanClaim::new(Scope::global(), latest)],
            }).await.unwrap().remove(0);
            db.store.execution_finish_success(&[SuccessWrite { lease: ok.lease, duration_ms: 1, rows_affected: 0, result: "{}".into() }]).await.unwrap();
        }
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("latest-only").every("1h").handler(runs.ok_handler()).build().unwrap())
            .job(
                JobSpec::builder("narrow-window")
                    .every("1h")
                    .catch_up(CatchUp::EveryPlan { window: HOUR, max_plans_per_tick: 4 })
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().started(), 0);
        for id in &dead {
            s.replay(*id).await.unwrap();
        }
        let report = s.tick_now().await.unwrap();
        assert_eq!((report.retried, report.won), (2, 0), "{report:?}");
        s.wait_idle(Duration::from_secs(10)).await;
        for id in dead {
            let row = s.execution(id).await.unwrap().unwrap();
            assert_eq!((row.status, row.attempt, row.plan_time), (Status::Success, 2, old));
        }
        assert_eq!(runs.all(), vec![("global".to_owned(), old, 2); 2]);
        assert_eq!(s.tick_now().await.unwrap().started(), 0, "and only once");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn replay_where_replays_the_filtered_set(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let at = |h: i64| latest - TimeDelta::hours(h);
        let a3 = dead_plan(&*db.store, "a", Scope::global(), at(3)).await;
        let a2 = dead_plan(&*db.store, "a", Scope::global(), at(2)).await;
        let a1 = dead_plan(&*db.store, "a", Scope::global(), at(1)).await;
        let a1_tenant = dead_plan(&*db.store, "a", Scope::new("tenant", "7"), at(1)).await;
        let b1 = dead_plan(&*db.store, "b", Scope::global(), at(1)).await;
        let s = scheduler(db.store.clone()).start().await.unwrap();
        let ids = |rows: Vec<cronlease::Execution>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();

        // Job, scope and a plan-time range [at(2), at(0)).
        let in_range = ExecutionFilter {
            job: Some("a".into()),
            scope: Some(Scope::global()),
            plan_from: Some(at(2)),
            plan_before: Some(latest),
            status: Some(Status::Success), // ignored: only dead rows are replayed
            ..ExecutionFilter::default()
        };
        assert_eq!(ids(s.dead_executions(&in_range).await.unwrap()), vec![a1, a2]);
        assert_eq!(ids(s.replay_where(&in_range).await.unwrap()), vec![a1, a2], "newest plan first");
        assert!(s.replay_where(&in_range).await.unwrap().is_empty(), "replayed rows are not dead");
        // At most `limit` per call.
        let one = ExecutionFilter { limit: 1, ..job_filter("a") };
        assert_eq!(ids(s.replay_where(&one).await.unwrap()), vec![a1_tenant]);
        assert_eq!(ids(s.replay_where(&one).await.unwrap()), vec![a3]);
        assert!(s.replay_where(&one).await.unwrap().is_empty());
        assert_eq!(ids(s.dead_executions(&ExecutionFilter::default()).await.unwrap()), vec![b1], "other jobs untouched");
        for id in [a1, a2, a3, a1_tenant] {
            assert_eq!(s.execution(id).await.unwrap().unwrap().status, Status::Failed);
        }
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn concurrent_replays_from_several_replicas_run_the_plan_once(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let id = dead_plan(&*db.store, "shared", Scope::global(), latest).await;
        let runs = Runs::default();
        let spec = || JobSpec::builder("shared").every("1h").handler(runs.ok_handler()).build().unwrap();
        let a = scheduler(db.store.clone()).runner_id("a").job(spec()).start().await.unwrap();
        let b = scheduler(db.store.clone()).runner_id("b").job(spec()).start().await.unwrap();
        // An operator's process that runs no jobs can replay too.
        let admin = scheduler(db.store.clone()).runner_id("admin").start().await.unwrap();
        let (ra, rb, rc) = tokio::join!(a.replay(id), b.replay(id), admin.replay(id));
        let results = [ra, rb, rc];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert_eq!(results.iter().filter(|r| matches!(r, Err(Error::NotDead { .. }))).count(), 2);
        assert_eq!(db.store.execution_get(id).await.unwrap().unwrap().max_attempts, 2, "budget extended once");
        let (ta, tb) = tokio::join!(a.tick_now(), b.tick_now());
        assert_eq!(ta.unwrap().started() + tb.unwrap().started(), 1);
        a.wait_idle(Duration::from_secs(10)).await;
        b.wait_idle(Duration::from_secs(10)).await;
        assert_eq!(runs.all(), vec![("global".to_owned(), latest, 2)]);
        assert_eq!(db.store.execution_get(id).await.unwrap().unwrap().status, Status::Success);
        for s in [a, b, admin] {
            s.shutdown().await;
        }
    }
}

on_every_backend! {
    async fn a_swept_non_reentrant_plan_runs_again_only_when_replayed(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        common::orphan(&*db.store, "once-only", latest, Duration::from_secs(1), false).await;
        let runs = Runs::default();
        let survivor = scheduler(db.skewed(TimeDelta::seconds(10)))
            .job(JobSpec::builder("once-only").every("1h").allow_stale_reentry(false).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        assert_eq!(survivor.tick_now().await.unwrap().swept, 1);
        let dead = survivor.dead_executions(&job_filter("once-only")).await.unwrap().remove(0);
        assert_eq!(dead.failures.len(), 1);
        assert_eq!(dead.failures[0].code, "stale_timeout");
        assert_eq!(survivor.tick_now().await.unwrap().started(), 0);
        survivor.replay(dead.id).await.unwrap();
        assert_eq!(survivor.tick_now().await.unwrap().retried, 1);
        survivor.wait_idle(Duration::from_secs(10)).await;
        let row = survivor.execution(dead.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt, row.claim_outcome), (Status::Success, 2, ClaimOutcome::Replayed));
        assert_eq!(row.failures, dead.failures, "history kept");
        assert_eq!(runs.len(), 1);
        survivor.shutdown().await;
    }
}
