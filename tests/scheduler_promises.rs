//! The promises a new user relies on, played with the default settings and real timers
//! (`auto_tick` on, the default 30 s tick interval) wherever the scenario allows: failed plans
//! are retried at their backoff time until SUCCESS or DEAD in every catch-up mode, no row is
//! stranded FAILED, the actors' bookkeeping survives races, and one job's bad planning code
//! never stops another job.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{FlakyStore, Runs, SlowFailureReplies, eventually, rows, scheduler};
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim};
use cronlease::{
    Backoff, CatchUp, Execution, JobContext, JobError, JobOutput, JobSpec, Scheduler, Scope,
    Scopes, Status, Store,
};

/// A scheduler as a user starts one: automatic ticks, default tick interval.
fn real(store: Arc<dyn Store>) -> cronlease::SchedulerBuilder {
    scheduler(store)
        .auto_tick(true)
        .shutdown_grace(Duration::from_millis(200))
}

fn failing(
    runs: Runs,
) -> impl Fn(JobContext) -> std::future::Ready<Result<JobOutput, JobError>> + Send + Sync + 'static
{
    move |ctx: JobContext| {
        runs.record(&ctx);
        std::future::ready(Err(JobError::retryable(format!(
            "attempt {} failed",
            ctx.attempt()
        ))))
    }
}

fn row_of(rows: &[Execution], plan_time: DateTime<Utc>) -> Option<&Execution> {
    rows.iter().find(|r| r.plan_time == plan_time)
}

/// The plan time of the first attempt `runs` saw.
async fn first_plan(runs: &Runs) -> DateTime<Utc> {
    eventually(10, "a first attempt", || async {
        runs.all().first().map(|r| r.1)
    })
    .await
}

/// Waits up to `secs` for the row of `job`'s plan `plan_time` to be `done`, and returns it.
async fn row_when(
    store: &dyn Store,
    job: &str,
    plan_time: DateTime<Utc>,
    secs: u64,
    what: &str,
    done: impl Fn(&Execution) -> bool,
) -> Execution {
    eventually(secs, what, || async {
        let rows = rows(store, job).await;
        row_of(&rows, plan_time).filter(|r| done(r)).cloned()
    })
    .await
}

/// The attempts of one plan run back to back at their backoff times and end DEAD; each retry
/// starts after the previous attempt's `next_retry_at`, never before.
async fn retried_until_dead(db: &common::TestDb, catch_up: CatchUp, cadence: &str) {
    let runs = Runs::default();
    let s = real(db.store.clone())
        .job(
            JobSpec::builder("retried")
                .every(cadence)
                .catch_up(catch_up)
                .max_attempts(3)
                .backoff(Backoff::list(["1s", "1s"]).unwrap())
                .handler(failing(runs.clone()))
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    let first = first_plan(&runs).await;
    let dead = row_when(
        &*db.store,
        "retried",
        first,
        20,
        "the first plan to be dead-lettered",
        |r| r.status == Status::Dead,
    )
    .await;
    s.shutdown().await;
    assert_eq!(dead.attempt, 3, "{dead:?}");
    assert_eq!(dead.failures.len(), 3, "every attempt is in the history");
    for pair in dead.failures.windows(2) {
        let gap = pair[1].started_at.unwrap() - pair[0].finished_at.unwrap();
        assert!(
            gap >= chrono::TimeDelta::seconds(1),
            "a retry started before its backoff passed: {gap}"
        );
        println!(
            "retry [{} {cadence}]: attempt {} started {} ms after attempt {} ended (backoff 1 s)",
            db.backend,
            pair[1].attempt,
            gap.num_milliseconds(),
            pair[0].attempt
        );
    }
    let attempts: Vec<u32> = runs
        .all()
        .iter()
        .filter(|r| r.1 == first)
        .map(|r| r.2)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3], "each attempt ran once");
}

