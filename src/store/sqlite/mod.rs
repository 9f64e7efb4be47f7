//! [`SqliteStore`]: the embedded default. A file in WAL mode with a busy timeout; every write is a
//! single statement or one `BEGIN IMMEDIATE` transaction, so two processes can share one file
//! without "database is locked" errors.
//!
//! The hot path avoids reading back what it already knows: a claim first inserts its plans with
//! `ON CONFLICT DO NOTHING`, and when every plan was inserted (the usual case: new plans) the
//! leases are the ids and tokens it sent, stamped with the clock it read just before; only when
//! some plan already had a row does the full upsert run and read its rows back. A success batch
//! reads back which rows it wrote only when it wrote fewer than it was given.
//!
//! Times are stored as INTEGER Unix milliseconds (UTC); ids and tokens as hyphenated TEXT;
//! `result` and `failures` as JSON TEXT.

mod checkpoint;
pub(crate) mod error;
mod migrate;
mod row;
mod sql;
mod writer;

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection as _, Row};
use uuid::Uuid;

use super::deadline::StoreDeadlines;
use super::{
    ClaimOutcome, ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, Lease,
    ManualStart, MigrationStatus, PlanClaim, PruneJobs, PruneSet, Renewal, RetryCandidate, Store,
    SuccessWrite, Swept, TickClock, db_error,
};
use crate::control::{
    Backfill, BackfillAdvance, ClaimGuard, GuardRow, JobDescription, Pause, RegisteredJob, Runner,
    RunnerRegistration, SkipSpan, Trigger,
};
use crate::error::{Error, Result};
use crate::execution::{Execution, Status};
use crate::schedule::{duration_ms, from_millis};
use crate::scope::Scope;
use crate::store::registry;
use crate::store::rowmap::{corrupt, count, decode_into, found_at, parsed, uuid};
use checkpoint::Checkpointer;
use writer::{Writer, WriterConn};

/// Default SQLite busy timeout: how long a statement waits for another connection's write lock
/// (the default [`StoreDeadlines::lock`]).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's page cache (KiB, as SQLite's negative `cache_size`): 64 MiB keeps the indexes a
/// claim touches in memory, and no other connection's commit discards it.
const WRITER_CACHE_SIZE: &str = "-65536";

/// Each reader's page cache (KiB): 8 MiB. In WAL mode a connection drops its whole cache when it
/// begins a read after another connection committed, so a reader's cache rarely outlives one
/// read while plans run; a large one only held memory (the first tick's read of every scope's
/// newest plan filled 64 MiB at a million scopes, kept from then on).
const READER_CACHE_SIZE: &str = "-8192";

/// A [`Store`] on a SQLite file.
///
/// ```no_run
/// # async fn demo() -> cronlease::Result<()> {
/// let store = cronlease::SqliteStore::open("cronlease.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection, so this process's writers queue for it instead of meeting
    /// SQLite's lock and its busy-handler sleeps; other processes still wait on the busy timeout.
    writer: Arc<Writer>,
    sql: Arc<Statements>,
    /// Checkpoints the WAL off the writer (file stores opened by this crate).
    checkpointer: Option<Arc<Checkpointer>>,
    deadlines: StoreDeadlines,
}

/// The statements with the clock expression filled in.
#[derive(Debug)]
struct Statements {
    db_now: Arc<str>,
    retry_candidates: Arc<str>,
    claim: Arc<str>,
    claim_fresh: Arc<str>,
    heartbeat: Arc<str>,
    finish_success: Arc<str>,
    finish_failure: Arc<str>,
    sweep_stale: Arc<str>,
    supersede: Arc<str>,
    replay: Arc<str>,
    prune: Arc<str>,
    count_prunable: Arc<str>,
    count_stale: Arc<str>,
    tick_clock: Arc<str>,
    pause_set: Arc<str>,
    pause_record: Arc<str>,
    skip_record: Arc<str>,
    skip_prune: Arc<str>,
    runner_register: Arc<str>,
    registered_job_insert: Arc<str>,
    runner_seen: Arc<str>,
    runner_stop: Arc<str>,
    runner_list: Arc<str>,
    runner_prune: Arc<str>,
    registered_jobs: Arc<str>,
    trigger_create: Arc<str>,
    trigger_start_insert: Arc<str>,
    trigger_mark_started: Arc<str>,
    backfill_create: Arc<str>,
    backfill_cancel: Arc<str>,
    backfill_advance: Arc<str>,
    rerun: Arc<str>,
    claim_guard_rows: Arc<str>,
    claim_guard_cancel: Arc<str>,
    claim_guard_skip: Arc<str>,
}

