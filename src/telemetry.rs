//! Metric names and the calls that move them, through the `metrics` facade (Prometheus-style
//! names). Installing a recorder is the host's choice; without one these calls cost nothing.
//! `docs/metrics.md` lists every metric with its labels and what to alert on.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

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
    counter!(EXECUTIONS, "job" => job.clone(), "outcome" => outcome, "code" => code).increment(1);
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

pub(crate) fn handler_duration(job: &Arc<str>, d: Duration) {
    histogram!(HANDLER_DURATION, "job" => job.clone()).record(d.as_secs_f64());
}

pub(crate) fn start_lag(job: &Arc<str>, seconds: f64) {
    histogram!(START_LAG, "job" => job.clone()).record(seconds);
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