on_every_backend! {
    async fn latest_only_retries_at_the_backoff_time_until_dead(db: TestDb) {
        // A cadence longer than the whole retry sequence: the retries must not wait for a plan boundary.
        retried_until_dead(&db, CatchUp::LatestOnly, "1m").await;
    }
}

on_every_backend! {
    async fn latest_only_retries_even_when_newer_plans_exist(db: TestDb) {
        // A cadence shorter than the backoff: newer plans are created before each retry is due.
        retried_until_dead(&db, CatchUp::LatestOnly, "1s").await;
    }
}

on_every_backend! {
    async fn every_plan_retries_old_plans_outside_its_window(db: TestDb) {
        // The window is shorter than the retry sequence: catch-up bounds only never-started plans.
        let every_plan = CatchUp::EveryPlan { window: Duration::from_millis(500), max_plans_per_tick: 1 };
        retried_until_dead(&db, every_plan, "1s").await;
    }
}

/// Fails the first plan it sees, succeeds for every other plan.
fn fails_first_plan(
    runs: Runs,
) -> impl Fn(JobContext) -> std::future::Ready<Result<JobOutput, JobError>> + Send + Sync + 'static
{
    move |ctx: JobContext| {
        runs.record(&ctx);
        let first = runs.all()[0].1;
        std::future::ready(if ctx.plan_time() == first {
            Err(JobError::retryable("the source was down"))
        } else {
            Ok(JobOutput::rows(1))
        })
    }
}

on_every_backend! {
    async fn opted_in_jobs_close_failed_plans_a_newer_success_superseded(db: TestDb) {
        let spec = |name: &str, supersede: bool, runs: &Runs| {
            JobSpec::builder(name)
                .every("1s")
                .backoff(Backoff::list(["1h"]).unwrap())
                .supersede_failed(supersede)
                .handler(fails_first_plan(runs.clone()))
                .build()
                .unwrap()
        };
        let runs = Runs::default();
        let s = real(db.store.clone()).job(spec("refresh", true, &runs)).start().await.unwrap();
        let first = first_plan(&runs).await;
        let closed = row_when(&*db.store, "refresh", first, 10, "the failed plan to be superseded", |r| {
            r.status == Status::Superseded
        })
        .await;
        s.shutdown().await;
        assert_eq!((closed.attempt, closed.next_retry_at), (1, None), "{closed:?}");
        assert_eq!(closed.failures.len(), 1, "its failure stays in the history");
        assert!(closed.finished_at.is_some());
        let newer = rows(&*db.store, "refresh").await;
        assert!(newer.iter().any(|r| r.plan_time > first && r.status == Status::Success));

        // Without opting in, the same failed plan keeps its retry, an hour ahead.
        let plain = Runs::default();
        let s = real(db.store.clone()).job(spec("plain", false, &plain)).start().await.unwrap();
        let first = first_plan(&plain).await;
        eventually(10, "a newer plan to succeed", || async {
            let rows = rows(&*db.store, "plain").await;
            rows.iter().any(|r| r.plan_time > first && r.status == Status::Success).then_some(())
        })
        .await;
        s.tick_now().await.unwrap();
        s.shutdown().await;
        let rows = rows(&*db.store, "plain").await;
        let kept = row_of(&rows, first).unwrap();
        assert_eq!(kept.status, Status::Failed, "{kept:?}");
        assert!(kept.next_retry_at.is_some(), "a FAILED row always has a retry ahead");
    }
}

