//! End-to-end throughput of cronlease on this machine, comparable with other job systems.
//!
//! ```sh
//! cargo run --release --example throughput -- --scopes 10000 --backend sqlite
//! cargo run --release --example throughput -- --scopes 10000 --backend postgres \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! cargo run --release --example throughput -- --scopes 10000 --backend mysql \
//!     --database-url mysql://root@127.0.0.1:3306/test
//! ```
//!
//! Prints `executions/s: X` (no-op handler, one due plan per scope, from the tick until every row
//! is SUCCESS; the median of `--runs` runs on one database, each run a new job, the first one
//! included), start-lag p50/p99 (1 s cadence, handler start minus plan time) and peak RSS with
//! every scope's execution running at once.
//!
//! Other measurements, each instead of the above:
//!
//! - `--limit`: alternates the database work alone (the claim and success statements in the
//!   runtime's batch sizes) with the end-to-end run, and prints `end-to-end / limit`.
//! - `--replicas N`: alternates one replica with N replicas (each its own scheduler, pool and
//!   runner id, ticking by itself) on one database; prints aggregate executions/s at the job's
//!   first plan boundary and at the next (the job running), conflicts per claimed plan,
//!   deadlocks, each replica's share of the plans, and the time of the read a replica makes at
//!   the handoff to learn which of the other replicas' plans have rows.
//! - `--burst`: all `--scopes` plans due at once (add `--stagger 30s` to spread them, and run
//!   on to the next minute's plans, due one by one, for the steady state's start lag), then
//!   idle ticks; prints time until all started and all SUCCESS, start-lag percentiles, the idle
//!   tick's time and allocations, and peak RSS. `--shared-scopes` as with `--idle` below.
//! - `--idle`: a job of `--scopes` scopes whose latest plans all ran, in a scheduler started
//!   after them, ticked five times: prints each tick's time, the allocations of the ticks after
//!   the first, and the process's peak RSS while the scheduler holds the scopes (against its RSS
//!   before the scheduler started). The provider copies its list at every call, as one reading
//!   a table would; with `--shared-scopes` it hands out one shared list
//!   (`Scopes::shared_provider`), as one keeping its list in memory would.
//! - `--history ROWS`: the claim and success statements for `--scopes` plans (`--runs` times)
//!   on an empty table, then again once ROWS rows of SUCCESS history are in it; prints both,
//!   their ratio and the database's bytes per row.
//! - `--partitioned` (PostgreSQL): the same on a history partitioned by day (converted at start,
//!   with a partition for each of the last 31 days and the next 7, as a history that has run a
//!   month has); the rows of `--history` all land in today's partition.
//!   Add `--analyze` to run `ANALYZE` on the history after it is filled (what autovacuum does
//!   soon after on a live database) before measuring again. Add `--seed-history` (PostgreSQL)
//!   to fill it with `INSERT .. SELECT` statements of a million SUCCESS rows each (1,000 scopes,
//!   one plan a second since midnight UTC, all in today's partition when partitioned) instead
//!   of the runtime's claim and success statements: ten million rows in minutes, not an hour.
//! - `--prune-day ROWS` (PostgreSQL): ROWS SUCCESS rows of one day 40 days back (1,000 scopes,
//!   so all but the newest of each scope are past the default retention), pruned by the batched
//!   delete on a plain table, then the same rows in a day partition dropped whole: prints both
//!   times, their ratio and how long converting that table took.

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cronlease::Store;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The system allocator, counting allocations so a run can report how many it made.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(PartialEq)]
enum Mode {
    Default,
    Limit,
    Replicas(usize),
    Burst,
    Idle,
    History(usize),
    PruneDay(usize),
}

