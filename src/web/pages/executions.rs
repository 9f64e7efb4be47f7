//! The executions (`/executions`, filtered, in keyset pages) and one execution
//! (`/executions/{id}`) with its failure history.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use maud::{Markup, html};
use uuid::Uuid;

use super::context::{Ctx, Fields, Problem, encode, parse_time, problem_page};
use super::layout::{self, Zones, csrf_field};
use crate::execution::{Execution, Status};
use crate::scope::Scope;
use crate::store::{ExecutionCursor, ExecutionFilter};
use crate::web::state::WebState;

/// Rows per page, unless the query's `limit` asks for another number.
pub(crate) const PAGE: usize = 50;

/// The most rows a page may ask for.
pub(crate) const MAX_PAGE: usize = 500;

/// A page size from a query's `limit`: 1 to [`MAX_PAGE`].
pub(crate) fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a page size: use a number from 1 to {MAX_PAGE}"
        )),
    }
}

/// The filter a listing's query asks for (`job`, `scope_kind` + `scope_id`, `status`, `from`,
/// `before`, `after`), or a 400 naming the malformed parameter. Times without a zone are read
/// in `zones`' zone of the filter's job (UTC without a job).
pub(crate) fn filter_of(query: &Fields, zones: &Zones) -> Result<ExecutionFilter, Problem> {
    let job = query.get("job").map(str::to_owned);
    let zone = job
        .as_deref()
        .map_or(jiff::tz::TimeZone::UTC, |j| zones.of(j));
    let scope = match (query.get("scope_kind"), query.get("scope_id")) {
        (None, None) => None,
        (Some(kind), Some(id)) => Some(Scope::new(kind, id)),
        (Some(_), None) => {
            return Err(Problem::bad(
                "scope_id",
                "`scope_kind` needs `scope_id` too",
            ));
        }
        (None, Some(_)) => {
            return Err(Problem::bad(
                "scope_kind",
                "`scope_id` needs `scope_kind` too",
            ));
        }
    };
    let status = query.parsed("status", |s| {
        s.to_ascii_uppercase().parse::<Status>().map_err(|e| {
            let known: Vec<&str> = Status::ALL.iter().map(Status::as_str).collect();
            format!("{e}: use one of {}", known.join(", "))
        })
    })?;
    Ok(ExecutionFilter {
        job,
        scope,
        status,
        plan_from: query.parsed("from", |t| parse_time(t, &zone))?,
        plan_before: query.parsed("before", |t| parse_time(t, &zone))?,
        after: query.parsed("after", |c| c.parse::<ExecutionCursor>())?,
        limit: query.parsed("limit", parse_limit)?.unwrap_or(PAGE),
    })
}

/// The query string of `filter` (without `after`; `limit` when not the default), to link to
/// the same listing.
pub(crate) fn query_of(filter: &ExecutionFilter) -> String {
    let mut parts = Vec::new();
    if let Some(job) = &filter.job {
        parts.push(format!("job={}", encode(job)));
    }
    if let Some(scope) = &filter.scope {
        parts.push(format!("scope_kind={}", encode(&scope.kind)));
        parts.push(format!("scope_id={}", encode(&scope.id)));
    }
    if let Some(status) = filter.status {
        parts.push(format!("status={}", status.as_str()));
    }
    for (name, t) in [("from", filter.plan_from), ("before", filter.plan_before)] {
        if let Some(t) = t {
            let text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            parts.push(format!("{name}={}", encode(&text)));
        }
    }
    if filter.limit != PAGE {
        parts.push(format!("limit={}", filter.limit));
    }
    parts.join("&")
}

/// The zones of every registered job.
pub(crate) async fn zones(state: &WebState) -> Result<Zones, Problem> {
    let jobs = state.scheduler.registered_jobs(None).await?;
    Ok(Zones::new(
        jobs.iter()
            .map(|j| (j.name.as_str(), j.spec.time_zone.as_str())),
    ))
}

