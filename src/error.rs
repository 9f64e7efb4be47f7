//! The crate's error type.
//!
//! - [`Error`]: everything the library can fail with, one variant per cause.
//! - [`Result`]: `std::result::Result<T, Error>`.
//!
//! Database errors carry their classification: [`Error::is_transient`] tells whether the same
//! operation may succeed if retried (a connection dropped, a lock was busy) or will fail again.

use std::fmt;

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything cronlease can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job spec is invalid; the message names the field and the fix.
    ///
    /// Displayed as one sentence: ``invalid job `name`: message``.
    #[error("invalid job {}: {message}", shown_job(job))]
    InvalidJob {
        /// The job's name as given (may be empty).
        job: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A setting is invalid: a scheduler setting, a cadence or backoff given as text, a store
    /// URL. The message is the whole sentence: it names the setting, what is wrong and the fix.
    #[error("{0}")]
    InvalidConfig(String),
    /// Two registered jobs share a name; names identify rows in the database.
    #[error("job `{0}` is registered twice: job names must be unique")]
    DuplicateJob(String),
    /// A control request (trigger, backfill) cannot be carried out as asked: a backfill range
    /// that is empty or reaches into the future. The message says what is wrong and what to do.
    #[error("{0}")]
    InvalidRequest(String),
    /// A control (pause, resume, trigger, backfill) named a job this scheduler does not run.
    #[error("no job named `{0}` is registered with this scheduler")]
    UnknownJob(String),
    /// A database call failed.
    #[error("database error ({kind}) during {operation}: {source}")]
    Database {
        /// The store operation that failed, e.g. `execution_claim`.
        operation: &'static str,
        /// Whether retrying the same operation may succeed.
        kind: DbErrorKind,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database could not be opened or connected to. The message names it (a SQLite path,
    /// or a PostgreSQL `host:port` and database; never a password) and the cause, e.g.
    /// ``connection refused at 127.0.0.1:5433 (database `app`): ...``.
    #[error("{message}")]
    Connect {
        /// The database: a SQLite path, or `host:port (database `name`)`.
        target: String,
        /// The whole sentence: what failed, where, and what to check.
        message: String,
        /// Whether retrying may succeed (a server still starting, a refused connection).
        kind: DbErrorKind,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version number.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds a migration newer than this library knows.
    #[error(
        "the database schema is at migration {found}, newer than this version of cronlease knows ({known}): upgrade cronlease"
    )]
    SchemaTooNew {
        /// Highest version found in the migrations table.
        found: i64,
        /// Highest version this library ships.
        known: i64,
    },
    /// A row could not be decoded (unknown status, malformed JSON).
    #[error("corrupt execution row {id}: {message}")]
    CorruptRow {
        /// The execution id, or `?` when unreadable.
        id: String,
        /// What could not be decoded.
        message: String,
    },
    /// A store call did not finish within its deadline ([`StoreDeadlines::call`], or a
    /// heartbeat's interval): the network or the database went silent. Transient: the runtime
    /// retries it like a dropped connection, and the connection it used is closed, not reused.
    ///
    /// [`StoreDeadlines::call`]: crate::store::StoreDeadlines::call
    #[error(
        "the database did not answer {operation} within its {} deadline",
        humantime::format_duration(*deadline)
    )]
    DeadlineExceeded {
        /// The store operation, e.g. `execution_heartbeat`.
        operation: &'static str,
        /// The deadline that passed.
        deadline: std::time::Duration,
    },
    /// A database write was abandoned after retrying transient errors for `give_up_after`.
    #[error("gave up on a database write after transient errors: {0}")]
    GaveUp(String),
    /// The database could not be reached when the scheduler started (see
    /// [`SchedulerBuilder::wait_for_database`](crate::SchedulerBuilder::wait_for_database)).
    #[error(
        "the database is unreachable at start (waited {}): {source}; check that it is running and that the URL is right, or let start wait for it with SchedulerBuilder::wait_for_database",
        humantime::format_duration(*waited)
    )]
    DatabaseUnavailable {
        /// How long start kept trying (failing fast: the one try, bounded by the pool's acquire
        /// timeout or the SQLite busy timeout).
        waited: std::time::Duration,
        /// The last transient error.
        #[source]
        source: Box<Error>,
    },
    /// A manual tick could not read the database clock; the message says why.
    #[error("the tick failed: {0}")]
    TickFailed(String),
    /// The scheduler has been shut down (or its actors have stopped).
    #[error("the scheduler is not running")]
    NotRunning,
    /// No execution has this id.
    #[error("no execution with id {0}")]
    ExecutionNotFound(uuid::Uuid),
    /// A replay was asked for an execution that is not DEAD.
    #[error("execution {id} is {status}, only DEAD executions can be replayed")]
    NotDead {
        /// The execution id.
        id: uuid::Uuid,
        /// Its current status.
        status: String,
    },
}

