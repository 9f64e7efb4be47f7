//! Jobs: their summaries, the next plan times of one, and why a plan of one ran or did not.
//!
//! - `GET /jobs`: every job's [`JobSummary`](crate::web::summary::JobSummary).
//! - `GET /jobs/{name}`: one job's summary, with its pauses and its registered spec.
//! - `GET /jobs/{name}/preview?scope=&n=`: its next `n` plan times (database clock).
//! - `GET /jobs/{name}/why?scope=&plan_time=`: why that plan ran or did not.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::guard::Read;
use super::params;
use super::views::{PauseView, PlanView, why};
use crate::schedule::{stagger_offset, upcoming};
use crate::web::error::ApiError;
use crate::web::summary::{job_summaries, job_summary, registered_job};

/// The most plan times one preview lists.
const MAX_PREVIEW: usize = 100;

/// `GET /jobs`.
pub(crate) async fn list(Read(state): Read) -> Result<HttpResponse, ApiError> {
    let jobs = job_summaries(&state.scheduler).await?;
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs })))
}

/// `GET /jobs/{name}`.
pub(crate) async fn get(
    Read(state): Read,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scheduler = &state.scheduler;
    let summary = job_summary(scheduler, &name)
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    let job = registered_job(scheduler, &name).await?;
    let pauses = scheduler.pauses(Some(&name)).await?;
    let spec = &job.spec;
    Ok(HttpResponse::Ok().json(json!({
        "job": summary,
        "pauses": pauses.iter().map(PauseView::from).collect::<Vec<_>>(),
        "spec": {
            "stagger_ms": spec.stagger.as_millis(),
            "schedule_delay_ms": spec.schedule_delay.as_millis(),
            "catch_up": spec.catch_up,
            "max_attempts": spec.max_attempts,
            "backoff": spec.backoff,
            "run_timeout_ms": spec.run_timeout.as_millis(),
            "stale_timeout_ms": spec.stale_timeout.as_millis(),
            "heartbeat_interval_ms": spec.heartbeat_interval.as_millis(),
            "spec_hash": spec.spec_hash,
        },
    })))
}

/// Parameters of `GET /jobs/{name}/preview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewQuery {
    scope: Option<String>,
    n: Option<String>,
}

/// `GET /jobs/{name}/preview`: the next plan times after the database clock's now; with a
/// scope, each due after that scope's stagger offset.
pub(crate) async fn preview(
    Read(state): Read,
    name: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = params::optional("scope", query.scope.as_deref(), params::scope)?;
    let n = params::limit("n", query.n.as_deref(), 5, MAX_PREVIEW)?;
    let scheduler = &state.scheduler;
    let job = registered_job(scheduler, &name)
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    let spec = &job.spec;
    let Some(schedule) = spec.schedule() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job `{name}` plans with a planner hook: it has no schedule to preview"),
        )
        .on("name"));
    };
    let schedule = schedule?;
    let offset = scope.as_ref().map_or(std::time::Duration::ZERO, |s| {
        stagger_offset(&name, s, spec.stagger)
    });
    let now = scheduler.store().db_now().await?;
    let plans = upcoming(&schedule, now, n, spec.schedule_delay + offset);
    Ok(HttpResponse::Ok().json(json!({
        "job": job.name,
        "schedule": spec.schedule,
        "time_zone": spec.time_zone,
        "scope": scope.as_ref().map(ToString::to_string),
        "stagger_offset_ms": offset.as_millis(),
        "now": now,
        "plans": plans.iter().map(PlanView::from).collect::<Vec<_>>(),
    })))
}

/// Parameters of `GET /jobs/{name}/why`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhyQuery {
    scope: Option<String>,
    plan_time: Option<String>,
}

/// `GET /jobs/{name}/why`: the scope defaults to `global`; `plan_time` is required.
pub(crate) async fn explain(
    Read(state): Read,
    name: web::Path<String>,
    query: web::Query<WhyQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = params::optional("scope", query.scope.as_deref(), params::scope)?
        .unwrap_or_else(crate::scope::Scope::global);
    let plan_time = match query.plan_time.as_deref() {
        Some(text) => params::time("plan_time", text)?,
        None => {
            return Err(ApiError::bad(
                "plan_time",
                "give the plan time to explain, e.g. plan_time=2026-11-29T03:00:00Z",
            ));
        }
    };
    let answer = state
        .scheduler
        .why(&name, &scope, plan_time)
        .await
        .map_err(|e| ApiError::from_error(e, "name"))?;
    let mut body = why(&answer);
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("job".into(), name.as_str().into());
        map.insert("scope".into(), scope.to_string().into());
        map.insert("plan_time".into(), json!(plan_time));
    }
    Ok(HttpResponse::Ok().json(body))
}
