//! Fixtures of the chaos suite (`tests/chaos_*.rs`):
//!
//! - [`FaultyStore`]: wraps a store; can cut it off (every call fails with a transient error, as
//!   when the network to the database is down), lose the replies of committed writes, and counts
//!   what happened per operation.
//! - [`DbLocation`]: where a test database lives, in a form a child process can be given.
//! - [`SidePool`] and [`SideRun`]: the side table in which handlers record every run, shared by
//!   all runners (processes) of a test.
//! - [`Children`]: child processes that are killed when the test ends, whatever happens, with
//!   their logs printed when it failed.
//! - [`rss_kib`]: this process's resident memory.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use cronlease::store::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, MySqlStore, PgStore, PruneSet, Renewal,
    RetryCandidate, SuccessWrite, Swept,
};
use cronlease::{Execution, Scope, SqliteStore, Status, Store};
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

use super::TestDb;

/// What one operation of a [`FaultyStore`] went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpStats {
    /// Calls answered.
    pub ok: usize,
    /// Calls that failed transiently (injected or real).
    pub transient: usize,
    /// Calls that failed permanently.
    pub permanent: usize,
    /// Calls that committed but whose reply the store threw away (reported as transient).
    pub lost_replies: usize,
    /// Terminal writes (and lease renewals) sent but not written: fenced out by the lease token.
    pub fenced: usize,
    /// Calls dropped before they finished (their deadline expired), with how long each had
    /// waited and when it was dropped.
    pub abandoned: Vec<(Duration, Instant)>,
    /// Calls that returned a transient error from the database, with how long each waited and
    /// when it returned.
    pub transient_waits: Vec<(Duration, Instant)>,
}

