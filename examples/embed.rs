//! Embedding cronlease in an actix service: one job per tenant, every five minutes.
//! `cargo run --example embed` (stops after 10 seconds; a real service runs until its shutdown).

use std::time::Duration;

use cronlease::prelude::*;

#[actix_rt::main]
async fn main() -> cronlease::Result<()> {
    // cronlease logs through `tracing` and is silent until the host installs a subscriber.
    tracing_subscriber::fmt().with_env_filter("info").init();

    // SQLite for one process; `PgStore::connect("postgres://...")` or
    // `MySqlStore::connect("mysql://...")` for several replicas.
    let store = SqliteStore::open("cronlease-embed.db").await?;

    let refresh = JobSpec::builder("refresh-usage")
        .every("5m")
        .scopes(Scopes::provider(|| async {
            // Read your tenants table here; called at every tick.
            Ok(vec![
                Scope::new("tenant", "acme"),
                Scope::new("tenant", "globex"),
            ])
        }))
        .max_attempts(5)
        .backoff(Backoff::list(["30s", "2m", "10m"])?)
        .handler(|ctx: JobContext| async move {
            // `ctx.execution_id()` is stable across retries: use it as an idempotency key.
            let _idempotency_key = ctx.execution_id();
            // Logged inside the `cronlease.execution` span (job, scope, plan time, attempt).
            tracing::info!("usage refreshed");
            Ok(JobOutput::rows(1))
        })
        .build()?;

    let scheduler = Scheduler::builder(store).job(refresh).start().await?;
    actix_rt::time::sleep(Duration::from_secs(10)).await; // your server runs here
    scheduler.shutdown().await; // stop ticking, hand unfinished attempts off
    Ok(())
}
