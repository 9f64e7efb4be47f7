//! Workloads shared by the criterion benches and `examples/throughput.rs`, so the figures in
//! `docs/performance.md` come from the same code whichever way they are run.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use cronlease::prelude::*;
use cronlease::store::{MySqlStore, PgStore};

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
/// every row is SUCCESS. `job` must be new to the database. Returns the elapsed time.
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
        success as usize, scopes_n,
        "every execution recorded SUCCESS"
    );
    s.shutdown().await;
    elapsed
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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
