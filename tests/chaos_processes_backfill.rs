//! A backfill served by several processes (SPEC §5, issue 12): four scheduler processes on one
//! database hand out and run the 1,000 plans of one backfill, and each plan runs exactly once.
//!
//! The backfill is written straight through the `Store`, as a tool holding only the database
//! would, once every runner is up; the runners learn of it from their ticks. Their handlers
//! record every run in a side table of the test's database, which the parent checks against the
//! range and the executions table. As in `chaos_processes.rs`, the runners are this test binary
//! run again with `--exact child_runner` and a JSON [`ChildConfig`] in the environment.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::chaos::{Children, DbLocation, SidePool, SideRun, poll};
use common::{rows, tenants};
use cronlease::{
    Backfill, BackfillOptions, BackfillStatus, DbRetry, JobContext, JobOutput, JobSpec, Scheduler,
    Status, floor_plan,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The environment variable that turns this binary into a runner process.
const CHILD_ENV: &str = "CRONLEASE_BACKFILL_CHILD";
const JOB: &str = "backfill";
/// Scopes of the job; the backfill covers `PLAN_TIMES` minutes of each: 1,000 plans.
const SCOPES: usize = 10;
const PLAN_TIMES: i64 = 100;

/// What a runner process does.
#[derive(Debug, Serialize, Deserialize)]
struct ChildConfig {
    runner_id: String,
    db: DbLocation,
    /// The test database's clock skew, so every process plans alike.
    skew_ms: i64,
    /// The runner shuts down gracefully once this file exists, or after `max_run_secs`.
    stop_file: PathBuf,
    max_run_secs: u64,
}

/// Not a test: the entry point of the runner processes the test below starts. Run without
/// `CRONLEASE_BACKFILL_CHILD` (as in a normal `cargo test`), it returns at once.
#[test]
fn child_runner() {
    let Ok(json) = std::env::var(CHILD_ENV) else {
        return;
    };
    let config: ChildConfig = serde_json::from_str(&json).expect("child config");
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,cronlease=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    actix_rt::System::new().block_on(run_child(config));
}

fn job(side: SidePool) -> JobSpec {
    JobSpec::builder(JOB)
        .every("1m")
        .scopes(tenants(SCOPES))
        .run_timeout(Duration::from_secs(10))
        .stale_timeout(Duration::from_secs(30))
        .handler(move |ctx: JobContext| {
            let side = side.clone();
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "run")).await?;
                // A moment of work, so the runners' attempts overlap.
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("backfill job")
}

async fn run_child(config: ChildConfig) {
    let store = config
        .db
        .store(TimeDelta::milliseconds(config.skew_ms), 4)
        .await;
    let side = config.db.side().await;
    let scheduler = Scheduler::builder_shared(store)
        .runner_id(config.runner_id.clone())
        .tick_interval(Duration::from_secs(1))
        .max_concurrent_executions(16)
        .shutdown_grace(Duration::from_secs(2))
        .db_retry(DbRetry {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        })
        .job(job(side))
        .start()
        .await
        .expect("start the scheduler");
    eprintln!(
        "runner {} started (pid {})",
        config.runner_id,
        std::process::id()
    );
    let deadline = Instant::now() + Duration::from_secs(config.max_run_secs);
    while !config.stop_file.exists() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    scheduler.shutdown().await;
    eprintln!("runner {} stopped", config.runner_id);
}

on_every_backend! {
    async fn four_processes_run_each_plan_of_a_backfill_exactly_once(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let mut children = Children::default();
        for name in ["runner-0", "runner-1", "runner-2", "runner-3"] {
            let config = ChildConfig {
                runner_id: name.to_owned(),
                db: DbLocation::of(&db),
                skew_ms: db.base_skew.num_milliseconds(),
                stop_file: dir.path().join("stop"),
                max_run_secs: 240,
            };
            let json = serde_json::to_string(&config).unwrap();
            children.spawn(name, "child_runner", &[(CHILD_ENV, json)], dir.path());
        }
        // Every runner is up once each has ticked: the current minute's plans ran.
        let up = poll(Duration::from_secs(60), || async {
            (rows(&*db.store, JOB).await.len() >= SCOPES).then_some(())
        })
        .await;
        assert!(up.is_some(), "the runners never ran the scheduled plans");

        let minute = floor_plan(db.store.db_now().await.unwrap(), Duration::from_secs(60));
        let (from, to) = (minute - TimeDelta::minutes(PLAN_TIMES + 1), minute - TimeDelta::minutes(1));
        // Written as a tool would: straight through the store, no scheduler involved.
        let backfill = db
            .store
            .backfill_create(&Backfill::new(JOB, from, to, BackfillOptions {
                requested_by: "cli".into(),
                ..BackfillOptions::default()
            }))
            .await
            .unwrap();
        let expected = SCOPES * PLAN_TIMES as usize;
        let in_range = |rows: Vec<cronlease::Execution>| -> Vec<cronlease::Execution> {
            rows.into_iter().filter(|r| r.plan_time >= from && r.plan_time < to).collect()
        };
        let finished = poll(Duration::from_secs(150), || async {
            let progress = db.store.backfill_get(backfill.id).await.unwrap().unwrap();
            let rows = in_range(rows(&*db.store, JOB).await);
            let settled = rows.len() == expected && rows.iter().all(|r| r.status == Status::Success);
            (progress.status == BackfillStatus::Done && settled).then_some((progress, rows))
        })
        .await;
        std::fs::write(dir.path().join("stop"), b"stop").unwrap();
        for (name, status) in children.wait_all(Duration::from_secs(60)) {
            assert!(status.success(), "runner {name} exited with {status}");
        }
        let (progress, rows) = finished.expect("the backfill never finished");
        assert_eq!((progress.done, progress.total), (expected as u64, Some(expected as u64)));
        assert!(rows.iter().all(|r| r.attempt == 1 && !r.is_manual()), "no plan needed a second attempt");

        // The side table: every plan of the range ran exactly once, whichever runner ran it.
        let runs: Vec<SideRun> = side
            .runs()
            .await
            .into_iter()
            .filter(|r| r.plan_time >= from && r.plan_time < to)
            .collect();
        let mut per_plan: HashMap<(String, DateTime<Utc>), usize> = HashMap::new();
        for run in &runs {
            *per_plan.entry((run.scope_id.clone(), run.plan_time)).or_default() += 1;
        }
        let twice: Vec<_> = per_plan.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "plans run more than once: {twice:?}");
        assert_eq!(per_plan.len(), expected, "every plan of the range ran");
        let by_runner: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.runner.as_str()).or_default() += 1;
            m
        });
        eprintln!("{}: plans run per runner: {by_runner:?}", db.backend);
    }
}
