//! [`PgStore`]: PostgreSQL, for several replicas sharing one table.
//!
//! - [`PgStore`]: the store; `connect`, `connect_with` or `from_pool`, then [`Store::migrate`].
//! - `sql`: the statements, one per [`Store`] method; batches travel as parallel arrays read
//!   with `UNNEST`, so a batch of any size is one statement.
//! - `migrate`: the schema, tracked in `cronlease_migrations` and applied under an advisory lock.
//! - `row`: decoding rows into [`Execution`].
//! - `error`: which SQLSTATE codes are transient.
//!
//! Times are `timestamptz` (lease stamps from `clock_timestamp()`, cut to milliseconds); ids and
//! tokens are `uuid`; `result` and `failures` are `jsonb`, with the failure history's times as
//! Unix-millisecond integers, as on every backend. Table names are unqualified: the connection's
//! `search_path` chooses the schema.

pub(crate) mod error;
mod migrate;
mod partition;
mod row;
mod sql;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::deadline::{Checkout, StoreDeadlines, millis};
use super::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, HistoryConversion,
    HistoryPartitions, Lease, ManualStart, MigrationStatus, PartitionDropped, PartitionKeep,
    PartitionOptions, PruneJobs, PruneSet, Renewal, RetryCandidate, Store, SuccessWrite, Swept,
    TickClock, db_error,
};
use crate::control::{
    Backfill, BackfillAdvance, ClaimGuard, GuardRow, JobDescription, OverlapPolicy, Pause,
    RegisteredJob, Runner, RunnerRegistration, SkipSpan, Trigger,
};
use crate::error::{Error, Result};
use crate::execution::{Execution, Status, capped_result, truncate_error_msg};
use crate::schedule::duration_ms;
use crate::scope::Scope;
use crate::store::registry;
use crate::store::rowmap::{corrupt, count, decode_into, found_at, parsed};

/// Connections in the pool [`PgStore::connect`] and [`PgStore::connect_with`] open.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a statement of a store built by [`PgStore::connect`] and its siblings waits for a
/// connection before failing with a transient "pool timed out" error (sqlx's default is 30 s).
/// While the server refuses connections, the pool keeps trying to connect for this long; the
/// runtime then backs off and retries, logging each failure.
pub const DEFAULT_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A [`Store`] on a PostgreSQL database, shared by any number of replicas.
///
/// ```no_run
/// # async fn demo() -> cronlease::Result<()> {
/// let store = cronlease::PgStore::connect("postgres://cronlease@db.internal/app").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    sql: Arc<Statements>,
    deadlines: StoreDeadlines,
}

/// The statements with the clock expression filled in.
#[derive(Debug)]
struct Statements {
    db_now: Arc<str>,
    retry_candidates: Arc<str>,
    claim: Arc<str>,
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
    pause_clear: Arc<str>,
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
    trigger_start: Arc<str>,
    backfill_create: Arc<str>,
    backfill_cancel: Arc<str>,
    backfill_advance: Arc<str>,
    rerun: Arc<str>,
    claim_guard_rows: Arc<str>,
    claim_guard_rows_locked: Arc<str>,
    claim_guard_cancel: Arc<str>,
    claim_guard_skip: Arc<str>,
    partition_state: Arc<str>,
    prune_default_partition: Arc<str>,
    partition_keepers: Arc<str>,
}

impl Statements {
    fn new(skew: TimeDelta) -> Self {
        let now = sql::NOW_EXPR.replace("{SKEW}", &skew.num_milliseconds().to_string());
        let fill = |s: &str| Arc::<str>::from(s.replace("{NOW}", &now));
        Statements {
            db_now: fill(sql::DB_NOW),
            retry_candidates: fill(sql::EXECUTION_RETRY_CANDIDATES),
            claim: fill(sql::EXECUTION_CLAIM),
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
            pause_clear: fill(sql::PAUSE_CLEAR),
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
            trigger_start: fill(sql::TRIGGER_START),
            backfill_create: fill(sql::BACKFILL_CREATE),
            backfill_cancel: fill(sql::BACKFILL_CANCEL),
            backfill_advance: fill(sql::BACKFILL_ADVANCE),
            rerun: fill(sql::EXECUTION_RERUN),
            claim_guard_rows: fill(sql::CLAIM_GUARD_ROWS),
            claim_guard_rows_locked: fill(sql::CLAIM_GUARD_ROWS_LOCKED),
            claim_guard_cancel: fill(sql::CLAIM_GUARD_CANCEL),
            claim_guard_skip: fill(sql::CLAIM_GUARD_SKIP),
            partition_state: fill(partition::PARTITION_STATE),
            prune_default_partition: fill(&sql::execution_prune_default_partition()),
            partition_keepers: fill(partition::PARTITION_KEEPERS),
        }
    }
}

