//! [`MySqlStore`]: MySQL 8 or MariaDB 10.11+, for several replicas sharing one table.
//!
//! - [`MySqlStore`]: the store; `connect`, `connect_with`, `connect_lazy` or `from_pool`, then
//!   [`Store::migrate`].
//! - `sql`: the statements; batches travel as one JSON array read with `JSON_TABLE`, so a batch
//!   of any size is one statement text.
//! - `migrate`: the schema, tracked in `cronlease_migrations` and applied under `GET_LOCK`.
//! - `row`: decoding rows into [`Execution`].
//! - `session`: what every pooled connection is set to (isolation, the server-side deadlines
//!   its flavour knows, MariaDB or MySQL).
//! - `error`: which error numbers are transient.
//!
//! Every call runs on a `Checkout` (`store::deadline`): a connection abandoned mid-call (its
//! deadline expired) is closed, never returned to the pool.
//!
//! Times are `DATETIME(6)` holding UTC (the session `time_zone` is pinned to `+00:00`); ids and
//! tokens are `BINARY(16)`; names and scopes `VARBINARY` (compared byte for byte); `result` and
//! `failures` are `JSON`, with the failure history's times as Unix-millisecond integers, as on
//! every backend. Table names are unqualified: the URL's database holds them.
//!
//! **Isolation: READ COMMITTED**, set on every connection the store's pools open. Under
//! InnoDB's default REPEATABLE READ, locking reads and upserts also lock the gaps between
//! index records (next-key locks), so two claimers inserting neighbouring plans block each
//! other and deadlock; under READ COMMITTED only the rows themselves are locked. Nothing here
//! needs a repeatable snapshot: every decision is made on rows the transaction has locked.
//! Deadlocks (1213) and lock wait timeouts (1205) that still happen are transient errors: the
//! transaction was rolled back and the runtime retries it.
//!
//! **Clock: `UTC_TIMESTAMP(3)`, read in a statement of its own after the row locks are held.**
//! `NOW()` and `UTC_TIMESTAMP()` are fixed when a statement starts, so a statement that waited
//! on a lock would stamp a lease with the time it began waiting; `SYSDATE()` is read at
//! execution but anew at every call (two stamps of one row could differ) and the server option
//! `--sysdate-is-now` silently turns it into `NOW()`. A claim, heartbeat or terminal write
//! therefore locks its rows first, then reads the clock once (`SELECT UTC_TIMESTAMP(3)`, a
//! statement that starts when it executes), and writes that value: the stamp is the server's
//! time at the write, and the value compared is the value stored. `UTC_TIMESTAMP` does not
//! depend on the session time zone; the session is pinned to UTC anyway because `DATETIME`
//! values travel without a zone.
//!
//! **Claims of one job queue on its claim lock** (its row in `cronlease_claim_locks`, locked
//! first in every claim, guarded or not, and in every manual start): every insert of a job's
//! execution rows happens under it, so an insert never meets a rival's row that appeared after
//! it looked. Otherwise runners inserting the same new plans wait on each other's rows by plan
//! key (InnoDB's duplicate-key locks) while holding rows by id, and heartbeats and terminal
//! writes hold rows by id: two orders, and deadlocks between replicas. Under the lock, the
//! common claim (every plan new) is one plain `INSERT`; a plan that has a row fails it with a
//! duplicate key (the statement changes nothing) and the full claim runs.
//!
//! One fast path skips the transaction: a success write whose rows are all still RUNNING under
//! their tokens is one `UPDATE` stamping `finished_at` with the statement's own
//! `UTC_TIMESTAMP(3)` (an audit time, not a lease stamp; when fewer rows match, the full path
//! tells which were written).

pub(crate) mod error;
mod migrate;
mod row;
mod session;
mod sql;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, MySqlConnection, Row};
use uuid::Uuid;

use super::deadline::Checkout;
use super::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, Lease, ManualStart,
    MigrationStatus, PruneJobs, PruneSet, Renewal, RetryCandidate, Store, SuccessWrite, Swept,
    TickClock, db_error,
};
use crate::control::{
    Backfill, BackfillAdvance, ClaimGuard, GuardRow, JobDescription, Pause, RegisteredJob, Runner,
    RunnerRegistration, SkipSpan, Trigger,
};
use crate::error::{Error, Result};
use crate::execution::{ClaimOutcome, Execution, Status};
use crate::schedule::duration_ms;
use crate::scope::Scope;
use crate::store::StoreDeadlines;
use crate::store::registry;
use crate::store::rowmap::{corrupt, count, decode_into, parsed};

/// Connections in the pool [`MySqlStore::connect`] and [`MySqlStore::connect_with`] open.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a statement of a store built by [`MySqlStore::connect`] and its siblings waits for
/// a connection before failing with a transient "pool timed out" error (sqlx's default is
/// 30 s). While the server is unreachable, the pool keeps trying to connect for this long; the
/// runtime then backs off and retries, logging each failure.
pub const DEFAULT_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most bytes of JSON one batched parameter carries: well under the smallest default
/// `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8). Larger batches are written in
/// several statements of one transaction.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// How many times a batched write that InnoDB chose as a deadlock victim is run again at once.
const DEADLOCK_RETRIES: u64 = 4;

/// Runs `write` again, at once (after a few milliseconds), when InnoDB picked it as a deadlock
/// victim and rolled its whole transaction back, up to [`DEADLOCK_RETRIES`] times; then the
/// deadlock is reported as the transient error it is. Only for writes that are safe to run again
/// as they are: each one re-reads and re-locks what it changes.
async fn rerun_deadlocked<T, F, Fut>(mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(error) if tries < DEADLOCK_RETRIES && error::is_deadlock(&error) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(
                    1..=5 * tries,
                )))
                .await;
            }
            other => return other,
        }
    }
}

/// A [`Store`] on a MySQL 8 or MariaDB 10.11+ database, shared by any number of replicas.
///
/// ```no_run
/// # async fn demo() -> cronlease::Result<()> {
/// let store = cronlease::MySqlStore::connect("mysql://cronlease:secret@db.internal:3306/app").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    sql: Arc<Statements>,
    deadlines: StoreDeadlines,
    /// One sweep at a time per store: two jobs' sweeps running together in InnoDB can make one
    /// skip (`SKIP LOCKED`) or deadlock on the other's rows, leaving a stale lease to the next
    /// tick. Sweeps are short and per job, so waiting for each other costs nothing noticeable.
    sweeping: Arc<tokio::sync::Mutex<()>>,
    /// Jobs whose claim-lock row this store has made sure of.
    lock_rows: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// The statements with the clock expression filled in.
#[derive(Debug)]
struct Statements {
    db_now: Arc<str>,
    retry_candidates: Arc<str>,
    count_stale: Arc<str>,
    finish_success_at_once: Arc<str>,
    tick_clock: Arc<str>,
    runner_seen: Arc<str>,
    runner_stop: Arc<str>,
    runner_list: Arc<str>,
    runner_prune: Arc<str>,
    registered_jobs: Arc<str>,
    backfill_cancel: Arc<str>,
    backfill_advance: Arc<str>,
}

impl Statements {
    fn new(skew: TimeDelta) -> Self {
        let micros = skew.num_microseconds().unwrap_or(0);
        let now = sql::NOW_EXPR.replace("{SKEW_US}", &micros.to_string());
        let fill = |s: &str| Arc::<str>::from(s.replace("{NOW}", &now));
        Statements {
            db_now: fill(sql::DB_NOW),
            retry_candidates: fill(sql::EXECUTION_RETRY_CANDIDATES),
            count_stale: fill(sql::EXECUTION_COUNT_STALE),
            finish_success_at_once: fill(sql::EXECUTION_FINISH_SUCCESS_AT_ONCE),
            tick_clock: fill(sql::TICK_CLOCK),
            runner_seen: fill(sql::RUNNER_SEEN),
            runner_stop: fill(sql::RUNNER_STOP),
            runner_list: fill(sql::RUNNER_LIST),
            runner_prune: fill(sql::RUNNER_PRUNE),
            registered_jobs: fill(sql::REGISTERED_JOBS),
            backfill_cancel: fill(sql::BACKFILL_CANCEL),
            backfill_advance: fill(sql::BACKFILL_ADVANCE),
        }
    }
}

