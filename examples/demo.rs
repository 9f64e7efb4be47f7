//! The cronlease demo: a scheduler on a SQLite file for about 20 seconds.
//!
//! It shows jobs over several scopes succeeding, a flaky job retried with backoff, a panicking
//! job recorded and dead-lettered, and a plan left RUNNING by a crashed runner recovered as
//! attempt 2. It ends with a table of executions by job and status.
//!
//! Run it with `cargo run --example demo` (no setup needed).

use std::time::Duration;

use chrono::Utc;
use cronlease::prelude::*;
use cronlease::store::{ClaimRequest, PlanClaim};

const RUN_FOR: Duration = Duration::from_secs(20);

fn say(ctx: &JobContext, what: &str) {
    println!(
        "  {:<15} {:<14} plan {}  attempt {}  {what}",
        ctx.job(),
        ctx.scope().to_string(),
        ctx.plan_time().format("%H:%M:%S"),
        ctx.attempt(),
    );
}

fn jobs() -> cronlease::Result<Vec<JobSpec>> {
    let workspaces: Vec<Scope> = (1..=4)
        .map(|i| Scope::new("workspace", i.to_string()))
        .collect();
    Ok(vec![
        // Runs every 2 s for four workspaces.
        JobSpec::builder("refresh-stats")
            .every("2s")
            .scopes(workspaces.clone())
            .handler(|ctx: JobContext| async move {
                actix_rt::time::sleep(Duration::from_millis(150)).await;
                say(&ctx, "ok");
                Ok(JobOutput::rows(10))
            })
            .build()?,
        // Fails twice for even workspaces, then succeeds: retried after 1 s, then 2 s.
        JobSpec::builder("sync-invoices")
            .every("6s")
            .scopes(workspaces)
            .max_attempts(3)
            .backoff(Backoff::list(["1s", "2s"])?)
            .handler(|ctx: JobContext| async move {
                let even = ctx.scope().id.parse::<u32>().unwrap_or(0) % 2 == 0;
                if even && ctx.attempt() < 3 {
                    say(&ctx, "upstream timed out (will retry)");
                    return Err(JobError::retryable("upstream timed out"));
                }
                say(&ctx, "ok");
                Ok(JobOutput::rows(3))
            })
            .build()?,
        // Always panics: recorded as handler_panic, retried once, then dead-lettered.
        JobSpec::builder("export-report")
            .every("10s")
            .max_attempts(2)
            .backoff(Backoff::list(["1s"])?)
            .handler(|ctx: JobContext| async move {
                say(&ctx, "about to panic");
                panic!("report template missing");
                #[allow(unreachable_code)]
                Ok(JobOutput::default())
            })
            .build()?,
        // Hourly; its current plan was left RUNNING by a runner that crashed (see below).
        JobSpec::builder("nightly-rollup")
            .every("1h")
            .handler(|ctx: JobContext| async move {
                say(&ctx, "recovered plan finished");
                Ok(JobOutput::rows(1))
            })
            .build()?,
    ])
}

/// Leaves a RUNNING row behind, as a runner killed mid-attempt would, with a 2 s lease.
async fn simulate_crashed_runner(store: &SqliteStore) -> cronlease::Result<()> {
    store.migrate().await?;
    let now = store.db_now().await?;
    let plan = cronlease::floor_plan(now, Duration::from_secs(3600));
    store
        .execution_claim(&ClaimRequest {
            job: "nightly-rollup",
            max_attempts: 3,
            runner_id: "crashed-runner",
            stale_timeout: Duration::from_secs(2),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::global(), plan)],
        })
        .await?;
    println!(
        "a runner crashed while running nightly-rollup (plan {plan}); its lease expires in 2 s\n"
    );
    Ok(())
}

