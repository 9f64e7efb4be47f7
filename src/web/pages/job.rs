//! One job (`/jobs/{name}`): its facts, next plans, scopes with their last run (paged by
//! scope), pauses, backfills, and the forms to pause, resume, trigger and backfill.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use jiff::tz::TimeZone;
use maud::{Markup, html};

use super::context::{Ctx, Fields, Problem, encode, problem_page};
use super::layout::{self, csrf_field, zone_named};
use crate::control::BackfillStatus;
use crate::scope::Scope;
use crate::web::state::WebState;
use crate::web::summary::{job_summary, registered_job};

/// How many next plan times the page lists.
const NEXT_PLANS: usize = 5;

/// `GET /jobs/{name}`.
pub(crate) async fn page(
    req: HttpRequest,
    state: Data<WebState>,
    name: Path<String>,
) -> HttpResponse {
    let (ctx, query) = match Ctx::read(&req, &state) {
        Ok(read) => read,
        Err(problem) => return problem_page(&state.base, &problem),
    };
    ctx.finish(render(&ctx, &state, &name, &query).await)
}

/// The scope after which the page starts (`after_kind` and `after_id`), if any.
fn after_scope(query: &Fields) -> Result<Option<Scope>, Problem> {
    match (query.get("after_kind"), query.get("after_id")) {
        (None, None) => Ok(None),
        (Some(kind), Some(id)) => Ok(Some(Scope::new(kind, id))),
        (Some(_), None) => Err(Problem::bad(
            "after_id",
            "`after_kind` needs `after_id` too",
        )),
        (None, Some(_)) => Err(Problem::bad(
            "after_kind",
            "`after_id` needs `after_kind` too",
        )),
    }
}

