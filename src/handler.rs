//! What a job runs.
//!
//! - [`Handler`]: the trait; any `Fn(JobContext) -> impl Future<Output = Result<JobOutput, JobError>>`
//!   implements it.
//! - [`JobContext`]: what one attempt knows: job, scope, plan time, attempt, execution id (an
//!   idempotency key), cancellation, manual heartbeats.
//! - [`JobOutput`]: a successful attempt's rows affected and JSON result.
//! - [`JobError`]: a failed attempt, retryable (the default) or permanent.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::actors::executor::JobShared;
use crate::actors::heartbeat::BeatNow;
use crate::error::DbErrorKind;
use crate::scope::Scope;

/// A job's work for one plan.
///
/// Handlers run on the scheduler's handler runtime (a multi-threaded tokio runtime), so a
/// blocking handler cannot stall ticks or heartbeats; they must be `Send` and must not start
/// actix actors. A handler should watch [`JobContext::cancelled`] and stop when it fires.
///
/// ```
/// use cronlease::{Handler, JobContext, JobError, JobOutput};
///
/// fn assert_handler(_: impl Handler) {}
///
/// assert_handler(|ctx: JobContext| async move {
///     if ctx.attempt() > 1 {
///         tracing::info!(execution = %ctx.execution_id(), "retrying");
///     }
///     Ok::<_, JobError>(JobOutput::rows(3))
/// });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt of one plan.
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JobOutput, JobError>> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(self(ctx))
    }
}

/// What one attempt of one plan knows about itself.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) scope: Scope,
    pub(crate) plan_time: DateTime<Utc>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) runner_id: Arc<str>,
    pub(crate) execution_id: Uuid,
    pub(crate) cancel: CancellationToken,
    pub(crate) job_shared: Arc<JobShared>,
}

impl JobContext {
    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job_shared.spec.name
    }

    /// The scope this attempt runs for.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The plan time (UTC, database clock) this attempt runs for.
    pub fn plan_time(&self) -> DateTime<Utc> {
        self.plan_time
    }

    /// This attempt's number, 1 for the first run.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The attempt budget copied into the row when the plan was first claimed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The runner executing this attempt.
    pub fn runner_id(&self) -> &str {
        &self.runner_id
    }

    /// The execution row's id: the same for every attempt and replay of this plan, so it serves
    /// as an idempotency key for the handler's side effects.
    pub fn execution_id(&self) -> Uuid {
        self.execution_id
    }

    /// Completes when the attempt is cancelled (lease lost, shutdown or timeout).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the attempt has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The cancellation token, to pass into code that takes one.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Renews the lease now, on top of the automatic heartbeats. An error means the lease is
    /// lost (another runner owns the plan): stop working.
    pub async fn heartbeat(&self) -> Result<(), JobError> {
        match self
            .job_shared
            .heartbeat
            .send(BeatNow {
                id: self.execution_id,
            })
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(lost)) => Err(JobError::retryable(lost)),
            Err(_) => Err(JobError::retryable("the heartbeat has stopped")),
        }
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job_shared.spec.name)
            .field("scope", &self.scope)
            .field("plan_time", &self.plan_time)
            .field("attempt", &self.attempt)
            .field("execution_id", &self.execution_id)
            .finish_non_exhaustive()
    }
}

/// A successful attempt's outcome, recorded in the execution row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobOutput {
    /// How many rows (or items) the attempt touched; informational.
    pub rows_affected: i64,
    /// Any JSON; at most 16 KiB is stored, larger results are replaced by a truncation marker.
    pub result: serde_json::Value,
}

impl JobOutput {
    /// An output with only a row count.
    pub fn rows(rows_affected: i64) -> Self {
        JobOutput {
            rows_affected,
            result: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the JSON result.
    pub fn with_result(mut self, result: serde_json::Value) -> Self {
        self.result = result;
        self
    }
}

/// A failed attempt.
///
/// Retryable errors are retried with the job's backoff while attempts remain; permanent errors
/// dead-letter the plan at once. `sqlx::Error` converts by its classification: transient
/// (connection lost, lock busy) is retryable, anything else permanent.
#[derive(Debug)]
pub struct JobError {
    permanent: bool,
    message: String,
}

impl JobError {
    /// A failure worth retrying.
    pub fn retryable(message: impl fmt::Display) -> Self {
        JobError {
            permanent: false,
            message: message.to_string(),
        }
    }

    /// A failure not worth retrying: the plan goes DEAD with code `permanent`.
    pub fn permanent(message: impl fmt::Display) -> Self {
        JobError {
            permanent: true,
            message: message.to_string(),
        }
    }

    /// Classifies a database error from the handler's own query the way the runtime classifies
    /// its own: transient errors are retryable, others permanent.
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        match crate::store::classify(&error) {
            DbErrorKind::Transient => JobError::retryable(error),
            _ => JobError::permanent(error),
        }
    }

    /// Whether the failure skips the remaining attempts.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The failure message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::from_sqlx(error)
    }
}

impl From<std::io::Error> for JobError {
    fn from(error: std::io::Error) -> Self {
        JobError::retryable(error)
    }
}

impl From<serde_json::Error> for JobError {
    fn from(error: serde_json::Error) -> Self {
        JobError::permanent(error)
    }
}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::retryable(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        JobError::retryable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(kind))
    }

    #[test]
    fn a_handlers_database_errors_are_classified_like_the_runtimes() {
        // Transient: the handler's attempt is retried with the job's backoff.
        for error in [
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::ConnectionReset),
            io(std::io::ErrorKind::UnexpectedEof),
            sqlx::Error::PoolTimedOut,
        ] {
            let text = error.to_string();
            let job_error = JobError::from_sqlx(error);
            assert!(!job_error.is_permanent(), "{text}");
            assert_eq!(job_error.message(), text);
        }
        // Permanent: the plan is dead-lettered at once.
        for error in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("total".into()),
            sqlx::Error::PoolClosed,
        ] {
            assert!(JobError::from_sqlx(error).is_permanent());
        }
        // `?` on a sqlx result does the same.
        fn query() -> Result<JobOutput, JobError> {
            Err(io(std::io::ErrorKind::BrokenPipe))?
        }
        assert!(!query().unwrap_err().is_permanent());
    }
}
