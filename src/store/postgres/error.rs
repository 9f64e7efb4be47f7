//! PostgreSQL SQLSTATE codes that are worth a retry.

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;

use crate::error::DbErrorKind;

/// `None` when the error is not PostgreSQL's.
pub(crate) fn classify(error: &dyn DatabaseError) -> Option<DbErrorKind> {
    let pg = error.try_downcast_ref::<PgDatabaseError>()?;
    Some(classify_code(pg.code()))
}

/// Classifies a SQLSTATE: connection exceptions (class 08), operator intervention (57P01 admin
/// shutdown, 57P02 crash shutdown, 57P03 cannot connect now), serialization failure (40001),
/// deadlock (40P01), too many connections (53300) and lock not available (55P03) are transient.
pub(crate) fn classify_code(code: &str) -> DbErrorKind {
    match code {
        c if c.starts_with("08") => DbErrorKind::Transient,
        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300" | "55P03" => {
            DbErrorKind::Transient
        }
        _ => DbErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_shutdown_and_contention_codes_are_transient() {
        for code in [
            "08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03", "40001",
            "40P01", "53300", "55P03",
        ] {
            assert_eq!(classify_code(code), DbErrorKind::Transient, "{code}");
        }
    }

    #[test]
    fn data_and_syntax_codes_are_permanent() {
        for code in ["23505", "23514", "42601", "42P01", "22P02", "42703"] {
            assert_eq!(classify_code(code), DbErrorKind::Permanent, "{code}");
        }
    }
}
