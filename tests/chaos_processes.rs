//! Chaos with real processes (SPEC §5, R5, R20): several scheduler processes on one database, a
//! process killed with SIGKILL in the middle of a run, and a process paused with SIGSTOP for
//! longer than `stale_timeout` and woken once another took its plans (a zombie, as after a GC
//! pause or a VM freeze).
//!
//! The runners are child processes: this test binary run again with `--exact child_runner` and
//! a JSON [`ChildConfig`] in `CRONLEASE_CHAOS_CHILD`. Their handlers record every run in a side
//! table of the test's database (the same SQLite file, or the same PostgreSQL schema), which the
//! parent checks against the executions table. Children are killed if the test fails
//! ([`Children`] kills on drop), and every wait is bounded.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::chaos::{Children, DbLocation, FaultyStore, SidePool, SideRun, all_rows, poll};
use common::tenants;
use cronlease::{
    CatchUp, DbRetry, JobContext, JobError, JobOutput, JobSpec, Scheduler, Status, floor_plan,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The environment variable that turns this binary into a runner process.
const CHILD_ENV: &str = "CRONLEASE_CHAOS_CHILD";
/// How long the contention test lets four processes compete.
const CONTENTION_SECS: u64 = 30;
/// Scopes of the contention job.
const CONTENTION_SCOPES: usize = 200;
/// Scopes of the zombie job.
const ZOMBIE_SCOPES: usize = 3;
/// Scopes of the overlap job.
const OVERLAP_SCOPES: usize = 3;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Scenario {
    /// 200 scopes every second, EveryPlan catch-up; the handler records its run.
    Contention,
    /// The same under `AllowAll`: claims without a guard (the plain claim).
    ContentionAllowAll,
    /// One hourly plan whose handler runs 3 s, recording its start and end.
    Kill,
    /// Three hourly plans whose handlers work 3 s in 200 ms steps, recording their start and
    /// end, and noting in a file when they are stopped before the end.
    Zombie,
    /// 20 scopes every second, EveryPlan catch-up; some plans fail their first attempt and
    /// are retried after 2 s. Runners may live under a shifted clock (`faketime`).
    Clock,
    /// Three scopes every second under the default overlap policy (`Skip`), with handlers that
    /// work 2.5 s, recording their start and end.
    Overlap,
}

/// What a runner process does.
#[derive(Debug, Serialize, Deserialize)]
struct ChildConfig {
    scenario: Scenario,
    runner_id: String,
    db: DbLocation,
    /// The test database's clock skew (mid-hour pinning), so every process plans alike.
    skew_ms: i64,
    /// The runner shuts down gracefully once this file exists...
    stop_file: PathBuf,
    /// ... or after this long, whatever happens.
    max_run_secs: u64,
}

/// Not a test: the entry point of the runner processes the tests below start. Run without
/// `CRONLEASE_CHAOS_CHILD` (as in a normal `cargo test`), it returns at once.
#[test]
fn child_runner() {
    let Ok(json) = std::env::var(CHILD_ENV) else {
        return;
    };
    let config: ChildConfig = serde_json::from_str(&json).expect("child config");
    // The process's metrics, for the parent: deadlocks its store calls met.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the child's metrics recorder");
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,cronlease=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    actix_rt::System::new().block_on(run_child(config, snapshotter));
}

async fn run_child(config: ChildConfig, metrics: metrics_util::debugging::Snapshotter) {
    let skew = TimeDelta::milliseconds(config.skew_ms);
    let store = FaultyStore::new(config.db.store(skew, 4).await);
    let side = config.db.side().await;
    let dir = config
        .stop_file
        .parent()
        .expect("the test's directory")
        .to_owned();
    let job = match config.scenario {
        Scenario::Contention => contention_job(side, cronlease::OverlapPolicy::Skip),
        Scenario::ContentionAllowAll => contention_job(side, cronlease::OverlapPolicy::AllowAll),
        Scenario::Kill => kill_job(side),
        Scenario::Zombie => zombie_job(side, dir.join(format!("{}.stopped", config.runner_id))),
        Scenario::Clock => clock_job(side),
        Scenario::Overlap => overlap_job(side),
    };
    // The process's own clock against the database's, for the parent to check a shift.
    let offset = Utc::now()
        - cronlease::Store::db_now(&*store)
            .await
            .expect("read the database clock");
    std::fs::write(
        dir.join(format!("{}.clock", config.runner_id)),
        offset.num_milliseconds().to_string(),
    )
    .expect("write the clock offset");
    let scheduler = Scheduler::builder_shared(store.clone())
        .runner_id(config.runner_id.clone())
        .tick_interval(Duration::from_secs(1))
        .shutdown_grace(Duration::from_secs(2))
        .db_retry(DbRetry {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        })
        .job(job)
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
    // What its writes met, for the parent: how many were fenced out by a lease token.
    let fenced: BTreeMap<&str, usize> = [
        "execution_heartbeat",
        "execution_finish_success",
        "execution_finish_failure",
    ]
    .into_iter()
    .map(|op| (op, store.stats(op).fenced))
    .collect();
    std::fs::write(
        dir.join(format!("{}.fenced.json", config.runner_id)),
        serde_json::to_string(&fenced).unwrap(),
    )
    .expect("write the fenced counts");
    let mut deadlocks: BTreeMap<String, u64> = BTreeMap::new();
    for (key, _, _, value) in metrics.snapshot().into_vec() {
        if let metrics_util::debugging::DebugValue::Counter(n) = value
            && key.key().name() == cronlease::telemetry::DB_DEADLOCKS
        {
            for label in key.key().labels() {
                *deadlocks.entry(label.value().to_owned()).or_default() += n;
            }
        }
    }
    std::fs::write(
        dir.join(format!("{}.deadlocks.json", config.runner_id)),
        serde_json::to_string(&deadlocks).unwrap(),
    )
    .expect("write the deadlock counts");
    eprintln!("runner {} stopped", config.runner_id);
}

fn contention_job(side: SidePool, overlap: cronlease::OverlapPolicy) -> JobSpec {
    JobSpec::builder("contention")
        .overlap(overlap)
        .every("1s")
        .scopes(tenants(CONTENTION_SCOPES))
        .catch_up(CatchUp::EveryPlan {
            window: Duration::from_secs(300),
            max_plans_per_tick: 5,
        })
        .run_timeout(Duration::from_secs(10))
        .stale_timeout(Duration::from_secs(30))
        .handler(move |ctx: JobContext| {
            let side = side.clone();
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "run")).await?;
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("contention job")
}

fn kill_job(side: SidePool) -> JobSpec {
    JobSpec::builder("kill9")
        .every("1h")
        .run_timeout(Duration::from_secs(4))
        .stale_timeout(Duration::from_secs(5))
        .heartbeat_interval(Duration::from_secs(1))
        .handler(move |ctx: JobContext| {
            let side = side.clone();
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "start")).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                side.record(&SideRun::of(&ctx, run_id, "end")).await?;
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("kill job")
}

fn zombie_job(side: SidePool, stopped_log: PathBuf) -> JobSpec {
    JobSpec::builder("zombie")
        .every("1h")
        .scopes(tenants(ZOMBIE_SCOPES))
        .run_timeout(Duration::from_secs(4))
        .stale_timeout(Duration::from_secs(5))
        .heartbeat_interval(Duration::from_secs(1))
        .handler(move |ctx: JobContext| {
            let (side, stopped_log) = (side.clone(), stopped_log.clone());
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "start")).await?;
                // Notes the moment the runtime stops this run (cancels it, or drops it at its
                // run_timeout) before its work is done: one line `<run id> <unix ms>`.
                struct Stopped {
                    log: PathBuf,
                    run_id: Uuid,
                    done: bool,
                }
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        if !self.done {
                            use std::io::Write;
                            let ms = Utc::now().timestamp_millis();
                            let mut file = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&self.log)
                                .expect("the stopped log");
                            // One write per line: runs on other threads append too.
                            let line = format!("{} {ms}\n", self.run_id);
                            let _ = file.write_all(line.as_bytes());
                        }
                    }
                }
                let mut stopped = Stopped {
                    log: stopped_log,
                    run_id,
                    done: false,
                };
                for _ in 0..15 {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = ctx.cancelled() => return Err(JobError::retryable("cancelled")),
                    }
                }
                stopped.done = true;
                side.record(&SideRun::of(&ctx, run_id, "end")).await?;
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("zombie job")
}