/// A store wrapper for fault injection and observation.
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    cut: AtomicBool,
    lose_replies: Mutex<HashMap<&'static str, usize>>,
    stats: Mutex<HashMap<&'static str, OpStats>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            cut: AtomicBool::new(false),
            lose_replies: Mutex::default(),
            stats: Mutex::default(),
        })
    }

    /// While cut, every call fails at once with a transient "connection reset" error.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// The next `n` successful calls of `operation` commit, then report a transient error, as
    /// when the connection drops between the commit and the reply.
    pub fn lose_next_replies(&self, operation: &'static str, n: usize) {
        self.lose_replies.lock().unwrap().insert(operation, n);
    }

    pub fn stats(&self, operation: &str) -> OpStats {
        self.stats
            .lock()
            .unwrap()
            .get(operation)
            .cloned()
            .unwrap_or_default()
    }

    /// Transient errors over every operation.
    pub fn transient_total(&self) -> usize {
        self.stats
            .lock()
            .unwrap()
            .values()
            .map(|s| s.transient)
            .sum()
    }

    fn note(&self, operation: &'static str, f: impl FnOnce(&mut OpStats)) {
        f(self.stats.lock().unwrap().entry(operation).or_default());
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = cronlease::Result<T>>,
    ) -> cronlease::Result<T> {
        if self.cut.load(Ordering::SeqCst) {
            self.note(operation, |s| s.transient += 1);
            return Err(super::transient(operation));
        }
        /// Notes the call as abandoned if it is dropped before it finishes.
        struct Watch<'a> {
            store: &'a FaultyStore,
            operation: &'static str,
            started: Instant,
            finished: bool,
        }
        impl Drop for Watch<'_> {
            fn drop(&mut self) {
                if !self.finished {
                    let waited = (self.started.elapsed(), Instant::now());
                    self.store
                        .note(self.operation, |s| s.abandoned.push(waited));
                }
            }
        }
        let mut watch = Watch {
            store: self,
            operation,
            started: Instant::now(),
            finished: false,
        };
        let result = call.await;
        watch.finished = true;
        match &result {
            Ok(_) => {
                let lose = {
                    let mut lose = self.lose_replies.lock().unwrap();
                    match lose.get_mut(operation) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            true
                        }
                        _ => false,
                    }
                };
                if lose {
                    self.note(operation, |s| {
                        s.lost_replies += 1;
                        s.transient += 1;
                    });
                    return Err(super::transient(operation));
                }
                self.note(operation, |s| s.ok += 1);
            }
            Err(error) if error.is_transient() => {
                let waited = (watch.started.elapsed(), Instant::now());
                self.note(operation, |s| {
                    s.transient += 1;
                    s.transient_waits.push(waited);
                })
            }
            Err(_) => self.note(operation, |s| s.permanent += 1),
        }
        result
    }

    fn fenced(&self, operation: &'static str, sent: usize, written: &cronlease::Result<Vec<Uuid>>) {
        if let Ok(ids) = written {
            self.note(operation, |s| s.fenced += sent - ids.len());
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn deadlines(&self) -> cronlease::StoreDeadlines {
        self.inner.deadlines()
    }
    async fn migrate(&self) -> cronlease::Result<()> {
        self.call("migrate", self.inner.migrate()).await
    }
    async fn db_now(&self) -> cronlease::Result<DateTime<Utc>> {
        self.call("db_now", self.inner.db_now()).await
    }
    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> cronlease::Result<usize> {
        let op = "execution_latest_plans";
        self.call(op, self.inner.execution_latest_plans_each(job, each))
            .await
    }
    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> cronlease::Result<Vec<bool>> {
        let op = "execution_plans_exist";
        self.call(op, self.inner.execution_plans_exist(job, plans))
            .await
    }
    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> cronlease::Result<Vec<RetryCandidate>> {
        let op = "execution_retry_candidates";
        self.call(op, self.inner.execution_retry_candidates(job, limit))
            .await
    }
    async fn execution_supersede(&self, job: &str) -> cronlease::Result<Vec<Uuid>> {
        self.call("execution_supersede", self.inner.execution_supersede(job))
            .await
    }
    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> cronlease::Result<Vec<Claimed>> {
        self.call("execution_claim", self.inner.execution_claim(request))
            .await
    }
    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &cronlease::ClaimGuard,
    ) -> cronlease::Result<cronlease::store::GuardedClaim> {
        // Faulted as a claim: it is the claim of a guarded job.
        self.call(
            "execution_claim",
            self.inner.execution_claim_guarded(request, guard),
        )
        .await
    }
    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> cronlease::Result<Vec<Uuid>> {
        let op = "execution_heartbeat";
        let held = self
            .call(op, self.inner.execution_heartbeat(renewals))
            .await;
        self.fenced(op, renewals.len(), &held);
        held
    }
    async fn execution_finish_success(
        &self,
        writes: &[SuccessWrite],
    ) -> cronlease::Result<Vec<Uuid>> {
        let op = "execution_finish_success";
        let written = self
            .call(op, self.inner.execution_finish_success(writes))
            .await;
        self.fenced(op, writes.len(), &written);
        written
    }
    async fn execution_finish_failure(
        &self,
        writes: &[FailureWrite],
    ) -> cronlease::Result<Vec<Uuid>> {
        let op = "execution_finish_failure";
        let written = self
            .call(op, self.inner.execution_finish_failure(writes))
            .await;
        self.fenced(op, writes.len(), &written);
        written
    }
    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> cronlease::Result<Vec<Swept>> {
        let op = "execution_sweep_stale";
        self.call(
            op,
            self.inner
                .execution_sweep_stale(job, allow_reentry, not_after),
        )
        .await
    }
    async fn execution_get(&self, id: Uuid) -> cronlease::Result<Option<Execution>> {
        self.call("execution_get", self.inner.execution_get(id))
            .await
    }
    async fn execution_list(&self, filter: &ExecutionFilter) -> cronlease::Result<Vec<Execution>> {
        self.call("execution_list", self.inner.execution_list(filter))
            .await
    }
    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> cronlease::Result<Vec<Execution>> {
        let op = "execution_latest_per_scope";
        self.call(op, self.inner.execution_latest_per_scope(job, after, limit))
            .await
    }
    async fn execution_count_by_status(
        &self,
        job: Option<&str>,
    ) -> cronlease::Result<Vec<(Status, i64)>> {
        let op = "execution_count_by_status";
        self.call(op, self.inner.execution_count_by_status(job))
            .await
    }
    async fn execution_replay(
        &self,
        ids: &[Uuid],
        extra_attempts: u32,
    ) -> cronlease::Result<Vec<Execution>> {
        let op = "execution_replay";
        self.call(op, self.inner.execution_replay(ids, extra_attempts))
            .await
    }
    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: cronlease::store::PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> cronlease::Result<u64> {
        let op = "execution_prune";
        self.call(op, self.inner.execution_prune(set, jobs, older_than, limit))
            .await
    }
    async fn execution_prune_default_partition(
        &self,
        set: PruneSet,
        jobs: cronlease::store::PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> cronlease::Result<u64> {
        let op = "execution_prune";
        let call = self
            .inner
            .execution_prune_default_partition(set, jobs, older_than, limit);
        self.call(op, call).await
    }
    async fn migration_status(&self) -> cronlease::Result<cronlease::store::MigrationStatus> {
        self.call("migration_status", self.inner.migration_status())
            .await
    }
    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: cronlease::store::PruneJobs<'_>,
        older_than: std::time::Duration,
    ) -> cronlease::Result<u64> {
        let op = "execution_count_prunable";
        self.call(
            op,
            self.inner.execution_count_prunable(set, jobs, older_than),
        )
        .await
    }
    async fn execution_count_stale(&self) -> cronlease::Result<Vec<(String, i64)>> {
        self.call("execution_count_stale", self.inner.execution_count_stale())
            .await
    }
    async fn execution_count_failing(
        &self,
        since: DateTime<Utc>,
    ) -> cronlease::Result<Vec<(String, i64)>> {
        let op = "execution_count_failing";
        self.call(op, self.inner.execution_count_failing(since))
            .await
    }
    async fn tick_clock(&self, job: &str) -> cronlease::Result<cronlease::TickClock> {
        self.call("tick_clock", self.inner.tick_clock(job)).await
    }
    async fn pause_set(&self, pause: &cronlease::Pause) -> cronlease::Result<cronlease::Pause> {
        self.call("pause_set", self.inner.pause_set(pause)).await
    }
    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> cronlease::Result<bool> {
        self.call("pause_clear", self.inner.pause_clear(job, scope))
            .await
    }
    async fn pause_list(&self, job: Option<&str>) -> cronlease::Result<Vec<cronlease::Pause>> {
        self.call("pause_list", self.inner.pause_list(job)).await
    }
    async fn skip_record(&self, spans: &[cronlease::SkipSpan]) -> cronlease::Result<()> {
        self.call("skip_record", self.inner.skip_record(spans))
            .await
    }
    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> cronlease::Result<Vec<cronlease::SkipSpan>> {
        self.call(
            "skip_find",
            self.inner.skip_find(job, scope, plan_time, due_at),
        )
        .await
    }
    async fn skip_list(
        &self,
        job: Option<&str>,
        limit: usize,
    ) -> cronlease::Result<Vec<cronlease::SkipSpan>> {
        self.call("skip_list", self.inner.skip_list(job, limit))
            .await
    }
    async fn skip_prune(
        &self,
        older_than: std::time::Duration,
        limit: usize,
    ) -> cronlease::Result<u64> {
        self.call("skip_prune", self.inner.skip_prune(older_than, limit))
            .await
    }

    async fn runner_register(
        &self,
        runner: &cronlease::store::RunnerRegistration,
        jobs: &[cronlease::JobDescription],
    ) -> cronlease::Result<()> {
        self.call("runner_register", self.inner.runner_register(runner, jobs))
            .await
    }
    async fn runner_seen(&self, runner_id: &str) -> cronlease::Result<bool> {
        self.call("runner_seen", self.inner.runner_seen(runner_id))
            .await
    }
    async fn runner_stop(&self, runner_id: &str) -> cronlease::Result<bool> {
        self.call("runner_stop", self.inner.runner_stop(runner_id))
            .await
    }
    async fn runner_list(&self) -> cronlease::Result<Vec<cronlease::Runner>> {
        self.call("runner_list", self.inner.runner_list()).await
    }
    async fn runner_prune(&self, older_than: std::time::Duration) -> cronlease::Result<u64> {
        self.call("runner_prune", self.inner.runner_prune(older_than))
            .await
    }
    async fn registered_jobs(
        &self,
        job: Option<&str>,
    ) -> cronlease::Result<Vec<cronlease::RegisteredJob>> {
        self.call("registered_jobs", self.inner.registered_jobs(job))
            .await
    }
    async fn history_partitions(
        &self,
    ) -> cronlease::Result<Option<cronlease::store::HistoryPartitions>> {
        self.call("history_partitions", self.inner.history_partitions())
            .await
    }
    async fn history_partitions_create(
        &self,
        days: &[chrono::NaiveDate],
    ) -> cronlease::Result<u64> {
        self.call(
            "history_partitions_create",
            self.inner.history_partitions_create(days),
        )
        .await
    }
    async fn history_partition_drop(
        &self,
        day: chrono::NaiveDate,
        keep: &cronlease::store::PartitionKeep,
    ) -> cronlease::Result<Option<cronlease::store::PartitionDropped>> {
        self.call(
            "history_partition_drop",
            self.inner.history_partition_drop(day, keep),
        )
        .await
    }
    async fn trigger_create(
        &self,
        trigger: &cronlease::Trigger,
    ) -> cronlease::Result<cronlease::Trigger> {
        self.call("trigger_create", self.inner.trigger_create(trigger))
            .await
    }
    async fn trigger_list(
        &self,
        job: Option<&str>,
        pending_only: bool,
    ) -> cronlease::Result<Vec<cronlease::Trigger>> {
        self.call("trigger_list", self.inner.trigger_list(job, pending_only))
            .await
    }
    async fn trigger_start(
        &self,
        start: &cronlease::store::ManualStart<'_>,
    ) -> cronlease::Result<Vec<cronlease::store::Claimed>> {
        self.call("trigger_start", self.inner.trigger_start(start))
            .await
    }
    async fn backfill_create(
        &self,
        backfill: &cronlease::Backfill,
    ) -> cronlease::Result<cronlease::Backfill> {
        self.call("backfill_create", self.inner.backfill_create(backfill))
            .await
    }
    async fn backfill_get(&self, id: uuid::Uuid) -> cronlease::Result<Option<cronlease::Backfill>> {
        self.call("backfill_get", self.inner.backfill_get(id)).await
    }
    async fn backfill_list(
        &self,
        job: Option<&str>,
        active_only: bool,
    ) -> cronlease::Result<Vec<cronlease::Backfill>> {
        self.call("backfill_list", self.inner.backfill_list(job, active_only))
            .await
    }
    async fn backfill_cancel(&self, id: uuid::Uuid) -> cronlease::Result<bool> {
        self.call("backfill_cancel", self.inner.backfill_cancel(id))
            .await
    }
    async fn backfill_advance(
        &self,
        advance: &cronlease::store::BackfillAdvance,
    ) -> cronlease::Result<bool> {
        self.call("backfill_advance", self.inner.backfill_advance(advance))
            .await
    }
    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> cronlease::Result<u64> {
        self.call(
            "execution_rerun",
            self.inner
                .execution_rerun(job, plans, finished_before, extra_attempts),
        )
        .await
    }
}

