//! `CRONLEASE_*` environment variables as settings: the name is the key's path in capitals,
//! sections joined by a double underscore.
//!
//! - `CRONLEASE_DATABASE_URL` → `database_url`
//! - `CRONLEASE_SCHEDULER__TICK_INTERVAL` → `scheduler.tick_interval`
//! - `CRONLEASE_RETENTION__KEEP_DEAD` → `retention.keep_dead`
//! - `CRONLEASE_JOBS__NIGHTLY_REPORT__MAX_ATTEMPTS` → `jobs.<name>.max_attempts`, where the job
//!   is the file's job whose name in capitals, with `-` and `.` as `_`, is `NIGHTLY_REPORT`
//!   (else the job named `nightly_report`).
//!
//! A value reads as TOML when it is a number, a boolean or a list (`["1m", "5m"]`), else as
//! text. `CRONLEASE_CONFIG` (the tool's file) and `CRONLEASE_TEST_*` (the test suites' servers)
//! are not settings; any other `CRONLEASE_*` variable must name a known key.

use serde::Deserialize;

use super::{CONFIG_FILE_VAR, Config};
use crate::error::{Error, Result};

/// The prefix of every settings variable.
const PREFIX: &str = "CRONLEASE_";

/// `table` with the settings of `vars` laid over it. Each variable is checked on its own
/// first, so an error names it.
pub(super) fn overlay(
    mut table: toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<toml::Table> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with(PREFIX)
                && name != CONFIG_FILE_VAR
                && !name.starts_with("CRONLEASE_TEST_")
        })
        .collect();
    vars.sort();
    for (name, value) in vars {
        let path = key_path(&name, &table)?;
        let value = value_of(&value);
        let mut alone = toml::Table::new();
        set(&mut alone, &path, value.clone());
        if let Err(e) = Config::deserialize(toml::Value::Table(alone)) {
            return Err(Error::InvalidConfig(format!(
                "environment variable {name} ({}): {}",
                path.join("."),
                e.message()
            )));
        }
        set(&mut table, &path, value);
    }
    Ok(table)
}

/// The key path a variable names.
fn key_path(name: &str, table: &toml::Table) -> Result<Vec<String>> {
    let rest = &name[PREFIX.len()..];
    let parts: Vec<&str> = rest.split("__").collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::InvalidConfig(format!(
            "environment variable {name}: not a settings key (sections are joined by `__`)"
        )));
    }
    let lower = |s: &str| s.to_ascii_lowercase();
    match parts.as_slice() {
        ["JOBS", job, key] => {
            let known = table
                .get("jobs")
                .and_then(|jobs| jobs.as_table())
                .and_then(|jobs| jobs.keys().find(|k| env_name(k) == *job).cloned());
            Ok(vec![
                "jobs".into(),
                known.unwrap_or_else(|| lower(job)),
                lower(key),
            ])
        }
        _ => Ok(parts.iter().map(|p| lower(p)).collect()),
    }
}

/// A job name as it is written in a variable: capitals, anything else than a letter or a digit
/// as `_`.
fn env_name(job: &str) -> String {
    job.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A number, a boolean or a list as TOML; anything else as text.
fn value_of(text: &str) -> toml::Value {
    let trimmed = text.trim();
    let looks_typed = trimmed == "true"
        || trimmed == "false"
        || trimmed.starts_with('[')
        || trimmed.parse::<i64>().is_ok()
        || trimmed.parse::<f64>().is_ok();
    if looks_typed
        && let Ok(table) = format!("v = {trimmed}").parse::<toml::Table>()
        && let Some(value) = table.get("v")
    {
        return value.clone();
    }
    toml::Value::String(text.to_owned())
}

/// Sets `path` in `table`, creating sections on the way.
fn set(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, sections) = path.split_last().expect("a key path is not empty");
    let mut at = table;
    for section in sections {
        let entry = at
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        at = entry.as_table_mut().expect("made a table above");
    }
    at.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_match_the_files_jobs_by_their_variable_form() {
        let table: toml::Table = "[jobs.nightly-report]\nmax_attempts = 2".parse().unwrap();
        let path = key_path("CRONLEASE_JOBS__NIGHTLY_REPORT__MAX_ATTEMPTS", &table).unwrap();
        assert_eq!(path, ["jobs", "nightly-report", "max_attempts"]);
        let path = key_path("CRONLEASE_JOBS__OTHER__MAX_ATTEMPTS", &table).unwrap();
        assert_eq!(path, ["jobs", "other", "max_attempts"]);
    }

    #[test]
    fn values_are_typed_only_when_they_look_typed() {
        assert_eq!(value_of("5"), toml::Value::Integer(5));
        assert_eq!(value_of("true"), toml::Value::Boolean(true));
        assert_eq!(value_of("30s"), toml::Value::String("30s".into()));
        assert!(value_of(r#"["1m", "5m"]"#).is_array());
        assert_eq!(
            value_of("postgres://u@h/db"),
            toml::Value::String("postgres://u@h/db".into())
        );
    }
}
