//! `web_api/jobs/<backend>/<rows>`: `GET …/api/jobs` (every job's summary) with `rows` DEAD rows
//! planned within the last day, through actix-web's test service; `web_api/executions/<backend>/
//! <rows>`: one page of 100 of `GET …/api/executions` over the same rows.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, test};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cronlease::prelude::*;
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim};

/// Seeds `rows` DEAD rows of `job` (one per scope, at the latest hourly plan) and starts a
/// manual-tick scheduler that runs `job`.
async fn failing_scheduler(store: Arc<dyn Store>, rows: usize, job: &str) -> Scheduler {
    let schedule = Schedule::every("1h").unwrap();
    let latest = schedule.latest_plan(store.db_now().await.unwrap()).unwrap();
    let plans: Vec<_> = support::scopes(rows)
        .into_iter()
        .map(|s| PlanClaim::new(s, latest))
        .collect();
    for chunk in plans.chunks(5000) {
        let claimed = store
            .execution_claim(&ClaimRequest {
                job,
                max_attempts: 1,
                runner_id: "seed",
                stale_timeout: Duration::from_secs(3600),
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: chunk.to_vec(),
            })
            .await
            .unwrap();
        let writes: Vec<_> = claimed
            .iter()
            .map(|c| FailureWrite {
                lease: c.lease,
                status: Status::Dead,
                code: "handler_error".into(),
                message: "boom".into(),
                retry_in: None,
                extend_budget: false,
                duration_ms: 1,
            })
            .collect();
        store.execution_finish_failure(&writes).await.unwrap();
    }
    let spec = JobSpec::builder(job)
        .schedule(schedule)
        .handler(|_ctx: JobContext| async { Ok(JobOutput::default()) })
        .build()
        .unwrap();
    Scheduler::builder_shared(store)
        .auto_tick(false)
        .job(spec)
        .start()
        .await
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("web_api");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = actix_rt::System::new();
    let mut backends = vec![("sqlite", runner.block_on(support::sqlite(dir.path())))];
    if let Ok(url) = std::env::var(support::POSTGRES_URL_VAR) {
        backends.push(("postgres", runner.block_on(support::postgres(&url))));
    }
    if let Ok(url) = std::env::var(support::MYSQL_URL_VAR) {
        backends.push(("mysql", runner.block_on(support::mysql(&url))));
    }
    for (name, store) in &backends {
        for rows in [1_000usize, 10_000] {
            let job = format!("failing-{rows}");
            let s = runner.block_on(failing_scheduler(store.clone(), rows, &job));
            let app = runner.block_on(test::init_service(
                App::new().service(cronlease::web::scope("/cronlease", s.clone())),
            ));
            for (what, path) in [
                ("jobs", "/cronlease/api/jobs"),
                ("executions", "/cronlease/api/executions?limit=100"),
            ] {
                group.bench_with_input(
                    BenchmarkId::new(format!("{what}/{name}"), rows),
                    &rows,
                    |b, _| {
                        b.iter_custom(|iters| {
                            runner.block_on(async {
                                let started = Instant::now();
                                for _ in 0..iters {
                                    let req = test::TestRequest::get().uri(path).to_request();
                                    let res = test::call_service(&app, req).await;
                                    assert_eq!(res.status().as_u16(), 200);
                                    test::read_body(res).await;
                                }
                                started.elapsed()
                            })
                        })
                    },
                );
            }
            runner.block_on(s.shutdown());
        }
    }
    group.finish();
    runner.block_on(support::cleanup());
}

criterion_group!(benches, bench);
criterion_main!(benches);
