//! Workloads shared by the criterion benches and `examples/throughput.rs`, so the figures in
//! `docs/performance.md` come from the same code whichever way they are run.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use cronlease::prelude::*;
use cronlease::store::{ClaimRequest, MySqlStore, PgStore, PlanClaim, SuccessWrite};
use cronlease::{ClaimGuard, OverlapPolicy};

/// The PostgreSQL server for the PostgreSQL variants, when set.
pub const POSTGRES_URL_VAR: &str = "CRONLEASE_TEST_POSTGRES_URL";

/// The MySQL server for the MySQL variants, when set.
pub const MYSQL_URL_VAR: &str = "CRONLEASE_TEST_MYSQL_URL";

/// A SQLite file in `dir`, migrated.
pub async fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(dir.join("bench.db"))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// Schemas created by [`postgres`], dropped by [`cleanup`].
static SCHEMAS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A fresh schema on the PostgreSQL server at `url`, migrated. Call [`cleanup`] when done.
pub async fn postgres(url: &str) -> Arc<dyn Store> {
    let schema = format!("cronlease_bench_{}", uuid::Uuid::new_v4().simple());
    SCHEMAS
        .lock()
        .unwrap()
        .push((url.to_owned(), schema.clone()));
    let admin = sqlx::PgPool::connect(url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let store = PgStore::connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// Another store (its own pool) on the schema the last [`postgres`] call created: a replica.
pub async fn postgres_again(url: &str) -> Arc<dyn Store> {
    let schema = SCHEMAS
        .lock()
        .unwrap()
        .last()
        .expect("postgres() first")
        .1
        .clone();
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let store = PgStore::connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect");
    Arc::new(store)
}

/// Another store (its own pool) on the database the last [`mysql`] call created: a replica.
pub async fn mysql_again(url: &str) -> Arc<dyn Store> {
    let database = DATABASES
        .lock()
        .unwrap()
        .last()
        .expect("mysql() first")
        .1
        .clone();
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("mysql url");
    let store = MySqlStore::connect_with(options.database(&database))
        .await
        .expect("connect");
    Arc::new(store)
}

/// Another store (its own pool) on the file [`sqlite`] opened in `dir`: a replica.
pub async fn sqlite_again(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(dir.join("bench.db"))
            .await
            .expect("open sqlite"),
    )
}

/// Databases created by [`mysql`], dropped by [`cleanup`].
static DATABASES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A fresh database on the MySQL server at `url` (a user that may create databases),
/// migrated. Call [`cleanup`] when done.
pub async fn mysql(url: &str) -> Arc<dyn Store> {
    let database = format!("cronlease_bench_{}", uuid::Uuid::new_v4().simple());
    DATABASES
        .lock()
        .unwrap()
        .push((url.to_owned(), database.clone()));
    let admin = sqlx::MySqlPool::connect(url)
        .await
        .expect("MySQL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin)
        .await
        .expect("create database");
    admin.close().await;
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("mysql url");
    let store = MySqlStore::connect_with(options.database(&database))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// Drops the PostgreSQL schemas and MySQL databases this process created.
pub async fn cleanup() {
    let databases = std::mem::take(&mut *DATABASES.lock().unwrap());
    for (url, database) in databases {
        if let Ok(pool) = sqlx::MySqlPool::connect(&url).await {
            let drop = format!("DROP DATABASE IF EXISTS {database}");
            if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await {
                eprintln!("could not drop bench database {database}: {error}");
            }
            pool.close().await;
        }
    }
    let schemas = std::mem::take(&mut *SCHEMAS.lock().unwrap());
    for (url, schema) in schemas {
        if let Ok(pool) = sqlx::PgPool::connect(&url).await {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await {
                eprintln!("could not drop bench schema {schema}: {error}");
            }
            pool.close().await;
        }
    }
}

/// `n` scopes.
pub fn scopes(n: usize) -> Vec<Scope> {
    (0..n)
        .map(|i| Scope::new("tenant", i.to_string()))
        .collect()
}

/// A scheduler for measurements: large concurrency, manual ticks unless `auto`.
fn scheduler(
    store: Arc<dyn Store>,
    max_concurrent: usize,
    auto: bool,
) -> cronlease::SchedulerBuilder {
    Scheduler::builder_shared(store)
        .max_concurrent_executions(max_concurrent)
        .auto_tick(auto)
        .tick_interval(Duration::from_secs(1))
        .handler_threads(2)
}

/// End-to-end no-op throughput: `scopes` scopes with one due plan each, from the tick until
/// every row is SUCCESS. `job` must be new to the database. Returns the elapsed time. A run that
/// crosses the top of an hour also runs the plans of the new hour its last ticks find (after
/// every older plan: at most one tick's worth), counted in the check below.
pub async fn noop_throughput(store: Arc<dyn Store>, scopes_n: usize, job: &str) -> Duration {
    let spec = JobSpec::builder(job)
        .every("1h")
        .scopes(scopes(scopes_n))
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
        .build()
        .expect("spec");
    let s = scheduler(store.clone(), scopes_n + 1, false)
        .job(spec)
        .start()
        .await
        .expect("start");
    let started = Instant::now();
    // One tick claims at most a few statements' worth of plans per job; tick until all are.
    let mut won = 0;
    while won < scopes_n {
        let report = s.tick_now().await.expect("tick");
        assert!(report.won > 0, "a tick claimed nothing: {report:?}");
        won += report.won;
    }
    while s.running().await.expect("running") > 0 {
        actix_rt::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = started.elapsed();
    let success = s
        .counts(Some(job))
        .await
        .expect("counts")
        .into_iter()
        .find(|(status, _)| *status == Status::Success)
        .map_or(0, |(_, n)| n);
    assert_eq!(
        success as usize, won,
        "every execution claimed recorded SUCCESS"
    );
    s.shutdown().await;
    elapsed
}

/// Plans per claim statement and writes per success statement, as the runtime sends them
/// (`CLAIM_BATCH` in `src/actors/tick.rs`, `MAX_BATCH` in `src/actors/completer.rs`).
pub const RUNTIME_BATCH: usize = 2000;

/// The database work of [`noop_throughput`] alone, with no runtime around it: `scopes_n` fresh
/// plans of the new job `job` claimed with the default policy's guarded claim, then recorded
/// SUCCESS, [`RUNTIME_BATCH`] per statement, one statement after the other. Returns the
/// elapsed time: the limit the end-to-end run is measured against.
pub async fn store_limit(store: Arc<dyn Store>, scopes_n: usize, job: &str) -> Duration {
    let plan_time = Utc::now() - TimeDelta::minutes(1);
    // In the runtime's claim order (the unique key's order), so the statements are the same.
    let mut scope_list = scopes(scopes_n);
    scope_list.sort_unstable();
    let plans: Vec<PlanClaim> = scope_list
        .into_iter()
        .map(|scope| PlanClaim::new(scope, plan_time))
        .collect();
    let guard = ClaimGuard {
        overlap: OverlapPolicy::Skip,
        ..ClaimGuard::default()
    };
    let started = Instant::now();
    let mut leases = Vec::with_capacity(scopes_n);
    for batch in plans.chunks(RUNTIME_BATCH) {
        let request = ClaimRequest {
            job,
            max_attempts: 3,
            runner_id: "limit",
            stale_timeout: Duration::from_secs(600),
            allow_stale_reentry: false,
            steal_not_after: Some(Utc::now() + TimeDelta::seconds(30)),
            plans: batch.to_vec(),
        };
        let outcome = store
            .execution_claim_guarded(&request, &guard)
            .await
            .expect("claim");
        assert_eq!(outcome.claimed.len(), batch.len(), "every plan claimed");
        leases.extend(outcome.claimed.into_iter().map(|c| c.lease));
    }
    for batch in leases.chunks(RUNTIME_BATCH) {
        let writes: Vec<SuccessWrite> = batch
            .iter()
            .map(|lease| SuccessWrite {
                lease: *lease,
                duration_ms: 0,
                rows_affected: 0,
                result: "{}".to_owned(),
            })
            .collect();
        let written = store
            .execution_finish_success(&writes)
            .await
            .expect("success");
        assert_eq!(written.len(), batch.len(), "every success written");
    }
    started.elapsed()
}

/// A plan time and its handler's start lag in milliseconds.
type PlanLag = (chrono::DateTime<Utc>, f64);

/// Start lag: `scopes` scopes on a 1 s cadence for `seconds`; returns each handler's start minus
/// its plan time, in milliseconds (runner and database share this machine's clock).
pub async fn start_lag(
    store: Arc<dyn Store>,
    scopes_n: usize,
    seconds: u64,
    job: &str,
) -> Vec<f64> {
    let lags: Arc<Mutex<Vec<PlanLag>>> = Arc::default();
    let record = lags.clone();
    let spec = JobSpec::builder(job)
        .every("1s")
        .scopes(scopes(scopes_n))
        .run_timeout(Duration::from_secs(5))
        .handler(move |ctx: JobContext| {
            let lag = (Utc::now() - ctx.plan_time())
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0;
            record.lock().unwrap().push((ctx.plan_time(), lag));
            async { Ok(JobOutput::default()) }
        })
        .build()
        .expect("spec");
    let s = scheduler(store, scopes_n * 2, true)
        .job(spec)
        .start()
        .await
        .expect("start");
    actix_rt::time::sleep(Duration::from_secs(seconds)).await;
    s.shutdown().await;
    let samples = lags.lock().unwrap().clone();
    // The first tick runs at start, mid-bucket: its plans measure start-up, not wake-up.
    let first_plan = samples.iter().map(|(plan, _)| *plan).min();
    let mut lags: Vec<f64> = samples
        .into_iter()
        .filter(|(plan, _)| Some(*plan) != first_plan)
        .map(|(_, lag)| lag)
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

/// Peak RSS: `scopes` executions running at once, each sleeping `hold`.
pub async fn concurrent_memory(
    store: Arc<dyn Store>,
    scopes_n: usize,
    hold: Duration,
    job: &str,
) -> (usize, f64) {
    let spec = JobSpec::builder(job)
        .every("1h")
        .scopes(scopes(scopes_n))
        .run_timeout(hold * 4)
        .handler(move |_ctx: JobContext| async move {
            actix_rt::time::sleep(hold).await;
            Ok(JobOutput::default())
        })
        .build()
        .expect("spec");
    let s = scheduler(store, scopes_n + 1, false)
        .job(spec)
        .start()
        .await
        .expect("start");
    s.tick_now().await.expect("tick");
    actix_rt::time::sleep(hold / 2).await;
    let running = s.running().await.expect("running");
    let rss = peak_rss_mb();
    while s.running().await.expect("running") > 0 {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    s.shutdown().await;
    (running, rss)
}

/// The percentile `p` (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Peak resident set size of this process in MiB (`VmHWM`), or NaN where unavailable.
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// Resident set size of this process now, in MiB (`VmRSS`), or NaN where unavailable.
pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

/// A size line of `/proc/self/status`, in MiB.
fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Hands freed heap memory back to the system and resets this process's peak RSS to its
/// current RSS (`/proc/self/clear_refs`), so [`peak_rss_mb`] then reports the peak from now on.
/// `false` where either is unavailable.
pub fn reset_peak_rss() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory of glibc's heap to the system.
        unsafe { libc::malloc_trim(0) };
        std::fs::write("/proc/self/clear_refs", b"5").is_ok()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// What one run of [`replicas_throughput`] measured.
#[derive(Debug, Clone)]
pub struct ReplicaRun {
    /// The first boundary after the resume, the replicas' first tick of the job (each reads
    /// every scope's newest plan first): from the boundary until every row is SUCCESS.
    pub first: Duration,
    /// The boundary after it, the replicas already running the job as in production: from the
    /// boundary until every row of its plans is SUCCESS.
    pub next: Duration,
    /// Plans each replica ran, in replica order.
    pub won: Vec<usize>,
    /// Plans of the boundary before the first that ran: a replica woke just before the first
    /// boundary, when the plan before it was the newest due (0 in most runs).
    pub early: usize,
}

/// `stores.len()` replicas (each its own scheduler, pool and runner id) ticking by themselves as
/// in production (a 30 s tick interval: they wake at plan boundaries) share one job of
/// `scopes_n` scopes on a 5 s cadence. The job starts paused; the pause is lifted halfway
/// between two plan boundaries, so every replica wakes at the next boundary, sees the resume and
/// finds every scope's plan due at once (replicas woken by one plan boundary). Two boundaries
/// are measured, each from the boundary until every handler of its plan time has run and no
/// attempt is running: the first, the replicas' first tick of the job, and the one after it,
/// the replicas running the job as they do in production. Checks that exactly these plans ran,
/// each once. `job` must be new, and each burst must end within the cadence.
pub async fn replicas_throughput(
    stores: &[Arc<dyn Store>],
    scopes_n: usize,
    job: &str,
) -> ReplicaRun {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CADENCE_MS: i64 = 5_000;
    let scope_list: Arc<[Scope]> = scopes(scopes_n).into();
    stores[0]
        .pause_set(&cronlease::Pause::new(job, None, "bench", "start together"))
        .await
        .expect("pause");
    let ran: Arc<Vec<AtomicUsize>> =
        Arc::new((0..stores.len()).map(|_| AtomicUsize::new(0)).collect());
    // Handler runs per plan time (ms).
    let plans_ran: Arc<Mutex<std::collections::BTreeMap<i64, usize>>> = Arc::default();
    let mut replicas = Vec::with_capacity(stores.len());
    for (i, store) in stores.iter().enumerate() {
        let count = ran.clone();
        let per_plan = plans_ran.clone();
        let spec = JobSpec::builder(job)
            .every("5s")
            .scopes(Scopes::Static(scope_list.clone()))
            .handler(move |ctx: JobContext| {
                count[i].fetch_add(1, Ordering::Relaxed);
                *per_plan
                    .lock()
                    .expect("plans")
                    .entry(ctx.plan_time().timestamp_millis())
                    .or_default() += 1;
                async { Ok(JobOutput::default()) }
            })
            .build()
            .expect("spec");
        let s = scheduler(store.clone(), scopes_n + 1, true)
            .tick_interval(Duration::from_secs(30))
            .runner_id(format!("replica-{i}"))
            .job(spec)
            .start()
            .await
            .expect("start");
        replicas.push(s);
    }
    let boundary = |ms: i64| (ms.div_euclid(CADENCE_MS) + 1) * CADENCE_MS;
    // The instant of the wall clock's `ms`.
    let instant_of = |ms: i64| {
        Instant::now() + Duration::from_millis((ms - Utc::now().timestamp_millis()).max(0) as u64)
    };
    // Halfway between two boundaries (every replica's paused tick at the first one long done and
    // re-armed for the next, even on a loaded machine), lift the pause; the next boundary wakes
    // them all. Lifted just after a boundary, a replica whose paused tick there ran late would
    // see the resume and start that boundary's plans early.
    let after = boundary(Utc::now().timestamp_millis()) + CADENCE_MS / 2;
    actix_rt::time::sleep(Duration::from_millis(
        (after - Utc::now().timestamp_millis()).max(0) as u64,
    ))
    .await;
    stores[0].pause_clear(job, None).await.expect("resume");
    let first_boundary = boundary(Utc::now().timestamp_millis());
    let mut bursts = Vec::with_capacity(2);
    for burst in 1..=2 {
        let plan_ms = first_boundary + (burst as i64 - 1) * CADENCE_MS;
        let started = instant_of(plan_ms);
        let ran_of = || {
            plans_ran
                .lock()
                .expect("plans")
                .get(&plan_ms)
                .copied()
                .unwrap_or(0)
        };
        while ran_of() < scopes_n {
            actix_rt::time::sleep(Duration::from_micros(500)).await;
        }
        for s in &replicas {
            while s.running().await.expect("running") > 0 {
                actix_rt::time::sleep(Duration::from_micros(500)).await;
            }
        }
        bursts.push(started.elapsed());
        assert!(
            Utc::now().timestamp_millis() < first_boundary + burst as i64 * CADENCE_MS,
            "burst {burst} ended within the cadence"
        );
    }
    let success = replicas[0]
        .counts(Some(job))
        .await
        .expect("counts")
        .into_iter()
        .find(|(status, _)| *status == Status::Success)
        .map_or(0, |(_, n)| n);
    let plans_ran = plans_ran.lock().expect("plans").clone();
    // A replica that woke just before the first boundary saw the plan before it due (the newest
    // due plan once resumed) and ran it for its own scopes: counted apart.
    let early: usize = plans_ran.range(..first_boundary).map(|(_, n)| n).sum();
    assert_eq!(
        plans_ran
            .range(first_boundary..)
            .map(|(_, n)| n)
            .sum::<usize>(),
        2 * scopes_n,
        "exactly the two boundaries' plans ran: {plans_ran:?}"
    );
    assert_eq!(
        success as usize,
        2 * scopes_n + early,
        "every plan ran exactly once"
    );
    for s in replicas {
        s.shutdown().await;
    }
    ReplicaRun {
        first: bursts[0],
        next: bursts[1],
        won: ran.iter().map(|n| n.load(Ordering::Relaxed)).collect(),
        early,
    }
}

/// What [`burst`] measured.
#[derive(Debug, Clone)]
pub struct BurstRun {
    /// From the first tick until the last handler started.
    pub all_started: Duration,
    /// From the first tick until every row is SUCCESS.
    pub all_success: Duration,
    /// Each handler's start minus the moment its plan came due (the first tick, or with
    /// stagger its plan time plus the scope's offset, whichever is later), in ms, sorted. With
    /// stagger, the plans before the steady state's.
    pub lags_ms: Vec<f64>,
    /// With stagger, the plans of the minute after the first tick's, which come due one by one
    /// while the job runs (its steady state): each handler's start minus its plan time plus
    /// the scope's offset, in ms, sorted.
    pub steady_lags_ms: Vec<f64>,
    /// Ticks that found nothing due afterwards, each timed.
    pub idle_ticks: Vec<Duration>,
    /// Allocations and bytes allocated by the process during the idle ticks, as counted by the
    /// `allocations` function given to [`burst`].
    pub idle_allocations: (u64, u64),
    /// Calls of the scope provider during the idle ticks.
    pub idle_provider_calls: usize,
    /// Peak RSS of the process over the whole run (the burst with every execution at once), in
    /// MiB.
    pub peak_rss_mb: f64,
    /// Peak RSS of the process during the idle ticks alone, in MiB: the peak is reset after the
    /// burst's records are dropped and freed memory is handed back to the system (Linux with
    /// glibc; NaN elsewhere).
    pub idle_peak_rss_mb: f64,
}

/// A scope provider over `list` that counts its calls. It hands out a new copy of the list at
/// every call, as one reading a table would, or, when `shared`, the same list
/// (`Scopes::shared_provider`), as one keeping its scopes in memory would.
fn counted_provider(
    list: Arc<[Scope]>,
    shared: bool,
) -> (Scopes, Arc<std::sync::atomic::AtomicUsize>) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let called = calls.clone();
    let scopes = if shared {
        Scopes::shared_provider(move || {
            called.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let list = list.clone();
            async move { Ok(list) }
        })
    } else {
        Scopes::provider(move || {
            called.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let list = list.clone();
            async move { Ok(list.to_vec()) }
        })
    };
    (scopes, calls)
}

/// The top-of-the-hour burst: `scopes_n` scopes whose plans are all due at once (a `1h`
/// cadence whose current plan has no row yet), ticked by hand back to back (as the runner does
/// while due plans remain) until every plan has started, then until every row is SUCCESS; then
/// `idle_ticks` ticks with nothing due. With `stagger`, a `1m` cadence spread over that window
/// instead, started just after a minute boundary M and ticked every 5 ms (back to back while
/// plans are claimed) until every scope's plan of M + 1 min has started: the job's first tick
/// is a burst whatever the stagger (every scope's plan of the minute before M is due, and
/// LatestOnly may take M's instead), so the plans of M + 1 min, due one by one over the window
/// while the job runs, are its steady state.
/// The scopes come from a provider (its calls counted). `allocations` reads the process's
/// allocation counters (count, bytes), if it keeps any. `job` must be new.
pub async fn burst(
    store: Arc<dyn Store>,
    scopes_n: usize,
    stagger: Option<&str>,
    idle_ticks: usize,
    job: &str,
    shared: bool,
    allocations: fn() -> (u64, u64),
) -> BurstRun {
    type Start = (chrono::DateTime<Utc>, chrono::DateTime<Utc>, Scope);
    let scope_list: Arc<[Scope]> = scopes(scopes_n).into();
    let started_at: Arc<Mutex<Vec<Start>>> = Arc::new(Mutex::new(Vec::with_capacity(scopes_n)));
    let record = started_at.clone();
    // With stagger: the first tick runs just after the next minute boundary M; the plans of
    // M + 1 min come due one by one while the job runs (its steady state), counted here.
    let next_minute_ms = (Utc::now().timestamp_millis().div_euclid(60_000) + 1) * 60_000;
    let steady_plan_ms = next_minute_ms + 60_000;
    let steady_started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let steady_count = steady_started.clone();
    let (provider, calls) = counted_provider(scope_list, shared);
    let mut spec = JobSpec::builder(job)
        .every(if stagger.is_some() { "1m" } else { "1h" })
        .scopes(provider)
        .handler(move |ctx: JobContext| {
            record
                .lock()
                .unwrap()
                .push((Utc::now(), ctx.plan_time(), ctx.scope().clone()));
            if ctx.plan_time().timestamp_millis() == steady_plan_ms {
                steady_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            async { Ok(JobOutput::default()) }
        });
    let window = stagger.map(|w| humantime::parse_duration(w).expect("stagger window"));
    if let Some(window) = stagger {
        spec = spec.stagger(window);
        // Start just after a minute boundary, so the window lies ahead.
        let wait_ms = next_minute_ms + 20 - Utc::now().timestamp_millis();
        actix_rt::time::sleep(Duration::from_millis(wait_ms.max(0) as u64)).await;
    }
    let spec = spec.build().expect("spec");
    let s = scheduler(store, scopes_n + 1, false)
        .job(spec)
        .start()
        .await
        .expect("start");
    let first_tick = Instant::now();
    let first_tick_at = Utc::now();
    let all_claimed = |won: usize| match stagger {
        Some(_) => steady_started.load(std::sync::atomic::Ordering::Relaxed) >= scopes_n,
        None => won >= scopes_n,
    };
    let mut won = 0;
    while !all_claimed(won) {
        let report = s.tick_now().await.expect("tick");
        won += report.won;
        if report.won == 0 {
            // Staggered plans come due over the window: look again shortly.
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
    while stagger.is_none() && started_at.lock().unwrap().len() < scopes_n {
        actix_rt::time::sleep(Duration::from_micros(500)).await;
    }
    let all_started = first_tick.elapsed();
    while s.running().await.expect("running") > 0 {
        actix_rt::time::sleep(Duration::from_micros(500)).await;
    }
    let all_success = first_tick.elapsed();
    let started_at = std::mem::take(&mut *started_at.lock().unwrap());
    let mut lags_ms = Vec::with_capacity(scopes_n);
    let mut steady_lags_ms = Vec::new();
    for (at, plan_time, scope) in started_at {
        let offset = window.map_or(Duration::ZERO, |window| {
            cronlease::stagger_offset(job, &scope, window)
        });
        let due = plan_time + TimeDelta::from_std(offset).unwrap();
        let lag =
            |due: chrono::DateTime<Utc>| (at - due).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        if stagger.is_some() && plan_time.timestamp_millis() == steady_plan_ms {
            steady_lags_ms.push(lag(due));
        } else {
            lags_ms.push(lag(due.max(first_tick_at)));
        }
    }
    steady_lags_ms.sort_by(f64::total_cmp);
    lags_ms.sort_by(f64::total_cmp);
    let run_peak_rss_mb = peak_rss_mb();
    let idle_rss_measured = reset_peak_rss();
    let mut idle = Vec::with_capacity(idle_ticks);
    let calls_before = calls.load(std::sync::atomic::Ordering::Relaxed);
    let allocations_before = allocations();
    for _ in 0..idle_ticks {
        let tick = Instant::now();
        let report = s.tick_now().await.expect("tick");
        idle.push(tick.elapsed());
        assert_eq!(report.planned, 0, "nothing due after the burst");
    }
    let allocations_after = allocations();
    let idle_allocations = (
        allocations_after.0 - allocations_before.0,
        allocations_after.1 - allocations_before.1,
    );
    let idle_provider_calls = calls.load(std::sync::atomic::Ordering::Relaxed) - calls_before;
    let idle_peak_rss_mb = if idle_rss_measured {
        peak_rss_mb()
    } else {
        f64::NAN
    };
    s.shutdown().await;
    BurstRun {
        all_started,
        all_success,
        lags_ms,
        steady_lags_ms,
        idle_ticks: idle,
        idle_allocations,
        idle_provider_calls,
        peak_rss_mb: run_peak_rss_mb,
        idle_peak_rss_mb,
    }
}

/// Records a SUCCESS row of `job` at `plan_time` for every scope, in statements of 2,000: the
/// history of a job whose latest plan already ran.
pub async fn seed_succeeded(
    store: &dyn Store,
    job: &str,
    scopes: &[Scope],
    latest: chrono::DateTime<Utc>,
) {
    for chunk in scopes.chunks(2_000) {
        let claimed = store
            .execution_claim(&ClaimRequest {
                job,
                max_attempts: 3,
                runner_id: "seed",
                stale_timeout: Duration::from_secs(3600),
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: chunk
                    .iter()
                    .map(|s| PlanClaim::new(s.clone(), latest))
                    .collect(),
            })
            .await
            .expect("seed claim");
        store
            .execution_finish_success(&success_writes(&claimed))
            .await
            .expect("seed success");
    }
}

/// A success of 1 ms with an empty result for every claim.
pub fn success_writes(claimed: &[cronlease::store::Claimed]) -> Vec<SuccessWrite> {
    claimed
        .iter()
        .map(|c| SuccessWrite {
            lease: c.lease,
            duration_ms: 1,
            rows_affected: 0,
            result: "{}".into(),
        })
        .collect()
}

/// What one run of [`idle`] measured.
#[derive(Debug, Clone)]
pub struct IdleRun {
    /// Seeding the caught-up rows (not part of the measurement).
    pub seeded_in: Duration,
    /// The process's RSS before the scheduler started (the seed's memory handed back), in MiB.
    pub baseline_rss_mb: f64,
    /// Each tick, timed; none found anything due.
    pub ticks: Vec<Duration>,
    /// Peak RSS from the baseline until after the first tick, which reads every scope's newest
    /// plan from the store, in MiB (NaN where it cannot be reset).
    pub first_peak_rss_mb: f64,
    /// Peak RSS during the later ticks, in MiB (NaN where it cannot be reset).
    pub peak_rss_mb: f64,
    /// RSS after the ticks with the scheduler still up, freed memory handed back, in MiB: what
    /// the process holds between ticks.
    pub steady_rss_mb: f64,
    /// Allocations (count, bytes) during the ticks after the first.
    pub allocations: (u64, u64),
    /// Calls of the scope provider during all ticks.
    pub provider_calls: usize,
}

/// A job of `scopes_n` scopes, each of whose latest plan already succeeded, ticked `ticks`
/// times by a scheduler started for it in this process: the steady state of a large job between
/// two plans. The scopes come from a provider that returns a new copy of the list each call (as
/// one reading a table would), or with `shared` the same shared list each call
/// ([`Scopes::shared_provider`], as one keeping its list in memory would). `job` must be new.
pub async fn idle(
    store: Arc<dyn Store>,
    scopes_n: usize,
    ticks: usize,
    job: &str,
    shared: bool,
    allocations: fn() -> (u64, u64),
) -> IdleRun {
    let seeding = Instant::now();
    let scope_list: Arc<[Scope]> = scopes(scopes_n).into();
    let latest = cronlease::floor_plan(
        store.db_now().await.expect("clock"),
        Duration::from_secs(3600),
    );
    seed_succeeded(&*store, job, &scope_list, latest).await;
    let seeded_in = seeding.elapsed();
    let measured = reset_peak_rss();
    let baseline_rss_mb = peak_rss_mb();

    let (scopes, calls) = counted_provider(scope_list, shared);
    let spec = JobSpec::builder(job)
        .every("1h")
        .scopes(scopes)
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
        .build()
        .expect("spec");
    let s = scheduler(store, 1_000, false)
        .job(spec)
        .start()
        .await
        .expect("start");
    let mut timed = Vec::with_capacity(ticks);
    let mut before = allocations();
    let mut first_peak_rss_mb = f64::NAN;
    for n in 0..ticks {
        if n == 1 {
            if measured {
                first_peak_rss_mb = peak_rss_mb();
                reset_peak_rss();
            }
            before = allocations();
        }
        let tick = Instant::now();
        let report = s.tick_now().await.expect("tick");
        timed.push(tick.elapsed());
        assert_eq!(report.planned, 0, "every scope's latest plan already ran");
    }
    let after = allocations();
    let peak = if measured { peak_rss_mb() } else { f64::NAN };
    reset_peak_rss();
    let steady_rss_mb = rss_mb();
    s.shutdown().await;
    IdleRun {
        seeded_in,
        baseline_rss_mb,
        ticks: timed,
        first_peak_rss_mb,
        peak_rss_mb: peak,
        steady_rss_mb,
        allocations: (after.0 - before.0, after.1 - before.1),
        provider_calls: calls.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// The database's size in bytes: the SQLite file and its WAL in `dir`, or the executions
/// table with its indexes and TOAST on PostgreSQL, or its data and indexes on MySQL.
pub async fn database_bytes(backend: &str, dir: &std::path::Path) -> u64 {
    match backend {
        "sqlite" => ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum(),
        "postgres" => {
            let schema = SCHEMAS
                .lock()
                .unwrap()
                .last()
                .expect("postgres() first")
                .clone();
            let pool = sqlx::PgPool::connect(&schema.0).await.expect("connect");
            // Every partition of a partitioned history (the table itself when it is plain).
            let sql = format!(
                "SELECT SUM(pg_total_relation_size(c.oid))::bigint FROM pg_class AS c \
                 WHERE c.oid = '{0}.cronlease_executions'::regclass OR c.oid IN \
                 (SELECT inhrelid FROM pg_inherits \
                  WHERE inhparent = '{0}.cronlease_executions'::regclass)",
                schema.1
            );
            let (bytes,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .expect("size");
            pool.close().await;
            bytes as u64
        }
        _ => {
            let database = DATABASES
                .lock()
                .unwrap()
                .last()
                .expect("mysql() first")
                .clone();
            let pool = sqlx::MySqlPool::connect(&database.0)
                .await
                .expect("connect");
            let sql = format!(
                "SELECT CAST(data_length + index_length AS SIGNED) FROM information_schema.tables \
                 WHERE table_schema = '{}' AND table_name = 'cronlease_executions'",
                database.1
            );
            let (bytes,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .expect("size");
            pool.close().await;
            bytes as u64
        }
    }
}

/// The schema the last [`postgres`] call created: `(server url, schema)`.
fn last_schema() -> (String, String) {
    SCHEMAS
        .lock()
        .unwrap()
        .last()
        .expect("postgres() first")
        .clone()
}

/// Converts the history of the schema the last [`postgres`] call created into day partitions
/// (`cronlease partition-history --days-back days_back`), then gives every day from `days_back`
/// days back to 7 ahead a partition, as a history running that long has. Returns the time the
/// conversion took.
pub async fn postgres_partition(days_back: u32) -> Duration {
    let (url, schema) = last_schema();
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let store = PgStore::connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect");
    let started = Instant::now();
    store
        .partition_history(&cronlease::store::PartitionOptions {
            days_back,
            days_ahead: 7,
        })
        .await
        .expect("partition the history");
    let elapsed = started.elapsed();
    let today = store.db_now().await.expect("clock").date_naive();
    let days: Vec<chrono::NaiveDate> = (today - chrono::Days::new(u64::from(days_back)))
        .iter_days()
        .take(days_back as usize + 8)
        .collect();
    store
        .history_partitions_create(&days)
        .await
        .expect("create partitions");
    elapsed
}

/// Runs `sql` on the schema the last [`postgres`] call created; returns the rows it changed.
pub async fn postgres_exec(sql: &str) -> u64 {
    let (url, schema) = last_schema();
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let pool = sqlx::PgPool::connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .expect("statement");
    pool.close().await;
    done.rows_affected()
}
