//! Trigger now: an operator runs a job at once, outside its schedule.
//!
//! A trigger is a row in `cronlease_triggers` that every replica's tick of the job consults (the
//! tick's first statement says whether any is pending, so an idle tick pays nothing for it). The
//! first tick that claims it runs it: one execution per targeted scope, marked with the
//! trigger's id (`Execution::trigger_id`), under the same leases, fencing, heartbeats, retries and
//! dead letters as a scheduled plan.
//!
//! A manual execution needs a plan identity of its own, so that it can never be swallowed by, or
//! swallow, a scheduled plan under the unique key `(job, scope, plan_time)`: its plan time is the
//! moment the trigger was requested (database clock), moved a millisecond later while it falls
//! on a plan time of the job's schedule ([`manual_plan_time`]). Every replica computes the same
//! identity from the stored request, so two replicas that both see the trigger insert one row.
//! Planning ignores manual rows when it reads the newest plan of each scope.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::schedule::Schedule;
use crate::scope::Scope;

/// A request to run a job now, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trigger {
    /// The request's id (UUID v7), written on each execution it started (`trigger_id`).
    pub id: Uuid,
    /// The job's name.
    pub job: String,
    /// The scope to run; `None` runs every scope the job has when the trigger is claimed.
    pub scope: Option<Scope>,
    /// A key that makes a repeated request (a double click) return the first one instead of
    /// running again; unique per job. `None`: every request runs.
    pub idempotency_key: Option<String>,
    /// Who asked (free text).
    pub requested_by: String,
    /// When it was stored (database clock); also the manual plan's time.
    pub requested_at: DateTime<Utc>,
    /// When a tick started it (database clock); `None` while pending.
    pub started_at: Option<DateTime<Utc>>,
}

impl Trigger {
    /// A request to store, with a fresh id; `requested_at` is replaced by the database clock
    /// when it is written.
    pub fn new(job: impl Into<String>, scope: Option<Scope>, options: TriggerOptions) -> Self {
        Trigger {
            id: Uuid::now_v7(),
            job: job.into(),
            scope,
            idempotency_key: options.idempotency_key,
            requested_by: options.requested_by,
            requested_at: DateTime::<Utc>::UNIX_EPOCH,
            started_at: None,
        }
    }

    /// Whether a tick has started it.
    pub fn is_started(&self) -> bool {
        self.started_at.is_some()
    }
}

/// Options of a trigger. Default: no idempotency key, requested by `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerOptions {
    /// Makes a repeated request with the same key (per job) return the first one instead of
    /// running the job again. Default: none.
    pub idempotency_key: Option<String>,
    /// Who asked (free text, shown to operators). Default: empty.
    pub requested_by: String,
}

impl TriggerOptions {
    /// Options with an idempotency key.
    pub fn idempotent(key: impl Into<String>) -> Self {
        TriggerOptions {
            idempotency_key: Some(key.into()),
            ..TriggerOptions::default()
        }
    }

    /// The same options, requested by `who`.
    pub fn by(mut self, who: impl Into<String>) -> Self {
        self.requested_by = who.into();
        self
    }
}

/// What a trigger runs: one scope, or every scope of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerTarget {
    /// One scope.
    Scope(Scope),
    /// Every scope the job has when a tick claims the trigger (the global scope for a job
    /// without scopes).
    AllScopes,
}

impl TriggerTarget {
    /// The stored form: `None` for every scope.
    pub(crate) fn into_scope(self) -> Option<Scope> {
        match self {
            TriggerTarget::Scope(scope) => Some(scope),
            TriggerTarget::AllScopes => None,
        }
    }
}

/// The plan time of a manual execution requested at `requested_at`: that time, moved on by a
/// millisecond while it is a plan time of `schedule`, so a manual run and a scheduled plan of the
/// same scope never share a row. Deterministic: every replica computes the same time.
/// (A job planned by a hook has no schedule to avoid; its hook's times are the operator's to
/// keep apart, which a millisecond clash makes unlikely.)
pub(crate) fn manual_plan_time(
    requested_at: DateTime<Utc>,
    schedule: Option<&Schedule>,
) -> DateTime<Utc> {
    let mut at = requested_at;
    if let Some(schedule) = schedule {
        // Plans are at least a millisecond apart, so a few steps always leave them.
        while schedule.latest_plan(at) == Some(at) {
            at += TimeDelta::milliseconds(1);
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_manual_plan_never_lands_on_a_scheduled_plan_time() {
        let hourly = Schedule::every("1h").unwrap();
        assert_eq!(
            manual_plan_time(at("2026-01-01T03:00:00Z"), Some(&hourly)),
            at("2026-01-01T03:00:00.001Z")
        );
        assert_eq!(
            manual_plan_time(at("2026-01-01T03:12:34.567Z"), Some(&hourly)),
            at("2026-01-01T03:12:34.567Z")
        );
        let every_ms = Schedule::every("2ms").unwrap();
        assert_eq!(
            manual_plan_time(at("2026-01-01T03:00:00Z"), Some(&every_ms)),
            at("2026-01-01T03:00:00.001Z")
        );
        assert_eq!(
            manual_plan_time(at("2026-01-01T03:00:00Z"), None),
            at("2026-01-01T03:00:00Z")
        );
    }
}