on_every_backend! {
    async fn a_replayed_plan_that_fails_again_is_retried_until_dead(db: TestDb) {
        let runs = Runs::default();
        let s = real(db.store.clone())
            .replay_attempts(2)
            .job(
                JobSpec::builder("replayed")
                    .every("1s")
                    .max_attempts(1)
                    .backoff(Backoff::list(["200ms"]).unwrap())
                    .handler(failing(runs.clone()))
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let first = first_plan(&runs).await;
        let dead = row_when(&*db.store, "replayed", first, 10, "the first plan to be dead", |r| r.status == Status::Dead).await;
        // Newer plans exist by now; the replayed old plan fails again and must still go on.
        eventually(10, "a newer plan", || async {
            rows(&*db.store, "replayed").await.iter().any(|r| r.plan_time > first).then_some(())
        })
        .await;
        s.replay(dead.id).await.unwrap();
        let again = row_when(&*db.store, "replayed", first, 10, "the replayed plan to be dead again", |r| {
            r.status == Status::Dead && r.attempt == 3
        })
        .await;
        s.shutdown().await;
        assert_eq!((again.id, again.max_attempts), (dead.id, 3), "{again:?}");
        assert_eq!(again.failures.len(), 3);
        let attempts: Vec<u32> = runs.all().iter().filter(|r| r.1 == first).map(|r| r.2).collect();
        assert_eq!(attempts, vec![1, 2, 3]);
    }
}

on_every_backend! {
    async fn a_hook_jobs_latest_retry_is_not_starved_by_older_failures(db: TestDb) {
        // Older failed plans are due before the latest one; one execution slot.
        let now = db.store.db_now().await.unwrap();
        let latest = cronlease::floor_plan(now, Duration::from_secs(60));
        let mut plans: Vec<_> = (1..=3).map(|m| latest - chrono::TimeDelta::minutes(m)).collect();
        plans.push(latest);
        for plan_time in &plans {
            let claimed = db
                .store
                .execution_claim(&ClaimRequest {
                    job: "hooked",
                    max_attempts: 5,
                    runner_id: "earlier-runner",
                    stale_timeout: Duration::from_secs(60),
                    allow_stale_reentry: true,
                    steal_not_after: None,
                    plans: vec![PlanClaim::new(Scope::global(), *plan_time)],
                })
                .await
                .unwrap();
            db.store
                .execution_finish_failure(&[FailureWrite {
                    lease: claimed[0].lease,
                    status: Status::Failed,
                    code: "handler_error".into(),
                    message: "boom".into(),
                    retry_in: Some(Duration::ZERO),
                    extend_budget: false,
                    duration_ms: 1,
                }])
                .await
                .unwrap();
        }
        let runs = Runs::default();
        let s = real(db.store.clone())
            .max_concurrent_executions(1)
            .job(
                JobSpec::builder("hooked")
                    .planner(move |_, _, _| Ok(vec![latest]))
                    .max_attempts(5)
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let rows = eventually(20, "every failed plan to succeed", || async {
            let rows = rows(&*db.store, "hooked").await;
            rows.iter().all(|r| r.status == Status::Success).then_some(rows)
        })
        .await;
        s.shutdown().await;
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.attempt == 2), "{rows:?}");
    }
}