/// Where a test database lives, in a form that travels to a child process (as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DbLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A schema on a PostgreSQL server.
    Postgres { url: String, schema: String },
    /// A database on a MySQL server: its connect URL.
    MySql { url: String, database: String },
}

impl DbLocation {
    pub fn of(db: &TestDb) -> Self {
        match (&db.sqlite_path, db.pg_schema()) {
            (Some(path), _) => DbLocation::Sqlite(path.clone()),
            (None, Some((url, schema))) => DbLocation::Postgres {
                url: url.to_owned(),
                schema: schema.to_owned(),
            },
            (None, None) => {
                let (url, database) = db.mysql_database().expect("a MySQL test database");
                DbLocation::MySql {
                    url: url.to_owned(),
                    database: database.to_owned(),
                }
            }
        }
    }

    /// The MySQL connect options of the test database.
    pub fn mysql_options(&self) -> Option<MySqlConnectOptions> {
        match self {
            DbLocation::MySql { url, database } => Some(
                MySqlConnectOptions::from_str(url)
                    .expect("mysql url")
                    .database(database),
            ),
            _ => None,
        }
    }

    /// The PostgreSQL connect options of the test schema.
    pub fn pg_options(&self) -> Option<PgConnectOptions> {
        match self {
            DbLocation::Postgres { url, schema } => Some(
                PgConnectOptions::from_str(url)
                    .expect("postgres url")
                    .options([("search_path", schema.as_str())]),
            ),
            _ => None,
        }
    }

