//! The [`Store`] trait: the only door to the database.
//!
//! - [`Store`]: one method per statement, named entity first (`execution_claim`,
//!   `execution_finish_success`); batched methods take slices so many plans cost one statement.
//! - [`SqliteStore`]: the embedded default (a file, WAL, busy timeout).
//! - [`PgStore`]: PostgreSQL, for several replicas (lease times from `clock_timestamp()`).
//! - Parameter and row types: [`ClaimRequest`], [`Claimed`], [`Lease`], [`Renewal`],
//!   [`SuccessWrite`], [`FailureWrite`], [`RetryCandidate`], [`Swept`], [`ExecutionFilter`].
//!
//! Every time a store writes comes from the database clock, never the runner's. Every write of a
//! lease owner is fenced by `(id, lease_token, status = RUNNING)`. Each method issues exactly one
//! statement (except [`Store::migrate`]), so a test can count statements by counting calls.

mod classify;
pub mod postgres;
mod rowmap;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::execution::{ClaimOutcome, Execution, Status};
use crate::scope::Scope;

pub use classify::classify;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The database seam. Implementations hold the SQL of one backend; the runtime decides.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, e.g. `sqlite` (for logs and metrics).
    fn backend(&self) -> &'static str;

    /// Creates or upgrades the schema, tracked in `cronlease_migrations` (never `_sqlx_migrations`).
    /// Safe to run from several replicas at once.
    async fn migrate(&self) -> Result<()>;

    /// The database's current time.
    async fn db_now(&self) -> Result<DateTime<Utc>>;

    /// The newest plan time of every scope of `job`, in one query.
    async fn execution_latest_plans(&self, job: &str) -> Result<Vec<(Scope, DateTime<Utc>)>>;

    /// FAILED rows of `job` with a retry scheduled and attempts left, plan time at or after
    /// `since` when given, soonest `next_retry_at` first, at most `limit`.
    async fn execution_retry_candidates(
        &self,
        job: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>>;

    /// Claims many plans in one statement (SPEC §5.1): inserts the missing rows (Won), takes over
    /// stale or retry-due rows (Stole / Retried), leaves the rest (Conflicted, not returned).
    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>>;

    /// Renews leases; returns the ids still held (a missing id means LeaseLost).
    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>>;

    /// Records successes; returns the ids written (a missing id was fenced out: LeaseLost).
    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>>;

    /// Records failures (FAILED with a retry time, or DEAD) and appends to the failure history;
    /// returns the ids written (a missing id was fenced out).
    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>>;

    /// Moves `job`'s RUNNING rows whose lease went stale to FAILED (`stale_timeout`, retry due at
    /// once) when re-entry is allowed and attempts remain, else to DEAD.
    async fn execution_sweep_stale(&self, job: &str, allow_reentry: bool) -> Result<Vec<Swept>>;

    /// One execution by id.
    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>>;

    /// Executions matching `filter`, newest plan first. Rows that cannot be decoded (an unknown
    /// status written by a newer version) are skipped with a warning.
    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>>;

    /// Row counts by status, for one job or all.
    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>>;
}

/// A lease: the right to write an execution row, fenced by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The execution id.
    pub id: Uuid,
    /// The token issued by the claim.
    pub token: Uuid,
}

/// A batch of plans of one job to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The job's name.
    pub job: &'a str,
    /// Copied into inserted rows.
    pub max_attempts: u32,
    /// The claiming runner.
    pub runner_id: &'a str,
    /// `stale_after = now + stale_timeout`.
    pub stale_timeout: Duration,
    /// Whether stale RUNNING rows may be taken over.
    pub allow_stale_reentry: bool,
    /// The plans, each with the fresh execution id and lease token to use if it is claimed.
    pub plans: Vec<PlanClaim>,
}

/// One plan in a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanClaim {
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// Id for a newly inserted row (UUID v7).
    pub id: Uuid,
    /// Token of the new lease (UUID v4).
    pub token: Uuid,
}