struct Args {
    scopes: usize,
    backend: String,
    database_url: Option<String>,
    lag_seconds: u64,
    runs: usize,
    mode: Mode,
    stagger: Option<String>,
    /// `--idle` or `--burst` with a provider that hands out one shared list instead of a copy
    /// per call.
    shared_scopes: bool,
    partitioned: bool,
    analyze: bool,
    /// `--history` filled by `INSERT .. SELECT` instead of the runtime's statements.
    seed_history: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scopes: 10_000,
        backend: "sqlite".into(),
        database_url: None,
        lag_seconds: 5,
        runs: 5,
        mode: Mode::Default,
        stagger: None,
        shared_scopes: false,
        partitioned: false,
        analyze: false,
        seed_history: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--scopes" => args.scopes = value()?.parse().map_err(|e| format!("--scopes: {e}"))?,
            "--backend" => args.backend = value()?,
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--database-url" => args.database_url = Some(value()?),
            "--lag-seconds" => {
                args.lag_seconds = value()?
                    .parse()
                    .map_err(|e| format!("--lag-seconds: {e}"))?
            }
            "--limit" => args.mode = Mode::Limit,
            "--replicas" => {
                let n: usize = value()?.parse().map_err(|e| format!("--replicas: {e}"))?;
                if n == 0 {
                    return Err("--replicas must be at least 1".into());
                }
                args.mode = Mode::Replicas(n);
            }
            "--burst" => args.mode = Mode::Burst,
            "--idle" => args.mode = Mode::Idle,
            "--history" => {
                let rows = value()?.parse().map_err(|e| format!("--history: {e}"))?;
                args.mode = Mode::History(rows);
            }
            "--stagger" => args.stagger = Some(value()?),
            "--shared-scopes" => args.shared_scopes = true,
            "--partitioned" => args.partitioned = true,
            "--analyze" => args.analyze = true,
            "--seed-history" => args.seed_history = true,
            "--prune-day" => {
                let rows = value()?.parse().map_err(|e| format!("--prune-day: {e}"))?;
                args.mode = Mode::PruneDay(rows);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: throughput [--scopes N] [--backend sqlite|postgres|mysql] \
                     [--database-url URL] [--lag-seconds S] [--runs R] \
                     [--partitioned] [--analyze] [--seed-history] [--limit | --replicas N | --burst [--stagger WINDOW] [--shared-scopes] | \
                     --idle [--shared-scopes] | --history ROWS | --prune-day ROWS]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if args.scopes == 0 {
        return Err("--scopes must be at least 1".into());
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    if args.stagger.is_some() && args.mode != Mode::Burst {
        return Err("--stagger goes with --burst".into());
    }
    if args.shared_scopes && !matches!(args.mode, Mode::Idle | Mode::Burst) {
        return Err("--shared-scopes goes with --idle or --burst".into());
    }
    Ok(args)
}

/// The sum of a counter over every label set of a snapshot, optionally only where `label` has
/// `value`.
fn counter(
    snapshot: &[(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)],
    name: &str,
    label: Option<(&str, &str)>,
) -> u64 {
    snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter(|(key, ..)| {
            label.is_none_or(|(l, v)| {
                key.key()
                    .labels()
                    .any(|label| label.key() == l && label.value() == v)
            })
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    support::percentile(values, 50.0)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cronlease=warn".into()),
        )
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("metrics recorder");
    let dir = tempfile::tempdir().expect("temp dir");
    actix_rt::System::new().block_on(async move {
        let url = |var: &str| {
            args.database_url
                .clone()
                .or_else(|| std::env::var(var).ok())
                .unwrap_or_else(|| {
                    eprintln!("--backend {} needs --database-url", args.backend);
                    std::process::exit(2)
                })
        };
        let store = match args.backend.as_str() {
            "sqlite" => support::sqlite(dir.path()).await,
            "postgres" => support::postgres(&url(support::POSTGRES_URL_VAR)).await,
            "mysql" => support::mysql(&url(support::MYSQL_URL_VAR)).await,
            other => {
                eprintln!("unknown backend `{other}`: use sqlite, postgres or mysql");
                std::process::exit(2)
            }
        };
        if args.partitioned && !matches!(args.mode, Mode::PruneDay(_)) {
            if args.backend != "postgres" {
                eprintln!("--partitioned needs --backend postgres");
                std::process::exit(2)
            }
            support::postgres_partition(31).await;
        }
        println!(
            "backend: {}{}  scopes: {}",
            args.backend,
            if args.partitioned {
                " (partitioned by day)"
            } else {
                ""
            },
            args.scopes
        );
        match args.mode {
            Mode::Default => default_runs(&args, store).await,
            Mode::Limit => limit_runs(&args, store).await,
            Mode::Replicas(n) => {
                let mut stores = vec![store];
                for _ in 1..n {
                    stores.push(match args.backend.as_str() {
                        "sqlite" => support::sqlite_again(dir.path()).await,
                        "postgres" => {
                            support::postgres_again(&url(support::POSTGRES_URL_VAR)).await
                        }
                        _ => support::mysql_again(&url(support::MYSQL_URL_VAR)).await,
                    });
                }
                replica_runs(&args, &stores, &snapshotter).await
            }
            Mode::Burst => burst_run(&args, store).await,
            Mode::Idle => idle_run(&args, store).await,
            Mode::History(rows) => history_run(&args, store, rows, dir.path()).await,
            Mode::PruneDay(rows) => {
                if args.backend != "postgres" {
                    eprintln!("--prune-day needs --backend postgres");
                    std::process::exit(2)
                }
                prune_day_run(store, &url(support::POSTGRES_URL_VAR), rows).await
            }
        }
        support::cleanup().await;
    });
}

async fn default_runs(args: &Args, store: Arc<dyn Store>) {
    let mut rates = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let job = format!("throughput-{run}");
        let elapsed = support::noop_throughput(store.clone(), args.scopes, &job).await;
        let rate = args.scopes as f64 / elapsed.as_secs_f64();
        println!(
            "run {}: {rate:.0} executions/s  ({} executions in {:.1} ms)",
            run + 1,
            args.scopes,
            elapsed.as_secs_f64() * 1000.0
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "executions/s: {:.0}  (median of {} runs; slowest {:.0}, fastest {:.0})",
        support::percentile(&rates, 50.0),
        rates.len(),
        rates[0],
        rates[rates.len() - 1]
    );
    let lag_scopes = args.scopes.min(1_000);
    let lags = support::start_lag(store.clone(), lag_scopes, args.lag_seconds, "start-lag").await;
    println!(
        "start lag ({lag_scopes} scopes, 1s cadence, {} samples): p50 {:.1} ms  p99 {:.1} ms",
        lags.len(),
        support::percentile(&lags, 50.0),
        support::percentile(&lags, 99.0)
    );
    let (running, rss) =
        support::concurrent_memory(store, args.scopes, Duration::from_secs(2), "memory").await;
    println!("peak RSS: {rss:.0} MiB  ({running} executions running at once)");
}

async fn limit_runs(args: &Args, store: Arc<dyn Store>) {
    let (mut limits, mut ends) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let limit = support::store_limit(store.clone(), args.scopes, &format!("limit-{run}")).await;
        let end = support::noop_throughput(store.clone(), args.scopes, &format!("e2e-{run}")).await;
        let (limit, end) = (
            args.scopes as f64 / limit.as_secs_f64(),
            args.scopes as f64 / end.as_secs_f64(),
        );
        println!(
            "run {}: store alone {limit:.0} /s, end to end {end:.0} /s, ratio {:.2}",
            run + 1,
            end / limit
        );
        limits.push(limit);
        ends.push(end);
    }
    let (limit, end) = (median(&mut limits), median(&mut ends));
    println!(
        "limit: {limit:.0} /s  end-to-end: {end:.0} /s  end-to-end / limit: {:.2}  (medians of {} runs)",
        end / limit,
        args.runs
    );
}

async fn replica_runs(args: &Args, stores: &[Arc<dyn Store>], snapshotter: &Snapshotter) {
    let n = stores.len();
    // A snapshot takes the counters' values so far: each one after a run holds that run's.
    drop(snapshotter.snapshot());
    // Rates per run: the first boundary (the replicas' first tick of the job) and the next (the
    // job already running), for one replica and for n.
    let (mut singles, mut many) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let (mut claimed, mut conflicted, mut deadlocks) = (0usize, 0u64, 0u64);
    let mut won = vec![0usize; n];
    let rate = |elapsed: std::time::Duration| args.scopes as f64 / elapsed.as_secs_f64();
    for run in 0..args.runs {
        let single =
            support::replicas_throughput(&stores[..1], args.scopes, &format!("one-{run}")).await;
        drop(snapshotter.snapshot());
        let replicas =
            support::replicas_throughput(stores, args.scopes, &format!("many-{run}")).await;
        let snapshot = snapshotter.snapshot().into_vec();
        let run_conflicts = counter(
            &snapshot,
            cronlease::telemetry::CLAIMS,
            Some(("outcome", "conflicted")),
        );
        deadlocks += counter(&snapshot, cronlease::telemetry::DB_DEADLOCKS, None);
        let (first_1, first_n) = (rate(single.first), rate(replicas.first));
        let (next_1, next_n) = (rate(single.next), rate(replicas.next));
        println!(
            "run {}: first boundary: 1 replica {first_1:.0} /s, {n} replicas {first_n:.0} /s \
             (ratio {:.2}); next boundary: 1 replica {next_1:.0} /s, {n} replicas {next_n:.0} /s \
             (ratio {:.2}); ran {:?}, conflicted {run_conflicts}, early plans {}",
            run + 1,
            first_n / first_1,
            next_n / next_1,
            replicas.won,
            single.early + replicas.early,
        );
        singles.0.push(first_1);
        singles.1.push(next_1);
        many.0.push(first_n);
        many.1.push(next_n);
        claimed += replicas.won.iter().sum::<usize>();
        conflicted += run_conflicts;
        for (total, won_now) in won.iter_mut().zip(&replicas.won) {
            *total += won_now;
        }
    }
    let shares: Vec<String> = won
        .iter()
        .map(|w| format!("{:.0} %", 100.0 * *w as f64 / claimed as f64))
        .collect();
    for (boundary, single, many) in [
        (
            "first boundary (each replica's first tick of the job)",
            &mut singles.0,
            &mut many.0,
        ),
        (
            "next boundary (the job running)",
            &mut singles.1,
            &mut many.1,
        ),
    ] {
        let (single, rate) = (median(single), median(many));
        println!(
            "{boundary}: 1 replica: {single:.0} /s  {n} replicas: {rate:.0} /s  ratio: {:.2}  \
             (medians of {} runs)",
            rate / single,
            args.runs
        );
    }
    println!(
        "conflicts per claimed plan: {:.3} ({conflicted} conflicted / {claimed} claimed, \
         cronlease_claims_total{{outcome=conflicted}} of the {n}-replica runs)",
        conflicted as f64 / claimed as f64
    );
    println!("deadlocks (cronlease_db_deadlocks_total): {deadlocks}");
    println!("share of plans per replica: {}", shares.join(", "));
    // What sharing defers: each replica later looks whether the plans of the scopes it does not
    // own have rows, in one read (`Store::execution_plans_exist`), HANDOFF_AFTER after it saw
    // them due. Timed here on the last run's rows, for one replica's share.
    let others = args.scopes - args.scopes / n;
    let plans: Vec<(cronlease::Scope, chrono::DateTime<chrono::Utc>)> = {
        let job = format!("many-{}", args.runs - 1);
        let rows = stores[0]
            .execution_list(&cronlease::ExecutionFilter {
                job: Some(job),
                limit: others,
                ..Default::default()
            })
            .await
            .expect("rows");
        rows.into_iter().map(|r| (r.scope, r.plan_time)).collect()
    };
    let job = format!("many-{}", args.runs - 1);
    let looked = std::time::Instant::now();
    let exist = stores[0]
        .execution_plans_exist(&job, &plans)
        .await
        .expect("look");
    println!(
        "the handoff's look at {} plans of other replicas' scopes (one replica, once per burst): {:.1} ms, {} with a row",
        plans.len(),
        looked.elapsed().as_secs_f64() * 1000.0,
        exist.iter().filter(|e| **e).count()
    );
}

fn allocation_counters() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        ALLOCATED_BYTES.load(Ordering::Relaxed),
    )
}