    /// A store of its own on the database (a pool of `connections` for PostgreSQL; SQLite's own
    /// pool of four), with the database clock shifted by `skew`.
    pub async fn store(&self, skew: TimeDelta, connections: u32) -> Arc<dyn Store> {
        match self {
            DbLocation::Sqlite(path) => Arc::new(
                SqliteStore::open(path)
                    .await
                    .expect("open sqlite")
                    .with_clock_skew(skew),
            ),
            DbLocation::Postgres { .. } => {
                let pool = PgPoolOptions::new()
                    .max_connections(connections)
                    .connect_lazy_with(self.pg_options().unwrap());
                Arc::new(PgStore::from_pool(pool).with_clock_skew(skew))
            }
            DbLocation::MySql { .. } => {
                let pool = MySqlStore::pool_options()
                    .max_connections(connections)
                    .connect_lazy_with(self.mysql_options().unwrap());
                Arc::new(MySqlStore::from_pool(pool).with_clock_skew(skew))
            }
        }
    }

    /// A small pool for the side table (30 s SQLite busy timeout: handlers wait out contention).
    pub async fn side(&self) -> SidePool {
        match self {
            DbLocation::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30));
                SidePool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(2)
                        .connect_with(options)
                        .await
                        .expect("side pool"),
                )
            }
            // Lazy: connections are opened by the runtime that first uses them (a handler's),
            // which then drives their sockets.
            DbLocation::Postgres { .. } => SidePool::Pg(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with(self.pg_options().unwrap()),
            ),
            DbLocation::MySql { .. } => SidePool::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with(self.mysql_options().unwrap()),
            ),
        }
    }
}