impl MySqlStore {
    /// Connects with a URL such as `mysql://user:password@host:3306/database` (a pool of
    /// [`DEFAULT_MAX_CONNECTIONS`]). The URL is never logged: it may hold a password.
    ///
    /// Fails with [`Error::InvalidConfig`] for a URL that is not `mysql://` (or `mariadb://`),
    /// and with [`Error::Connect`] naming `host:port` and the database, never the password,
    /// when the server cannot be reached or refuses the session.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(parse_url(url, "MySqlStore::connect")?).await
    }

    /// Connects with explicit options (a pool of [`DEFAULT_MAX_CONNECTIONS`]). The session time
    /// zone is pinned to UTC whatever the options say. A failure is an [`Error::Connect`]
    /// naming `host:port` and the database.
    pub async fn connect_with(options: MySqlConnectOptions) -> Result<Self> {
        Self::connect_with_deadlines(options, StoreDeadlines::default()).await
    }

    /// Like [`MySqlStore::connect_with`], with these deadlines: the scheduler bounds each call
    /// by [`StoreDeadlines::call`] (a connection whose call is abandoned at it is closed, never
    /// reused), and every session of the pool holds the server-side deadlines its server knows,
    /// read from `VERSION()` when it connects:
    ///
    /// - both: a row or metadata lock is waited for at most [`StoreDeadlines::lock`]
    ///   (`innodb_lock_wait_timeout`, `lock_wait_timeout`; whole seconds rounded up, at least 1;
    ///   error 1205, transient);
    /// - MariaDB: every statement ends at [`StoreDeadlines::statement`] (`max_statement_time`;
    ///   error 1969, transient), and a transaction left idle for
    ///   [`StoreDeadlines::idle_in_transaction`] has its session closed and its locks released
    ///   (`idle_transaction_timeout`, whole seconds);
    /// - MySQL 8: `SELECT`s (the locking reads included) end at [`StoreDeadlines::statement`]
    ///   (`max_execution_time`; error 3024, transient); MySQL bounds neither other statements nor
    ///   idle transactions per session.
    ///
    /// Neither server has a per-session TCP keepalive ([`StoreDeadlines::server_keepalive`]
    /// does not apply), and sqlx's MySQL connector sets none on the client's socket. Fails with
    /// [`Error::InvalidConfig`] for invalid deadlines.
    pub async fn connect_with_deadlines(
        options: MySqlConnectOptions,
        deadlines: StoreDeadlines,
    ) -> Result<Self> {
        deadlines.validate()?;
        let options = pinned(options);
        match Self::pool_options_with(&deadlines)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => Ok(Self::from_pool(pool).keep_deadlines(deadlines)),
            Err(e) if error::is_connect_failure(&e) => {
                Err(explain_connect_failure(&options, e).await)
            }
            Err(e) => Err(db_error("connect", e)),
        }
    }

    /// Like [`MySqlStore::connect`], without connecting yet: the first statement connects. Use
    /// it with [`SchedulerBuilder::wait_for_database`](crate::SchedulerBuilder::wait_for_database)
    /// so a service can start before its database is reachable. The URL is checked the same way.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        Ok(Self::connect_lazy_with(parse_url(
            url,
            "MySqlStore::connect_lazy",
        )?))
    }

    /// Like [`MySqlStore::connect_with`], without connecting yet: the first statement connects.
    pub fn connect_lazy_with(options: MySqlConnectOptions) -> Self {
        Self::connect_lazy_with_deadlines(options, StoreDeadlines::default())
            .expect("the default deadlines are valid")
    }

    /// Like [`MySqlStore::connect_lazy_with`], with these deadlines (see
    /// [`MySqlStore::connect_with_deadlines`]).
    pub fn connect_lazy_with_deadlines(
        options: MySqlConnectOptions,
        deadlines: StoreDeadlines,
    ) -> Result<Self> {
        deadlines.validate()?;
        let pool = Self::pool_options_with(&deadlines).connect_lazy_with(pinned(options));
        Ok(Self::from_pool(pool).keep_deadlines(deadlines))
    }

    /// Pool settings that prepare every connection as the store needs it: READ COMMITTED
    /// isolation (see the module docs), the default [`StoreDeadlines`] on the server's side
    /// (see [`MySqlStore::connect_with_deadlines`]), a 10 s acquire timeout,
    /// [`DEFAULT_MAX_CONNECTIONS`]. Start from these when building a pool for
    /// [`MySqlStore::from_pool`] by hand, and keep the session time zone at UTC (sqlx's
    /// default, `MySqlConnectOptions::timezone`).
    pub fn pool_options() -> MySqlPoolOptions {
        Self::pool_options_with(&StoreDeadlines::default())
    }

    /// [`MySqlStore::pool_options`] whose sessions hold `deadlines` on the server's side, as
    /// far as the server's flavour allows (`session`).
    fn pool_options_with(deadlines: &StoreDeadlines) -> MySqlPoolOptions {
        let deadlines = *deadlines;
        MySqlPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let flavour = session::Flavour::of(conn).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(session::bounded(flavour, &deadlines)))
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                })
            })
    }

    /// Keeps the deadlines the store reports through [`Store::deadlines`].
    fn keep_deadlines(mut self, deadlines: StoreDeadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Uses an existing pool. Its connections should come from [`MySqlStore::pool_options`]
    /// (READ COMMITTED) with the session time zone at UTC.
    pub fn from_pool(pool: MySqlPool) -> Self {
        MySqlStore {
            pool,
            sql: Arc::new(Statements::new(TimeDelta::zero())),
            deadlines: StoreDeadlines::default(),
            sweeping: Arc::new(tokio::sync::Mutex::new(())),
            lock_rows: Arc::default(),
        }
    }

    /// Shifts the database clock as seen through this store by `skew`: every lease stamp, plan
    /// decision and retry time it computes moves with it. For tests and simulations that need a
    /// runner to live in the future (to see a lease go stale without waiting).
    pub fn with_clock_skew(mut self, skew: TimeDelta) -> Self {
        self.sql = Arc::new(Statements::new(skew));
        self
    }

    /// The underlying pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The database clock, read in its own statement (after the caller's locks are held).
    async fn now(
        &self,
        conn: &mut MySqlConnection,
        operation: &'static str,
    ) -> Result<DateTime<Utc>> {
        sqlx::query_scalar(q(&self.sql.db_now))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error(operation, e))
    }
}

impl MySqlStore {
    /// One try of [`Store::execution_sweep_stale`], on a connection of its own.
    async fn sweep_once(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        let mut c = Checkout::acquire(&self.pool, "execution_sweep_stale").await?;
        let result = self.sweep_on(&mut c, job, allow_reentry, not_after).await;
        c.release(result)
    }

    /// The body of [`MySqlStore::sweep_once`].
    async fn sweep_on(
        &self,
        conn: &mut MySqlConnection,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        const OP: &str = "execution_sweep_stale";
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let now = self.now(&mut tx, OP).await?;
        if not_after.is_some_and(|t| now > t) {
            // Held up past its deadline (behind an outage): owners could not renew meanwhile.
            tx.commit().await.map_err(|e| db_error(OP, e))?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sql::SWEEP_LOCK)
            .bind(job)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(OP, e))?;
        let mut swept = Vec::new();
        let mut updates = Vec::new();
        for row in &rows {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id = decode_id(row, 0)?;
            let attempt: i32 = row.try_get(1).map_err(dec)?;
            let max_attempts: i32 = row.try_get(2).map_err(dec)?;
            let started_at: Option<DateTime<Utc>> = row.try_get(3).map_err(dec)?;
            let status = if allow_reentry && attempt < max_attempts {
                Status::Failed
            } else {
                Status::Dead
            };
            updates.push(json!([hex(id), status.as_str(), millis(started_at)]));
            swept.push(Swept { id, status });
        }
        for batch in json_batches(updates) {
            sqlx::query(sql::EXECUTION_SWEEP_STALE)
                .bind(batch)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?;
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(swept)
    }

    /// One try of [`Store::execution_supersede`], on a connection of its own.
    async fn supersede_once(&self, job: &str) -> Result<Vec<Uuid>> {
        let mut c = Checkout::acquire(&self.pool, "execution_supersede").await?;
        let result = self.supersede_on(&mut c, job).await;
        c.release(result)
    }

    /// The body of [`MySqlStore::supersede_once`].
    async fn supersede_on(&self, conn: &mut MySqlConnection, job: &str) -> Result<Vec<Uuid>> {
        const OP: &str = "execution_supersede";
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let candidates = sqlx::query(sql::SUPERSEDE_CANDIDATES)
            .bind(job)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(OP, e))?;
        let mut ids: Vec<Uuid> = candidates
            .iter()
            .map(|r| decode_id(r, 0))
            .collect::<Result<_>>()?;
        if ids.is_empty() {
            tx.commit().await.map_err(|e| db_error(OP, e))?;
            return Ok(ids);
        }
        ids.sort();
        let mut locked = Vec::new();
        for batch in json_batches(ids.iter().map(|id| json!(hex(*id)))) {
            for row in sqlx::query(sql::SUPERSEDE_LOCK)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
            {
                locked.push(decode_id(&row, 0)?);
            }
        }
        if !locked.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            for batch in json_batches(locked.iter().map(|id| json!(hex(*id)))) {
                sqlx::query(sql::EXECUTION_SUPERSEDE)
                    .bind(batch)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?;
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(locked)
    }

    /// One try of the full claim path, in one transaction on a connection of its own.
    async fn claim_once(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        let mut c = Checkout::acquire(&self.pool, "execution_claim").await?;
        let result = self.claim_on(&mut c, request).await;
        c.release(result)
    }

