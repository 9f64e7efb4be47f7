//! Metric names, their descriptions and the calls that move them, through the `metrics` facade
//! (Prometheus-style names), and the `tracing` span every handler runs in.
//!
//! - [`describe`]: registers a description and unit for every metric with the installed
//!   recorder, so a Prometheus exporter prints `# HELP` lines. [`Scheduler`](crate::Scheduler)
//!   start calls it; a host that installs its recorder later calls it itself.
//! - [`METRICS`]: every metric with its kind, unit and description ([`MetricDescription`]).
//! - The metric name constants ([`CLAIMS`], [`EXECUTIONS`], ...), for dashboards and tests.
//! - [`EXECUTION_SPAN`]: the name of the span each handler future runs inside, with the fields
//!   `job`, `scope_kind`, `scope_id`, `plan_time`, `execution_id`, `attempt`, `runner` and, once
//!   the handler returns, `outcome`; events a handler logs carry them.
//!
//! Installing a recorder or a `tracing` subscriber is the host's choice; without one these calls
//! cost nothing and the library is silent. `docs/metrics.md` lists every metric with its labels
//! and what to alert on; `docs/observability.md` covers logs, spans and OpenTelemetry export.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use metrics::{
    Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use uuid::Uuid;

use crate::scope::Scope;

/// Claims by outcome (`won`, `stole`, `retried`, `replayed`, `conflicted`).
pub const CLAIMS: &str = "cronlease_claims_total";
/// Finished attempts by outcome (`success`, `failed`, `dead`, `lease_lost`) and error code.
pub const EXECUTIONS: &str = "cronlease_executions_total";
/// Retries scheduled, by the attempt that failed.
pub const RETRIES: &str = "cronlease_retries_total";
/// Plans moved to DEAD, by a failure write or by the stale sweep.
pub const DEAD_LETTERED: &str = "cronlease_dead_lettered_total";
/// DEAD plans an operator replayed.
pub const REPLAYED: &str = "cronlease_replayed_total";
/// Leases found taken over by another runner.
pub const LEASE_LOST: &str = "cronlease_lease_lost_total";
/// RUNNING rows the sweep moved because their lease went stale.
pub const SWEPT_STALE: &str = "cronlease_swept_stale_total";
/// Transient database errors met by the runtime, by store operation.
pub const DB_TRANSIENT_ERRORS: &str = "cronlease_db_transient_errors_total";
/// Deadlocks the database broke by failing one of this runner's statements (PostgreSQL 40P01,
/// MySQL 1213), by store operation, including those the MySQL store ran again at once. Zero
/// while every batched write locks its rows in one order.
pub const DB_DEADLOCKS: &str = "cronlease_db_deadlocks_total";
/// Database writes the runtime gave up on after retrying, by store operation.
pub const DB_GAVE_UP: &str = "cronlease_db_gave_up_total";
/// Handler run time in seconds.
pub const HANDLER_DURATION: &str = "cronlease_handler_duration_seconds";
/// Seconds from plan time (plus schedule delay) to handler start.
pub const START_LAG: &str = "cronlease_start_lag_seconds";
/// Executions running on this runner.
pub const RUNNING: &str = "cronlease_running_executions";
/// RUNNING rows whose lease is stale and not yet swept, per job (measured by the retention
/// service at each run).
pub const STALE_RUNNING: &str = "cronlease_stale_running_executions";
/// Database clock minus runner clock, in seconds.
pub const CLOCK_OFFSET: &str = "cronlease_clock_offset_seconds";
/// Rows deleted by the retention prune, by set (`finished`, `dead`).
pub const PRUNED: &str = "cronlease_pruned_total";
/// FAILED plans closed as SUPERSEDED because a newer plan of their scope succeeded (jobs that
/// opted in with `supersede_failed`).
pub const SUPERSEDED: &str = "cronlease_superseded_total";
/// Parts of a job's tick skipped because of an error, by reason: `scope_provider_error`,
/// `scope_provider_panic`, `scope_provider_timeout`, `planner_hook_error`, `planner_hook_panic`,
/// `planner_hook_timeout`, `invalid_scope` (one per scope skipped), `database` (a permanent
/// database error; transient ones are in `cronlease_db_transient_errors_total`).
pub const TICK_ERRORS: &str = "cronlease_tick_errors_total";
/// Counter, labels `job`, `reason`: plans deliberately not run, by reason: `overlap` (the
/// previous plan of the scope was still running; a SKIPPED row), `latest_only`,
/// `outside_window`, `schedule_change` (the catch-up mode jumped over them; a ledger span),
/// counted by the runner that decided.
pub const PLANS_SKIPPED: &str = "cronlease_plans_skipped_total";
/// Counter, labels `job`, `reason` (`error`, `panic`, `timeout`): scope providers that failed, so
/// the job planned nothing new that tick. Also counted in [`TICK_ERRORS`] (as
/// `scope_provider_*`); this one alone answers "is any tenant list broken".
pub const SCOPE_PROVIDER_FAILURES: &str = "cronlease_scope_provider_failures_total";
/// Gauge, label `job`: the plan time (Unix seconds) of the newest plan whose success this runner
/// recorded since it started. Plan time, not finish time, so `time() - gauge` reads how far the
/// job's results lag behind its schedule, and a late retry of an old plan never moves it back.
pub const LAST_SUCCESS: &str = "cronlease_last_success_timestamp_seconds";