impl PgStore {
    /// [`Store::execution_claim_guarded`] on one connection, in one transaction: the job's
    /// advisory lock, the rows, the cancellations, the claim, the skips.
    async fn claim_guarded_on(
        &self,
        conn: &mut sqlx::PgConnection,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        const OP: &str = "execution_claim";
        let fail = |e| db_error(OP, e);
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        sqlx::query(sql::CLAIM_GUARD_LOCK)
            .bind(request.job)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let plans = &request.plans;
        let read = if guard.overlap == OverlapPolicy::CancelOther {
            &self.sql.claim_guard_rows_locked
        } else {
            &self.sql.claim_guard_rows
        };
        let rows = sqlx::query(q(read))
            .bind(request.job)
            .bind(
                plans
                    .iter()
                    .map(|p| p.scope.kind.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|p| p.scope.id.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|p| p.plan_time)
                    .collect::<Vec<DateTime<Utc>>>(),
            )
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
            let id: Uuid = row.try_get("id").map_err(dec)?;
            let status: String = row.try_get("status").map_err(dec)?;
            Ok(GuardRow {
                id,
                token: row.try_get("lease_token").map_err(dec)?,
                scope: Scope::new(
                    row.try_get::<String, _>("scope_kind").map_err(dec)?,
                    row.try_get::<String, _>("scope_id").map_err(dec)?,
                ),
                plan_time: row.try_get("plan_time").map_err(dec)?,
                status: parsed(&id.to_string(), &status)?,
                started_at: row.try_get("started_at").map_err(dec)?,
                stale: row
                    .try_get::<Option<bool>, _>("stale")
                    .map_err(dec)?
                    .unwrap_or(false),
            })
        }));
        let plan = super::guard::plan(request, guard, &rows, job_running);
        if !plan.cancel.is_empty() {
            sqlx::query(q(&self.sql.claim_guard_cancel))
                .bind(plan.cancel.iter().map(|c| c.0).collect::<Vec<Uuid>>())
                .bind(plan.cancel.iter().map(|c| c.1).collect::<Vec<Uuid>>())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        let claimed = if plan.claim.plans.is_empty() {
            Vec::new()
        } else {
            self.claim_on(&mut tx, &plan.claim).await?
        };
        if !plan.skip.is_empty() {
            let skip = &plan.skip;
            sqlx::query(q(&self.sql.claim_guard_skip))
                .bind(request.job)
                .bind(i64::from(request.max_attempts))
                .bind(request.runner_id)
                .bind(skip.iter().map(|p| p.id).collect::<Vec<Uuid>>())
                .bind(
                    skip.iter()
                        .map(|p| p.scope.kind.as_str())
                        .collect::<Vec<&str>>(),
                )
                .bind(
                    skip.iter()
                        .map(|p| p.scope.id.as_str())
                        .collect::<Vec<&str>>(),
                )
                .bind(
                    skip.iter()
                        .map(|p| p.plan_time)
                        .collect::<Vec<DateTime<Utc>>>(),
                )
                .bind(skip.iter().map(|p| p.token).collect::<Vec<Uuid>>())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(plan.report(request, claimed))
    }

    /// The claim statement on `conn` (a pooled connection or a transaction).
    async fn claim_on(
        &self,
        conn: &mut sqlx::PgConnection,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<Claimed>> {
        let plans = &request.plans;
        let result = sqlx::query(q(&self.sql.claim))
            .bind(request.job)
            .bind(i64::from(request.max_attempts))
            .bind(request.runner_id)
            .bind(duration_ms(request.stale_timeout))
            .bind(plans.iter().map(|p| p.id).collect::<Vec<Uuid>>())
            .bind(
                plans
                    .iter()
                    .map(|p| p.scope.kind.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|p| p.scope.id.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|p| p.plan_time)
                    .collect::<Vec<DateTime<Utc>>>(),
            )
            .bind(plans.iter().map(|p| p.token).collect::<Vec<Uuid>>())
            .bind(request.allow_stale_reentry)
            .bind(request.steal_not_after)
            .fetch_all(&mut *conn)
            .await;
        let rows = result.map_err(|e| db_error("execution_claim", e))?;
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
                    row.try_get::<String, _>("scope_kind").map_err(dec)?,
                    row.try_get::<String, _>("scope_id").map_err(dec)?,
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

    /// Connects with a URL such as `postgres://user:password@host/database` (a pool of
    /// [`DEFAULT_MAX_CONNECTIONS`]). The URL is never logged: it may hold a password.
    ///
    /// Fails with [`Error::InvalidConfig`] for a URL that is not `postgres://` or
    /// `postgresql://` (a `mysql://` or `sqlite:` URL is refused, not tried elsewhere), and with
    /// [`Error::Connect`] naming `host:port` and the database, never the password, when the
    /// server cannot be reached or refuses the session.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(parse_url(url, "PgStore::connect")?).await
    }

    /// Connects with explicit options (a pool of [`DEFAULT_MAX_CONNECTIONS`]). Set the schema
    /// with `options.options([("search_path", "my_schema")])`. A failure is an
    /// [`Error::Connect`] naming `host:port` and the database.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        Self::connect_with_deadlines(options, StoreDeadlines::default()).await
    }

    /// Like [`PgStore::connect_with`], with these deadlines: every connection of the pool gets
    /// `statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout` and the
    /// server's TCP keepalive from them, and the scheduler bounds every call by
    /// [`StoreDeadlines::call`]. Fails with [`Error::InvalidConfig`] for invalid deadlines.
    pub async fn connect_with_deadlines(
        options: PgConnectOptions,
        deadlines: StoreDeadlines,
    ) -> Result<Self> {
        deadlines.validate()?;
        let bounded = server_timeouts(options.clone(), &deadlines);
        match pool_options().connect_with(bounded).await {
            Ok(pool) => Ok(Self::from_pool(pool).keep_deadlines(deadlines)),
            Err(e) if error::is_connect_failure(&e) => {
                Err(explain_connect_failure(&options, e).await)
            }
            Err(e) => Err(db_error("connect", e)),
        }
    }

    /// Like [`PgStore::connect`], without connecting yet: the first statement connects. Use it
    /// with [`SchedulerBuilder::wait_for_database`](crate::SchedulerBuilder::wait_for_database)
    /// so a service can start before its database is reachable. The URL is checked the same way.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        Ok(Self::connect_lazy_with(parse_url(
            url,
            "PgStore::connect_lazy",
        )?))
    }

    /// Like [`PgStore::connect_with`], without connecting yet: the first statement connects.
    pub fn connect_lazy_with(options: PgConnectOptions) -> Self {
        Self::connect_lazy_with_deadlines(options, StoreDeadlines::default())
            .expect("the default deadlines are valid")
    }

    /// Like [`PgStore::connect_lazy_with`], with these deadlines (see
    /// [`PgStore::connect_with_deadlines`]).
    pub fn connect_lazy_with_deadlines(
        options: PgConnectOptions,
        deadlines: StoreDeadlines,
    ) -> Result<Self> {
        deadlines.validate()?;
        let pool = pool_options().connect_lazy_with(server_timeouts(options, &deadlines));
        Ok(Self::from_pool(pool).keep_deadlines(deadlines))
    }

    /// Uses an existing pool. The scheduler bounds every call by the default
    /// [`StoreDeadlines::call`]; the server-side timeouts are the pool's own (set them in its
    /// connect options, as [`PgStore::connect_with_deadlines`] does, if the pool is not shared
    /// with code that needs longer statements).
    pub fn from_pool(pool: PgPool) -> Self {
        PgStore {
            pool,
            sql: Arc::new(Statements::new(TimeDelta::zero())),
            deadlines: StoreDeadlines::default(),
        }
    }

    /// One batch of a prune statement (the whole history's, or DEFAULT's alone): both take
    /// the same parameters.
    async fn prune_with(
        &self,
        sql: &Arc<str>,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "execution_prune").await?;
        let result = sqlx::query(q(sql))
            .bind(set == PruneSet::Dead)
            .bind(duration_ms(older_than))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(jobs.only())
            .bind(jobs.except())
            .execute(&mut *c)
            .await;
        let done = c.done(result)?;
        Ok(done.rows_affected())
    }

    fn keep_deadlines(mut self, deadlines: StoreDeadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Shifts the database clock as seen through this store by `skew`: every lease stamp, plan
    /// decision and retry time it computes moves with it. For tests and simulations that need a
    /// runner to live in the future (to see a lease go stale without waiting).
    pub fn with_clock_skew(mut self, skew: TimeDelta) -> Self {
        self.sql = Arc::new(Statements::new(skew));
        self
    }

    /// Converts the execution history into a time-partitioned table (one partition per UTC day
    /// on `plan_time`, plus DEFAULT), in one transaction under an `ACCESS EXCLUSIVE` lock: runners
    /// wait while the rows are copied. Every row is kept; days more than `options.days_back`
    /// before today go to DEFAULT. From then on the retention service creates day partitions
    /// ahead and drops past ones whole (see `docs/operations.md`). Run
    /// [`migrate`](Store::migrate) first. Partitioned already: changes nothing and reports
    /// [`HistoryConversion::already_partitioned`].
    pub async fn partition_history(&self, options: &PartitionOptions) -> Result<HistoryConversion> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error("history_partition", e))?;
        partition::convert(&mut conn, &self.sql.db_now, options).await
    }

    /// Turns a time-partitioned history back into one plain table, every row kept, in one
    /// transaction under an `ACCESS EXCLUSIVE` lock. Returns the rows copied, or `None` when the
    /// history is plain already (nothing changed).
    pub async fn unpartition_history(&self) -> Result<Option<u64>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error("history_unpartition", e))?;
        partition::revert(&mut conn).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// How long [`explain_connect_failure`] waits for its one connection attempt.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Options from a URL that must be a PostgreSQL one; errors name the scheme, never the URL.
