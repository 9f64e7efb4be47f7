//! Decoding SQLite rows.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::control::{Backfill, BackfillCursor, Trigger};
use crate::error::Result;
use crate::execution::Execution;
use crate::schedule::from_millis;
use crate::scope::Scope;
use crate::store::rowmap::{corrupt, count, failures, opt_time, parsed, uuid};

/// Decodes a full `cronlease_executions` row.
pub(super) fn execution(row: &SqliteRow) -> Result<Execution> {
    let get = |e: sqlx::Error| corrupt("?", e.to_string());
    let id_text: String = row.try_get("id").map_err(get)?;
    let id = id_text.as_str();
    let dec = |e: sqlx::Error| corrupt(id, e.to_string());
    let result_text: String = row.try_get("result").map_err(dec)?;
    let failures_text: String = row.try_get("failures").map_err(dec)?;
    let status: String = row.try_get("status").map_err(dec)?;
    let claim: String = row.try_get("claim_outcome").map_err(dec)?;
    let token: String = row.try_get("lease_token").map_err(dec)?;
    let json = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).map_err(|e| corrupt(id, e.to_string()))
    };
    Ok(Execution {
        id: uuid(id, id)?,
        job_name: row.try_get("job_name").map_err(dec)?,
        scope: Scope::new(
            row.try_get::<String, _>("scope_kind").map_err(dec)?,
            row.try_get::<String, _>("scope_id").map_err(dec)?,
        ),
        plan_time: from_millis(row.try_get("plan_time").map_err(dec)?),
        status: parsed(id, &status)?,
        attempt: count(id, "attempt", row.try_get("attempt").map_err(dec)?)?,
        max_attempts: count(
            id,
            "max_attempts",
            row.try_get("max_attempts").map_err(dec)?,
        )?,
        next_retry_at: opt_time(row.try_get("next_retry_at").map_err(dec)?),
        runner_id: row.try_get("runner_id").map_err(dec)?,
        lease_token: uuid(id, &token)?,
        claim_outcome: parsed(id, &claim)?,
        heartbeat_at: opt_time(row.try_get("heartbeat_at").map_err(dec)?),
        stale_after: opt_time(row.try_get("stale_after").map_err(dec)?),
        started_at: opt_time(row.try_get("started_at").map_err(dec)?),
        finished_at: opt_time(row.try_get("finished_at").map_err(dec)?),
        created_at: from_millis(row.try_get("created_at").map_err(dec)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(dec)?),
        duration_ms: row.try_get("duration_ms").map_err(dec)?,
        rows_affected: row.try_get("rows_affected").map_err(dec)?,
        result: json(&result_text)?,
        error_code: row.try_get("error_code").map_err(dec)?,
        error_msg: row.try_get("error_msg").map_err(dec)?,
        failures: failures(id, &json(&failures_text)?)?,
        replayed_at: opt_time(row.try_get("replayed_at").map_err(dec)?),
        trigger_id: row
            .try_get::<Option<String>, _>("trigger_id")
            .map_err(dec)?
            .map(|text| uuid(id, &text))
            .transpose()?,
    })
}

/// Decodes a `cronlease_triggers` row.
pub(super) fn trigger(row: &SqliteRow) -> Result<Trigger> {
    let dec = |e: sqlx::Error| corrupt("trigger", e.to_string());
    let id: String = row.try_get("id").map_err(dec)?;
    Ok(crate::store::stored_trigger(
        uuid(&id, &id)?,
        row.try_get("job_name").map_err(dec)?,
        row.try_get("scope_kind").map_err(dec)?,
        row.try_get("scope_id").map_err(dec)?,
        row.try_get("idempotency_key").map_err(dec)?,
        row.try_get("requested_by").map_err(dec)?,
        from_millis(row.try_get("requested_at").map_err(dec)?),
        opt_time(row.try_get("started_at").map_err(dec)?),
    ))
}

/// Decodes a `cronlease_backfills` row.
pub(super) fn backfill(row: &SqliteRow) -> Result<Backfill> {
    let dec = |e: sqlx::Error| corrupt("backfill", e.to_string());
    let id: String = row.try_get("id").map_err(dec)?;
    let status: String = row.try_get("status").map_err(dec)?;
    let cursor_time: Option<i64> = row.try_get("cursor_plan_time").map_err(dec)?;
    let cursor_kind: Option<String> = row.try_get("cursor_scope_kind").map_err(dec)?;
    let cursor_id: Option<String> = row.try_get("cursor_scope_id").map_err(dec)?;
    let mut backfill = Backfill::new(
        row.try_get::<String, _>("job_name").map_err(dec)?,
        from_millis(row.try_get("from_time").map_err(dec)?),
        from_millis(row.try_get("to_time").map_err(dec)?),
        crate::control::BackfillOptions {
            scopes: crate::store::scopes_from_json(row.try_get("scopes").map_err(dec)?)?,
            rerun: row.try_get("rerun").map_err(dec)?,
            requested_by: row.try_get("requested_by").map_err(dec)?,
        },
    );
    backfill.id = uuid(&id, &id)?;
    backfill.status = parsed(&id, &status)?;
    backfill.cursor = match (cursor_time, cursor_kind, cursor_id) {
        (Some(t), Some(kind), Some(scope_id)) => Some(BackfillCursor {
            plan_time: from_millis(t),
            scope: Scope::new(kind, scope_id),
        }),
        _ => None,
    };
    backfill.done = row.try_get::<i64, _>("done").map_err(dec)?.max(0) as u64;
    backfill.total = row
        .try_get::<Option<i64>, _>("total")
        .map_err(dec)?
        .map(|t| t.max(0) as u64);
    backfill.created_at = from_millis(row.try_get("created_at").map_err(dec)?);
    backfill.updated_at = from_millis(row.try_get("updated_at").map_err(dec)?);
    Ok(backfill)
}
