//! Jobs added, replaced and removed on a running scheduler, with real timers: an added job
//! ticks at once, a replaced job's next plans follow its new schedule, a removed job starts
//! nothing more and its running attempt finishes or is cancelled as asked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Runs, eventually, rows, scheduler};
use cronlease::{Error, JobContext, JobOutput, JobSpec, RemoveMode, Scheduler, Status, Store};

/// A scheduler as a user starts one: automatic ticks, default tick interval.
async fn running(store: Arc<dyn Store>, spec: JobSpec) -> Scheduler {
    scheduler(store)
        .auto_tick(true)
        .shutdown_grace(Duration::from_millis(500))
        .job(spec)
        .start()
        .await
        .unwrap()
}

fn every_second(job: &str, runs: &Runs) -> JobSpec {
    JobSpec::builder(job)
        .every("1s")
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

/// A job whose attempts take `secs` seconds.
fn slow(job: &str, runs: &Runs, secs: u64) -> JobSpec {
    let runs = runs.clone();
    JobSpec::builder(job)
        .every("1s")
        .handler(move |ctx: JobContext| {
            runs.record(&ctx);
            async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(JobOutput::rows(1))
            }
        })
        .build()
        .unwrap()
}

on_every_backend! {
    async fn a_job_added_while_running_ticks_at_once_and_names_are_unique(db: TestDb) {
        let first = Runs::default();
        let s = running(db.store.clone(), every_second("first", &first)).await;
        let added = Runs::default();
        s.add_job(every_second("added", &added)).await.unwrap();
        eventually(10, "the added job to run twice", || async { (added.len() >= 2).then_some(()) }).await;
        assert_eq!(s.job_names(), vec!["added".to_owned(), "first".to_owned()]);
        let err = s.add_job(every_second("added", &added)).await.unwrap_err();
        assert!(matches!(err, Error::DuplicateJob(ref name) if name == "added"), "{err}");
        // Controls know the new job.
        s.pause("added", None, "ops", "checking").await.unwrap();
        s.resume("added", None).await.unwrap();
        s.shutdown().await;
        assert!(rows(&*db.store, "added").await.iter().all(|r| r.status != Status::Running));
    }
}

on_every_backend! {
    async fn a_replaced_job_plans_with_its_new_schedule(db: TestDb) {
        let job = "reshaped";
        let runs = Runs::default();
        let s = running(db.store.clone(), every_second(job, &runs)).await;
        eventually(10, "plans of the first spec", || async { (runs.len() >= 2).then_some(()) }).await;
        let replaced = Runs::default();
        s.replace_job(
            JobSpec::builder(job).cron("*/2 * * * * *").handler(replaced.ok_handler()).build().unwrap(),
        )
        .await
        .unwrap();
        let replaced_at = db.store.db_now().await.unwrap();
        eventually(10, "plans of the new spec", || async { (replaced.len() >= 2).then_some(()) }).await;
        s.shutdown().await;
        for (_, plan, _) in replaced.all() {
            assert_eq!(plan.timestamp() % 2, 0, "not a plan of the new schedule: {plan}");
        }
        let after: Vec<_> = runs.all().into_iter().filter(|r| r.1 > replaced_at + chrono::TimeDelta::seconds(1)).collect();
        assert!(after.is_empty(), "the old spec kept planning: {after:?}");
        let err = s.replace_job(every_second("nobody", &runs)).await;
        assert!(err.is_err());
    }
}

on_every_backend! {
    async fn a_removed_job_starts_nothing_and_its_running_attempt_finishes(db: TestDb) {
        let job = "removed";
        let runs = Runs::default();
        let s = running(db.store.clone(), slow(job, &runs, 2)).await;
        let attempt = eventually(10, "an attempt running", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.status == Status::Running)
        })
        .await;
        s.remove_job(job, RemoveMode::Finish).await.unwrap();
        let removed_at = db.store.db_now().await.unwrap();
        let done = eventually(10, "the running attempt to finish", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.id == attempt.id && r.status == Status::Success)
        })
        .await;
        assert_eq!(done.attempt, 1);
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let late: Vec<_> = rows(&*db.store, job).await.into_iter().filter(|r| r.plan_time > removed_at).collect();
        assert!(late.is_empty(), "a removed job kept planning: {late:?}");
        assert!(s.job_names().is_empty());
        assert!(matches!(s.remove_job(job, RemoveMode::Finish).await, Err(Error::UnknownJob(_))));
        assert!(matches!(s.pause(job, None, "ops", "gone").await, Err(Error::UnknownJob(_))));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn removing_a_job_can_cancel_its_running_attempts(db: TestDb) {
        let job = "cancelled";
        let runs = Runs::default();
        let s = running(db.store.clone(), slow(job, &runs, 30)).await;
        let attempt = eventually(10, "an attempt running", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.status == Status::Running)
        })
        .await;
        s.remove_job(job, RemoveMode::Cancel).await.unwrap();
        let cancelled = eventually(10, "the attempt to be recorded canceled", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.id == attempt.id && r.status != Status::Running)
        })
        .await;
        assert_eq!(cancelled.status, Status::Failed, "{cancelled:?}");
        assert_eq!(cancelled.failures.last().unwrap().code, "canceled");
        assert!(cancelled.next_retry_at.is_some(), "left retry-eligible for a runner that has the job");
        // The attempt leaves the running set once recorded (the record comes first), and no other
        // starts: the job is gone.
        assert!(s.wait_idle(Duration::from_secs(10)).await, "still running: {}", s.running().await.unwrap());
        s.shutdown().await;
    }
}
