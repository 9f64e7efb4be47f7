//! `limit/<backend>/store` against `limit/<backend>/end_to_end`: the database work of 10,000
//! executions alone (the claim and success statements, in the runtime's batch sizes, with no
//! runtime around them) and the same 10,000 executions end to end, in the same run; then prints
//! `end-to-end / limit` per backend, the share of the database's own speed the runtime reaches.
//!
//! Criterion runs every `store` sample before any `end_to_end` sample, half a minute apart, so
//! on a shared machine the two medians can see different loads. The figure that counts is
//! therefore measured after the group, in pairs: `PAIRS` times a `store` run followed at once by
//! an `end_to_end` run, each pair's ratio taken, and the median of those printed.

#[path = "support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SCOPES: usize = 10_000;
/// Alternations of the two workloads after the criterion group.
const PAIRS: usize = 7;

/// Seconds per 10,000 of every iteration, by `(backend, workload)`.
type Samples = RefCell<BTreeMap<(String, &'static str), Vec<f64>>>;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("limit");
    group.throughput(Throughput::Elements(SCOPES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = actix_rt::System::new();
    let mut backends = vec![("sqlite", runner.block_on(support::sqlite(dir.path())))];
    if let Ok(url) = std::env::var(support::POSTGRES_URL_VAR) {
        backends.push(("postgres", runner.block_on(support::postgres(&url))));
    }
    if let Ok(url) = std::env::var(support::MYSQL_URL_VAR) {
        backends.push(("mysql", runner.block_on(support::mysql(&url))));
    }
    let samples = Samples::default();
    let mut round = 0u64;
    for (name, store) in &backends {
        for workload in ["store", "end_to_end"] {
            group.bench_function(BenchmarkId::new(*name, workload), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let job = format!("limit-{round}");
                        let elapsed = runner.block_on(async {
                            match workload {
                                "store" => support::store_limit(store.clone(), SCOPES, &job).await,
                                _ => support::noop_throughput(store.clone(), SCOPES, &job).await,
                            }
                        });
                        samples
                            .borrow_mut()
                            .entry((name.to_string(), workload))
                            .or_default()
                            .push(elapsed.as_secs_f64());
                        total += elapsed;
                    }
                    total
                })
            });
        }
    }
    group.finish();
    let mut samples = samples.into_inner();
    for (name, store) in &backends {
        let mut rate = |workload| {
            samples
                .get_mut(&(name.to_string(), workload))
                .map(|s| SCOPES as f64 / median(s))
        };
        let (Some(limit), Some(end_to_end)) = (rate("store"), rate("end_to_end")) else {
            continue;
        };
        let mut ratios: Vec<f64> = (0..PAIRS)
            .map(|_| {
                round += 1;
                let alone = runner.block_on(support::store_limit(
                    store.clone(),
                    SCOPES,
                    &format!("limit-{round}"),
                ));
                round += 1;
                let whole = runner.block_on(support::noop_throughput(
                    store.clone(),
                    SCOPES,
                    &format!("limit-{round}"),
                ));
                alone.as_secs_f64() / whole.as_secs_f64()
            })
            .collect();
        let paired = median(&mut ratios);
        println!(
            "limit/{name}: criterion medians: store {limit:.0} /s, end-to-end {end_to_end:.0} /s \
             ({:.2}); in {PAIRS} pairs: end-to-end / limit = {:.2} (pairs {:.2}..{:.2})",
            end_to_end / limit,
            paired,
            ratios[0],
            ratios[PAIRS - 1],
        );
    }
    runner.block_on(support::cleanup());
}

criterion_group!(benches, bench);
criterion_main!(benches);