/// The filter form of a listing (`GET`), its fields filled from `filter`.
pub(crate) fn filter_form(
    ctx: &Ctx,
    id: &str,
    path: &str,
    filter: &ExecutionFilter,
    with_status: bool,
) -> Markup {
    let utc = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    html! {
        form.box id=(id) method="get" action=(ctx.link(path)) {
            label { "Job" input type="text" name="job" value=(filter.job.as_deref().unwrap_or("")); }
            label { "Scope kind" input type="text" name="scope_kind" value=(filter.scope.as_ref().map_or("", |s| s.kind.as_str())); }
            label { "Scope id" input type="text" name="scope_id" value=(filter.scope.as_ref().map_or("", |s| s.id.as_str())); }
            @if with_status {
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for status in Status::ALL {
                            option value=(status.as_str()) selected[filter.status == Some(status)] { (status.as_str()) }
                        }
                    }
                }
            }
            label { "Plans from" input type="text" name="from" placeholder="2026-11-24T00:00:00Z" value=(utc(filter.plan_from)); }
            label { "Plans before" input type="text" name="before" placeholder="2026-11-25T00:00" value=(utc(filter.plan_before)); }
            button type="submit" data-action="filter" { "Filter" }
        }
    }
}

/// `GET /executions`.
pub(crate) async fn list(req: HttpRequest, state: Data<WebState>) -> HttpResponse {
    let (ctx, query) = match Ctx::read(&req, &state) {
        Ok(read) => read,
        Err(problem) => return problem_page(&state.base, &problem),
    };
    ctx.finish(render_list(&ctx, &state, &query).await)
}

async fn render_list(ctx: &Ctx, state: &WebState, query: &Fields) -> Result<Markup, Problem> {
    let zones = zones(state).await?;
    let filter = filter_of(query, &zones)?;
    let rows = state.scheduler.executions(&filter).await?;
    let next = filter.next_page(&rows).and_then(|f| f.after);
    let base_query = query_of(&filter);
    let body = html! {
        (filter_form(ctx, "filter-executions", "/executions", &filter, true))
        (table(ctx, "executions", &rows, &zones))
        @if rows.is_empty() { p.muted id="empty" { "No execution matches." } }
        @if let Some(cursor) = next {
            @let sep = if base_query.is_empty() { "" } else { "&" };
            p { a id="next-page" href=(ctx.link(&format!("/executions?{base_query}{sep}after={cursor}"))) { "Older →" } }
        }
    };
    Ok(layout::shell(ctx, "executions", "Executions", body))
}

