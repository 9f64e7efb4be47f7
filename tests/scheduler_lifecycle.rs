//! The scheduler's life: spec validation, start, automatic ticks, isolation between jobs,
//! graceful shutdown with hand-off.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Runs, eventually, rows, scheduler, settled, tenants};
use cronlease::{
    Backoff, CatchUp, ClaimOutcome, Error, JobContext, JobOutput, JobSpec, JobSpecBuilder,
    Schedule, Scope, Scopes, Status,
};

fn valid() -> JobSpecBuilder {
    JobSpec::builder("job")
        .every("5m")
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
}

fn message(builder: JobSpecBuilder) -> String {
    match builder.build() {
        Err(Error::InvalidJob { message, .. }) => message,
        other => panic!("expected InvalidJob, got {other:?}"),
    }
}

#[test]
fn each_invalid_spec_field_has_its_own_message() {
    let secs = Duration::from_secs;
    let cases: Vec<(JobSpecBuilder, &str)> = vec![
        (
            JobSpec::builder("  ").every("5m"),
            "job name must not be empty",
        ),
        (valid().every("0s"), "cadence must be longer than zero"),
        (
            valid().every("sometimes"),
            "cannot parse cadence `sometimes`",
        ),
        (
            JobSpec::builder("job").handler(|_ctx: JobContext| async { Ok(JobOutput::default()) }),
            "a schedule is required",
        ),
        (
            valid().run_timeout(Duration::ZERO),
            "run_timeout must be longer than zero",
        ),
        (
            valid().run_timeout(secs(30)).stale_timeout(secs(10)),
            "stale_timeout (10s) must be longer than run_timeout (30s)",
        ),
        (
            valid().heartbeat_interval(Duration::ZERO),
            "heartbeat_interval (0s) must be longer than zero and shorter than stale_timeout",
        ),
        (
            valid()
                .run_timeout(secs(1))
                .stale_timeout(secs(2))
                .heartbeat_interval(secs(2)),
            "heartbeat_interval (2s) must be longer than zero and shorter than stale_timeout (2s)",
        ),
        (valid().max_attempts(0), "max_attempts must be at least 1"),
        (JobSpec::builder("job").every("5m"), "a handler is required"),
        (
            valid().catch_up(CatchUp::EveryPlan {
                window: secs(60),
                max_plans_per_tick: 0,
            }),
            "EveryPlan needs max_plans_per_tick of at least 1",
        ),
        (
            valid().backoff(Backoff::List(vec![])),
            "backoff list must have at least one delay",
        ),
        (
            valid().scopes(Vec::<Scope>::new()),
            "the scope list is empty",
        ),
        // Names: stored as given, so surrounding whitespace is refused rather than trimmed.
        (
            JobSpec::builder(" job").every("5m"),
            "job name ` job` has leading or trailing whitespace",
        ),
        (
            JobSpec::builder("job\0").every("5m"),
            "job name `job\\0` has a NUL byte",
        ),
        (
            JobSpec::builder("n".repeat(600)).every("5m"),
            "is 600 bytes, over the limit of 512 (JobSpec::MAX_NAME_LEN)",
        ),
        // Cadences: calendar units and absurd lengths.
        (
            valid().every("1M"),
            "cadence `1M` uses the unit `M`, which humantime counts as a fixed length",
        ),
        (
            valid().every("1y"),
            "not a calendar month or year: for calendar months use a cron expression such as .cron(\"0 0 1 * *\")",
        ),
        (
            valid().every("400d"),
            "cadence (400d) must be at most 366d (Schedule::MAX_CADENCE)",
        ),
        (
            valid().schedule(Schedule::Every {
                cadence: Duration::MAX,
                offset: Duration::ZERO,
            }),
            "must be at most 366d (Schedule::MAX_CADENCE) (or give a .planner(..) hook)",
        ),
        (
            valid().schedule_delay(Duration::MAX),
            "must be at most 366d (JobSpec::MAX_SCHEDULE_DELAY)",
        ),
        // Durations that overflowed in build() or in the database's arithmetic.
        (
            valid().run_timeout(Duration::MAX),
            "must be at most 7d (JobSpec::MAX_RUN_TIMEOUT)",
        ),
        (
            valid().stale_timeout(secs(9 * 86_400)),
            "stale_timeout (9d) must be at most 8d (JobSpec::MAX_STALE_TIMEOUT)",
        ),
        (
            valid().max_attempts(u32::MAX),
            "max_attempts (4294967295) must be at most 1000000 (JobSpec::MAX_ATTEMPTS)",
        ),
        (
            valid().backoff(Backoff::exponential(secs(1), 2.0, Duration::MAX)),
            "backoff cap",
        ),
        (
            valid().backoff(Backoff::List(vec![secs(400 * 86_400)])),
            "backoff delay (400d) must be at most 365d (Backoff::MAX_DELAY)",
        ),
        // Scopes the database cannot store.
        (
            valid().scopes([
                Scope::new("workspace", "1"),
                Scope::new("workspace", "4\u{0}2"),
            ]),
            "scope `workspace:4\\u{0}2` has a NUL byte in its id",
        ),
        (
            valid().scopes([Scope::new("workspace", "x".repeat(6000))]),
            "has an id of 6000 bytes, over the limit of 512 (Scope::MAX_LEN)",
        ),
        (
            valid().scopes([Scope::new("", "1")]),
            "scope `:1` has an empty kind",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (builder, expected) in cases {
        let got = message(builder);
        assert!(got.contains(expected), "expected `{expected}` in `{got}`");
        assert!(seen.insert(got.clone()), "message reused: {got}");
    }
    // A valid spec with a planner hook needs no cadence.
    let hooked = JobSpec::builder("hooked")
        .planner(|_, _, _| Ok(vec![]))
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
        .build();
    assert!(hooked.is_ok());
    assert!(valid().build().is_ok());
    // The limits themselves are accepted.
    let at_limits = valid()
        .every("366d")
        .schedule_delay(JobSpec::MAX_SCHEDULE_DELAY)
        .run_timeout(JobSpec::MAX_RUN_TIMEOUT)
        .stale_timeout(JobSpec::MAX_STALE_TIMEOUT)
        .max_attempts(JobSpec::MAX_ATTEMPTS)
        .backoff(Backoff::exponential(secs(1), 2.0, Backoff::MAX_DELAY))
        .scopes([Scope::new(
            "k".repeat(Scope::MAX_LEN),
            "i".repeat(Scope::MAX_LEN),
        )]);
    assert!(at_limits.build().is_ok());
    // The whole error is one sentence naming the job once.
    let error = valid().every("sometimes").build().unwrap_err().to_string();
    assert!(
        error.starts_with("invalid job `job`: cannot parse cadence `sometimes` ("),
        "{error}"
    );
    assert!(!error.contains("invalid scheduler setting"), "{error}");
}

#[actix::test]
async fn duplicate_job_names_and_bad_settings_are_refused_at_start() {
    let db = common::sqlite().await;
    let dup = scheduler(db.store.clone())
        .job(valid().build().unwrap())
        .job(valid().build().unwrap())
        .start()
        .await;
    assert!(matches!(dup, Err(Error::DuplicateJob(name)) if name == "job"));
    let zero = scheduler(db.store.clone())
        .max_concurrent_executions(0)
        .start()
        .await;
    assert!(
        matches!(zero, Err(Error::InvalidConfig(m)) if m.contains("max_concurrent_executions"))
    );
    let tick = scheduler(db.store.clone())
        .tick_interval(Duration::ZERO)
        .start()
        .await;
    assert!(matches!(tick, Err(Error::InvalidConfig(m)) if m.contains("tick_interval")));
}

on_every_backend! {
    async fn ticks_start_at_once_repeat_and_never_overlap(db: TestDb) {
        let calls = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let overlap = Arc::new(AtomicUsize::new(0));
        let (c, f, o) = (calls.clone(), in_flight.clone(), overlap.clone());
        // Each tick takes 150 ms (the provider is slow); the interval is 50 ms.
        let provider = Scopes::provider(move || {
            let (c, f, o) = (c.clone(), f.clone(), o.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                if f.fetch_add(1, Ordering::SeqCst) > 0 {
                    o.fetch_add(1, Ordering::SeqCst);
                }
                actix_rt::time::sleep(Duration::from_millis(150)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                Ok(vec![Scope::global()])
            }
        });
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .auto_tick(true)
            .tick_interval(Duration::from_millis(50))
            .job(JobSpec::builder("auto").every("1h").scopes(provider).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        // The first tick runs at start, without being asked.
        settled(&*db.store, "auto", 1).await;
        eventually(10, "several ticks", || async { (calls.load(Ordering::SeqCst) >= 4).then_some(()) }).await;
        assert_eq!(overlap.load(Ordering::SeqCst), 0, "ticks never overlap");
        assert_eq!(runs.len(), 1);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn one_jobs_failure_never_stops_the_others(db: TestDb) {
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("broken-provider")
                    .every("1h")
                    .scopes(Scopes::provider(|| async { Err("tenants table unavailable".into()) }))
                    .handler(Runs::default().ok_handler())
                    .build()
                    .unwrap(),
            )
            .job(JobSpec::builder("fine").every("1h").scopes(tenants(3)).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!((report.job_errors, report.won), (1, 3));
        settled(&*db.store, "fine", 3).await;
        assert!(rows(&*db.store, "broken-provider").await.is_empty());
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn concurrency_is_bounded_and_the_rest_waits(db: TestDb) {
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .max_concurrent_executions(2)
            .job(JobSpec::builder("bounded").every("1h").scopes(tenants(5)).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let first = s.tick_now().await.unwrap();
        assert_eq!((first.won, first.deferred), (2, 3));
        for _ in 0..10 {
            s.wait_idle(Duration::from_secs(5)).await;
            if s.tick_now().await.unwrap().planned == 0 {
                break;
            }
        }
        settled(&*db.store, "bounded", 5).await;
        assert_eq!(runs.len(), 5);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn shutdown_records_canceled_and_hands_off(db: TestDb) {
        let spec = |runs: &Runs| {
            let runs = runs.clone();
            JobSpec::builder("handoff")
                .every("1h")
                .max_attempts(1)
                .handler(move |ctx: JobContext| {
                    let runs = runs.clone();
                    async move {
                        runs.record(&ctx);
                        if ctx.runner_id() == "leaving" {
                            // Works until told to stop; the stop is a failed attempt.
                            ctx.cancelled().await;
                            return Err("interrupted".into());
                        }
                        Ok(JobOutput::rows(1))
                    }
                })
                .build()
                .unwrap()
        };
        let runs = Runs::default();
        let leaving = scheduler(db.store.clone()).runner_id("leaving").job(spec(&runs)).start().await.unwrap();
        assert_eq!(leaving.tick_now().await.unwrap().won, 1);
        eventually(5, "the handler to start", || async { (runs.len() == 1).then_some(()) }).await;
        leaving.shutdown().await;
        let row = rows(&*db.store, "handoff").await.remove(0);
        assert_eq!(row.status, Status::Failed);
        assert_eq!(row.error_code.as_deref(), Some("canceled"));
        assert!(row.next_retry_at.unwrap() <= db.store.db_now().await.unwrap(), "retry-eligible at once");
        assert_eq!(row.max_attempts, 2, "the canceled attempt does not use up the budget");
        assert!(leaving.tick_now().await.is_err(), "a stopped scheduler refuses ticks");

        let staying = scheduler(db.store.clone()).runner_id("staying").job(spec(&runs)).start().await.unwrap();
        let report = staying.tick_now().await.unwrap();
        assert_eq!(report.retried, 1);
        let row = settled(&*db.store, "handoff", 1).await.remove(0);
        assert_eq!((row.status, row.attempt, row.claim_outcome), (Status::Success, 2, ClaimOutcome::Retried));
        staying.shutdown().await;
    }
}

on_every_backend! {
    async fn shutdown_does_not_wait_for_a_handler_that_ignores_cancellation(db: TestDb) {
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("stubborn")
                    .every("1h")
                    .handler(move |_ctx: JobContext| {
                        let done = done.clone();
                        async move {
                            std::thread::sleep(Duration::from_secs(3));
                            done.fetch_add(1, Ordering::SeqCst);
                            Ok(JobOutput::default())
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        s.shutdown().await;
        assert_eq!(finished.load(Ordering::SeqCst), 0, "shutdown returned while the handler still ran");
        let row = rows(&*db.store, "stubborn").await.remove(0);
        assert_eq!((row.status, row.error_code.as_deref()), (Status::Failed, Some("canceled")));
    }
}

on_every_backend! {
    async fn a_burst_larger_than_one_ticks_claims_runs_whole_over_the_next_ticks(db: TestDb) {
        // 20,000 scopes due at once, slots for all: one tick sends at most 8 statements of
        // 2,000 plans; the rest are deferred, not lost, and the runner ticks again at once.
        let runs = Runs::default();
        let spec = |name: &str| {
            JobSpec::builder(name).every("1h").scopes(tenants(20_000)).handler(runs.ok_handler()).build().unwrap()
        };
        let by_hand = scheduler(db.store.clone()).max_concurrent_executions(20_000).job(spec("burst-by-hand")).start().await.unwrap();
        let first = by_hand.tick_now().await.unwrap();
        assert_eq!((first.planned, first.won, first.deferred), (20_000, 16_000, 4_000));
        let second = by_hand.tick_now().await.unwrap();
        assert_eq!((second.planned, second.won, second.deferred), (4_000, 4_000, 0));
        settled(&*db.store, "burst-by-hand", 20_000).await;
        by_hand.shutdown().await;

        // The same with real timers and a long tick interval, with more than two ticks' worth
        // (16,000 from the walk, 16,000 from its backlog, the rest from the backlog again): the
        // deferred plans do not wait for the interval.
        let auto = scheduler(db.store.clone())
            .max_concurrent_executions(40_000)
            .auto_tick(true)
            .tick_interval(Duration::from_secs(3600))
            .job(
                JobSpec::builder("burst-auto")
                    .every("1h")
                    .scopes(tenants(40_000))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let rows = settled(&*db.store, "burst-auto", 40_000).await;
        assert_eq!(rows.len(), 40_000);
        assert!(rows.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        assert_eq!(runs.len(), 60_000);
        auto.shutdown().await;
    }
}

on_every_backend! {
    async fn a_burst_larger_than_the_slots_runs_whole_each_plan_once(db: TestDb) {
        // 17,000 scopes due, 5,000 slots: each tick starts what the slots allow; the plans it
        // could not send wait for the next ticks, none lost and none run twice.
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .max_concurrent_executions(5_000)
            .job(JobSpec::builder("slots").every("1h").scopes(tenants(17_000)).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        // How many each tick starts depends on how many attempts end while it claims; what
        // it could not send is offered by the next ticks, until a tick finds nothing due.
        let mut reports = Vec::new();
        loop {
            let report = s.tick_now().await.unwrap();
            reports.push((report.planned, report.won, report.deferred));
            if report.planned == 0 || reports.len() == 30 {
                break;
            }
            s.wait_idle(Duration::from_secs(60)).await;
        }
        assert_eq!(reports[0].0, 17_000, "{reports:?}");
        assert_eq!(reports.last().unwrap().0, 0, "{reports:?}");
        assert_eq!(reports.iter().map(|r| r.1).sum::<usize>(), 17_000, "{reports:?}");
        let rows = settled(&*db.store, "slots", 17_000).await;
        assert_eq!(rows.len(), 17_000);
        assert!(rows.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        assert_eq!(runs.len(), 17_000, "each plan ran once");
        s.shutdown().await;
    }
}