impl Statements {
    fn new(skew: TimeDelta) -> Self {
        let now = sql::NOW_EXPR.replace("{SKEW}", &skew.num_milliseconds().to_string());
        let fill = |s: &str| Arc::<str>::from(s.replace("{NOW}", &now));
        Statements {
            db_now: fill(sql::DB_NOW),
            retry_candidates: fill(sql::EXECUTION_RETRY_CANDIDATES),
            claim: fill(sql::EXECUTION_CLAIM),
            claim_fresh: fill(sql::EXECUTION_CLAIM_FRESH),
            heartbeat: fill(sql::EXECUTION_HEARTBEAT),
            finish_success: fill(sql::EXECUTION_FINISH_SUCCESS),
            finish_failure: fill(sql::EXECUTION_FINISH_FAILURE),
            sweep_stale: fill(sql::EXECUTION_SWEEP_STALE),
            supersede: fill(sql::EXECUTION_SUPERSEDE),
            replay: fill(sql::EXECUTION_REPLAY),
            prune: fill(sql::EXECUTION_PRUNE),
            count_prunable: fill(sql::EXECUTION_COUNT_PRUNABLE),
            count_stale: fill(sql::EXECUTION_COUNT_STALE),
            tick_clock: fill(sql::TICK_CLOCK),
            pause_set: fill(sql::PAUSE_SET),
            pause_record: fill(sql::PAUSE_RECORD),
            skip_record: fill(sql::SKIP_RECORD),
            skip_prune: fill(sql::SKIP_PRUNE),
            runner_register: fill(sql::RUNNER_REGISTER),
            registered_job_insert: fill(sql::REGISTERED_JOB_INSERT),
            runner_seen: fill(sql::RUNNER_SEEN),
            runner_stop: fill(sql::RUNNER_STOP),
            runner_list: fill(sql::RUNNER_LIST),
            runner_prune: fill(sql::RUNNER_PRUNE),
            registered_jobs: fill(sql::REGISTERED_JOBS),
            trigger_create: fill(sql::TRIGGER_CREATE),
            trigger_start_insert: fill(sql::TRIGGER_START_INSERT),
            trigger_mark_started: fill(sql::TRIGGER_MARK_STARTED),
            backfill_create: fill(sql::BACKFILL_CREATE),
            backfill_cancel: fill(sql::BACKFILL_CANCEL),
            backfill_advance: fill(sql::BACKFILL_ADVANCE),
            rerun: fill(sql::EXECUTION_RERUN),
            claim_guard_rows: fill(sql::CLAIM_GUARD_ROWS),
            claim_guard_cancel: fill(sql::CLAIM_GUARD_CANCEL),
            claim_guard_skip: fill(sql::CLAIM_GUARD_SKIP),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the SQLite file at `path` with WAL, `synchronous = NORMAL` and a
    /// 5 s busy timeout.
    ///
    /// A file that cannot be opened is an [`Error::Connect`] naming the path and the cause, e.g.
    /// ``unable to open database file `x/y.db`: the directory `x` does not exist: create it first``.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_with(options).await
    }

    /// Connects with a URL such as `sqlite://cronlease.db` or `sqlite::memory:` (a plain path
    /// works too). Any other scheme (`postgres://`, `mysql://`) is an [`Error::InvalidConfig`],
    /// never taken for a file name.
    pub async fn connect(url: &str) -> Result<Self> {
        error::check_url(url)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                Error::InvalidConfig(format!(
                    "SqliteStore::connect cannot read the SQLite URL ({e}): write it as `sqlite://path/to/file.db`"
                ))
            })?
            .create_if_missing(true);
        Self::connect_with(options).await
    }

    /// Connects with explicit options; WAL, `synchronous = NORMAL` and the busy timeout are added.
    /// An in-memory database is kept on one connection that is never reaped. A failure is an
    /// [`Error::Connect`] naming the path.
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self> {
        Self::connect_with_deadlines(options, StoreDeadlines::default()).await
    }

    /// Like [`SqliteStore::connect_with`], with these deadlines: the busy timeout is
    /// [`StoreDeadlines::lock`] and the scheduler bounds every call by [`StoreDeadlines::call`]
    /// (the other fields are for servers). Fails with [`Error::InvalidConfig`] for invalid
    /// deadlines.
    ///
    /// A call past its deadline keeps its connection: SQLite runs in this process, so the
    /// abandoned statement still ends within the busy timeout, and the connection runs the next
    /// statement only after it (an abandoned transaction is rolled back first).
    pub async fn connect_with_deadlines(
        options: SqliteConnectOptions,
        deadlines: StoreDeadlines,
    ) -> Result<Self> {
        deadlines.validate()?;
        let path = options.get_filename().to_owned();
        let in_memory = options.get_filename().as_os_str() == ":memory:"
            || options.get_filename().as_os_str().is_empty();
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(deadlines.lock)
            .pragma("cache_size", WRITER_CACHE_SIZE);
        let (pool_options, pool_connect_options) = if in_memory {
            let single = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (single, options.clone())
        } else {
            (
                SqlitePoolOptions::new().max_connections(4),
                options.clone().pragma("cache_size", READER_CACHE_SIZE),
            )
        };
        let pool = pool_options
            .connect_with(pool_connect_options)
            .await
            .map_err(|e| error::open_error(&path, e))?;
        let (writer, checkpointer) = if in_memory {
            (Writer::Pool(pool.clone()), None)
        } else {
            let checkpointer = Checkpointer::start(pool.clone());
            // A claim's insert keeps a statement journal inside its transaction; on disk, past
            // 64 KiB, it was a temporary file created and deleted at every claim.
            let options = options.pragma("temp_store", "MEMORY");
            let options = if checkpointer.is_some() {
                options.pragma(
                    "wal_autocheckpoint",
                    checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
                )
            } else {
                options
            };
            let writer = Writer::open(options)
                .await
                .map_err(|e| error::open_error(&path, e))?;
            (writer, checkpointer)
        };
        Ok(SqliteStore {
            pool,
            writer: Arc::new(writer),
            sql: Arc::new(Statements::new(TimeDelta::zero())),
            checkpointer,
            deadlines,
        })
    }

    /// Uses an existing pool for reads and writes (configure WAL and a busy timeout on it
    /// yourself; a dedicated single-connection writer, as `connect` sets up, avoids lock waits).
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStore {
            writer: Arc::new(Writer::Pool(pool.clone())),
            pool,
            sql: Arc::new(Statements::new(TimeDelta::zero())),
            checkpointer: None,
            deadlines: StoreDeadlines::default(),
        }
    }

    /// Shifts the database clock as seen through this store by `skew`: every lease stamp, plan
    /// decision and retry time it computes moves with it. For tests and simulations that need a
    /// runner to live in the future (to see a lease go stale without waiting).
    pub fn with_clock_skew(mut self, skew: TimeDelta) -> Self {
        self.sql = Arc::new(Statements::new(skew));
        self
    }

    /// Runs `write`, then `read_back` (one JSON text value) in one `BEGIN IMMEDIATE` transaction
    /// on the writer connection, so the rows a batch touched come back as a single value instead
    /// of one result row each (sqlx hands SQLite rows over one at a time).
    async fn write_then_read_back(
        &self,
        operation: &'static str,
        write: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
        read_back: sqlx::query::QueryScalar<
            '_,
            sqlx::Sqlite,
            String,
            sqlx::sqlite::SqliteArguments,
        >,
    ) -> Result<String> {
        let fail = |e| db_error(operation, e);
        let mut conn = self.write(operation).await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        write.execute(&mut *tx).await.map_err(fail)?;
        let value = read_back.fetch_one(&mut *tx).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        self.wrote();
        Ok(value)
    }

    /// The common claim, where no plan offered has a row yet: inserts them all with the database
    /// clock read just before on the writer connection, and returns them as Won without reading
    /// anything back. `None` when some plan already had a row: the full claim then decides (the
    /// rows inserted here come back through it, as they carry the tokens it offers again).
    async fn claim_fresh(
        &self,
        request: &ClaimRequest<'_>,
        plans: &str,
    ) -> Result<Option<Vec<Claimed>>> {
        let mut conn = self.write("execution_claim").await?;
        self.claim_fresh_on(&mut conn, request, plans).await
    }

    /// [`claim_fresh`](Self::claim_fresh) on `conn` (the writer, or a transaction on it).
    async fn claim_fresh_on(
        &self,
        conn: &mut sqlx::SqliteConnection,
        request: &ClaimRequest<'_>,
        plans: &str,
    ) -> Result<Option<Vec<Claimed>>> {
        let fail = |e| db_error("execution_claim", e);
        let now: i64 = sqlx::query_scalar(q(&self.sql.db_now))
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?;
        let inserted = claim_query(&self.sql.claim_fresh, request, plans)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?
            .rows_affected();
        if inserted > 0 {
            self.wrote();
        }
        if inserted != request.plans.len() as u64 {
            return Ok(None);
        }
        let started_at = from_millis(now);
        Ok(Some(
            request
                .plans
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
                    started_at,
                })
                .collect(),
        ))
    }

    /// The writer connection, for one write of `operation` (held until the result is dropped).
    async fn write(&self, operation: &'static str) -> Result<WriterConn<'_>> {
        self.writer
            .acquire()
            .await
            .map_err(|e| db_error(operation, e))
    }

    /// Notes a committed write for the background checkpoint.
    fn wrote(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wrote();
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// One row of `EXECUTION_CLAIMED`: id, scope kind, scope id, plan time, attempt, max attempts,
/// token, claim outcome, started at.
#[derive(serde::Deserialize)]
struct ClaimedRow(String, String, String, i64, i64, i64, String, String, i64);

/// A batch parameter: a JSON array of tuples (each serialised as an array), written straight
/// from borrowed fields without building a `serde_json::Value` tree.
fn batch_json<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).expect("tuples of strings, numbers and uuids serialise")
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(sql.clone())
}

