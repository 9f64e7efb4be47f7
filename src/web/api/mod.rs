//! The JSON API, mounted under `…/api`: read the scheduler's state and act on it.
//!
//! - [`ENDPOINTS`]: every route with its documentation; the routes are registered from it and
//!   `GET /openapi.json` describes it, so the two cannot drift apart.
//! - `guard.rs`: who may read and act, and the JSON content type every POST must declare.
//! - `params.rs`: parameter parsing, each failure a 400 naming the parameter.
//! - `views.rs`: what the replies show of each row (never a lease token).
//! - `jobs.rs`, `actions.rs`, `backfills.rs`, `executions.rs`, `runners.rs`: the endpoints.
//! - `openapi.rs`: the OpenAPI 3.1 description.
//!
//! Every reply is JSON, errors included (`crate::web::error`). GETs need
//! [`Access::can_read`](crate::web::Access::can_read); POSTs need
//! [`Access::can_act`](crate::web::Access::can_act) and `Content-Type: application/json`
//! (415 otherwise), which a cross-site form cannot send: that is the API's CSRF defence.

mod actions;
mod backfills;
mod executions;
mod guard;
mod jobs;
mod openapi;
mod params;
mod runners;
mod views;

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, Route};
use serde::de::DeserializeOwned;

use crate::web::error::{self, ApiError};

/// One endpoint: its route and what the OpenAPI description says of it.
pub(crate) struct Endpoint {
    /// `GET` or `POST`.
    pub(crate) method: &'static str,
    /// The path under `…/api`, with `{name}` placeholders.
    pub(crate) path: &'static str,
    /// One line on what it does.
    pub(crate) summary: &'static str,
    /// Query parameters: name, description.
    pub(crate) query: &'static [(&'static str, &'static str)],
    /// JSON body fields of a POST: name, description.
    pub(crate) body: &'static [(&'static str, &'static str)],
    /// The replies: status, description.
    pub(crate) replies: &'static [(u16, &'static str)],
    /// The route to register.
    pub(crate) route: fn() -> Route,
}

const LIST_FILTERS: &[(&str, &str)] = &[
    ("job", "only this job"),
    ("scope", "only this scope, `KIND:ID` or `global`"),
    ("scope_kind", "only this scope's kind (with `scope_id`)"),
    ("scope_id", "only this scope's id (with `scope_kind`)"),
    (
        "status",
        "only this status: RUNNING, SUCCESS, FAILED, DEAD, SUPERSEDED, SKIPPED",
    ),
    ("from", "only plans at or after this RFC 3339 time"),
    ("before", "only plans before this RFC 3339 time"),
    ("after", "the `next` cursor of the previous page"),
    ("limit", "rows per page, 1 to 1000 (default 100)"),
];

