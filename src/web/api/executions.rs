//! Executions and the dead-letter set: keyset-paged listings, one row with its failure history,
//! and replays.
//!
//! - `GET /executions`, `GET /dead`: `{executions, next}`; `next` is the `after` cursor of the
//!   following page, `null` on the last page.
//! - `GET /executions/{id}`: one row (404 unknown).
//! - `POST /dead/{id}/replay`: one dead row (404 unknown, 409 not DEAD).
//! - `POST /dead/replay`: every dead row matching a filter body, up to its `limit`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::guard::{Act, Read};
use super::params::{self, ListQuery};
use super::views::{ExecutionView, executions};
use crate::web::error::ApiError;

async fn page(
    state: &crate::web::state::WebState,
    query: &ListQuery,
    dead: bool,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let rows = if dead {
        state.scheduler.dead_executions(&filter).await?
    } else {
        state.scheduler.executions(&filter).await?
    };
    let next = filter
        .next_page(&rows)
        .and_then(|f| f.after)
        .map(|c| c.to_string());
    Ok(HttpResponse::Ok().json(json!({ "executions": executions(&rows), "next": next })))
}

/// `GET /executions`.
pub(crate) async fn list(
    Read(state): Read,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    page(&state, &query, false).await
}

/// `GET /dead`: like `/executions`, DEAD rows only (a `status` filter is ignored).
pub(crate) async fn dead(
    Read(state): Read,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    page(&state, &query, true).await
}

/// `GET /executions/{id}`.
pub(crate) async fn get(
    Read(state): Read,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::uuid("id", &id)?;
    match state.scheduler.execution(id).await? {
        Some(row) => Ok(HttpResponse::Ok().json(ExecutionView::from(&row))),
        None => Err(ApiError::not_found(
            "id",
            format!("no execution with id {id}"),
        )),
    }
}

/// `POST /dead/{id}/replay`: the replayed row (FAILED, due now).
pub(crate) async fn replay(
    Act(state): Act,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::uuid("id", &id)?;
    let row = state
        .scheduler
        .replay(id)
        .await
        .map_err(|e| ApiError::from_error(e, "id"))?;
    Ok(HttpResponse::Ok().json(ExecutionView::from(&row)))
}

/// `POST /dead/replay`: the body is the filter of `/dead` as a JSON object (every field
/// optional, values as in the query string); replies `{replayed: [rows]}`.
pub(crate) async fn replay_where(
    Act(state): Act,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let query: ListQuery = super::body(&body)?;
    let filter = query.filter()?;
    let rows = state.scheduler.replay_where(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "replayed": executions(&rows) })))
}