async fn burst_run(args: &Args, store: Arc<dyn Store>) {
    let before = allocation_counters().0;
    let stagger = args.stagger.as_deref();
    let idle_ticks = if stagger.is_some() { 0 } else { 3 };
    let run = support::burst(
        store,
        args.scopes,
        stagger,
        idle_ticks,
        "burst",
        args.shared_scopes,
        allocation_counters,
    )
    .await;
    let burst_allocations = allocation_counters().0 - before - run.idle_allocations.0;
    println!(
        "burst of {} (stagger {}): all started {:.2} s, all SUCCESS {:.2} s, \
         start lag p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms; {:.1} allocations per execution",
        args.scopes,
        stagger.unwrap_or("none"),
        run.all_started.as_secs_f64(),
        run.all_success.as_secs_f64(),
        support::percentile(&run.lags_ms, 50.0),
        support::percentile(&run.lags_ms, 99.0),
        support::percentile(&run.lags_ms, 100.0),
        burst_allocations as f64 / (run.lags_ms.len() + run.steady_lags_ms.len()) as f64
    );
    if !run.steady_lags_ms.is_empty() {
        println!(
            "steady state, the {} plans of the minute after the first tick's, due one by one \
             over the window: start lag from due p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            run.steady_lags_ms.len(),
            support::percentile(&run.steady_lags_ms, 50.0),
            support::percentile(&run.steady_lags_ms, 99.0),
            support::percentile(&run.steady_lags_ms, 100.0),
        );
    }
    if idle_ticks > 0 {
        let ticks: Vec<String> = run
            .idle_ticks
            .iter()
            .map(|t| format!("{:.0} ms", t.as_secs_f64() * 1000.0))
            .collect();
        let (allocations, bytes) = run.idle_allocations;
        println!(
            "idle ticks of {} scopes: {}; per tick {} allocations, {:.1} MiB allocated \
             ({:.2} allocations per scope); provider called {} times in {idle_ticks} ticks",
            args.scopes,
            ticks.join(", "),
            allocations / idle_ticks as u64,
            bytes as f64 / idle_ticks as f64 / (1024.0 * 1024.0),
            allocations as f64 / idle_ticks as f64 / args.scopes as f64,
            run.idle_provider_calls
        );
    }
    println!(
        "peak RSS: {:.0} MiB over the run, {:.0} MiB during the idle ticks",
        run.peak_rss_mb, run.idle_peak_rss_mb
    );
}

