//! Deadlines: no store call waits on a silent network for longer than it is allowed to.
//!
//! - [`StoreDeadlines`]: the per-call deadline and the server-side timeouts, with their defaults;
//!   given to a store's constructor (`PgStore::connect_with_deadlines`,
//!   `MySqlStore::connect_with_deadlines`, `SqliteStore::connect_with_deadlines`) and read back
//!   through [`Store::deadlines`].
//! - `Deadlined`: the decorator the scheduler puts around its store, which bounds every call
//!   but the migration by [`StoreDeadlines::call`] and turns an expired deadline into the
//!   transient [`Error::DeadlineExceeded`], so the runtime retries it like any database blip.
//! - `Checkout`: a pooled connection that is discarded, never returned to the pool, when the
//!   call using it is dropped mid-flight (its deadline expired). A backend whose connections
//!   talk to a server over a network runs every statement on one.
//!
//! Why a connection that timed out must go: sqlx returns a connection dropped mid-statement to
//! the pool through a task that first waits for the rest of the statement's reply. When the
//! network went silent that reply never comes, the task never ends, and each such connection
//! holds one of the pool's slots for good: a few timeouts and the pool is empty forever, long
//! after the network healed. A `Checkout` dropped before [`Checkout::done`] detaches its
//! connection instead (the socket is closed at once and the pool may open a replacement).
//!
//! A third backend adopts this in a few lines: store a [`StoreDeadlines`] given to its
//! constructor and return it from [`Store::deadlines`]; set its server-side equivalents of
//! [`StoreDeadlines::statement`] and [`StoreDeadlines::lock`] on each connection; and run each
//! statement on a [`Checkout`] (`let mut c = Checkout::acquire(&pool, op).await?;` then
//! `.fetch_all(&mut *c)` and `c.done(result)?`).

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use uuid::Uuid;

use super::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, MigrationStatus, PruneJobs,
    PruneSet, Renewal, RetryCandidate, Store, SuccessWrite, Swept, db_error,
};
use crate::control::{Backfill, BackfillAdvance, ClaimGuard, Pause, SkipSpan, Trigger};
use crate::error::{Error, Result};
use crate::execution::{Execution, Status};
use crate::scope::Scope;

/// How long a store call may take, on the client and on the server.
///
/// The defaults keep the slowest heartbeat of a job with default settings (a beat every 10 s
/// whose call gives up after 10 s) far inside its 120 s `stale_timeout`, while leaving a large
/// batch (thousands of rows in one statement on a busy server) the time it needs.
///
/// ```no_run
/// # async fn demo() -> cronlease::Result<()> {
/// use std::time::Duration;
/// use cronlease::store::StoreDeadlines;
///
/// let deadlines = StoreDeadlines {
///     call: Duration::from_secs(5),
///     statement: Duration::from_secs(4),
///     ..StoreDeadlines::default()
/// };
/// let options: sqlx::postgres::PgConnectOptions =
///     "postgres://cronlease@db.internal/app".parse().expect("a PostgreSQL URL");
/// let store = cronlease::PgStore::connect_with_deadlines(options, deadlines).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreDeadlines {
    /// The client-side deadline of every store call the scheduler makes (the migration at
    /// start excepted): waiting for a pooled connection, connecting, sending, and reading the
    /// reply. A call past it fails with the transient [`Error::DeadlineExceeded`] and its
    /// connection is closed, never reused. A heartbeat is further bounded by its job's
    /// `heartbeat_interval`, so a beat that hangs delays the next one by at most an interval
    /// (with the job defaults: a beat every 10 s, each given up after 10 s, in a 120 s lease).
    /// Default: 30 s.
    pub call: Duration,
    /// The server's limit on one statement (PostgreSQL `statement_timeout`; MariaDB
    /// `max_statement_time`; MySQL 8 `max_execution_time`, which bounds `SELECT`s only), shorter
    /// than `call` so that a statement slow on the server is cancelled there (its locks
    /// released, the connection kept) before the client gives up. Default: 25 s.
    pub statement: Duration,
    /// How long a statement waits for a row lock (PostgreSQL `lock_timeout`; MySQL
    /// `innodb_lock_wait_timeout` and `lock_wait_timeout`, whole seconds rounded up) or for
    /// another process's write lock (SQLite's busy timeout). Default: 5 s.
    pub lock: Duration,
    /// How long the server keeps a transaction whose client went silent before aborting it and
    /// releasing its locks (PostgreSQL `idle_in_transaction_session_timeout`; MariaDB
    /// `idle_transaction_timeout`, whole seconds rounded up, closing the session; MySQL 8 has
    /// no such setting). Default: 30 s.
    pub idle_in_transaction: Duration,
    /// TCP keepalive on the server's side of each pooled connection (PostgreSQL
    /// `tcp_keepalives_idle`, probing every third of it, three probes): a server finds a
    /// client that vanished without closing its socket within about twice this, and frees its
    /// backend. `None` keeps the server's setting. Default: 30 s. PostgreSQL only: MySQL and
    /// MariaDB set keepalive server-wide, not per session.
    ///
    /// The client's side has no keepalive: sqlx 0.9 does not expose the socket option (neither
    /// for PostgreSQL nor for MySQL). The per-call deadline is what bounds a client's wait.
    pub server_keepalive: Option<Duration>,
}

