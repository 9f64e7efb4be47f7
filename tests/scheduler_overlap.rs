//! Overlap policies and the per-job concurrency limit, played with real timers (automatic ticks,
//! default tick interval) and handlers that outlast their cadence. Every check reads the
//! executions table: the attempts' `started_at` / `finished_at` prove what ran at once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{eventually, rows, scheduler, tenants};
use cronlease::{
    Execution, JobContext, JobOutput, JobSpec, OverlapPolicy, Scheduler, Scope, Status, Store,
};

/// A replica as a user starts one: automatic ticks, default tick interval.
async fn replica(store: Arc<dyn Store>, name: &str, specs: Vec<JobSpec>) -> Scheduler {
    let mut builder = scheduler(store).auto_tick(true).runner_id(name);
    for spec in specs {
        builder = builder.job(spec);
    }
    builder.start().await.unwrap()
}

/// A store of its own on the test's database, as a separate replica process would open: its own
/// connections (on SQLite, its own writer), so the job's claim lock is contended in the database.
async fn own_store(db: &common::TestDb) -> Arc<dyn Store> {
    let deadlines = cronlease::StoreDeadlines::default();
    match (&db.sqlite_path, &db.pg_options) {
        (Some(path), _) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let store = cronlease::SqliteStore::connect_with_deadlines(options, deadlines)
                .await
                .unwrap();
            Arc::new(store.with_clock_skew(db.base_skew))
        }
        (None, Some(options)) => {
            let store = cronlease::PgStore::connect_with_deadlines(options.clone(), deadlines)
                .await
                .unwrap();
            Arc::new(store.with_clock_skew(db.base_skew))
        }
        _ => {
            let options = db.mysql_options.clone().expect("a MySQL test database");
            let store = cronlease::MySqlStore::connect_with_deadlines(options, deadlines)
                .await
                .unwrap();
            Arc::new(store.with_clock_skew(db.base_skew))
        }
    }
}

/// A job on a 400 ms cadence whose handler takes `run` (longer than the cadence), with `policy`.
fn slow_job(
    name: &str,
    scopes: usize,
    run: Duration,
    policy: OverlapPolicy,
) -> cronlease::JobSpecBuilder {
    JobSpec::builder(name)
        .every("400ms")
        .scopes(tenants(scopes))
        .overlap(policy)
        .handler(move |_: JobContext| async move {
            actix_rt::time::sleep(run).await;
            Ok(JobOutput::rows(1))
        })
}

/// The attempts that ran: rows with a start and an end (SKIPPED rows never started).
fn attempts(rows: &[Execution]) -> Vec<(Scope, DateTime<Utc>, DateTime<Utc>)> {
    rows.iter()
        .filter_map(|r| Some((r.scope.clone(), r.started_at?, r.finished_at?)))
        .collect()
}

/// Pairs of attempts of one scope whose runs overlapped in time.
fn overlapping_in_a_scope(rows: &[Execution]) -> Vec<String> {
    let mut runs = attempts(rows);
    runs.sort_by_key(|(scope, start, _)| (scope.id.clone(), *start));
    runs.windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        .map(|w| {
            format!(
                "{}: {}..{} and {}..{}",
                w[0].0, w[0].1, w[0].2, w[1].1, w[1].2
            )
        })
        .collect()
}

