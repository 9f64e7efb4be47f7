//! The job and runner registry with real timers: replicas on one database list each other as
//! live, a job whose spec differs between them is reported, a runner shut down cleanly shows
//! stopped and one that stops refreshing (its runtime dropped without a shutdown, as a killed
//! process) shows gone; jobs added, replaced and removed while running keep the registry current.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::chaos::DbLocation;
use common::{Runs, eventually, scheduler};
use cronlease::{JobSpec, RemoveMode, Runner, RunnerState, Scheduler, Store};

/// Leases renewed every 200 ms, so the runner refreshes its presence as often and is shown as
/// gone 600 ms after its last refresh.
fn job(name: &str, every: &str) -> JobSpec {
    JobSpec::builder(name)
        .every(every)
        .heartbeat_interval(Duration::from_millis(200))
        .handler(Runs::default().ok_handler())
        .build()
        .unwrap()
}

/// A scheduler as a user starts one: automatic ticks and refreshes.
async fn running(store: Arc<dyn Store>, id: &str, jobs: Vec<JobSpec>) -> Scheduler {
    jobs.into_iter()
        .fold(scheduler(store).auto_tick(true).runner_id(id), |b, spec| {
            b.job(spec)
        })
        .start()
        .await
        .unwrap()
}

/// Runs a scheduler on a thread of its own (its own actix System and database connections)
/// until `kill` is sent; then the thread's runtime is dropped without a shutdown, as a killed
/// process would vanish.
fn replica_on_a_thread(
    location: DbLocation,
    skew: TimeDelta,
    id: &'static str,
    spec: fn() -> JobSpec,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let store = location.store(skew, 4).await;
            let _replica = running(store, id, vec![spec()]).await;
            let _ = killed.await;
        });
    });
    (kill, thread)
}

fn named<'a>(runners: &'a [Runner], id: &str) -> Option<&'a Runner> {
    runners.iter().find(|r| r.id == id)
}

on_every_backend! {
    async fn replicas_are_listed_a_differing_spec_is_reported_and_stopped_or_silent_runners_show_it(db: TestDb) {
        let a = running(db.store.clone(), "a", vec![job("report", "1h")]).await;
        // Another replica of the application, deployed with a new schedule for the same job.
        let (kill_b, b) = replica_on_a_thread(DbLocation::of(&db), db.base_skew, "b", || job("report", "30m"));

        let report = eventually(30, "both replicas registered the job", || async {
            let jobs = a.registered_jobs(Some("report")).await.unwrap();
            jobs.into_iter().next().filter(|j| j.variants.iter().map(|v| v.runners.len()).sum::<usize>() == 2)
        })
        .await;
        assert!(report.conflicting, "{report:?}");
        let mut variants: Vec<(Option<String>, Vec<String>)> = report
            .variants
            .iter()
            .map(|v| (v.spec.schedule.clone(), v.runners.clone()))
            .collect();
        variants.sort();
        assert_eq!(
            variants,
            [
                (Some("every 1h".to_owned()), vec!["a".to_owned()]),
                (Some("every 30m".to_owned()), vec!["b".to_owned()]),
            ],
            "each replica's own spec, neither overwritten"
        );
        let runners = a.runners().await.unwrap();
        for id in ["a", "b"] {
            let runner = named(&runners, id).unwrap();
            assert_eq!(runner.state, RunnerState::Live, "{runner:?}");
            assert_eq!((runner.pid, runner.version.as_str()), (std::process::id(), env!("CARGO_PKG_VERSION")));
            assert_eq!(runner.refresh_interval, Duration::from_millis(200));
        }

        // Live for longer than the gone threshold (three intervals): the refresh keeps it so.
        eventually(30, "runner a refreshed over a second and still live", || async {
            let runners = a.runners().await.unwrap();
            let me = named(&runners, "a").unwrap().clone();
            (me.state == RunnerState::Live && me.last_seen - me.started_at > TimeDelta::seconds(1)).then_some(())
        })
        .await;

        // A replica shut down cleanly says so.
        let c = running(db.store.clone(), "c", vec![job("report", "1h")]).await;
        c.shutdown().await;
        let runners = a.runners().await.unwrap();
        let stopped = named(&runners, "c").unwrap();
        assert_eq!(stopped.state, RunnerState::Stopped, "{stopped:?}");
        assert!(stopped.stopped_at.is_some());

        // A replica that vanishes without shutting down is shown as gone, and the conflict
        // it caused is over.
        kill_b.send(()).unwrap();
        b.join().unwrap();
        eventually(30, "runner b shown as gone", || async {
            let runners = a.runners().await.unwrap();
            (named(&runners, "b").unwrap().state == RunnerState::Gone).then_some(())
        })
        .await;
        let report = a.registered_jobs(Some("report")).await.unwrap().remove(0);
        assert!(!report.conflicting, "{report:?}");
        assert_eq!(report.variants.len(), 1);
        assert_eq!(report.variants[0].runners, ["a"]);
        let mut states = report.runners.clone();
        states.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            states,
            [
                ("a".to_owned(), RunnerState::Live),
                ("b".to_owned(), RunnerState::Gone),
                ("c".to_owned(), RunnerState::Stopped),
            ]
        );
        assert_eq!(a.runners().await.unwrap().iter().filter(|r| r.state == RunnerState::Live).count(), 1);
        a.shutdown().await;
    }
}