/// Every endpoint of the API.
pub(crate) static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/jobs",
        summary: "Every job's summary: schedule, next plan, pauses, counts by status, last success, failures in the last 24 h, runners.",
        query: &[],
        body: &[],
        replies: &[(200, "`{jobs: [summary]}`")],
        route: || web::get().to(jobs::list),
    },
    Endpoint {
        method: "GET",
        path: "/jobs/{name}",
        summary: "One job's summary, its pauses and its registered spec.",
        query: &[],
        body: &[],
        replies: &[(200, "`{job, pauses, spec}`"), (404, "unknown job")],
        route: || web::get().to(jobs::get),
    },
    Endpoint {
        method: "GET",
        path: "/jobs/{name}/preview",
        summary: "The job's next plan times after the database clock's now.",
        query: &[
            (
                "scope",
                "`KIND:ID`: plans due after this scope's stagger offset",
            ),
            ("n", "how many, 1 to 100 (default 5)"),
        ],
        body: &[],
        replies: &[
            (
                200,
                "`{job, schedule, time_zone, scope, stagger_offset_ms, now, plans: [{plan_time, plan_time_local, due_at}]}`",
            ),
            (400, "bad scope or n"),
            (404, "unknown job"),
            (409, "the job plans with a planner hook"),
        ],
        route: || web::get().to(jobs::preview),
    },
    Endpoint {
        method: "GET",
        path: "/jobs/{name}/why",
        summary: "Why the plan at `plan_time` of a scope ran or did not.",
        query: &[
            ("scope", "`KIND:ID` (default `global`)"),
            ("plan_time", "the plan's RFC 3339 time (required)"),
        ],
        body: &[],
        replies: &[
            (
                200,
                "`{answer, description, job, scope, plan_time, ...details}`; answer is ran, paused, skipped, not_due_yet, pending, not_a_plan_time, before_history or unknown",
            ),
            (400, "bad scope or plan_time"),
            (404, "a job this scheduler does not run"),
        ],
        route: || web::get().to(jobs::explain),
    },
    Endpoint {
        method: "POST",
        path: "/jobs/{name}/pause",
        summary: "Pauses the job, or one scope of it, on every replica.",
        query: &[],
        body: &[
            ("scope", "`KIND:ID`; absent: the whole job"),
            ("reason", "why (shown to operators)"),
            ("by", "who asked (default `web`)"),
        ],
        replies: &[
            (200, "the pause"),
            (400, "bad scope"),
            (404, "a job this scheduler does not run"),
        ],
        route: || web::post().to(actions::pause),
    },
    Endpoint {
        method: "POST",
        path: "/jobs/{name}/resume",
        summary: "Lifts the job's pause, or one scope's own pause.",
        query: &[],
        body: &[("scope", "`KIND:ID`; absent: the whole-job pause")],
        replies: &[
            (200, "`{resumed: bool}`: whether there was a pause"),
            (400, "bad scope"),
            (404, "a job this scheduler does not run"),
        ],
        route: || web::post().to(actions::resume),
    },
    Endpoint {
        method: "POST",
        path: "/jobs/{name}/trigger",
        summary: "Runs the job now, outside its schedule, for one scope or every scope.",
        query: &[],
        body: &[
            ("scope", "`KIND:ID`; absent: every scope"),
            (
                "idempotency_key",
                "a repeated request with the same key returns the first trigger",
            ),
            ("by", "who asked (default `web`)"),
        ],
        replies: &[
            (202, "the trigger"),
            (400, "bad scope"),
            (404, "a job this scheduler does not run"),
        ],
        route: || web::post().to(actions::trigger),
    },
    Endpoint {
        method: "POST",
        path: "/jobs/{name}/backfill",
        summary: "Runs every plan time of the job's schedule in [from, to).",
        query: &[],
        body: &[
            ("from", "first plan time included, RFC 3339 (required)"),
            (
                "to",
                "end of the range, excluded, not in the future (required)",
            ),
            ("scope", "one scope `KIND:ID`"),
            ("scopes", "a list of scopes; with neither, every scope"),
            (
                "rerun",
                "also run plans that already finished (default false)",
            ),
            ("by", "who asked (default `web`)"),
        ],
        replies: &[
            (202, "the backfill"),
            (400, "bad or empty range, bad scope, planner-hook job"),
            (404, "a job this scheduler does not run"),
        ],
        route: || web::post().to(backfills::create),
    },
    Endpoint {
        method: "GET",
        path: "/backfills",
        summary: "Every backfill, oldest first, with its progress.",
        query: &[("job", "only this job")],
        body: &[],
        replies: &[(200, "`{backfills: [backfill]}`")],
        route: || web::get().to(backfills::list),
    },
    Endpoint {
        method: "GET",
        path: "/backfills/{id}",
        summary: "One backfill with its progress (`done` of `total` plans).",
        query: &[],
        body: &[],
        replies: &[
            (200, "the backfill"),
            (400, "bad id"),
            (404, "unknown backfill"),
        ],
        route: || web::get().to(backfills::get),
    },
    Endpoint {
        method: "POST",
        path: "/backfills/{id}/cancel",
        summary: "Cancels an active backfill; attempts already started finish.",
        query: &[],
        body: &[],
        replies: &[
            (200, "`{cancelled: bool, backfill}`"),
            (400, "bad id"),
            (404, "unknown backfill"),
        ],
        route: || web::post().to(backfills::cancel),
    },
    Endpoint {
        method: "GET",
        path: "/runners",
        summary: "The scheduler instances sharing the database: live, gone or stopped.",
        query: &[],
        body: &[],
        replies: &[(200, "`{runners: [runner]}`")],
        route: || web::get().to(runners::list),
    },
    Endpoint {
        method: "GET",
        path: "/executions",
        summary: "Executions, newest plan first, one keyset page.",
        query: LIST_FILTERS,
        body: &[],
        replies: &[
            (200, "`{executions: [execution], next: cursor or null}`"),
            (400, "a bad filter, cursor or limit"),
        ],
        route: || web::get().to(executions::list),
    },
    Endpoint {
        method: "GET",
        path: "/executions/{id}",
        summary: "One execution with its failure history.",
        query: &[],
        body: &[],
        replies: &[
            (200, "the execution"),
            (400, "bad id"),
            (404, "unknown execution"),
        ],
        route: || web::get().to(executions::get),
    },
    Endpoint {
        method: "GET",
        path: "/dead",
        summary: "The dead-letter set, newest plan first, one keyset page (same filters; `status` is ignored).",
        query: LIST_FILTERS,
        body: &[],
        replies: &[
            (200, "`{executions: [execution], next: cursor or null}`"),
            (400, "a bad filter, cursor or limit"),
        ],
        route: || web::get().to(executions::dead),
    },
    Endpoint {
        method: "POST",
        path: "/dead/{id}/replay",
        summary: "Replays one dead execution: same row, FAILED and due now, more attempts, history kept.",
        query: &[],
        body: &[],
        replies: &[
            (200, "the replayed execution"),
            (400, "bad id"),
            (404, "unknown execution"),
            (409, "the execution is not DEAD"),
        ],
        route: || web::post().to(executions::replay),
    },
    Endpoint {
        method: "POST",
        path: "/dead/replay",
        summary: "Replays the dead executions matching a filter (the filters of `/dead` as JSON fields), up to `limit`.",
        query: &[],
        body: LIST_FILTERS,
        replies: &[
            (200, "`{replayed: [execution]}`"),
            (400, "a bad filter or limit"),
        ],
        route: || web::post().to(executions::replay_where),
    },
    Endpoint {
        method: "GET",
        path: "/openapi.json",
        summary: "This API's OpenAPI 3.1 description.",
        query: &[],
        body: &[],
        replies: &[(200, "the OpenAPI document")],
        route: || web::get().to(openapi::document),
    },
];

/// Registers the API's routes, and the extractor error handlers that make every malformed
/// request a JSON 400.
pub(crate) fn configure(config: &mut ServiceConfig) {
    config
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::JsonConfig::default().error_handler(error::json_error));
    for endpoint in ENDPOINTS {
        let method = endpoint.method;
        config.service(
            web::resource(endpoint.path)
                .route((endpoint.route)())
                .default_service(web::to(move || method_not_allowed(method))),
        );
    }
    config.default_service(web::to(not_found));
}

async fn method_not_allowed(allowed: &'static str) -> HttpResponse {
    use actix_web::ResponseError;
    let mut reply = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("this endpoint answers {allowed} only"),
    )
    .on("method")
    .error_response();
    reply.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allowed),
    );
    reply
}

async fn not_found() -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "no such endpoint: see openapi.json for the API's routes",
    )
    .error_response()
}

/// A JSON body of a POST: empty means every field at its default.
pub(crate) fn body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let message = format!("bad JSON body: {e}");
        let parameter = error::named_field(&message).unwrap_or_else(|| "body".to_owned());
        ApiError::bad(&parameter, message)
    })
}