/// Scopes of the clock job.
const CLOCK_SCOPES: usize = 20;
/// The clock job's retry delay.
const CLOCK_RETRY: Duration = Duration::from_secs(2);

/// Whether the clock job's first attempt of this plan fails (about one plan in five).
fn fails_first(scope: &str, plan_time: DateTime<Utc>) -> bool {
    (scope.parse::<i64>().unwrap_or(0) + plan_time.timestamp()) % 5 == 0
}

fn clock_job(side: SidePool) -> JobSpec {
    JobSpec::builder("clock")
        .every("1s")
        .scopes(tenants(CLOCK_SCOPES))
        .catch_up(CatchUp::EveryPlan {
            window: Duration::from_secs(300),
            max_plans_per_tick: 5,
        })
        .run_timeout(Duration::from_secs(10))
        .stale_timeout(Duration::from_secs(30))
        .backoff(cronlease::Backoff::List(vec![CLOCK_RETRY]))
        .handler(move |ctx: JobContext| {
            let side = side.clone();
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "run")).await?;
                if ctx.attempt() == 1 && fails_first(&ctx.scope().id, ctx.plan_time()) {
                    return Err(JobError::retryable("first attempts of these plans fail"));
                }
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("clock job")
}

fn overlap_job(side: SidePool) -> JobSpec {
    JobSpec::builder("overlap")
        .every("1s")
        .scopes(tenants(OVERLAP_SCOPES))
        .run_timeout(Duration::from_secs(10))
        .stale_timeout(Duration::from_secs(30))
        .handler(move |ctx: JobContext| {
            let side = side.clone();
            async move {
                let run_id = Uuid::new_v4();
                side.record(&SideRun::of(&ctx, run_id, "start")).await?;
                tokio::time::sleep(Duration::from_millis(2500)).await;
                side.record(&SideRun::of(&ctx, run_id, "end")).await?;
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .expect("overlap job")
}

/// Starts runner processes `names` for `scenario` on `db`.
fn spawn_runners(
    children: &mut Children,
    db: &common::TestDb,
    scenario: Scenario,
    names: &[&str],
    dir: &std::path::Path,
    max_run_secs: u64,
) {
    for name in names {
        let config = ChildConfig {
            scenario,
            runner_id: (*name).to_owned(),
            db: DbLocation::of(db),
            skew_ms: db.base_skew.num_milliseconds(),
            stop_file: dir.join("stop"),
            max_run_secs,
        };
        let json = serde_json::to_string(&config).unwrap();
        children.spawn(name, "child_runner", &[(CHILD_ENV, json)], dir);
    }
}

/// Asks the runners to stop gracefully and checks that each exited cleanly.
fn stop_runners(children: &mut Children, dir: &std::path::Path) {
    std::fs::write(dir.join("stop"), b"stop").unwrap();
    for (name, status) in children.wait_all(Duration::from_secs(60)) {
        assert!(status.success(), "runner {name} exited with {status}");
    }
}

fn run_id(row: &cronlease::Execution) -> &str {
    row.result["run_id"].as_str().unwrap_or_default()
}

/// Whether `row` is a plan the default overlap policy (`Skip`) rightly did not run: recorded
/// SKIPPED with the code `overlap`, and another run of its scope had started before the plan came
/// due and was still running then (`rows`: the job's rows). On a loaded machine a handler of the
/// contention job can outlast its 1 s cadence, and this is what `Skip` promises then.
fn skipped_for_overlap(row: &cronlease::Execution, rows: &[cronlease::Execution]) -> bool {
    row.status == Status::Skipped
        && row.error_code.as_deref() == Some("overlap")
        && rows.iter().any(|other| {
            other.scope == row.scope
                && other.plan_time < row.plan_time
                && other.started_at.is_some_and(|at| at < row.plan_time)
                // The end is written after the skip was decided at or after the plan time; one
                // second of slack for a statement clock read at its transaction's start.
                && other
                    .finished_at
                    .is_some_and(|at| at + TimeDelta::seconds(1) > row.plan_time)
        })
}

on_every_backend! {
    async fn four_processes_run_every_plan_exactly_once(db: TestDb) {
        four_processes_contend(db, Scenario::Contention).await;
    }
}

on_every_backend! {
    async fn four_processes_run_every_plan_exactly_once_with_overlap_allowed(db: TestDb) {
        // Under `AllowAll` the claims are plain claims: before they took the job's claim lock on
        // MySQL, a claim's insert waited for a rival's new row by plan key while holding rows by
        // id, and replicas deadlocked (10 in one run).
        four_processes_contend(db, Scenario::ContentionAllowAll).await;
    }
}

/// Four replicas contend for the same plans; every plan runs once and no statement deadlocks.
async fn four_processes_contend(db: common::TestDb, scenario: Scenario) {
    {
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let names = ["runner-0", "runner-1", "runner-2", "runner-3"];
        let mut children = Children::default();
        let started = Instant::now();
        spawn_runners(
            &mut children,
            &db,
            scenario,
            &names,
            dir.path(),
            CONTENTION_SECS + 120,
        );

        actix_rt::time::sleep(Duration::from_secs(CONTENTION_SECS)).await;
        // The window ends a little before now; the runners get (bounded) time to finish it.
        let end = floor_plan(db.store.db_now().await.unwrap(), Duration::from_secs(1))
            - TimeDelta::seconds(2);
        let window = poll(Duration::from_secs(90), || async {
            let rows = all_rows(&*db.store, "contention").await;
            let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
            for row in &rows {
                let at = first.entry(row.scope.id.as_str()).or_insert(row.plan_time);
                *at = (*at).min(row.plan_time);
            }
            if first.len() < CONTENTION_SCOPES {
                return None;
            }
            // Every scope has started by `start`: from there on, no plan may be missing.
            let start = *first.values().max().unwrap();
            let expected = CONTENTION_SCOPES * ((end - start).num_seconds() + 1).max(0) as usize;
            // Done: run, or skipped by the overlap policy because its scope was still running.
            let done = rows
                .iter()
                .filter(|r| r.plan_time >= start && r.plan_time <= end)
                .filter(|r| r.status == Status::Success || skipped_for_overlap(r, &rows))
                .count();
            let statuses = rows.iter().fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.status.as_str()).or_insert(0) += 1;
                m
            });
            eprintln!("contention [{}]: {done}/{expected} plans of the window done; rows by status {statuses:?}", db.backend);
            (done == expected).then_some(start)
        })
        .await;
        let catch_up = started.elapsed();
        let start = window.expect("every plan of the window SUCCESS within 90 s of its end");
        stop_runners(&mut children, dir.path());

        let rows = all_rows(&*db.store, "contention").await;
        let runs = side.runs().await;
        let plans_per_scope = (end - start).num_seconds() + 1;
        assert!(
            plans_per_scope >= 20,
            "a window of {plans_per_scope} plans is too short to show anything"
        );
        let by_plan: HashMap<(&str, DateTime<Utc>), &cronlease::Execution> = rows
            .iter()
            .map(|r| ((r.scope.id.as_str(), r.plan_time), r))
            .collect();
        assert_eq!(by_plan.len(), rows.len(), "one row per plan");
        let mut runs_by_plan: HashMap<(&str, DateTime<Utc>), Vec<&SideRun>> = HashMap::new();
        for run in &runs {
            runs_by_plan
                .entry((run.scope_id.as_str(), run.plan_time))
                .or_default()
                .push(run);
        }
        // No attempt of any plan ever ran twice: a lease had one holder at a time.
        let attempts: HashSet<(&str, DateTime<Utc>, i64)> = runs
            .iter()
            .map(|r| (r.scope_id.as_str(), r.plan_time, r.attempt))
            .collect();
        assert_eq!(attempts.len(), runs.len(), "an attempt ran twice");

        let mut in_window = 0;
        let mut skipped = 0;
        for scope in tenants(CONTENTION_SCOPES) {
            let mut plan = start;
            while plan <= end {
                let key = (scope.id.as_str(), plan);
                let row = by_plan
                    .get(&key)
                    .unwrap_or_else(|| panic!("plan {key:?} missing"));
                if skipped_for_overlap(row, &rows) {
                    assert!(!runs_by_plan.contains_key(&key), "{key:?} skipped but ran");
                    skipped += 1;
                    plan += TimeDelta::seconds(1);
                    continue;
                }
                assert_eq!(row.status, Status::Success, "{key:?}: {row:?}");
                assert_eq!(
                    (row.attempt, row.failures.len()),
                    (1, 0),
                    "{key:?} failed once: {row:?}"
                );
                let ran = runs_by_plan.get(&key).map_or(&[][..], Vec::as_slice);
                assert_eq!(ran.len(), 1, "{key:?} ran {} times", ran.len());
                assert_eq!(
                    (ran[0].run_id.as_str(), ran[0].runner.as_str()),
                    (run_id(row), row.runner_id.as_str())
                );
                in_window += 1;
                plan += TimeDelta::seconds(1);
            }
        }
        // Outside the window too: nothing stuck RUNNING, and the only failures are attempts
        // interrupted by the graceful stop.
        for row in &rows {
            assert_ne!(row.status, Status::Running, "stuck: {row:?}");
            for failure in &row.failures {
                assert_eq!(failure.code, "canceled", "{row:?}");
            }
        }
        let mut per_runner: BTreeMap<&str, usize> = BTreeMap::new();
        for run in &runs {
            *per_runner.entry(run.runner.as_str()).or_default() += 1;
        }
        for name in names {
            assert!(
                per_runner.get(name).copied().unwrap_or(0) > 0,
                "{name} ran nothing: {per_runner:?}"
            );
        }
        // The replicas' own statements never deadlocked each other (PostgreSQL 40P01, MySQL
        // 1213), as counted by each process's `cronlease_db_deadlocks_total`.
        let mut deadlocks: BTreeMap<String, u64> = BTreeMap::new();
        for name in names {
            let file = dir.path().join(format!("{name}.deadlocks.json"));
            let counted: BTreeMap<String, u64> =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            for (operation, n) in counted {
                *deadlocks.entry(operation).or_default() += n;
            }
        }
        assert!(
            deadlocks.is_empty(),
            "the replicas' statements deadlocked: {deadlocks:?}"
        );
        println!(
            "contention [{}]: 4 processes, {CONTENTION_SCOPES} scopes, {plans_per_scope} plans each in the window = {in_window} executions, each SUCCESS once and run once, and {skipped} plans skipped while their scope ran; {} rows, {} runs in all; runs per runner {per_runner:?}; window done {:.1} s after the start; deadlocks counted by the replicas' metrics: {deadlocks:?}",
            db.backend,
            rows.len(),
            runs.len(),
            catch_up.as_secs_f64(),
        );
    }
}

