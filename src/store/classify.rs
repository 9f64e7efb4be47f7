//! Transient versus permanent: how a driver error should be handled.
//!
//! Decided from error variants and database codes, never from message text. Each backend knows
//! its own codes (`sqlite::error`, `postgres::error`); this file dispatches.

use crate::error::DbErrorKind;

use super::{postgres, sqlite};

/// Classifies any sqlx error: transient if retrying the same operation may succeed.
///
/// Transient: I/O errors (refused, reset, closed), pool timeouts, a crashed SQLite worker, and the
/// database codes each backend lists (PostgreSQL connection exceptions, shutdown, serialization
/// failure, deadlock; SQLite busy/locked). Everything else is permanent.
pub fn classify(error: &sqlx::Error) -> DbErrorKind {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
            DbErrorKind::Transient
        }
        sqlx::Error::Database(db) => postgres::error::classify(db.as_ref())
            .or_else(|| sqlite::error::classify(db.as_ref()))
            .unwrap_or(DbErrorKind::Permanent),
        _ => DbErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_level_errors_are_transient() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&sqlx::Error::Io(refused)), DbErrorKind::Transient);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&sqlx::Error::Io(reset)), DbErrorKind::Transient);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), DbErrorKind::Transient);
        assert_eq!(
            classify(&sqlx::Error::WorkerCrashed),
            DbErrorKind::Transient
        );
    }

    #[test]
    fn other_errors_are_permanent() {
        assert_eq!(classify(&sqlx::Error::RowNotFound), DbErrorKind::Permanent);
        assert_eq!(classify(&sqlx::Error::PoolClosed), DbErrorKind::Permanent);
        assert_eq!(
            classify(&sqlx::Error::Protocol("bad".into())),
            DbErrorKind::Permanent
        );
    }
}
