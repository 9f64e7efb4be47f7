//! The database a command works on, and what is typed on the command line (times, scopes).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::Failure;
use super::args::{Cli, Global};
use crate::config::{CONFIG_FILE_VAR, Config};
use crate::control::RegisteredJob;
use crate::scope::Scope;
use crate::store::{MySqlStore, PgStore, SqliteStore, Store, url::scheme};

/// An open database and the settings the tool read.
pub(crate) struct Context {
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// The settings file (and `CRONLEASE_*` variables); empty without a file.
    pub(crate) config: Config,
    /// The same store when it is PostgreSQL, for what only PostgreSQL does (partitioned history).
    pub(crate) pg: Option<PgStore>,
}

impl Context {
    /// Reads the settings, connects, and (with `need_schema`) checks that the schema is there
    /// and current: a tool reading an older schema would fail on its first query.
    pub(crate) async fn open(global: &Global, need_schema: bool) -> Result<Context, Failure> {
        let config = settings(global.config.as_deref())?;
        let url = global
            .database_url
            .clone()
            .or_else(|| config.database_url.clone())
            .ok_or_else(|| {
                Failure::Usage(
                    "no database: give --database-url, set CRONLEASE_DATABASE_URL, or name a settings file with database_url (--config)"
                        .into(),
                )
            })?;
        let (store, pg) = connect(&url, need_schema).await?;
        if need_schema {
            let status = store.migration_status().await?;
            if status.applied == 0 {
                return Err(Failure::Error(
                    "the database has no cronlease schema: check the URL, or run `cronlease migrate`".into(),
                ));
            }
            if status.applied < status.known {
                return Err(Failure::Error(format!(
                    "the schema is at version {} and this tool needs {}: run `cronlease migrate`",
                    status.applied, status.known
                )));
            }
            if status.applied > status.known {
                eprintln!(
                    "warning: the schema (version {}) is newer than this tool knows ({}): upgrade the tool",
                    status.applied, status.known
                );
            }
        }
        Ok(Context { store, config, pg })
    }

    /// The registered job `name`, or an error naming it.
    pub(crate) async fn job(&self, name: &str) -> Result<RegisteredJob, Failure> {
        self.store
            .registered_jobs(Some(name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Failure::Error(format!(
                    "no job named `{name}` is registered in this database (see `cronlease jobs`)"
                ))
            })
    }

    /// The database clock.
    pub(crate) async fn now(&self) -> Result<DateTime<Utc>, Failure> {
        Ok(self.store.db_now().await?)
    }
}

/// The settings: the named file (or `CRONLEASE_CONFIG`'s) and the environment.
pub(crate) fn settings(file: Option<&Path>) -> Result<Config, Failure> {
    Config::load(file).map_err(Failure::from)
}

/// The store for `url`, by its scheme; a plain path is a SQLite file. Only `migrate` may
/// create a SQLite file: anywhere else a missing file is a mistyped path.
async fn connect(
    url: &str,
    must_exist: bool,
) -> Result<(Arc<dyn Store>, Option<PgStore>), Failure> {
    match scheme(url).map(str::to_ascii_lowercase).as_deref() {
        Some("postgres" | "postgresql") => {
            let store = PgStore::connect(url).await?;
            Ok((Arc::new(store.clone()), Some(store)))
        }
        Some("mysql" | "mariadb") => Ok((Arc::new(MySqlStore::connect(url).await?), None)),
        Some("sqlite") | None => {
            let path = sqlite_path(url);
            if must_exist
                && let Some(path) = path
                && !Path::new(path).exists()
            {
                return Err(Failure::Error(format!(
                    "no SQLite database at `{path}`: check the path (`cronlease migrate` creates one)"
                )));
            }
            let store = if scheme(url).is_some() {
                SqliteStore::connect(url).await?
            } else {
                SqliteStore::open(url).await?
            };
            Ok((Arc::new(store), None))
        }
        Some(other) => Err(Failure::Usage(format!(
            "unsupported database scheme `{other}:`: use a SQLite path, sqlite://, postgres:// or mysql://"
        ))),
    }
}