on_every_backend! {
    async fn a_finished_result_keeps_its_lease_while_its_write_is_retried(db: TestDb) {
        // The owner's success write meets a blip far longer than run_timeout + one heartbeat;
        // a second runner ticks every 100 ms, ready to sweep a lease that goes stale.
        let flaky = Arc::new(FlakyStore { inner: db.store.clone(), fail_finishes: AtomicUsize::new(0) });
        let runs = Runs::default();
        let spec = |runs: &Runs| {
            JobSpec::builder("slow-write")
                .every("1h")
                .run_timeout(Duration::from_millis(500))
                .stale_timeout(Duration::from_millis(1500))
                .heartbeat_interval(Duration::from_millis(250))
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let owner = scheduler(flaky.clone())
            .db_retry(cronlease::DbRetry {
                initial: Duration::from_millis(300),
                max: Duration::from_millis(300),
                give_up_after: Duration::from_secs(60),
            })
            .job(spec(&runs))
            .start()
            .await
            .unwrap();
        flaky.fail_finishes.store(12, Ordering::SeqCst); // about 3.6 s of failing writes
        owner.tick_now().await.unwrap();
        let thief_runs = Runs::default();
        let thief = real(db.store.clone()).tick_interval(Duration::from_millis(100)).job(spec(&thief_runs)).start().await.unwrap();
        let row = eventually(20, "the success to be recorded", || async {
            let rows = rows(&*db.store, "slow-write").await;
            rows.first().filter(|r| r.status != Status::Running).cloned()
        })
        .await;
        thief.shutdown().await;
        owner.shutdown().await;
        assert_eq!(flaky.fail_finishes.load(Ordering::SeqCst), 0, "the blip outlasted the attempt");
        assert_eq!((row.status, row.attempt), (Status::Success, 1), "{row:?}");
        assert!(row.failures.is_empty(), "{row:?}");
        assert_eq!(thief_runs.len(), 0, "the plan ran once");
    }
}

on_every_backend! {
    async fn a_lease_lost_while_another_job_plans_cancels_the_handler(db: TestDb) {
        // Job `held` starts its attempt while job `slow` waits for its scope provider; the lease
        // is taken over meanwhile by a runner whose database clock is an hour ahead.
        let cancelled = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let held = |cancelled: Arc<AtomicBool>, started: Arc<AtomicBool>| {
            JobSpec::builder("held")
                .every("1h")
                .run_timeout(Duration::from_secs(8))
                .stale_timeout(Duration::from_secs(9))
                .heartbeat_interval(Duration::from_millis(200))
                .handler(move |ctx: JobContext| {
                    let (cancelled, started) = (cancelled.clone(), started.clone());
                    async move {
                        started.store(true, Ordering::SeqCst);
                        let token = ctx.cancellation_token();
                        tokio::select! {
                            _ = token.cancelled() => cancelled.store(true, Ordering::SeqCst),
                            _ = tokio::time::sleep(Duration::from_secs(8)) => {}
                        }
                        Ok(JobOutput::rows(0))
                    }
                })
                .build()
                .unwrap()
        };
        let owner = scheduler(db.store.clone())
            .job(held(cancelled.clone(), started.clone()))
            .job(
                JobSpec::builder("slow")
                    .every("1h")
                    .scopes(Scopes::provider(|| async {
                        tokio::time::sleep(Duration::from_secs(4)).await;
                        Ok(vec![Scope::global()])
                    }))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let ticking = owner.clone();
        let tick = actix_rt::spawn(async move { ticking.tick_now().await });
        eventually(10, "the attempt to start", || async { started.load(Ordering::SeqCst).then_some(()) }).await;
        let thief = scheduler(db.skewed(chrono::TimeDelta::hours(1)))
            .job(held(Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))))
            .start()
            .await
            .unwrap();
        let report = thief.tick_now().await.unwrap();
        assert_eq!((report.swept, report.retried), (1, 1), "the plan was taken over: {report:?}");
        eventually(3, "the owner's handler to be cancelled", || async { cancelled.load(Ordering::SeqCst).then_some(()) }).await;
        assert!(!tick.is_finished(), "the owner's tick was still running when the lease was lost");
        tick.await.unwrap().unwrap();
        thief.shutdown().await;
        owner.shutdown().await;
    }
}

