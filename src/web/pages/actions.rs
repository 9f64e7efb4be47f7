//! The dashboard's actions: form POSTs that change state, each answered by a 303 back to the
//! page it came from with a notice. [`Ctx::act`] refuses them (403) without the embedder's
//! `Act` decision or a matching CSRF token.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use uuid::Uuid;

use super::context::{Ctx, Fields, Problem, encode, parse_time, problem_page};
use super::dead::CONFIRM_WORD;
use super::executions::{filter_of, parse_id, zones};
use super::layout::zone_named;
use crate::control::{BackfillOptions, TriggerOptions, TriggerTarget};
use crate::error::Error;
use crate::scope::Scope;
use crate::web::state::WebState;
use crate::web::summary::registered_job;

/// Who the dashboard names as the author of pauses, triggers and backfills.
const AUTHOR: &str = "dashboard";

/// Rows replayed per statement by "replay all matching".
const REPLAY_BATCH: usize = 500;

/// Where an action goes back to, and the notice it shows there.
type Done = Result<(String, String), Problem>;

/// Runs `action` for a POST that passed the access and CSRF checks.
async fn act<F, Fut>(req: &HttpRequest, state: &WebState, body: &[u8], action: F) -> HttpResponse
where
    F: FnOnce(Fields) -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    match Ctx::act(req, state, body) {
        Ok((ctx, form)) => ctx.redirect(action(form).await),
        Err(problem) => problem_page(&state.base, &problem),
    }
}

/// The scope of a form (`scope_kind` + `scope_id`), `None` when both are empty.
fn form_scope(form: &Fields) -> Result<Option<Scope>, Problem> {
    match (form.get("scope_kind"), form.get("scope_id")) {
        (None, None) => Ok(None),
        (Some(kind), Some(id)) => Ok(Some(Scope::new(kind, id))),
        (Some(_), None) => Err(Problem::bad(
            "scope_id",
            "`scope_kind` needs `scope_id` too",
        )),
        (None, Some(_)) => Err(Problem::bad(
            "scope_kind",
            "`scope_id` needs `scope_kind` too",
        )),
    }
}

fn job_page(job: &str) -> String {
    format!("/jobs/{}", encode(job))
}

fn what(job: &str, scope: &Option<Scope>) -> String {
    match scope {
        Some(scope) => format!("scope {}/{} of job {job}", scope.kind, scope.id),
        None => format!("job {job}"),
    }
}

/// `POST /jobs/{name}/pause` (`reason`, optional scope).
pub(crate) async fn pause(
    req: HttpRequest,
    state: Data<WebState>,
    name: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let scope = form_scope(&form)?;
        let reason = form.get("reason").unwrap_or("paused from the dashboard");
        st.scheduler
            .pause(&name, scope.clone(), AUTHOR, reason)
            .await?;
        Ok((job_page(&name), format!("Paused {}.", what(&name, &scope))))
    })
    .await
}

/// `POST /jobs/{name}/resume` (optional scope).
pub(crate) async fn resume(
    req: HttpRequest,
    state: Data<WebState>,
    name: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let scope = form_scope(&form)?;
        let lifted = st.scheduler.resume(&name, scope.as_ref()).await?;
        let notice = if lifted {
            format!("Resumed {}.", what(&name, &scope))
        } else {
            format!("{} was not paused.", what(&name, &scope))
        };
        Ok((job_page(&name), notice))
    })
    .await
}

/// `POST /jobs/{name}/trigger` (optional scope: every scope without one).
pub(crate) async fn trigger(
    req: HttpRequest,
    state: Data<WebState>,
    name: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let scope = form_scope(&form)?;
        let target = scope
            .clone()
            .map_or(TriggerTarget::AllScopes, TriggerTarget::Scope);
        // The form's own key: sending the same form twice asks for one run.
        let options = match form.get("key") {
            Some(key) => TriggerOptions::idempotent(key),
            None => TriggerOptions::default(),
        }
        .by(AUTHOR);
        let trigger = st.scheduler.trigger(&name, target, options).await?;
        Ok((
            job_page(&name),
            format!(
                "Asked to run {} now (trigger {}).",
                what(&name, &scope),
                trigger.id
            ),
        ))
    })
    .await
}

