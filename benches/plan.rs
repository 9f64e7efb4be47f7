//! `plan/*`: pure planning over many scopes (what one tick computes in memory), and
//! `plan/next_plan/*`: one next-plan computation of a cadence and of cron patterns.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cronlease::{CatchUp, Schedule, Scope, floor_plan};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    let cadence = Duration::from_secs(60);
    let schedule = Schedule::every("1m").unwrap();
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
                            .due_plans(&schedule, now, newest.get(scope).copied())
                            .len();
                    }
                    due
                })
            });
        }
    }
    for (name, schedule) in [
        ("every_1m", Schedule::every("1m").unwrap()),
        (
            "cron_quarter_hour_utc",
            Schedule::cron("*/15 * * * *").unwrap(),
        ),
        (
            "cron_second_monday_new_york",
            Schedule::cron_in("0 30 9 ? * MON#2", "America/New_York").unwrap(),
        ),
        (
            "cron_last_day_berlin",
            Schedule::cron_in("0 0 3 L * *", "Europe/Berlin").unwrap(),
        ),
        (
            "cron_weekdays_lord_howe",
            Schedule::cron_in("0 15 2 * * MON-FRI", "Australia/Lord_Howe").unwrap(),
        ),
    ] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("next_plan", name), |b| {
            b.iter(|| schedule.next_plan(std::hint::black_box(now)))
        });
        group.bench_function(BenchmarkId::new("latest_plan", name), |b| {
            b.iter(|| schedule.latest_plan(std::hint::black_box(now)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
