//! Actions on a job: pause, resume and trigger, each on every replica through the database.
//!
//! - `POST /jobs/{name}/pause` `{scope?, reason?, by?}`: the pause as stored.
//! - `POST /jobs/{name}/resume` `{scope?}`: `{resumed: bool}` (whether there was a pause).
//! - `POST /jobs/{name}/trigger` `{scope?, idempotency_key?, by?}`: 202 with the trigger (the
//!   first one when the idempotency key was seen before).
//!
//! `by` is free text recorded as who asked (default `web`): the embedder's authorization hook
//! decides what a request may do, not who it is.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::guard::Act;
use super::params;
use super::views::{PauseView, TriggerView};
use crate::control::{TriggerOptions, TriggerTarget};
use crate::web::error::ApiError;

/// Who asked, when the body does not say.
pub(crate) const DEFAULT_BY: &str = "web";

/// Body of `POST /jobs/{name}/pause`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseBody {
    scope: Option<String>,
    reason: Option<String>,
    by: Option<String>,
}

/// `POST /jobs/{name}/pause`.
pub(crate) async fn pause(
    Act(state): Act,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: PauseBody = super::body(&body)?;
    let scope = params::optional("scope", body.scope.as_deref(), params::scope)?;
    let pause = state
        .scheduler
        .pause(
            &name,
            scope,
            body.by.as_deref().unwrap_or(DEFAULT_BY),
            body.reason.as_deref().unwrap_or(""),
        )
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    Ok(HttpResponse::Ok().json(PauseView::from(&pause)))
}

/// Body of `POST /jobs/{name}/resume`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeBody {
    scope: Option<String>,
}

/// `POST /jobs/{name}/resume`.
pub(crate) async fn resume(
    Act(state): Act,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: ResumeBody = super::body(&body)?;
    let scope = params::optional("scope", body.scope.as_deref(), params::scope)?;
    let resumed = state
        .scheduler
        .resume(&name, scope.as_ref())
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    Ok(HttpResponse::Ok().json(json!({ "resumed": resumed })))
}

/// Body of `POST /jobs/{name}/trigger`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    scope: Option<String>,
    idempotency_key: Option<String>,
    by: Option<String>,
}

/// `POST /jobs/{name}/trigger`.
pub(crate) async fn trigger(
    Act(state): Act,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: TriggerBody = super::body(&body)?;
    let target = match params::optional("scope", body.scope.as_deref(), params::scope)? {
        Some(scope) => TriggerTarget::Scope(scope),
        None => TriggerTarget::AllScopes,
    };
    let options = TriggerOptions {
        idempotency_key: body.idempotency_key,
        requested_by: body.by.unwrap_or_else(|| DEFAULT_BY.to_owned()),
    };
    let trigger = state
        .scheduler
        .trigger(&name, target, options)
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    Ok(HttpResponse::Accepted().json(TriggerView::from(&trigger)))
}
