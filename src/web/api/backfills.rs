//! Backfills: running a job's past plan times, with progress every replica keeps.
//!
//! - `POST /jobs/{name}/backfill` `{from, to, scope?, scopes?, rerun?, by?}`: 202 with the
//!   backfill.
//! - `GET /backfills?job=`: every backfill (of one job), oldest first.
//! - `GET /backfills/{id}`: one, with its progress (404 unknown).
//! - `POST /backfills/{id}/cancel`: `{cancelled: bool, backfill}`; `cancelled` is false when it
//!   was no longer active.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::actions::DEFAULT_BY;
use super::guard::{Act, Read};
use super::params;
use super::views::BackfillView;
use crate::control::BackfillOptions;
use crate::web::error::ApiError;

/// Body of `POST /jobs/{name}/backfill`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillBody {
    from: Option<String>,
    to: Option<String>,
    scope: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    rerun: bool,
    by: Option<String>,
}

fn required(
    parameter: &str,
    value: Option<&str>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    match value {
        Some(text) => params::time(parameter, text),
        None => Err(ApiError::bad(
            parameter,
            format!("give `{parameter}` as an RFC 3339 time, e.g. 2026-11-29T00:00:00Z"),
        )),
    }
}

/// `POST /jobs/{name}/backfill`.
pub(crate) async fn create(
    Act(state): Act,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: BackfillBody = super::body(&body)?;
    let from = required("from", body.from.as_deref())?;
    let to = required("to", body.to.as_deref())?;
    let mut scopes = Vec::new();
    if let Some(text) = &body.scope {
        scopes.push(params::scope("scope", text)?);
    }
    for text in body.scopes.iter().flatten() {
        scopes.push(params::scope("scopes", text)?);
    }
    let options = BackfillOptions {
        scopes: (body.scope.is_some() || body.scopes.is_some()).then_some(scopes),
        rerun: body.rerun,
        requested_by: body.by.unwrap_or_else(|| DEFAULT_BY.to_owned()),
    };
    let backfill = state
        .scheduler
        .backfill(&name, from, to, options)
        .await
        .map_err(|e| match e {
            crate::Error::InvalidRequest(_) => ApiError::from_error(e, "to"),
            crate::Error::InvalidConfig(_) => ApiError::from_error(e, "scope"),
            e => ApiError::from_error(e, "name"),
        })?;
    Ok(HttpResponse::Accepted().json(BackfillView::from(&backfill)))
}

/// Parameters of `GET /backfills`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    job: Option<String>,
}

/// `GET /backfills`.
pub(crate) async fn list(
    Read(state): Read,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let backfills = state.scheduler.backfills(query.job.as_deref()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "backfills": backfills.iter().map(BackfillView::from).collect::<Vec<_>>(),
    })))
}

async fn known(
    state: &crate::web::state::WebState,
    id: &str,
) -> Result<crate::control::Backfill, ApiError> {
    let id = params::uuid("id", id)?;
    state
        .scheduler
        .backfill_status(id)
        .await?
        .ok_or_else(|| ApiError::not_found("id", format!("no backfill with id {id}")))
}

/// `GET /backfills/{id}`.
pub(crate) async fn get(
    Read(state): Read,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let backfill = known(&state, &id).await?;
    Ok(HttpResponse::Ok().json(BackfillView::from(&backfill)))
}

/// `POST /backfills/{id}/cancel`.
pub(crate) async fn cancel(
    Act(state): Act,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let backfill = known(&state, &id).await?;
    let cancelled = state.scheduler.cancel_backfill(backfill.id).await?;
    let backfill = known(&state, &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "cancelled": cancelled,
        "backfill": BackfillView::from(&backfill),
    })))
}
