//! Decoding the job and runner registry's rows, shared by every backend: each backend reads
//! its columns in the order of its `RUNNER_LIST` and `REGISTERED_JOBS` statements through
//! [`Columns`], and the rows become [`Runner`]s and registered jobs here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::control::{JobDescription, RegistryRow, Runner, RunnerState};
use crate::error::Result;
use crate::store::rowmap::{corrupt, count};

/// Typed access to a result row's columns by position.
pub(crate) trait Columns {
    /// A text column (names as UTF-8 whatever the column type).
    fn text(&self, i: usize) -> sqlx::Result<String>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>>;
    /// An integer column.
    fn int(&self, i: usize) -> sqlx::Result<i64>;
    /// A time column.
    fn time(&self, i: usize) -> sqlx::Result<DateTime<Utc>>;
    /// A nullable time column.
    fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>>;
}

fn dec(e: sqlx::Error) -> crate::error::Error {
    corrupt("registry", e.to_string())
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A runner from `runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen,
/// stopped_at, now`.
pub(crate) fn runner(row: &impl Columns) -> Result<Runner> {
    let id = row.text(0).map_err(dec)?;
    let refresh_interval = millis(row.int(4).map_err(dec)?);
    let last_seen = row.time(6).map_err(dec)?;
    let stopped_at = row.opt_time(7).map_err(dec)?;
    let now = row.time(8).map_err(dec)?;
    Ok(Runner {
        host: row.text(1).map_err(dec)?,
        pid: count(&id, "pid", row.int(2).map_err(dec)?)?,
        version: row.text(3).map_err(dec)?,
        started_at: row.time(5).map_err(dec)?,
        last_seen,
        stopped_at,
        refresh_interval,
        state: RunnerState::at(last_seen, stopped_at, refresh_interval, now),
        id,
    })
}

/// A `(runner, job)` row from `runner_id, job_name, spec_hash, schedule, time_zone, stagger_ms,
/// schedule_delay_ms, catch_up, max_attempts, backoff, run_timeout_ms, stale_timeout_ms,
/// heartbeat_interval_ms, spec, registered_at, last_seen, stopped_at, refresh_interval_ms, now`.
pub(crate) fn registry_row(row: &impl Columns) -> Result<RegistryRow> {
    let runner_id = row.text(0).map_err(dec)?;
    let last_seen = row.time(15).map_err(dec)?;
    let stopped_at = row.opt_time(16).map_err(dec)?;
    let refresh_interval = millis(row.int(17).map_err(dec)?);
    let now = row.time(18).map_err(dec)?;
    Ok(RegistryRow {
        runner_state: RunnerState::at(last_seen, stopped_at, refresh_interval, now),
        job: JobDescription {
            name: row.text(1).map_err(dec)?,
            spec_hash: row.text(2).map_err(dec)?,
            schedule: row.opt_text(3).map_err(dec)?,
            time_zone: row.text(4).map_err(dec)?,
            stagger: millis(row.int(5).map_err(dec)?),
            schedule_delay: millis(row.int(6).map_err(dec)?),
            catch_up: row.text(7).map_err(dec)?,
            max_attempts: count(&runner_id, "max_attempts", row.int(8).map_err(dec)?)?,
            backoff: row.text(9).map_err(dec)?,
            run_timeout: millis(row.int(10).map_err(dec)?),
            stale_timeout: millis(row.int(11).map_err(dec)?),
            heartbeat_interval: millis(row.int(12).map_err(dec)?),
            spec: row.text(13).map_err(dec)?,
        },
        registered_at: row.time(14).map_err(dec)?,
        runner_id,
    })
}

/// The registry's rows as jobs, skipping (with a warning) rows that cannot be decoded.
pub(crate) fn registered_jobs<'a, R: Columns + 'a>(
    rows: impl Iterator<Item = &'a R>,
) -> Vec<crate::control::RegisteredJob> {
    crate::control::registered_jobs(super::skip_corrupt(rows.map(registry_row)))
}
