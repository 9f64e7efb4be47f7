//! Test fixtures shared by the integration tests: a fresh database per test on every backend,
//! and store wrappers that count statements or inject transient faults.
#![allow(dead_code)]

pub mod chaos;
pub mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use cronlease::store::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, MySqlStore, PgStore, PruneSet, Renewal,
    RetryCandidate, SuccessWrite, Swept,
};
use cronlease::{DbErrorKind, Error, Execution, Scope, SqliteStore, Status, Store};
use uuid::Uuid;

/// The environment variable naming the PostgreSQL server for the PostgreSQL suite.
pub const POSTGRES_URL_VAR: &str = "CRONLEASE_TEST_POSTGRES_URL";

/// The environment variable naming the MySQL or MariaDB server for the MySQL suite, e.g.
/// `mysql://root@127.0.0.1:3306/test` (a user that may create databases).
pub const MYSQL_URL_VAR: &str = "CRONLEASE_TEST_MYSQL_URL";

/// A fresh, migrated database for one test.
///
/// Its clock is pinned near the middle of an hour (`base_skew` from the real clock), so a test
/// using hourly plans never straddles a plan boundary.
pub struct TestDb {
    pub backend: &'static str,
    pub store: Arc<dyn Store>,
    pub base_skew: TimeDelta,
    /// The SQLite file (SQLite only), for tests that open more connections or processes on it.
    pub sqlite_path: Option<std::path::PathBuf>,
    /// Connect options of the test schema (PostgreSQL only; `search_path` set), likewise.
    pub pg_options: Option<sqlx::postgres::PgConnectOptions>,
    skewed: Box<dyn Fn(TimeDelta) -> Arc<dyn Store> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
    /// `(server url, schema)` of a PostgreSQL test schema, dropped with the `TestDb`.
    pg_schema: Option<(String, String)>,
    /// Connect options of the test database (MySQL only), for tests that open more
    /// connections or processes on it.
    pub mysql_options: Option<sqlx::mysql::MySqlConnectOptions>,
    /// `(server url, database)` of a MySQL test database, dropped with the `TestDb`.
    mysql_database: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((url, database)) = self.mysql_database.take() {
            drop_mysql_database(url, database);
        }
        let Some((url, schema)) = self.pg_schema.take() else {
            return;
        };
        // Drop runs outside async code paths we control: use a private runtime on a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let pool = sqlx::PgPool::connect(&url)
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await
                .map_err(std::io::Error::other)?;
                pool.close().await;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop a test schema: {error}");
        }
    }
}

/// Drops a MySQL test database from a private runtime on a thread (Drop runs outside async
/// code paths we control).
fn drop_mysql_database(url: String, database: String) {
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::MySqlConnection::connect(&url)
                .await
                .map_err(std::io::Error::other)?;
            // A test that failed mid-transaction may leave a session holding locks (its
            // rollback never ran): end the database's sessions first.
            let sessions: Vec<u64> = sqlx::query_scalar(
                "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist
                 WHERE db = ? AND id <> CONNECTION_ID()",
            )
            .bind(&database)
            .fetch_all(&mut conn)
            .await
            .map_err(std::io::Error::other)?;
            for session in sessions {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {session}")))
                    .execute(&mut conn)
                    .await;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SET SESSION lock_wait_timeout = 5; DROP DATABASE IF EXISTS {database}"
            )))
            .execute(&mut conn)
            .await
            .map_err(std::io::Error::other)?;
            conn.close().await.map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(())
        })
    })
    .join();
    if let Ok(Err(error)) = dropped {
        eprintln!("could not drop a test database: {error}");
    }
}

impl TestDb {
    /// The same database seen through a clock shifted by `skew` (a runner living in the future).
    pub fn skewed(&self, skew: TimeDelta) -> Arc<dyn Store> {
        (self.skewed)(self.base_skew + skew)
    }

    /// `(server url, database)` of a MySQL test database.
    pub fn mysql_database(&self) -> Option<(&str, &str)> {
        self.mysql_database
            .as_ref()
            .map(|(url, database)| (url.as_str(), database.as_str()))
    }

