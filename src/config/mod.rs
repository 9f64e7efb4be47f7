//! Settings from a TOML file and `CRONLEASE_*` environment variables, so operators tune
//! timeouts, attempts, backoff and retention per environment without a rebuild.
//!
//! - [`Config`]: the whole file: the database URL, the scheduler's settings, retention, and
//!   per-job overrides keyed by job name. [`Config::load`] reads a file and the environment
//!   (the environment wins); [`Config::from_toml`] reads text only.
//! - [`SchedulerSettings`], [`RetentionSettings`], [`JobOverrides`]: its sections. Every field
//!   is optional: what a file leaves out keeps the code's value.
//! - `env.rs`: how `CRONLEASE_SCHEDULER__TICK_INTERVAL=10s` becomes `scheduler.tick_interval`.
//! - `apply.rs`: [`SchedulerBuilder::config`](crate::SchedulerBuilder::config) and the per-job
//!   overrides on a [`JobSpec`](crate::JobSpec).
//!
//! Unknown keys and bad values are errors naming the key and the file (or the variable), so a
//! typo never silently leaves a setting at its default. See `docs/configuration.md`.

mod apply;
mod env;
mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

pub use values::Keep;

/// Settings read from a TOML file and the environment. Build one with [`Config::load`] and
/// apply it with [`SchedulerBuilder::config`](crate::SchedulerBuilder::config).
///
/// ```
/// use cronlease::Config;
///
/// let config = Config::from_toml(r#"
///     database_url = "sqlite://cronlease.db"
///
///     [scheduler]
///     tick_interval = "10s"
///
///     [jobs.nightly-report]
///     max_attempts = 5
///     backoff = ["1m", "10m"]
/// "#, "cronlease.toml").unwrap();
/// assert_eq!(config.scheduler.tick_interval, Some(std::time::Duration::from_secs(10)));
/// assert_eq!(config.jobs["nightly-report"].max_attempts, Some(5));
/// ```
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The database URL (`sqlite://…`, a SQLite path, `postgres://…`, `mysql://…`). Never shown
    /// by `Debug` (it may hold a password). Default: none (the code's store is used).
    pub database_url: Option<String>,
    /// The scheduler's own settings.
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    /// How long executions are kept.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Per-job overrides, keyed by job name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobOverrides>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::store::redact_url),
            )
            .field("scheduler", &self.scheduler)
            .field("retention", &self.retention)
            .field("jobs", &self.jobs)
            .finish()
    }
}

/// The `[scheduler]` section: [`SchedulerBuilder`](crate::SchedulerBuilder)'s settings. Each
/// default is the builder's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SchedulerSettings {
    /// This runner's id. Default: a fresh UUID.
    pub runner_id: Option<String>,
    /// The longest sleep between ticks. Default: 30 s.
    #[serde(default, with = "values::duration")]
    pub tick_interval: Option<Duration>,
    /// Executions running at once on one runner. Default: 64.
    pub max_concurrent_executions: Option<usize>,
    /// How long shutdown waits for running handlers. Default: 10 s.
    #[serde(default, with = "values::duration")]
    pub shutdown_grace: Option<Duration>,
    /// Worker threads of the handler runtime. Default: 2.
    pub handler_threads: Option<usize>,
    /// How long start keeps trying an unreachable database. Default: 0 (fail fast).
    #[serde(default, with = "values::duration")]
    pub wait_for_database: Option<Duration>,
    /// Whether the scheduler ticks by itself. Default: true.
    pub auto_tick: Option<bool>,
    /// Attempts a replay grants a dead execution. Default: 1.
    pub replay_attempts: Option<u32>,
    /// How often the runner refreshes its registry row. Default: the shortest heartbeat.
    #[serde(default, with = "values::duration")]
    pub presence_interval: Option<Duration>,
    /// First delay after a transient database error. Default: 5 s.
    #[serde(default, with = "values::duration")]
    pub db_retry_initial: Option<Duration>,
    /// Longest delay between database retries. Default: 60 s.
    #[serde(default, with = "values::duration")]
    pub db_retry_max: Option<Duration>,
    /// How long a claim or terminal write keeps retrying. Default: 15 min.
    #[serde(default, with = "values::duration")]
    pub db_retry_give_up_after: Option<Duration>,
}

/// The `[retention]` section: [`Retention`](crate::Retention)'s fields. A `keep_*` value is a
/// duration or `"forever"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionSettings {
    /// Time between two runs of the retention service. Default: 5 min.
    #[serde(default, with = "values::duration")]
    pub interval: Option<Duration>,
    /// How long SUCCESS and SUPERSEDED rows are kept. Default: 30 days.
    pub keep_finished: Option<Keep>,
    /// How long DEAD rows are kept after their last failure. Default: 7 days.
    pub keep_dead: Option<Keep>,
    /// How long gone or stopped runners stay in the registry. Default: 7 days.
    pub keep_runners: Option<Keep>,
    /// Rows one delete statement removes. Default: 1000.
    pub batch_size: Option<usize>,
    /// How long spans of the skipped-plan ledger are kept. Default: 30 days.
    pub keep_skips: Option<Keep>,
}