/// One handler run as recorded in the side table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideRun {
    pub scope_id: String,
    pub plan_time: DateTime<Utc>,
    pub attempt: i64,
    pub runner: String,
    pub execution_id: String,
    /// A fresh id per run, also put in the run's result, to tell which run's result a row holds.
    pub run_id: String,
    /// `run` (one record per run), or `start` / `end` for runs recorded at both ends.
    pub phase: String,
    /// When it was recorded, by the recording process's clock (Unix ms): the processes of a
    /// test share the machine's clock.
    pub at_ms: i64,
}

impl SideRun {
    /// A record of the run `ctx` is for.
    pub fn of(ctx: &cronlease::JobContext, run_id: Uuid, phase: &str) -> Self {
        SideRun {
            scope_id: ctx.scope().id.clone(),
            plan_time: ctx.plan_time(),
            attempt: i64::from(ctx.attempt()),
            runner: ctx.runner_id().to_owned(),
            execution_id: ctx.execution_id().to_string(),
            run_id: run_id.to_string(),
            phase: phase.to_owned(),
            at_ms: Utc::now().timestamp_millis(),
        }
    }
}

/// The side table `chaos_runs`, on the test's own database (schema or file).
#[derive(Clone)]
pub enum SidePool {
    Sqlite(SqlitePool),
    Pg(PgPool),
    MySql(MySqlPool),
}

const SIDE_TABLE: &str = "CREATE TABLE IF NOT EXISTS chaos_runs (
  scope_id TEXT NOT NULL, plan_ms BIGINT NOT NULL, attempt BIGINT NOT NULL, runner TEXT NOT NULL,
  execution_id TEXT NOT NULL, run_id TEXT NOT NULL, phase TEXT NOT NULL, at_ms BIGINT NOT NULL)";
const SIDE_INSERT_SQLITE: &str = "INSERT INTO chaos_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const SIDE_INSERT_PG: &str = "INSERT INTO chaos_runs VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SIDE_INSERT_MYSQL: &str = "INSERT INTO chaos_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const SIDE_SELECT: &str = "SELECT scope_id, plan_ms, attempt, runner, execution_id, run_id, phase,
  at_ms FROM chaos_runs ORDER BY plan_ms, scope_id, attempt";

impl SidePool {
    pub async fn create(&self) {
        match self {
            SidePool::Sqlite(pool) => sqlx::query(SIDE_TABLE).execute(pool).await.map(drop),
            SidePool::Pg(pool) => sqlx::query(SIDE_TABLE).execute(pool).await.map(drop),
            SidePool::MySql(pool) => sqlx::query(SIDE_TABLE).execute(pool).await.map(drop),
        }
        .expect("create the side table");
    }

    /// Records a run; the error is the handler's to classify.
    pub async fn record(&self, run: &SideRun) -> Result<(), sqlx::Error> {
        macro_rules! insert {
            ($sql:expr, $pool:expr) => {
                sqlx::query($sql)
                    .bind(&run.scope_id)
                    .bind(run.plan_time.timestamp_millis())
                    .bind(run.attempt)
                    .bind(&run.runner)
                    .bind(&run.execution_id)
                    .bind(&run.run_id)
                    .bind(&run.phase)
                    .bind(run.at_ms)
                    .execute($pool)
                    .await
                    .map(drop)
            };
        }
        match self {
            SidePool::Sqlite(pool) => insert!(SIDE_INSERT_SQLITE, pool),
            SidePool::Pg(pool) => insert!(SIDE_INSERT_PG, pool),
            SidePool::MySql(pool) => insert!(SIDE_INSERT_MYSQL, pool),
        }
    }

