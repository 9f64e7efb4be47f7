//! An actix-web service with cronlease inside: the scheduler runs the jobs, the server shows them.
//!
//! `cargo run --example actix_web`, then:
//! - `curl localhost:8080/metrics`: every metric in the Prometheus text format;
//! - `curl 'localhost:8080/executions?job=report&limit=5'`: history, newest plan first; the
//!   reply's `next` is the cursor of the following page (`&after=<next>`); filters: `job`,
//!   `scope_kind` + `scope_id`, `status`, `from` and `before` (RFC 3339 plan times);
//! - `curl localhost:8080/dead`: the dead-letter set (same filters), each with its failure history;
//! - `curl -X POST localhost:8080/dead/<id>/replay`: run a dead plan again (404 unknown, 409 not dead).
//!
//! Ctrl-C stops the server gracefully, then the scheduler (running attempts are handed off).
//! Data goes to the SQLite file `cronlease-actix-web.db`, or to PostgreSQL when `DATABASE_URL`
//! names one; `BIND` sets the address (default `127.0.0.1:8080`).
//! `tests/example_actix_web.rs` compiles this file and checks the endpoints over HTTP.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use chrono::{DateTime, Utc};
use cronlease::prelude::*;
use cronlease::{Error, Execution, ExecutionCursor};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the request handlers share.
pub struct AppState {
    pub scheduler: Scheduler,
    pub metrics: PrometheusHandle,
}

/// The demo's jobs: `report` succeeds every minute; `export` fails permanently on a plan's first
/// attempt (so it lands in the dead-letter set) and succeeds once replayed.
pub fn jobs() -> cronlease::Result<Vec<JobSpec>> {
    let report = JobSpec::builder("report")
        .every("1m")
        .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
        .build()?;
    let export = JobSpec::builder("export")
        .every("1m")
        .handler(|ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                return Err(JobError::permanent("the export target rejected the file"));
            }
            Ok(JobOutput::rows(1).with_result(serde_json::json!({ "export": ctx.execution_id() })))
        })
        .build()?;
    Ok(vec![report, export])
}

/// Query parameters of `/executions` and `/dead`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    job: Option<String>,
    scope_kind: Option<String>,
    scope_id: Option<String>,
    status: Option<Status>,
    from: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    after: Option<String>,
    limit: Option<usize>,
}

impl ListQuery {
    fn filter(self) -> Result<ExecutionFilter, String> {
        let after = self
            .after
            .map(|c| c.parse::<ExecutionCursor>())
            .transpose()?;
        Ok(ExecutionFilter {
            job: self.job,
            scope: match (self.scope_kind, self.scope_id) {
                (Some(kind), Some(id)) => Some(Scope::new(kind, id)),
                (None, None) => None,
                _ => return Err("give both scope_kind and scope_id".into()),
            },
            status: self.status,
            plan_from: self.from,
            plan_before: self.before,
            after,
            limit: self.limit.unwrap_or(100).min(1000),
        })
    }
}

/// One page of executions and the cursor of the next, if any.
#[derive(Serialize)]
struct Page {
    executions: Vec<Execution>,
    next: Option<String>,
}

fn error_response(error: Error) -> HttpResponse {
    let body = serde_json::json!({ "error": error.to_string() });
    match error {
        Error::ExecutionNotFound(_) => HttpResponse::NotFound().json(body),
        Error::NotDead { .. } => HttpResponse::Conflict().json(body),
        _ => HttpResponse::InternalServerError().json(body),
    }
}

async fn page(state: &AppState, query: ListQuery, dead: bool) -> HttpResponse {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(message) => {
            return HttpResponse::BadRequest().json(serde_json::json!({ "error": message }));
        }
    };
    let listed = if dead {
        state.scheduler.dead_executions(&filter).await
    } else {
        state.scheduler.executions(&filter).await
    };
    match listed {
        Ok(executions) => {
            let next = filter
                .next_page(&executions)
                .and_then(|f| f.after)
                .map(|c| c.to_string());
            HttpResponse::Ok().json(Page { executions, next })
        }
        Err(error) => error_response(error),
    }
}

#[get("/metrics")]
async fn show_metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[get("/executions")]
async fn list_executions(state: web::Data<AppState>, query: web::Query<ListQuery>) -> HttpResponse {
    page(&state, query.into_inner(), false).await
}

#[get("/dead")]
async fn list_dead(state: web::Data<AppState>, query: web::Query<ListQuery>) -> HttpResponse {
    page(&state, query.into_inner(), true).await
}

#[post("/dead/{id}/replay")]
async fn replay_dead(state: web::Data<AppState>, id: web::Path<Uuid>) -> HttpResponse {
    match state.scheduler.replay(id.into_inner()).await {
        Ok(row) => HttpResponse::Ok().json(row),
        Err(error) => error_response(error),
    }
}

/// The HTTP server on `listener`, not yet awaited: pass it to [`run`].
pub fn server(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(show_metrics)
            .service(list_executions)
            .service(list_dead)
            .service(replay_dead)
    })
    .workers(2)
    .listen(listener)?
    .run())
}

/// Serves until the server stops (Ctrl-C, SIGTERM or its handle), then shuts the scheduler down.
pub async fn run(server: Server, scheduler: Scheduler) -> std::io::Result<()> {
    let served = server.await;
    scheduler.shutdown().await;
    served
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let store: Arc<dyn Store> = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Arc::new(PgStore::connect(&url).await?),
        _ => Arc::new(SqliteStore::open("cronlease-actix-web.db").await?),
    };
    let scheduler = jobs()?
        .into_iter()
        .fold(Scheduler::builder_shared(store), |builder, job| {
            builder.job(job)
        })
        .start()
        .await?;
    let listener = TcpListener::bind(std::env::var("BIND").as_deref().unwrap_or("127.0.0.1:8080"))?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = server(
        listener,
        AppState {
            scheduler: scheduler.clone(),
            metrics,
        },
    )?;
    run(server, scheduler).await?;
    Ok(())
}