/// A claim statement with the parameters both claim statements share: ?1 job, ?2 max attempts,
/// ?3 runner, ?4 stale timeout (ms), ?5 the plans as `batch_json`.
fn claim_query<'q>(
    sql: &Arc<str>,
    request: &ClaimRequest<'q>,
    plans: &'q str,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(q(sql))
        .bind(request.job)
        .bind(i64::from(request.max_attempts))
        .bind(request.runner_id)
        .bind(duration_ms(request.stale_timeout))
        .bind(plans)
}

/// Plans as the claim statements read them: `[[id, scope_kind, scope_id, plan_time_ms, token], ...]`.
fn claim_plans(plans: &[PlanClaim]) -> String {
    let plans: Vec<_> = plans
        .iter()
        .map(|p| {
            (
                p.id,
                p.scope.kind.as_str(),
                p.scope.id.as_str(),
                p.plan_time.timestamp_millis(),
                p.token,
            )
        })
        .collect();
    batch_json(&plans)
}

/// The claimed rows `EXECUTION_CLAIMED` read back, as a JSON array.
fn decode_claimed(claimed: &str) -> Result<Vec<Claimed>> {
    let rows: Vec<ClaimedRow> =
        serde_json::from_str(claimed).map_err(|e| corrupt("?", e.to_string()))?;
    Ok(super::skip_corrupt(rows.into_iter().map(|row| {
        let id = row.0.as_str();
        Ok(Claimed {
            lease: Lease {
                id: uuid(id, id)?,
                token: uuid(id, &row.6)?,
            },
            scope: Scope::new(row.1.clone(), row.2.clone()),
            plan_time: from_millis(row.3),
            attempt: count(id, "attempt", row.4)?,
            max_attempts: count(id, "max_attempts", row.5)?,
            outcome: parsed(id, &row.7)?,
            started_at: from_millis(row.8),
        })
    })))
}