    /// `(server url, schema)` of a PostgreSQL test database.
    pub fn pg_schema(&self) -> Option<(&str, &str)> {
        self.pg_schema
            .as_ref()
            .map(|(url, schema)| (url.as_str(), schema.as_str()))
    }
}

/// The skew that puts the database clock at half past the current hour.
fn mid_hour_skew() -> TimeDelta {
    let now = Utc::now();
    let into_hour = now - cronlease::floor_plan(now, std::time::Duration::from_secs(3600));
    TimeDelta::minutes(30) - into_hour
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A SQLite file in a temporary directory.
pub async fn sqlite() -> TestDb {
    init_logging();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronlease.db");
    let store = SqliteStore::open(&path).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    let base_skew = mid_hour_skew();
    let base = store.clone();
    TestDb {
        backend: "sqlite",
        store: Arc::new(store.with_clock_skew(base_skew)),
        base_skew,
        sqlite_path: Some(path),
        pg_options: None,
        skewed: Box::new(move |skew| Arc::new(base.clone().with_clock_skew(skew))),
        _dir: Some(dir),
        pg_schema: None,
        mysql_options: None,
        mysql_database: None,
    }
}

/// A fresh schema on the PostgreSQL server named by `CRONLEASE_TEST_POSTGRES_URL`, or `None`
/// when it is unset. When it is set, an unreachable server fails the test.
pub async fn postgres() -> Option<TestDb> {
    init_logging();
    let url = std::env::var(POSTGRES_URL_VAR).ok()?;
    let schema = format!("cronlease_test_{}", Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
    let options = options.options([("search_path", schema.as_str())]);
    let store = PgStore::connect_with(options.clone())
        .await
        .expect("connect postgres");
    store.migrate().await.expect("migrate postgres");
    let base_skew = mid_hour_skew();
    let base = store.clone();
    Some(TestDb {
        backend: "postgres",
        store: Arc::new(store.with_clock_skew(base_skew)),
        base_skew,
        sqlite_path: None,
        pg_options: Some(options),
        skewed: Box::new(move |skew| Arc::new(base.clone().with_clock_skew(skew))),
        _dir: None,
        pg_schema: Some((url, schema)),
        mysql_options: None,
        mysql_database: None,
    })
}

/// [`postgres`], with the history converted to day partitions
/// ([`PgStore::partition_history`], default layout), for the suites that must hold on either
/// table.
pub async fn postgres_partitioned() -> Option<TestDb> {
    let db = postgres().await?;
    // The test's clock, so the partitions cover the days the test's runners see.
    let store = PgStore::connect_with(db.pg_options.clone().expect("pg options"))
        .await
        .expect("connect postgres")
        .with_clock_skew(db.base_skew);
    let done = store
        .partition_history(&Default::default())
        .await
        .expect("partition the history");
    assert!(!done.already_partitioned);
    Some(db)
}

/// What a test that needs PostgreSQL does when `CRONLEASE_TEST_POSTGRES_URL` is unset: skips
/// with a message, as every PostgreSQL test does in the README's SQLite run. `.ci/run` then runs
/// the PostgreSQL suite with the variable set, and fails when the server is unreachable.
pub fn postgres_missing() {
    eprintln!("skipped: {POSTGRES_URL_VAR} is not set");
}

/// A fresh database on the MySQL or MariaDB server named by `CRONLEASE_TEST_MYSQL_URL`
/// (`cronlease_t_<uuid>`, dropped with the `TestDb`), or `None` when it is unset. When it is
/// set, an unreachable server fails the test.
pub async fn mysql() -> Option<TestDb> {
    use sqlx::Connection;
    init_logging();
    let url = std::env::var(MYSQL_URL_VAR).ok()?;
    let database = format!("cronlease_t_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::MySqlConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{MYSQL_URL_VAR} is set but MySQL is unreachable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.expect("close");
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().expect("mysql url");
    let options = options.database(&database);
    let store = MySqlStore::connect_with(options.clone())
        .await
        .expect("connect mysql");
    store.migrate().await.expect("migrate mysql");
    let base_skew = mid_hour_skew();
    let base = store.clone();
    Some(TestDb {
        backend: "mysql",
        store: Arc::new(store.with_clock_skew(base_skew)),
        base_skew,
        sqlite_path: None,
        pg_options: None,
        skewed: Box::new(move |skew| Arc::new(base.clone().with_clock_skew(skew))),
        _dir: None,
        pg_schema: None,
        mysql_options: Some(options),
        mysql_database: Some((url, database)),
    })
}

/// Defines `mod sqlite`, `mod postgres` and `mod mysql` versions of an async test taking a `TestDb`.
/// The PostgreSQL and MySQL versions pass without running when `CRONLEASE_TEST_POSTGRES_URL` or
/// `CRONLEASE_TEST_MYSQL_URL` is unset.
#[macro_export]
macro_rules! on_every_backend {
    ($(#[$attr:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::common::TestDb) $body

            #[actix::test]
            async fn sqlite() {
                run($crate::common::sqlite().await).await;
            }

            #[actix::test]
            async fn postgres() {
                match $crate::common::postgres().await {
                    Some(db) => run(db).await,
                    None => eprintln!("skipped: {} is not set", $crate::common::POSTGRES_URL_VAR),
                }
            }

            #[actix::test]
            async fn mysql() {
                match $crate::common::mysql().await {
                    Some(db) => run(db).await,
                    None => eprintln!("skipped: {} is not set", $crate::common::MYSQL_URL_VAR),
                }
            }
        }
    };
}

/// [`on_every_backend!`] plus a `postgres_partitioned` version on a history converted to day
/// partitions ([`postgres_partitioned`]).
#[macro_export]
macro_rules! on_every_store {
    ($(#[$attr:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::common::TestDb) $body

            #[actix::test]
            async fn sqlite() {
                run($crate::common::sqlite().await).await;
            }

            #[actix::test]
            async fn postgres() {
                match $crate::common::postgres().await {
                    Some(db) => run(db).await,
                    None => eprintln!("skipped: {} is not set", $crate::common::POSTGRES_URL_VAR),
                }
            }

            #[actix::test]
            async fn postgres_partitioned() {
                match $crate::common::postgres_partitioned().await {
                    Some(db) => run(db).await,
                    None => $crate::common::postgres_missing(),
                }
            }

            #[actix::test]
            async fn mysql() {
                match $crate::common::mysql().await {
                    Some(db) => run(db).await,
                    None => eprintln!("skipped: {} is not set", $crate::common::MYSQL_URL_VAR),
                }
            }
        }
    };
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every execution of `job`, newest plan first.
pub async fn rows(store: &dyn Store, job: &str) -> Vec<Execution> {
    store
        .execution_list(&ExecutionFilter {
            job: Some(job.to_owned()),
            limit: 100_000,
            ..ExecutionFilter::default()
        })
        .await
        .expect("list executions")
}

/// Waits until every row of `job` is in a terminal state and there are at least `n` rows, then
/// returns them. Polls the counts by status, not the rows: listing a burst's tens of thousands
/// of rows every 20 ms would compete with the writes it waits for. The bound is generous: the
/// three backends' suites may share the machine with other tests.
pub async fn settled(store: &dyn Store, job: &str, n: usize) -> Vec<Execution> {
    eventually(120, &format!("{n} settled rows of {job}"), || async {
        let counts = store.execution_count_by_status(Some(job)).await.ok()?;
        let total: i64 = counts.iter().map(|(_, count)| count).sum();
        let running = counts
            .iter()
            .any(|(status, count)| *status == Status::Running && *count > 0);
        if total < n as i64 || running {
            return None;
        }
        let rows = rows(store, job).await;
        (rows.len() >= n && rows.iter().all(|r| r.status != Status::Running)).then_some(rows)
    })
    .await
}

/// A store that counts calls per method (each method is one statement).
pub struct CountingStore {
    pub inner: Arc<dyn Store>,
    pub calls: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            calls: AtomicUsize::new(0),
        })
    }

    pub fn take(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// A store whose terminal writes fail with a transient error the first `fail_finishes` times.
pub struct FlakyStore {
    pub inner: Arc<dyn Store>,
    pub fail_finishes: AtomicUsize,
}

fn transient(operation: &'static str) -> Error {
    Error::Database {
        operation,
        kind: DbErrorKind::Transient,
        source: sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
    }
}

macro_rules! delegate_store {
    ($ty:ty, |$this:ident, $op:ident| $before:expr $(, after: $after:expr)?) => {
        #[async_trait]
        impl Store for $ty {
            fn backend(&self) -> &'static str {
                self.inner.backend()
            }
            async fn migrate(&self) -> cronlease::Result<()> {
                self.inner.migrate().await
            }
            async fn db_now(&self) -> cronlease::Result<DateTime<Utc>> {
                let ($this, $op) = (self, "db_now");
                $before;
                let out = self.inner.db_now().await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_latest_plans_each(
                &self,
                job: &str,
                each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
            ) -> cronlease::Result<usize> {
                let ($this, $op) = (self, "execution_latest_plans");
                $before;
                let out = self.inner.execution_latest_plans_each(job, each).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_plans_exist(
                &self,
                job: &str,
                plans: &[(Scope, DateTime<Utc>)],
            ) -> cronlease::Result<Vec<bool>> {
                let ($this, $op) = (self, "execution_plans_exist");
                $before;
                let out = self.inner.execution_plans_exist(job, plans).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_retry_candidates(
                &self,
                job: &str,
                limit: usize,
            ) -> cronlease::Result<Vec<RetryCandidate>> {
                let ($this, $op) = (self, "execution_retry_candidates");
                $before;
                let out = self.inner.execution_retry_candidates(job, limit).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_supersede(&self, job: &str) -> cronlease::Result<Vec<Uuid>> {
                let ($this, $op) = (self, "execution_supersede");
                $before;
                let out = self.inner.execution_supersede(job).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_claim(
                &self,
                request: &ClaimRequest<'_>,
            ) -> cronlease::Result<Vec<Claimed>> {
                let ($this, $op) = (self, "execution_claim");
                $before;
                let out = self.inner.execution_claim(request).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_claim_guarded(
                &self,
                request: &ClaimRequest<'_>,
                guard: &cronlease::ClaimGuard,
            ) -> cronlease::Result<cronlease::store::GuardedClaim> {
                // Counted and faulted as a claim: it is the claim of a guarded job.
                let ($this, $op) = (self, "execution_claim");
                $before;
                let out = self.inner.execution_claim_guarded(request, guard).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_heartbeat(
                &self,
                renewals: &[Renewal],
            ) -> cronlease::Result<Vec<Uuid>> {
                let ($this, $op) = (self, "execution_heartbeat");
                $before;
                let out = self.inner.execution_heartbeat(renewals).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_finish_success(
                &self,
                writes: &[SuccessWrite],
            ) -> cronlease::Result<Vec<Uuid>> {
                let ($this, $op) = (self, "execution_finish_success");
                $before;
                let out = self.inner.execution_finish_success(writes).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_finish_failure(
                &self,
                writes: &[FailureWrite],
            ) -> cronlease::Result<Vec<Uuid>> {
                let ($this, $op) = (self, "execution_finish_failure");
                $before;
                let out = self.inner.execution_finish_failure(writes).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_sweep_stale(
                &self,
                job: &str,
                allow_reentry: bool,
                not_after: Option<DateTime<Utc>>,
            ) -> cronlease::Result<Vec<Swept>> {
                let ($this, $op) = (self, "execution_sweep_stale");
                $before;
                let out = self.inner.execution_sweep_stale(job, allow_reentry, not_after).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_get(&self, id: Uuid) -> cronlease::Result<Option<Execution>> {
                self.inner.execution_get(id).await
            }
            async fn execution_list(
                &self,
                filter: &ExecutionFilter,
            ) -> cronlease::Result<Vec<Execution>> {
                self.inner.execution_list(filter).await
            }
            async fn execution_latest_per_scope(
                &self,
                job: &str,
                after: Option<&Scope>,
                limit: usize,
            ) -> cronlease::Result<Vec<Execution>> {
                self.inner.execution_latest_per_scope(job, after, limit).await
            }
            async fn execution_count_by_status(
                &self,
                job: Option<&str>,
            ) -> cronlease::Result<Vec<(Status, i64)>> {
                self.inner.execution_count_by_status(job).await
            }
            async fn execution_replay(
                &self,
                ids: &[Uuid],
                extra_attempts: u32,
            ) -> cronlease::Result<Vec<Execution>> {
                let ($this, $op) = (self, "execution_replay");
                $before;
                let out = self.inner.execution_replay(ids, extra_attempts).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_prune(
                &self,
                set: PruneSet,
                jobs: cronlease::store::PruneJobs<'_>,
                older_than: std::time::Duration,
                limit: usize,
            ) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "execution_prune");
                $before;
                let out = self.inner.execution_prune(set, jobs, older_than, limit).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_prune_default_partition(
                &self,
                set: PruneSet,
                jobs: cronlease::store::PruneJobs<'_>,
                older_than: std::time::Duration,
                limit: usize,
            ) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "execution_prune");
                $before;
                let out = self
                    .inner
                    .execution_prune_default_partition(set, jobs, older_than, limit)
                    .await;
                $(let _ = &out; $after;)?
                out
            }
            async fn migration_status(&self) -> cronlease::Result<cronlease::store::MigrationStatus> {
                self.inner.migration_status().await
            }
            async fn execution_count_prunable(
                &self,
                set: PruneSet,
                jobs: cronlease::store::PruneJobs<'_>,
                older_than: std::time::Duration,
            ) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "execution_count_prunable");
                $before;
                let out = self.inner.execution_count_prunable(set, jobs, older_than).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_count_stale(&self) -> cronlease::Result<Vec<(String, i64)>> {
                let ($this, $op) = (self, "execution_count_stale");
                $before;
                let out = self.inner.execution_count_stale().await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_count_failing(
                &self,
                since: DateTime<Utc>,
            ) -> cronlease::Result<Vec<(String, i64)>> {
                let ($this, $op) = (self, "execution_count_failing");
                $before;
                let out = self.inner.execution_count_failing(since).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn tick_clock(&self, job: &str) -> cronlease::Result<cronlease::TickClock> {
                let ($this, $op) = (self, "tick_clock");
                $before;
                let out = self.inner.tick_clock(job).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn pause_set(&self, pause: &cronlease::Pause) -> cronlease::Result<cronlease::Pause> {
                let ($this, $op) = (self, "pause_set");
                $before;
                let out = self.inner.pause_set(pause).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> cronlease::Result<bool> {
                let ($this, $op) = (self, "pause_clear");
                $before;
                let out = self.inner.pause_clear(job, scope).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn pause_list(&self, job: Option<&str>) -> cronlease::Result<Vec<cronlease::Pause>> {
                let ($this, $op) = (self, "pause_list");
                $before;
                let out = self.inner.pause_list(job).await;
                $(let _ = &out; $after;)?
                out
            }
            #[allow(clippy::unit_arg)]
            async fn skip_record(&self, spans: &[cronlease::SkipSpan]) -> cronlease::Result<()> {
                let ($this, $op) = (self, "skip_record");
                $before;
                let out = self.inner.skip_record(spans).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn skip_find(
                &self,
                job: &str,
                scope: &Scope,
                plan_time: DateTime<Utc>,
                due_at: DateTime<Utc>,
            ) -> cronlease::Result<Vec<cronlease::SkipSpan>> {
                let ($this, $op) = (self, "skip_find");
                $before;
                let out = self.inner.skip_find(job, scope, plan_time, due_at).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn skip_list(
                &self,
                job: Option<&str>,
                limit: usize,
            ) -> cronlease::Result<Vec<cronlease::SkipSpan>> {
                let ($this, $op) = (self, "skip_list");
                $before;
                let out = self.inner.skip_list(job, limit).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn skip_prune(
                &self,
                older_than: std::time::Duration,
                limit: usize,
            ) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "skip_prune");
                $before;
                let out = self.inner.skip_prune(older_than, limit).await;
                $(let _ = &out; $after;)?
                out
            }

            async fn runner_register(
                &self,
                runner: &cronlease::store::RunnerRegistration,
                jobs: &[cronlease::JobDescription],
            ) -> cronlease::Result<()> {
                // Not hooked: a hook may answer `Ok(Default::default())`, meaningless for a
                // registration (which happens at start and on job changes, never per tick).
                self.inner.runner_register(runner, jobs).await
            }
            async fn runner_seen(&self, runner_id: &str) -> cronlease::Result<bool> {
                let ($this, $op) = (self, "runner_seen");
                $before;
                let out = self.inner.runner_seen(runner_id).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn runner_stop(&self, runner_id: &str) -> cronlease::Result<bool> {
                let ($this, $op) = (self, "runner_stop");
                $before;
                let out = self.inner.runner_stop(runner_id).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn runner_list(&self) -> cronlease::Result<Vec<cronlease::Runner>> {
                self.inner.runner_list().await
            }
            async fn runner_prune(&self, older_than: std::time::Duration) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "runner_prune");
                $before;
                let out = self.inner.runner_prune(older_than).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn registered_jobs(
                &self,
                job: Option<&str>,
            ) -> cronlease::Result<Vec<cronlease::RegisteredJob>> {
                self.inner.registered_jobs(job).await
            }

            async fn history_partitions(
                &self,
            ) -> cronlease::Result<Option<cronlease::store::HistoryPartitions>> {
                let ($this, $op) = (self, "history_partitions");
                $before;
                let out = self.inner.history_partitions().await;
                $(let _ = &out; $after;)?
                out
            }
            async fn history_partitions_create(
                &self,
                days: &[chrono::NaiveDate],
            ) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "history_partitions_create");
                $before;
                let out = self.inner.history_partitions_create(days).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn history_partition_drop(
                &self,
                day: chrono::NaiveDate,
                keep: &cronlease::store::PartitionKeep,
            ) -> cronlease::Result<Option<cronlease::store::PartitionDropped>> {
                let ($this, $op) = (self, "history_partition_drop");
                $before;
                let out = self.inner.history_partition_drop(day, keep).await;
                $(let _ = &out; $after;)?
                out
            }

            async fn trigger_create(&self, trigger: &cronlease::Trigger) -> cronlease::Result<cronlease::Trigger> {
                let ($this, $op) = (self, "trigger_create");
                $before;
                let out = self.inner.trigger_create(trigger).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> cronlease::Result<Vec<cronlease::Trigger>> {
                let ($this, $op) = (self, "trigger_list");
                $before;
                let out = self.inner.trigger_list(job, pending_only).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn trigger_start(&self, start: &cronlease::store::ManualStart<'_>) -> cronlease::Result<Vec<cronlease::store::Claimed>> {
                let ($this, $op) = (self, "trigger_start");
                $before;
                let out = self.inner.trigger_start(start).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn backfill_create(&self, backfill: &cronlease::Backfill) -> cronlease::Result<cronlease::Backfill> {
                let ($this, $op) = (self, "backfill_create");
                $before;
                let out = self.inner.backfill_create(backfill).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn backfill_get(&self, id: uuid::Uuid) -> cronlease::Result<Option<cronlease::Backfill>> {
                let ($this, $op) = (self, "backfill_get");
                $before;
                let out = self.inner.backfill_get(id).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> cronlease::Result<Vec<cronlease::Backfill>> {
                let ($this, $op) = (self, "backfill_list");
                $before;
                let out = self.inner.backfill_list(job, active_only).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn backfill_cancel(&self, id: uuid::Uuid) -> cronlease::Result<bool> {
                let ($this, $op) = (self, "backfill_cancel");
                $before;
                let out = self.inner.backfill_cancel(id).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn backfill_advance(&self, advance: &cronlease::store::BackfillAdvance) -> cronlease::Result<bool> {
                let ($this, $op) = (self, "backfill_advance");
                $before;
                let out = self.inner.backfill_advance(advance).await;
                $(let _ = &out; $after;)?
                out
            }
            async fn execution_rerun(&self, job: &str, plans: &[(Scope, DateTime<Utc>)], finished_before: DateTime<Utc>, extra_attempts: u32) -> cronlease::Result<u64> {
                let ($this, $op) = (self, "execution_rerun");
                $before;
                let out = self.inner.execution_rerun(job, plans, finished_before, extra_attempts).await;
                $(let _ = &out; $after;)?
                out
            }
        }
    };
}

/// A store whose stale sweep finds nothing, so a stale lease is left for the claim to steal: the
/// race a real sweep loses when a lease goes stale between the sweep and the claim of one tick.
pub struct NoSweepStore {
    pub inner: Arc<dyn Store>,
}

delegate_store!(CountingStore, |this, _op| this.count());
delegate_store!(NoSweepStore, |_this, op| if op == "execution_sweep_stale" {
    return Ok(Default::default());
});
delegate_store!(FlakyStore, |this, op| {
    if op.starts_with("execution_finish")
        && this
            .fail_finishes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return Err(transient(op));
    }
});

/// A scheduler builder for tests: manual ticks, short backoffs, a short shutdown grace.
pub fn scheduler(store: Arc<dyn Store>) -> cronlease::SchedulerBuilder {
    cronlease::Scheduler::builder_shared(store)
        .auto_tick(false)
        .shutdown_grace(std::time::Duration::from_millis(500))
        .db_retry(cronlease::DbRetry {
            initial: std::time::Duration::from_millis(50),
            max: std::time::Duration::from_millis(200),
            give_up_after: std::time::Duration::from_secs(20),
        })
}

/// One handler run: (scope id, plan time, attempt).
pub type Run = (String, DateTime<Utc>, u32);

/// Records every handler run.
#[derive(Clone, Default)]
pub struct Runs(Arc<std::sync::Mutex<Vec<Run>>>);

impl Runs {
    pub fn record(&self, ctx: &cronlease::JobContext) {
        self.0
            .lock()
            .unwrap()
            .push((ctx.scope().id.clone(), ctx.plan_time(), ctx.attempt()));
    }

    pub fn all(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// A handler that records its run and succeeds.
    pub fn ok_handler(
        &self,
    ) -> impl Fn(
        cronlease::JobContext,
    ) -> std::future::Ready<Result<cronlease::JobOutput, cronlease::JobError>>
    + Send
    + Sync
    + 'static {
        let runs = self.clone();
        move |ctx| {
            runs.record(&ctx);
            std::future::ready(Ok(cronlease::JobOutput::rows(1)))
        }
    }
}

/// Leaves a RUNNING row behind as a runner that died mid-attempt would: `job`'s global-scope
/// plan at `plan_time`, claimed by `dead-runner` with a `stale_timeout` lease, never renewed.
pub async fn orphan(
    store: &dyn Store,
    job: &str,
    plan_time: DateTime<Utc>,
    stale_timeout: std::time::Duration,
    allow_stale_reentry: bool,
) -> Claimed {
    store
        .execution_claim(&ClaimRequest {
            job,
            max_attempts: 3,
            runner_id: "dead-runner",
            stale_timeout,
            allow_stale_reentry,
            steal_not_after: None,
            plans: vec![cronlease::store::PlanClaim::new(Scope::global(), plan_time)],
        })
        .await
        .expect("claim the orphaned plan")
        .remove(0)
}

/// `n` scopes of kind `tenant`.
pub fn tenants(n: usize) -> Vec<Scope> {
    (0..n)
        .map(|i| Scope::new("tenant", i.to_string()))
        .collect()
}

/// A store whose failure writes commit at once but answer `failure_reply_delay_ms` late, as
/// over a slow network: the runtime learns of an ended attempt well after the row changed.
pub struct SlowFailureReplies {
    pub inner: Arc<dyn Store>,
    pub failure_reply_delay_ms: std::sync::atomic::AtomicU64,
}

delegate_store!(SlowFailureReplies, |_this, _op| {}, after: {
    let delay = _this.failure_reply_delay_ms.load(Ordering::SeqCst);
    if _op == "execution_finish_failure" && delay > 0 {
        actix_rt::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
});

/// A store whose clock reads reach the database late on every other call (the first, third, ..
/// wait `delay` before the read), as over a congested network. It keeps the database clock just
/// before each read.
pub struct SlowClockSends {
    pub inner: Arc<dyn Store>,
    pub delay: std::time::Duration,
    pub calls: AtomicUsize,
    pub clocks: std::sync::Mutex<Vec<DateTime<Utc>>>,
}

delegate_store!(SlowClockSends, |this, op| if op == "tick_clock" {
    if this.calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        actix_rt::time::sleep(this.delay).await;
    }
    let now = this.inner.db_now().await?;
    this.clocks.lock().unwrap().push(now);
});