/// How a database error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// Retrying may succeed: connection lost or refused, pool timeout, I/O, server shutting down,
    /// serialization failure, deadlock, SQLite busy/locked.
    Transient,
    /// Retrying will fail the same way: bad SQL, constraint violations, decode errors.
    Permanent,
}

/// A job name for a message: quoted, escaped, cut short; `(unnamed)` when empty.
fn shown_job(job: &str) -> String {
    if job.trim().is_empty() {
        return "(unnamed)".into();
    }
    let cut = job.char_indices().nth(60).map_or(job.len(), |(i, _)| i);
    let more = if cut < job.len() { "..." } else { "" };
    format!("`{}{more}`", job[..cut].escape_debug())
}

impl fmt::Display for DbErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbErrorKind::Transient => "transient",
            DbErrorKind::Permanent => "permanent",
        })
    }
}

impl Error {
    /// Whether retrying the failed operation may succeed (a database blip, not a bug).
    ///
    /// A migration that failed for a transient reason (the connection dropped, the SQLite file was
    /// locked) is transient too: it is rolled back and can be run again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database { kind, .. } | Error::Connect { kind, .. } => {
                *kind == DbErrorKind::Transient
            }
            Error::Migration { source, .. } => {
                crate::store::classify(source) == DbErrorKind::Transient
            }
            Error::DatabaseUnavailable { .. } | Error::DeadlineExceeded { .. } => true,
            _ => false,
        }
    }

    /// Whether this is an invalid spec, setting, request or duplicate or unknown name.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::InvalidJob { .. }
                | Error::InvalidConfig(_)
                | Error::DuplicateJob(_)
                | Error::UnknownJob(_)
                | Error::InvalidRequest(_)
        )
    }

    pub(crate) fn invalid_job(job: &str, message: impl Into<String>) -> Self {
        Error::InvalidJob {
            job: job.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    #[test]
    fn invalid_settings_read_as_one_sentence() {
        let cadence = crate::Schedule::every("often").unwrap_err().to_string();
        assert!(
            cadence.starts_with("cannot parse cadence `often`"),
            "{cadence}"
        );
        let job = Error::invalid_job("report", "max_attempts must be at least 1").to_string();
        assert_eq!(job, "invalid job `report`: max_attempts must be at least 1");
        let unnamed = Error::invalid_job(" ", "job name must not be empty").to_string();
        assert_eq!(unnamed, "invalid job (unnamed): job name must not be empty");
        let long = Error::invalid_job(&"n".repeat(600), "too long").to_string();
        assert!(long.len() < 100, "{long}");
    }

    #[test]
    fn migrations_and_start_inherit_the_transience_of_their_cause() {
        let dropped = Error::Migration {
            version: 1,
            name: "executions",
            source: reset(),
        };
        assert!(dropped.is_transient());
        let bad_sql = Error::Migration {
            version: 1,
            name: "executions",
            source: sqlx::Error::Protocol("syntax".into()),
        };
        assert!(!bad_sql.is_transient());
        let unavailable = Error::DatabaseUnavailable {
            waited: std::time::Duration::from_millis(1500),
            source: Box::new(dropped),
        };
        assert!(unavailable.is_transient());
        let message = unavailable.to_string();
        assert!(
            message.starts_with("the database is unreachable at start (waited 1s 500ms)"),
            "{message}"
        );
        assert!(message.contains("wait_for_database"), "{message}");
        assert!(!Error::NotRunning.is_transient());
    }
}