async fn render(
    ctx: &Ctx,
    state: &WebState,
    name: &str,
    query: &Fields,
) -> Result<Markup, Problem> {
    let scheduler = &state.scheduler;
    let summary = match job_summary(scheduler, name).await {
        Err(crate::Error::UnknownJob(_)) => {
            return Err(Problem::not_found(format!(
                "no job named `{name}` is registered: check the name on the overview"
            )));
        }
        other => other?,
    };
    let registered = registered_job(scheduler, name).await?;
    let zone = zone_named(&summary.time_zone);
    let after = after_scope(query)?;
    let limit = query
        .parsed("limit", super::executions::parse_limit)?
        .unwrap_or(super::executions::PAGE);
    let now = scheduler.store().db_now().await?;
    let next_plans = registered
        .spec
        .upcoming(now, NEXT_PLANS)
        .unwrap_or_default();
    let scopes = scheduler
        .store()
        .execution_latest_per_scope(name, after.as_ref(), limit)
        .await?;
    let pauses = scheduler.pauses(Some(name)).await?;
    let backfills = scheduler.backfills(Some(name)).await?;
    let actions = ctx.can_act && summary.runs_here;
    let job_link = |rest: &str| ctx.link(&format!("/jobs/{}{rest}", encode(name)));
    let paused_scope = |scope: &Scope| pauses.iter().any(|p| p.scope.as_ref() == Some(scope));
    let body = html! {
        dl id="job-facts" data-job=(name) {
            dt { "Status" } dd { (layout::badge(super::overview::health(&summary))) }
            dt { "Schedule" } dd { (summary.schedule.as_deref().unwrap_or("planner hook")) }
            dt { "Time zone" } dd { (summary.time_zone) }
            dt { "Last success" } dd { (layout::maybe_time(summary.last_success_at, &zone)) }
            dt { "Failures (24 h)" } dd { (summary.failures_24h) }
            dt { "Rows" } dd {
                @for (status, n) in &summary.counts {
                    a href=(ctx.link(&format!("/executions?job={}&status={}", encode(name), status.as_str()))) {
                        (layout::status(*status)) " " (n)
                    } " "
                }
            }
            dt { "Runners" } dd {
                @for runner in &summary.runners { (runner.id) " " (layout::badge(runner.state)) " " }
            }
        }
        @if !summary.runs_here && ctx.can_act {
            p.notice id="not-here" { "This runner does not run the job: ask a runner that has it for actions." }
        }

        h2 { "Next plans" }
        ol id="next-plans" {
            @for plan in &next_plans { li { (layout::time(plan.plan_time, &zone)) } }
        }

        @if actions { (job_forms(ctx, name, &summary, &zone, now)) }

        h2 { "Scopes" }
        div.scroll {
            table id="scopes" {
                thead { tr {
                    th { "Scope" } th { "Last plan" } th { "Status" } th { "Attempt" }
                    th { "Finished" } th { "Last error" } th { "Paused" }
                    @if actions { th { "Actions" } }
                } }
                tbody {
                    @for row in &scopes {
                        tr data-scope-kind=(row.scope.kind) data-scope-id=(row.scope.id) data-status=(row.status.as_str()) {
                            td.wrap {
                                a data-history=(row.scope.to_string()) href=(ctx.link(&format!("/executions?job={}&scope_kind={}&scope_id={}", encode(name), encode(&row.scope.kind), encode(&row.scope.id)))) {
                                    (row.scope.kind) "/" (row.scope.id)
                                }
                            }
                            td { a href=(ctx.link(&format!("/executions/{}", row.id))) { (layout::time(row.plan_time, &zone)) } }
                            td { (layout::status(row.status)) }
                            td { (row.attempt) "/" (row.max_attempts) }
                            td { (layout::maybe_time(row.finished_at, &zone)) }
                            td.wrap { (row.error_code.as_deref().unwrap_or("")) }
                            td { @if paused_scope(&row.scope) { (layout::badge("paused")) } }
                            @if actions { td { (scope_forms(ctx, name, &row.scope, paused_scope(&row.scope))) } }
                        }
                    }
                }
            }
        }
        @if scopes.len() == limit {
            @if let Some(last) = scopes.last() {
                p { a id="next-page" href=(job_link(&format!("?after_kind={}&after_id={}&limit={limit}", encode(&last.scope.kind), encode(&last.scope.id)))) { "Next scopes →" } }
            }
        }
        @if scopes.is_empty() { p.muted { "No run yet." } }

        h2 { "Pauses" }
        div.scroll {
            table id="pauses" {
                thead { tr { th { "Scope" } th { "By" } th { "Reason" } th { "Since" } @if actions { th { "Actions" } } } }
                tbody {
                    @for pause in &pauses {
                        tr data-scope=(pause.scope.as_ref().map(|s| s.to_string()).unwrap_or_default()) {
                            td { @match &pause.scope { Some(s) => { (s.kind) "/" (s.id) }, None => { "whole job" } } }
                            td { (pause.paused_by) }
                            td.wrap { (pause.reason) }
                            td { (layout::time(pause.paused_at, &zone)) }
                            @if actions { td {
                                form.inline method="post" action=(job_link("/resume")) data-action="resume" {
                                    (csrf_field(ctx))
                                    @if let Some(s) = &pause.scope {
                                        input type="hidden" name="scope_kind" value=(s.kind);
                                        input type="hidden" name="scope_id" value=(s.id);
                                    }
                                    button type="submit" data-action="resume" { "Resume" }
                                }
                            } }
                        }
                    }
                }
            }
        }

        h2 { "Backfills" }
        div.scroll {
            table id="backfills" {
                thead { tr {
                    th { "Backfill" } th { "From" } th { "To" } th { "Scopes" } th { "Rerun" }
                    th { "Status" } th { "Progress" } th { "By" } @if actions { th { "Actions" } }
                } }
                tbody {
                    @for b in &backfills {
                        tr data-backfill=(b.id) data-status=(b.status.as_str()) {
                            td { (b.id) }
                            td { (layout::time(b.from, &zone)) }
                            td { (layout::time(b.to, &zone)) }
                            td.wrap { @match &b.scopes { Some(s) => { (s.len()) " scope(s)" }, None => { "all" } } }
                            td { (if b.rerun { "yes" } else { "no" }) }
                            td { (layout::badge(b.status.as_str())) }
                            td data-done=(b.done) data-total=(b.total.map(|t| t.to_string()).unwrap_or_default()) {
                                @match b.total {
                                    Some(total) => { progress max=(total.max(1)) value=(b.done.min(total)) {} " " (b.done) " / " (total) },
                                    None => { (b.done) " / ?" },
                                }
                            }
                            td { (b.requested_by) }
                            @if actions { td {
                                @if b.status == BackfillStatus::Active {
                                    form.inline method="post" action=(ctx.link(&format!("/backfills/{}/cancel", b.id))) data-action="cancel-backfill" {
                                        (csrf_field(ctx))
                                        input type="hidden" name="job" value=(name);
                                        button.danger type="submit" data-action="cancel-backfill" { "Cancel" }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if backfills.is_empty() { p.muted { "No backfill." } }
    };
    Ok(layout::shell(ctx, "job", &format!("Job {name}"), body))
}

/// The job-wide forms: pause or resume, trigger, backfill.
fn job_forms(
    ctx: &Ctx,
    name: &str,
    summary: &crate::web::summary::JobSummary,
    zone: &TimeZone,
    now: chrono::DateTime<chrono::Utc>,
) -> Markup {
    let link = |rest: &str| ctx.link(&format!("/jobs/{}{rest}", encode(name)));
    html! {
        h2 { "Actions" }
        @if summary.paused {
            form.box id="resume-job" method="post" action=(link("/resume")) {
                (csrf_field(ctx))
                span { "The whole job is paused." }
                button type="submit" data-action="resume" { "Resume job" }
            }
        } @else {
            form.box id="pause-job" method="post" action=(link("/pause")) {
                (csrf_field(ctx))
                label { "Reason" input type="text" name="reason" placeholder="why (shown to operators)"; }
                button type="submit" data-action="pause" { "Pause job" }
            }
        }
        form.box id="trigger-job" method="post" action=(link("/trigger")) {
            (csrf_field(ctx))
            (trigger_key())
            label { "Scope kind (empty: every scope)" input type="text" name="scope_kind"; }
            label { "Scope id" input type="text" name="scope_id"; }
            button type="submit" data-action="trigger" { "Run now" }
        }
        @if summary.schedule.is_some() {
            form.box id="backfill" method="post" action=(link("/backfill")) {
                (csrf_field(ctx))
                label { "From (" (summary.time_zone) ")" input type="datetime-local" name="from" required; }
                label { "To, excluded" input type="datetime-local" name="to" value=(layout::local_input(now, zone)) required; }
                label { "Rerun finished plans" input type="checkbox" name="rerun" value="yes"; }
                button type="submit" data-action="backfill" { "Start backfill" }
            }
        }
    }
}

/// The forms of one scope's row: pause or resume it, run it now.
fn scope_forms(ctx: &Ctx, name: &str, scope: &Scope, paused: bool) -> Markup {
    let link = |rest: &str| ctx.link(&format!("/jobs/{}{rest}", encode(name)));
    let (action, label) = if paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    };
    html! {
        form.inline method="post" action=(link(&format!("/{action}"))) data-action={ (action) "-scope" } {
            (csrf_field(ctx))
            input type="hidden" name="scope_kind" value=(scope.kind);
            input type="hidden" name="scope_id" value=(scope.id);
            button type="submit" data-action=(action) { (label) }
        }
        " "
        form.inline method="post" action=(link("/trigger")) data-action="trigger-scope" {
            (csrf_field(ctx))
            (trigger_key())
            input type="hidden" name="scope_kind" value=(scope.kind);
            input type="hidden" name="scope_id" value=(scope.id);
            button type="submit" data-action="trigger" { "Run now" }
        }
    }
}

/// A fresh idempotency key for a trigger form: the same form sent twice (a double click, a
/// resubmitted page) asks for one run.
fn trigger_key() -> Markup {
    html! { input type="hidden" name="key" value=(uuid::Uuid::new_v4()); }
}