on_every_backend! {
    async fn four_processes_never_overlap_two_plans_of_a_scope_under_skip(db: TestDb) {
        // Handlers work 2.5 s on a 1 s cadence, four processes compete: by the side table's
        // start and end records, no two runs of a scope ever overlapped, and the plans that came
        // due meanwhile are recorded SKIPPED.
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let names = ["overlap-0", "overlap-1", "overlap-2", "overlap-3"];
        let mut children = Children::default();
        spawn_runners(&mut children, &db, Scenario::Overlap, &names, dir.path(), 120);
        poll(Duration::from_secs(60), || async {
            let ends = side.runs().await.iter().filter(|r| r.phase == "end").count();
            (ends >= 4 * OVERLAP_SCOPES).then_some(())
        })
        .await
        .expect("four runs per scope within 60 s");
        stop_runners(&mut children, dir.path());

        let runs = side.runs().await;
        let mut spans: HashMap<&str, (&str, i64, Option<i64>)> = HashMap::new();
        for run in &runs {
            let span = spans.entry(run.run_id.as_str()).or_insert((run.scope_id.as_str(), 0, None));
            match run.phase.as_str() {
                "start" => span.1 = run.at_ms,
                _ => span.2 = Some(run.at_ms),
            }
        }
        let mut by_scope: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
        for (scope, start, end) in spans.into_values() {
            // A run cut short at shutdown has no end: it ran until the end of the test.
            by_scope.entry(scope).or_default().push((start, end.unwrap_or(i64::MAX)));
        }
        for (scope, mut spans) in by_scope.clone() {
            spans.sort();
            for pair in spans.windows(2) {
                assert!(pair[1].0 >= pair[0].1, "scope {scope}: runs {:?} and {:?} overlapped", pair[0], pair[1]);
            }
        }
        let rows = all_rows(&*db.store, "overlap").await;
        let skipped = rows.iter().filter(|r| r.status == Status::Skipped).count();
        assert!(skipped > 0, "plans came due during runs: {rows:?}");
        let runners: HashSet<&str> = runs.iter().map(|r| r.runner.as_str()).collect();
        println!(
            "overlap [{}]: 4 processes, {OVERLAP_SCOPES} scopes, 2.5 s runs every 1 s: {} runs, none overlapping in a scope, {skipped} plans skipped, runs by {} runners",
            db.backend,
            runs.iter().filter(|r| r.phase == "start").count(),
            runners.len(),
        );
    }
}

