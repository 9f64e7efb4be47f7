//! The session every pooled connection of a [`MySqlStore`](super::MySqlStore) gets, and how
//! the server's flavour decides which deadlines it can hold.
//!
//! - `Flavour`: MariaDB or MySQL, read from `SELECT VERSION()` when a connection opens.
//! - `bounded`: the `SET SESSION` statement that puts [`StoreDeadlines`] on the server.
//! - `unbounded`: the one that lifts them again, for the migration's own session.
//!
//! The two servers share the lock waits but differ in the rest:
//!
//! | deadline | MariaDB 10.11 | MySQL 8 |
//! |---|---|---|
//! | `lock` | `innodb_lock_wait_timeout`, `lock_wait_timeout` (whole seconds; error 1205) | the same |
//! | `statement` | `max_statement_time` (seconds, fractional): **every** statement; error 1969 | `max_execution_time` (milliseconds): **`SELECT`s only** (the locking reads included, not `INSERT`, `UPDATE`, `DELETE`); error 3024 |
//! | `idle_in_transaction` | `idle_transaction_timeout` (whole seconds): the server closes the session of a transaction left idle, releasing its locks | none: `wait_timeout` (default 8 h) or the server's TCP keepalive ends it |
//! | `server_keepalive` | none per session (`tcp_keepalive_time` is global) | none per session |
//!
//! A variable a server does not know is an error (1193), so the statement is built for the
//! flavour the connection reports rather than tried blindly.

use std::time::Duration;

use crate::store::StoreDeadlines;

/// Which server a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// MariaDB (10.11 and later): `VERSION()` says `...-MariaDB...`.
    MariaDb,
    /// Oracle's MySQL (8.0 and later), and anything else speaking its protocol.
    MySql,
}

impl Flavour {
    /// The flavour from the server's `VERSION()`.
    pub(crate) fn of_version(version: &str) -> Flavour {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        }
    }

    /// Reads the flavour of the server `conn` is connected to.
    pub(crate) async fn of(conn: &mut sqlx::MySqlConnection) -> Result<Flavour, sqlx::Error> {
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Flavour::of_version(&version))
    }
}

/// Whole seconds, rounded up, at least 1 (the servers count these waits in seconds, and zero
/// would mean "no limit" for some of them).
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The `SET SESSION` statement that puts `deadlines` on a session of `flavour`; the isolation
/// level travels with it (see the store's module docs).
pub(crate) fn bounded(flavour: Flavour, deadlines: &StoreDeadlines) -> String {
    let lock = whole_seconds(deadlines.lock);
    let mut settings = vec![
        format!("innodb_lock_wait_timeout = {lock}"),
        format!("lock_wait_timeout = {lock}"),
    ];
    match flavour {
        Flavour::MariaDb => {
            // Fractional seconds; a zero would lift the limit, and `validate` keeps it ≥ 1 ms.
            let statement = deadlines.statement.as_secs_f64().max(0.001);
            settings.push(format!("max_statement_time = {statement:.3}"));
            settings.push(format!(
                "idle_transaction_timeout = {}",
                whole_seconds(deadlines.idle_in_transaction)
            ));
        }
        Flavour::MySql => {
            let statement = crate::store::deadline::millis(deadlines.statement);
            settings.push(format!("max_execution_time = {statement}"));
        }
    }
    format!(
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION {}",
        settings.join(", ")
    )
}

/// The `SET SESSION` statement that lifts the deadlines of [`bounded`]: a migration may wait
/// long for a metadata lock and run long on a big table. Its session is closed afterwards, so
/// the setting never reaches the pool.
pub(crate) fn unbounded(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::MariaDb => {
            "SET SESSION lock_wait_timeout = 3600, innodb_lock_wait_timeout = 3600, max_statement_time = 0, idle_transaction_timeout = 0"
        }
        Flavour::MySql => {
            "SET SESSION lock_wait_timeout = 3600, innodb_lock_wait_timeout = 3600, max_execution_time = 0"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flavour_is_read_from_the_version() {
        assert_eq!(
            Flavour::of_version("10.11.19-MariaDB-0+deb12u1"),
            Flavour::MariaDb
        );
        assert_eq!(
            Flavour::of_version("5.5.5-10.11.6-MariaDB"),
            Flavour::MariaDb
        );
        assert_eq!(Flavour::of_version("8.0.40"), Flavour::MySql);
        assert_eq!(Flavour::of_version("8.4.3-commercial"), Flavour::MySql);
    }

    #[test]
    fn mariadb_bounds_every_statement_and_idle_transactions() {
        let deadlines = StoreDeadlines {
            statement: Duration::from_millis(2500),
            lock: Duration::from_millis(300),
            idle_in_transaction: Duration::from_millis(30_500),
            ..StoreDeadlines::default()
        };
        assert_eq!(
            bounded(Flavour::MariaDb, &deadlines),
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION \
             innodb_lock_wait_timeout = 1, lock_wait_timeout = 1, max_statement_time = 2.500, \
             idle_transaction_timeout = 31"
        );
    }

    #[test]
    fn mysql_bounds_selects_in_milliseconds_and_knows_no_idle_transaction_timeout() {
        let statement = bounded(Flavour::MySql, &StoreDeadlines::default());
        assert_eq!(
            statement,
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION \
             innodb_lock_wait_timeout = 5, lock_wait_timeout = 5, max_execution_time = 25000"
        );
        assert!(!statement.contains("max_statement_time"));
        assert!(!statement.contains("idle_transaction_timeout"));
    }

    #[test]
    fn the_migration_lifts_what_the_pool_set() {
        for flavour in [Flavour::MariaDb, Flavour::MySql] {
            let bounded = bounded(flavour, &StoreDeadlines::default());
            let lifted = unbounded(flavour);
            for variable in [
                "innodb_lock_wait_timeout",
                "lock_wait_timeout",
                "max_statement_time",
                "max_execution_time",
                "idle_transaction_timeout",
            ] {
                assert_eq!(
                    bounded.contains(variable),
                    lifted.contains(variable),
                    "{flavour:?} {variable}"
                );
            }
        }
    }
}