async fn idle_run(args: &Args, store: Arc<dyn Store>) {
    let ticks = 5;
    let run = support::idle(
        store,
        args.scopes,
        ticks,
        "idle",
        args.shared_scopes,
        allocation_counters,
    )
    .await;
    let timed: Vec<String> = run
        .ticks
        .iter()
        .map(|t| format!("{:.0} ms", t.as_secs_f64() * 1000.0))
        .collect();
    let (allocations, bytes) = run.allocations;
    let later = (ticks - 1) as u64;
    println!(
        "idle job of {} scopes (seeded in {:.1} s): ticks {}; after the first, per tick {} \
         allocations ({:.2} per scope), {:.1} MiB allocated; provider called {} times in {ticks} \
         ticks",
        args.scopes,
        run.seeded_in.as_secs_f64(),
        timed.join(", "),
        allocations / later,
        allocations as f64 / later as f64 / args.scopes as f64,
        bytes as f64 / later as f64 / (1024.0 * 1024.0),
        run.provider_calls,
    );
    println!(
        "RSS before the scheduler started: {:.0} MiB (the example's own list of scopes included); \
         peak during the first tick (every scope's newest plan read): {:.0} MiB; during the \
         later ticks: {:.0} MiB; between ticks: {:.0} MiB",
        run.baseline_rss_mb, run.first_peak_rss_mb, run.peak_rss_mb, run.steady_rss_mb
    );
}