/// Default [`StoreDeadlines::call`].
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(30);

impl Default for StoreDeadlines {
    fn default() -> Self {
        StoreDeadlines {
            call: DEFAULT_CALL_DEADLINE,
            statement: Duration::from_secs(25),
            lock: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(30),
            server_keepalive: Some(Duration::from_secs(30)),
        }
    }
}

impl StoreDeadlines {
    /// Checks that every deadline is longer than zero, at most a day, and that `statement` and
    /// `lock` are not longer than `call` (the server must give up first).
    pub fn validate(&self) -> Result<()> {
        const DAY: Duration = Duration::from_secs(86_400);
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        for (name, value) in [
            ("call", self.call),
            ("statement", self.statement),
            ("lock", self.lock),
            ("idle_in_transaction", self.idle_in_transaction),
        ] {
            if value < Duration::from_millis(1) || value > DAY {
                return Err(Error::InvalidConfig(format!(
                    "StoreDeadlines::{name} ({}) must be between 1ms and 1 day",
                    fmt(value)
                )));
            }
        }
        if let Some(keepalive) = self.server_keepalive
            && (keepalive < Duration::from_secs(3) || keepalive > DAY)
        {
            return Err(Error::InvalidConfig(format!(
                "StoreDeadlines::server_keepalive ({}) must be between 3s and 1 day, or None",
                fmt(keepalive)
            )));
        }
        for (name, value) in [("statement", self.statement), ("lock", self.lock)] {
            if value > self.call {
                return Err(Error::InvalidConfig(format!(
                    "StoreDeadlines::{name} ({}) must not be longer than StoreDeadlines::call ({}): the server should give up before the client",
                    fmt(value),
                    fmt(self.call)
                )));
            }
        }
        Ok(())
    }
}

/// Whole milliseconds, at least 1 (zero disables a PostgreSQL timeout).
pub(crate) fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

/// Runs `call` within `deadline`; past it, the call is dropped and the transient
/// [`Error::DeadlineExceeded`] returned.
pub(crate) async fn bounded<T>(
    operation: &'static str,
    deadline: Duration,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(Error::DeadlineExceeded {
            operation,
            deadline,
        }),
    }
}

/// A store whose every call but [`Store::migrate`] is bounded by the inner store's
/// [`StoreDeadlines::call`].
pub(crate) struct Deadlined {
    inner: Arc<dyn Store>,
    call: Duration,
}

impl Deadlined {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        let call = inner.deadlines().call;
        Deadlined { inner, call }
    }
}

#[async_trait]
impl Store for Deadlined {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn deadlines(&self) -> StoreDeadlines {
        self.inner.deadlines()
    }

