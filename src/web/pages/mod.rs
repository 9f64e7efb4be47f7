//! The HTML dashboard, mounted at the scope's root: server-rendered pages (maud, no JavaScript),
//! forms for every action, CSRF-protected (see `docs/web.md` for the pages and their
//! stable selectors).
//!
//! - `context.rs`: the access check, the CSRF token, the parsed query or form, the replies
//!   (page, 303 with a notice, error page).
//! - `layout.rs`: the page shell (one inline stylesheet, viewport meta), times in the job's
//!   time zone, badges.
//! - `overview.rs`: `/`, every job at a glance, stale leases, runners.
//! - `job.rs`: `/jobs/{name}`, one job's scopes, pauses, backfills and forms.
//! - `executions.rs`: `/executions` (filters, keyset pages) and `/executions/{id}`.
//! - `dead.rs`: `/dead`, the dead letters and their replay forms.
//! - `actions.rs`: the POST handlers behind the forms.

mod actions;
mod context;
mod dead;
mod executions;
mod job;
mod layout;
mod overview;

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};

use super::state::WebState;
use context::{Ctx, Problem, problem_page};

/// Registers the dashboard's routes.
pub(crate) fn configure(config: &mut ServiceConfig) {
    config
        .route("", web::get().to(overview::page))
        .route("/", web::get().to(overview::page))
        .route("/jobs/{name}", web::get().to(job::page))
        .route("/jobs/{name}/pause", web::post().to(actions::pause))
        .route("/jobs/{name}/resume", web::post().to(actions::resume))
        .route("/jobs/{name}/trigger", web::post().to(actions::trigger))
        .route("/jobs/{name}/backfill", web::post().to(actions::backfill))
        .route(
            "/backfills/{id}/cancel",
            web::post().to(actions::cancel_backfill),
        )
        .route("/executions", web::get().to(executions::list))
        .route("/executions/{id}", web::get().to(executions::one))
        .route("/dead", web::get().to(dead::page))
        .route("/dead/replay", web::post().to(actions::replay_selected))
        .route(
            "/dead/replay-matching",
            web::post().to(actions::replay_matching),
        )
        .route("/dead/{id}/replay", web::post().to(actions::replay_one));
}

/// Any other path under the mount: the dashboard's 404 page (403 when reading is denied).
pub(crate) async fn unknown_path(req: HttpRequest, state: Data<WebState>) -> HttpResponse {
    let problem = match Ctx::read(&req, &state) {
        Ok(_) => Problem::not_found(format!(
            "there is no dashboard page at {}: start from the overview",
            req.path()
        )),
        Err(problem) => problem,
    };
    problem_page(&state.base, &problem)
}
