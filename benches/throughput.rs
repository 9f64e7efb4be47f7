//! `throughput/noop_<backend>`: end-to-end executions per second, no-op handler, 10,000 scopes
//! with one due plan each, from the tick until every row is SUCCESS.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SCOPES: usize = 10_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(SCOPES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = actix_rt::System::new();
    let mut backends = vec![("sqlite", runner.block_on(support::sqlite(dir.path())))];
    if let Ok(url) = std::env::var(support::POSTGRES_URL_VAR) {
        backends.push(("postgres", runner.block_on(support::postgres(&url))));
    }
    if let Ok(url) = std::env::var(support::MYSQL_URL_VAR) {
        backends.push(("mysql", runner.block_on(support::mysql(&url))));
    }
    for (name, store) in backends {
        let mut round = 0u64;
        group.bench_function(format!("noop_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let job = format!("noop-{round}");
                    total += runner.block_on(support::noop_throughput(store.clone(), SCOPES, &job));
                }
                total
            })
        });
    }
    group.finish();
    runner.block_on(support::cleanup());
}

criterion_group!(benches, bench);
criterion_main!(benches);