on_every_backend! {
    async fn a_runner_killed_mid_run_is_taken_over_and_succeeds_at_attempt_two(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let mut children = Children::default();
        spawn_runners(&mut children, &db, Scenario::Kill, &["kill-a", "kill-b"], dir.path(), 120);

        let first = poll(Duration::from_secs(30), || async {
            side.runs().await.into_iter().find(|r| r.phase == "start")
        })
        .await
        .expect("a run starts within 30 s");
        let victim = first.runner.clone();
        let survivor = if victim == "kill-a" { "kill-b" } else { "kill-a" };
        children.kill(&victim);
        let killed_at = db.store.db_now().await.unwrap();

        let row = poll(Duration::from_secs(60), || async {
            all_rows(&*db.store, "kill9").await.into_iter().find(|r| r.status == Status::Success)
        })
        .await
        .expect("the plan succeeds within 60 s of the kill");
        stop_runners(&mut children, dir.path());

        let rows = all_rows(&*db.store, "kill9").await;
        assert_eq!(rows.len(), 1, "one plan, one row: {rows:?}");
        assert_eq!((row.status, row.attempt, row.runner_id.as_str()), (Status::Success, 2, survivor));
        assert_eq!(row.failures.len(), 1, "{row:?}");
        assert_eq!(row.failures[0].code, "stale_timeout");
        let runs = side.runs().await;
        let starts: Vec<_> = runs.iter().filter(|r| r.phase == "start").collect();
        let ends: Vec<_> = runs.iter().filter(|r| r.phase == "end").collect();
        assert_eq!(starts.len(), 2, "{runs:?}");
        assert_eq!((starts[0].runner.as_str(), starts[0].attempt), (victim.as_str(), 1));
        assert_eq!((starts[1].runner.as_str(), starts[1].attempt), (survivor, 2));
        assert_eq!(ends.len(), 1, "the victim died mid-run: {runs:?}");
        assert_eq!((ends[0].runner.as_str(), ends[0].run_id.as_str()), (survivor, run_id(&row)));

        let takeover = row.started_at.unwrap() - killed_at;
        let recovery = row.finished_at.unwrap() - killed_at;
        println!(
            "kill -9 [{}]: victim {victim} killed 3 s handler mid-run; {survivor} took over after {:.2} s and recorded SUCCESS (attempt 2) {:.2} s after the kill (stale_timeout 5 s, heartbeat 1 s, tick 1 s)",
            db.backend,
            takeover.num_milliseconds() as f64 / 1000.0,
            recovery.num_milliseconds() as f64 / 1000.0,
        );
    }
}