/// The name of the `tracing` span every handler future runs inside (at INFO level). Its fields:
/// `job`, `scope_kind`, `scope_id`, `plan_time` (RFC 3339, UTC), `execution_id` (stable across
/// retries), `attempt`, `runner` (this runner's id) and `outcome` (`success`, `error` or
/// `timeout`, recorded when the handler returns; absent after a panic or cancellation).
pub const EXECUTION_SPAN: &str = "cronlease.execution";

/// Which kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up (`_total`); alert on its rate or increase.
    Counter,
    /// A value set now and then; alert on its level.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

/// One metric as [`describe`] registers it, so hosts and tests can list them all.
#[derive(Debug, Clone, Copy)]
pub struct MetricDescription {
    /// The metric name, one of this module's constants.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The unit exporters may print.
    pub unit: Unit,
    /// The `# HELP` text: what it counts or measures.
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: MetricKind,
    unit: Unit,
    help: &'static str,
) -> MetricDescription {
    MetricDescription {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric cronlease records, with its description.
pub const METRICS: &[MetricDescription] = {
    use MetricKind::{Counter, Gauge, Histogram};
    use Unit::{Count, Seconds};
    &[
        m(
            CLAIMS,
            Counter,
            Count,
            "Plans claimed by this runner's ticks, by job and outcome (won, stole, retried, replayed, conflicted).",
        ),
        m(
            EXECUTIONS,
            Counter,
            Count,
            "Attempts that ended on this runner, by job, outcome (success, failed, dead, lease_lost) and error code.",
        ),
        m(
            RETRIES,
            Counter,
            Count,
            "Retries scheduled, by job and the attempt number that failed.",
        ),
        m(
            DEAD_LETTERED,
            Counter,
            Count,
            "Plans moved to DEAD (out of attempts, permanent failure, or swept stale without re-entry), by job.",
        ),
        m(
            REPLAYED,
            Counter,
            Count,
            "DEAD plans an operator replayed, by job.",
        ),
        m(
            LEASE_LOST,
            Counter,
            Count,
            "Attempts whose lease another runner took over, by job.",
        ),
        m(
            SWEPT_STALE,
            Counter,
            Count,
            "RUNNING rows the stale sweep moved because their runner stopped heartbeating, by job.",
        ),
        m(
            DB_TRANSIENT_ERRORS,
            Counter,
            Count,
            "Transient database errors met by the runtime (each retried with backoff), by store operation.",
        ),
        m(
            DB_DEADLOCKS,
            Counter,
            Count,
            "Deadlocks the database broke by failing one of this runner's statements, by store operation.",
        ),
        m(
            DB_GAVE_UP,
            Counter,
            Count,
            "Database writes the runtime stopped retrying after give_up_after, by store operation; the plan re-runs once its lease goes stale.",
        ),
        m(
            HANDLER_DURATION,
            Histogram,
            Seconds,
            "Handler run time of each attempt, by job.",
        ),
        m(
            START_LAG,
            Histogram,
            Seconds,
            "Seconds from a plan becoming due (plan time plus schedule delay) to its attempt starting, by job, by the database clock.",
        ),
        m(
            RUNNING,
            Gauge,
            Count,
            "Executions running on this runner now.",
        ),
        m(
            STALE_RUNNING,
            Gauge,
            Count,
            "RUNNING rows whose lease is stale and not yet swept, across all runners, by job (measured by the retention service).",
        ),
        m(
            CLOCK_OFFSET,
            Gauge,
            Seconds,
            "Database clock minus this runner's clock, measured at every tick.",
        ),
        m(
            PRUNED,
            Counter,
            Count,
            "Rows the retention service deleted, by set (finished, dead).",
        ),
        m(
            SUPERSEDED,
            Counter,
            Count,
            "FAILED plans closed as SUPERSEDED because a newer plan of their scope succeeded, by job.",
        ),
        m(
            TICK_ERRORS,
            Counter,
            Count,
            "Parts of a job's tick skipped because of an error, by job and reason (scope provider, planner hook, invalid scope, database).",
        ),
        m(
            PLANS_SKIPPED,
            Counter,
            Count,
            "Plans deliberately not run, by job and reason (overlap, latest_only, outside_window, schedule_change).",
        ),
        m(
            SCOPE_PROVIDER_FAILURES,
            Counter,
            Count,
            "Scope providers that failed, so the job planned nothing new that tick, by job and reason (error, panic, timeout).",
        ),
        m(
            LAST_SUCCESS,
            Gauge,
            Seconds,
            "Plan time (Unix seconds) of the newest plan whose success this runner recorded, by job.",
        ),
    ]
};

/// Registers a description and unit for every metric in [`METRICS`] with the current recorder,
/// so a Prometheus exporter prints a `# HELP` line for each.
///
/// Recorders keep descriptions they were given, so this must run after the host installed its
/// recorder. Starting a [`Scheduler`](crate::Scheduler) calls it; a host that installs its
/// recorder after that (or renders metrics before any scheduler starts) calls it again. It is
/// cheap and idempotent.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            MetricKind::Counter => describe_counter!(metric.name, metric.unit, metric.help),
            MetricKind::Gauge => describe_gauge!(metric.name, metric.unit, metric.help),
            MetricKind::Histogram => describe_histogram!(metric.name, metric.unit, metric.help),
        }
    }
}

