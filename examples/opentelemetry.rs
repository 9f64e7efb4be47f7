//! Exporting cronlease's execution spans with OpenTelemetry.
//!
//! Every handler runs inside a `cronlease.execution` span (job, scope, plan time, execution id,
//! attempt, runner, outcome). The `tracing-opentelemetry` layer turns it into an OpenTelemetry
//! span, and the events the handler logs become events of that span.
//!
//! `cargo run --example opentelemetry` prints the exported span on stdout. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318` set, it goes to that OTLP collector over
//! HTTP instead (the standard `OTEL_*` variables apply, e.g. `OTEL_SERVICE_NAME`).

use std::error::Error;
use std::time::Duration;

use cronlease::prelude::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, stdout otherwise.
fn tracer_provider() -> Result<SdkTracerProvider, Box<dyn Error>> {
    let builder = SdkTracerProvider::builder().with_resource(Resource::builder().build());
    let builder = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // Batched: exports run on the processor's own thread, off the handler runtime.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        builder.with_batch_exporter(exporter)
    } else {
        builder.with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
    };
    Ok(builder.build())
}

/// Logs to stderr (`RUST_LOG`, default `info,cronlease=info`) and sends every span to
/// OpenTelemetry through `provider`.
pub fn install_subscriber(provider: &SdkTracerProvider) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,cronlease=info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("cronlease")))
        .init();
}

/// One job on `store`, ticked once by hand (a service lets it tick by itself): its attempt is
/// exported as a `cronlease.execution` span.
pub async fn run_once(store: SqliteStore) -> cronlease::Result<()> {
    let report = JobSpec::builder("nightly-report")
        .every("1h")
        .scopes(vec![Scope::new("tenant", "acme")])
        .handler(|_ctx: JobContext| async move {
            // An event of the execution span: no need to repeat the job or tenant here.
            tracing::info!(rows = 42, "report built");
            Ok(JobOutput::rows(42))
        })
        .build()?;
    let scheduler = Scheduler::builder(store)
        .auto_tick(false)
        .job(report)
        .start()
        .await?;
    scheduler.tick_now().await?;
    scheduler.wait_idle(Duration::from_secs(10)).await;
    scheduler.shutdown().await;
    Ok(())
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let provider = tracer_provider()?;
    install_subscriber(&provider);
    run_once(SqliteStore::connect("sqlite::memory:").await?).await?;
    // Exports what is still buffered.
    provider.shutdown()?;
    Ok(())
}
