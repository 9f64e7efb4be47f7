//! What the API shows of the library's types, as JSON: explicit views, so a field added to a
//! row (a secret such as the lease token) is never published by accident.
//!
//! - [`ExecutionView`]: an execution row without its `lease_token` (the fence of the owner's
//!   writes: whoever holds it could write the row's outcome), with the scope also as text.
//! - [`PauseView`], [`TriggerView`], [`BackfillView`], [`RunnerView`], [`PlanView`]: the control
//!   plane's rows.
//! - [`why`]: the answer of `Scheduler::why` as a tagged object.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::{Backfill, Pause, Runner, SkipSpan, Trigger, Why};
use crate::execution::{ClaimOutcome, Execution, FailedAttempt, Status};
use crate::schedule::PlannedTime;
use crate::scope::Scope;

/// An execution row as the API shows it: every field but `lease_token`.
#[derive(Debug, Serialize)]
pub(crate) struct ExecutionView<'a> {
    id: Uuid,
    job_name: &'a str,
    scope: &'a Scope,
    scope_text: String,
    plan_time: DateTime<Utc>,
    status: Status,
    attempt: u32,
    max_attempts: u32,
    next_retry_at: Option<DateTime<Utc>>,
    runner_id: &'a str,
    claim_outcome: ClaimOutcome,
    heartbeat_at: Option<DateTime<Utc>>,
    stale_after: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    duration_ms: Option<i64>,
    rows_affected: Option<i64>,
    result: &'a Value,
    error_code: Option<&'a str>,
    error_msg: Option<&'a str>,
    failures: &'a [FailedAttempt],
    replayed_at: Option<DateTime<Utc>>,
    trigger_id: Option<Uuid>,
}

impl<'a> From<&'a Execution> for ExecutionView<'a> {
    fn from(e: &'a Execution) -> Self {
        ExecutionView {
            id: e.id,
            job_name: &e.job_name,
            scope: &e.scope,
            scope_text: e.scope.to_string(),
            plan_time: e.plan_time,
            status: e.status,
            attempt: e.attempt,
            max_attempts: e.max_attempts,
            next_retry_at: e.next_retry_at,
            runner_id: &e.runner_id,
            claim_outcome: e.claim_outcome,
            heartbeat_at: e.heartbeat_at,
            stale_after: e.stale_after,
            started_at: e.started_at,
            finished_at: e.finished_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
            duration_ms: e.duration_ms,
            rows_affected: e.rows_affected,
            result: &e.result,
            error_code: e.error_code.as_deref(),
            error_msg: e.error_msg.as_deref(),
            failures: &e.failures,
            replayed_at: e.replayed_at,
            trigger_id: e.trigger_id,
        }
    }
}

/// Views of many rows.
pub(crate) fn executions(rows: &[Execution]) -> Vec<ExecutionView<'_>> {
    rows.iter().map(ExecutionView::from).collect()
}

/// A pause of a job or of one scope.
#[derive(Debug, Serialize)]
pub(crate) struct PauseView<'a> {
    job: &'a str,
    /// `None`: the whole job.
    scope: Option<String>,
    paused_by: &'a str,
    reason: &'a str,
    paused_at: DateTime<Utc>,
}

impl<'a> From<&'a Pause> for PauseView<'a> {
    fn from(p: &'a Pause) -> Self {
        PauseView {
            job: &p.job,
            scope: p.scope.as_ref().map(Scope::to_string),
            paused_by: &p.paused_by,
            reason: &p.reason,
            paused_at: p.paused_at,
        }
    }
}

/// A request to run a job now.
#[derive(Debug, Serialize)]
pub(crate) struct TriggerView<'a> {
    id: Uuid,
    job: &'a str,
    /// `None`: every scope.
    scope: Option<String>,
    idempotency_key: Option<&'a str>,
    requested_by: &'a str,
    requested_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Trigger> for TriggerView<'a> {
    fn from(t: &'a Trigger) -> Self {
        TriggerView {
            id: t.id,
            job: &t.job,
            scope: t.scope.as_ref().map(Scope::to_string),
            idempotency_key: t.idempotency_key.as_deref(),
            requested_by: &t.requested_by,
            requested_at: t.requested_at,
            started_at: t.started_at,
        }
    }
}