    /// The body of [`MySqlStore::claim_once`]: the claim in one transaction under the job's
    /// claim lock. Plans that all had no row (the common case) are one plain insert; otherwise
    /// the full claim decides (the failed insert changed nothing).
    async fn claim_on(
        &self,
        conn: &mut MySqlConnection,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<Claimed>> {
        let mut tx = self
            .begin_locked(conn, request.job, "execution_claim")
            .await?;
        let claimed = match self.insert_new_in(&mut tx, request).await? {
            Some(claimed) => claimed,
            None => self.claim_in(&mut tx, request).await?,
        };
        tx.commit()
            .await
            .map_err(|e| db_error("execution_claim", e))?;
        Ok(claimed)
    }

    /// Begins a transaction holding the job's claim lock (its row in `cronlease_claim_locks`,
    /// made sure of once per job and store). Every statement that inserts execution rows of a
    /// job (claims, guarded or not, and manual starts) runs under it, so an insert never meets
    /// a rival's row, committed or not, that appeared after it looked: no insert waits on a
    /// plan key, and the only row locks anyone waits for are taken by id, in id order.
    async fn begin_locked<'c>(
        &self,
        conn: &'c mut MySqlConnection,
        job: &str,
        operation: &'static str,
    ) -> Result<sqlx::Transaction<'c, sqlx::MySql>> {
        let fail = |e| db_error(operation, e);
        let known = self.lock_rows.lock().expect("lock rows").contains(job);
        if !known {
            sqlx::query(sql::CLAIM_GUARD_LOCK_ROW)
                .bind(job)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            self.lock_rows
                .lock()
                .expect("lock rows")
                .insert(job.to_owned());
        }
        let mut tx = sqlx::Connection::begin(conn).await.map_err(fail)?;
        sqlx::query(sql::CLAIM_GUARD_LOCK)
            .bind(job)
            .fetch_all(&mut *tx)
            .await
            .map_err(fail)?;
        Ok(tx)
    }

    /// One try of [`Store::execution_claim_guarded`], in one transaction: the job's lock row,
    /// the rows, the cancellations, the claim, the skips.
    async fn claim_guarded_once(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        let mut c = Checkout::acquire(&self.pool, "execution_claim").await?;
        let result = self.claim_guarded_on(&mut c, request, guard).await;
        c.release(result)
    }

    /// The body of [`MySqlStore::claim_guarded_once`], on a checked-out connection.
    async fn claim_guarded_on(
        &self,
        conn: &mut MySqlConnection,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        const OP: &str = "execution_claim";
        let fail = |e| db_error(OP, e);
        let mut tx = self.begin_locked(conn, request.job, OP).await?;
        let mut raw = Vec::new();
        for batch in json_batches(
            request
                .plans
                .iter()
                .map(|p| json!([p.scope.kind, p.scope.id, datetime(p.plan_time)])),
        ) {
            for read in [sql::CLAIM_GUARD_RUNNING, sql::CLAIM_GUARD_RESOLVE] {
                raw.extend(
                    sqlx::query(read)
                        .bind(&batch)
                        .bind(request.job)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(fail)?,
                );
            }
        }
        // Only the limit needs the job's other running attempts, and only their number.
        let job_running = match guard.max_running {
            Some(_) => Some(
                sqlx::query_scalar::<_, i64>(sql::CLAIM_GUARD_RUNNING_COUNT)
                    .bind(request.job)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(fail)? as usize,
            ),
            None => None,
        };
        // Staleness by the database clock, read only when some lease could be stale.
        let now = if raw
            .iter()
            .any(|r| r.try_get::<String, _>(5).is_ok_and(|s| s == "RUNNING"))
        {
            Some(self.now(&mut tx, OP).await?)
        } else {
            None
        };
        let mut seen = HashSet::new();
        let rows: Vec<GuardRow> = super::skip_corrupt(raw.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: Uuid = row.try_get(0).map_err(dec)?;
            let status: String = row.try_get(5).map_err(dec)?;
            Ok(GuardRow {
                id,
                token: row.try_get(1).map_err(dec)?,
                scope: Scope::new(
                    row::text(row, 2).map_err(dec)?,
                    row::text(row, 3).map_err(dec)?,
                ),
                plan_time: row.try_get(4).map_err(dec)?,
                status: parsed(&id.to_string(), &status)?,
                started_at: row.try_get(6).map_err(dec)?,
                stale: row
                    .try_get::<Option<DateTime<Utc>>, _>(7)
                    .map_err(dec)?
                    .zip(now)
                    .is_some_and(|(stale_after, now)| stale_after < now),
            })
        }))
        .into_iter()
        .filter(|r| seen.insert(r.id))
        .collect();
        let plan = super::guard::plan(request, guard, &rows, job_running);
        if !plan.cancel.is_empty() {
            // Every row this transaction writes, locked first and by id (the one lock order):
            // the claim's own locking then finds them held.
            let mut ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            ids.sort();
            for batch in json_batches(ids.iter().map(|id| json!(hex(*id)))) {
                sqlx::query(sql::CLAIM_LOCK)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            let now = self.now(&mut tx, OP).await?;
            let mut cancel = plan.cancel.clone();
            cancel.sort();
            for batch in json_batches(
                cancel
                    .iter()
                    .map(|(id, token)| json!([hex(*id), hex(*token)])),
            ) {
                sqlx::query(sql::CLAIM_GUARD_CANCEL)
                    .bind(batch)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
        }
        // The plans to claim that had no row when read under the lock (all of them, usually):
        // a plain insert, as in the unguarded claim's common case.
        let known: HashSet<_> = rows.iter().map(|r| key(&r.scope, r.plan_time)).collect();
        let all_new = plan
            .claim
            .plans
            .iter()
            .all(|p| !known.contains(&key(&p.scope, p.plan_time)));
        let fresh = if all_new && !plan.claim.plans.is_empty() {
            self.insert_new_in(&mut tx, &plan.claim).await?
        } else {
            None
        };
        let claimed = if plan.claim.plans.is_empty() {
            Vec::new()
        } else if let Some(claimed) = fresh {
            claimed
        } else {
            self.claim_in(&mut tx, &plan.claim).await?
        };
        if !plan.skip.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            for batch in json_batches(plan.skip.iter().map(|p| {
                json!([
                    hex(p.id),
                    p.scope.kind,
                    p.scope.id,
                    datetime(p.plan_time),
                    hex(p.token)
                ])
            })) {
                sqlx::query(sql::CLAIM_GUARD_SKIP)
                    .bind(request.job)
                    .bind(i64::from(request.max_attempts))
                    .bind(request.runner_id)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .bind(batch)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
        }
        tx.commit().await.map_err(fail)?;
        Ok(plan.report(request, claimed))
    }

    /// Inserts every plan of `request` on `tx` as Won, when none has a row (one statement per
    /// JSON batch). `None` when one had a row after all (an unguarded claimer inserted it): the
    /// failed statement changed nothing, and the full claim decides.
    async fn insert_new_in(
        &self,
        tx: &mut MySqlConnection,
        request: &ClaimRequest<'_>,
    ) -> Result<Option<Vec<Claimed>>> {
        const OP: &str = "execution_claim";
        let plans = plans_in_key_order(request);
        let now = self.now(&mut *tx, OP).await?;
        let stale_after = now + crate::schedule::delta(request.stale_timeout);
        for batch in json_batches(plans.iter().map(|p| {
            json!([
                hex(p.id),
                p.scope.kind,
                p.scope.id,
                datetime(p.plan_time),
                hex(p.token)
            ])
        })) {
            let inserted = sqlx::query(sql::CLAIM_INSERT_NEW)
                .bind(request.job)
                .bind(i64::from(request.max_attempts))
                .bind(request.runner_id)
                .bind(now)
                .bind(stale_after)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(db))
                    if db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|my| my.number() == 1062) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(db_error(OP, e)),
            }
        }
        Ok(Some(
            plans
                .iter()
                .map(|p| Claimed {
                    lease: Lease {
                        id: p.id,
                        token: p.token,
                    },
                    scope: p.scope.clone(),
                    plan_time: p.plan_time,
                    attempt: 1,
                    max_attempts: request.max_attempts,
                    outcome: ClaimOutcome::Won,
                    started_at: now,
                })
                .collect(),
        ))
    }

    /// The claim's steps on `tx`, a transaction the caller commits.
    async fn claim_in(
        &self,
        tx: &mut MySqlConnection,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<Claimed>> {
        const OP: &str = "execution_claim";
        let plans = plans_in_key_order(request);

        // 1. The rows that exist, without locking.
        let existing = existing_rows(
            &mut *tx,
            OP,
            request.job,
            plans.iter().map(|p| (&p.scope, p.plan_time)),
        )
        .await?;
        // 2. Lock them, ascending id (the one lock order), and read their state.
        let mut locked = Vec::new();
        if !existing.is_empty() {
            let mut ids: Vec<Uuid> = existing.values().copied().collect();
            ids.sort();
            for batch in json_batches(ids.iter().map(|id| json!(hex(*id)))) {
                for row in sqlx::query(sql::CLAIM_LOCK)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?
                {
                    let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                    locked.push(Existing {
                        id: row.try_get(0).map_err(dec)?,
                        status: row.try_get(1).map_err(dec)?,
                        attempt: row.try_get(2).map_err(dec)?,
                        max_attempts: row.try_get(3).map_err(dec)?,
                        next_retry_at: row.try_get(4).map_err(dec)?,
                        stale_after: row.try_get(5).map_err(dec)?,
                        lease_token: row.try_get(6).map_err(dec)?,
                        claim_outcome: row.try_get(7).map_err(dec)?,
                        started_at: row.try_get(8).map_err(dec)?,
                        replay_pending: row.try_get(9).map_err(dec)?,
                    });
                }
            }
        }
        // 3. The clock, once the locks are held. A claim run past its steal deadline (held up
        // behind an outage) takes over no stale lease: its owner could not renew meanwhile.
        let now = self.now(&mut *tx, OP).await?;
        let may_steal =
            request.allow_stale_reentry && request.steal_not_after.is_none_or(|t| now <= t);
        let stale_after = now + crate::schedule::delta(request.stale_timeout);
        let token_of: HashMap<Uuid, Uuid> = plans
            .iter()
            .filter_map(|p| {
                existing
                    .get(&key(&p.scope, p.plan_time))
                    .map(|id| (*id, p.token))
            })
            .collect();
        // 4. Take over the rows that are due.
        let mut held: Vec<(Uuid, Uuid)> = Vec::new();
        let mut takeovers = Vec::new();
        for row in &locked {
            let Some(&token) = token_of.get(&row.id) else {
                continue;
            };
            let Some(decision) = decide(row, token, may_steal, now) else {
                continue;
            };
            let (attempt, outcome, failed) = match decision {
                TakeOver::Again => (row.attempt, row.claim_outcome.clone(), None),
                TakeOver::Attempt(outcome) => (
                    row.attempt + 1,
                    outcome.as_str().to_owned(),
                    (outcome == ClaimOutcome::Stole).then_some(row.attempt),
                ),
            };
            let message = failed.map(|_| {
                format!(
                    "lease expired without heartbeat; taken over by runner {}",
                    request.runner_id
                )
            });
            takeovers.push(json!([
                hex(row.id),
                hex(token),
                attempt,
                outcome,
                failed,
                message,
                if failed.is_some() {
                    millis(row.started_at)
                } else {
                    Value::Null
                },
            ]));
            held.push((row.id, token));
        }
        for batch in json_batches(takeovers) {
            sqlx::query(sql::CLAIM_TAKE_OVER)
                .bind(batch)
                .bind(request.runner_id)
                .bind(now.timestamp_millis())
                .bind(now)
                .bind(stale_after)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?;
        }
        // 5. Insert the plans that had no row.
        let fresh: Vec<_> = plans
            .iter()
            .filter(|p| !existing.contains_key(&key(&p.scope, p.plan_time)))
            .collect();
        for batch in json_batches(fresh.iter().map(|p| {
            json!([
                hex(p.id),
                p.scope.kind,
                p.scope.id,
                datetime(p.plan_time),
                hex(p.token)
            ])
        })) {
            sqlx::query(sql::CLAIM_INSERT)
                .bind(request.job)
                .bind(i64::from(request.max_attempts))
                .bind(request.runner_id)
                .bind(now)
                .bind(stale_after)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?;
        }
        held.extend(fresh.iter().map(|p| (p.id, p.token)));
        // 6. What this request now holds (a plan a rival inserted since step 1 is not in it).
        let mut rows = Vec::new();
        for batch in json_batches(
            held.iter()
                .map(|(id, token)| json!([hex(*id), hex(*token)])),
        ) {
            rows.extend(
                sqlx::query(sql::CLAIM_HELD)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?,
            );
        }
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: Uuid = row.try_get("id").map_err(dec)?;
            let id_text = id.to_string();
            let outcome: String = row.try_get("claim_outcome").map_err(dec)?;
            Ok(Claimed {
                lease: Lease {
                    id,
                    token: row.try_get("lease_token").map_err(dec)?,
                },
                scope: Scope::new(
                    row::text(row, "scope_kind").map_err(dec)?,
                    row::text(row, "scope_id").map_err(dec)?,
                ),
                plan_time: row.try_get("plan_time").map_err(dec)?,
                attempt: count(
                    &id_text,
                    "attempt",
                    row.try_get::<i32, _>("attempt").map_err(dec)?.into(),
                )?,
                max_attempts: count(
                    &id_text,
                    "max_attempts",
                    row.try_get::<i32, _>("max_attempts").map_err(dec)?.into(),
                )?,
                outcome: parsed(&id_text, &outcome)?,
                started_at: row.try_get("started_at").map_err(dec)?,
            })
        })))
    }
}