/// The span a handler future runs inside: see [`EXECUTION_SPAN`].
pub(crate) fn execution_span(
    job: &str,
    scope: &Scope,
    plan_time: DateTime<Utc>,
    execution_id: Uuid,
    attempt: u32,
    runner: &str,
) -> tracing::Span {
    tracing::info_span!(
        EXECUTION_SPAN,
        job,
        scope_kind = scope.kind.as_str(),
        scope_id = scope.id.as_str(),
        plan_time = %plan_time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        execution_id = %execution_id,
        // i64: tracing-opentelemetry exports unsigned fields as text.
        attempt = i64::from(attempt),
        runner,
        outcome = tracing::field::Empty,
    )
}

pub(crate) fn scope_provider_failure(job: &Arc<str>, reason: &'static str) {
    counter!(SCOPE_PROVIDER_FAILURES, "job" => job.clone(), "reason" => reason).increment(1);
}

/// Moves the job's last-success gauge to `plan_time` unless `newest` (the job's newest recorded
/// success, Unix milliseconds) is already later.
pub(crate) fn last_success(job: &Arc<str>, newest: &AtomicI64, plan_time: DateTime<Utc>) {
    let millis = plan_time.timestamp_millis();
    let previous = newest.fetch_max(millis, Ordering::Relaxed);
    gauge!(LAST_SUCCESS, "job" => job.clone()).set(previous.max(millis) as f64 / 1000.0);
}

pub(crate) fn plans_skipped(job: &str, reason: &'static str, n: u64) {
    if n > 0 {
        counter!(PLANS_SKIPPED, "job" => job.to_owned(), "reason" => reason).increment(n);
    }
}

pub(crate) fn superseded(job: &Arc<str>, n: u64) {
    counter!(SUPERSEDED, "job" => job.clone()).increment(n);
}

pub(crate) fn tick_error(job: &Arc<str>, reason: &'static str) {
    tick_errors(job, reason, 1);
}

pub(crate) fn tick_errors(job: &Arc<str>, reason: &'static str, n: u64) {
    counter!(TICK_ERRORS, "job" => job.clone(), "reason" => reason).increment(n);
}

pub(crate) fn claims(job: &Arc<str>, outcome: &'static str, n: u64) {
    if n > 0 {
        counter!(CLAIMS, "job" => job.clone(), "outcome" => outcome).increment(n);
    }
}

