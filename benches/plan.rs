//! `plan/*`: pure planning over many scopes (what one tick computes in memory).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cronlease::{CatchUp, Scope, floor_plan};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    let cadence = Duration::from_secs(60);
    let now: DateTime<Utc> = "2026-11-22T10:07:30Z".parse().unwrap();
    let latest = floor_plan(now, cadence);
    for n in [10_000usize, 100_000] {
        let scopes: Vec<Scope> = (0..n)
            .map(|i| Scope::new("tenant", i.to_string()))
            .collect();
        // Nothing due: every scope already planned the latest plan.
        let caught_up: HashMap<Scope, DateTime<Utc>> =
            scopes.iter().map(|s| (s.clone(), latest)).collect();
        // Ten plans behind.
        let behind: HashMap<Scope, DateTime<Utc>> = scopes
            .iter()
            .map(|s| (s.clone(), latest - TimeDelta::minutes(10)))
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        let every = CatchUp::EveryPlan {
            window: Duration::from_secs(3600),
            max_plans_per_tick: 4,
        };
        for (name, mode, newest) in [
            ("latest_only_idle", CatchUp::LatestOnly, &caught_up),
            ("every_plan_idle", every, &caught_up),
            ("every_plan_10_behind", every, &behind),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &scopes, |b, scopes| {
                b.iter(|| {
                    let mut due = 0;
                    for scope in scopes {
                        due += mode
                            .due_plans(cadence, now, newest.get(scope).copied())
                            .len();
                    }
                    due
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
