//! The retention service through the public API: what `prune_now` deletes and keeps, batching,
//! disabling, validation, running by itself, and stopping with the scheduler.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{CountingStore, Runs, scheduler};
use cronlease::store::{ClaimRequest, FailureWrite, PlanClaim, SuccessWrite};
use cronlease::{Error, JobSpec, PruneReport, Retention, Scope, Status, Store};
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn plan(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 60 + minute * 60, 0).unwrap()
}

/// Claims `(scope, minute)` of job `keep` through `store` and ends it with `status`; the
/// store's clock stamps `finished_at`.
async fn finished(store: &dyn Store, scope: &str, minute: i64, status: Status) -> Uuid {
    finished_of(store, "keep", scope, minute, status).await
}

/// As [`finished`], for job `job`.
async fn finished_of(
    store: &dyn Store,
    job: &str,
    scope: &str,
    minute: i64,
    status: Status,
) -> Uuid {
    let c = store
        .execution_claim(&ClaimRequest {
            job,
            max_attempts: 3,
            runner_id: "earlier",
            stale_timeout: Duration::from_secs(60),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::new("tenant", scope), plan(minute))],
        })
        .await
        .unwrap()
        .remove(0);
    if status == Status::Success {
        store
            .execution_finish_success(&[SuccessWrite {
                lease: c.lease,
                duration_ms: 1,
                rows_affected: 0,
                result: "{}".into(),
            }])
            .await
            .unwrap();
    } else {
        store
            .execution_finish_failure(&[FailureWrite {
                lease: c.lease,
                status,
                code: "handler_error".into(),
                message: "boom".into(),
                retry_in: (status == Status::Failed).then_some(Duration::ZERO),
                extend_budget: false,
                duration_ms: 1,
            }])
            .await
            .unwrap();
    }
    c.lease.id
}

/// Old and recent rows: four SUCCESS rows past 30 days and one DEAD row past 7 days are
/// prunable; the rest is kept, among it a FAILED row 31 days old, whose retry is still ahead
/// (a FAILED row always has a future, so it is never pruned). Returns `(prunable, kept)`.
async fn history(db: &common::TestDb) -> (Vec<Uuid>, Vec<Uuid>) {
    let ago = |days: i64| db.skewed(TimeDelta::days(-days));
    let mut prunable = Vec::new();
    for minute in 0..3 {
        prunable.push(finished(&*ago(40), "1", minute, Status::Success).await);
    }
    let failed = finished(&*ago(31), "1", 3, Status::Failed).await;
    prunable.push(finished(&*ago(31), "2", 0, Status::Success).await);
    prunable.push(finished(&*ago(8), "3", 0, Status::Dead).await);
    let kept = vec![
        failed,
        finished(&*ago(29), "1", 4, Status::Success).await,
        finished(&*ago(40), "2", 1, Status::Success).await, // the newest of its scope
        finished(&*ago(6), "3", 1, Status::Dead).await,
        finished(&*db.store, "3", 2, Status::Success).await,
    ];
    (prunable, kept)
}

async fn exists(store: &dyn Store, id: Uuid) -> bool {
    store.execution_get(id).await.unwrap().is_some()
}

on_every_store! {
    async fn prune_now_deletes_what_is_past_retention_in_batches(db: TestDb) {
        let (prunable, kept) = history(&db).await;
        let counting = CountingStore::new(db.store.clone());
        let s = scheduler(counting.clone())
            .retention(Retention { batch_size: 2, ..Retention::default() })
            .start()
            .await
            .unwrap();
        counting.take();
        let report = s.prune_now().await.unwrap();
        assert_eq!((report.finished, report.dead, report.stale_running), (4, 1, 0), "{report:?}");
        // One read of the partition layout (none: a plain table), one stale count, then
        // 2 + 2 + 0 finished rows, then one short batch of dead rows, then the runners not seen
        // for keep_runners, then one short batch of ledger spans.
        assert_eq!(counting.take(), 8, "bounded batches until one comes back short");
        for id in prunable {
            assert!(!exists(&*db.store, id).await, "{id} pruned");
        }
        for id in &kept {
            assert!(exists(&*db.store, *id).await, "{id} kept");
        }
        assert_eq!(s.prune_now().await.unwrap(), PruneReport::default(), "nothing left to prune");
        s.shutdown().await;
    }
}

on_every_store! {
    async fn retention_is_configurable_and_can_be_disabled(db: TestDb) {
        let (prunable, _) = history(&db).await;
        let s = scheduler(db.store.clone()).retention(Retention::disabled()).start().await.unwrap();
        assert_eq!(s.prune_now().await.unwrap(), PruneReport::default());
        for id in &prunable {
            assert!(exists(&*db.store, *id).await);
        }
        s.shutdown().await;
        // Dead letters kept forever, finished rows after 35 days.
        let s = scheduler(db.store.clone())
            .retention(Retention { keep_finished: Some(35 * DAY), keep_dead: None, ..Retention::default() })
            .start()
            .await
            .unwrap();
        let report = s.prune_now().await.unwrap();
        assert_eq!((report.finished, report.dead), (3, 0), "{report:?}");
        assert!(exists(&*db.store, prunable[4]).await, "the dead row is kept");
        s.shutdown().await;
    }
}

