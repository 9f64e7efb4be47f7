//! Trigger now and backfill, played with real timers (automatic ticks) on every backend: a
//! double click runs once, a trigger of every scope runs each scope once beside the schedule, a
//! failing manual run is retried then dead-lettered, and a backfill runs each plan of its range
//! once, across a restart, until done or cancelled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, eventually, rows, scheduler, tenants};
use cronlease::{
    Backfill, BackfillOptions, BackfillStatus, Backoff, Error, Execution, JobContext, JobError,
    JobOutput, JobSpec, RemoveMode, Scheduler, Scope, Status, Store, TriggerOptions, TriggerTarget,
    floor_plan,
};

/// A replica as a user starts one: automatic ticks.
async fn replica(store: Arc<dyn Store>, name: &str, slots: usize, spec: JobSpec) -> Scheduler {
    scheduler(store)
        .auto_tick(true)
        .runner_id(name)
        .tick_interval(Duration::from_secs(1))
        .max_concurrent_executions(slots)
        .job(spec)
        .start()
        .await
        .unwrap()
}

fn hourly(job: &str, scopes: usize, runs: &Runs) -> JobSpec {
    let builder = JobSpec::builder(job).every("1h").handler(runs.ok_handler());
    let builder = if scopes > 0 {
        builder.scopes(tenants(scopes))
    } else {
        builder
    };
    builder.build().unwrap()
}

fn manual(rows: &[Execution]) -> Vec<&Execution> {
    rows.iter().filter(|r| r.is_manual()).collect()
}

async fn finished_manual_rows(store: &dyn Store, job: &str, n: usize) -> Vec<Execution> {
    eventually(
        20,
        &format!("{n} finished manual runs of {job}"),
        || async {
            let rows = rows(store, job).await;
            let done: Vec<Execution> = rows
                .into_iter()
                .filter(|r| r.is_manual() && matches!(r.status, Status::Success | Status::Dead))
                .collect();
            (done.len() >= n).then_some(done)
        },
    )
    .await
}

on_every_backend! {
    async fn a_double_clicked_trigger_runs_once_beside_the_scheduled_plan(db: TestDb) {
        let job = "report";
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", 4, hourly(job, 0, &runs)).await;
        eventually(10, "the scheduled plan", || async { (runs.len() == 1).then_some(()) }).await;

        let click = || a.trigger(job, TriggerTarget::Scope(Scope::global()), TriggerOptions::idempotent("ticket-7").by("alice"));
        let (first, second) = tokio::join!(click(), click());
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.id, second.id, "one trigger for one key");

        let done = finished_manual_rows(&*db.store, job, 1).await;
        assert_eq!(done[0].status, Status::Success);
        assert_eq!(done[0].trigger_id, Some(first.id));
        assert!(done[0].plan_time >= first.requested_at);
        // More ticks find nothing left to start.
        a.tick_now().await.unwrap();
        a.tick_now().await.unwrap();
        assert!(a.wait_idle(Duration::from_secs(10)).await);
        let all = rows(&*db.store, job).await;
        assert_eq!(manual(&all).len(), 1, "a double click runs once: {all:?}");
        assert_eq!(all.iter().filter(|r| !r.is_manual()).count(), 1, "the scheduled plan is untouched");
        assert_eq!(runs.len(), 2);
        let triggers = a.triggers(Some(job)).await.unwrap();
        assert_eq!(triggers.len(), 1);
        assert!(triggers[0].is_started());
        a.shutdown().await;
    }
}

