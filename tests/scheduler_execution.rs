//! Running handlers through the public API: success, errors, retries and backoff, dead letters,
//! panics, timeouts, message and result caps, terminal writes that meet a database blip.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use common::{FlakyStore, Runs, rows, scheduler, settled};
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim, SuccessWrite};
use cronlease::{
    Backoff, CatchUp, JobContext, JobError, JobOutput, JobSpec, Scope, Status, floor_plan,
};

on_every_backend! {
    async fn a_successful_attempt_is_recorded(db: TestDb) {
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("ok")
                    .every("1h")
                    .handler(|ctx: JobContext| async move {
                        assert_eq!(ctx.job(), "ok");
                        assert_eq!(ctx.attempt(), 1);
                        assert_eq!(ctx.scope(), &Scope::global());
                        ctx.heartbeat().await?;
                        Ok(JobOutput::rows(42).with_result(serde_json::json!({ "exec": ctx.execution_id() })))
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "ok", 1).await.remove(0);
        assert_eq!(row.status, Status::Success, "{row:?}");
        assert_eq!(row.rows_affected, Some(42));
        assert_eq!(row.result["exec"], row.id.to_string(), "the execution id is the idempotency key");
        assert!(row.duration_ms.is_some() && row.finished_at.is_some());
        assert_eq!(row.runner_id, s.runner_id());
        s.shutdown().await;
    }
}

fn always_failing(
    calls: Arc<AtomicUsize>,
) -> impl Fn(JobContext) -> std::future::Ready<Result<JobOutput, JobError>> + Send + Sync + 'static
{
    move |ctx: JobContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err(JobError::retryable(format!(
            "attempt {} failed",
            ctx.attempt()
        ))))
    }
}