    /// Not bounded: a migration may rightly take long on a big table.
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    async fn db_now(&self) -> Result<DateTime<Utc>> {
        bounded("db_now", self.call, self.inner.db_now()).await
    }

    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> Result<usize> {
        let call = self.inner.execution_latest_plans_each(job, each);
        bounded("execution_latest_plans", self.call, call).await
    }

    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> Result<Vec<bool>> {
        let call = self.inner.execution_plans_exist(job, plans);
        bounded("execution_plans_exist", self.call, call).await
    }

    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>> {
        let call = self.inner.execution_retry_candidates(job, limit);
        bounded("execution_retry_candidates", self.call, call).await
    }

    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>> {
        let call = self.inner.execution_supersede(job);
        bounded("execution_supersede", self.call, call).await
    }

    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        let call = self.inner.execution_claim(request);
        bounded("execution_claim", self.call, call).await
    }

    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        let call = self.inner.execution_claim_guarded(request, guard);
        bounded("execution_claim", self.call, call).await
    }

    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>> {
        let call = self.inner.execution_heartbeat(renewals);
        bounded("execution_heartbeat", self.call, call).await
    }

    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>> {
        let call = self.inner.execution_finish_success(writes);
        bounded("execution_finish_success", self.call, call).await
    }

    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>> {
        let call = self.inner.execution_finish_failure(writes);
        bounded("execution_finish_failure", self.call, call).await
    }

    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        let call = self
            .inner
            .execution_sweep_stale(job, allow_reentry, not_after);
        bounded("execution_sweep_stale", self.call, call).await
    }

    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>> {
        bounded("execution_get", self.call, self.inner.execution_get(id)).await
    }

    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let call = self.inner.execution_list(filter);
        bounded("execution_list", self.call, call).await
    }

    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Vec<Execution>> {
        let call = self.inner.execution_latest_per_scope(job, after, limit);
        bounded("execution_latest_per_scope", self.call, call).await
    }

    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        let call = self.inner.execution_count_by_status(job);
        bounded("execution_count_by_status", self.call, call).await
    }

    async fn execution_replay(&self, ids: &[Uuid], extra_attempts: u32) -> Result<Vec<Execution>> {
        let call = self.inner.execution_replay(ids, extra_attempts);
        bounded("execution_replay", self.call, call).await
    }

    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let call = self.inner.execution_prune(set, jobs, older_than, limit);
        bounded("execution_prune", self.call, call).await
    }

    async fn execution_prune_default_partition(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let call = self
            .inner
            .execution_prune_default_partition(set, jobs, older_than, limit);
        bounded("execution_prune", self.call, call).await
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        let call = self.inner.migration_status();
        bounded("migration_status", self.call, call).await
    }

    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
    ) -> Result<u64> {
        let call = self.inner.execution_count_prunable(set, jobs, older_than);
        bounded("execution_count_prunable", self.call, call).await
    }

    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>> {
        let call = self.inner.execution_count_stale();
        bounded("execution_count_stale", self.call, call).await
    }

    async fn execution_count_failing(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let call = self.inner.execution_count_failing(since);
        bounded("execution_count_failing", self.call, call).await
    }

    async fn tick_clock(&self, job: &str) -> Result<super::TickClock> {
        bounded("tick_clock", self.call, self.inner.tick_clock(job)).await
    }

    async fn pause_set(&self, pause: &Pause) -> Result<Pause> {
        bounded("pause_set", self.call, self.inner.pause_set(pause)).await
    }

    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        let call = self.inner.pause_clear(job, scope);
        bounded("pause_clear", self.call, call).await
    }

    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        bounded("pause_list", self.call, self.inner.pause_list(job)).await
    }

    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()> {
        bounded("skip_record", self.call, self.inner.skip_record(spans)).await
    }

    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<Vec<SkipSpan>> {
        let find = self.inner.skip_find(job, scope, plan_time, due_at);
        bounded("skip_find", self.call, find).await
    }

    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        bounded("skip_list", self.call, self.inner.skip_list(job, limit)).await
    }

    async fn skip_prune(&self, older_than: Duration, limit: usize) -> Result<u64> {
        let prune = self.inner.skip_prune(older_than, limit);
        bounded("skip_prune", self.call, prune).await
    }

    async fn runner_register(
        &self,
        runner: &crate::control::RunnerRegistration,
        jobs: &[crate::control::JobDescription],
    ) -> Result<()> {
        let call = self.inner.runner_register(runner, jobs);
        bounded("runner_register", self.call, call).await
    }

    async fn runner_seen(&self, runner_id: &str) -> Result<bool> {
        bounded("runner_seen", self.call, self.inner.runner_seen(runner_id)).await
    }

    async fn runner_stop(&self, runner_id: &str) -> Result<bool> {
        bounded("runner_stop", self.call, self.inner.runner_stop(runner_id)).await
    }

    async fn runner_list(&self) -> Result<Vec<crate::control::Runner>> {
        bounded("runner_list", self.call, self.inner.runner_list()).await
    }

    async fn runner_prune(&self, older_than: Duration) -> Result<u64> {
        bounded(
            "runner_prune",
            self.call,
            self.inner.runner_prune(older_than),
        )
        .await
    }

    async fn registered_jobs(
        &self,
        job: Option<&str>,
    ) -> Result<Vec<crate::control::RegisteredJob>> {
        bounded(
            "registered_jobs",
            self.call,
            self.inner.registered_jobs(job),
        )
        .await
    }

    async fn history_partitions(&self) -> Result<Option<super::HistoryPartitions>> {
        let call = self.inner.history_partitions();
        bounded("history_partitions", self.call, call).await
    }

    async fn history_partitions_create(&self, days: &[chrono::NaiveDate]) -> Result<u64> {
        let call = self.inner.history_partitions_create(days);
        bounded("history_partitions_create", self.call, call).await
    }

    async fn history_partition_drop(
        &self,
        day: chrono::NaiveDate,
        keep: &super::PartitionKeep,
    ) -> Result<Option<super::PartitionDropped>> {
        let call = self.inner.history_partition_drop(day, keep);
        bounded("history_partition_drop", self.call, call).await
    }

    async fn trigger_create(&self, trigger: &Trigger) -> Result<Trigger> {
        let call = self.inner.trigger_create(trigger);
        bounded("trigger_create", self.call, call).await
    }

    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>> {
        let call = self.inner.trigger_list(job, pending_only);
        bounded("trigger_list", self.call, call).await
    }

    async fn trigger_start(&self, start: &super::ManualStart<'_>) -> Result<Vec<Claimed>> {
        let call = self.inner.trigger_start(start);
        bounded("trigger_start", self.call, call).await
    }

    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill> {
        let call = self.inner.backfill_create(backfill);
        bounded("backfill_create", self.call, call).await
    }

    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>> {
        bounded("backfill_get", self.call, self.inner.backfill_get(id)).await
    }

    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>> {
        let call = self.inner.backfill_list(job, active_only);
        bounded("backfill_list", self.call, call).await
    }

    async fn backfill_cancel(&self, id: Uuid) -> Result<bool> {
        bounded("backfill_cancel", self.call, self.inner.backfill_cancel(id)).await
    }

    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool> {
        let call = self.inner.backfill_advance(advance);
        bounded("backfill_advance", self.call, call).await
    }

    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64> {
        let call = self
            .inner
            .execution_rerun(job, plans, finished_before, extra_attempts);
        bounded("execution_rerun", self.call, call).await
    }
}

