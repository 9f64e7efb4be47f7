//! PostgreSQL SQLSTATE codes that are worth a retry, and connection errors told to a person.

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError};

use crate::error::{DbErrorKind, Error};

/// `None` when the error is not PostgreSQL's.
pub(crate) fn classify(error: &dyn DatabaseError) -> Option<DbErrorKind> {
    let pg = error.try_downcast_ref::<PgDatabaseError>()?;
    Some(classify_code(pg.code()))
}

/// Classifies a SQLSTATE. Transient:
/// - class 08, connection exceptions (08000, 08003 no connection, 08006 failure, 08001 cannot
///   connect, 08004 rejected);
/// - 57P01 admin shutdown (also `pg_terminate_backend`), 57P02 crash shutdown, 57P03 cannot
///   connect now (starting up), 57P05 idle session timeout: the server ended the session;
/// - 57014 query cancelled (a statement timeout or an operator's cancel; the runtime's
///   statements are short, so a retry on a calmer server succeeds);
/// - 40001 serialization failure, 40P01 deadlock detected, 55P03 lock not available;
/// - 53300 too many connections;
/// - 25P03 idle-in-transaction timeout (the server closed the session).
///
/// Everything else (syntax, constraint, data, permission, authentication errors) is permanent.
pub(crate) fn classify_code(code: &str) -> DbErrorKind {
    match code {
        c if c.starts_with("08") => DbErrorKind::Transient,
        "57P01" | "57P02" | "57P03" | "57P05" | "57014" | "40001" | "40P01" | "55P03" | "53300"
        | "25P03" => DbErrorKind::Transient,
        _ => DbErrorKind::Permanent,
    }
}

/// Whether `error` is a failure to get a connection (rather than of a statement): I/O, TLS, a
/// pool timeout, or a server refusing the session (connection exception, authentication,
/// unknown database, starting up, too many connections).
pub(crate) fn is_connect_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.try_downcast_ref::<PgDatabaseError>().is_some_and(|pg| {
            let code = pg.code();
            code.starts_with("08")
                || code.starts_with("28")
                || matches!(code, "3D000" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Where `options` connect to, for a person: `host:port (database `name`)` or
/// `socket `path` (database `name`)`. Never the password.
pub(crate) fn target(options: &PgConnectOptions) -> String {
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    match options.get_socket() {
        Some(socket) => format!("socket `{}` (database `{database}`)", socket.display()),
        None => format!(
            "{}:{} (database `{database}`)",
            options.get_host(),
            options.get_port()
        ),
    }
}

/// A failure to connect to `target`, worded for a person; classified like any driver error.
pub(crate) fn connect_error(target: String, source: sqlx::Error) -> Error {
    let message = describe(&target, &source);
    Error::Connect {
        kind: crate::store::classify(&source),
        target,
        message,
        source,
    }
}

/// `<what happened> at <target>: <what to check>`.
fn describe(target: &str, error: &sqlx::Error) -> String {
    use std::io::ErrorKind;
    match error {
        _ if crate::store::host_not_found(error) => format!(
            "the host name does not resolve at {target}: check the host in the URL ({error})"
        ),
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => format!(
                "connection refused at {target}: check that PostgreSQL is running and listening on that host and port"
            ),
            ErrorKind::TimedOut => {
                format!("no answer at {target}: check the host, the port and any firewall between")
            }
            _ => format!("cannot connect at {target}: {io}"),
        },
        sqlx::Error::PoolTimedOut => format!(
            "no connection could be opened in time at {target}: the server is down, unreachable or out of connections"
        ),
        sqlx::Error::Tls(tls) => format!("TLS failed at {target}: {tls}"),
        sqlx::Error::Database(db) => {
            format!(
                "the server refused the connection at {target}: {}",
                db.message()
            )
        }
        other => format!("cannot connect at {target}: {other}"),
    }
}

/// Checks that `url` is a PostgreSQL URL, naming only its scheme (never the URL: it may hold a
/// password). `what` names the constructor.
pub(crate) fn check_url(url: &str, what: &str) -> Result<(), Error> {
    match crate::store::url::scheme(url) {
        Some(scheme)
            if scheme.eq_ignore_ascii_case("postgres")
                || scheme.eq_ignore_ascii_case("postgresql") =>
        {
            Ok(())
        }
        Some(scheme) => Err(Error::InvalidConfig(format!(
            "{what} needs a `postgres://` URL, not a `{scheme}:` one: give the PostgreSQL server's URL (MySqlStore connects to MySQL, SqliteStore opens SQLite files)"
        ))),
        None => Err(Error::InvalidConfig(format!(
            "{what} needs a URL such as `postgres://user:password@host:5432/database`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted_and_never_echoed() {
        assert!(check_url("postgres://u:secret@h/db", "PgStore::connect").is_ok());
        assert!(check_url("PostgreSQL://h/db", "PgStore::connect").is_ok());
        for (url, scheme) in [
            ("mysql://u:secret@h/db", "mysql"),
            ("sqlite:cronlease.db", "sqlite"),
            ("sqlite::memory:", "sqlite"),
        ] {
            let message = check_url(url, "PgStore::connect").unwrap_err().to_string();
            assert!(
                message.starts_with(&format!(
                    "PgStore::connect needs a `postgres://` URL, not a `{scheme}:` one"
                )),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
        // Text before a colon that is not a scheme (here a user and password) is not repeated.
        let message = check_url("u:secret@h/db", "PgStore::connect")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"), "{message}");
        assert!(message.contains("needs a URL such as"), "{message}");
    }

    #[test]
    fn connect_errors_name_host_port_and_database() {
        let options: PgConnectOptions = "postgres://u:secret@127.0.0.1:5433/app".parse().unwrap();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = connect_error(target(&options), sqlx::Error::Io(refused));
        let message = error.to_string();
        assert!(
            message.starts_with("connection refused at 127.0.0.1:5433 (database `app`): "),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        assert!(error.is_transient());
        // Without a database in the URL the server uses the user name.
        let options: PgConnectOptions = "postgres://bob@db.internal".parse().unwrap();
        assert_eq!(target(&options), "db.internal:5432 (database `bob`)");
        let message = connect_error(target(&options), sqlx::Error::PoolTimedOut).to_string();
        assert!(
            message.starts_with("no connection could be opened in time at db.internal:5432"),
            "{message}"
        );
    }

    #[test]
    fn connection_shutdown_and_contention_codes_are_transient() {
        for code in [
            "08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03", "57P05",
            "57014", "40001", "40P01", "53300", "55P03", "25P03",
        ] {
            assert_eq!(classify_code(code), DbErrorKind::Transient, "{code}");
        }
    }

    #[test]
    fn data_and_syntax_codes_are_permanent() {
        // Unique and check violations, syntax error, undefined table, bad text representation,
        // undefined column, authentication failed, insufficient privilege, disk full.
        for code in [
            "23505", "23514", "42601", "42P01", "22P02", "42703", "28P01", "42501", "53100",
        ] {
            assert_eq!(classify_code(code), DbErrorKind::Permanent, "{code}");
        }
    }
}