/// A backfill and its progress.
#[derive(Debug, Serialize)]
pub(crate) struct BackfillView<'a> {
    id: Uuid,
    job: &'a str,
    /// `None`: every scope of the job.
    scopes: Option<Vec<String>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rerun: bool,
    requested_by: &'a str,
    status: &'static str,
    done: u64,
    total: Option<u64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a Backfill> for BackfillView<'a> {
    fn from(b: &'a Backfill) -> Self {
        BackfillView {
            id: b.id,
            job: &b.job,
            scopes: b
                .scopes
                .as_ref()
                .map(|scopes| scopes.iter().map(Scope::to_string).collect()),
            from: b.from,
            to: b.to,
            rerun: b.rerun,
            requested_by: &b.requested_by,
            status: b.status.as_str(),
            done: b.done,
            total: b.total,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A runner sharing the database.
#[derive(Debug, Serialize)]
pub(crate) struct RunnerView<'a> {
    id: &'a str,
    host: &'a str,
    pid: u32,
    version: &'a str,
    started_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    stopped_at: Option<DateTime<Utc>>,
    refresh_interval_ms: u128,
    state: &'static str,
}

impl<'a> From<&'a Runner> for RunnerView<'a> {
    fn from(r: &'a Runner) -> Self {
        RunnerView {
            id: &r.id,
            host: &r.host,
            pid: r.pid,
            version: &r.version,
            started_at: r.started_at,
            last_seen: r.last_seen,
            stopped_at: r.stopped_at,
            refresh_interval_ms: r.refresh_interval.as_millis(),
            state: r.state.as_str(),
        }
    }
}

/// One upcoming plan of a preview.
#[derive(Debug, Serialize)]
pub(crate) struct PlanView {
    plan_time: DateTime<Utc>,
    plan_time_local: DateTime<FixedOffset>,
    due_at: DateTime<Utc>,
}

impl From<&PlannedTime> for PlanView {
    fn from(p: &PlannedTime) -> Self {
        PlanView {
            plan_time: p.plan_time,
            plan_time_local: p.local,
            due_at: p.due_at,
        }
    }
}

fn skip(span: &SkipSpan) -> Value {
    json!({
        "job": span.job,
        "scope": span.scope.as_ref().map(Scope::to_string),
        "reason": span.reason.to_string(),
        "from": span.from,
        "to": span.to,
        "plans": span.plans,
        "scopes": span.scopes,
        "detail": span.detail,
        "recorded_at": span.recorded_at,
    })
}

/// Why a plan ran or did not: `{"answer": <kind>, "description": <sentence>, ...details}`.
pub(crate) fn why(why: &Why) -> Value {
    let description = why.describe();
    let (answer, details) = match why {
        Why::Ran(row) => ("ran", json!({ "execution": ExecutionView::from(&**row) })),
        Why::Paused(pause) => ("paused", json!({ "pause": PauseView::from(pause) })),
        Why::Skipped(span) => ("skipped", json!({ "skip": skip(span) })),
        Why::NotDueYet { due_at } => ("not_due_yet", json!({ "due_at": due_at })),
        Why::Pending { due_at } => ("pending", json!({ "due_at": due_at })),
        Why::NotAPlanTime { previous, next } => (
            "not_a_plan_time",
            json!({ "previous": previous, "next": next }),
        ),
        Why::BeforeHistory => ("before_history", json!({})),
        Why::Unknown => ("unknown", json!({})),
    };
    let mut value = json!({ "answer": answer, "description": description });
    if let (Value::Object(map), Value::Object(extra)) = (&mut value, details) {
        map.extend(extra);
    }
    value
}