on_every_backend! {
    async fn a_trigger_of_every_scope_runs_each_scope_once_across_replicas(db: TestDb) {
        let job = "fan-out";
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", 8, hourly(job, 3, &runs)).await;
        let b = replica(db.store.clone(), "b", 8, hourly(job, 3, &runs)).await;
        eventually(10, "the scheduled plans", || async { (runs.len() == 3).then_some(()) }).await;

        let trigger = b.trigger(job, TriggerTarget::AllScopes, TriggerOptions::default()).await.unwrap();
        assert_eq!(trigger.scope, None);
        let done = finished_manual_rows(&*db.store, job, 3).await;
        a.tick_now().await.unwrap();
        b.tick_now().await.unwrap();
        assert!(a.wait_idle(Duration::from_secs(10)).await && b.wait_idle(Duration::from_secs(10)).await);
        let all = rows(&*db.store, job).await;
        let mut scopes: Vec<Scope> = manual(&all).iter().map(|r| r.scope.clone()).collect();
        scopes.sort();
        assert_eq!(scopes, tenants(3), "each scope once: {all:?}");
        assert!(done.iter().all(|r| r.status == Status::Success && r.trigger_id == Some(trigger.id)));
        assert_eq!(runs.len(), 6, "three scheduled runs and three manual ones");
        a.shutdown().await;
        b.shutdown().await;
    }
}

on_every_backend! {
    async fn a_failing_triggered_run_is_retried_then_dead_lettered(db: TestDb) {
        let job = "flaky";
        let spec = JobSpec::builder(job)
            .every("1h")
            .max_attempts(2)
            .backoff(Backoff::List(vec![Duration::from_millis(200)]))
            .handler(|ctx: JobContext| async move {
                Err::<JobOutput, _>(JobError::retryable(format!("attempt {} failed", ctx.attempt())))
            })
            .build()
            .unwrap();
        let a = replica(db.store.clone(), "a", 4, spec).await;
        let trigger = a.trigger(job, TriggerTarget::AllScopes, TriggerOptions::default()).await.unwrap();
        let dead = finished_manual_rows(&*db.store, job, 1).await;
        let row = &dead[0];
        assert_eq!((row.status, row.attempt, row.trigger_id), (Status::Dead, 2, Some(trigger.id)));
        assert_eq!(row.failures.len(), 2, "both attempts in the history: {:?}", row.failures);
        assert_eq!(row.error_code.as_deref(), Some("handler_error"));
        let dead_letters = a.dead_executions(&Default::default()).await.unwrap();
        assert!(dead_letters.iter().any(|r| r.id == row.id), "in the dead-letter set");
        a.shutdown().await;
    }
}

on_every_backend! {
    async fn requests_for_unknown_jobs_and_bad_ranges_are_refused(db: TestDb) {
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", 4, hourly("kept", 0, &runs)).await;
        let now = db.store.db_now().await.unwrap();
        let hour = TimeDelta::hours(1);
        let options = BackfillOptions::default;
        assert!(matches!(
            a.trigger("nope", TriggerTarget::AllScopes, TriggerOptions::default()).await,
            Err(Error::UnknownJob(job)) if job == "nope"
        ));
        assert!(matches!(a.backfill("nope", now - hour, now, options()).await, Err(Error::UnknownJob(_))));
        let reversed = a.backfill("kept", now - hour, now - hour, options()).await.unwrap_err();
        assert!(matches!(&reversed, Error::InvalidRequest(m) if m.contains("must be before")), "{reversed}");
        let future = a.backfill("kept", now - hour, now + hour, options()).await.unwrap_err();
        assert!(matches!(&future, Error::InvalidRequest(m) if m.contains("in the future")), "{future}");
        // A job planned by a hook has no plan times to backfill.
        let hooked = JobSpec::builder("hooked")
            .planner(|_, _, _| Ok(vec![]))
            .handler(runs.ok_handler())
            .build()
            .unwrap();
        a.add_job(hooked).await.unwrap();
        let hooked = a.backfill("hooked", now - hour * 2, now - hour, options()).await.unwrap_err();
        assert!(matches!(&hooked, Error::InvalidRequest(m) if m.contains("planner hook")), "{hooked}");
        a.remove_job("kept", RemoveMode::Finish).await.unwrap();
        assert!(matches!(a.backfill("kept", now - hour * 2, now - hour, options()).await, Err(Error::UnknownJob(_))));
        assert!(a.backfills(None).await.unwrap().is_empty(), "nothing was stored");
        a.shutdown().await;
    }
}