/// The medians of `runs` timings of the store work for `scopes` plans, in ms per 1,000 plans.
async fn store_ms_per_1000(store: &Arc<dyn Store>, scopes: usize, runs: usize, tag: &str) -> f64 {
    let mut ms = Vec::with_capacity(runs);
    for run in 0..runs {
        let elapsed = support::store_limit(store.clone(), scopes, &format!("{tag}-{run}")).await;
        ms.push(elapsed.as_secs_f64() * 1000.0 * 1000.0 / scopes as f64);
    }
    median(&mut ms)
}

async fn history_run(args: &Args, store: Arc<dyn Store>, rows: usize, dir: &std::path::Path) {
    let empty = store_ms_per_1000(&store, args.scopes, args.runs, "empty").await;
    let empty_rows = args.scopes * args.runs;
    let before = support::database_bytes(&args.backend, dir).await;
    let mut filled = 0;
    while filled < rows {
        if args.seed_history && args.backend == "postgres" {
            let n = 1_000_000.min(rows - filled);
            seed_today(filled, n).await;
            filled += n;
            continue;
        }
        let n = 10_000.min(rows - filled);
        support::store_limit(store.clone(), n, &format!("history-{filled}")).await;
        filled += n;
    }
    let after = support::database_bytes(&args.backend, dir).await;
    if args.analyze && args.backend == "postgres" {
        support::postgres_exec("ANALYZE cronlease_executions").await;
    }
    let full = store_ms_per_1000(&store, args.scopes, args.runs, "full").await;
    println!(
        "claim + success per 1,000 plans: {empty:.1} ms with {empty_rows} rows, \
         {full:.1} ms with {} rows: {:.2} x",
        empty_rows + rows,
        full / empty
    );
    println!(
        "database bytes per execution row: {:.0} ({} rows added {:.1} MiB)",
        (after - before) as f64 / rows as f64,
        rows,
        (after - before) as f64 / (1024.0 * 1024.0)
    );
}