on_every_backend! {
    async fn failures_retry_with_backoff_then_dead_letter(db: TestDb) {
        let calls = Arc::new(AtomicUsize::new(0));
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("flaky")
                    .every("1h")
                    .max_attempts(3)
                    .backoff(Backoff::list(["0s"]).unwrap())
                    .handler(always_failing(calls.clone()))
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        for attempt in 1..=3u32 {
            let report = s.tick_now().await.unwrap();
            assert_eq!(report.started(), 1, "attempt {attempt}: {report:?}");
            s.wait_idle(Duration::from_secs(10)).await;
            let row = rows(&*db.store, "flaky").await.remove(0);
            assert_eq!(row.attempt, attempt);
            if attempt < 3 {
                assert_eq!(row.status, Status::Failed);
                assert!(row.next_retry_at.is_some());
            } else {
                assert_eq!(row.status, Status::Dead, "out of attempts");
                assert!(row.next_retry_at.is_none());
            }
        }
        // Exhausted plans never run again.
        assert_eq!(s.tick_now().await.unwrap().started(), 0);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let row = rows(&*db.store, "flaky").await.remove(0);
        assert_eq!(row.failures.len(), 3);
        assert_eq!(row.failures.iter().map(|f| f.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(row.failures.iter().all(|f| f.code == "handler_error"));
        assert_eq!(row.failures[1].message, "attempt 2 failed");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn the_retry_time_follows_the_backoff(db: TestDb) {
        let calls = Arc::new(AtomicUsize::new(0));
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("later")
                    .every("1h")
                    .backoff(Backoff::list(["10m"]).unwrap())
                    .handler(always_failing(calls.clone()))
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "later", 1).await.remove(0);
        let wait = row.next_retry_at.unwrap() - row.finished_at.unwrap();
        assert!((wait - TimeDelta::minutes(10)).abs() < TimeDelta::seconds(2), "{wait}");
        // Not due yet: nothing runs.
        assert_eq!(s.tick_now().await.unwrap().started(), 0);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn permanent_errors_dead_letter_at_once(db: TestDb) {
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("perm")
                    .every("1h")
                    .max_attempts(5)
                    .handler(|_ctx: JobContext| async { Err::<JobOutput, _>(JobError::permanent("bad input")) })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "perm", 1).await.remove(0);
        assert_eq!((row.status, row.attempt), (Status::Dead, 1));
        assert_eq!(row.error_code.as_deref(), Some("permanent"));
        assert_eq!(row.error_msg.as_deref(), Some("bad input"));
        assert!(row.next_retry_at.is_none(), "no retry scheduled");
        assert_eq!(row.failures.len(), 1, "its history: the one failed attempt");
        assert_eq!((row.failures[0].attempt, row.failures[0].code.as_str()), (1, "permanent"));
        assert!(row.failures[0].started_at.is_some() && row.failures[0].finished_at.is_some());
        // The remaining four attempts are skipped: it never runs again on its own.
        assert_eq!(s.tick_now().await.unwrap().started(), 0);
        assert_eq!(s.dead_executions(&Default::default()).await.unwrap(), vec![row]);
        s.shutdown().await;
    }
}

fn panics_while_building(_ctx: JobContext) -> std::future::Ready<Result<JobOutput, JobError>> {
    panic!("broken before the future existed")
}

on_every_backend! {
    async fn panics_are_recorded_and_the_scheduler_keeps_running(db: TestDb) {
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("panic-poll")
                    .every("1h")
                    .handler(|_ctx: JobContext| async {
                        actix_rt::task::yield_now().await;
                        panic!("exploded mid-run");
                        #[allow(unreachable_code)]
                        Ok(JobOutput::default())
                    })
                    .build()
                    .unwrap(),
            )
            .job(JobSpec::builder("panic-build").every("1h").handler(panics_while_building).build().unwrap())
            .job(JobSpec::builder("healthy").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 3);
        let polled = settled(&*db.store, "panic-poll", 1).await.remove(0);
        assert_eq!(polled.status, Status::Failed);
        assert_eq!(polled.error_code.as_deref(), Some("handler_panic"));
        assert!(polled.error_msg.as_deref().unwrap().contains("exploded mid-run"));
        let built = settled(&*db.store, "panic-build", 1).await.remove(0);
        assert_eq!(built.error_code.as_deref(), Some("handler_panic"));
        assert!(built.error_msg.as_deref().unwrap().contains("broken before the future existed"));
        assert_eq!(settled(&*db.store, "healthy", 1).await[0].status, Status::Success);
        // The runtime still answers and ticks.
        assert!(s.tick_now().await.is_ok());
        // Every attempt leaves the running set once recorded (the record comes first).
        assert!(s.wait_idle(Duration::from_secs(10)).await, "still running: {}", s.running().await.unwrap());
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn run_timeout_bounds_async_and_blocking_handlers(db: TestDb) {
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("slow-async")
                    .every("1h")
                    .run_timeout(Duration::from_millis(200))
                    .stale_timeout(Duration::from_secs(5))
                    .heartbeat_interval(Duration::from_millis(100))
                    .handler(|_ctx: JobContext| async {
                        actix_rt::time::sleep(Duration::from_secs(30)).await;
                        Ok(JobOutput::default())
                    })
                    .build()
                    .unwrap(),
            )
            .job(
                JobSpec::builder("slow-blocking")
                    .every("1h")
                    .run_timeout(Duration::from_millis(200))
                    .stale_timeout(Duration::from_secs(5))
                    .heartbeat_interval(Duration::from_millis(100))
                    .handler(move |_ctx: JobContext| {
                        let done = done.clone();
                        async move {
                            std::thread::sleep(Duration::from_secs(2));
                            done.fetch_add(1, Ordering::SeqCst);
                            Ok(JobOutput::default())
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .handler_threads(2)
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        for job in ["slow-async", "slow-blocking"] {
            let row = settled(&*db.store, job, 1).await.remove(0);
            assert_eq!(row.status, Status::Failed, "{job}");
            assert_eq!(row.error_code.as_deref(), Some("run_timeout"), "{job}");
        }
        assert_eq!(finished.load(Ordering::SeqCst), 0, "the blocking handler was not waited for");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn long_messages_are_cut_on_a_character_boundary(db: TestDb) {
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("wordy")
                    .every("1h")
                    .handler(|_ctx: JobContext| async { Err::<JobOutput, _>(JobError::retryable(format!("x{}", "é".repeat(5000)))) })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "wordy", 1).await.remove(0);
        let msg = row.error_msg.unwrap();
        assert_eq!(msg.len(), 3999, "4000 bytes would split a character");
        assert!(msg.starts_with("xé"));
        assert_eq!(row.failures[0].message, msg);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn oversize_results_are_recorded_as_success_with_a_marker(db: TestDb) {
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("big")
                    .every("1h")
                    .handler(|_ctx: JobContext| async {
                        Ok(JobOutput::rows(1).with_result(serde_json::json!({ "blob": "y".repeat(40_000) })))
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "big", 1).await.remove(0);
        assert_eq!(row.status, Status::Success);
        assert_eq!(row.result["truncated"], true);
        assert!(row.result["original_bytes"].as_u64().unwrap() > 40_000);
        // Finished: it is not run again.
        assert_eq!(s.tick_now().await.unwrap().started(), 0);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn terminal_writes_survive_transient_errors(db: TestDb) {
        let flaky = Arc::new(FlakyStore { inner: db.store.clone(), fail_finishes: AtomicUsize::new(3) });
        let runs = Runs::default();
        let s = scheduler(flaky.clone())
            .job(JobSpec::builder("blip").every("1h").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        let row = settled(&*db.store, "blip", 1).await.remove(0);
        assert_eq!((row.status, row.attempt), (Status::Success, 1), "{row:?}");
        assert_eq!(flaky.fail_finishes.load(Ordering::SeqCst), 0, "the write met every injected error");
        assert_eq!(runs.len(), 1, "the handler ran once");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn old_failed_buckets_are_retried_after_newer_ones_succeed(db: TestDb) {
        let hour = Duration::from_secs(3600);
        let latest = floor_plan(db.store.db_now().await.unwrap(), hour);
        let old = latest - TimeDelta::hours(3);
        let claim = |plan| ClaimRequest {
            job: "buckets",
            max_attempts: 3,
            runner_id: "earlier",
            stale_timeout: hour,
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::global(), plan)],
        };
        let failed = db.store.execution_claim(&claim(old)).await.unwrap().remove(0);
        db.store
            .execution_finish_failure(&[FailureWrite {
                lease: failed.lease,
                status: Status::Failed,
                code: "handler_error".into(),
                message: "upstream down".into(),
                retry_in: Some(Duration::ZERO),
                extend_budget: false,
                duration_ms: 1,
            }])
            .await
            .unwrap();
        for h in 0..3 {
            let ok = db.store.execution_claim(&claim(latest - TimeDelta::hours(h))).await.unwrap().remove(0);
            db.store
                .execution_finish_success(&[SuccessWrite { lease: ok.lease, duration_ms: 1, rows_affected: 0, result: "{}".into() }])
                .await
                .unwrap();
        }
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("buckets")
                    .every("1h")
                    .catch_up(CatchUp::EveryPlan { window: 6 * hour, max_plans_per_tick: 4 })
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!((report.retried, report.won), (1, 0), "{report:?}");
        s.wait_idle(Duration::from_secs(10)).await;
        let row = db.store.execution_get(failed.lease.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt), (Status::Success, 2));
        assert_eq!(runs.all(), vec![("global".to_owned(), old, 2)]);
        s.shutdown().await;
    }
}