/// A job every minute over two tenants whose handler takes a moment, so a backfill with one
/// slot takes a few seconds.
fn minutely(job: &str, runs: &Runs) -> JobSpec {
    let runs = runs.clone();
    JobSpec::builder(job)
        .every("1m")
        .scopes(tenants(2))
        .handler(move |ctx: JobContext| {
            let runs = runs.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                runs.record(&ctx);
                Ok(JobOutput::rows(1))
            }
        })
        .build()
        .unwrap()
}

/// `[now - 20m, now - 5m)` on minute boundaries: 15 plan times.
async fn past_range(store: &dyn Store) -> (DateTime<Utc>, DateTime<Utc>) {
    let minute = floor_plan(store.db_now().await.unwrap(), Duration::from_secs(60));
    (
        minute - TimeDelta::minutes(20),
        minute - TimeDelta::minutes(5),
    )
}

async fn status(scheduler: &Scheduler, backfill: &Backfill) -> Backfill {
    scheduler
        .backfill_status(backfill.id)
        .await
        .unwrap()
        .expect("stored")
}

on_every_backend! {
    async fn a_backfill_survives_a_restart_and_runs_each_plan_once(db: TestDb) {
        let job = "history";
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", 1, minutely(job, &runs)).await;
        let (from, to) = past_range(&*db.store).await;
        let backfill = a.backfill(job, from, to, BackfillOptions::default()).await.unwrap();
        assert_eq!((backfill.status, backfill.done), (BackfillStatus::Active, 0));
        eventually(20, "a few plans handed out", || async {
            (status(&a, &backfill).await.done >= 4).then_some(())
        })
        .await;
        a.shutdown().await;
        let stopped = status(&a, &backfill).await;
        assert_eq!(stopped.status, BackfillStatus::Active, "not done before the restart: {stopped:?}");
        assert_eq!(stopped.total, Some(30));

        let b = replica(db.store.clone(), "b", 1, minutely(job, &runs)).await;
        let done = eventually(30, "the backfill done", || async {
            let now = status(&b, &backfill).await;
            (now.status == BackfillStatus::Done).then_some(now)
        })
        .await;
        assert_eq!((done.done, done.total), (30, Some(30)));
        assert!(b.wait_idle(Duration::from_secs(10)).await);
        let in_range: Vec<Execution> = rows(&*db.store, job)
            .await
            .into_iter()
            .filter(|r| r.plan_time >= from && r.plan_time < to)
            .collect();
        assert_eq!(in_range.len(), 30);
        assert!(in_range.iter().all(|r| r.status == Status::Success && r.attempt == 1 && !r.is_manual()));
        let ran: Vec<_> = runs.all().into_iter().filter(|(_, t, _)| *t >= from && *t < to).collect();
        assert_eq!(ran.len(), 30, "each plan ran once, across the restart");
        b.shutdown().await;
    }
}