async fn summary(scheduler: &Scheduler) -> cronlease::Result<()> {
    println!("\nexecutions by job and status:");
    println!(
        "  {:<15} {:>8} {:>8} {:>8} {:>8}",
        "job", "SUCCESS", "FAILED", "DEAD", "RUNNING"
    );
    for job in [
        "refresh-stats",
        "sync-invoices",
        "export-report",
        "nightly-rollup",
    ] {
        let counts = scheduler.counts(Some(job)).await?;
        let n = |status: Status| {
            counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n)
        };
        println!(
            "  {:<15} {:>8} {:>8} {:>8} {:>8}",
            job,
            n(Status::Success),
            n(Status::Failed),
            n(Status::Dead),
            n(Status::Running)
        );
    }
    // A FAILED row always has a retry ahead: say when, since this runner has stopped.
    let failed = scheduler
        .executions(&ExecutionFilter {
            status: Some(Status::Failed),
            ..ExecutionFilter::default()
        })
        .await?;
    if failed.is_empty() {
        println!("  no FAILED rows left: every plan ended SUCCESS or DEAD");
    }
    for row in failed {
        println!(
            "  FAILED {} {} plan {}: attempt {} of {} failed ({}); its retry is due at {}, for the next runner on this database",
            row.job_name,
            row.scope,
            row.plan_time.format("%H:%M:%S"),
            row.attempt,
            row.max_attempts,
            row.error_code.as_deref().unwrap_or("?"),
            row.next_retry_at
                .map_or("?".into(), |t| t.format("%H:%M:%S%.3f").to_string())
        );
    }
    let dead = scheduler
        .executions(&ExecutionFilter {
            status: Some(Status::Dead),
            ..Default::default()
        })
        .await?;
    for row in dead {
        println!(
            "\ndead letter {} ({} {}):",
            row.id,
            row.job_name,
            row.plan_time.format("%H:%M:%S")
        );
        for failure in &row.failures {
            println!(
                "  attempt {}: {} — {}",
                failure.attempt, failure.code, failure.message
            );
        }
    }
    let rollup = scheduler
        .executions(&ExecutionFilter {
            job: Some("nightly-rollup".into()),
            ..Default::default()
        })
        .await?;
    for row in rollup {
        println!(
            "\nrecovered: nightly-rollup {} is {} at attempt {} on runner {} (attempt 1: {})",
            row.plan_time.format("%H:%M"),
            row.status,
            row.attempt,
            row.runner_id,
            row.failures.first().map_or("-", |f| f.code.as_str()),
        );
    }
    Ok(())
}

#[actix_rt::main]
async fn main() -> cronlease::Result<()> {
    // cronlease logs through `tracing` and is silent without a subscriber: install one
    // (`RUST_LOG=cronlease=debug` shows every claim and outcome).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cronlease=info".into()),
        )
        .with_target(false)
        .without_time()
        .compact()
        .init();
    // The host owns the panic hook (cronlease never replaces it); the demo keeps panics to a line.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or("non-string panic");
        eprintln!("  (a handler panicked: {message})");
    }));
    let dir = tempfile::tempdir().map_err(|e| cronlease::Error::InvalidConfig(e.to_string()))?;
    let path = dir.path().join("cronlease-demo.db");
    let store = SqliteStore::open(&path).await?;
    println!(
        "cronlease demo: a scheduler on {} for {} s\n",
        path.display(),
        RUN_FOR.as_secs()
    );
    simulate_crashed_runner(&store).await?;

    let mut builder = Scheduler::builder(store)
        .runner_id("demo-runner")
        .tick_interval(Duration::from_secs(1))
        .shutdown_grace(Duration::from_secs(2));
    for job in jobs()? {
        builder = builder.job(job);
    }
    let scheduler = builder.start().await?;
    let started = Utc::now();
    actix_rt::time::sleep(RUN_FOR).await;
    scheduler.shutdown().await;
    println!(
        "\nshut down after {} s",
        (Utc::now() - started).num_seconds()
    );
    summary(&scheduler).await?;
    Ok(())
}