pub(crate) fn execution(job: &Arc<str>, outcome: &'static str, code: &'static str) {
    executions(job, outcome, code, 1);
}

/// `n` attempts of one job ended the same way: one registration for all of them.
pub(crate) fn executions(job: &Arc<str>, outcome: &'static str, code: &'static str, n: u64) {
    counter!(EXECUTIONS, "job" => job.clone(), "outcome" => outcome, "code" => code).increment(n);
}

pub(crate) fn retry(job: &Arc<str>, attempt: u32) {
    counter!(RETRIES, "job" => job.clone(), "attempt" => attempt.to_string()).increment(1);
}

pub(crate) fn dead_lettered(job: &Arc<str>) {
    counter!(DEAD_LETTERED, "job" => job.clone()).increment(1);
}

pub(crate) fn dead_lettered_many(job: &Arc<str>, n: u64) {
    if n > 0 {
        counter!(DEAD_LETTERED, "job" => job.clone()).increment(n);
    }
}

pub(crate) fn replayed(job: &str) {
    counter!(REPLAYED, "job" => job.to_owned()).increment(1);
}

pub(crate) fn lease_lost(job: &Arc<str>) {
    counter!(LEASE_LOST, "job" => job.clone()).increment(1);
}

pub(crate) fn swept(job: &Arc<str>, n: u64) {
    if n > 0 {
        counter!(SWEPT_STALE, "job" => job.clone()).increment(n);
    }
}

pub(crate) fn db_transient(operation: &'static str) {
    counter!(DB_TRANSIENT_ERRORS, "operation" => operation).increment(1);
}

pub(crate) fn db_deadlock(operation: &'static str) {
    counter!(DB_DEADLOCKS, "operation" => operation).increment(1);
}

pub(crate) fn db_gave_up(operation: &'static str) {
    counter!(DB_GAVE_UP, "operation" => operation).increment(1);
}

/// The job's handler-duration histogram. Registering builds and hashes the labels, so a batch of
/// attempts of one job registers once and records each into the handle.
pub(crate) fn handler_durations(job: &Arc<str>) -> Histogram {
    histogram!(HANDLER_DURATION, "job" => job.clone())
}

/// The job's start-lag histogram, registered once per claim statement (see
/// [`handler_durations`]).
pub(crate) fn start_lags(job: &Arc<str>) -> Histogram {
    histogram!(START_LAG, "job" => job.clone())
}

pub(crate) fn running(n: usize) {
    gauge!(RUNNING).set(n as f64);
}

pub(crate) fn clock_offset(seconds: f64) {
    gauge!(CLOCK_OFFSET).set(seconds);
}

pub(crate) fn stale_running(job: &str, n: i64) {
    gauge!(STALE_RUNNING, "job" => job.to_owned()).set(n as f64);
}

pub(crate) fn pruned(set: &'static str, n: u64) {
    if n > 0 {
        counter!(PRUNED, "set" => set).increment(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metric constant added without a row in `METRICS` would have no `# HELP`.
    #[test]
    fn every_metric_constant_is_described_once() {
        let source = include_str!("telemetry.rs");
        let names: Vec<&str> = source
            .lines()
            .filter(|line| line.starts_with("pub const ") && line.contains("= \"cronlease_"))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert_eq!(names.len(), METRICS.len(), "{names:?}");
        for name in names {
            let rows: Vec<_> = METRICS.iter().filter(|m| m.name == name).collect();
            assert_eq!(rows.len(), 1, "{name} must have exactly one row in METRICS");
            assert!(!rows[0].help.trim().is_empty(), "{name} has no description");
        }
    }

    #[test]
    fn metric_kinds_follow_the_naming_convention() {
        for metric in METRICS {
            let counter = metric.name.ends_with("_total");
            assert_eq!(
                counter,
                metric.kind == MetricKind::Counter,
                "{}: counters and only counters end in _total",
                metric.name
            );
            if metric.unit == Unit::Seconds {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
            }
        }
    }

    #[test]
    fn last_success_never_moves_back() {
        let newest = AtomicI64::new(i64::MIN);
        let job: Arc<str> = Arc::from("j");
        let later = DateTime::from_timestamp(2_000, 0).unwrap();
        last_success(&job, &newest, later);
        last_success(&job, &newest, DateTime::from_timestamp(1_000, 0).unwrap());
        assert_eq!(newest.load(Ordering::Relaxed), later.timestamp_millis());
    }
}