/// A plan's key as the unique index orders it (names and scopes byte for byte, as
/// `VARBINARY` compares them; times at the column's microsecond resolution).
fn key(scope: &Scope, t: DateTime<Utc>) -> (String, String, i64) {
    (scope.kind.clone(), scope.id.clone(), t.timestamp_micros())
}

/// The rows `plans` of `job` have, by plan [`key`], with their ids: read without locking, one
/// `CLAIM_RESOLVE` per batch.
async fn existing_rows<'p>(
    conn: &mut sqlx::MySqlConnection,
    op: &'static str,
    job: &str,
    plans: impl IntoIterator<Item = (&'p Scope, DateTime<Utc>)>,
) -> Result<HashMap<(String, String, i64), Uuid>> {
    let mut existing = HashMap::new();
    let offered = plans
        .into_iter()
        .map(|(scope, t)| json!([scope.kind, scope.id, datetime(t)]));
    for batch in json_batches(offered) {
        for row in sqlx::query(sql::CLAIM_RESOLVE)
            .bind(batch)
            .bind(job)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(op, e))?
        {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: Uuid = row.try_get(0).map_err(dec)?;
            let scope = Scope::new(
                row::text(&row, 1).map_err(dec)?,
                row::text(&row, 2).map_err(dec)?,
            );
            let plan_time: DateTime<Utc> = row.try_get(3).map_err(dec)?;
            existing.insert(key(&scope, plan_time), id);
        }
    }
    Ok(existing)
}

/// The request's plans in plan-key order, the order of the unique index; a plan repeated in the
/// batch is claimed once (its first occurrence).
fn plans_in_key_order<'a>(request: &'a ClaimRequest<'_>) -> Vec<&'a super::PlanClaim> {
    let mut seen = HashSet::new();
    let mut plans: Vec<_> = request
        .plans
        .iter()
        .filter(|p| seen.insert(key(&p.scope, p.plan_time)))
        .collect();
    plans.sort_by_key(|p| key(&p.scope, p.plan_time));
    plans
}

/// The session time zone the store needs: `DATETIME` values travel without a zone.
fn pinned(options: MySqlConnectOptions) -> MySqlConnectOptions {
    options.timezone(Some("+00:00".to_owned()))
}

/// How long [`explain_connect_failure`] waits for its one connection attempt.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Options from a URL that must be a MySQL one; errors name the scheme, never the URL.
fn parse_url(url: &str, what: &str) -> Result<MySqlConnectOptions> {
    error::check_url(url, what)?;
    // sqlx reads `mysql://` only; `mariadb://` is the same protocol.
    let url = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => {
            std::borrow::Cow::Owned(format!("mysql://{rest}"))
        }
        _ => std::borrow::Cow::Borrowed(url),
    };
    MySqlConnectOptions::from_str(&url).map_err(|e| {
        Error::InvalidConfig(format!(
            "{what} cannot read the MySQL URL ({e}): write it as `mysql://user:password@host:3306/database`"
        ))
    })
}

/// An [`Error::Connect`] for a failed connection to `options`. A pool that timed out keeps
/// retrying refused connections silently, so one direct attempt (at most [`PROBE_TIMEOUT`])
/// finds the cause to report, e.g. "connection refused".
async fn explain_connect_failure(options: &MySqlConnectOptions, error: sqlx::Error) -> Error {
    let cause = if matches!(error, sqlx::Error::PoolTimedOut) {
        match tokio::time::timeout(PROBE_TIMEOUT, sqlx::ConnectOptions::connect(options)).await {
            Ok(Err(cause)) if error::is_connect_failure(&cause) => cause,
            Ok(Ok(connection)) => {
                let _ = sqlx::Connection::close(connection).await;
                error
            }
            _ => error,
        }
    } else {
        error
    };
    error::connect_error(error::target(options), cause)
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(sql.clone())
}

/// An id or token as the statements read it: 32 hex digits.
fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// A time as `JSON_TABLE` reads it into `DATETIME(6)`.
fn datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A time as the failure history stores it: Unix milliseconds.
fn millis(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.timestamp_millis()))
}

/// Splits `items` into JSON arrays of at most [`MAX_BATCH_BYTES`] each (an item larger than
/// that travels alone).
fn json_batches(items: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut batches = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let text = item.to_string();
        if !current.is_empty() && bytes + text.len() + 1 > MAX_BATCH_BYTES {
            batches.push(format!("[{}]", current.join(",")));
            current.clear();
            bytes = 0;
        }
        bytes += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        batches.push(format!("[{}]", current.join(",")));
    }
    batches
}

fn decode_id(row: &MySqlRow, index: usize) -> Result<Uuid> {
    row.try_get(index).map_err(|e| corrupt("?", e.to_string()))
}

/// Locks the leases `(id, token)` in id order with `lock_sql` and returns the locked rows.
async fn lock_leases(
    conn: &mut MySqlConnection,
    lock_sql: &'static str,
    leases: impl Iterator<Item = Lease>,
    operation: &'static str,
) -> Result<Vec<MySqlRow>> {
    let mut sorted: Vec<Lease> = leases.collect();
    sorted.sort_by_key(|l| l.id);
    let mut rows = Vec::new();
    for batch in json_batches(sorted.iter().map(|l| json!([hex(l.id), hex(l.token)]))) {
        rows.extend(
            sqlx::query(lock_sql)
                .bind(batch)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db_error(operation, e))?,
        );
    }
    Ok(rows)
}

/// A locked row a claim met, with what the decision needs.
#[derive(Debug, Clone)]
struct Existing {
    id: Uuid,
    status: String,
    attempt: i32,
    max_attempts: i32,
    next_retry_at: Option<DateTime<Utc>>,
    stale_after: Option<DateTime<Utc>>,
    lease_token: Uuid,
    claim_outcome: String,
    started_at: Option<DateTime<Utc>>,
    replay_pending: bool,
}

/// What a claim does with an existing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakeOver {
    /// RUNNING under the offered token: an earlier try of this request claimed it; renew it.
    Again,
    /// Take it over with a new attempt, reported as this outcome.
    Attempt(ClaimOutcome),
}

/// SPEC §5.1 step 2 for one locked row: taken over when attempts remain and it is FAILED with
/// its retry due, or RUNNING with a stale lease and re-entry allowed; renewed when it is
/// RUNNING under the offered token; otherwise Conflicted (`None`).
fn decide(
    row: &Existing,
    token: Uuid,
    allow_stale_reentry: bool,
    now: DateTime<Utc>,
) -> Option<TakeOver> {
    if row.status == "RUNNING" && row.lease_token == token {
        return Some(TakeOver::Again);
    }
    if row.attempt >= row.max_attempts {
        return None;
    }
    if row.status == "FAILED" && row.next_retry_at.is_some_and(|at| at <= now) {
        return Some(TakeOver::Attempt(if row.replay_pending {
            ClaimOutcome::Replayed
        } else {
            ClaimOutcome::Retried
        }));
    }
    if row.status == "RUNNING" && allow_stale_reentry && row.stale_after.is_some_and(|at| at < now)
    {
        return Some(TakeOver::Attempt(ClaimOutcome::Stole));
    }
    None
}

