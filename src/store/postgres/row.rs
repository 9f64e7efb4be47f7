//! Decoding PostgreSQL rows.

use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::control::{Backfill, BackfillCursor, BackfillOptions, Trigger};
use crate::error::Result;
use crate::execution::Execution;
use crate::scope::Scope;
use crate::store::rowmap::{corrupt, count, failures, parsed};

/// Decodes a full `cronlease_executions` row.
pub(super) fn execution(row: &PgRow) -> Result<Execution> {
    let get = |e: sqlx::Error| corrupt("?", e.to_string());
    let id: Uuid = row.try_get("id").map_err(get)?;
    let id_text = id.to_string();
    let id_str = id_text.as_str();
    let dec = |e: sqlx::Error| corrupt(id_str, e.to_string());
    let status: String = row.try_get("status").map_err(dec)?;
    let claim: String = row.try_get("claim_outcome").map_err(dec)?;
    let failures_json: serde_json::Value = row.try_get("failures").map_err(dec)?;
    Ok(Execution {
        id,
        job_name: row.try_get("job_name").map_err(dec)?,
        scope: Scope::new(
            row.try_get::<String, _>("scope_kind").map_err(dec)?,
            row.try_get::<String, _>("scope_id").map_err(dec)?,
        ),
        plan_time: row.try_get("plan_time").map_err(dec)?,
        status: parsed(id_str, &status)?,
        attempt: count(
            id_str,
            "attempt",
            row.try_get::<i32, _>("attempt").map_err(dec)?.into(),
        )?,
        max_attempts: count(
            id_str,
            "max_attempts",
            row.try_get::<i32, _>("max_attempts").map_err(dec)?.into(),
        )?,
        next_retry_at: row.try_get("next_retry_at").map_err(dec)?,
        runner_id: row.try_get("runner_id").map_err(dec)?,
        lease_token: row.try_get("lease_token").map_err(dec)?,
        claim_outcome: parsed(id_str, &claim)?,
        heartbeat_at: row.try_get("heartbeat_at").map_err(dec)?,
        stale_after: row.try_get("stale_after").map_err(dec)?,
        started_at: row.try_get("started_at").map_err(dec)?,
        finished_at: row.try_get("finished_at").map_err(dec)?,
        created_at: row.try_get("created_at").map_err(dec)?,
        updated_at: row.try_get("updated_at").map_err(dec)?,
        duration_ms: row.try_get("duration_ms").map_err(dec)?,
        rows_affected: row.try_get("rows_affected").map_err(dec)?,
        result: row.try_get("result").map_err(dec)?,
        error_code: row.try_get("error_code").map_err(dec)?,
        error_msg: row.try_get("error_msg").map_err(dec)?,
        failures: failures(id_str, &failures_json)?,
        replayed_at: row.try_get("replayed_at").map_err(dec)?,
        trigger_id: row.try_get("trigger_id").map_err(dec)?,
    })
}

/// Decodes a `cronlease_triggers` row.
pub(super) fn trigger(row: &PgRow) -> Result<Trigger> {
    let dec = |e: sqlx::Error| corrupt("trigger", e.to_string());
    Ok(crate::store::stored_trigger(
        row.try_get("id").map_err(dec)?,
        row.try_get("job_name").map_err(dec)?,
        row.try_get("scope_kind").map_err(dec)?,
        row.try_get("scope_id").map_err(dec)?,
        row.try_get("idempotency_key").map_err(dec)?,
        row.try_get("requested_by").map_err(dec)?,
        row.try_get("requested_at").map_err(dec)?,
        row.try_get("started_at").map_err(dec)?,
    ))
}

/// Decodes a `cronlease_backfills` row.
pub(super) fn backfill(row: &PgRow) -> Result<Backfill> {
    let dec = |e: sqlx::Error| corrupt("backfill", e.to_string());
    let id: Uuid = row.try_get("id").map_err(dec)?;
    let status: String = row.try_get("status").map_err(dec)?;
    let cursor_time: Option<DateTime<Utc>> = row.try_get("cursor_plan_time").map_err(dec)?;
    let cursor_kind: Option<String> = row.try_get("cursor_scope_kind").map_err(dec)?;
    let cursor_id: Option<String> = row.try_get("cursor_scope_id").map_err(dec)?;
    let mut backfill = Backfill::new(
        row.try_get::<String, _>("job_name").map_err(dec)?,
        row.try_get("from_time").map_err(dec)?,
        row.try_get("to_time").map_err(dec)?,
        BackfillOptions {
            scopes: crate::store::scopes_from_json(row.try_get("scopes").map_err(dec)?)?,
            rerun: row.try_get("rerun").map_err(dec)?,
            requested_by: row.try_get("requested_by").map_err(dec)?,
        },
    );
    backfill.id = id;
    backfill.status = parsed(&id.to_string(), &status)?;
    backfill.cursor = match (cursor_time, cursor_kind, cursor_id) {
        (Some(plan_time), Some(kind), Some(scope_id)) => Some(BackfillCursor {
            plan_time,
            scope: Scope::new(kind, scope_id),
        }),
        _ => None,
    };
    backfill.done = row.try_get::<i64, _>("done").map_err(dec)?.max(0) as u64;
    backfill.total = row
        .try_get::<Option<i64>, _>("total")
        .map_err(dec)?
        .map(|t| t.max(0) as u64);
    backfill.created_at = row.try_get("created_at").map_err(dec)?;
    backfill.updated_at = row.try_get("updated_at").map_err(dec)?;
    Ok(backfill)
}
