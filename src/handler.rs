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
    pub(crate) link: Arc<dyn AttemptLink>,
}

impl JobContext {
    /// The job's name.
    pub fn job(&self) -> &str {
        self.link.job()
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
        self.link
            .beat_now(self.execution_id)
            .await
            .map_err(JobError::retryable)
    }
}

/// What a running attempt may ask of the runtime that started it. The actors implement it, so
/// this module (a model type the handler sees) never depends on them.
pub(crate) trait AttemptLink: Send + Sync + 'static {
    /// The job's name.
    fn job(&self) -> &str;
    /// Renews the lease of execution `id` now; `Err` says why it could not (lost, or stopped).
    fn beat_now(&self, id: Uuid) -> BoxFuture<'static, Result<(), String>>;
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.link.job())
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
/// dead-letter the plan at once.
///
/// Any error converts with `?` (anything that converts into
/// `Box<dyn std::error::Error + Send + Sync>`: every `std::error::Error + Send + Sync` type such
/// as `reqwest::Error` or `std::io::Error`, `anyhow::Error`, `String` and `&str`). The message
/// is the error followed by its causes (`outer: inner`), and the original error stays reachable
/// through [`JobError::source`]. The conversion classifies by the first known error in the
/// chain:
///
/// | error found in the chain | attempt |
/// |---|---|
/// | `sqlx::Error` | classified like the runtime's own calls: transient (connection lost, lock busy) is retryable, anything else permanent (see [`JobError::from_sqlx`]) |
/// | `serde_json::Error` | permanent (the same input fails the same way), except I/O errors while reading |
/// | anything else | retryable |
///
/// [`JobError::into_permanent`] marks any error permanent.
///
/// ```
/// use cronlease::{JobContext, JobError, JobOutput};
///
/// fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// async fn handler(_ctx: JobContext) -> Result<JobOutput, JobError> {
///     let rows = parse("12")?; // any std error converts, retryable
///     let _config = std::fs::read_to_string("job.toml")
///         .map_err(|e| JobError::from(e).into_permanent())?;
///     Ok(JobOutput::rows(rows.into()))
/// }
/// ```
///
/// `JobError` itself does not implement `std::error::Error` (that would clash with the
/// conversion from every error); use [`JobError::into_error`] where one is needed.
#[derive(Debug)]
pub struct JobError {
    permanent: bool,
    message: String,
    source: Option<BoxError>,
}