impl MySqlStore {
    /// The body of [`Store::execution_heartbeat`].
    async fn heartbeat_on(
        &self,
        conn: &mut MySqlConnection,
        renewals: &[Renewal],
    ) -> Result<Vec<Uuid>> {
        const OP: &str = "execution_heartbeat";
        if renewals.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let rows = lock_leases(
            &mut tx,
            sql::LEASES_LOCK_RUNNING,
            renewals.iter().map(|r| r.lease),
            OP,
        )
        .await?;
        let held: HashSet<Uuid> = rows
            .iter()
            .map(|r| decode_id(r, 0))
            .collect::<Result<_>>()?;
        if held.is_empty() {
            tx.commit().await.map_err(|e| db_error(OP, e))?;
            return Ok(Vec::new());
        }
        let now = self.now(&mut tx, OP).await?;
        let mut renewed: Vec<&Renewal> = renewals
            .iter()
            .filter(|r| held.contains(&r.lease.id))
            .collect();
        renewed.sort_by_key(|r| r.lease.id);
        for batch in json_batches(renewed.iter().map(|r| {
            json!([
                hex(r.lease.id),
                hex(r.lease.token),
                duration_ms(r.stale_timeout)
            ])
        })) {
            sqlx::query(sql::EXECUTION_HEARTBEAT)
                .bind(batch)
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?;
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        let mut ids: Vec<Uuid> = held.into_iter().collect();
        ids.sort();
        Ok(ids)
    }

    /// The body of [`Store::execution_finish_success`].
    async fn finish_success_on(
        &self,
        conn: &mut MySqlConnection,
        writes: &[SuccessWrite],
    ) -> Result<Vec<Uuid>> {
        const OP: &str = "execution_finish_success";
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // The common case in one statement: every row still RUNNING under its token.
        let mut sorted: Vec<&SuccessWrite> = writes.iter().collect();
        sorted.sort_by_key(|w| w.lease.id);
        sorted.dedup_by_key(|w| w.lease.id);
        let mut batches = json_batches(sorted.iter().map(|w| {
            json!([
                hex(w.lease.id),
                hex(w.lease.token),
                w.duration_ms,
                w.rows_affected,
                w.result
            ])
        }));
        if batches.len() == 1 {
            let matched = sqlx::query(q(&self.sql.finish_success_at_once))
                .bind(batches.remove(0))
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error(OP, e))?
                .rows_affected();
            if matched == sorted.len() as u64 {
                return Ok(sorted.iter().map(|w| w.lease.id).collect());
            }
            // Some rows were not RUNNING under their token (fenced out, or written by an
            // earlier try): the full path tells which were written.
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let rows = lock_leases(
            &mut tx,
            sql::LEASES_LOCK_ANY,
            writes.iter().map(|w| w.lease),
            OP,
        )
        .await?;
        let mut running = HashSet::new();
        let mut written = Vec::new();
        for row in &rows {
            let id = decode_id(row, 0)?;
            let status: String = row.try_get(1).map_err(|e| corrupt("?", e.to_string()))?;
            match status.as_str() {
                "RUNNING" => {
                    running.insert(id);
                    written.push(id);
                }
                // An earlier try of this write committed and its reply was lost.
                "SUCCESS" => written.push(id),
                _ => {}
            }
        }
        if !running.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            let mut updates: Vec<&SuccessWrite> = writes
                .iter()
                .filter(|w| running.contains(&w.lease.id))
                .collect();
            updates.sort_by_key(|w| w.lease.id);
            for batch in json_batches(updates.iter().map(|w| {
                json!([
                    hex(w.lease.id),
                    hex(w.lease.token),
                    w.duration_ms,
                    w.rows_affected,
                    w.result
                ])
            })) {
                sqlx::query(sql::EXECUTION_FINISH_SUCCESS)
                    .bind(batch)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?;
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(written)
    }

    /// The body of [`Store::execution_finish_failure`].
    async fn finish_failure_on(
        &self,
        conn: &mut MySqlConnection,
        writes: &[FailureWrite],
    ) -> Result<Vec<Uuid>> {
        const OP: &str = "execution_finish_failure";
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let rows = lock_leases(
            &mut tx,
            sql::LEASES_LOCK_ANY,
            writes.iter().map(|w| w.lease),
            OP,
        )
        .await?;
        let by_id: HashMap<Uuid, &FailureWrite> = writes.iter().map(|w| (w.lease.id, w)).collect();
        let mut running: HashMap<Uuid, Option<DateTime<Utc>>> = HashMap::new();
        let mut written = Vec::new();
        for row in &rows {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id = decode_id(row, 0)?;
            let status: String = row.try_get(1).map_err(dec)?;
            let code: Option<String> = row.try_get(2).map_err(dec)?;
            let Some(write) = by_id.get(&id) else {
                continue;
            };
            if status == "RUNNING" {
                running.insert(id, row.try_get(3).map_err(dec)?);
                written.push(id);
            } else if status == write.status.as_str()
                && code.as_deref() == Some(write.code.as_str())
            {
                // An earlier try of this write committed and its reply was lost.
                written.push(id);
            }
        }
        if !running.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            let mut updates: Vec<&FailureWrite> = writes
                .iter()
                .filter(|w| running.contains_key(&w.lease.id))
                .collect();
            updates.sort_by_key(|w| w.lease.id);
            for batch in json_batches(updates.iter().map(|w| {
                json!([
                    hex(w.lease.id),
                    hex(w.lease.token),
                    w.status.as_str(),
                    w.code,
                    w.message,
                    w.retry_in
                        .map(|d| datetime(now + crate::schedule::delta(d))),
                    i32::from(w.extend_budget),
                    w.duration_ms,
                    millis(running.get(&w.lease.id).copied().flatten()),
                ])
            })) {
                sqlx::query(sql::EXECUTION_FINISH_FAILURE)
                    .bind(batch)
                    .bind(now)
                    .bind(now)
                    .bind(now.timestamp_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?;
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(written)
    }

    /// The body of [`Store::execution_replay`].
    async fn replay_on(
        &self,
        conn: &mut MySqlConnection,
        ids: &[Uuid],
        extra_attempts: u32,
    ) -> Result<Vec<Execution>> {
        const OP: &str = "execution_replay";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sorted = ids.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let mut locked = Vec::new();
        for batch in json_batches(sorted.iter().map(|id| json!(hex(*id)))) {
            for row in sqlx::query(sql::REPLAY_LOCK)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
            {
                locked.push(decode_id(&row, 0)?);
            }
        }
        let mut rows = Vec::new();
        if !locked.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            for batch in json_batches(locked.iter().map(|id| json!(hex(*id)))) {
                sqlx::query(sql::EXECUTION_REPLAY)
                    .bind(batch.clone())
                    .bind(now)
                    .bind(i64::from(extra_attempts))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?;
                rows.extend(
                    sqlx::query(sql::EXECUTIONS_BY_ID)
                        .bind(batch)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| db_error(OP, e))?,
                );
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    /// The body of [`Store::execution_prune`].
    async fn prune_on(
        &self,
        conn: &mut MySqlConnection,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        const OP: &str = "execution_prune";
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let now = self.now(&mut tx, OP).await?;
        let cutoff = now - crate::schedule::delta(older_than);
        let candidates = sqlx::query(sql::PRUNE_CANDIDATES)
            .bind(cutoff)
            .bind(set == PruneSet::Dead)
            .bind(jobs.only())
            .bind(jobs.only())
            .bind(jobs.except_json())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(OP, e))?;
        let mut ids: Vec<Uuid> = candidates
            .iter()
            .map(|r| decode_id(r, 0))
            .collect::<Result<_>>()?;
        ids.sort();
        let mut deleted = 0;
        for batch in json_batches(ids.iter().map(|id| json!(hex(*id)))) {
            let locked: Vec<Uuid> = sqlx::query(sql::PRUNE_LOCK)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
                .iter()
                .map(|r| decode_id(r, 0))
                .collect::<Result<_>>()?;
            if locked.is_empty() {
                continue;
            }
            let locked =
                serde_json::to_string(&locked.iter().map(|id| hex(*id)).collect::<Vec<_>>())
                    .unwrap_or_default();
            deleted += sqlx::query(sql::EXECUTION_PRUNE)
                .bind(locked)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
                .rows_affected();
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(deleted)
    }
}

#[async_trait]
impl Store for MySqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    fn deadlines(&self) -> StoreDeadlines {
        self.deadlines
    }

    async fn migrate(&self) -> Result<()> {
        match migrate::run(&self.pool).await {
            // The first statement of a lazy pool connects: say where it could not.
            Err(Error::Database { source, .. }) if error::is_connect_failure(&source) => {
                Err(explain_connect_failure(&self.pool.connect_options(), source).await)
            }
            other => other,
        }
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        migrate::status(&self.pool).await
    }

    async fn db_now(&self) -> Result<DateTime<Utc>> {
        let mut c = Checkout::acquire(&self.pool, "db_now").await?;
        let result = sqlx::query_scalar(q(&self.sql.db_now))
            .fetch_one(&mut *c)
            .await;
        c.done(result)
    }

    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> Result<usize> {
        let mut c = Checkout::acquire(&self.pool, "execution_latest_plans").await?;
        let rows = sqlx::query(sql::EXECUTION_LATEST_PLANS)
            .bind(job)
            .fetch(&mut *c);
        let decode = |row: &sqlx::mysql::MySqlRow| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            Ok((
                Scope::new(
                    row::text(row, 0).map_err(dec)?,
                    row::text(row, 1).map_err(dec)?,
                ),
                row.try_get(2).map_err(dec)?,
            ))
        };
        let result = decode_into(rows, decode, |(scope, plan_time)| each(&scope, plan_time)).await;
        c.done(result)
    }

    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> Result<Vec<bool>> {
        const OP: &str = "execution_plans_exist";
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, OP).await?;
        let existing = existing_rows(&mut c, OP, job, plans.iter().map(|(s, t)| (s, *t))).await;
        let existing = c.release(existing)?;
        Ok(plans
            .iter()
            .map(|(scope, t)| existing.contains_key(&key(scope, *t)))
            .collect())
    }

    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>> {
        let mut c = Checkout::acquire(&self.pool, "execution_retry_candidates").await?;
        let result = sqlx::query(q(&self.sql.retry_candidates))
            .bind(job)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            Ok(RetryCandidate {
                scope: Scope::new(
                    row::text(row, 0).map_err(dec)?,
                    row::text(row, 1).map_err(dec)?,
                ),
                plan_time: row.try_get(2).map_err(dec)?,
                next_retry_at: row.try_get(3).map_err(dec)?,
                due: row.try_get::<i64, _>(4).map_err(dec)? != 0,
                replayed: row.try_get(5).map_err(dec)?,
            })
        })))
    }

    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        if request.plans.is_empty() {
            return Ok(Vec::new());
        }
        // Claims of one job queue on its claim lock, so they no longer race to insert the same
        // plan; should InnoDB still pick one as a deadlock victim, the claim is safe to run
        // again with the same ids and tokens, so it is, at once, a few times.
        rerun_deadlocked(|| self.claim_once(request)).await
    }

    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        if request.plans.is_empty() {
            return Ok(GuardedClaim::default());
        }
        rerun_deadlocked(|| self.claim_guarded_once(request, guard)).await
    }

    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>> {
        if renewals.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_heartbeat").await?;
        let result = self.heartbeat_on(&mut c, renewals).await;
        c.release(result)
    }

    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_finish_success").await?;
        let result = self.finish_success_on(&mut c, writes).await;
        c.release(result)
    }

    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_finish_failure").await?;
        let result = self.finish_failure_on(&mut c, writes).await;
        c.release(result)
    }

    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        // Two jobs' sweeps move rows of the same status index at once: InnoDB may pick one as
        // a deadlock victim. A sweep re-reads the stale rows, so it is simply run again.
        let _one_at_a_time = self.sweeping.lock().await;
        rerun_deadlocked(|| self.sweep_once(job, allow_reentry, not_after)).await
    }

    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>> {
        // Like the sweep: safe to run again when picked as a deadlock victim.
        rerun_deadlocked(|| self.supersede_once(job)).await
    }

    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>> {
        let mut c = Checkout::acquire(&self.pool, "execution_get").await?;
        let result = sqlx::query(sql::EXECUTION_GET)
            .bind(id)
            .fetch_optional(&mut *c)
            .await;
        let row = c.done(result)?;
        row.as_ref().map(row::execution).transpose()
    }

    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let scope_kind = filter.scope.as_ref().map(|s| s.kind.as_str());
        let scope_id = filter.scope.as_ref().map(|s| s.id.as_str());
        let status = filter.status.map(|s| s.as_str());
        let after_time = filter.after.map(|c| c.plan_time);
        let mut c = Checkout::acquire(&self.pool, "execution_list").await?;
        let result = sqlx::query(sql::EXECUTION_LIST)
            .bind(filter.job.as_deref())
            .bind(filter.job.as_deref())
            .bind(scope_kind)
            .bind(scope_kind)
            .bind(scope_id)
            .bind(status)
            .bind(status)
            .bind(filter.plan_from)
            .bind(filter.plan_from)
            .bind(filter.plan_before)
            .bind(filter.plan_before)
            .bind(after_time)
            .bind(after_time)
            .bind(after_time)
            .bind(filter.after.map(|c| c.id))
            .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Vec<Execution>> {
        let (kind, id) = super::page_start(after);
        let mut c = Checkout::acquire(&self.pool, "execution_latest_per_scope").await?;
        let result = sqlx::query(sql::EXECUTION_LATEST_PER_SCOPE)
            .bind(job)
            .bind(kind)
            .bind(kind)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        let mut c = Checkout::acquire(&self.pool, "execution_count_by_status").await?;
        let result = sqlx::query(sql::EXECUTION_COUNT_BY_STATUS)
            .bind(job)
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        super::counts(rows.iter().map(|row| {
            (
                row.try_get::<String, _>(0).unwrap_or_default(),
                row.try_get::<i64, _>(1).unwrap_or_default(),
            )
        }))
    }

    async fn execution_replay(&self, ids: &[Uuid], extra_attempts: u32) -> Result<Vec<Execution>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_replay").await?;
        let result = self.replay_on(&mut c, ids, extra_attempts).await;
        c.release(result)
    }

    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "execution_prune").await?;
        let result = self.prune_on(&mut c, set, jobs, older_than, limit).await;
        c.release(result)
    }

    async fn execution_prune_default_partition(
        &self,
        _set: PruneSet,
        _jobs: PruneJobs<'_>,
        _older_than: std::time::Duration,
        _limit: usize,
    ) -> Result<u64> {
        Err(crate::store::partitions_unsupported(self.backend()))
    }

    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
    ) -> Result<u64> {
        const OP: &str = "execution_count_prunable";
        let mut c = Checkout::acquire(&self.pool, OP).await?;
        let result = async {
            let now = self.now(&mut c, OP).await?;
            let cutoff = now - crate::schedule::delta(older_than);
            sqlx::query_scalar::<_, i64>(sql::EXECUTION_COUNT_PRUNABLE)
                .bind(cutoff)
                .bind(set == PruneSet::Dead)
                .bind(jobs.only())
                .bind(jobs.only())
                .bind(jobs.except_json())
                .fetch_one(&mut *c)
                .await
                .map_err(|e| db_error(OP, e))
        }
        .await;
        Ok(c.release(result)?.max(0) as u64)
    }

    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>> {
        let mut c = Checkout::acquire(&self.pool, "execution_count_stale").await?;
        let result = sqlx::query(q(&self.sql.count_stale))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                Ok((
                    row::text(row, 0).map_err(dec)?,
                    row.try_get(1).map_err(dec)?,
                ))
            })
            .collect()
    }

    async fn execution_count_failing(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let mut c = Checkout::acquire(&self.pool, "execution_count_failing").await?;
        let result = sqlx::query(sql::EXECUTION_COUNT_FAILING)
            .bind(since)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                Ok((
                    row::text(row, 0).map_err(dec)?,
                    row.try_get(1).map_err(dec)?,
                ))
            })
            .collect()
    }

    async fn tick_clock(&self, job: &str) -> Result<TickClock> {
        let mut c = Checkout::acquire(&self.pool, "tick_clock").await?;
        let result = sqlx::query(q(&self.sql.tick_clock))
            .bind(job)
            .bind(job)
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        let dec = |e: sqlx::Error| corrupt("?", e.to_string());
        let first = rows
            .first()
            .ok_or_else(|| corrupt("?", "the clock query returned no row".into()))?;
        let now: DateTime<Utc> = first.try_get(0).map_err(dec)?;
        let mut paused = Vec::new();
        for row in &rows {
            let kind: Option<Vec<u8>> = row.try_get(1).map_err(dec)?;
            let id: Option<Vec<u8>> = row.try_get(2).map_err(dec)?;
            if let (Some(kind), Some(id)) = (kind, id) {
                let text = |bytes: Vec<u8>| {
                    String::from_utf8(bytes).map_err(|e| corrupt("?", e.to_string()))
                };
                paused.push(super::pause_scope(text(kind)?, text(id)?));
            }
        }
        let flag = |i: usize| first.try_get::<i64, _>(i).map(|v| v != 0).map_err(dec);
        Ok(TickClock {
            now,
            paused,
            triggers_pending: flag(3)?,
            backfills_active: flag(4)?,
        })
    }

    async fn pause_set(&self, pause: &Pause) -> Result<Pause> {
        let (kind, id) = super::pause_key(pause.scope.as_ref());
        let now = self.db_now().await.map_err(|e| match e {
            Error::Database { kind, source, .. } => Error::Database {
                operation: "pause_set",
                kind,
                source,
            },
            other => other,
        })?;
        let mut c = Checkout::acquire(&self.pool, "pause_set").await?;
        let result = sqlx::query(sql::PAUSE_SET)
            .bind(&pause.job)
            .bind(kind)
            .bind(id)
            .bind(&pause.paused_by)
            .bind(&pause.reason)
            .bind(now)
            .execute(&mut *c)
            .await;
        c.done(result)?;
        let mut stored = pause.clone();
        stored.paused_at = now;
        Ok(stored)
    }

    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        let (kind, id) = super::pause_key(scope);
        let now = datetime(self.db_now().await?);
        // The paused interval goes to the ledger in the same transaction as the pause goes.
        let mut c = Checkout::acquire(&self.pool, "pause_clear").await?;
        let result = pause_clear_on(&mut c, &now, job, kind, id).await;
        let done = c.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        let mut c = Checkout::acquire(&self.pool, "pause_list").await?;
        let result = sqlx::query(sql::PAUSE_LIST)
            .bind(job)
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                let mut pause = Pause::new(
                    row::text(row, 0).map_err(dec)?,
                    super::pause_scope(
                        row::text(row, 1).map_err(dec)?,
                        row::text(row, 2).map_err(dec)?,
                    ),
                    row.try_get::<String, _>(3).map_err(dec)?,
                    row.try_get::<String, _>(4).map_err(dec)?,
                );
                pause.paused_at = row.try_get(5).map_err(dec)?;
                Ok(pause)
            })
            .collect()
    }

    async fn trigger_create(&self, trigger: &Trigger) -> Result<Trigger> {
        let mut c = Checkout::acquire(&self.pool, "trigger_create").await?;
        let result = self.trigger_create_on(&mut c, trigger).await;
        c.release(result)
    }

    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>> {
        let mut c = Checkout::acquire(&self.pool, "trigger_list").await?;
        let result = sqlx::query(AssertSqlSafe(sql::trigger_list()))
            .bind(job)
            .bind(job)
            .bind(pending_only)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(row::trigger).collect()
    }

    async fn trigger_start(&self, start: &ManualStart<'_>) -> Result<Vec<Claimed>> {
        let mut c = Checkout::acquire(&self.pool, "trigger_start").await?;
        let result = self.trigger_start_on(&mut c, start).await;
        c.release(result)
    }

    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill> {
        let mut c = Checkout::acquire(&self.pool, "backfill_create").await?;
        let result = self.backfill_create_on(&mut c, backfill).await;
        c.release(result)
    }

    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>> {
        let mut c = Checkout::acquire(&self.pool, "backfill_get").await?;
        let result = sqlx::query(AssertSqlSafe(sql::backfill_get()))
            .bind(hex(id))
            .fetch_optional(&mut *c)
            .await;
        c.done(result)?.as_ref().map(row::backfill).transpose()
    }

    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>> {
        let mut c = Checkout::acquire(&self.pool, "backfill_list").await?;
        let result = sqlx::query(AssertSqlSafe(sql::backfill_list()))
            .bind(job)
            .bind(job)
            .bind(active_only)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(row::backfill).collect()
    }

    async fn backfill_cancel(&self, id: Uuid) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "backfill_cancel").await?;
        let result = sqlx::query(q(&self.sql.backfill_cancel))
            .bind(hex(id))
            .execute(&mut *c)
            .await;
        let done = c.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool> {
        let to = advance.cursor.as_ref();
        let was = advance.expected.as_ref();
        let mut conn = Checkout::acquire(&self.pool, "backfill_advance").await?;
        let result = sqlx::query(q(&self.sql.backfill_advance))
            .bind(to.map(|c| c.plan_time))
            .bind(to.map(|c| c.scope.kind.as_str()))
            .bind(to.map(|c| c.scope.id.as_str()))
            .bind(i64::try_from(advance.handed_out).unwrap_or(i64::MAX))
            .bind(i64::try_from(advance.total).unwrap_or(i64::MAX))
            .bind(advance.finished)
            .bind(hex(advance.id))
            .bind(was.map(|c| c.plan_time))
            .bind(was.map(|c| c.scope.kind.as_str()))
            .bind(was.map(|c| c.scope.id.as_str()))
            .execute(&mut *conn)
            .await;
        let done = conn.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "execution_rerun").await?;
        let result = self
            .execution_rerun_on(&mut c, job, plans, finished_before, extra_attempts)
            .await;
        c.release(result)
    }

    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<serde_json::Value> = spans
            .iter()
            .map(|s| {
                let (kind, id) = super::pause_key(s.scope.as_ref());
                serde_json::json!([
                    s.job,
                    kind,
                    id,
                    s.reason.as_str(),
                    datetime(s.from),
                    datetime(s.to),
                    s.plans.map(|n| n as i64),
                    s.scopes as i64,
                    s.detail
                ])
            })
            .collect();
        // One lock order for every replica: the primary key.
        rows.sort_by(|a, b| {
            let key = |v: &serde_json::Value| {
                (
                    v[0].as_str().unwrap_or_default().to_owned(),
                    v[1].as_str().unwrap_or_default().to_owned(),
                    v[2].as_str().unwrap_or_default().to_owned(),
                    v[3].as_str().unwrap_or_default().to_owned(),
                    v[4].as_str().unwrap_or_default().to_owned(),
                )
            };
            key(a).cmp(&key(b))
        });
        let now = datetime(self.db_now().await?);
        let mut c = Checkout::acquire(&self.pool, "skip_record").await?;
        let result = sqlx::query(sql::SKIP_RECORD)
            .bind(now)
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *c)
            .await;
        c.done(result)?;
        Ok(())
    }

    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<Vec<SkipSpan>> {
        let mut c = Checkout::acquire(&self.pool, "skip_find").await?;
        let result = sqlx::query(sql::SKIP_FIND)
            .bind(job)
            .bind(&scope.kind)
            .bind(&scope.id)
            .bind(datetime(due_at))
            .bind(datetime(plan_time))
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(skip_row).collect()
    }

    async fn skip_prune(&self, older_than: std::time::Duration, limit: usize) -> Result<u64> {
        let cutoff = self.db_now().await? - crate::schedule::delta(older_than);
        let mut c = Checkout::acquire(&self.pool, "skip_prune").await?;
        let result = sqlx::query(sql::SKIP_PRUNE)
            .bind(datetime(cutoff))
            .bind(limit as i64)
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected())
    }

    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        let mut c = Checkout::acquire(&self.pool, "skip_list").await?;
        let result = sqlx::query(sql::SKIP_LIST)
            .bind(job)
            .bind(job)
            .bind(limit as i64)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(skip_row).collect()
    }
    async fn runner_register(
        &self,
        runner: &RunnerRegistration,
        jobs: &[JobDescription],
    ) -> Result<()> {
        let mut c = Checkout::acquire(&self.pool, "runner_register").await?;
        let result = self.runner_register_on(&mut c, runner, jobs).await;
        c.release(result)
    }

    async fn runner_seen(&self, runner_id: &str) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "runner_seen").await?;
        let result = sqlx::query(q(&self.sql.runner_seen))
            .bind(runner_id)
            .execute(&mut *c)
            .await;
        let done = c.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn runner_stop(&self, runner_id: &str) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "runner_stop").await?;
        let result = sqlx::query(q(&self.sql.runner_stop))
            .bind(runner_id)
            .execute(&mut *c)
            .await;
        let done = c.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn runner_list(&self) -> Result<Vec<Runner>> {
        let mut c = Checkout::acquire(&self.pool, "runner_list").await?;
        let result = sqlx::query(q(&self.sql.runner_list))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        rows.iter().map(registry::runner).collect()
    }

    async fn runner_prune(&self, older_than: std::time::Duration) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "runner_prune").await?;
        let result = self.runner_prune_on(&mut c, older_than).await;
        c.release(result)
    }

    async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>> {
        let mut c = Checkout::acquire(&self.pool, "registered_jobs").await?;
        let result = sqlx::query(q(&self.sql.registered_jobs))
            .bind(job)
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(registry::registered_jobs(rows.iter()))
    }

    /// The history is always one table here.
    async fn history_partitions(&self) -> Result<Option<crate::store::HistoryPartitions>> {
        Ok(None)
    }

    async fn history_partitions_create(&self, _days: &[chrono::NaiveDate]) -> Result<u64> {
        Err(crate::store::partitions_unsupported(self.backend()))
    }

    async fn history_partition_drop(
        &self,
        _day: chrono::NaiveDate,
        _keep: &crate::store::PartitionKeep,
    ) -> Result<Option<crate::store::PartitionDropped>> {
        Err(crate::store::partitions_unsupported(self.backend()))
    }
}