/// A `[jobs.<name>]` section: overrides of one job's spec, applied on top of the code's
/// [`JobSpec`](crate::JobSpec) and checked as [`JobSpecBuilder::build`](crate::JobSpecBuilder::build)
/// checks them. Each default is the code's value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobOverrides {
    /// The schedule as the registry writes it: `every 15m`, `every 1d offset 2h`,
    /// `cron 0 3 * * *`.
    pub schedule: Option<String>,
    /// The IANA time zone of a cron schedule, e.g. `Europe/Berlin`.
    pub time_zone: Option<String>,
    /// The stagger window over which scopes' due times are spread.
    #[serde(default, with = "values::duration")]
    pub stagger: Option<Duration>,
    /// How long after its plan time a plan becomes due.
    #[serde(default, with = "values::duration")]
    pub schedule_delay: Option<Duration>,
    /// `latest_only` or `every_plan` (with `catch_up_window` and `catch_up_max_plans_per_tick`).
    pub catch_up: Option<String>,
    /// The EveryPlan window. Default with `every_plan`: 1 day.
    #[serde(default, with = "values::duration")]
    pub catch_up_window: Option<Duration>,
    /// The EveryPlan cap per scope and tick. Default with `every_plan`: 10.
    pub catch_up_max_plans_per_tick: Option<usize>,
    /// How long one attempt may run.
    #[serde(default, with = "values::duration")]
    pub run_timeout: Option<Duration>,
    /// How long a lease lives without a heartbeat (longer than `run_timeout`).
    #[serde(default, with = "values::duration")]
    pub stale_timeout: Option<Duration>,
    /// How often running leases are renewed.
    #[serde(default, with = "values::duration")]
    pub heartbeat_interval: Option<Duration>,
    /// Attempts per plan.
    pub max_attempts: Option<u32>,
    /// A list backoff: the delay after each failed attempt, the last one repeating.
    #[serde(default, with = "values::durations")]
    pub backoff: Option<Vec<Duration>>,
    /// An exponential backoff's first delay (with `backoff_factor` and `backoff_cap`).
    #[serde(default, with = "values::duration")]
    pub backoff_base: Option<Duration>,
    /// An exponential backoff's growth factor.
    pub backoff_factor: Option<f64>,
    /// An exponential backoff's longest delay.
    #[serde(default, with = "values::duration")]
    pub backoff_cap: Option<Duration>,
    /// Whether a stale lease may be taken over (false: a swept row is dead-lettered).
    pub allow_stale_reentry: Option<bool>,
    /// Whether an older FAILED plan is closed once a newer plan of its scope succeeds.
    pub supersede_failed: Option<bool>,
    /// What a claim does with a plan whose scope is still running: `skip`, `buffer_one`,
    /// `allow_all` or `cancel_other` ([`OverlapPolicy`](crate::OverlapPolicy)).
    pub overlap: Option<String>,
    /// The most RUNNING attempts of the job at once across the cluster (at least 1).
    pub max_concurrent: Option<u32>,
    /// How long this job's SUCCESS, SUPERSEDED and SKIPPED rows are kept (a duration or
    /// `"forever"`), instead of `[retention] keep_finished`. DEAD rows keep `keep_dead`.
    pub keep_finished: Option<Keep>,
}

/// The environment variable naming the settings file for the command-line tool.
pub const CONFIG_FILE_VAR: &str = "CRONLEASE_CONFIG";

impl Config {
    /// Reads `file` (when given) and the `CRONLEASE_*` environment variables, which win over the
    /// file. Errors name the key and the file (`cronlease.toml:7: scheduler.tick_interval: …`),
    /// or the variable.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given (for tests and tools).
    pub fn load_with_env(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::InvalidConfig(format!(
                        "cannot read the settings file {}: {e}",
                        path.display()
                    ))
                })?;
                let origin = path.display().to_string();
                // Parsed once on its own, so an error points at a line of the file.
                Self::from_toml(&text, &origin)?;
                parse_table(&text, &origin)?
            }
            None => toml::Table::new(),
        };
        let merged = env::overlay(table, vars)?;
        toml::Value::Table(merged)
            .try_into::<Config>()
            .map_err(|e| Error::InvalidConfig(format!("the environment: {}", e.message())))
    }

    /// Reads settings from TOML text; `origin` names it in errors (a file name).
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        toml::from_str::<Config>(text).map_err(|e| located(text, origin, &e))
    }
}

/// The text as a TOML table, or an error naming the line.
fn parse_table(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|e| located(text, origin, &e))
}

/// One line: `file:line: section.key: message`.
fn located(text: &str, origin: &str, error: &toml::de::Error) -> Error {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return Error::InvalidConfig(format!("{origin}: {message}"));
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let key = key_at(text, span.start);
    let message = match key {
        Some(key) if !message.contains(&format!("`{key}`")) => format!("{key}: {message}"),
        _ => message.to_owned(),
    };
    Error::InvalidConfig(format!("{origin}:{line}: {message}"))
}

/// The dotted key of the value or key at byte `at`: the section header above it and the key on
/// its line (`scheduler.tick_interval`).
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'));
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match (section, key) {
        (Some(section), Some(key)) => Some(format!("{section}.{key}")),
        (None, Some(key)) => Some(key.to_owned()),
        (Some(section), None) => Some(section),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