    pub async fn runs(&self) -> Vec<SideRun> {
        type Row = (String, i64, i64, String, String, String, String, i64);
        let rows: Vec<Row> = match self {
            SidePool::Sqlite(pool) => sqlx::query_as(SIDE_SELECT).fetch_all(pool).await,
            SidePool::Pg(pool) => sqlx::query_as(SIDE_SELECT).fetch_all(pool).await,
            SidePool::MySql(pool) => sqlx::query_as(SIDE_SELECT).fetch_all(pool).await,
        }
        .expect("read the side table");
        rows.into_iter()
            .map(|r| SideRun {
                scope_id: r.0,
                plan_time: DateTime::from_timestamp_millis(r.1).expect("plan time"),
                attempt: r.2,
                runner: r.3,
                execution_id: r.4,
                run_id: r.5,
                phase: r.6,
                at_ms: r.7,
            })
            .collect()
    }
}

/// Child processes of a test, killed (SIGKILL) when dropped; their logs are printed when the
/// test is failing.
#[derive(Default)]
pub struct Children {
    procs: Vec<(String, Child, PathBuf)>,
}

impl Children {
    /// Runs the test named `test` of this test binary as a child process (with `--exact`, one
    /// thread, output to `<log_dir>/<name>.log`), with `env` set.
    pub fn spawn(&mut self, name: &str, test: &str, env: &[(&str, String)], log_dir: &Path) {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("child log");
        let err = out.try_clone().expect("child log");
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn a child process");
        self.procs.push((name.to_owned(), child, log));
    }

    /// The process id of child `name`.
    pub fn pid(&self, name: &str) -> u32 {
        self.find(name).id()
    }

    fn find(&self, name: &str) -> &Child {
        &self
            .procs
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no child {name}"))
            .1
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to child `name` with `kill(1)`.
    pub fn signal(&self, name: &str, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid(name).to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {name}: {status}");
    }

    /// Sends SIGKILL to child `name` and reaps it.
    pub fn kill(&mut self, name: &str) {
        let index = self
            .procs
            .iter()
            .position(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no child {name}"));
        let (_, mut child, _) = self.procs.remove(index);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Waits up to `timeout` for every child to exit; returns their exit statuses by name.
    pub fn wait_all(&mut self, timeout: Duration) -> Vec<(String, ExitStatus)> {
        let deadline = Instant::now() + timeout;
        let mut done = Vec::new();
        while !self.procs.is_empty() {
            let mut i = 0;
            while i < self.procs.len() {
                if let Some(status) = self.procs[i].1.try_wait().expect("try_wait") {
                    let (name, _, log) = self.procs.remove(i);
                    if !status.success() {
                        print_tail(&name, &log);
                    }
                    done.push((name, status));
                } else {
                    i += 1;
                }
            }
            if self.procs.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "children still running after {timeout:?}: {:?}",
                self.procs.iter().map(|p| &p.0).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        done
    }
}

fn print_tail(name: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(60)..];
    eprintln!("---- last lines of child {name} ({}) ----", log.display());
    for line in tail {
        eprintln!("{line}");
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for (name, child, log) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
            if failing {
                print_tail(name, log);
            }
        }
    }
}

/// This process's resident set size in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Every execution of `job` (oldest plan first).
pub async fn all_rows(store: &dyn Store, job: &str) -> Vec<Execution> {
    let mut rows = super::rows(store, job).await;
    rows.reverse();
    rows
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`; `None` on timeout.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where Debian's `faketime` package puts its preload library.
const FAKETIME_LIBRARIES: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// The `libfaketime` preload library, installing Debian's `faketime` package (`apt-get install
/// -y faketime`) when it is missing and the test runs as root. `None` means the test cannot
/// shift a process's clock and should be skipped with a message; under `CI=true` that is a
/// failure instead.
pub fn faketime_library() -> Option<PathBuf> {
    // One installer at a time: the shifted-clock tests of both servers run side by side, and a
    // second `apt-get` fails on the first one's lock.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let find = || {
        FAKETIME_LIBRARIES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(found) = find() {
        return Some(found);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        eprintln!("faketime is missing: apt-get install -y faketime");
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-q", "faketime"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
        if !installed.is_ok_and(|s| s.success()) {
            // The package lists may be missing on a fresh machine.
            let _ = Command::new("apt-get")
                .args(["update", "-q"])
                .stdout(Stdio::null())
                .status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-q", "faketime"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status();
        }
    }
    let found = find();
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but libfaketime is missing and could not be installed (apt-get install -y faketime)"
        );
    }
    found
}
