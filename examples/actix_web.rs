//! An actix-web service with cronlease inside: the scheduler runs two demo jobs and
//! `cronlease::web` serves the admin API under `/cronlease/api` (see docs/web.md).
//!
//! `CRONLEASE_ADMIN_TOKEN=s3cret cargo run --example actix_web --features web`, then
//! `curl localhost:8080/cronlease/api/jobs`, `curl localhost:8080/metrics`, and, to act,
//! `curl -X POST -H 'Authorization: Bearer s3cret' -H 'Content-Type: application/json'
//! localhost:8080/cronlease/api/dead/<id>/replay`. Without the token requests only read.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};
use cronlease::prelude::*;
use cronlease::web::Access;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// `report` succeeds every minute; `export` fails permanently on a plan's first attempt (so it
/// lands in the dead-letter set) and succeeds once replayed.
pub fn jobs() -> cronlease::Result<Vec<JobSpec>> {
    let report = JobSpec::builder("report").every("1m");
    let export = JobSpec::builder("export").every("1m");
    Ok(vec![
        report
            .handler(|_| async { Ok(JobOutput::rows(1)) })
            .build()?,
        export
            .handler(|ctx: JobContext| async move {
                match ctx.attempt() {
                    1 => Err(JobError::permanent("the export target rejected the file")),
                    _ => Ok(JobOutput::rows(1)),
                }
            })
            .build()?,
    ])
}

/// The admin surface under `/cronlease` (acting needs `Authorization: Bearer <token>`; a real
/// service compares secrets in constant time, e.g. with the `subtle` crate) and `/metrics`,
/// served on `listener` until stopped.
pub fn server(
    listener: TcpListener,
    scheduler: Scheduler,
    metrics: PrometheusHandle,
    token: Option<String>,
) -> std::io::Result<Server> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let app = move || {
        let (bearer, metrics) = (bearer.clone(), metrics.clone());
        let admin = cronlease::web::scope("/cronlease", scheduler.clone()).authorize(move |req| {
            match (req.headers().get("authorization"), &bearer) {
                (Some(given), Some(bearer)) if given == bearer.as_str() => Access::Act,
                _ => Access::Read,
            }
        });
        let metrics = move || std::future::ready(HttpResponse::Ok().body(metrics.render()));
        App::new()
            .service(admin)
            .route("/metrics", web::get().to(metrics))
    };
    Ok(HttpServer::new(app).workers(2).listen(listener)?.run())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let store = SqliteStore::open("cronlease-actix-web.db").await?;
    let builder = jobs()?
        .into_iter()
        .fold(Scheduler::builder(store), |b, job| b.job(job));
    let scheduler = builder.start().await?;
    let listener = TcpListener::bind(std::env::var("BIND").as_deref().unwrap_or("127.0.0.1:8080"))?;
    tracing::info!(
        "admin API at http://{}/cronlease/api/jobs",
        listener.local_addr()?
    );
    let token = std::env::var("CRONLEASE_ADMIN_TOKEN").ok();
    let served = server(listener, scheduler.clone(), metrics, token)?.await;
    scheduler.shutdown().await; // after a graceful stop (Ctrl-C): running attempts hand off
    Ok(served?)
}