on_every_backend! {
    async fn jobs_added_replaced_and_removed_while_running_keep_the_registry_current(db: TestDb) {
        let s = running(db.store.clone(), "a", vec![job("report", "1h")]).await;
        let names = |jobs: Vec<cronlease::RegisteredJob>| jobs.into_iter().map(|j| j.name).collect::<Vec<_>>();
        assert_eq!(names(s.registered_jobs(None).await.unwrap()), ["report"]);

        s.add_job(job("cleanup", "5m")).await.unwrap();
        assert_eq!(names(s.registered_jobs(None).await.unwrap()), ["cleanup", "report"]);

        s.replace_job(job("report", "2h")).await.unwrap();
        let report = s.registered_jobs(Some("report")).await.unwrap().remove(0);
        assert_eq!(report.spec.schedule.as_deref(), Some("every 2h"));
        assert!(!report.conflicting, "a runner never conflicts with itself: {report:?}");

        s.remove_job("cleanup", RemoveMode::Finish).await.unwrap();
        assert_eq!(names(s.registered_jobs(None).await.unwrap()), ["report"]);
        assert_eq!(s.registered_jobs(Some("cleanup")).await.unwrap(), []);

        // A tool with only the database sees the same, and can preview plans from it.
        let from_db = db.store.registered_jobs(Some("report")).await.unwrap().remove(0);
        let now = db.store.db_now().await.unwrap();
        let preview = from_db.spec.upcoming(now, 2).unwrap();
        assert_eq!(preview, job("report", "2h").upcoming(now, 2));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn the_retention_service_prunes_runners_not_seen_for_keep_runners(db: TestDb) {
        // A runner last seen two hours ago (its clock read two hours behind).
        let old = cronlease::store::RunnerRegistration {
            id: "old".into(),
            host: "gone-host".into(),
            pid: 1,
            version: "0.0.1".into(),
            refresh_interval: Duration::from_secs(10),
            starting: true,
        };
        db.skewed(TimeDelta::hours(-2))
            .runner_register(&old, &[cronlease::JobDescription::of(&job("report", "1h"))])
            .await
            .unwrap();
        let s = scheduler(db.store.clone())
            .runner_id("new")
            .retention(cronlease::Retention {
                keep_runners: Some(Duration::from_secs(3600)),
                ..cronlease::Retention::default()
            })
            .job(job("report", "1h"))
            .start()
            .await
            .unwrap();
        let ids = |runners: Vec<Runner>| runners.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(s.runners().await.unwrap()), ["new", "old"]);
        let report = s.prune_now().await.unwrap();
        assert_eq!(report.runners, 1, "{report:?}");
        assert_eq!(ids(s.runners().await.unwrap()), ["new"]);
        let report = s.registered_jobs(Some("report")).await.unwrap().remove(0);
        assert_eq!(report.runners, [("new".to_owned(), RunnerState::Live)], "its jobs went with it");
        assert_eq!(s.prune_now().await.unwrap().runners, 0);
        s.shutdown().await;
    }
}

#[actix::test]
async fn a_runner_id_the_registry_cannot_hold_is_refused_at_start() {
    let db = common::sqlite().await;
    for id in [String::new(), "r".repeat(513)] {
        let err = scheduler(db.store.clone())
            .runner_id(id.clone())
            .job(job("report", "1h"))
            .start()
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            format!("runner_id must be 1 to 512 bytes long (it is {})", id.len())
        );
    }
}
