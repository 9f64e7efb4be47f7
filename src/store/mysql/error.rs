//! MySQL and MariaDB error numbers that are worth a retry, and connection errors told to a
//! person.

use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};

use crate::error::{DbErrorKind, Error};

/// `None` when the error is not MySQL's.
pub(crate) fn classify(error: &dyn DatabaseError) -> Option<DbErrorKind> {
    let my = error.try_downcast_ref::<MySqlDatabaseError>()?;
    Some(classify_number(my.number()))
}

/// Classifies a MySQL / MariaDB error number. Transient:
///
/// | number | name | why a retry may succeed |
/// |---|---|---|
/// | 2002 | CR_CONNECTION_ERROR | cannot connect through the socket (server restarting) |
/// | 2003 | CR_CONN_HOST_ERROR | cannot connect to the host (refused, or errno 110: connect timeout) |
/// | 2006 | CR_SERVER_GONE_ERROR | the server closed the connection ("server has gone away") |
/// | 2013 | CR_SERVER_LOST | connection lost during a query |
/// | 2055 | CR_SERVER_LOST_EXTENDED | connection lost, with the system error |
/// | 1040 | ER_CON_COUNT_ERROR | too many connections |
/// | 1053 | ER_SERVER_SHUTDOWN | server shutdown in progress |
/// | 1205 | ER_LOCK_WAIT_TIMEOUT | a lock wait timed out (the statement is rolled back) |
/// | 1213 | ER_LOCK_DEADLOCK | deadlock; the transaction was rolled back |
/// | 1317 | ER_QUERY_INTERRUPTED | the statement was killed (`KILL QUERY`) |
/// | 1969 | ER_STATEMENT_TIMEOUT | MariaDB's `max_statement_time` ended the statement |
/// | 3024 | ER_QUERY_TIMEOUT | MySQL's `max_execution_time` ended the `SELECT` |
/// | 1927 | ER_CONNECTION_KILLED | the connection was killed (MariaDB) |
/// | 4031 | ER_CLIENT_INTERACTION_TIMEOUT | the server closed an idle connection (MySQL 8.0.24+) |
/// | 1290 | ER_OPTION_PREVENTS_STATEMENT | `--read-only`: a primary demoted during a failover |
/// | 1836 | ER_READ_ONLY_MODE | read-only mode, likewise |
///
/// The 2xxx numbers are client-side (libmysqlclient, and the drivers that copy its numbers);
/// sqlx itself reports those conditions as I/O errors, which are transient too. Everything
/// else (syntax 1064, unknown table 1146 or column 1054, duplicate key 1062, access denied
/// 1045, unknown database 1049, data too long 1406, ...) is permanent.
pub(crate) fn classify_number(number: u16) -> DbErrorKind {
    match number {
        2002 | 2003 | 2006 | 2013 | 2055 | 1040 | 1053 | 1205 | 1213 | 1317 | 1927 | 1969
        | 3024 | 4031 | 1290 | 1836 => DbErrorKind::Transient,
        _ => DbErrorKind::Permanent,
    }
}

/// Whether `error` is InnoDB's deadlock (1213): the transaction was rolled back whole.
pub(crate) fn is_deadlock(error: &Error) -> bool {
    matches!(error, Error::Database { source, .. } if crate::store::classify::is_deadlock(source))
}

/// Whether `error` is a failure to get a connection (rather than of a statement): I/O, TLS, a
/// pool timeout, or a server refusing the session (access denied, unknown database, too many
/// connections, shutting down, host blocked or not allowed).
pub(crate) fn is_connect_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            db.try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|my| {
                    matches!(
                        my.number(),
                        1040 | 1044 | 1045 | 1049 | 1053 | 1129 | 1130 | 2002 | 2003
                    )
                })
        }
        _ => false,
    }
}