fn ids(rows: Vec<SqliteRow>) -> Result<Vec<Uuid>> {
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0).map_err(|e| corrupt("?", e.to_string()))?;
            uuid(&id, &id)
        })
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn deadlines(&self) -> StoreDeadlines {
        self.deadlines
    }

    async fn migrate(&self) -> Result<()> {
        migrate::run(&self.pool).await
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        migrate::status(&self.pool).await
    }

    async fn db_now(&self) -> Result<DateTime<Utc>> {
        let ms: i64 = sqlx::query_scalar(q(&self.sql.db_now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("db_now", e))?;
        Ok(from_millis(ms))
    }

    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> Result<usize> {
        let rows = sqlx::query(sql::EXECUTION_LATEST_PLANS)
            .bind(job)
            .fetch(&self.pool);
        let decode = |row: &sqlx::sqlite::SqliteRow| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            Ok((
                Scope::new(
                    row.try_get::<String, _>(0).map_err(dec)?,
                    row.try_get::<String, _>(1).map_err(dec)?,
                ),
                from_millis(row.try_get(2).map_err(dec)?),
            ))
        };
        decode_into(rows, decode, |(scope, plan_time)| each(&scope, plan_time))
            .await
            .map_err(|e| db_error("execution_latest_plans", e))
    }

    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> Result<Vec<bool>> {
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let offered: Vec<_> = plans
            .iter()
            .map(|(scope, t)| (scope.kind.as_str(), scope.id.as_str(), t.timestamp_millis()))
            .collect();
        let found = sqlx::query_scalar::<_, i64>(sql::EXECUTION_PLANS_EXIST)
            .bind(job)
            .bind(batch_json(&offered))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_plans_exist", e))?;
        Ok(found_at(plans.len(), found, 0))
    }

    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>> {
        let rows = sqlx::query(q(&self.sql.retry_candidates))
            .bind(job)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_retry_candidates", e))?;
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            Ok(RetryCandidate {
                scope: Scope::new(
                    row.try_get::<String, _>(0).map_err(dec)?,
                    row.try_get::<String, _>(1).map_err(dec)?,
                ),
                plan_time: from_millis(row.try_get(2).map_err(dec)?),
                next_retry_at: from_millis(row.try_get(3).map_err(dec)?),
                due: row.try_get(4).map_err(dec)?,
                replayed: row.try_get(5).map_err(dec)?,
            })
        })))
    }

    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        if request.plans.is_empty() {
            return Ok(Vec::new());
        }
        let plans = claim_plans(&request.plans);
        if let Some(claimed) = self.claim_fresh(request, &plans).await? {
            return Ok(claimed);
        }
        let write = claim_query(&self.sql.claim, request, &plans)
            .bind(request.allow_stale_reentry)
            .bind(request.steal_not_after.map(|t| t.timestamp_millis()));
        let read_back = sqlx::query_scalar(sql::EXECUTION_CLAIMED)
            .bind(request.job)
            .bind(&plans);
        let claimed = self
            .write_then_read_back("execution_claim", write, read_back)
            .await?;
        decode_claimed(&claimed)
    }

    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        if request.plans.is_empty() {
            return Ok(GuardedClaim::default());
        }
        let fail = |e| db_error("execution_claim", e);
        // Encoded before the writer is taken, so other writes need not wait for it.
        let offered = claim_plans(&request.plans);
        // The write lock first: it is the job's claim lock (SQLite has one writer).
        let mut conn = self.write("execution_claim").await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let rows = sqlx::query(q(&self.sql.claim_guard_rows))
            .bind(request.job)
            .bind(&offered)
            .fetch_all(&mut *tx)
            .await
            .map_err(fail)?;
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
        let rows = super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: String = row.try_get(0).map_err(dec)?;
            let token: String = row.try_get(1).map_err(dec)?;
            let status: String = row.try_get(5).map_err(dec)?;
            Ok(GuardRow {
                id: uuid(&id, &id)?,
                token: uuid(&id, &token)?,
                scope: Scope::new(
                    row.try_get::<String, _>(2).map_err(dec)?,
                    row.try_get::<String, _>(3).map_err(dec)?,
                ),
                plan_time: from_millis(row.try_get(4).map_err(dec)?),
                status: parsed(&id, &status)?,
                started_at: row
                    .try_get::<Option<i64>, _>(6)
                    .map_err(dec)?
                    .map(from_millis),
                stale: row
                    .try_get::<Option<bool>, _>(7)
                    .map_err(dec)?
                    .unwrap_or(false),
            })
        }));
        let plan = super::guard::plan(request, guard, &rows, job_running);
        if !plan.cancel.is_empty() {
            sqlx::query(q(&self.sql.claim_guard_cancel))
                .bind(batch_json(&plan.cancel))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        // The plans to claim that had no row when read under the lock (all of them, usually):
        // a plain insert, as in the unguarded claim.
        let known: HashSet<(&Scope, DateTime<Utc>)> =
            rows.iter().map(|r| (&r.scope, r.plan_time)).collect();
        let all_new = plan
            .claim
            .plans
            .iter()
            .all(|p| !known.contains(&(&p.scope, p.plan_time)));
        let fresh = if all_new && !plan.claim.plans.is_empty() {
            let plans = if plan.claims_as_offered() {
                Cow::Borrowed(&offered)
            } else {
                Cow::Owned(claim_plans(&plan.claim.plans))
            };
            self.claim_fresh_on(&mut tx, &plan.claim, &plans).await?
        } else {
            None
        };
        let claimed = if plan.claim.plans.is_empty() {
            Vec::new()
        } else if let Some(claimed) = fresh {
            claimed
        } else {
            let plans = claim_plans(&plan.claim.plans);
            claim_query(&self.sql.claim, &plan.claim, &plans)
                .bind(plan.claim.allow_stale_reentry)
                .bind(plan.claim.steal_not_after.map(|t| t.timestamp_millis()))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            let claimed: String = sqlx::query_scalar(sql::EXECUTION_CLAIMED)
                .bind(request.job)
                .bind(&plans)
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
            decode_claimed(&claimed)?
        };
        if !plan.skip.is_empty() {
            sqlx::query(q(&self.sql.claim_guard_skip))
                .bind(request.job)
                .bind(i64::from(request.max_attempts))
                .bind(request.runner_id)
                .bind(claim_plans(&plan.skip))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        self.wrote();
        Ok(plan.report(request, claimed))
    }

    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>> {
        if renewals.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<_> = renewals
            .iter()
            .map(|r| (r.lease.id, r.lease.token, duration_ms(r.stale_timeout)))
            .collect();
        let rows = sqlx::query(q(&self.sql.heartbeat))
            .bind(batch_json(&batch))
            .fetch_all(&mut *self.write("execution_heartbeat").await?)
            .await
            .map_err(|e| db_error("execution_heartbeat", e))?;
        self.wrote();
        ids(rows)
    }

    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<_> = writes
            .iter()
            .map(|w| {
                (
                    w.lease.id,
                    w.lease.token,
                    w.duration_ms,
                    w.rows_affected,
                    w.result.as_str(),
                )
            })
            .collect();
        let batch = batch_json(&batch);
        let written = sqlx::query(q(&self.sql.finish_success))
            .bind(&batch)
            .execute(&mut *self.write("execution_finish_success").await?)
            .await
            .map_err(|e| db_error("execution_finish_success", e))?
            .rows_affected();
        self.wrote();
        if written == writes.len() as u64 {
            return Ok(writes.iter().map(|w| w.lease.id).collect());
        }
        let written: String = sqlx::query_scalar(sql::EXECUTION_FINISHED_SUCCESS)
            .bind(&batch)
            .fetch_one(&mut *self.write("execution_finish_success").await?)
            .await
            .map_err(|e| db_error("execution_finish_success", e))?;
        let written: Vec<String> =
            serde_json::from_str(&written).map_err(|e| corrupt("?", e.to_string()))?;
        written.iter().map(|id| uuid(id, id)).collect()
    }

    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<_> = writes
            .iter()
            .map(|w| {
                (
                    w.lease.id,
                    w.lease.token,
                    w.status.as_str(),
                    w.code.as_str(),
                    w.message.as_str(),
                    w.retry_in.map(duration_ms),
                    w.extend_budget,
                    w.duration_ms,
                )
            })
            .collect();
        let rows = sqlx::query(q(&self.sql.finish_failure))
            .bind(batch_json(&batch))
            .fetch_all(&mut *self.write("execution_finish_failure").await?)
            .await
            .map_err(|e| db_error("execution_finish_failure", e))?;
        self.wrote();
        ids(rows)
    }

    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        let rows = sqlx::query(q(&self.sql.sweep_stale))
            .bind(job)
            .bind(allow_reentry)
            .bind(not_after.map(|t| t.timestamp_millis()))
            .fetch_all(&mut *self.write("execution_sweep_stale").await?)
            .await
            .map_err(|e| db_error("execution_sweep_stale", e))?;
        if !rows.is_empty() {
            self.wrote();
        }
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: String = row.try_get(0).map_err(dec)?;
            let status: String = row.try_get(1).map_err(dec)?;
            Ok(Swept {
                id: uuid(&id, &id)?,
                status: parsed(&id, &status)?,
            })
        })))
    }

    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(q(&self.sql.supersede))
            .bind(job)
            .fetch_all(&mut *self.write("execution_supersede").await?)
            .await
            .map_err(|e| db_error("execution_supersede", e))?;
        if !rows.is_empty() {
            self.wrote();
        }
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let id: String = row.try_get(0).map_err(|e| corrupt("?", e.to_string()))?;
            uuid(&id, &id)
        })))
    }

    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>> {
        let row = sqlx::query(sql::EXECUTION_GET)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("execution_get", e))?;
        row.as_ref().map(row::execution).transpose()
    }

    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let rows = sqlx::query(sql::EXECUTION_LIST)
            .bind(filter.job.as_deref())
            .bind(filter.scope.as_ref().map(|s| s.kind.as_str()))
            .bind(filter.scope.as_ref().map(|s| s.id.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.plan_from.map(|t| t.timestamp_millis()))
            .bind(filter.plan_before.map(|t| t.timestamp_millis()))
            .bind(filter.after.map(|c| c.plan_time.timestamp_millis()))
            .bind(filter.after.map(|c| c.id.to_string()))
            .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_list", e))?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Vec<Execution>> {
        let (kind, id) = super::page_start(after);
        let rows = sqlx::query(sql::EXECUTION_LATEST_PER_SCOPE)
            .bind(job)
            .bind(kind)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_latest_per_scope", e))?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        let rows = sqlx::query(sql::EXECUTION_COUNT_BY_STATUS)
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_count_by_status", e))?;
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
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let rows = sqlx::query(q(&self.sql.replay))
            .bind(json!(ids).to_string())
            .bind(i64::from(extra_attempts))
            .fetch_all(&mut *self.write("execution_replay").await?)
            .await
            .map_err(|e| db_error("execution_replay", e))?;
        self.wrote();
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let done = sqlx::query(q(&self.sql.prune))
            .bind(set == PruneSet::Dead)
            .bind(duration_ms(older_than))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(jobs.only())
            .bind(jobs.except_json())
            .execute(&mut *self.write("execution_prune").await?)
            .await
            .map_err(|e| db_error("execution_prune", e))?;
        self.wrote();
        Ok(done.rows_affected())
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
        older_than: Duration,
    ) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(q(&self.sql.count_prunable))
            .bind(set == PruneSet::Dead)
            .bind(duration_ms(older_than))
            .bind(jobs.only())
            .bind(jobs.except_json())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("execution_count_prunable", e))?;
        Ok(n.max(0) as u64)
    }

    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(q(&self.sql.count_stale))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_count_stale", e))?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                Ok((row.try_get(0).map_err(dec)?, row.try_get(1).map_err(dec)?))
            })
            .collect()
    }

    async fn execution_count_failing(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(sql::EXECUTION_COUNT_FAILING)
            .bind(since.timestamp_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("execution_count_failing", e))?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                Ok((row.try_get(0).map_err(dec)?, row.try_get(1).map_err(dec)?))
            })
            .collect()
    }

    async fn tick_clock(&self, job: &str) -> Result<TickClock> {
        let rows = sqlx::query(q(&self.sql.tick_clock))
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("tick_clock", e))?;
        let dec = |e: sqlx::Error| corrupt("?", e.to_string());
        let first = rows
            .first()
            .ok_or_else(|| corrupt("?", "the clock query returned no row".into()))?;
        let now = from_millis(first.try_get::<i64, _>(0).map_err(dec)?);
        let mut paused = Vec::new();
        for row in &rows {
            let kind: Option<String> = row.try_get(1).map_err(dec)?;
            let id: Option<String> = row.try_get(2).map_err(dec)?;
            if let (Some(kind), Some(id)) = (kind, id) {
                paused.push(super::pause_scope(kind, id));
            }
        }
        Ok(TickClock {
            now,
            paused,
            triggers_pending: first.try_get(3).map_err(dec)?,
            backfills_active: first.try_get(4).map_err(dec)?,
        })
    }

    async fn pause_set(&self, pause: &Pause) -> Result<Pause> {
        let (kind, id) = super::pause_key(pause.scope.as_ref());
        let paused_at: i64 = sqlx::query_scalar(q(&self.sql.pause_set))
            .bind(&pause.job)
            .bind(kind)
            .bind(id)
            .bind(&pause.paused_by)
            .bind(&pause.reason)
            .fetch_one(&mut *self.write("pause_set").await?)
            .await
            .map_err(|e| db_error("pause_set", e))?;
        self.wrote();
        let mut stored = pause.clone();
        stored.paused_at = from_millis(paused_at);
        Ok(stored)
    }

    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        let (kind, id) = super::pause_key(scope);
        let fail = |e| db_error("pause_clear", e);
        // The paused interval goes to the ledger in the same transaction as the pause goes.
        let mut conn = self.write("pause_clear").await?;
        let mut tx = conn.begin().await.map_err(fail)?;
        sqlx::query(q(&self.sql.pause_record))
            .bind(job)
            .bind(kind)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let done = sqlx::query(sql::PAUSE_CLEAR)
            .bind(job)
            .bind(kind)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        let rows = sqlx::query(sql::PAUSE_LIST)
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("pause_list", e))?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                let paused_at = from_millis(row.try_get::<i64, _>(5).map_err(dec)?);
                let mut pause = Pause::new(
                    row.try_get::<String, _>(0).map_err(dec)?,
                    super::pause_scope(row.try_get(1).map_err(dec)?, row.try_get(2).map_err(dec)?),
                    row.try_get::<String, _>(3).map_err(dec)?,
                    row.try_get::<String, _>(4).map_err(dec)?,
                );
                pause.paused_at = paused_at;
                Ok(pause)
            })
            .collect()
    }

    async fn trigger_create(&self, trigger: &Trigger) -> Result<Trigger> {
        let (kind, id) = super::pause_key(trigger.scope.as_ref());
        let row = sqlx::query(q(&self.sql.trigger_create))
            .bind(trigger.id.to_string())
            .bind(&trigger.job)
            .bind(kind)
            .bind(id)
            .bind(&trigger.idempotency_key)
            .bind(&trigger.requested_by)
            .fetch_one(&mut *self.write("trigger_create").await?)
            .await
            .map_err(|e| db_error("trigger_create", e))?;
        self.wrote();
        row::trigger(&row)
    }

    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>> {
        let rows = sqlx::query(AssertSqlSafe(sql::trigger_list()))
            .bind(job)
            .bind(pending_only)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("trigger_list", e))?;
        rows.iter().map(row::trigger).collect()
    }

    async fn trigger_start(&self, start: &ManualStart<'_>) -> Result<Vec<Claimed>> {
        let fail = |e| db_error("trigger_start", e);
        let plans: Vec<_> = start
            .plans
            .iter()
            .map(|m| {
                (
                    m.plan.id,
                    m.plan.scope.kind.as_str(),
                    m.plan.scope.id.as_str(),
                    m.plan.plan_time.timestamp_millis(),
                    m.plan.token,
                    m.trigger,
                )
            })
            .collect();
        let plans = batch_json(&plans);
        let started = batch_json(&start.started);
        let mut conn = self.write("trigger_start").await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let inserted = sqlx::query(q(&self.sql.trigger_start_insert))
            .bind(start.job)
            .bind(start.max_attempts as i64)
            .bind(start.runner_id)
            .bind(duration_ms(start.stale_timeout))
            .bind(&plans)
            .bind(start.limit as i64)
            .execute(&mut *tx)
            .await
            .map_err(fail)?
            .rows_affected();
        if !start.started.is_empty() && inserted < start.limit as u64 {
            sqlx::query(q(&self.sql.trigger_mark_started))
                .bind(&started)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        let held: String = sqlx::query_scalar(sql::TRIGGER_STARTED_ROWS)
            .bind(&plans)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        self.wrote();
        let held: Vec<(String, String, i64)> =
            serde_json::from_str(&held).map_err(|e| corrupt("?", e.to_string()))?;
        let started_at: std::collections::HashMap<Uuid, i64> = held
            .into_iter()
            .filter_map(|(id, _, at)| Uuid::parse_str(&id).ok().map(|id| (id, at)))
            .collect();
        Ok(super::manual_claims(start, |id| {
            started_at.get(&id).map(|at| from_millis(*at))
        }))
    }

    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill> {
        let created_at: i64 = sqlx::query_scalar(q(&self.sql.backfill_create))
            .bind(backfill.id.to_string())
            .bind(&backfill.job)
            .bind(super::scopes_json(backfill.scopes.as_ref()))
            .bind(backfill.from.timestamp_millis())
            .bind(backfill.to.timestamp_millis())
            .bind(backfill.rerun)
            .bind(&backfill.requested_by)
            .fetch_one(&mut *self.write("backfill_create").await?)
            .await
            .map_err(|e| db_error("backfill_create", e))?;
        self.wrote();
        let mut stored = backfill.clone();
        stored.created_at = from_millis(created_at);
        stored.updated_at = stored.created_at;
        Ok(stored)
    }

    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>> {
        let row = sqlx::query(AssertSqlSafe(sql::backfill_get()))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("backfill_get", e))?;
        row.as_ref().map(row::backfill).transpose()
    }

    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>> {
        let rows = sqlx::query(AssertSqlSafe(sql::backfill_list()))
            .bind(job)
            .bind(active_only)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("backfill_list", e))?;
        rows.iter().map(row::backfill).collect()
    }

    async fn backfill_cancel(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query(q(&self.sql.backfill_cancel))
            .bind(id.to_string())
            .execute(&mut *self.write("backfill_cancel").await?)
            .await
            .map_err(|e| db_error("backfill_cancel", e))?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool> {
        let cursor = |c: Option<&crate::control::BackfillCursor>| {
            (
                c.map(|c| c.plan_time.timestamp_millis()),
                c.map(|c| c.scope.kind.clone()),
                c.map(|c| c.scope.id.clone()),
            )
        };
        let (to_time, to_kind, to_id) = cursor(advance.cursor.as_ref());
        let (was_time, was_kind, was_id) = cursor(advance.expected.as_ref());
        let done = sqlx::query(q(&self.sql.backfill_advance))
            .bind(advance.id.to_string())
            .bind(to_time)
            .bind(to_kind)
            .bind(to_id)
            .bind(advance.handed_out as i64)
            .bind(advance.total as i64)
            .bind(advance.finished)
            .bind(was_time)
            .bind(was_kind)
            .bind(was_id)
            .execute(&mut *self.write("backfill_advance").await?)
            .await
            .map_err(|e| db_error("backfill_advance", e))?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64> {
        if plans.is_empty() {
            return Ok(0);
        }
        let batch: Vec<_> = plans
            .iter()
            .map(|(s, t)| (s.kind.as_str(), s.id.as_str(), t.timestamp_millis()))
            .collect();
        let done = sqlx::query(q(&self.sql.rerun))
            .bind(job)
            .bind(batch_json(&batch))
            .bind(finished_before.timestamp_millis())
            .bind(extra_attempts as i64)
            .execute(&mut *self.write("execution_rerun").await?)
            .await
            .map_err(|e| db_error("execution_rerun", e))?;
        self.wrote();
        Ok(done.rows_affected())
    }

    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = spans
            .iter()
            .map(|s| {
                let (kind, id) = super::pause_key(s.scope.as_ref());
                json!([
                    s.job,
                    kind,
                    id,
                    s.reason.as_str(),
                    s.from.timestamp_millis(),
                    s.to.timestamp_millis(),
                    s.plans.map(|n| n as i64),
                    s.scopes as i64,
                    s.detail
                ])
            })
            .collect();
        sqlx::query(q(&self.sql.skip_record))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *self.write("skip_record").await?)
            .await
            .map_err(|e| db_error("skip_record", e))?;
        self.wrote();
        Ok(())
    }

    // The registry's writes (register, refresh, stop, prune) run on the read pool, not on the
    // writer connection: they are rare and not lease traffic, and must never queue ahead of
    // heartbeats and terminal writes. While another process holds the write lock, a refresh
    // waits out its busy timeout on a connection of its own instead of holding the writer.
    async fn runner_register(
        &self,
        runner: &RunnerRegistration,
        jobs: &[JobDescription],
    ) -> Result<()> {
        let fail = |e| db_error("runner_register", e);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(fail)?;
        sqlx::query(q(&self.sql.runner_register))
            .bind(&runner.id)
            .bind(&runner.host)
            .bind(i64::from(runner.pid))
            .bind(&runner.version)
            .bind(duration_ms(runner.refresh_interval))
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
            sqlx::query(q(&self.sql.registered_job_insert))
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
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        self.wrote();
        Ok(())
    }

    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<Vec<SkipSpan>> {
        let rows = sqlx::query(sql::SKIP_FIND)
            .bind(job)
            .bind(&scope.kind)
            .bind(&scope.id)
            .bind(plan_time.timestamp_millis())
            .bind(due_at.timestamp_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("skip_find", e))?;
        rows.iter().map(skip_row).collect()
    }

    async fn skip_prune(&self, older_than: Duration, limit: usize) -> Result<u64> {
        let done = sqlx::query(q(&self.sql.skip_prune))
            .bind(duration_ms(older_than))
            .bind(limit as i64)
            .execute(&mut *self.write("skip_prune").await?)
            .await
            .map_err(|e| db_error("skip_prune", e))?;
        self.wrote();
        Ok(done.rows_affected())
    }

    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        let rows = sqlx::query(sql::SKIP_LIST)
            .bind(job)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("skip_list", e))?;
        rows.iter().map(skip_row).collect()
    }
    async fn runner_seen(&self, runner_id: &str) -> Result<bool> {
        let done = sqlx::query(q(&self.sql.runner_seen))
            .bind(runner_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("runner_seen", e))?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    async fn runner_stop(&self, runner_id: &str) -> Result<bool> {
        let done = sqlx::query(q(&self.sql.runner_stop))
            .bind(runner_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("runner_stop", e))?;
        self.wrote();
        Ok(done.rows_affected() > 0)
    }

    async fn runner_list(&self) -> Result<Vec<Runner>> {
        let rows = sqlx::query(q(&self.sql.runner_list))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("runner_list", e))?;
        rows.iter().map(registry::runner).collect()
    }

    async fn runner_prune(&self, older_than: Duration) -> Result<u64> {
        let fail = |e| db_error("runner_prune", e);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(fail)?;
        let pruned = sqlx::query(q(&self.sql.runner_prune))
            .bind(duration_ms(older_than))
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
        self.wrote();
        Ok(pruned)
    }

    async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>> {
        let rows = sqlx::query(q(&self.sql.registered_jobs))
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("registered_jobs", e))?;
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