fn parse_url(url: &str, what: &str) -> Result<PgConnectOptions> {
    error::check_url(url, what)?;
    PgConnectOptions::from_str(url).map_err(|e| {
        Error::InvalidConfig(format!(
            "{what} cannot read the PostgreSQL URL ({e}): write it as `postgres://user:password@host:5432/database`"
        ))
    })
}

/// An [`Error::Connect`] for a failed connection to `options`. A pool that timed out keeps
/// retrying refused connections silently, so one direct attempt (at most [`PROBE_TIMEOUT`])
/// finds the cause to report, e.g. "connection refused".
async fn explain_connect_failure(options: &PgConnectOptions, error: sqlx::Error) -> Error {
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

/// `options` with the server-side timeouts of `deadlines` set for every session.
fn server_timeouts(options: PgConnectOptions, deadlines: &StoreDeadlines) -> PgConnectOptions {
    let mut settings = vec![
        ("statement_timeout", millis(deadlines.statement).to_string()),
        ("lock_timeout", millis(deadlines.lock).to_string()),
        (
            "idle_in_transaction_session_timeout",
            millis(deadlines.idle_in_transaction).to_string(),
        ),
    ];
    if let Some(idle) = deadlines.server_keepalive {
        let idle = idle.as_secs().max(3);
        settings.push(("tcp_keepalives_idle", idle.to_string()));
        settings.push(("tcp_keepalives_interval", (idle / 3).to_string()));
        settings.push(("tcp_keepalives_count", "3".to_owned()));
    }
    options.options(settings)
}

/// The pool settings of the `connect*` constructors.
fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(DEFAULT_MAX_CONNECTIONS)
        .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(sql.clone())
}

fn ids(rows: Vec<PgRow>) -> Result<Vec<Uuid>> {
    rows.iter()
        .map(|row| row.try_get(0).map_err(|e| corrupt("?", e.to_string())))
        .collect()
}

/// PostgreSQL `text` cannot hold NUL, which SQLite stores: a terminal write must not fail on it
/// (the row would stay RUNNING and run again), so NUL becomes U+FFFD, still within the limit.
fn pg_message(message: &str) -> String {
    if message.contains('\0') {
        truncate_error_msg(&message.replace('\0', "\u{FFFD}")).to_owned()
    } else {
        message.to_owned()
    }
}