/// The file of a SQLite URL or path; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// The passwords the command line, the environment and the settings file hold, to scrub from
/// any message (the stores already leave them out; this makes sure).
pub(crate) fn secrets(cli: &Cli) -> Vec<String> {
    let from_file = cli
        .global
        .config
        .clone()
        .or_else(|| std::env::var_os(CONFIG_FILE_VAR).map(Into::into))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("database_url")?.as_str().map(str::to_owned));
    let mut secrets: Vec<String> = [
        cli.global.database_url.clone(),
        std::env::var("CRONLEASE_DATABASE_URL").ok(),
        from_file,
    ]
    .into_iter()
    .flatten()
    .filter_map(|url| password(&url))
    .filter(|p| p.len() >= 2)
    .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// The password of a URL (`user:password@`, or a `password=` parameter).
fn password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        return Some(password.to_owned());
    }
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
        .map(|(_, v)| v.to_owned())
}

/// A scope typed as `KIND:ID`, or `global`.
pub(crate) fn parse_scope(text: &str) -> Result<Scope, Failure> {
    if text == Scope::GLOBAL {
        return Ok(Scope::global());
    }
    let (kind, id) = text.split_once(':').ok_or_else(|| {
        Failure::Usage(format!(
            "scope `{text}` is not KIND:ID: write e.g. --scope tenant:42 (or `global`)"
        ))
    })?;
    let scope = Scope::new(kind, id);
    scope.validate().map_err(Failure::Usage)?;
    Ok(scope)
}

/// A time typed on the command line: RFC 3339, a date or date and time (UTC), or a duration
/// before `now` (`24h`, `7d`).
pub(crate) fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now - crate::schedule::delta(ago));
    }
    Err(Failure::Usage(format!(
        "`{text}` is not a time: write RFC 3339 (2026-11-29T03:00:00Z), a date (2026-11-29), or a duration ago (24h)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_documented_form() {
        let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let at = |s| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2026-11-29T03:00:00+01:00"), "2026-11-29T02:00:00+00:00");
        assert_eq!(at("2026-11-28"), "2026-11-28T00:00:00+00:00");
        assert_eq!(at("2026-11-28 06:30"), "2026-11-28T06:30:00+00:00");
        assert_eq!(at("2h"), "2026-11-29T10:00:00+00:00");
        assert_eq!(at("1d 6h"), "2026-11-28T06:00:00+00:00");
        assert!(
            matches!(parse_time("yesterday", now), Err(Failure::Usage(m)) if m.contains("`yesterday` is not a time"))
        );
    }

    #[test]
    fn scopes_are_kind_colon_id() {
        assert_eq!(
            parse_scope("tenant:42").unwrap(),
            Scope::new("tenant", "42")
        );
        assert_eq!(
            parse_scope("url:http://x").unwrap(),
            Scope::new("url", "http://x")
        );
        assert_eq!(parse_scope("global").unwrap(), Scope::global());
        assert!(matches!(parse_scope("tenant"), Err(Failure::Usage(_))));
        assert!(matches!(parse_scope(":1"), Err(Failure::Usage(_))));
    }

    #[test]
    fn passwords_are_found_to_be_scrubbed() {
        assert_eq!(
            password("postgres://u:s3cret@h/db").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            password("mysql://h/db?user=u&password=pw").as_deref(),
            Some("pw")
        );
        assert_eq!(password("postgres://u@h/db"), None);
        assert_eq!(password("sqlite://x.db"), None);
    }

    #[test]
    fn sqlite_paths_are_taken_from_urls() {
        assert_eq!(sqlite_path("sqlite://data/x.db"), Some("data/x.db"));
        assert_eq!(sqlite_path("sqlite:x.db?mode=rwc"), Some("x.db"));
        assert_eq!(sqlite_path("x.db"), Some("x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