on_every_backend! {
    async fn a_paused_runner_wakes_as_a_fenced_zombie(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let mut children = Children::default();
        spawn_runners(&mut children, &db, Scenario::Zombie, &["zombie-a", "zombie-b"], dir.path(), 180);

        let first = poll(Duration::from_secs(30), || async {
            side.runs().await.into_iter().find(|r| r.phase == "start")
        })
        .await
        .expect("a run starts within 30 s");
        let zombie = first.runner.clone();
        let survivor = if zombie == "zombie-a" { "zombie-b" } else { "zombie-a" };
        children.signal(&zombie, "STOP");
        let stopped_at = db.store.db_now().await.unwrap();
        let t_stop = Instant::now();
        // The plans the zombie held when it froze (its starts recorded so far).
        let held: Vec<SideRun> = side.runs().await.into_iter().filter(|r| r.runner == zombie && r.phase == "start").collect();
        assert!(!held.is_empty());

        // Another runner takes every plan the zombie held, then the zombie wakes.
        poll(Duration::from_secs(60), || async {
            let rows = all_rows(&*db.store, "zombie").await;
            held.iter()
                .all(|h| rows.iter().any(|r| r.scope.id == h.scope_id && r.plan_time == h.plan_time && r.runner_id == survivor && r.attempt >= 2))
                .then_some(())
        })
        .await
        .expect("the survivor takes the zombie's plans within 60 s");
        // Frozen well past stale_timeout (5 s) measured from the freeze, not only from its
        // last heartbeat: the survivor is running or has finished the plans when it wakes.
        actix_rt::time::sleep(Duration::from_secs(8).saturating_sub(t_stop.elapsed())).await;
        let paused = t_stop.elapsed();
        children.signal(&zombie, "CONT");
        let woke_at = db.store.db_now().await.unwrap();
        let woke_ms = Utc::now().timestamp_millis();

        let rows = poll(Duration::from_secs(60), || async {
            let rows = all_rows(&*db.store, "zombie").await;
            (rows.len() == ZOMBIE_SCOPES && rows.iter().all(|r| r.status == Status::Success)).then_some(rows)
        })
        .await
        .expect("every plan SUCCESS within 60 s of the wake");
        // The zombie's stopped runs are noted when the runtime stops them after the wake.
        let stopped_log = dir.path().join(format!("{zombie}.stopped"));
        let stopped: HashMap<String, i64> = poll(Duration::from_secs(30), || async {
            let text = std::fs::read_to_string(&stopped_log).unwrap_or_default();
            // Complete lines only: the child may be writing one right now.
            let stopped: HashMap<String, i64> = text
                .split_inclusive('\n')
                .filter_map(|l| l.strip_suffix('\n')?.split_once(' '))
                .map(|(id, ms)| (id.to_owned(), ms.parse().expect("unix ms")))
                .collect();
            held.iter().all(|h| stopped.contains_key(&h.run_id)).then_some(stopped)
        })
        .await
        .expect("the zombie's runs are stopped after the wake");
        stop_runners(&mut children, dir.path());

        let runs = side.runs().await;
        // Every plan has exactly one SUCCESS, recorded by the survivor's own run.
        assert_eq!(rows.len(), ZOMBIE_SCOPES);
        for row in &rows {
            assert_eq!((row.status, row.runner_id.as_str()), (Status::Success, survivor), "{row:?}");
            let run = runs.iter().find(|r| r.run_id == run_id(row) && r.phase == "end");
            assert_eq!(run.expect("the result is a finished run's own").runner, survivor);
            for failure in &row.failures {
                assert_eq!(failure.code, "stale_timeout", "{row:?}");
            }
        }
        // The zombie's runs never finished their work; each was stopped after the wake.
        for h in &held {
            assert!(!runs.iter().any(|r| r.run_id == h.run_id && r.phase == "end"), "a zombie run finished: {h:?}");
            assert!(stopped[&h.run_id] >= woke_ms - 1000, "stopped before the pause ended: {h:?}");
        }
        // Its late writes matched no row.
        let fenced: BTreeMap<String, usize> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("{zombie}.fenced.json"))).unwrap()).unwrap();
        let terminal = fenced["execution_finish_success"] + fenced["execution_finish_failure"];
        assert!(terminal >= held.len(), "{fenced:?}");
        let stop_after_wake: Vec<f64> = held.iter().map(|h| (stopped[&h.run_id] - woke_ms) as f64 / 1000.0).collect();
        println!(
            "zombie [{}]: {zombie} frozen (SIGSTOP) {:.1} s with {} runs in flight (stale_timeout 5 s, run_timeout 4 s, heartbeat 1 s); {survivor} took every plan over; after SIGCONT the zombie's runs were stopped {stop_after_wake:?} s after the wake, its writes fenced out {fenced:?} (matched no row); every plan one SUCCESS by {survivor}; frozen at {stopped_at}, woke at {woke_at}",
            db.backend,
            paused.as_secs_f64(),
            held.len(),
        );
    }
}