/// SUCCESS rows `from..from + rows` of `job`, in the schema the last `support::postgres` call
/// created: scope `i % 1000`, planned `i / 1000` seconds after `start` (an SQL expression).
async fn seed_rows(job: &str, start: &str, from: usize, rows: usize) {
    support::postgres_exec(&format!(
        "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time, status,
           attempt, max_attempts, runner_id, lease_token, started_at, finished_at, created_at,
           updated_at, duration_ms, rows_affected)
         SELECT gen_random_uuid(), '{job}', 'tenant', (i % 1000)::text, t, 'SUCCESS', 1, 3,
           'seed', gen_random_uuid(), t, t, t, t, 1, 1
         FROM generate_series({from}, {from} + {rows} - 1) AS i,
           LATERAL (SELECT {start} + (i / 1000) * interval '1 second' AS t) AS p"
    ))
    .await;
}

/// History rows of job `seeded` since midnight UTC today (ten million rows reach 2 h 47 min).
async fn seed_today(from: usize, rows: usize) {
    seed_rows(
        "seeded",
        "current_date::timestamp AT TIME ZONE 'UTC'",
        from,
        rows,
    )
    .await;
}

/// `rows` SUCCESS rows planned (and finished) on the day 40 days back, 1,000 scopes of job
/// `history`.
async fn seed_old_day(rows: usize) -> chrono::NaiveDate {
    seed_rows(
        "history",
        "(current_date - 40)::timestamp AT TIME ZONE 'UTC' + interval '1 hour'",
        0,
        rows,
    )
    .await;
    support::postgres_exec("ANALYZE cronlease_executions").await;
    (chrono::Utc::now() - chrono::TimeDelta::days(40)).date_naive()
}

async fn prune_day_run(plain: Arc<dyn Store>, url: &str, rows: usize) {
    use cronlease::store::{PartitionKeep, PruneJobs, PruneSet};
    let keep = Duration::from_secs(30 * 24 * 3600);
    seed_old_day(rows).await;
    let started = std::time::Instant::now();
    let mut deleted = 0;
    loop {
        let n = plain
            .execution_prune(PruneSet::Finished, PruneJobs::All, keep, 1000)
            .await
            .expect("prune");
        deleted += n;
        if n < 1000 {
            break;
        }
    }
    let batched = started.elapsed();
    println!(
        "batched delete: {deleted} rows in {:.2} s ({} statements of 1,000)",
        batched.as_secs_f64(),
        deleted.div_ceil(1000)
    );

    let partitioned = support::postgres(url).await;
    let day = seed_old_day(rows).await;
    let converted = support::postgres_partition(45).await;
    println!(
        "converting the table of {rows} rows: {:.2} s",
        converted.as_secs_f64()
    );
    let rules = PartitionKeep {
        finished: Some(keep),
        finished_own: Vec::new(),
        dead: Some(Duration::from_secs(7 * 24 * 3600)),
    };
    let started = std::time::Instant::now();
    let dropped = partitioned
        .history_partition_drop(day, &rules)
        .await
        .expect("drop")
        .expect("the day has a partition");
    let drop_time = started.elapsed();
    println!(
        "partition drop: {} rows ({} kept, moved to DEFAULT) in {:.3} s",
        dropped.rows - dropped.kept,
        dropped.kept,
        drop_time.as_secs_f64()
    );
    println!(
        "batched delete / partition drop: {:.0} x",
        batched.as_secs_f64() / drop_time.as_secs_f64()
    );
}
