//! Leases through the public API: heartbeats, crash recovery, stealing, non-reentrant jobs,
//! fresh lease stamps and lease loss.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use common::{Runs, eventually, rows, scheduler, settled};
use cronlease::store::{ClaimRequest, PlanClaim, SuccessWrite};
use cronlease::{ClaimOutcome, JobContext, JobOutput, JobSpec, Scope, Scopes, Status, floor_plan};

const HOUR: Duration = Duration::from_secs(3600);

/// A job whose handler sleeps `run` and whose lease lives `stale` without heartbeat.
fn sleeper(
    name: &str,
    run: Duration,
    stale: Duration,
    heartbeat: Duration,
    runs: &Runs,
) -> JobSpec {
    let runs = runs.clone();
    JobSpec::builder(name)
        .every("1h")
        .run_timeout(run + Duration::from_millis(300))
        .stale_timeout(stale)
        .heartbeat_interval(heartbeat)
        .handler(move |ctx: JobContext| {
            let runs = runs.clone();
            async move {
                actix_rt::time::sleep(run).await;
                runs.record(&ctx);
                Ok(JobOutput::rows(1))
            }
        })
        .build()
        .unwrap()
}

/// Ticks a runner whose database clock is `ahead` of the owner's every 50 ms for `how_long`,
/// returning how many leases it took.
async fn thief_ticks(
    db: &common::TestDb,
    job: JobSpec,
    ahead: TimeDelta,
    how_long: Duration,
) -> usize {
    let thief = scheduler(db.skewed(ahead))
        .runner_id("thief")
        .job(job)
        .start()
        .await
        .unwrap();
    let mut taken = 0;
    let until = std::time::Instant::now() + how_long;
    while std::time::Instant::now() < until {
        let report = thief.tick_now().await.unwrap();
        taken += report.started() + report.swept;
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    thief.shutdown().await;
    taken
}

on_every_backend! {
    async fn heartbeats_keep_a_long_attempt_from_being_taken_over(db: TestDb) {
        // The thief lives 1.5 s in the future: without renewal the 2 s lease looks stale to it
        // 0.5 s after the start, long before the 1.4 s handler ends.
        let runs = Runs::default();
        let owner = scheduler(db.store.clone())
            .runner_id("owner")
            .job(sleeper("beating", Duration::from_millis(1400), Duration::from_secs(2), Duration::from_millis(150), &runs))
            .start()
            .await
            .unwrap();
        assert_eq!(owner.tick_now().await.unwrap().won, 1);
        let thief_runs = Runs::default();
        let job = sleeper("beating", Duration::from_millis(1400), Duration::from_secs(2), Duration::from_millis(150), &thief_runs);
        let taken = thief_ticks(&db, job, TimeDelta::milliseconds(1500), Duration::from_millis(1300)).await;
        assert_eq!(taken, 0, "the renewed lease was never stale");
        let row = settled(&*db.store, "beating", 1).await.remove(0);
        assert_eq!((row.status, row.attempt, row.runner_id.as_str()), (Status::Success, 1, "owner"));
        assert_eq!(runs.len() + thief_runs.len(), 1);
        owner.shutdown().await;
    }
}

on_every_backend! {
    async fn a_blocking_handler_does_not_stall_heartbeats(db: TestDb) {
        // Handlers run on their own runtime: a handler that blocks its thread for 1.4 s must not
        // stop the actors from renewing its 2 s lease (the thief sees it stale after 0.5 s
        // without renewal).
        let runs = Runs::default();
        let record = runs.clone();
        let blocking = JobSpec::builder("blocking")
            .every("1h")
            .run_timeout(Duration::from_millis(1700))
            .stale_timeout(Duration::from_secs(2))
            .heartbeat_interval(Duration::from_millis(150))
            .handler(move |ctx: JobContext| {
                std::thread::sleep(Duration::from_millis(1400));
                record.record(&ctx);
                async { Ok(JobOutput::rows(1)) }
            })
            .build()
            .unwrap();
        let owner = scheduler(db.store.clone())
            .runner_id("owner")
            .handler_threads(1)
            .job(blocking)
            .start()
            .await
            .unwrap();
        assert_eq!(owner.tick_now().await.unwrap().won, 1);
        // This code runs on the actors' arbiter: if the handler blocked it, we would only get
        // here after the handler returned.
        actix_rt::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(runs.len(), 0, "the handler is still blocking its own thread");
        let row = rows(&*db.store, "blocking").await.remove(0);
        assert!(row.heartbeat_at.unwrap() > row.started_at.unwrap(), "the lease was renewed meanwhile");
        let row = settled(&*db.store, "blocking", 1).await.remove(0);
        assert_eq!((row.status, row.attempt, row.runner_id.as_str()), (Status::Success, 1, "owner"));
        assert_eq!(runs.len(), 1);
        owner.shutdown().await;
    }
}

on_every_backend! {
    async fn without_heartbeats_the_same_lease_is_taken_over(db: TestDb) {
        // Control for the test above: a heartbeat interval longer than the attempt means no
        // renewal, and the thief takes the lease.
        let runs = Runs::default();
        let owner = scheduler(db.store.clone())
            .runner_id("owner")
            .job(sleeper("silent", Duration::from_millis(1400), Duration::from_secs(2), Duration::from_millis(1900), &runs))
            .start()
            .await
            .unwrap();
        assert_eq!(owner.tick_now().await.unwrap().won, 1);
        let job = sleeper("silent", Duration::from_millis(100), Duration::from_secs(2), Duration::from_millis(1900), &Runs::default());
        let taken = thief_ticks(&db, job, TimeDelta::milliseconds(1500), Duration::from_millis(1300)).await;
        assert!(taken >= 1, "the unrenewed lease went stale");
        owner.shutdown().await;
    }
}

on_every_backend! {
    async fn a_dead_runners_plan_is_rerun_once_as_attempt_two(db: TestDb) {
        // A runner claimed the plan, then died: its row stays RUNNING with a 1 s lease.
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let dead = common::orphan(&*db.store, "recover", latest, Duration::from_secs(1), true).await;
        let runs = Runs::default();
        // A survivor ten seconds later (by the database clock) sweeps and re-runs it.
        let survivor = scheduler(db.skewed(TimeDelta::seconds(10)))
            .runner_id("survivor")
            .job(JobSpec::builder("recover").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = survivor.tick_now().await.unwrap();
        assert_eq!((report.swept, report.retried, report.won), (1, 1, 0), "{report:?}");
        let row = settled(&*db.store, "recover", 1).await.remove(0);
        assert_eq!(row.id, dead.lease.id);
        assert_eq!((row.status, row.attempt, row.plan_time), (Status::Success, 2, latest));
        assert_eq!(row.runner_id, "survivor");
        assert_eq!(row.failures.len(), 1);
        assert_eq!(row.failures[0].code, "stale_timeout");
        // Exactly once: more ticks run nothing.
        assert_eq!(survivor.tick_now().await.unwrap().started(), 0);
        assert_eq!(runs.all(), vec![("global".to_owned(), latest, 2)]);
        assert_eq!(rows(&*db.store, "recover").await.len(), 1);
        survivor.shutdown().await;
    }
}

on_every_backend! {
    async fn a_stale_lease_claimed_directly_is_stolen(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let request = |runner| ClaimRequest {
            job: "direct",
            max_attempts: 3,
            runner_id: runner,
            stale_timeout: Duration::from_secs(1),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::global(), latest)],
        };
        db.store.execution_claim(&request("dead-runner")).await.unwrap();
        let later = db.skewed(TimeDelta::seconds(10));
        let stolen = later.execution_claim(&request("thief")).await.unwrap().remove(0);
        assert_eq!((stolen.outcome, stolen.attempt), (ClaimOutcome::Stole, 2));
        later
            .execution_finish_success(&[SuccessWrite { lease: stolen.lease, duration_ms: 1, rows_affected: 1, result: "{}".into() }])
            .await
            .unwrap();
        let row = rows(&*db.store, "direct").await.remove(0);
        assert_eq!((row.status, row.attempt), (Status::Success, 2));
    }
}

