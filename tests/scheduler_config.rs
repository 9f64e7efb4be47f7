//! Settings from a file applied to a running scheduler: the overridden spec is the one that runs
//! and is registered, and an invalid override stops the start naming the job and the field.

mod common;

use std::time::Duration;

use common::{Runs, rows};
use cronlease::{Config, JobSpec, Scheduler, Status};

fn nightly(runs: &Runs) -> JobSpec {
    JobSpec::builder("nightly-report")
        .cron("0 3 * * *")
        .max_attempts(3)
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

#[actix::test]
async fn a_files_job_overrides_are_the_spec_that_runs_and_is_registered() {
    let db = common::sqlite().await;
    let runs = Runs::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.toml");
    std::fs::write(
        &file,
        "[scheduler]\ntick_interval = \"1s\"\n\n[jobs.nightly-report]\nschedule = \"every 1s\"\nmax_attempts = 7\ncatch_up = \"every_plan\"\ncatch_up_window = \"1h\"\n\n[jobs.other-service-job]\nmax_attempts = 2\n",
    )
    .unwrap();
    let config = Config::load_with_env(
        Some(&file),
        [(
            "CRONLEASE_JOBS__NIGHTLY_REPORT__RUN_TIMEOUT".to_owned(),
            "20s".to_owned(),
        )],
    )
    .unwrap();
    // Default settings but the file's: automatic ticks every second.
    let scheduler = Scheduler::builder_shared(db.store.clone())
        .config(&config)
        .job(nightly(&runs))
        .start()
        .await
        .unwrap();
    common::eventually(10, "the overridden every-second schedule runs", || async {
        (runs.len() >= 2).then_some(())
    })
    .await;
    let registered = scheduler
        .registered_jobs(Some("nightly-report"))
        .await
        .unwrap();
    let spec = &registered[0].spec;
    assert_eq!(spec.schedule.as_deref(), Some("every 1s"));
    assert_eq!(spec.max_attempts, 7);
    assert_eq!(
        spec.run_timeout,
        Duration::from_secs(20),
        "the environment's value"
    );
    assert_eq!(spec.catch_up, "every_plan window=1h max_plans_per_tick=10");
    let done = rows(&*db.store, "nightly-report").await;
    assert!(
        done.iter().all(|r| r.max_attempts == 7),
        "rows carry the file's attempt budget"
    );
    assert!(done.iter().any(|r| r.status == Status::Success));
    scheduler.shutdown().await;
}

#[actix::test]
async fn an_invalid_override_stops_the_start_naming_the_job_and_the_field() {
    let db = common::sqlite().await;
    let runs = Runs::default();
    let config = Config::from_toml(
        "[jobs.nightly-report]\nrun_timeout = \"10m\"\nstale_timeout = \"5m\"\n",
        "prod.toml",
    )
    .unwrap();
    let error = Scheduler::builder_shared(db.store.clone())
        .config(&config)
        .job(nightly(&runs))
        .start()
        .await
        .err()
        .expect("the start fails");
    assert_eq!(
        error.to_string(),
        "invalid job `nightly-report`: in the settings: stale_timeout (5m) must be longer than run_timeout (10m)"
    );
}