/// `jsonb` rejects the escape `\u0000`, which SQLite's JSON text keeps: NUL characters in the
/// result's strings become U+FFFD (re-capped at 16 KiB), so the success is still recorded.
fn pg_result(text: &str) -> String {
    if !text.contains("\\u0000") {
        return text.to_owned();
    }
    fn scrub(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    scrub(&mut item);
                    map.insert(key.replace('\0', "\u{FFFD}"), item);
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut value) => {
            scrub(&mut value);
            capped_result(&value)
        }
        Err(_) => text.to_owned(),
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let decode = |row: &sqlx::postgres::PgRow| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            Ok((
                Scope::new(
                    row.try_get::<String, _>(0).map_err(dec)?,
                    row.try_get::<String, _>(1).map_err(dec)?,
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
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_plans_exist").await?;
        let result = sqlx::query_scalar::<_, i64>(sql::EXECUTION_PLANS_EXIST)
            .bind(job)
            .bind(plans.iter().map(|p| p.0.kind.as_str()).collect::<Vec<_>>())
            .bind(plans.iter().map(|p| p.0.id.as_str()).collect::<Vec<_>>())
            .bind(plans.iter().map(|p| p.1).collect::<Vec<_>>())
            .fetch_all(&mut *c)
            .await;
        Ok(found_at(plans.len(), c.done(result)?, 1))
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
                    row.try_get::<String, _>(0).map_err(dec)?,
                    row.try_get::<String, _>(1).map_err(dec)?,
                ),
                plan_time: row.try_get(2).map_err(dec)?,
                next_retry_at: row.try_get(3).map_err(dec)?,
                due: row.try_get(4).map_err(dec)?,
                replayed: row.try_get(5).map_err(dec)?,
            })
        })))
    }

    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        if request.plans.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_claim").await?;
        let claimed = self.claim_on(&mut c, request).await;
        c.done(Ok(()))?;
        claimed
    }

    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        if request.plans.is_empty() {
            return Ok(GuardedClaim::default());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_claim").await?;
        let outcome = self.claim_guarded_on(&mut c, request, guard).await;
        c.done(Ok(()))?;
        outcome
    }

    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>> {
        if renewals.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_heartbeat").await?;
        let result = sqlx::query(q(&self.sql.heartbeat))
            .bind(renewals.iter().map(|r| r.lease.id).collect::<Vec<Uuid>>())
            .bind(
                renewals
                    .iter()
                    .map(|r| r.lease.token)
                    .collect::<Vec<Uuid>>(),
            )
            .bind(
                renewals
                    .iter()
                    .map(|r| duration_ms(r.stale_timeout))
                    .collect::<Vec<i64>>(),
            )
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        ids(rows)
    }

    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_finish_success").await?;
        let result = sqlx::query(q(&self.sql.finish_success))
            .bind(writes.iter().map(|w| w.lease.id).collect::<Vec<Uuid>>())
            .bind(writes.iter().map(|w| w.lease.token).collect::<Vec<Uuid>>())
            .bind(writes.iter().map(|w| w.duration_ms).collect::<Vec<i64>>())
            .bind(writes.iter().map(|w| w.rows_affected).collect::<Vec<i64>>())
            .bind(
                writes
                    .iter()
                    .map(|w| pg_result(&w.result))
                    .collect::<Vec<String>>(),
            )
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        ids(rows)
    }

    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Checkout::acquire(&self.pool, "execution_finish_failure").await?;
        let result = sqlx::query(q(&self.sql.finish_failure))
            .bind(writes.iter().map(|w| w.lease.id).collect::<Vec<Uuid>>())
            .bind(writes.iter().map(|w| w.lease.token).collect::<Vec<Uuid>>())
            .bind(
                writes
                    .iter()
                    .map(|w| w.status.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| pg_message(&w.code))
                    .collect::<Vec<String>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| pg_message(&w.message))
                    .collect::<Vec<String>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| w.retry_in.map(duration_ms))
                    .collect::<Vec<Option<i64>>>(),
            )
            .bind(
                writes
                    .iter()
                    .map(|w| w.extend_budget)
                    .collect::<Vec<bool>>(),
            )
            .bind(writes.iter().map(|w| w.duration_ms).collect::<Vec<i64>>())
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        ids(rows)
    }

    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        let mut c = Checkout::acquire(&self.pool, "execution_sweep_stale").await?;
        let result = sqlx::query(q(&self.sql.sweep_stale))
            .bind(job)
            .bind(allow_reentry)
            .bind(not_after)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            let dec = |e: sqlx::Error| corrupt("?", e.to_string());
            let id: Uuid = row.try_get(0).map_err(dec)?;
            let status: String = row.try_get(1).map_err(dec)?;
            Ok(Swept {
                id,
                status: parsed(&id.to_string(), &status)?,
            })
        })))
    }

    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>> {
        let mut c = Checkout::acquire(&self.pool, "execution_supersede").await?;
        let result = sqlx::query(q(&self.sql.supersede))
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(|row| {
            row.try_get::<Uuid, _>(0)
                .map_err(|e| corrupt("?", e.to_string()))
        })))
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
        let mut c = Checkout::acquire(&self.pool, "execution_list").await?;
        let result = sqlx::query(sql::EXECUTION_LIST)
            .bind(filter.job.as_deref())
            .bind(filter.scope.as_ref().map(|s| s.kind.as_str()))
            .bind(filter.scope.as_ref().map(|s| s.id.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.plan_from)
            .bind(filter.plan_before)
            .bind(filter.after.map(|c| c.plan_time))
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
        let mut c = Checkout::acquire(&self.pool, "execution_latest_per_scope").await?;
        let (kind, id) = super::page_start(after);
        let result = sqlx::query(sql::EXECUTION_LATEST_PER_SCOPE)
            .bind(job)
            .bind(kind)
            .bind(id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        let mut c = Checkout::acquire(&self.pool, "execution_count_by_status").await?;
        let result = sqlx::query(sql::EXECUTION_COUNT_BY_STATUS)
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
        let result = sqlx::query(q(&self.sql.replay))
            .bind(ids)
            .bind(i32::try_from(extra_attempts).unwrap_or(i32::MAX))
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        Ok(super::skip_corrupt(rows.iter().map(row::execution)))
    }

    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        self.prune_with(&self.sql.prune, set, jobs, older_than, limit)
            .await
    }

    async fn execution_prune_default_partition(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        self.prune_with(
            &self.sql.prune_default_partition,
            set,
            jobs,
            older_than,
            limit,
        )
        .await
    }

    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: std::time::Duration,
    ) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "execution_count_prunable").await?;
        let result = sqlx::query_scalar::<_, i64>(q(&self.sql.count_prunable))
            .bind(set == PruneSet::Dead)
            .bind(duration_ms(older_than))
            .bind(jobs.only())
            .bind(jobs.except())
            .fetch_one(&mut *c)
            .await;
        Ok(c.done(result)?.max(0) as u64)
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
                Ok((row.try_get(0).map_err(dec)?, row.try_get(1).map_err(dec)?))
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
                Ok((row.try_get(0).map_err(dec)?, row.try_get(1).map_err(dec)?))
            })
            .collect()
    }

    async fn tick_clock(&self, job: &str) -> Result<TickClock> {
        let mut c = Checkout::acquire(&self.pool, "tick_clock").await?;
        let result = sqlx::query(q(&self.sql.tick_clock))
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
        let mut c = Checkout::acquire(&self.pool, "pause_set").await?;
        let result = sqlx::query_scalar(q(&self.sql.pause_set))
            .bind(&pause.job)
            .bind(kind)
            .bind(id)
            .bind(&pause.paused_by)
            .bind(&pause.reason)
            .fetch_one(&mut *c)
            .await;
        let paused_at: DateTime<Utc> = c.done(result)?;
        let mut stored = pause.clone();
        stored.paused_at = paused_at;
        Ok(stored)
    }

    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        let (kind, id) = super::pause_key(scope);
        let mut c = Checkout::acquire(&self.pool, "pause_clear").await?;
        let result = sqlx::query(q(&self.sql.pause_clear))
            .bind(job)
            .bind(kind)
            .bind(id)
            .execute(&mut *c)
            .await;
        let done = c.done(result)?;
        Ok(done.rows_affected() > 0)
    }

    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        let mut c = Checkout::acquire(&self.pool, "pause_list").await?;
        let result = sqlx::query(sql::PAUSE_LIST)
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        rows.iter()
            .map(|row| {
                let dec = |e: sqlx::Error| corrupt("?", e.to_string());
                let paused_at: DateTime<Utc> = row.try_get(5).map_err(dec)?;
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
        let mut c = Checkout::acquire(&self.pool, "trigger_create").await?;
        let result = sqlx::query(q(&self.sql.trigger_create))
            .bind(trigger.id)
            .bind(&trigger.job)
            .bind(kind)
            .bind(id)
            .bind(&trigger.idempotency_key)
            .bind(&trigger.requested_by)
            .fetch_one(&mut *c)
            .await;
        row::trigger(&c.done(result)?)
    }

    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>> {
        let mut c = Checkout::acquire(&self.pool, "trigger_list").await?;
        let result = sqlx::query(AssertSqlSafe(sql::trigger_list()))
            .bind(job)
            .bind(pending_only)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(row::trigger).collect()
    }

    async fn trigger_start(&self, start: &ManualStart<'_>) -> Result<Vec<Claimed>> {
        let plans = &start.plans;
        let mut c = Checkout::acquire(&self.pool, "trigger_start").await?;
        let result = sqlx::query(q(&self.sql.trigger_start))
            .bind(start.job)
            .bind(i64::from(start.max_attempts))
            .bind(start.runner_id)
            .bind(duration_ms(start.stale_timeout))
            .bind(plans.iter().map(|m| m.plan.id).collect::<Vec<Uuid>>())
            .bind(
                plans
                    .iter()
                    .map(|m| m.plan.scope.kind.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|m| m.plan.scope.id.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|m| m.plan.plan_time)
                    .collect::<Vec<DateTime<Utc>>>(),
            )
            .bind(plans.iter().map(|m| m.plan.token).collect::<Vec<Uuid>>())
            .bind(plans.iter().map(|m| m.trigger).collect::<Vec<Uuid>>())
            .bind(i64::try_from(start.limit).unwrap_or(i64::MAX))
            .bind(&start.started)
            .fetch_all(&mut *c)
            .await;
        let rows = c.done(result)?;
        let dec = |e: sqlx::Error| corrupt("?", e.to_string());
        let mut held = std::collections::HashMap::new();
        for row in &rows {
            let id: Uuid = row.try_get(0).map_err(dec)?;
            let started_at: DateTime<Utc> = row.try_get(1).map_err(dec)?;
            held.insert(id, started_at);
        }
        Ok(super::manual_claims(start, |id| held.get(&id).copied()))
    }

    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill> {
        let mut c = Checkout::acquire(&self.pool, "backfill_create").await?;
        let result = sqlx::query_scalar(q(&self.sql.backfill_create))
            .bind(backfill.id)
            .bind(&backfill.job)
            .bind(super::scopes_json(backfill.scopes.as_ref()))
            .bind(backfill.from)
            .bind(backfill.to)
            .bind(backfill.rerun)
            .bind(&backfill.requested_by)
            .fetch_one(&mut *c)
            .await;
        let created_at: DateTime<Utc> = c.done(result)?;
        let mut stored = backfill.clone();
        stored.created_at = created_at;
        stored.updated_at = created_at;
        Ok(stored)
    }

    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>> {
        let mut c = Checkout::acquire(&self.pool, "backfill_get").await?;
        let result = sqlx::query(AssertSqlSafe(sql::backfill_get()))
            .bind(id)
            .fetch_optional(&mut *c)
            .await;
        c.done(result)?.as_ref().map(row::backfill).transpose()
    }

    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>> {
        let mut c = Checkout::acquire(&self.pool, "backfill_list").await?;
        let result = sqlx::query(AssertSqlSafe(sql::backfill_list()))
            .bind(job)
            .bind(active_only)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(row::backfill).collect()
    }

    async fn backfill_cancel(&self, id: Uuid) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "backfill_cancel").await?;
        let result = sqlx::query(q(&self.sql.backfill_cancel))
            .bind(id)
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected() > 0)
    }

    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool> {
        let to = advance.cursor.as_ref();
        let was = advance.expected.as_ref();
        let mut c = Checkout::acquire(&self.pool, "backfill_advance").await?;
        let result = sqlx::query(q(&self.sql.backfill_advance))
            .bind(advance.id)
            .bind(to.map(|c| c.plan_time))
            .bind(to.map(|c| c.scope.kind.as_str()))
            .bind(to.map(|c| c.scope.id.as_str()))
            .bind(i64::try_from(advance.handed_out).unwrap_or(i64::MAX))
            .bind(i64::try_from(advance.total).unwrap_or(i64::MAX))
            .bind(advance.finished)
            .bind(was.map(|c| c.plan_time))
            .bind(was.map(|c| c.scope.kind.as_str()))
            .bind(was.map(|c| c.scope.id.as_str()))
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected() > 0)
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
        let mut c = Checkout::acquire(&self.pool, "execution_rerun").await?;
        let result = sqlx::query(q(&self.sql.rerun))
            .bind(job)
            .bind(
                plans
                    .iter()
                    .map(|(s, _)| s.kind.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|(s, _)| s.id.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(
                plans
                    .iter()
                    .map(|(_, t)| *t)
                    .collect::<Vec<DateTime<Utc>>>(),
            )
            .bind(finished_before)
            .bind(i32::try_from(extra_attempts).unwrap_or(i32::MAX))
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected())
    }

    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        let mut columns = SkipColumns::default();
        for s in spans {
            let (kind, id) = super::pause_key(s.scope.as_ref());
            columns.job.push(s.job.as_str());
            columns.kind.push(kind);
            columns.id.push(id);
            columns.reason.push(s.reason.as_str());
            columns.from.push(s.from);
            columns.to.push(s.to);
            columns.plans.push(s.plans.map(|n| n as i64));
            columns.scopes.push(s.scopes as i64);
            columns.detail.push(s.detail.as_str());
        }
        let mut c = Checkout::acquire(&self.pool, "skip_record").await?;
        let result = sqlx::query(q(&self.sql.skip_record))
            .bind(&columns.job)
            .bind(&columns.kind)
            .bind(&columns.id)
            .bind(&columns.reason)
            .bind(&columns.from)
            .bind(&columns.to)
            .bind(&columns.plans)
            .bind(&columns.scopes)
            .bind(&columns.detail)
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
            .bind(plan_time)
            .bind(due_at)
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(skip_row).collect()
    }

    async fn skip_prune(&self, older_than: std::time::Duration, limit: usize) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "skip_prune").await?;
        let result = sqlx::query(q(&self.sql.skip_prune))
            .bind(duration_ms(older_than))
            .bind(limit as i64)
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected())
    }

    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        let mut c = Checkout::acquire(&self.pool, "skip_list").await?;
        let result = sqlx::query(sql::SKIP_LIST)
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
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *c).await?;
            sqlx::query(q(&self.sql.runner_register))
                .bind(&runner.id)
                .bind(&runner.host)
                .bind(i64::from(runner.pid))
                .bind(&runner.version)
                .bind(duration_ms(runner.refresh_interval))
                .bind(runner.starting)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql::REGISTERED_JOBS_CLEAR)
                .bind(&runner.id)
                .execute(&mut *tx)
                .await?;
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
                    .await?;
            }
            tx.commit().await
        }
        .await;
        c.done(result)
    }

    async fn runner_seen(&self, runner_id: &str) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "runner_seen").await?;
        let result = sqlx::query(q(&self.sql.runner_seen))
            .bind(runner_id)
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected() > 0)
    }

    async fn runner_stop(&self, runner_id: &str) -> Result<bool> {
        let mut c = Checkout::acquire(&self.pool, "runner_stop").await?;
        let result = sqlx::query(q(&self.sql.runner_stop))
            .bind(runner_id)
            .execute(&mut *c)
            .await;
        Ok(c.done(result)?.rows_affected() > 0)
    }

    async fn runner_list(&self) -> Result<Vec<Runner>> {
        let mut c = Checkout::acquire(&self.pool, "runner_list").await?;
        let result = sqlx::query(q(&self.sql.runner_list))
            .fetch_all(&mut *c)
            .await;
        c.done(result)?.iter().map(registry::runner).collect()
    }

    async fn runner_prune(&self, older_than: std::time::Duration) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "runner_prune").await?;
        let result = sqlx::query_scalar::<_, i64>(q(&self.sql.runner_prune))
            .bind(duration_ms(older_than))
            .fetch_one(&mut *c)
            .await;
        Ok(u64::try_from(c.done(result)?).unwrap_or(0))
    }

    async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>> {
        let mut c = Checkout::acquire(&self.pool, "registered_jobs").await?;
        let result = sqlx::query(q(&self.sql.registered_jobs))
            .bind(job)
            .fetch_all(&mut *c)
            .await;
        Ok(registry::registered_jobs(c.done(result)?.iter()))
    }

    async fn history_partitions(&self) -> Result<Option<HistoryPartitions>> {
        let mut c = Checkout::acquire(&self.pool, "history_partitions").await?;
        let state = partition::state(&mut c, &self.sql.partition_state).await;
        c.done(Ok(()))?;
        state
    }

    async fn history_partitions_create(&self, days: &[NaiveDate]) -> Result<u64> {
        let mut c = Checkout::acquire(&self.pool, "history_partitions_create").await?;
        let created = partition::create(&mut c, days).await;
        c.done(Ok(()))?;
        created
    }

    async fn history_partition_drop(
        &self,
        day: NaiveDate,
        keep: &PartitionKeep,
    ) -> Result<Option<PartitionDropped>> {
        let mut c = Checkout::acquire(&self.pool, "history_partition_drop").await?;
        let dropped = partition::drop_day(&mut c, &self.sql.partition_keepers, day, keep).await;
        c.done(Ok(()))?;
        dropped
    }
}

