//! `claim/*`: claiming plans one statement at a time versus in batches, per backend; and
//! `claim_10k/*`: one claim of 10,000 due plans, plain (`AllowAll`, no limit: the claim every job
//! used before overlap policies) versus guarded (the default `Skip` policy, and `Skip` with a
//! `max_concurrent` limit).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cronlease::store::{ClaimRequest, PlanClaim};
use cronlease::{ClaimGuard, OverlapPolicy, Store};

/// Claims `n` fresh plans with `per_statement` plans per call; returns the time spent claiming.
async fn claim(
    store: &Arc<dyn Store>,
    n: usize,
    per_statement: usize,
    base: DateTime<Utc>,
) -> Duration {
    let plans: Vec<PlanClaim> = support::scopes(n)
        .into_iter()
        .map(|scope| PlanClaim::new(scope, base))
        .collect();
    let started = Instant::now();
    for chunk in plans.chunks(per_statement) {
        let claimed = store
            .execution_claim(&ClaimRequest {
                job: "claim-bench",
                max_attempts: 3,
                runner_id: "bench",
                stale_timeout: Duration::from_secs(600),
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: chunk.to_vec(),
            })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), chunk.len());
    }
    started.elapsed()
}

/// One claim of `n` fresh plans of a fresh job (nothing of it running), plain or guarded.
async fn claim_all(
    store: &Arc<dyn Store>,
    job: &str,
    n: usize,
    guard: Option<ClaimGuard>,
) -> Duration {
    let base = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(1);
    let request = ClaimRequest {
        job,
        max_attempts: 3,
        runner_id: "bench",
        stale_timeout: Duration::from_secs(600),
        allow_stale_reentry: true,
        steal_not_after: None,
        plans: support::scopes(n)
            .into_iter()
            .map(|scope| PlanClaim::new(scope, base))
            .collect(),
    };
    let started = Instant::now();
    let claimed = match guard {
        None => store.execution_claim(&request).await.expect("claim").len(),
        Some(guard) => store
            .execution_claim_guarded(&request, &guard)
            .await
            .expect("guarded claim")
            .claimed
            .len(),
    };
    let elapsed = started.elapsed();
    assert_eq!(claimed, n);
    elapsed
}

fn bench_10k(
    c: &mut Criterion,
    runner: &actix_rt::SystemRunner,
    backends: &[(&str, Arc<dyn Store>)],
) {
    let mut group = c.benchmark_group("claim_10k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    let skip = ClaimGuard {
        overlap: OverlapPolicy::Skip,
        ..ClaimGuard::default()
    };
    let limited = ClaimGuard {
        max_running: Some(1_000_000),
        ..skip
    };
    let mut round = 0u64;
    for (name, store) in backends {
        for (variant, guard) in [
            ("plain", None),
            ("skip", Some(skip)),
            ("skip_limit", Some(limited)),
        ] {
            group.bench_function(BenchmarkId::new(*name, variant), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let job = format!("claim-10k-{round}");
                        total += runner.block_on(claim_all(store, &job, 10_000, guard));
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("claim");
    group.sample_size(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = actix_rt::System::new();
    let mut backends = vec![("sqlite", runner.block_on(support::sqlite(dir.path())))];
    if let Ok(url) = std::env::var(support::POSTGRES_URL_VAR) {
        backends.push(("postgres", runner.block_on(support::postgres(&url))));
    }
    if let Ok(url) = std::env::var(support::MYSQL_URL_VAR) {
        backends.push(("mysql", runner.block_on(support::mysql(&url))));
    }
    let mut round = 0i64;
    for (name, store) in &backends {
        for per_statement in [1usize, 100, 1000] {
            // 1,000 plans per measurement, claimed 1, 100 or 1,000 per statement.
            group.throughput(Throughput::Elements(1000));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_per_statement"), per_statement),
                &per_statement,
                |b, &per_statement| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            round += 1;
                            let base = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(round);
                            total += runner.block_on(claim(store, 1000, per_statement, base));
                        }
                        total
                    })
                },
            );
        }
    }
    group.finish();
    bench_10k(c, &runner, &backends);
    runner.block_on(support::cleanup());
}

criterion_group!(benches, bench);
criterion_main!(benches);
