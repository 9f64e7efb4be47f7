//! SQLite error codes that are worth a retry.

use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;

use crate::error::DbErrorKind;

/// `SQLITE_BUSY`, `SQLITE_LOCKED` and their extended codes (primary code in the low byte),
/// `SQLITE_IOERR` family, `SQLITE_PROTOCOL`; other SQLite codes are permanent.
/// `None` when the error is not SQLite's.
pub(crate) fn classify(error: &dyn DatabaseError) -> Option<DbErrorKind> {
    let sqlite = error.try_downcast_ref::<SqliteError>()?;
    let code: i32 = sqlite.code()?.parse().ok()?;
    Some(classify_code(code))
}

/// Classifies an extended SQLite result code.
pub(crate) fn classify_code(code: i32) -> DbErrorKind {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    const SQLITE_IOERR: i32 = 10;
    const SQLITE_PROTOCOL: i32 = 15;
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_PROTOCOL => DbErrorKind::Transient,
        _ => DbErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_locked_are_transient() {
        assert_eq!(classify_code(5), DbErrorKind::Transient); // SQLITE_BUSY
        assert_eq!(classify_code(517), DbErrorKind::Transient); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(classify_code(261), DbErrorKind::Transient); // SQLITE_BUSY_RECOVERY
        assert_eq!(classify_code(6), DbErrorKind::Transient); // SQLITE_LOCKED
        assert_eq!(classify_code(262), DbErrorKind::Transient); // SQLITE_LOCKED_SHAREDCACHE
        assert_eq!(classify_code(10), DbErrorKind::Transient); // SQLITE_IOERR
        assert_eq!(classify_code(3338), DbErrorKind::Transient); // SQLITE_IOERR_FSYNC
        assert_eq!(classify_code(15), DbErrorKind::Transient); // SQLITE_PROTOCOL (WAL lock race)
    }

    #[test]
    fn constraint_and_syntax_errors_are_permanent() {
        assert_eq!(classify_code(1), DbErrorKind::Permanent); // SQLITE_ERROR
        assert_eq!(classify_code(2067), DbErrorKind::Permanent); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(classify_code(275), DbErrorKind::Permanent); // SQLITE_CONSTRAINT_CHECK
        assert_eq!(classify_code(8), DbErrorKind::Permanent); // SQLITE_READONLY
        assert_eq!(classify_code(13), DbErrorKind::Permanent); // SQLITE_FULL
        assert_eq!(classify_code(14), DbErrorKind::Permanent); // SQLITE_CANTOPEN
        assert_eq!(classify_code(11), DbErrorKind::Permanent); // SQLITE_CORRUPT
    }
}