impl MySqlStore {
    /// The body of [`Store::runner_register`], on a checked-out connection.
    async fn runner_register_on(
        &self,
        conn: &mut sqlx::MySqlConnection,
        runner: &RunnerRegistration,
        jobs: &[JobDescription],
    ) -> Result<()> {
        const OP: &str = "runner_register";
        let fail = |e| db_error(OP, e);
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        let now = self.now(&mut tx, OP).await?;
        sqlx::query(sql::RUNNER_REGISTER)
            .bind(&runner.id)
            .bind(&runner.host)
            .bind(i64::from(runner.pid))
            .bind(&runner.version)
            .bind(duration_ms(runner.refresh_interval))
            .bind(now)
            .bind(now)
            .bind(runner.starting)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        sqlx::query(sql::REGISTERED_JOBS_CLEAR)
            .bind(&runner.id)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        for job in jobs {
            sqlx::query(sql::REGISTERED_JOB_INSERT)
                .bind(&runner.id)
                .bind(&job.name)
                .bind(&job.spec_hash)
                .bind(job.schedule.as_deref())
                .bind(&job.time_zone)
                .bind(duration_ms(job.stagger))
                .bind(duration_ms(job.schedule_delay))
                .bind(&job.catch_up)
                .bind(i64::from(job.max_attempts))
                .bind(&job.backoff)
                .bind(duration_ms(job.run_timeout))
                .bind(duration_ms(job.stale_timeout))
                .bind(duration_ms(job.heartbeat_interval))
                .bind(&job.spec)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }

    /// The body of [`Store::runner_prune`], on a checked-out connection.
    async fn runner_prune_on(
        &self,
        conn: &mut sqlx::MySqlConnection,
        older_than: std::time::Duration,
    ) -> Result<u64> {
        let fail = |e| db_error("runner_prune", e);
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        let pruned = sqlx::query(q(&self.sql.runner_prune))
            .bind(duration_ms(older_than).saturating_mul(1000))
            .execute(&mut *tx)
            .await
            .map_err(fail)?
            .rows_affected();
        if pruned > 0 {
            sqlx::query(sql::REGISTERED_JOBS_PRUNE)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(pruned)
    }
}

impl MySqlStore {
    /// The body of [`Store::trigger_create`], on a checked-out connection.
    async fn trigger_create_on(
        &self,
        conn: &mut MySqlConnection,
        trigger: &Trigger,
    ) -> Result<Trigger> {
        const OP: &str = "trigger_create";
        let (kind, id) = super::pause_key(trigger.scope.as_ref());
        let now = self.now(&mut *conn, OP).await?;
        sqlx::query(sql::TRIGGER_CREATE)
            .bind(hex(trigger.id))
            .bind(&trigger.job)
            .bind(kind)
            .bind(id)
            .bind(&trigger.idempotency_key)
            .bind(&trigger.requested_by)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let row = sqlx::query(AssertSqlSafe(sql::trigger_created()))
            .bind(hex(trigger.id))
            .bind(&trigger.job)
            .bind(&trigger.idempotency_key)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        row::trigger(&row)
    }

    /// The body of [`Store::trigger_start`], on a checked-out connection.
    async fn trigger_start_on(
        &self,
        conn: &mut MySqlConnection,
        start: &ManualStart<'_>,
    ) -> Result<Vec<Claimed>> {
        const OP: &str = "trigger_start";
        let mut tx = self.begin_locked(conn, start.job, OP).await?;
        // 1. Which plans have a row already (without locking); the first `limit` others are new.
        let existing = existing_rows(
            &mut tx,
            OP,
            start.job,
            start
                .plans
                .iter()
                .map(|m| (&m.plan.scope, m.plan.plan_time)),
        )
        .await?;
        let missing: Vec<_> = start
            .plans
            .iter()
            .filter(|m| !existing.contains_key(&key(&m.plan.scope, m.plan.plan_time)))
            .collect();
        let now = self.now(&mut tx, OP).await?;
        let stale_after = now + crate::schedule::delta(start.stale_timeout);
        // 2. Insert them (a rival's row met meanwhile is left alone).
        for batch in json_batches(missing.iter().take(start.limit).map(|m| {
            json!([
                hex(m.plan.id),
                m.plan.scope.kind,
                m.plan.scope.id,
                datetime(m.plan.plan_time),
                hex(m.plan.token),
                hex(m.trigger)
            ])
        })) {
            sqlx::query(sql::TRIGGER_INSERT)
                .bind(start.job)
                .bind(i64::from(start.max_attempts))
                .bind(start.runner_id)
                .bind(now)
                .bind(stale_after)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?;
        }
        // 3. Nothing left to start: the triggers are started.
        if missing.len() < start.limit && !start.started.is_empty() {
            for batch in json_batches(start.started.iter().map(|id| json!(hex(*id)))) {
                sqlx::query(sql::TRIGGER_MARK_STARTED)
                    .bind(batch)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?;
            }
        }
        // 4. The rows held under the offered tokens (inserted now or by an earlier try).
        let mut held = HashMap::new();
        for batch in json_batches(
            start
                .plans
                .iter()
                .map(|m| json!([hex(m.plan.id), hex(m.plan.token)])),
        ) {
            for row in sqlx::query(sql::CLAIM_HELD)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
            {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                let id: Uuid = row.try_get(0).map_err(dec)?;
                let started_at: DateTime<Utc> = row.try_get(8).map_err(dec)?;
                held.insert(id, started_at);
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(super::manual_claims(start, |id| held.get(&id).copied()))
    }

    /// The body of [`Store::backfill_create`], on a checked-out connection.
    async fn backfill_create_on(
        &self,
        conn: &mut MySqlConnection,
        backfill: &Backfill,
    ) -> Result<Backfill> {
        const OP: &str = "backfill_create";
        let now = self.now(&mut *conn, OP).await?;
        sqlx::query(sql::BACKFILL_CREATE)
            .bind(hex(backfill.id))
            .bind(&backfill.job)
            .bind(super::scopes_json(backfill.scopes.as_ref()))
            .bind(backfill.from)
            .bind(backfill.to)
            .bind(backfill.rerun)
            .bind(&backfill.requested_by)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        let mut stored = backfill.clone();
        stored.created_at = now;
        stored.updated_at = now;
        Ok(stored)
    }

    /// The body of [`Store::execution_rerun`], on a checked-out connection.
    async fn execution_rerun_on(
        &self,
        conn: &mut MySqlConnection,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64> {
        const OP: &str = "execution_rerun";
        if plans.is_empty() {
            return Ok(0);
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| db_error(OP, e))?;
        // 1. The plans' rows, without locking; 2. lock the finished ones, ascending id.
        let mut ids = Vec::new();
        for batch in json_batches(
            plans
                .iter()
                .map(|(s, t)| json!([s.kind, s.id, datetime(*t)])),
        ) {
            for row in sqlx::query(sql::CLAIM_RESOLVE)
                .bind(batch)
                .bind(job)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
            {
                ids.push(decode_id(&row, 0)?);
            }
        }
        ids.sort();
        let mut locked = Vec::new();
        for batch in json_batches(ids.iter().map(|id| json!(hex(*id)))) {
            for row in sqlx::query(sql::RERUN_LOCK)
                .bind(batch)
                .bind(finished_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(OP, e))?
            {
                locked.push(decode_id(&row, 0)?);
            }
        }
        let mut changed = 0;
        if !locked.is_empty() {
            let now = self.now(&mut tx, OP).await?;
            for batch in json_batches(locked.iter().map(|id| json!(hex(*id)))) {
                changed += sqlx::query(sql::EXECUTION_RERUN)
                    .bind(batch)
                    .bind(now)
                    .bind(i64::from(extra_attempts))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(OP, e))?
                    .rows_affected();
            }
        }
        tx.commit().await.map_err(|e| db_error(OP, e))?;
        Ok(changed)
    }
}

impl registry::Columns for MySqlRow {
    fn text(&self, i: usize) -> sqlx::Result<String> {
        self.try_get(i).or_else(|_| row::text(self, i))
    }
    fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>> {
        self.try_get(i)
    }
    fn int(&self, i: usize) -> sqlx::Result<i64> {
        self.try_get(i)
    }
    fn time(&self, i: usize) -> sqlx::Result<DateTime<Utc>> {
        self.try_get(i)
    }
    fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>> {
        self.try_get(i)
    }
}

/// The body of `pause_clear`: records the paused interval, then lifts the pause, in one
/// transaction.
async fn pause_clear_on(
    conn: &mut sqlx::MySqlConnection,
    now: &str,
    job: &str,
    kind: &str,
    id: &str,
) -> std::result::Result<sqlx::mysql::MySqlQueryResult, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(sql::PAUSE_RECORD)
        .bind(now)
        .bind(now)
        .bind(job)
        .bind(kind)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(sql::PAUSE_CLEAR)
        .bind(job)
        .bind(kind)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done)
}

/// One ledger row, in the column order of `SKIP_FIND` and `SKIP_LIST`.
fn skip_row(row: &sqlx::mysql::MySqlRow) -> Result<SkipSpan> {
    let dec = |e: sqlx::Error| corrupt("?", e.to_string());
    super::skip_span(
        row::text(row, 0).map_err(dec)?,
        row::text(row, 1).map_err(dec)?,
        row::text(row, 2).map_err(dec)?,
        row::text(row, 3).map_err(dec)?,
        row.try_get(4).map_err(dec)?,
        row.try_get(5).map_err(dec)?,
        row.try_get(6).map_err(dec)?,
        row.try_get(7).map_err(dec)?,
        row.try_get(8).map_err(dec)?,
        row.try_get(9).map_err(dec)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, attempt: i32, max_attempts: i32) -> Existing {
        Existing {
            id: Uuid::now_v7(),
            status: status.into(),
            attempt,
            max_attempts,
            next_retry_at: None,
            stale_after: None,
            lease_token: Uuid::new_v4(),
            claim_outcome: "won".into(),
            started_at: None,
            replay_pending: false,
        }
    }

    #[test]
    fn claims_take_over_only_what_spec_5_1_allows() {
        let now = Utc::now();
        let past = now - TimeDelta::seconds(1);
        let future = now + TimeDelta::seconds(1);
        let token = Uuid::new_v4();

        let mut failed = row("FAILED", 1, 3);
        failed.next_retry_at = Some(past);
        assert_eq!(
            decide(&failed, token, false, now),
            Some(TakeOver::Attempt(ClaimOutcome::Retried))
        );
        failed.next_retry_at = Some(now);
        assert!(decide(&failed, token, false, now).is_some(), "due at now");
        failed.replay_pending = true;
        assert_eq!(
            decide(&failed, token, false, now),
            Some(TakeOver::Attempt(ClaimOutcome::Replayed))
        );
        failed.next_retry_at = Some(future);
        assert_eq!(decide(&failed, token, false, now), None);
        failed.next_retry_at = None;
        assert_eq!(decide(&failed, token, false, now), None);

        let mut stale = row("RUNNING", 1, 3);
        stale.stale_after = Some(past);
        assert_eq!(
            decide(&stale, token, true, now),
            Some(TakeOver::Attempt(ClaimOutcome::Stole))
        );
        assert_eq!(decide(&stale, token, false, now), None, "no re-entry");
        stale.stale_after = Some(now);
        assert_eq!(
            decide(&stale, token, true, now),
            None,
            "stale only after stale_after"
        );

        let mut exhausted = row("FAILED", 3, 3);
        exhausted.next_retry_at = Some(past);
        assert_eq!(decide(&exhausted, token, true, now), None);
        for status in ["SUCCESS", "DEAD", "SUPERSEDED"] {
            assert_eq!(
                decide(&row(status, 1, 3), token, true, now),
                None,
                "{status}"
            );
        }

        let mut mine = row("RUNNING", 3, 3);
        mine.lease_token = token;
        mine.stale_after = Some(future);
        assert_eq!(decide(&mine, token, false, now), Some(TakeOver::Again));
    }

    #[test]
    fn clock_skew_is_filled_into_every_statement() {
        let sql = Statements::new(TimeDelta::milliseconds(-3_600_000));
        for statement in [&sql.db_now, &sql.retry_candidates, &sql.count_stale] {
            assert!(!statement.contains("{NOW}"), "{statement}");
            assert!(statement.contains("UTC_TIMESTAMP(3) + INTERVAL -3600000000 MICROSECOND"));
            assert!(!statement.contains("NOW()"), "{statement}");
        }
    }

    /// Against the server named by `CRONLEASE_TEST_MYSQL_URL` (skipped when unset): four
    /// replicas migrating a fresh database at once apply each migration once, and a newer
    /// schema is refused.
    #[tokio::test]
    async fn concurrent_migrations_apply_once_and_newer_schemas_are_refused() {
        let Ok(url) = std::env::var("CRONLEASE_TEST_MYSQL_URL") else {
            return;
        };
        let database = format!("cronlease_unit_{}", Uuid::new_v4().simple());
        let admin = MySqlPool::connect(&url).await.expect("connect");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&admin)
            .await
            .expect("create database");
        let options = MySqlConnectOptions::from_str(&url)
            .expect("url")
            .database(&database);
        let replicas = futures_util::future::join_all((0..4).map(|_| {
            let options = options.clone();
            async move {
                let store = MySqlStore::connect_with(options).await?;
                store.migrate().await?;
                Ok::<_, Error>(store)
            }
        }))
        .await;
        let store = replicas
            .into_iter()
            .map(|r| r.expect("migrate"))
            .next_back()
            .expect("a replica");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cronlease_migrations")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(applied, 9);
        let isolation: String = sqlx::query_scalar("SELECT @@SESSION.tx_isolation")
            .fetch_one(store.pool())
            .await
            .or(sqlx::query_scalar("SELECT @@SESSION.transaction_isolation")
                .fetch_one(store.pool())
                .await)
            .expect("isolation");
        assert_eq!(isolation, "READ-COMMITTED");
        // The server-side deadlines of the default `StoreDeadlines`, by flavour.
        let mut conn = store.pool().acquire().await.expect("a connection");
        let settings: (String, String) = match session::Flavour::of(&mut conn).await.expect("flavour") {
            session::Flavour::MariaDb => sqlx::query_as(
                "SELECT CAST(@@SESSION.max_statement_time AS CHAR), CAST(@@SESSION.idle_transaction_timeout AS CHAR)",
            ),
            session::Flavour::MySql => sqlx::query_as(
                "SELECT CAST(@@SESSION.max_execution_time AS CHAR), CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR)",
            ),
        }
        .fetch_one(&mut *conn)
        .await
        .expect("session settings");
        assert!(
            [("25.000000", "30"), ("25000", "5")]
                .contains(&(settings.0.as_str(), settings.1.as_str())),
            "{settings:?}"
        );
        drop(conn);
        sqlx::query("INSERT INTO cronlease_migrations (version, name) VALUES (99, 'future')")
            .execute(store.pool())
            .await
            .expect("insert");
        let refused = store.migrate().await;
        assert!(
            matches!(
                refused,
                Err(Error::SchemaTooNew {
                    found: 99,
                    known: 9
                })
            ),
            "{refused:?}"
        );
        store.pool().close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {database}")))
            .execute(&admin)
            .await
            .expect("drop database");
    }

    #[test]
    fn large_batches_are_split_under_the_packet_limit() {
        let big = "x".repeat(16 * 1024);
        let batches = json_batches((0..2000).map(|i| json!([i, big])));
        assert!(batches.len() > 1);
        let mut total = 0;
        for batch in &batches {
            assert!(batch.len() <= MAX_BATCH_BYTES + 2, "{}", batch.len());
            total += serde_json::from_str::<Vec<Value>>(batch).unwrap().len();
        }
        assert_eq!(total, 2000);
        assert!(json_batches(std::iter::empty()).is_empty());
    }
}