/// One replica at +1 h and one at -1 h (`faketime` on the process) share the contention work
/// with one on the true clock. PostgreSQL and MySQL only: a SQLite database's clock is read by
/// SQLite inside each process, so shifting a process's clock shifts its database clock too (on
/// one machine every process shares the real clock, so the case does not arise without such a
/// tool).
#[actix::test]
async fn a_runners_own_clock_is_irrelevant_postgres() {
    match common::postgres().await {
        Some(db) => a_runners_own_clock_is_irrelevant(db).await,
        None => eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR),
    }
}

#[actix::test]
async fn a_runners_own_clock_is_irrelevant_mysql() {
    match common::mysql().await {
        Some(db) => a_runners_own_clock_is_irrelevant(db).await,
        None => eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR),
    }
}

async fn a_runners_own_clock_is_irrelevant(db: common::TestDb) {
    let Some(library) = common::chaos::faketime_library() else {
        eprintln!(
            "skipped: libfaketime is not installed (apt-get install -y faketime); under CI=true this fails"
        );
        return;
    };
    const SECS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let side = DbLocation::of(&db).side().await;
    side.create().await;
    let mut children = Children::default();
    let started_at = db.store.db_now().await.unwrap();
    let shifts = [
        ("true-clock", None),
        ("ahead-1h", Some("+3600")),
        ("behind-1h", Some("-3600")),
    ];
    for (name, shift) in shifts {
        let config = ChildConfig {
            scenario: Scenario::Clock,
            runner_id: name.to_owned(),
            db: DbLocation::of(&db),
            skew_ms: db.base_skew.num_milliseconds(),
            stop_file: dir.path().join("stop"),
            max_run_secs: SECS + 120,
        };
        let mut env = vec![(CHILD_ENV, serde_json::to_string(&config).unwrap())];
        if let Some(shift) = shift {
            env.push(("LD_PRELOAD", library.display().to_string()));
            env.push(("FAKETIME", shift.to_owned()));
            env.push(("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()));
            env.push(("DONT_FAKE_MONOTONIC", "1".to_owned()));
        }
        children.spawn(name, "child_runner", &env, dir.path());
    }
    actix_rt::time::sleep(Duration::from_secs(SECS)).await;
    let end = floor_plan(db.store.db_now().await.unwrap(), Duration::from_secs(1))
        - TimeDelta::seconds(4);
    let window = poll(Duration::from_secs(90), || async {
        let rows = all_rows(&*db.store, "clock").await;
        let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for row in &rows {
            let at = first.entry(row.scope.id.as_str()).or_insert(row.plan_time);
            *at = (*at).min(row.plan_time);
        }
        if first.len() < CLOCK_SCOPES {
            return None;
        }
        let start = *first.values().max().unwrap();
        let expected = CLOCK_SCOPES * ((end - start).num_seconds() + 1).max(0) as usize;
        let done = rows
            .iter()
            .filter(|r| r.plan_time >= start && r.plan_time <= end && r.status == Status::Success)
            .count();
        (done == expected).then_some(start)
    })
    .await;
    let start = window.expect("every plan of the window SUCCESS within 90 s of its end");
    let ended_at = db.store.db_now().await.unwrap();
    stop_runners(&mut children, dir.path());

    // The shifts took effect.
    let mut offsets = BTreeMap::new();
    for (name, shift) in shifts {
        let ms: i64 = std::fs::read_to_string(dir.path().join(format!("{name}.clock")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The test database's clock is pinned mid-hour (base skew): offsets are against that.
        let offset = (ms + db.base_skew.num_milliseconds()) as f64 / 1000.0;
        let wanted = shift.map_or(0.0, |s| s.parse::<f64>().unwrap());
        assert!(
            (offset - wanted).abs() < 60.0,
            "{name}: clock offset {offset} s, wanted {wanted} s"
        );
        offsets.insert(name, offset);
    }

    let rows = all_rows(&*db.store, "clock").await;
    let runs = side.runs().await;
    // No extra rows: one per plan, every plan time on the cadence and inside the run (neither
    // an hour ahead nor an hour behind).
    let plans: HashSet<(&str, DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.scope.id.as_str(), r.plan_time))
        .collect();
    assert_eq!(plans.len(), rows.len(), "one row per plan");
    for row in &rows {
        assert_eq!(
            row.plan_time,
            floor_plan(row.plan_time, Duration::from_secs(1)),
            "{row:?}"
        );
        assert!(
            row.plan_time >= floor_plan(started_at, Duration::from_secs(1)) - TimeDelta::seconds(1)
                && row.plan_time <= ended_at,
            "a plan outside the run: {row:?}"
        );
        assert_ne!(row.status, Status::Running, "stuck: {row:?}");
        // No live lease was stolen.
        for failure in &row.failures {
            assert!(
                ["handler_error", "canceled"].contains(&failure.code.as_str()),
                "{row:?}"
            );
        }
    }
    let mut runs_by_plan: HashMap<(&str, DateTime<Utc>), Vec<&SideRun>> = HashMap::new();
    for run in &runs {
        runs_by_plan
            .entry((run.scope_id.as_str(), run.plan_time))
            .or_default()
            .push(run);
    }
    let (mut checked, mut retried) = (0, 0);
    for row in rows
        .iter()
        .filter(|r| r.plan_time >= start && r.plan_time <= end)
    {
        let key = (row.scope.id.as_str(), row.plan_time);
        let ran = &runs_by_plan[&key];
        assert_eq!(row.status, Status::Success, "{row:?}");
        if fails_first(&row.scope.id, row.plan_time) {
            // Retried once, not before its retry time (both database clock).
            assert_eq!((row.attempt, row.failures.len()), (2, 1), "{row:?}");
            let due =
                row.failures[0].finished_at.unwrap() + TimeDelta::from_std(CLOCK_RETRY).unwrap();
            assert!(row.started_at.unwrap() >= due, "retried early: {row:?}");
            assert_eq!(ran.len(), 2, "{key:?}");
            retried += 1;
        } else {
            assert_eq!((row.attempt, row.failures.len()), (1, 0), "{row:?}");
            assert_eq!(ran.len(), 1, "{key:?} ran {} times", ran.len());
        }
        assert!(
            ran.iter()
                .any(|r| r.run_id == run_id(row) && r.runner == row.runner_id)
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        CLOCK_SCOPES * ((end - start).num_seconds() + 1) as usize
    );
    let mut per_runner: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        *per_runner.entry(run.runner.as_str()).or_default() += 1;
    }
    for (name, _) in shifts {
        assert!(
            per_runner.get(name).copied().unwrap_or(0) > 0,
            "{name} ran nothing: {per_runner:?}"
        );
    }
    println!(
        "shifted clocks [{}]: 3 processes, clock offsets against the database {offsets:?} s; {checked} plans in the window, {retried} of them retried once after 2 s (never early), the rest run once; every plan time on the cadence and inside the run; no lease stolen; runs per runner {per_runner:?}",
        db.backend,
    );
}

on_every_backend! {
    async fn a_pause_set_by_a_tool_is_obeyed_by_every_process_within_a_tick(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let side = DbLocation::of(&db).side().await;
        side.create().await;
        let names = ["runner-0", "runner-1", "runner-2"];
        let mut children = Children::default();
        spawn_runners(&mut children, &db, Scenario::Contention, &names, dir.path(), 120);
        // Every process is working before the pause.
        poll(Duration::from_secs(60), || async {
            let runs = side.runs().await;
            let runners: HashSet<&str> = runs.iter().map(|r| r.runner.as_str()).collect();
            (runners.len() == names.len()).then_some(())
        })
        .await
        .expect("every runner ran plans within 60 s");

        // Paused through the store, as a tool with only the database would.
        let store = &*db.store;
        let pause = store
            .pause_set(&cronlease::Pause::new("contention", None, "ops", "upstream maintenance"))
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_secs(4)).await;
        // A tick that read the clock before the pause plans at most up to it; every later tick
        // of every process obeys it.
        let late: Vec<String> = all_rows(store, "contention")
            .await
            .iter()
            .filter(|r| r.plan_time > pause.paused_at)
            .map(|r| format!("{} {} by {}", r.scope, r.plan_time, r.runner_id))
            .collect();
        assert!(late.is_empty(), "plans started while paused: {late:?}");
        assert!(side.runs().await.iter().all(|r| r.plan_time <= pause.paused_at));

        assert!(store.pause_clear("contention", None).await.unwrap());
        let resumed_at = store.db_now().await.unwrap();
        // EveryPlan: the plans that came due while paused run after the resume, once each.
        let first = floor_plan(pause.paused_at, Duration::from_secs(1)) + TimeDelta::seconds(1);
        let last = floor_plan(resumed_at, Duration::from_secs(1));
        let expected = CONTENTION_SCOPES * ((last - first).num_seconds() + 1) as usize;
        // Done: run, or skipped by the overlap policy because its scope was still running.
        let skipped = poll(Duration::from_secs(60), || async {
            let rows = all_rows(store, "contention").await;
            let paused_time = || rows.iter().filter(|r| r.plan_time >= first && r.plan_time <= last);
            let ran = paused_time().filter(|r| r.status == Status::Success).count();
            let skipped = paused_time().filter(|r| skipped_for_overlap(r, &rows)).count();
            (ran + skipped == expected).then_some(skipped)
        })
        .await
        .expect("every plan of the paused time SUCCESS or skipped within 60 s of the resume");
        stop_runners(&mut children, dir.path());

        let runs = side.runs().await;
        let mut runs_of_paused_time: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
        for run in runs.iter().filter(|r| r.plan_time >= first && r.plan_time <= last) {
            *runs_of_paused_time.entry((run.scope_id.as_str(), run.plan_time)).or_default() += 1;
        }
        assert_eq!(runs_of_paused_time.len(), expected - skipped);
        assert!(runs_of_paused_time.values().all(|&n| n == 1), "a plan ran twice");
        // The ledger keeps the paused interval, with who and why.
        let ledger = store.skip_list(Some("contention"), 10).await.unwrap();
        assert!(
            ledger.iter().any(|s| s.reason == cronlease::SkipReason::Paused
                && s.from == pause.paused_at
                && s.detail.contains("upstream maintenance")),
            "{ledger:?}"
        );
    }
}