/// The boxed error a [`JobError`] keeps.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl JobError {
    /// A failure worth retrying.
    pub fn retryable(message: impl fmt::Display) -> Self {
        JobError {
            permanent: false,
            message: message.to_string(),
            source: None,
        }
    }

    /// A failure not worth retrying: the plan goes DEAD with code `permanent`.
    pub fn permanent(message: impl fmt::Display) -> Self {
        JobError {
            permanent: true,
            message: message.to_string(),
            source: None,
        }
    }

    /// Classifies a database error from the handler's own query the way the runtime classifies
    /// its own: transient errors are retryable, others permanent. `?` on a `sqlx::Error` does
    /// the same.
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        JobError::from(error)
    }

    /// The same failure, marked permanent: the plan goes DEAD with code `permanent`.
    pub fn into_permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Whether the failure skips the remaining attempts.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The failure message: the error and its causes, `outer: inner`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error this failure was converted from; `None` when it was built from a message with
    /// [`retryable`](Self::retryable) or [`permanent`](Self::permanent).
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// A standard error for code that needs one: the original error when there is one, else the
    /// message.
    pub fn into_error(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        match self.source {
            Some(source) => source,
            None => self.message.into(),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E> From<E> for JobError
where
    E: Into<BoxError>,
{
    /// Keeps the error and its causes in the message; classified as the [type's
    /// documentation](JobError) says.
    fn from(error: E) -> Self {
        let error: BoxError = error.into();
        JobError {
            permanent: is_permanent(&*error),
            message: chain_message(&*error),
            source: Some(error),
        }
    }
}

/// The links of an error's chain, outermost first.
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// `outer: inner: ...`, skipping a cause whose text the message already holds (many errors
/// print their source in their own message).
fn chain_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    for link in chain(error) {
        let text = link.to_string();
        if message.is_empty() {
            message = text;
        } else if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

/// Permanent when the first known error of the chain says so; retryable otherwise.
fn is_permanent(error: &(dyn std::error::Error + 'static)) -> bool {
    for link in chain(error) {
        if let Some(db) = link.downcast_ref::<sqlx::Error>() {
            return crate::store::classify(db) == DbErrorKind::Permanent;
        }
        if let Some(json) = link.downcast_ref::<serde_json::Error>() {
            return !json.is_io();
        }
    }
    false
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
        fn missing() -> Result<JobOutput, JobError> {
            Err(sqlx::Error::RowNotFound)?
        }
        assert!(missing().unwrap_err().is_permanent());
    }

    /// An error with a cause, as libraries such as reqwest build them.
    #[derive(Debug)]
    struct Outer(Box<dyn std::error::Error + Send + Sync>);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("fetching the report failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn any_error_converts_with_its_causes_and_is_retryable() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        fn fetch(error: Outer) -> Result<JobOutput, JobError> {
            Err(error)?
        }
        let error = fetch(Outer(Box::new(refused))).unwrap_err();
        assert_eq!(error.message(), "fetching the report failed: refused");
        assert!(!error.is_permanent());
        let source = error.source().expect("the original error is kept");
        assert!(source.downcast_ref::<Outer>().is_some());
        assert!(error.into_error().downcast_ref::<Outer>().is_some());
        // Text converts too, as before.
        let text: JobError = "upstream down".into();
        assert_eq!(
            (text.message(), text.is_permanent()),
            ("upstream down", false)
        );
        let owned: JobError = String::from("again").into();
        assert_eq!(owned.to_string(), "again");
        // Built from a message: no source; `into_error` still gives an error with the text.
        let plain = JobError::permanent("bad input");
        assert!(plain.source().is_none());
        assert_eq!(plain.into_error().to_string(), "bad input");
    }

    #[test]
    fn a_database_error_anywhere_in_the_chain_decides() {
        let wrapped = JobError::from(Outer(Box::new(sqlx::Error::RowNotFound)));
        assert!(wrapped.is_permanent());
        assert!(
            wrapped
                .message()
                .starts_with("fetching the report failed: ")
        );
        let busy = JobError::from(Outer(Box::new(sqlx::Error::PoolTimedOut)));
        assert!(!busy.is_permanent());
        // A cause the message already shows is not repeated.
        let io = JobError::from(io(std::io::ErrorKind::ConnectionReset));
        assert_eq!(io.message().matches("reset").count(), 1, "{}", io.message());
    }

    #[test]
    fn bad_json_is_permanent_and_marking_permanent_keeps_the_chain() {
        let json = serde_json::from_str::<u32>("{").unwrap_err();
        assert!(JobError::from(json).is_permanent());
        let io = std::io::Error::other("disk gone");
        let marked = JobError::from(Outer(Box::new(io))).into_permanent();
        assert!(marked.is_permanent());
        assert_eq!(marked.message(), "fetching the report failed: disk gone");
    }

    #[test]
    fn anyhow_errors_convert_with_their_context() {
        use anyhow::Context;
        fn load() -> anyhow::Result<u32> {
            let n: u32 = "x".parse().context("reading the batch size")?;
            Ok(n)
        }
        fn handler() -> Result<JobOutput, JobError> {
            let n = load().context("loading the job config")?;
            Ok(JobOutput::rows(n.into()))
        }
        let error = handler().unwrap_err();
        assert_eq!(
            error.message(),
            "loading the job config: reading the batch size: invalid digit found in string"
        );
        assert!(!error.is_permanent());
        // A database error under anyhow context keeps its classification.
        let db: anyhow::Error = anyhow::Error::new(sqlx::Error::RowNotFound).context("query");
        assert!(JobError::from(db).is_permanent());
    }
}