on_every_backend! {
    async fn non_reentrant_jobs_dead_letter_a_dead_runners_plan(db: TestDb) {
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        common::orphan(&*db.store, "once-only", latest, Duration::from_secs(1), false).await;
        let runs = Runs::default();
        let survivor = scheduler(db.skewed(TimeDelta::seconds(10)))
            .job(JobSpec::builder("once-only").every("1h").allow_stale_reentry(false).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = survivor.tick_now().await.unwrap();
        assert_eq!((report.swept, report.started()), (1, 0));
        let row = rows(&*db.store, "once-only").await.remove(0);
        assert_eq!(row.status, Status::Dead);
        assert_eq!(row.error_code.as_deref(), Some("stale_timeout"));
        assert_eq!(survivor.tick_now().await.unwrap().started(), 0);
        assert_eq!(runs.len(), 0, "never re-run without an operator");
        survivor.shutdown().await;
    }
}

on_every_backend! {
    async fn lease_stamps_are_taken_when_claiming_not_when_the_tick_began(db: TestDb) {
        // A slow scope provider makes the tick take 400 ms between reading the clock and claiming.
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("slow-tick")
                    .every("1h")
                    .stale_timeout(Duration::from_secs(90))
                    .scopes(Scopes::provider(|| async {
                        actix_rt::time::sleep(Duration::from_millis(400)).await;
                        Ok(vec![Scope::global()])
                    }))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        let row = settled(&*db.store, "slow-tick", 1).await.remove(0);
        let started = row.started_at.unwrap();
        assert!(started - report.db_now >= TimeDelta::milliseconds(350), "stamped at claim time");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn losing_the_lease_cancels_the_handler_and_fences_its_write(db: TestDb) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let owner = scheduler(db.store.clone())
            .runner_id("owner")
            .job(
                JobSpec::builder("lost")
                    .every("1h")
                    .run_timeout(Duration::from_secs(20))
                    .stale_timeout(Duration::from_secs(30))
                    .heartbeat_interval(Duration::from_millis(100))
                    .handler(move |ctx: JobContext| {
                        let flag = flag.clone();
                        async move {
                            ctx.cancelled().await;
                            flag.store(true, Ordering::SeqCst);
                            // A handler that claims success after losing its lease is fenced out.
                            Ok(JobOutput::rows(99))
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let plan = owner.tick_now().await.unwrap();
        assert_eq!(plan.won, 1);
        let row = rows(&*db.store, "lost").await.remove(0);
        // Another runner, an hour later by the database clock, takes the plan over.
        let later = db.skewed(TimeDelta::hours(1));
        let stolen = later
            .execution_claim(&ClaimRequest {
                job: "lost",
                max_attempts: 3,
                runner_id: "thief",
                stale_timeout: Duration::from_secs(30),
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: vec![PlanClaim::new(row.scope.clone(), row.plan_time)],
            })
            .await
            .unwrap()
            .remove(0);
        assert_eq!(stolen.outcome, ClaimOutcome::Stole);
        eventually(5, "the owner's handler to be cancelled", || async {
            cancelled.load(Ordering::SeqCst).then_some(())
        })
        .await;
        assert!(owner.wait_idle(Duration::from_secs(5)).await);
        let row = rows(&*db.store, "lost").await.remove(0);
        assert_eq!((row.status, row.runner_id.as_str()), (Status::Running, "thief"), "the old owner wrote nothing");
        later
            .execution_finish_success(&[SuccessWrite { lease: stolen.lease, duration_ms: 1, rows_affected: 1, result: "{}".into() }])
            .await
            .unwrap();
        let done = rows(&*db.store, "lost").await;
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].status, done[0].rows_affected), (Status::Success, Some(1)));
        owner.shutdown().await;
    }
}

on_every_backend! {
    async fn a_thousand_leases_renew_in_one_statement_per_beat(db: TestDb) {
        let observed = common::chaos::FaultyStore::new(db.store.clone());
        let s = scheduler(observed.clone())
            .max_concurrent_executions(2000)
            .job(
                JobSpec::builder("many")
                    .every("1h")
                    .scopes(common::tenants(1000))
                    .run_timeout(Duration::from_secs(5))
                    .stale_timeout(Duration::from_secs(10))
                    .heartbeat_interval(Duration::from_millis(200))
                    .handler(|_ctx: JobContext| async {
                        actix_rt::time::sleep(Duration::from_secs(1)).await;
                        Ok(JobOutput::rows(1))
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 1000);
        assert!(s.wait_idle(Duration::from_secs(30)).await);
        let beats = observed.stats("execution_heartbeat").ok;
        assert!(beats >= 1, "the leases were renewed while the handlers slept");
        // Renewing lease by lease would take at least 1,000 statements per beat.
        assert!(beats <= 20, "one statement renews every lease of the job: {beats} statements");
        let done = settled(&*db.store, "many", 1000).await;
        assert!(done.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        s.shutdown().await;
    }
}
