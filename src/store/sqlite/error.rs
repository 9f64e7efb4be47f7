//! SQLite error codes that are worth a retry, and open failures told to a person.

use std::path::Path;

use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;

use crate::error::{DbErrorKind, Error};

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

/// `SQLITE_CANTOPEN`: the file could not be opened or created.
const SQLITE_CANTOPEN: i32 = 14;

/// Checks that `url` is a SQLite URL (`sqlite:` or no scheme at all, a plain path), naming only
/// its scheme (never the URL: it may hold a password).
pub(crate) fn check_url(url: &str) -> Result<(), Error> {
    match crate::store::url::scheme(url) {
        Some(scheme) if !scheme.eq_ignore_ascii_case("sqlite") => {
            Err(Error::InvalidConfig(format!(
                "SqliteStore::connect needs a `sqlite:` URL such as `sqlite://cronlease.db`, not a `{scheme}:` one (PgStore connects to PostgreSQL, MySqlStore to MySQL)"
            )))
        }
        _ => Ok(()),
    }
}

/// An [`Error::Connect`] for a database at `path` that could not be opened, naming the path
/// and, when the file could not be opened at all, why (a missing directory, a directory in its
/// place, permissions).
pub(crate) fn open_error(path: &Path, source: sqlx::Error) -> Error {
    let target = path.display().to_string();
    let cannot_open = match &source {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<SqliteError>()
            .and_then(|e| e.code()?.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_CANTOPEN),
        _ => false,
    };
    let message = if target.is_empty() || target == ":memory:" {
        format!("cannot open the in-memory SQLite database: {source}")
    } else if cannot_open {
        format!(
            "unable to open database file `{target}`: {}",
            why_unopenable(path)
        )
    } else {
        format!("cannot open the SQLite database `{target}`: {source}")
    };
    Error::Connect {
        kind: crate::store::classify(&source),
        target,
        message,
        source,
    }
}

/// Why SQLite could not open or create `path`, found by looking at the file system.
fn why_unopenable(path: &Path) -> String {
    use std::io::ErrorKind;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return format!(
                    "the directory `{}` does not exist: create it first",
                    dir.display()
                );
            }
            Err(e) => return format!("the directory `{}` cannot be read: {e}", dir.display()),
            Ok(meta) if !meta.is_dir() => {
                return format!("`{}` is not a directory", dir.display());
            }
            Ok(_) => {}
        }
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => "it is a directory: give the path of a file".into(),
        Ok(_) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Err(e) => format!("{e}: check the file's permissions"),
            Ok(_) => "check the permissions of the file and of its directory".into(),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            "the file does not exist and could not be created: check that its directory is writable"
                .into()
        }
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_urls_and_plain_paths_are_accepted() {
        for url in [
            "sqlite://cronlease.db",
            "sqlite::memory:",
            "cronlease.db",
            ":memory:",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
        let message = check_url("postgres://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("SqliteStore::connect needs a `sqlite:` URL"),
            "{message}"
        );
        assert!(message.contains("not a `postgres:` one"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn why_a_file_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("x").join("y.db");
        assert_eq!(
            why_unopenable(&missing),
            format!(
                "the directory `{}` does not exist: create it first",
                dir.path().join("x").display()
            )
        );
        assert_eq!(
            why_unopenable(dir.path()),
            "it is a directory: give the path of a file"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            why_unopenable(&file.join("y.db")),
            format!("`{}` is not a directory", file.display())
        );
    }

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