on_every_store! {
    async fn retention_settings_are_validated(db: TestDb) {
        let cases = [
            (Retention { batch_size: 0, ..Retention::default() }, "batch_size"),
            (Retention { interval: Duration::ZERO, ..Retention::default() }, "interval"),
            (Retention { keep_finished: Some(Duration::ZERO), ..Retention::default() }, "keep_finished"),
            (Retention { keep_dead: Some(Duration::ZERO), ..Retention::default() }, "keep_dead"),
            (Retention { keep_skips: Some(Duration::ZERO), ..Retention::default() }, "keep_skips"),
        ];
        for (retention, field) in cases {
            match scheduler(db.store.clone()).retention(retention).start().await {
                Err(Error::InvalidConfig(message)) => assert!(message.contains(field), "{message}"),
                other => panic!("{field}: expected InvalidConfig, got {:?}", other.map(|_| ())),
            }
        }
        match scheduler(db.store.clone()).replay_attempts(0).start().await {
            Err(Error::InvalidConfig(message)) => assert!(message.contains("replay_attempts"), "{message}"),
            other => panic!("expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
}

on_every_store! {
    async fn stale_running_rows_are_reported(db: TestDb) {
        common::orphan(&*db.store, "orphaned", plan(0), Duration::from_secs(60), true).await;
        let s = scheduler(db.skewed(TimeDelta::minutes(2))).start().await.unwrap();
        assert_eq!(s.prune_now().await.unwrap().stale_running, 1, "no runner sweeps `orphaned`");
        s.shutdown().await;
    }
}

on_every_store! {
    async fn the_retention_service_runs_by_itself_and_stops_with_the_scheduler(db: TestDb) {
        let (prunable, kept) = history(&db).await;
        let store: Arc<dyn Store> = db.store.clone();
        let s = scheduler(store.clone())
            .auto_tick(true)
            .retention(Retention { interval: Duration::from_millis(20), ..Retention::default() })
            .start()
            .await
            .unwrap();
        common::eventually(20, "the first timed run", || {
            let store = store.clone();
            let prunable = prunable.clone();
            async move {
                for id in prunable {
                    if exists(&*store, id).await {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        for id in kept {
            assert!(exists(&*db.store, id).await);
        }
        s.shutdown().await;
        assert!(matches!(s.prune_now().await, Err(Error::NotRunning)));
    }
}

on_every_store! {
    async fn a_jobs_own_keep_finished_prunes_its_rows_while_another_jobs_stay(db: TestDb) {
        let ago = |days: i64| db.skewed(TimeDelta::days(-days));
        // Each job: a SUCCESS row finished 5 days ago under a newer one (so it may be pruned).
        let minutely_old = finished_of(&*ago(5), "minutely", "1", 0, Status::Success).await;
        let minutely_new = finished_of(&*db.store, "minutely", "1", 1, Status::Success).await;
        let keep_old = finished_of(&*ago(5), "keep", "1", 0, Status::Success).await;
        let forever_old = finished_of(&*ago(40), "forever", "1", 0, Status::Success).await;
        finished_of(&*db.store, "forever", "1", 1, Status::Success).await;
        let runs = Runs::default();
        let job = |name: &str| JobSpec::builder(name).every("1d").handler(runs.ok_handler());
        let store: Arc<dyn Store> = db.store.clone();
        // keep follows the default (30 days), minutely keeps a day, forever keeps everything:
        // the default's pass must leave forever's 40-day-old row alone.
        let s = scheduler(store.clone())
            .auto_tick(true)
            .retention(Retention { interval: Duration::from_millis(20), ..Retention::default() })
            .job(job("minutely").keep_finished(DAY).build().unwrap())
            .job(job("keep").build().unwrap())
            .job(job("forever").keep_finished_forever().build().unwrap())
            .start()
            .await
            .unwrap();
        common::eventually(20, "a timed run prunes minutely's old row", || {
            let store = store.clone();
            async move { (!exists(&*store, minutely_old).await).then_some(()) }
        })
        .await;
        assert!(exists(&*db.store, keep_old).await, "keep's row is within its 30 days");
        assert!(exists(&*db.store, forever_old).await, "forever's row is kept forever");
        assert!(exists(&*db.store, minutely_new).await, "the newest row of a scope is kept");
        s.shutdown().await;
        // The same jobs with the default forever: only minutely's own age prunes.
        let older = finished_of(&*ago(3), "minutely", "2", 0, Status::Success).await;
        finished_of(&*db.store, "minutely", "2", 1, Status::Success).await;
        let s = scheduler(store.clone())
            .retention(Retention { keep_finished: None, ..Retention::default() })
            .job(job("minutely").keep_finished(DAY).build().unwrap())
            .job(job("keep").build().unwrap())
            .start()
            .await
            .unwrap();
        assert_eq!(s.prune_now().await.unwrap().finished, 1, "minutely's row only");
        assert!(!exists(&*db.store, older).await);
        assert!(exists(&*db.store, keep_old).await);
        s.shutdown().await;
    }
}