/// A pooled connection for one store call, discarded if the call is dropped before
/// [`done`](Self::done) (its deadline expired mid-statement): its socket is closed at once and
/// the pool may open a replacement. Dereferences to the connection.
pub(crate) struct Checkout<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    operation: &'static str,
}

impl<DB: Database> Checkout<DB> {
    /// A connection from `pool` for `operation`.
    pub(crate) async fn acquire(pool: &Pool<DB>, operation: &'static str) -> Result<Self> {
        let conn = pool.acquire().await.map_err(|e| db_error(operation, e))?;
        Ok(Checkout {
            conn: Some(conn),
            operation,
        })
    }

    /// The call finished (well or not): the connection goes back to the pool, and a driver
    /// error becomes the store's error for this operation.
    pub(crate) fn done<T>(mut self, result: std::result::Result<T, sqlx::Error>) -> Result<T> {
        drop(self.conn.take());
        result.map_err(|e| db_error(self.operation, e))
    }
}

impl<DB: Database> Checkout<DB> {
    /// Like [`done`](Self::done), for a call whose driver errors are already the store's.
    pub(crate) fn release<T>(mut self, result: Result<T>) -> Result<T> {
        drop(self.conn.take());
        result
    }
}

impl<DB: Database> Deref for Checkout<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        self.conn
            .as_ref()
            .expect("a checkout holds its connection until done")
    }
}

impl<DB: Database> DerefMut for Checkout<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until done")
    }
}

impl<DB: Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            tracing::warn!(
                operation = self.operation,
                "a store call was abandoned mid-statement (deadline): closing its connection"
            );
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_the_server_gives_up_first() {
        let d = StoreDeadlines::default();
        d.validate().unwrap();
        assert!(d.statement < d.call && d.lock < d.call);
        let bad = StoreDeadlines {
            statement: Duration::from_secs(40),
            ..d
        };
        let message = bad.validate().unwrap_err().to_string();
        assert!(
            message.contains("StoreDeadlines::statement (40s)"),
            "{message}"
        );
        let zero = StoreDeadlines {
            call: Duration::ZERO,
            ..d
        };
        assert!(zero.validate().is_err());
    }

    #[tokio::test]
    async fn an_expired_deadline_is_a_transient_error_naming_the_call() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        };
        let error = bounded("execution_heartbeat", Duration::from_millis(10), slow)
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(
            error.to_string(),
            "the database did not answer execution_heartbeat within its 10ms deadline"
        );
    }
}