on_every_backend! {
    async fn a_cancelled_backfill_hands_out_nothing_more_and_a_second_one_skips_what_ran(db: TestDb) {
        let job = "history";
        let runs = Runs::default();
        let a = replica(db.store.clone(), "a", 1, minutely(job, &runs)).await;
        let (from, to) = past_range(&*db.store).await;
        let first = a.backfill(job, from, to, BackfillOptions::default()).await.unwrap();
        eventually(20, "a few plans handed out", || async {
            (status(&a, &first).await.done >= 2).then_some(())
        })
        .await;
        assert!(a.cancel_backfill(first.id).await.unwrap());
        assert!(!a.cancel_backfill(first.id).await.unwrap());
        a.tick_now().await.unwrap();
        assert!(a.wait_idle(Duration::from_secs(10)).await);
        let cancelled = status(&a, &first).await;
        assert_eq!(cancelled.status, BackfillStatus::Cancelled);
        let in_range = |rows: Vec<Execution>| -> Vec<Execution> {
            rows.into_iter().filter(|r| r.plan_time >= from && r.plan_time < to).collect()
        };
        let ran = in_range(rows(&*db.store, job).await);
        assert_eq!(ran.len() as u64, cancelled.done, "exactly the plans handed out ran");
        assert!(cancelled.done < 30);

        // A second backfill of the same range runs only the plans without a row.
        let second = a.backfill(job, from, to, BackfillOptions { scopes: Some(tenants(2)), ..Default::default() }).await.unwrap();
        eventually(30, "the second backfill done", || async {
            (status(&a, &second).await.status == BackfillStatus::Done).then_some(())
        })
        .await;
        assert!(a.wait_idle(Duration::from_secs(10)).await);
        let all = in_range(rows(&*db.store, job).await);
        assert_eq!(all.len(), 30);
        assert!(all.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        let runs_in_range = runs.all().into_iter().filter(|(_, t, _)| *t >= from && *t < to).count();
        assert_eq!(runs_in_range, 30, "no plan ran twice");

        // With rerun, every finished plan runs once more.
        let third = a.backfill(job, from, to, BackfillOptions { rerun: true, ..Default::default() }).await.unwrap();
        eventually(30, "the rerun done", || async {
            (status(&a, &third).await.status == BackfillStatus::Done).then_some(())
        })
        .await;
        assert!(a.wait_idle(Duration::from_secs(10)).await);
        let rerun = in_range(rows(&*db.store, job).await);
        assert!(rerun.iter().all(|r| r.status == Status::Success && r.attempt == 2), "{rerun:?}");
        let runs_in_range = runs.all().into_iter().filter(|(_, t, _)| *t >= from && *t < to).count();
        assert_eq!(runs_in_range, 60);
        assert_eq!(a.backfills(Some(job)).await.unwrap().len(), 3);
        a.shutdown().await;
    }
}

on_every_backend! {
    async fn an_idle_tick_pays_nothing_for_requests_before_or_after_them(db: TestDb) {
        let job = "quiet";
        let hour = Duration::from_secs(3600);
        let runs = Runs::default();
        let counting = common::CountingStore::new(db.store.clone());
        // Manual ticks for an exact count; the latest plans run at the first tick.
        let s = scheduler(counting.clone()).job(hourly(job, 10, &runs)).start().await.unwrap();
        s.tick_now().await.unwrap();
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        counting.take();
        s.tick_now().await.unwrap();
        let idle_before = counting.take();

        // A trigger and a backfill, written by a tool straight through the store.
        let latest = floor_plan(db.store.db_now().await.unwrap(), hour);
        let two_hours = Backfill::new(job, latest - TimeDelta::hours(2), latest, BackfillOptions {
            scopes: Some(vec![Scope::new("tenant", "3")]),
            ..Default::default()
        });
        let backfill = db.store.backfill_create(&two_hours).await.unwrap();
        let trigger = cronlease::Trigger::new(job, Some(Scope::new("tenant", "1")), TriggerOptions::default());
        db.store.trigger_create(&trigger).await.unwrap();
        let served = s.tick_now().await.unwrap();
        // Under the default overlap policy (Skip) a scope runs one plan at a time, so the
        // backfill hands out its scope's second plan once the first has ended.
        assert_eq!(served.won, 2, "one manual run and the first backfilled plan: {served:?}");
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        let served = s.tick_now().await.unwrap();
        assert_eq!(served.won, 1, "the second backfilled plan: {served:?}");
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        assert_eq!(status(&s, &backfill).await.status, BackfillStatus::Done);

        counting.take();
        s.tick_now().await.unwrap();
        let idle_after = counting.take();
        assert_eq!(idle_before, 3, "clock (with the request probes), sweep, retry candidates");
        assert_eq!(idle_after, idle_before, "served requests leave nothing to pay for");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_trigger_of_a_paused_job_or_scope_waits_for_the_resume(db: TestDb) {
        let job = "held";
        let runs = Runs::default();
        let s = scheduler(db.store.clone()).job(hourly(job, 2, &runs)).start().await.unwrap();
        s.tick_now().await.unwrap();
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        let tenant = Scope::new("tenant", "1");
        s.pause(job, Some(tenant.clone()), "ops", "tenant move").await.unwrap();
        let one = s.trigger(job, TriggerTarget::Scope(tenant.clone()), TriggerOptions::default()).await.unwrap();
        s.tick_now().await.unwrap();
        assert!(manual(&rows(&*db.store, job).await).is_empty(), "the paused scope's trigger waits");
        s.pause(job, None, "ops", "migration").await.unwrap();
        s.resume(job, Some(&tenant)).await.unwrap();
        let every = s.trigger(job, TriggerTarget::AllScopes, TriggerOptions::default()).await.unwrap();
        s.tick_now().await.unwrap();
        assert!(manual(&rows(&*db.store, job).await).is_empty(), "a paused job starts no trigger");
        assert_eq!(s.triggers(Some(job)).await.unwrap().iter().filter(|t| !t.is_started()).count(), 2);

        s.resume(job, None).await.unwrap();
        s.tick_now().await.unwrap();
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        let all = rows(&*db.store, job).await;
        let mut started: Vec<(Option<uuid::Uuid>, String)> =
            manual(&all).iter().map(|r| (r.trigger_id, r.scope.id.clone())).collect();
        started.sort();
        let mut expected = vec![(Some(one.id), "1".to_owned()), (Some(every.id), "0".to_owned()), (Some(every.id), "1".to_owned())];
        expected.sort();
        assert_eq!(started, expected);
        assert!(s.triggers(Some(job)).await.unwrap().iter().all(|t| t.is_started()));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_backfill_obeys_the_jobs_concurrency_limit_and_runs_each_plan_once(db: TestDb) {
        let job = "limited-history";
        let runs = Runs::default();
        // Eight slots on the runner, but the job allows one attempt at a time cluster-wide.
        let spec = {
            let runs = runs.clone();
            JobSpec::builder(job)
                .every("1m")
                .scopes(tenants(2))
                .max_concurrent(1)
                .handler(move |ctx: JobContext| {
                    let runs = runs.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.record(&ctx);
                        Ok(JobOutput::rows(1))
                    }
                })
                .build()
                .unwrap()
        };
        let a = replica(db.store.clone(), "a", 8, spec).await;
        let (from, to) = past_range(&*db.store).await;
        let backfill = a.backfill(job, from, to, BackfillOptions::default()).await.unwrap();
        let done = eventually(60, "the backfill done", || async {
            let now = status(&a, &backfill).await;
            (now.status == BackfillStatus::Done).then_some(now)
        })
        .await;
        assert_eq!((done.done, done.total), (30, Some(30)));
        assert!(a.wait_idle(Duration::from_secs(10)).await);
        a.shutdown().await;
        let mut in_range: Vec<Execution> = rows(&*db.store, job)
            .await
            .into_iter()
            .filter(|r| r.plan_time >= from && r.plan_time < to)
            .collect();
        assert_eq!(in_range.len(), 30, "every plan of the range has its row");
        assert!(in_range.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        let ran = runs.all().into_iter().filter(|(_, t, _)| *t >= from && *t < to).count();
        assert_eq!(ran, 30, "each plan ran once");
        // Never two attempts of the job at once: each started after the one before it ended.
        in_range.sort_by_key(|r| r.started_at);
        for pair in in_range.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            assert!(
                after.started_at.unwrap() >= before.finished_at.unwrap(),
                "{} started at {:?} while {} ran until {:?}",
                after.plan_time, after.started_at, before.plan_time, before.finished_at
            );
        }
    }
}