/// The most attempts running at one instant.
fn most_at_once(rows: &[Execution]) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for (_, start, end) in attempts(rows) {
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // An end and a start at the same instant do not overlap: ends first.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

fn count(rows: &[Execution], status: Status) -> usize {
    rows.iter().filter(|r| r.status == status).count()
}

on_every_backend! {
    async fn skip_is_the_default_and_never_overlaps_a_scope(db: TestDb) {
        let job = "skip-default";
        let spec = JobSpec::builder(job)
            .every("400ms")
            .scopes(tenants(2))
            .handler(|_: JobContext| async {
                actix_rt::time::sleep(Duration::from_millis(1100)).await;
                Ok(JobOutput::rows(1))
            })
            .build()
            .unwrap();
        assert_eq!(spec.overlap(), OverlapPolicy::Skip);
        let a = replica(db.store.clone(), "a", vec![spec]).await;
        let done = eventually(20, "three runs and some skipped plans per scope", || async {
            let rows = rows(&*db.store, job).await;
            (count(&rows, Status::Success) >= 6 && count(&rows, Status::Skipped) >= 4).then_some(rows)
        })
        .await;
        a.shutdown().await;
        let rows = rows(&*db.store, job).await;
        assert!(overlapping_in_a_scope(&rows).is_empty(), "{:?}", overlapping_in_a_scope(&rows));
        let skipped: Vec<_> = done.iter().filter(|r| r.status == Status::Skipped).collect();
        assert!(skipped.iter().all(|r| r.error_code.as_deref() == Some(cronlease::SKIPPED_OVERLAP)));
    }
}

on_every_backend! {
    async fn allow_all_lets_plans_of_one_scope_run_at_once(db: TestDb) {
        let job = "allow-all";
        let spec = slow_job(job, 1, Duration::from_millis(1100), OverlapPolicy::AllowAll).build().unwrap();
        let a = replica(db.store.clone(), "a", vec![spec]).await;
        eventually(20, "overlapping runs of the scope", || async {
            let rows = rows(&*db.store, job).await;
            (!overlapping_in_a_scope(&rows).is_empty()).then_some(())
        })
        .await;
        a.shutdown().await;
        assert_eq!(count(&rows(&*db.store, job).await, Status::Skipped), 0);
    }
}

on_every_backend! {
    async fn buffer_one_starts_a_plan_that_came_due_during_the_run(db: TestDb) {
        let job = "buffer-one";
        let spec = slow_job(job, 1, Duration::from_millis(1100), OverlapPolicy::BufferOne).build().unwrap();
        let a = replica(db.store.clone(), "a", vec![spec]).await;
        // A buffered plan: it came due while the previous attempt ran, and it ran afterwards.
        let rows = eventually(20, "a buffered plan to run", || async {
            let rows = rows(&*db.store, job).await;
            let mut done: Vec<_> = rows.iter().filter(|r| r.status == Status::Success).collect();
            done.sort_by_key(|r| r.started_at);
            let buffered = done.windows(2).any(|w| w[1].plan_time < w[0].finished_at.unwrap());
            (buffered && count(&rows, Status::Skipped) >= 1).then_some(rows)
        })
        .await;
        a.shutdown().await;
        assert!(overlapping_in_a_scope(&rows).is_empty(), "{:?}", overlapping_in_a_scope(&rows));
        let all = common::rows(&*db.store, job).await;
        assert!(overlapping_in_a_scope(&all).is_empty(), "{:?}", overlapping_in_a_scope(&all));
    }
}

on_every_backend! {
    async fn cancel_other_cancels_the_running_attempt_through_its_lease(db: TestDb) {
        let job = "cancel-other";
        let cancelled = Arc::new(AtomicUsize::new(0));
        let seen = cancelled.clone();
        let spec = JobSpec::builder(job)
            .every("400ms")
            .overlap(OverlapPolicy::CancelOther)
            .heartbeat_interval(Duration::from_millis(200))
            .stale_timeout(Duration::from_secs(10))
            .run_timeout(Duration::from_secs(5))
            .handler(move |ctx: JobContext| {
                let seen = seen.clone();
                async move {
                    tokio::select! {
                        _ = actix_rt::time::sleep(Duration::from_secs(3)) => Ok(JobOutput::rows(1)),
                        _ = ctx.cancelled() => {
                            seen.fetch_add(1, Ordering::SeqCst);
                            Ok(JobOutput::rows(0))
                        }
                    }
                }
            })
            .build()
            .unwrap();
        let a = replica(db.store.clone(), "a", vec![spec]).await;
        let rows = eventually(20, "attempts cancelled by newer plans", || async {
            let rows = rows(&*db.store, job).await;
            let superseded: Vec<_> = rows
                .iter()
                .filter(|r| r.error_code.as_deref() == Some(cronlease::CANCELLED_OVERLAP))
                .collect();
            (superseded.len() >= 2 && cancelled.load(Ordering::SeqCst) >= 2).then_some(rows)
        })
        .await;
        a.shutdown().await;
        // Cancelled rows stay SUPERSEDED: the handler's late success was fenced out.
        for row in rows.iter().filter(|r| r.error_code.as_deref() == Some(cronlease::CANCELLED_OVERLAP)) {
            assert_eq!(row.status, Status::Superseded, "{row:?}");
        }
        assert_eq!(count(&rows, Status::Success), 0, "every attempt lost to a newer plan");
    }
}

on_every_backend! {
    async fn replicas_never_overlap_a_scope_under_skip_nor_exceed_the_job_limit(db: TestDb) {
        // Three replicas on one database, each with its own store (its own connections), two
        // jobs whose handlers outlast the cadence: under
        // Skip no two plans of a scope ran at once, and the limited job never had more than
        // two attempts running across the cluster.
        let (skip, limited) = ("replicas-skip", "replicas-limited");
        let specs = || {
            vec![
                slow_job(skip, 3, Duration::from_millis(900), OverlapPolicy::Skip).build().unwrap(),
                slow_job(limited, 5, Duration::from_millis(700), OverlapPolicy::AllowAll)
                    .max_concurrent(2)
                    .build()
                    .unwrap(),
            ]
        };
        let mut replicas = Vec::new();
        for name in ["a", "b", "c"] {
            replicas.push(replica(own_store(&db).await, name, specs()).await);
        }
        eventually(30, "enough runs of both jobs", || async {
            let skip_rows = rows(&*db.store, skip).await;
            let limited_rows = rows(&*db.store, limited).await;
            (count(&skip_rows, Status::Success) >= 9
                && count(&skip_rows, Status::Skipped) >= 3
                && count(&limited_rows, Status::Success) >= 8)
                .then_some(())
        })
        .await;
        for replica in replicas {
            replica.shutdown().await;
        }
        let skip_rows = rows(&*db.store, skip).await;
        assert!(overlapping_in_a_scope(&skip_rows).is_empty(), "{:?}", overlapping_in_a_scope(&skip_rows));
        let limited_rows = rows(&*db.store, limited).await;
        assert!(most_at_once(&limited_rows) <= 2, "{} at once, limit 2", most_at_once(&limited_rows));
        assert_eq!(count(&limited_rows, Status::Skipped), 0, "the limit defers, it does not skip");
    }
}

on_every_backend! {
    async fn under_skip_catch_up_backlog_runs_one_plan_at_a_time_and_nothing_is_skipped(db: TestDb) {
        // Five hours missed under EveryPlan: the backlog is not overlap. It runs oldest first,
        // one plan of the scope at a time (each tick starts the next once the previous ended),
        // and no plan is recorded SKIPPED.
        const HOUR: Duration = Duration::from_secs(3600);
        let runs = common::Runs::default();
        let spec = || {
            JobSpec::builder("backlog")
                .every("1h")
                .catch_up(cronlease::CatchUp::EveryPlan { window: 10 * HOUR, max_plans_per_tick: 10 })
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let past = scheduler(db.skewed(chrono::TimeDelta::hours(-5))).job(spec()).start().await.unwrap();
        past.tick_now().await.unwrap();
        past.wait_idle(Duration::from_secs(10)).await;
        past.shutdown().await;
        let s = scheduler(db.store.clone()).job(spec()).start().await.unwrap();
        let latest = cronlease::floor_plan(db.store.db_now().await.unwrap(), HOUR);
        for h in (0..5).rev() {
            let report = s.tick_now().await.unwrap();
            assert_eq!((report.won, report.skipped), (1, 0), "{report:?}");
            assert_eq!(report.waiting, h, "the rest of the backlog waits: {report:?}");
            s.wait_idle(Duration::from_secs(10)).await;
            assert_eq!(runs.all().last().unwrap().1, latest - chrono::TimeDelta::hours(h as i64));
        }
        s.shutdown().await;
        let rows = rows(&*db.store, "backlog").await;
        assert_eq!((count(&rows, Status::Success), count(&rows, Status::Skipped)), (6, 0));
    }
}