impl PlanClaim {
    /// A plan with a fresh v7 id and v4 token.
    pub fn new(scope: Scope, plan_time: DateTime<Utc>) -> Self {
        PlanClaim {
            scope,
            plan_time,
            id: Uuid::now_v7(),
            token: Uuid::new_v4(),
        }
    }
}

/// A plan this runner now holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The lease (execution id and new token).
    pub lease: Lease,
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// This attempt's number.
    pub attempt: u32,
    /// The row's attempt budget.
    pub max_attempts: u32,
    /// Won, Stole or Retried.
    pub outcome: ClaimOutcome,
    /// Lease start (database clock).
    pub started_at: DateTime<Utc>,
}

/// A lease to renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// The lease.
    pub lease: Lease,
    /// `stale_after = now + stale_timeout`.
    pub stale_timeout: Duration,
}

/// A success to record.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessWrite {
    /// The lease.
    pub lease: Lease,
    /// Handler run time.
    pub duration_ms: i64,
    /// The handler's row count.
    pub rows_affected: i64,
    /// The JSON result text, already capped at 16 KiB.
    pub result: String,
}

/// A failure to record.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureWrite {
    /// The lease.
    pub lease: Lease,
    /// `Failed` (a retry follows) or `Dead`.
    pub status: Status,
    /// The error code, e.g. `handler_error`.
    pub code: String,
    /// The message, already cut to 4000 bytes.
    pub message: String,
    /// `next_retry_at = now + retry_in` for FAILED rows.
    pub retry_in: Option<Duration>,
    /// Raise `max_attempts` to at least `attempt + 1` so the attempt does not count (shutdown).
    pub extend_budget: bool,
    /// Handler run time.
    pub duration_ms: i64,
}

/// A retry-eligible FAILED row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryCandidate {
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// When it may be claimed.
    pub next_retry_at: DateTime<Utc>,
    /// Whether `next_retry_at` has passed (database clock).
    pub due: bool,
}

/// A row the stale sweep moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    /// The execution id.
    pub id: Uuid,
    /// FAILED (retry due) or DEAD.
    pub status: Status,
}

/// Which executions to list. Default: all, newest first, 100 at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFilter {
    /// Only this job.
    pub job: Option<String>,
    /// Only this scope.
    pub scope: Option<Scope>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only plans at or after this time.
    pub plan_from: Option<DateTime<Utc>>,
    /// Only plans before this time (also the cursor for the next page: the oldest plan seen).
    pub plan_before: Option<DateTime<Utc>>,
    /// Most rows returned.
    pub limit: usize,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        ExecutionFilter {
            job: None,
            scope: None,
            status: None,
            plan_from: None,
            plan_before: None,
            limit: 100,
        }
    }
}

/// Wraps a driver error with its operation and classification.
pub(crate) fn db_error(operation: &'static str, source: sqlx::Error) -> Error {
    Error::Database {
        operation,
        kind: classify(&source),
        source,
    }
}

/// Keeps the rows that decode, logging the others (a newer version's status, a hand-edited row).
pub(crate) fn skip_corrupt(rows: impl Iterator<Item = Result<Execution>>) -> Vec<Execution> {
    rows.filter_map(|row| match row {
        Ok(execution) => Some(execution),
        Err(error) => {
            tracing::warn!(%error, "skipping an execution row that cannot be decoded");
            None
        }
    })
    .collect()
}

/// Parses `(status text, count)` pairs, skipping unknown statuses with a warning.
pub(crate) fn counts(rows: impl Iterator<Item = (String, i64)>) -> Result<Vec<(Status, i64)>> {
    Ok(rows
        .filter_map(|(status, n)| match status.parse::<Status>() {
            Ok(status) => Some((status, n)),
            Err(message) => {
                tracing::warn!(%message, "skipping executions with an unknown status");
                None
            }
        })
        .collect())
}
