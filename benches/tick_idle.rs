//! `tick_idle/<backend>/<scopes>`: one tick of a job whose every scope's latest plan already
//! succeeded (nothing due), for 1,000 to 100,000 scopes; `tick_idle/<backend>_cron/100000` the
//! same for a weekly cron job in Europe/Berlin, and `<backend>_cron_stagger/100000` with a
//! 10-minute stagger.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cronlease::prelude::*;

/// The schedules measured: a cadence, a cron pattern in a time zone, the same with stagger.
#[derive(Clone, Copy)]
enum Kind {
    Every,
    Cron,
    CronStagger,
}

impl Kind {
    fn schedule(self) -> Schedule {
        match self {
            Kind::Every => Schedule::every("7d").unwrap(),
            Kind::Cron | Kind::CronStagger => {
                Schedule::cron_in("0 3 * * MON", "Europe/Berlin").unwrap()
            }
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Kind::Every => "",
            Kind::Cron => "_cron",
            Kind::CronStagger => "_cron_stagger",
        }
    }
}

/// Seeds a SUCCESS row at the latest plan of every scope and starts a manual-tick scheduler.
async fn idle_scheduler(store: Arc<dyn Store>, scopes: usize, job: &str, kind: Kind) -> Scheduler {
    let schedule = kind.schedule();
    let latest = schedule.latest_plan(store.db_now().await.unwrap()).unwrap();
    support::seed_succeeded(&*store, job, &support::scopes(scopes), latest).await;
    let mut spec = JobSpec::builder(job).schedule(schedule);
    if let Kind::CronStagger = kind {
        spec = spec.stagger("10m");
    }
    let spec = spec
        .scopes(support::scopes(scopes))
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
        .build()
        .unwrap();
    let s = Scheduler::builder_shared(store)
        .auto_tick(false)
        .job(spec)
        .start()
        .await
        .unwrap();
    // The first tick reads the newest plans once; the measured ticks are the steady state.
    assert_eq!(s.tick_now().await.unwrap().planned, 0);
    s
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_idle");
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
    let cases = [
        (Kind::Every, 1_000usize),
        (Kind::Every, 10_000),
        (Kind::Every, 100_000),
        (Kind::Cron, 100_000),
        (Kind::CronStagger, 100_000),
    ];
    for (name, store) in &backends {
        for (kind, scopes) in cases {
            let job = format!("idle{}-{scopes}", kind.suffix());
            let s = runner.block_on(idle_scheduler(store.clone(), scopes, &job, kind));
            let id = BenchmarkId::new(format!("{name}{}", kind.suffix()), scopes);
            group.bench_with_input(id, &scopes, |b, _| {
                b.iter_custom(|iters| {
                    runner.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let report = s.tick_now().await.unwrap();
                            assert_eq!(report.planned, 0);
                        }
                        started.elapsed()
                    })
                })
            });
            runner.block_on(s.shutdown());
        }
    }
    group.finish();
    runner.block_on(support::cleanup());
}

criterion_group!(benches, bench);
criterion_main!(benches);
