//! Decoding MySQL and MariaDB rows. `result` and `failures` are read as JSON text (MariaDB stores
//! `JSON` as `LONGTEXT`, MySQL 8 natively; both travel as text).

use sqlx::Row;
use sqlx::mysql::MySqlRow;
use sqlx::types::Json;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::control::{Backfill, BackfillCursor, BackfillOptions, Trigger};
use crate::error::Result;
use crate::execution::Execution;
use crate::scope::Scope;
use crate::store::rowmap::{corrupt, count, failures, parsed};

/// A `VARBINARY` column (names and scopes, compared byte for byte) as UTF-8 text.
pub(super) fn text<I>(row: &MySqlRow, index: I) -> std::result::Result<String, sqlx::Error>
where
    I: sqlx::ColumnIndex<MySqlRow>,
{
    let bytes: Vec<u8> = row.try_get(index)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Decodes a full `cronlease_executions` row.
pub(super) fn execution(row: &MySqlRow) -> Result<Execution> {
    let get = |e: sqlx::Error| corrupt("?", e.to_string());
    let id: Uuid = row.try_get("id").map_err(get)?;
    let id_text = id.to_string();
    let id_str = id_text.as_str();
    let dec = |e: sqlx::Error| corrupt(id_str, e.to_string());
    let status: String = row.try_get("status").map_err(dec)?;
    let claim: String = row.try_get("claim_outcome").map_err(dec)?;
    let Json(failures_json): Json<serde_json::Value> = row.try_get("failures").map_err(dec)?;
    let Json(result): Json<serde_json::Value> = row.try_get("result").map_err(dec)?;
    Ok(Execution {
        id,
        job_name: text(row, "job_name").map_err(dec)?,
        scope: Scope::new(
            text(row, "scope_kind").map_err(dec)?,
            text(row, "scope_id").map_err(dec)?,
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
        result,
        error_code: row.try_get("error_code").map_err(dec)?,
        error_msg: row.try_get("error_msg").map_err(dec)?,
        failures: failures(id_str, &failures_json)?,
        replayed_at: row.try_get("replayed_at").map_err(dec)?,
        trigger_id: row.try_get("trigger_id").map_err(dec)?,
    })
}

/// A nullable `VARBINARY` column as UTF-8 text.
fn opt_text(row: &MySqlRow, index: &str) -> std::result::Result<Option<String>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(index)?;
    bytes
        .map(|b| String::from_utf8(b).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// Decodes a `cronlease_triggers` row.
pub(super) fn trigger(row: &MySqlRow) -> Result<Trigger> {
    let dec = |e: sqlx::Error| corrupt("trigger", e.to_string());
    Ok(crate::store::stored_trigger(
        row.try_get("id").map_err(dec)?,
        text(row, "job_name").map_err(dec)?,
        text(row, "scope_kind").map_err(dec)?,
        text(row, "scope_id").map_err(dec)?,
        opt_text(row, "idempotency_key").map_err(dec)?,
        row.try_get("requested_by").map_err(dec)?,
        row.try_get("requested_at").map_err(dec)?,
        row.try_get("started_at").map_err(dec)?,
    ))
}

/// Decodes a `cronlease_backfills` row.
pub(super) fn backfill(row: &MySqlRow) -> Result<Backfill> {
    let dec = |e: sqlx::Error| corrupt("backfill", e.to_string());
    let id: Uuid = row.try_get("id").map_err(dec)?;
    let status: String = row.try_get("status").map_err(dec)?;
    let cursor_time: Option<DateTime<Utc>> = row.try_get("cursor_plan_time").map_err(dec)?;
    let cursor_kind = opt_text(row, "cursor_scope_kind").map_err(dec)?;
    let cursor_id = opt_text(row, "cursor_scope_id").map_err(dec)?;
    let mut backfill = Backfill::new(
        text(row, "job_name").map_err(dec)?,
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