impl registry::Columns for PgRow {
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
        self.try_get(i)
    }
    fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>> {
        self.try_get(i)
    }
}

/// The columns of a ledger batch, one array each (`UNNEST` zips them).
#[derive(Default)]
struct SkipColumns<'a> {
    job: Vec<&'a str>,
    kind: Vec<&'a str>,
    id: Vec<&'a str>,
    reason: Vec<&'static str>,
    from: Vec<DateTime<Utc>>,
    to: Vec<DateTime<Utc>>,
    plans: Vec<Option<i64>>,
    scopes: Vec<i64>,
    detail: Vec<&'a str>,
}

/// One ledger row, in the column order of `SKIP_FIND` and `SKIP_LIST`.
fn skip_row(row: &PgRow) -> Result<SkipSpan> {
    let dec = |e: sqlx::Error| corrupt("?", e.to_string());
    super::skip_span(
        row.try_get(0).map_err(dec)?,
        row.try_get(1).map_err(dec)?,
        row.try_get(2).map_err(dec)?,
        row.try_get(3).map_err(dec)?,
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
    use crate::execution::MAX_ERROR_MSG_BYTES;

    #[test]
    fn clock_skew_is_filled_into_every_statement() {
        let sql = Statements::new(TimeDelta::milliseconds(-3_600_000));
        for statement in [
            &sql.db_now,
            &sql.retry_candidates,
            &sql.claim,
            &sql.heartbeat,
            &sql.finish_success,
            &sql.finish_failure,
            &sql.sweep_stale,
            &sql.replay,
            &sql.prune,
            &sql.count_stale,
        ] {
            assert!(!statement.contains("{NOW}"), "{statement}");
            assert!(!statement.contains("{SKEW}"), "{statement}");
            assert!(statement.contains("clock_timestamp()"), "{statement}");
            assert!(statement.contains("interval '-3600000 milliseconds'"));
            assert!(!statement.contains("now()"), "{statement}");
        }
    }

    #[test]
    fn nul_is_replaced_where_postgres_refuses_it() {
        assert_eq!(pg_message("plain"), "plain");
        assert_eq!(pg_message("a\0b"), "a\u{FFFD}b");
        let long = "\0".repeat(MAX_ERROR_MSG_BYTES);
        assert!(pg_message(&long).len() <= MAX_ERROR_MSG_BYTES);

        assert_eq!(pg_result(r#"{"n":1}"#), r#"{"n":1}"#);
        let scrubbed: serde_json::Value =
            serde_json::from_str(&pg_result(r#"{"a\u0000":["x\u0000y"]}"#)).unwrap();
        assert_eq!(scrubbed, serde_json::json!({ "a\u{FFFD}": ["x\u{FFFD}y"] }));
    }

    /// A fresh schema on the server named by `CRONLEASE_TEST_POSTGRES_URL` (`None`: unset), with
    /// connect options that use it and a pool to drop it with.
    struct UnitSchema {
        admin: PgPool,
        schema: String,
        options: PgConnectOptions,
    }

    impl UnitSchema {
        async fn create() -> Option<Self> {
            let url = std::env::var("CRONLEASE_TEST_POSTGRES_URL").ok()?;
            let schema = format!("cronlease_unit_{}", Uuid::new_v4().simple());
            let admin = PgPool::connect(&url).await.expect("connect");
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .expect("create schema");
            let options = PgConnectOptions::from_str(&url)
                .expect("url")
                .options([("search_path", schema.as_str())]);
            Some(UnitSchema {
                admin,
                schema,
                options,
            })
        }
    }

    /// Against the server named by `CRONLEASE_TEST_POSTGRES_URL` (skipped when unset): four
    /// replicas migrating at once apply each migration once, and a newer schema is refused.
    #[tokio::test]
    async fn concurrent_migrations_apply_once_and_newer_schemas_are_refused() {
        let Some(UnitSchema {
            admin,
            schema,
            options,
        }) = UnitSchema::create().await
        else {
            return;
        };
        let replicas = futures_util::future::join_all((0..4).map(|_| {
            let options = options.clone();
            async move {
                let store = PgStore::connect_with(options).await?;
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
        // NUL, which PostgreSQL text and jsonb refuse, does not lose a terminal write.
        let plan = crate::store::PlanClaim::new(Scope::global(), Utc::now());
        let claim = |plan: crate::store::PlanClaim| {
            let store = store.clone();
            async move {
                let request = ClaimRequest {
                    job: "nul",
                    max_attempts: 3,
                    runner_id: "r",
                    stale_timeout: std::time::Duration::from_secs(60),
                    allow_stale_reentry: true,
                    steal_not_after: None,
                    plans: vec![plan],
                };
                store
                    .execution_claim(&request)
                    .await
                    .expect("claim")
                    .remove(0)
            }
        };
        let first = claim(plan.clone()).await;
        let failed = store
            .execution_finish_failure(&[FailureWrite {
                lease: first.lease,
                status: Status::Failed,
                code: "handler_error".into(),
                message: "bad\0byte".into(),
                retry_in: Some(std::time::Duration::ZERO),
                extend_budget: false,
                duration_ms: 1,
            }])
            .await
            .expect("failure with NUL");
        assert_eq!(failed, vec![first.lease.id]);
        let second = claim(crate::store::PlanClaim::new(plan.scope, plan.plan_time)).await;
        let done = store
            .execution_finish_success(&[SuccessWrite {
                lease: second.lease,
                duration_ms: 1,
                rows_affected: 1,
                result: serde_json::json!({ "s": "a\0b" }).to_string(),
            }])
            .await
            .expect("success with NUL");
        assert_eq!(done, vec![first.lease.id]);
        let row = store.execution_get(first.lease.id).await.unwrap().unwrap();
        assert_eq!(row.failures[0].message, "bad\u{FFFD}byte");
        assert_eq!(row.result, serde_json::json!({ "s": "a\u{FFFD}b" }));
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
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&admin)
            .await
            .expect("drop schema");
    }

    /// Against the server named by `CRONLEASE_TEST_POSTGRES_URL` (skipped when unset): with
    /// statistics taken while nothing ran (the partial stale index estimated at one row), then
    /// 10,000 running rows, the statements that find rows by id probe the primary key instead of
    /// scanning the whole partial index once per row (12 s for a heartbeat of 2,000 leases).
    #[tokio::test]
    async fn plans_keep_to_the_primary_key_after_analyze() {
        let Some(UnitSchema {
            admin,
            schema,
            options,
        }) = UnitSchema::create().await
        else {
            return;
        };
        let store = PgStore::connect_with(options).await.expect("connect");
        store.migrate().await.expect("migrate");
        let insert = |status: &'static str, from: i64, n: i64| {
            let sql = format!(
                "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, runner_id, lease_token, stale_after, next_retry_at,
                   finished_at, created_at, updated_at)
                 SELECT gen_random_uuid(), 'job-' || (i % 4), 'tenant', i::text,
                   timestamptz '2026-01-01' + i * interval '1 minute', '{status}', 1, 3, 'r',
                   gen_random_uuid(), now() + interval '1 hour',
                   CASE WHEN '{status}' = 'FAILED' THEN now() END,
                   CASE WHEN '{status}' <> 'RUNNING' THEN now() END, now(), now()
                 FROM generate_series({from}, {}) AS i",
                from + n - 1
            );
            let pool = store.pool().clone();
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("insert");
            }
        };
        insert("SUCCESS", 0, 5_000).await;
        sqlx::query("ANALYZE cronlease_executions")
            .execute(store.pool())
            .await
            .expect("analyze");
        insert("RUNNING", 5_000, 10_000).await;
        insert("FAILED", 15_000, 10_000).await;
        let running: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT id, lease_token FROM cronlease_executions WHERE status = 'RUNNING' LIMIT 2000",
        )
        .fetch_all(store.pool())
        .await
        .expect("running rows");
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = running.into_iter().unzip();
        let stale_ms = vec![60_000i64; ids.len()];
        let explain = |sql: &Arc<str>| AssertSqlSafe(format!("EXPLAIN {sql}"));
        let plan = |rows: Vec<String>| rows.join("\n");
        let heartbeat = sqlx::query_scalar(explain(&store.sql.heartbeat))
            .bind(&ids)
            .bind(&tokens)
            .bind(&stale_ms)
            .fetch_all(store.pool())
            .await
            .map(plan)
            .expect("explain heartbeat");
        let cancel = sqlx::query_scalar(explain(&store.sql.claim_guard_cancel))
            .bind(&ids)
            .bind(&tokens)
            .fetch_all(store.pool())
            .await
            .map(plan)
            .expect("explain cancel");
        for (name, plan) in [("heartbeat", heartbeat), ("cancel", cancel)] {
            assert!(
                !plan.contains("cronlease_executions_stale"),
                "{name} scans the partial stale index:\n{plan}"
            );
        }
        // A guarded claim of 2,000 plans reads the running rows of the offered scopes only: it
        // probes the running index by scope, never scans the job's 2,500 running rows.
        let offered: Vec<String> = (5_001..7_001)
            .map(|i: i64| (i * 4 + 1).to_string())
            .collect();
        let guard_rows = sqlx::query_scalar(explain(&store.sql.claim_guard_rows))
            .bind("job-1")
            .bind(vec!["tenant"; offered.len()])
            .bind(&offered)
            .bind(vec![Utc::now(); offered.len()])
            .fetch_all(store.pool())
            .await
            .map(plan)
            .expect("explain guard rows");
        let lines: Vec<&str> = guard_rows.lines().collect();
        assert!(
            guard_rows.contains("using cronlease_executions_running"),
            "the guard's read does not use the running index:\n{guard_rows}"
        );
        let probes = lines.iter().enumerate().filter(|(i, line)| {
            line.contains("using cronlease_executions_running")
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.contains("scope_id ="))
        });
        assert_eq!(
            probes.count(),
            lines
                .iter()
                .filter(|l| l.contains("cronlease_executions_running"))
                .count(),
            "the guard's read scans the running index beyond the offered scopes:\n{guard_rows}"
        );
        assert!(
            !guard_rows.contains("cronlease_executions_stale"),
            "the guard's read scans the job's running rows:\n{guard_rows}"
        );
        // The sweep and supersede find the job's rows through their partial index, by job.
        let sweep = sqlx::query_scalar(explain(&store.sql.sweep_stale))
            .bind("job-1")
            .bind(true)
            .bind(None::<DateTime<Utc>>)
            .fetch_all(store.pool())
            .await
            .map(plan)
            .expect("explain sweep");
        let supersede = sqlx::query_scalar(explain(&store.sql.supersede))
            .bind("job-1")
            .fetch_all(store.pool())
            .await
            .map(plan)
            .expect("explain supersede");
        for (name, plan) in [("sweep", sweep), ("supersede", supersede)] {
            let lines: Vec<&str> = plan.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.contains("using cronlease_executions_stale")
                    || line.contains("using cronlease_executions_retry")
                {
                    let next = lines.get(i + 1).copied().unwrap_or_default();
                    assert!(
                        next.contains("Index Cond: (job_name = "),
                        "{name} scans a partial index beyond the job:\n{plan}"
                    );
                }
            }
        }
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&admin)
            .await
            .expect("drop schema");
    }
}