impl registry::Columns for SqliteRow {
    fn text(&self, i: usize) -> sqlx::Result<String> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>> {
        self.try_get(i)
    }
    fn int(&self, i: usize) -> sqlx::Result<i64> {
        self.try_get(i)
    }
    fn time(&self, i: usize) -> sqlx::Result<DateTime<Utc>> {
        self.try_get::<i64, _>(i).map(from_millis)
    }
    fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(i)
            .map(|ms| ms.map(from_millis))
    }
}

/// One ledger row, read in the order of `skip_columns!`.
fn skip_row(row: &sqlx::sqlite::SqliteRow) -> Result<SkipSpan> {
    let dec = |e: sqlx::Error| corrupt("?", e.to_string());
    super::skip_span(
        row.try_get(0).map_err(dec)?,
        row.try_get(1).map_err(dec)?,
        row.try_get(2).map_err(dec)?,
        row.try_get(3).map_err(dec)?,
        from_millis(row.try_get(4).map_err(dec)?),
        from_millis(row.try_get(5).map_err(dec)?),
        row.try_get(6).map_err(dec)?,
        row.try_get(7).map_err(dec)?,
        row.try_get(8).map_err(dec)?,
        from_millis(row.try_get(9).map_err(dec)?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guarded claim reads the running rows of the offered scopes by one probe each of the
    /// running index, never the job's running rows, nor each scope's history.
    #[actix_rt::test]
    async fn the_guard_reads_running_rows_by_scope() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let plans = r#"[["id", "tenant", "1", 0, "token"]]"#;
        // EXPLAIN QUERY PLAN rows: (id, parent, unused, detail).
        let plan = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            store.sql.claim_guard_rows
        )))
        .bind("job")
        .bind(plans)
        .fetch_all(store.pool())
        .await
        .expect("explain")
        .iter()
        .map(|row| row.get::<String, _>(3))
        .collect::<Vec<_>>()
        .join("\n");
        assert!(
            plan.contains(
                "USING INDEX cronlease_executions_running (job_name=? AND scope_kind=? AND scope_id=?)"
            ),
            "{plan}"
        );
    }
}
