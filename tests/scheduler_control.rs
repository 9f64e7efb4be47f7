//! Operator controls stored in the database, played with real timers and several replicas on
//! one database: pausing a job or one scope stops every replica within a tick, running attempts
//! finish, and resuming follows the job's catch-up mode.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, eventually, rows, scheduler, tenants};
use cronlease::{
    CatchUp, Error, Execution, JobContext, JobOutput, JobSpec, Pause, Scheduler, Scope, Status,
    Store,
};

/// A replica as a user starts one: automatic ticks, default tick interval.
async fn replica(store: Arc<dyn Store>, name: &str, spec: JobSpec) -> Scheduler {
    scheduler(store)
        .auto_tick(true)
        .runner_id(name)
        .shutdown_grace(Duration::from_millis(500))
        .job(spec)
        .start()
        .await
        .unwrap()
}

fn every_second(job: &str, runs: &Runs, catch_up: CatchUp) -> JobSpec {
    JobSpec::builder(job)
        .every("1s")
        .scopes(tenants(2))
        .catch_up(catch_up)
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

fn plans_between(rows: &[Execution], after: DateTime<Utc>, before: DateTime<Utc>) -> Vec<String> {
    rows.iter()
        .filter(|r| r.plan_time > after && r.plan_time < before)
        .map(|r| format!("{} {}", r.scope, r.plan_time))
        .collect()
}

on_every_backend! {
    async fn a_paused_job_starts_nothing_on_any_replica_and_resumes_latest_only(db: TestDb) {
        let job = "paused-latest";
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", every_second(job, &runs, CatchUp::LatestOnly)).await;
        let b = replica(db.store.clone(), "b", every_second(job, &runs, CatchUp::LatestOnly)).await;
        eventually(10, "a few plans before the pause", || async {
            (runs.len() >= 4).then_some(())
        })
        .await;

        let pause = a.pause(job, None, "ops", "database migration").await.unwrap();
        assert_eq!(pause.scope, None);
        assert_eq!((pause.paused_by.as_str(), pause.reason.as_str()), ("ops", "database migration"));
        let paused_at = pause.paused_at;
        // Both replicas see it (it lives in the database).
        assert_eq!(b.pauses(Some(job)).await.unwrap(), vec![pause.clone()]);
        actix_rt::time::sleep(Duration::from_secs(4)).await;
        let during = rows(&*db.store, job).await;
        // A tick that read the clock before the pause plans at most up to the pause; every
        // later tick of either replica obeys it.
        let late: Vec<_> = during.iter().filter(|r| r.plan_time > paused_at).collect();
        assert!(late.is_empty(), "plans started while paused: {late:?}");

        assert!(b.resume(job, None).await.unwrap(), "the pause was there");
        assert!(!b.resume(job, None).await.unwrap(), "and is gone");
        let resumed_at = db.store.db_now().await.unwrap();
        let after = eventually(10, "both scopes to run after the resume", || async {
            let rows = rows(&*db.store, job).await;
            let scopes = rows
                .iter()
                .filter(|r| r.plan_time >= resumed_at - TimeDelta::seconds(1) && r.status == Status::Success)
                .map(|r| r.scope.clone())
                .collect::<std::collections::HashSet<_>>();
            (scopes.len() == 2).then_some(rows)
        })
        .await;
        a.shutdown().await;
        b.shutdown().await;
        // LatestOnly: the plans that came due while paused were skipped, not run late.
        let skipped = plans_between(&after, paused_at + TimeDelta::seconds(1), resumed_at - TimeDelta::seconds(1));
        assert!(skipped.is_empty(), "plans of the paused time ran: {skipped:?}");
        assert!(a.pauses(None).await.unwrap().is_empty());
    }
}

on_every_backend! {
    async fn resuming_an_every_plan_job_runs_the_plans_of_its_window(db: TestDb) {
        let job = "paused-every";
        let runs = Runs::default();
        let catch_up = CatchUp::EveryPlan { window: Duration::from_secs(3600), max_plans_per_tick: 10 };
        let s = replica(db.store.clone(), "a", every_second(job, &runs, catch_up)).await;
        eventually(10, "a plan before the pause", || async { (runs.len() >= 2).then_some(()) }).await;
        let paused_at = s.pause(job, None, "ops", "maintenance").await.unwrap().paused_at;
        actix_rt::time::sleep(Duration::from_secs(3)).await;
        assert!(rows(&*db.store, job).await.iter().all(|r| r.plan_time <= paused_at));
        s.resume(job, None).await.unwrap();
        let resumed_at = db.store.db_now().await.unwrap();
        // Every plan of the paused time runs after the resume, once per scope.
        let first = paused_at.timestamp() + 1;
        let last = resumed_at.timestamp();
        let done = eventually(15, "every plan of the paused time", || async {
            let rows = rows(&*db.store, job).await;
            let ok = (first..=last).all(|t| {
                rows.iter()
                    .filter(|r| r.plan_time.timestamp() == t && r.status == Status::Success)
                    .count()
                    == 2
            });
            ok.then_some(rows)
        })
        .await;
        s.shutdown().await;
        for row in done.iter().filter(|r| r.plan_time > paused_at && r.plan_time <= resumed_at) {
            assert!(row.started_at.unwrap() >= resumed_at - TimeDelta::milliseconds(1), "ran while paused: {row:?}");
        }
    }
}

on_every_backend! {
    async fn a_paused_scope_stops_alone_and_its_running_attempt_finishes(db: TestDb) {
        let job = "paused-scope";
        let runs = Runs::default();
        let recorder = runs.clone();
        let spec = JobSpec::builder(job)
            .every("1s")
            .scopes(tenants(2))
            .handler(move |ctx: JobContext| {
                recorder.record(&ctx);
                async move {
                    // Tenant 0's attempts run 1.5 s, so one is running when it is paused.
                    if ctx.scope().id == "0" {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    Ok(JobOutput::rows(1))
                }
            })
            .build()
            .unwrap();
        let s = replica(db.store.clone(), "a", spec).await;
        let tenant = Scope::new("tenant", "0");
        let running = eventually(10, "an attempt of tenant 0 running", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.scope == tenant && r.status == Status::Running)
        })
        .await;
        let paused_at = s.pause(job, Some(tenant.clone()), "ops", "tenant migration").await.unwrap().paused_at;
        actix_rt::time::sleep(Duration::from_secs(3)).await;
        let during = rows(&*db.store, job).await;
        let ran = during.iter().find(|r| r.id == running.id).unwrap();
        assert_eq!(ran.status, Status::Success, "the running attempt finished: {ran:?}");
        assert!(during.iter().filter(|r| r.scope == tenant).all(|r| r.plan_time <= paused_at));
        assert!(
            during.iter().any(|r| r.scope.id == "1" && r.plan_time > paused_at + TimeDelta::seconds(1)),
            "the other scope kept running"
        );
        // The job-level resume does not lift a scope's own pause.
        assert!(!s.resume(job, None).await.unwrap());
        assert_eq!(s.pauses(Some(job)).await.unwrap().len(), 1);
        assert!(s.resume(job, Some(&tenant)).await.unwrap());
        let resumed_at = db.store.db_now().await.unwrap();
        eventually(10, "tenant 0 to run again", || async {
            rows(&*db.store, job).await.into_iter().find(|r| r.scope == tenant && r.plan_time >= resumed_at - TimeDelta::seconds(1))
        })
        .await;
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn pauses_are_stored_replaced_listed_and_cleared(db: TestDb) {
        let store = &*db.store;
        let tenant = Scope::new("tenant", "7");
        let first = store.pause_set(&Pause::new("report", Some(tenant.clone()), "alice", "first")).await.unwrap();
        let again = store.pause_set(&Pause::new("report", Some(tenant.clone()), "bob", "second")).await.unwrap();
        assert!(again.paused_at >= first.paused_at);
        store.pause_set(&Pause::new("report", None, "carol", "all of it")).await.unwrap();
        store.pause_set(&Pause::new("other", None, "dave", "other job")).await.unwrap();
        let report = store.pause_list(Some("report")).await.unwrap();
        assert_eq!(report.len(), 2, "one pause per (job, scope): {report:?}");
        assert_eq!((report[0].scope.clone(), report[0].paused_by.as_str()), (None, "carol"));
        assert_eq!((report[1].scope.clone(), report[1].reason.as_str()), (Some(tenant.clone()), "second"));
        assert_eq!(store.pause_list(None).await.unwrap().len(), 3);
        // The tick's clock statement carries the job's pauses, and only its own.
        let clock = store.tick_clock("report").await.unwrap();
        let (now, mut paused) = (clock.now, clock.paused);
        assert!((now - store.db_now().await.unwrap()).num_seconds().abs() < 5);
        paused.sort_by_key(|s| s.is_some());
        assert_eq!(paused, vec![None, Some(tenant.clone())]);
        assert_eq!(store.tick_clock("nobody").await.unwrap().paused, Vec::<Option<Scope>>::new());
        assert!(store.pause_clear("report", Some(&tenant)).await.unwrap());
        assert!(!store.pause_clear("report", Some(&tenant)).await.unwrap());
        assert!(store.pause_clear("report", None).await.unwrap());
        assert_eq!(store.pause_list(Some("report")).await.unwrap(), Vec::<Pause>::new());
    }
}

#[actix::test]
async fn pausing_an_unknown_job_or_an_invalid_scope_is_an_error() {
    let db = common::sqlite().await;
    let runs = Runs::default();
    let s = scheduler(db.store.clone())
        .job(every_second("known", &runs, CatchUp::LatestOnly))
        .start()
        .await
        .unwrap();
    let err = s.pause("unknown", None, "ops", "why").await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownJob(ref name) if name == "unknown"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "no job named `unknown` is registered with this scheduler"
    );
    let err = s.resume("unknown", None).await.unwrap_err();
    assert!(err.is_config(), "{err}");
    let err = s
        .pause("known", Some(Scope::new("tenant", "")), "ops", "why")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has an empty id"), "{err}");
    assert!(s.pauses(None).await.unwrap().is_empty());
    s.shutdown().await;
}
