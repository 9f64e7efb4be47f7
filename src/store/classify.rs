//! Transient versus permanent: how a driver error should be handled.
//!
//! Decided from error variants and database codes, never from message text. Each backend knows
//! its own codes (`sqlite::error`, `postgres::error`, `mysql::error`); this file dispatches.

use crate::error::DbErrorKind;

use super::{mysql, postgres, sqlite};

/// Classifies any sqlx error: transient if retrying the same operation may succeed.
///
/// | error | kind | why |
/// |---|---|---|
/// | `Io` (refused, reset, aborted, broken pipe, unexpected EOF, timed out, ...) | transient | the connection failed, not the statement |
/// | `PoolTimedOut` | transient | no connection could be had in time (server down or saturated) |
/// | `WorkerCrashed` | transient | SQLite's worker thread died; the pool opens a new connection |
/// | `Database` with a code the backend lists | transient | PostgreSQL connection exceptions (class 08), shutdown (57P01-57P03), serialization failure, deadlock, lock not available, too many connections, statement cancelled; MySQL/MariaDB connection lost or killed, server gone away, shutdown, too many connections, lock wait timeout, deadlock, read-only during a failover (see `mysql::error`); SQLite busy, locked, I/O error |
/// | anything else (`Database` with another code, `PoolClosed`, `Protocol`, decode and configuration errors) | permanent | retrying sends the same statement to the same failure |
///
/// Only variants and codes decide, never message text. Handlers get the same answer through
/// [`JobError::from_sqlx`](crate::JobError::from_sqlx).
pub fn classify(error: &sqlx::Error) -> DbErrorKind {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
            DbErrorKind::Transient
        }
        sqlx::Error::Database(db) => postgres::error::classify(db.as_ref())
            .or_else(|| mysql::error::classify(db.as_ref()))
            .or_else(|| sqlite::error::classify(db.as_ref()))
            .unwrap_or(DbErrorKind::Permanent),
        _ => DbErrorKind::Permanent,
    }
}

/// Whether the database broke a deadlock by failing this statement (PostgreSQL 40P01, MySQL
/// and MariaDB 1213); counted in `cronlease_db_deadlocks_total`, which stays at zero while
/// every batched write locks its rows in one order.
pub(crate) fn is_deadlock(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| pg.code() == "40P01")
        || db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|my| my.number() == 1213)
}

/// Whether connecting failed because the host name does not resolve (no such host, or no
/// address for it).
///
/// Used at start, where a name that does not resolve is a wrong URL rather than an outage; at
/// runtime the same error stays transient (a resolver blip during a running service).
///
/// This is the one place that reads message text, because nothing else tells: the standard
/// library reports a failed `getaddrinfo` as an `io::Error` of kind `Uncategorized` (not
/// nameable outside std) with the text "failed to lookup address information: ...", and tokio
/// reports a name with no addresses as `InvalidInput` "could not resolve to any address". sqlx
/// passes either on unchanged as `sqlx::Error::Io`. Only those two texts on those errors match.
pub(crate) fn host_not_found(error: &sqlx::Error) -> bool {
    let sqlx::Error::Io(io) = error else {
        return false;
    };
    let text = io.to_string();
    if io.kind() == std::io::ErrorKind::InvalidInput {
        text.starts_with("could not resolve to any address")
    } else {
        text.starts_with("failed to lookup address information")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_does_not_resolve_is_recognised() {
        // What std returns for a failed getaddrinfo (`.invalid` never resolves, RFC 6761).
        let lookup = || {
            std::net::ToSocketAddrs::to_socket_addrs("cronlease-test.invalid:5432")
                .map(|_| ())
                .unwrap_err()
        };
        assert!(host_not_found(&sqlx::Error::Io(lookup())), "{}", lookup());
        let none = std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        );
        assert!(host_not_found(&sqlx::Error::Io(none)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!host_not_found(&sqlx::Error::Io(refused)));
        assert!(!host_not_found(&sqlx::Error::PoolTimedOut));
        // The runtime's own classification is unchanged: transient.
        assert_eq!(classify(&sqlx::Error::Io(lookup())), DbErrorKind::Transient);
    }

    #[test]
    fn connection_level_errors_are_transient() {
        use std::io::ErrorKind;
        // Refused (server down), reset/aborted (server or proxy cut the connection), broken
        // pipe (writing to a cut connection), unexpected EOF (sqlx's error when the server
        // closes the socket mid-message), timed out, not connected.
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::BrokenPipe,
            ErrorKind::UnexpectedEof,
            ErrorKind::TimedOut,
            ErrorKind::NotConnected,
        ] {
            let io = std::io::Error::from(kind);
            assert_eq!(
                classify(&sqlx::Error::Io(io)),
                DbErrorKind::Transient,
                "{kind:?}"
            );
        }
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
        assert_eq!(
            classify(&sqlx::Error::ColumnNotFound("x".into())),
            DbErrorKind::Permanent
        );
        assert_eq!(
            classify(&sqlx::Error::Configuration("bad url".into())),
            DbErrorKind::Permanent
        );
    }
}