/// Where `options` connect to, for a person: `host:port (database `name`)` or
/// `socket `path` (database `name`)`. Never the password.
pub(crate) fn target(options: &MySqlConnectOptions) -> String {
    let database = options.get_database().unwrap_or("(none)");
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
                "connection refused at {target}: check that MySQL or MariaDB is running and listening on that host and port"
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

/// Checks that `url` is a MySQL URL (`mysql://` or `mariadb://`), naming only its scheme
/// (never the URL: it may hold a password). `what` names the constructor.
pub(crate) fn check_url(url: &str, what: &str) -> Result<(), Error> {
    match crate::store::url::scheme(url) {
        Some(scheme)
            if scheme.eq_ignore_ascii_case("mysql") || scheme.eq_ignore_ascii_case("mariadb") =>
        {
            Ok(())
        }
        Some(scheme) => Err(Error::InvalidConfig(format!(
            "{what} needs a `mysql://` URL, not a `{scheme}:` one: give the MySQL or MariaDB server's URL (PgStore connects to PostgreSQL, SqliteStore opens SQLite files)"
        ))),
        None => Err(Error::InvalidConfig(format!(
            "{what} needs a URL such as `mysql://user:password@host:3306/database`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(number: u16) {
        assert_eq!(classify_number(number), DbErrorKind::Transient, "{number}");
    }

    fn permanent(number: u16) {
        assert_eq!(classify_number(number), DbErrorKind::Permanent, "{number}");
    }

    #[test]
    fn cannot_connect_through_the_socket_2002_is_transient() {
        transient(2002);
    }

    #[test]
    fn cannot_connect_to_the_host_2003_is_transient() {
        transient(2003);
    }

    #[test]
    fn a_connect_timeout_errno_110_is_transient() {
        // `OperationalError (2003, "Can't connect to MySQL server ... (110)")`: sqlx reports the
        // same condition as the I/O error ETIMEDOUT, or as a pool timeout.
        transient(2003);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(
            crate::store::classify(&sqlx::Error::Io(timed_out)),
            DbErrorKind::Transient
        );
        assert_eq!(
            crate::store::classify(&sqlx::Error::PoolTimedOut),
            DbErrorKind::Transient
        );
    }

    #[test]
    fn server_has_gone_away_2006_is_transient() {
        transient(2006);
    }

    #[test]
    fn lost_connection_during_query_2013_is_transient() {
        transient(2013);
    }

    #[test]
    fn lost_connection_extended_2055_is_transient() {
        transient(2055);
    }

    #[test]
    fn too_many_connections_1040_is_transient() {
        transient(1040);
    }

    #[test]
    fn shutdown_in_progress_1053_is_transient() {
        transient(1053);
    }

    #[test]
    fn lock_wait_timeout_1205_is_transient() {
        transient(1205);
    }

    #[test]
    fn deadlock_1213_is_transient() {
        transient(1213);
    }

    #[test]
    fn query_interrupted_1317_is_transient() {
        transient(1317);
    }

    #[test]
    fn statement_timeouts_1969_and_3024_are_transient() {
        transient(1969);
        transient(3024);
    }

    #[test]
    fn connection_killed_1927_is_transient() {
        transient(1927);
    }

    #[test]
    fn idle_disconnect_4031_is_transient() {
        transient(4031);
    }

    #[test]
    fn read_only_during_a_failover_1290_and_1836_are_transient() {
        transient(1290);
        transient(1836);
    }

    #[test]
    fn syntax_error_1064_is_permanent() {
        permanent(1064);
    }

    #[test]
    fn unknown_table_1146_and_column_1054_are_permanent() {
        permanent(1146);
        permanent(1054);
    }

    #[test]
    fn duplicate_key_1062_is_permanent() {
        permanent(1062);
    }

    #[test]
    fn access_denied_1045_is_permanent() {
        permanent(1045);
    }

    #[test]
    fn unknown_database_1049_is_permanent() {
        permanent(1049);
    }

    #[test]
    fn data_too_long_1406_is_permanent() {
        permanent(1406);
    }

    #[test]
    fn only_mysql_urls_are_accepted_and_never_echoed() {
        assert!(check_url("mysql://u:secret@h/db", "MySqlStore::connect").is_ok());
        assert!(check_url("MariaDB://h/db", "MySqlStore::connect").is_ok());
        for (url, scheme) in [
            ("postgres://u:secret@h/db", "postgres"),
            ("sqlite:cronlease.db", "sqlite"),
        ] {
            let message = check_url(url, "MySqlStore::connect")
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(&format!(
                    "MySqlStore::connect needs a `mysql://` URL, not a `{scheme}:` one"
                )),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
        let message = check_url("u:secret@h/db", "MySqlStore::connect")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn connect_errors_name_host_port_and_database() {
        let options: MySqlConnectOptions = "mysql://u:secret@127.0.0.1:3307/app".parse().unwrap();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = connect_error(target(&options), sqlx::Error::Io(refused));
        let message = error.to_string();
        assert!(
            message.starts_with("connection refused at 127.0.0.1:3307 (database `app`): "),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        assert!(error.is_transient());
    }
}
