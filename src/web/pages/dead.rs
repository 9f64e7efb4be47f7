//! The dead letters (`/dead`): DEAD executions, filtered, in keyset pages, with replay of one
//! row, of the checked rows, or of every row matching the filter.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use maud::{Markup, html};

use super::context::{Ctx, Fields, Problem, encode, problem_page};
use super::executions::{filter_form, filter_of, query_of, zones};
use super::layout::{self, csrf_field};
use crate::web::state::WebState;

/// The word the "replay all matching" form needs in its `confirm` field.
pub(crate) const CONFIRM_WORD: &str = "replay";

/// `GET /dead`.
pub(crate) async fn page(req: HttpRequest, state: Data<WebState>) -> HttpResponse {
    let (ctx, query) = match Ctx::read(&req, &state) {
        Ok(read) => read,
        Err(problem) => return problem_page(&state.base, &problem),
    };
    ctx.finish(render(&ctx, &state, &query).await)
}

async fn render(ctx: &Ctx, state: &WebState, query: &Fields) -> Result<Markup, Problem> {
    let zones = zones(state).await?;
    let filter = filter_of(query, &zones)?;
    let rows = state.scheduler.dead_executions(&filter).await?;
    let next = filter.next_page(&rows).and_then(|f| f.after);
    let base_query = query_of(&crate::store::ExecutionFilter {
        status: None,
        ..filter.clone()
    });
    let table = html! {
        div.scroll {
            table id="dead" {
                thead { tr {
                    @if ctx.can_act { th { "Select" } }
                    th { "Plan" } th { "Job" } th { "Scope" } th { "Attempts" } th { "Error" }
                    th { "Message" } th { "Failed" }
                    @if ctx.can_act { th { "Replay" } }
                } }
                tbody {
                    @for row in &rows {
                        @let zone = zones.of(&row.job_name);
                        tr data-execution=(row.id) data-job=(row.job_name) {
                            @if ctx.can_act {
                                td { input type="checkbox" name="id" value=(row.id) data-select=(row.id) aria-label="select"; }
                            }
                            td { a href=(ctx.link(&format!("/executions/{}", row.id))) { (layout::time(row.plan_time, &zone)) } }
                            td { a href=(ctx.link(&format!("/jobs/{}", encode(&row.job_name)))) { (row.job_name) } }
                            td.wrap { (row.scope.kind) "/" (row.scope.id) }
                            td { (row.attempt) "/" (row.max_attempts) }
                            td { (row.error_code.as_deref().unwrap_or("")) }
                            td.wrap { (row.error_msg.as_deref().unwrap_or("")) }
                            td { (layout::maybe_time(row.finished_at, &zone)) }
                            @if ctx.can_act {
                                td {
                                    // One form per page (HTML forms do not nest): this button
                                    // sends it to the one-row replay of its own row.
                                    button type="submit" formaction=(ctx.link(&format!("/dead/{}/replay", row.id)))
                                        data-action="replay" data-execution=(row.id) { "Replay" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (filter_form(ctx, "filter-dead", "/dead", &filter, false))
        @if ctx.can_act {
            form id="replay-selected" method="post" action=(ctx.link("/dead/replay")) {
                (csrf_field(ctx))
                input type="hidden" name="back" value=(base_query);
                (table)
                @if !rows.is_empty() {
                    p { button type="submit" data-action="replay-selected" { "Replay selected" } }
                }
            }
        } @else {
            (table)
        }
        @if rows.is_empty() { p.muted id="empty" { "No dead execution matches." } }
        @if let Some(cursor) = next {
            @let sep = if base_query.is_empty() { "" } else { "&" };
            p { a id="next-page" href=(ctx.link(&format!("/dead?{base_query}{sep}after={cursor}"))) { "Older →" } }
        }
        @if ctx.can_act && !rows.is_empty() {
            h2 { "Replay every match" }
            form.box id="replay-matching" method="post" action=(ctx.link("/dead/replay-matching")) {
                (csrf_field(ctx))
                @if let Some(job) = &filter.job { input type="hidden" name="job" value=(job); }
                @if let Some(scope) = &filter.scope {
                    input type="hidden" name="scope_kind" value=(scope.kind);
                    input type="hidden" name="scope_id" value=(scope.id);
                }
                @if let Some(t) = filter.plan_from { input type="hidden" name="from" value=(t.to_rfc3339()); }
                @if let Some(t) = filter.plan_before { input type="hidden" name="before" value=(t.to_rfc3339()); }
                label { "Type “" (CONFIRM_WORD) "” to replay every dead execution matching this filter, on every page"
                    input type="text" name="confirm" autocomplete="off" required; }
                button.danger type="submit" data-action="replay-matching" { "Replay all matching" }
            }
        }
    };
    Ok(layout::shell(ctx, "dead", "Dead letters", body))
}