on_every_backend! {
    async fn a_late_end_of_attempt_one_does_not_forget_attempt_two(db: TestDb) {
        // Attempt 1's failure is written at once but its reply comes late, after attempt 2 of the
        // same row started on the same runner.
        let slow = Arc::new(SlowFailureReplies { inner: db.store.clone(), failure_reply_delay_ms: AtomicU64::new(1500) });
        let release = Arc::new(AtomicBool::new(false));
        let gate = release.clone();
        let s = scheduler(slow.clone())
            .job(
                JobSpec::builder("twice")
                    .every("1h")
                    .backoff(Backoff::list(["0s"]).unwrap())
                    .handler(move |ctx: JobContext| {
                        let gate = gate.clone();
                        async move {
                            if ctx.attempt() == 1 {
                                return Err(JobError::retryable("first attempt fails"));
                            }
                            while !gate.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            Ok(JobOutput::rows(2))
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        eventually(10, "attempt 1 to be written", || async {
            rows(&*db.store, "twice").await.first().filter(|r| r.status == Status::Failed).map(|_| ())
        })
        .await;
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.retried, 1, "attempt 2 started while attempt 1's reply is still on its way");
        // Attempt 1's reply arrives; attempt 2 is still running and must still be supervised.
        actix_rt::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(s.running().await.unwrap(), 1, "attempt 2 is still counted as running");
        release.store(true, Ordering::SeqCst);
        let row = eventually(10, "attempt 2 to succeed", || async {
            rows(&*db.store, "twice").await.first().filter(|r| r.status == Status::Success).cloned()
        })
        .await;
        assert_eq!(row.attempt, 2);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_shutdown_during_a_tick_starts_no_new_attempt(db: TestDb) {
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("late")
                    .every("1h")
                    .scopes(Scopes::provider(|| async {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                        Ok(vec![Scope::global()])
                    }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let ticking = s.clone();
        let tick = actix_rt::spawn(async move { ticking.tick_now().await });
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        s.shutdown().await;
        let _ = tick.await;
        assert_eq!(runs.len(), 0, "no handler ran");
        let rows = rows(&*db.store, "late").await;
        assert!(rows.iter().all(|r| r.status != Status::Running), "{rows:?}");
        assert!(rows.iter().all(|r| r.status != Status::Success), "{rows:?}");
    }
}

/// A job every second whose runs are recorded, to show it keeps running.
fn healthy(runs: &Runs) -> JobSpec {
    JobSpec::builder("healthy")
        .every("1s")
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

async fn healthy_keeps_running(s: &Scheduler, runs: &Runs) {
    let before = runs.len();
    eventually(10, "the healthy job to run twice more", || async {
        (runs.len() >= before + 2).then_some(())
    })
    .await;
    s.tick_now().await.expect("the scheduler still answers");
}

on_every_backend! {
    async fn a_panicking_scope_provider_costs_only_its_own_job(db: TestDb) {
        let runs = Runs::default();
        let s = real(db.store.clone())
            .job(healthy(&runs))
            .job(
                JobSpec::builder("broken-provider")
                    .every("1s")
                    .scopes(Scopes::provider(|| async { panic!("tenant table missing") }))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .job(
                JobSpec::builder("broken-hook")
                    .planner(|_, _, _| panic!("bad hook"))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        healthy_keeps_running(&s, &runs).await;
        let report = s.tick_now().await.unwrap();
        assert!(report.job_errors >= 2, "{report:?}");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_hanging_scope_provider_does_not_delay_other_jobs(db: TestDb) {
        let runs = Runs::default();
        let s = real(db.store.clone())
            .job(healthy(&runs))
            .job(
                JobSpec::builder("hanging")
                    .every("1s")
                    .planning_timeout(Duration::from_secs(30))
                    .scopes(Scopes::provider(|| async {
                        std::future::pending::<()>().await;
                        Ok(vec![])
                    }))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let before = runs.len();
        eventually(10, "the healthy job to run three more plans", || async { (runs.len() >= before + 3).then_some(()) }).await;
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_scope_that_cannot_be_stored_is_skipped_and_the_others_run(db: TestDb) {
        let runs = Runs::default();
        let s = real(db.store.clone())
            .job(
                JobSpec::builder("tenants")
                    .every("1h")
                    .scopes(Scopes::provider(|| async {
                        Ok(vec![
                            Scope::new("tenant", "1"),
                            Scope::new("tenant", "nul\0byte"),
                            Scope::new("tenant", "x".repeat(6000)),
                            Scope::new("", "empty-kind"),
                            Scope::new("tenant", "2"),
                        ])
                    }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let rows = eventually(10, "the valid scopes to run", || async {
            let rows = rows(&*db.store, "tenants").await;
            (rows.len() == 2 && rows.iter().all(|r| r.status == Status::Success)).then_some(rows)
        })
        .await;
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.job_errors, 3, "{report:?}");
        s.shutdown().await;
        let mut ids: Vec<_> = rows.iter().map(|r| r.scope.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, vec!["1", "2"]);
    }
}