/// `POST /jobs/{name}/backfill` (`from`, `to`, `rerun`), times in the job's time zone unless
/// they carry their own offset.
pub(crate) async fn backfill(
    req: HttpRequest,
    state: Data<WebState>,
    name: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let zone = match registered_job(&st.scheduler, &name).await {
            Ok(job) => zone_named(&job.spec.time_zone),
            Err(Error::UnknownJob(_)) => jiff::tz::TimeZone::UTC,
            Err(error) => return Err(error.into()),
        };
        let from = form
            .parsed("from", |t| parse_time(t, &zone))?
            .ok_or_else(|| Problem::bad("from", "the backfill's first plan time is missing"))?;
        let to = form
            .parsed("to", |t| parse_time(t, &zone))?
            .ok_or_else(|| Problem::bad("to", "the backfill's end is missing"))?;
        let options = BackfillOptions {
            scopes: None,
            rerun: form.get("rerun").is_some(),
            requested_by: AUTHOR.to_owned(),
        };
        let backfill = st.scheduler.backfill(&name, from, to, options).await?;
        Ok((
            job_page(&name),
            format!("Backfill {} started.", backfill.id),
        ))
    })
    .await
}

/// `POST /backfills/{id}/cancel`.
pub(crate) async fn cancel_backfill(
    req: HttpRequest,
    state: Data<WebState>,
    id: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |_form| async move {
        let id = Uuid::parse_str(&id)
            .map_err(|_| Problem::bad("id", format!("`{id}` is not a backfill id (a UUID)")))?;
        let backfill = st
            .scheduler
            .backfill_status(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no backfill with id {id}")))?;
        let cancelled = st.scheduler.cancel_backfill(id).await?;
        let notice = if cancelled {
            format!("Backfill {id} cancelled.")
        } else {
            format!("Backfill {id} was not active any more.")
        };
        Ok((job_page(&backfill.job), notice))
    })
    .await
}

/// The dead-letter listing to go back to: `/dead` with the form's `back` query (kept to the
/// characters a query string this dashboard writes is made of).
fn dead_page(form: &Fields) -> String {
    let back: String = form
        .get("back")
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "%&=._~-+:".contains(*c))
        .collect();
    if back.is_empty() {
        "/dead".to_owned()
    } else {
        format!("/dead?{back}")
    }
}

/// `POST /dead/{id}/replay`: one dead execution. Back to the dead letters when sent from there,
/// else to the execution.
pub(crate) async fn replay_one(
    req: HttpRequest,
    state: Data<WebState>,
    id: Path<String>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let id = parse_id("id", &id)?;
        let row = st.scheduler.replay(id).await?;
        let back = if form.has("back") {
            dead_page(&form)
        } else {
            format!("/executions/{id}")
        };
        Ok((
            back,
            format!(
                "Replayed execution {} ({}, {}/{}).",
                row.id, row.job_name, row.scope.kind, row.scope.id
            ),
        ))
    })
    .await
}

/// `POST /dead/replay`: the checked rows (`id`, repeated).
pub(crate) async fn replay_selected(
    req: HttpRequest,
    state: Data<WebState>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        let ids = form
            .all("id")
            .map(|text| parse_id("id", text))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(Problem::bad(
                "id",
                "no execution was selected: check the rows to replay",
            ));
        }
        let (mut replayed, mut skipped) = (0, 0);
        for id in &ids {
            match st.scheduler.replay(*id).await {
                Ok(_) => replayed += 1,
                Err(Error::NotDead { .. } | Error::ExecutionNotFound(_)) => skipped += 1,
                Err(error) => return Err(error.into()),
            }
        }
        let mut notice = format!("Replayed {replayed} of {} selected executions.", ids.len());
        if skipped > 0 {
            notice.push_str(&format!(" {skipped} were no longer dead."));
        }
        Ok((dead_page(&form), notice))
    })
    .await
}

/// `POST /dead/replay-matching`: every dead execution matching the filter fields, after the
/// operator typed the confirmation word into `confirm`.
pub(crate) async fn replay_matching(
    req: HttpRequest,
    state: Data<WebState>,
    body: Bytes,
) -> HttpResponse {
    let st = state.clone();
    act(&req, &state, &body, |form| async move {
        if form.get("confirm").map(str::trim) != Some(CONFIRM_WORD) {
            return Err(Problem::bad(
                "confirm",
                format!("type `{CONFIRM_WORD}` to confirm replaying every matching dead execution"),
            ));
        }
        let zones = zones(&st).await?;
        let mut filter = filter_of(&form, &zones)?;
        filter.after = None;
        filter.limit = REPLAY_BATCH;
        let mut total = 0;
        loop {
            let replayed = st.scheduler.replay_where(&filter).await?.len();
            total += replayed;
            if replayed < REPLAY_BATCH {
                break;
            }
        }
        let back = super::executions::query_of(&crate::store::ExecutionFilter {
            limit: super::executions::PAGE,
            ..filter
        });
        let path = if back.is_empty() {
            "/dead".to_owned()
        } else {
            format!("/dead?{back}")
        };
        Ok((
            path,
            format!("Replayed {total} dead executions matching the filter."),
        ))
    })
    .await
}
