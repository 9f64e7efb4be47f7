//! The overview (`/`): every job with its status at a glance, the stale leases, the runners.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use maud::{Markup, html};

use super::context::{Ctx, Problem, encode, problem_page};
use super::layout::{self, Zones};
use crate::web::state::WebState;
use crate::web::summary::{JobSummary, job_summaries};

/// A job's health in one word, as the overview shows it.
pub(crate) fn health(job: &JobSummary) -> &'static str {
    if job.paused {
        "paused"
    } else if job.failures_24h > 0 {
        "failing"
    } else {
        "healthy"
    }
}

/// `GET /`.
pub(crate) async fn page(req: HttpRequest, state: Data<WebState>) -> HttpResponse {
    let (ctx, _) = match Ctx::read(&req, &state) {
        Ok(read) => read,
        Err(problem) => return problem_page(&state.base, &problem),
    };
    ctx.finish(render(&ctx, &state).await)
}

async fn render(ctx: &Ctx, state: &WebState) -> Result<Markup, Problem> {
    let scheduler = &state.scheduler;
    let jobs = job_summaries(scheduler).await?;
    // The same read the retention service's `cronlease_stale_running_executions` gauge makes.
    let stale = scheduler.store().execution_count_stale().await?;
    let runners = scheduler.runners().await?;
    let zones = Zones::new(jobs.iter().map(|j| (j.name.as_str(), j.time_zone.as_str())));
    let body = html! {
        h2 { "Jobs" }
        div.scroll {
            table id="jobs" {
                thead { tr {
                    th { "Job" } th { "Status" } th { "Schedule" } th { "Next plan" }
                    th { "Last success" } th { "Failures (24 h)" } th { "Running" } th { "Dead" }
                    th { "Runners" }
                } }
                tbody {
                    @for job in &jobs {
                        @let zone = zones.of(&job.name);
                        tr data-job=(job.name) data-health=(health(job)) {
                            td { a href=(ctx.link(&format!("/jobs/{}", encode(&job.name)))) { (job.name) } }
                            td {
                                (layout::badge(health(job)))
                                @if job.paused_scopes > 0 {
                                    " " span.muted { (job.paused_scopes) " scope(s) paused" }
                                }
                                @if job.conflicting {
                                    " " span.badge.s-failing title="live runners registered different specs" { "conflicting specs" }
                                }
                            }
                            td { (job.schedule.as_deref().unwrap_or("planner hook")) " " span.muted { (job.time_zone) } }
                            td { (layout::maybe_time(job.next_plan, &zone)) }
                            td { (layout::maybe_time(job.last_success_at, &zone)) }
                            td data-failures=(job.failures_24h) { (job.failures_24h) }
                            td { (job.count(crate::Status::Running)) }
                            td { a href=(ctx.link(&format!("/dead?job={}", encode(&job.name)))) { (job.count(crate::Status::Dead)) } }
                            td { (job.runners.iter().filter(|r| r.state == "live").count()) " live" }
                        }
                    }
                }
            }
        }
        @if jobs.is_empty() {
            p.muted { "No job is registered yet: jobs appear once a runner has started with them." }
        }

        h2 { "Stale leases" }
        p.muted { "RUNNING rows whose lease ran out without a heartbeat; the next tick of the job sweeps them." }
        div.scroll {
            table id="stale" {
                thead { tr { th { "Job" } th { "Stale leases" } } }
                tbody {
                    @for (job, n) in &stale {
                        tr data-job=(job) {
                            td { a href=(ctx.link(&format!("/executions?job={}&status=RUNNING", encode(job)))) { (job) } }
                            td data-stale=(n) { (n) }
                        }
                    }
                }
            }
        }
        @if stale.is_empty() { p.muted id="no-stale" { "No stale lease." } }

        h2 { "Runners" }
        div.scroll {
            table id="runners" {
                thead { tr {
                    th { "Runner" } th { "State" } th { "Host" } th { "Pid" } th { "Version" }
                    th { "Started" } th { "Last seen" }
                } }
                tbody {
                    @for runner in &runners {
                        tr data-runner=(runner.id) {
                            td { (runner.id) }
                            td { (layout::badge(runner.state.as_str())) }
                            td { (runner.host) }
                            td { (runner.pid) }
                            td { (runner.version) }
                            td { (layout::time(runner.started_at, &jiff::tz::TimeZone::UTC)) }
                            td { (layout::time(runner.last_seen, &jiff::tz::TimeZone::UTC)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::shell(ctx, "overview", "Overview", body))
}