/// A table of executions with stable `data-` attributes per row.
pub(crate) fn table(ctx: &Ctx, id: &str, rows: &[Execution], zones: &Zones) -> Markup {
    html! {
        div.scroll {
            table id=(id) {
                thead { tr {
                    th { "Plan" } th { "Job" } th { "Scope" } th { "Status" } th { "Attempt" }
                    th { "Started" } th { "Finished" } th { "Error" } th { "Runner" }
                } }
                tbody {
                    @for row in rows {
                        @let zone = zones.of(&row.job_name);
                        tr data-execution=(row.id) data-status=(row.status.as_str()) data-job=(row.job_name) {
                            td { a href=(ctx.link(&format!("/executions/{}", row.id))) { (layout::time(row.plan_time, &zone)) } }
                            td { a href=(ctx.link(&format!("/jobs/{}", encode(&row.job_name)))) { (row.job_name) } }
                            td.wrap { (row.scope.kind) "/" (row.scope.id) }
                            td { (layout::status(row.status)) @if row.is_manual() { " " span.muted { "manual" } } }
                            td { (row.attempt) "/" (row.max_attempts) }
                            td { (layout::maybe_time(row.started_at, &zone)) }
                            td { (layout::maybe_time(row.finished_at, &zone)) }
                            td.wrap { (row.error_code.as_deref().unwrap_or("")) }
                            td { (row.runner_id) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /executions/{id}`.
pub(crate) async fn one(req: HttpRequest, state: Data<WebState>, id: Path<String>) -> HttpResponse {
    let (ctx, _) = match Ctx::read(&req, &state) {
        Ok(read) => read,
        Err(problem) => return problem_page(&state.base, &problem),
    };
    ctx.finish(render_one(&ctx, &state, &id).await)
}

/// An execution id from a path or form, or a 400 naming `parameter`.
pub(crate) fn parse_id(parameter: &str, text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| {
        Problem::bad(
            parameter,
            format!("`{text}` is not an execution id (a UUID)"),
        )
    })
}

async fn render_one(ctx: &Ctx, state: &WebState, id: &str) -> Result<Markup, Problem> {
    let id = parse_id("id", id)?;
    let row = state.scheduler.execution(id).await?.ok_or_else(|| {
        Problem::not_found(format!(
            "no execution with id {id}: it may have been pruned"
        ))
    })?;
    let zones = zones(state).await?;
    let zone = zones.of(&row.job_name);
    let result = serde_json::to_string_pretty(&row.result).unwrap_or_default();
    let body = html! {
        dl id="execution" data-execution=(row.id) data-status=(row.status.as_str()) {
            dt { "Job" } dd { a href=(ctx.link(&format!("/jobs/{}", encode(&row.job_name)))) { (row.job_name) } }
            dt { "Scope" } dd {
                a id="scope-history" href=(ctx.link(&format!("/executions?job={}&scope_kind={}&scope_id={}", encode(&row.job_name), encode(&row.scope.kind), encode(&row.scope.id)))) {
                    (row.scope.kind) "/" (row.scope.id)
                }
            }
            dt { "Plan" } dd { (layout::time(row.plan_time, &zone)) }
            dt { "Status" } dd { (layout::status(row.status)) }
            dt { "Attempt" } dd { (row.attempt) " of " (row.max_attempts) }
            dt { "Claimed as" } dd { (row.claim_outcome.as_str()) }
            dt { "Runner" } dd { (row.runner_id) }
            dt { "Started" } dd { (layout::maybe_time(row.started_at, &zone)) }
            dt { "Last heartbeat" } dd { (layout::maybe_time(row.heartbeat_at, &zone)) }
            dt { "Stale after" } dd { (layout::maybe_time(row.stale_after, &zone)) }
            dt { "Finished" } dd { (layout::maybe_time(row.finished_at, &zone)) }
            dt { "Next retry" } dd { (layout::maybe_time(row.next_retry_at, &zone)) }
            dt { "Duration" } dd { @if let Some(ms) = row.duration_ms { (ms) " ms" } }
            dt { "Rows affected" } dd { @if let Some(n) = row.rows_affected { (n) } }
            dt { "Last error" } dd id="last-error" {
                (row.error_code.as_deref().unwrap_or("")) " "
                @if let Some(message) = &row.error_msg { pre { (message) } }
            }
            dt { "Result" } dd { pre id="result" { (result) } }
            dt { "Replayed" } dd { (layout::maybe_time(row.replayed_at, &zone)) }
            dt { "Trigger" } dd { @if let Some(t) = row.trigger_id { (t) } @else { span.muted { "scheduled plan" } } }
        }
        @if ctx.can_act && row.status == Status::Dead {
            form.box id="replay-execution" method="post" action=(ctx.link(&format!("/dead/{}/replay", row.id))) {
                (csrf_field(ctx))
                button type="submit" data-action="replay" data-execution=(row.id) { "Replay" }
            }
        }
        h2 { "Failure history" }
        div.scroll {
            table id="failures" {
                thead { tr { th { "Attempt" } th { "Code" } th { "Message" } th { "Started" } th { "Failed" } } }
                tbody {
                    @for failure in &row.failures {
                        tr data-attempt=(failure.attempt) data-code=(failure.code) {
                            td { (failure.attempt) }
                            td { (failure.code) }
                            td.wrap { pre { (failure.message) } }
                            td { (layout::maybe_time(failure.started_at, &zone)) }
                            td { (layout::maybe_time(failure.finished_at, &zone)) }
                        }
                    }
                }
            }
        }
        @if row.failures.is_empty() { p.muted { "No failed attempt." } }
    };
    Ok(layout::shell(
        ctx,
        "execution",
        &format!("Execution {}", row.id),
        body,
    ))
}
