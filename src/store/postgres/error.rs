//! PostgreSQL SQLSTATE codes that are worth a retry.

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;

use crate::error::DbErrorKind;

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

#[cfg(test)]
mod tests {
    use super::*;

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
