//! The store conformance suite for control requests (triggers and backfills): the same
//! behaviour on every backend. SQLite always; PostgreSQL and MySQL when their URLs are set.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cronlease::store::{
    BackfillAdvance, ClaimRequest, ManualPlan, ManualStart, PlanClaim, SuccessWrite,
};
use cronlease::{
    Backfill, BackfillCursor, BackfillOptions, BackfillStatus, ClaimOutcome, Scope, Status, Store,
    Trigger, TriggerOptions,
};

const JOB: &str = "requests";
const STALE: Duration = Duration::from_secs(60);

fn plan(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 60 + minute * 60, 0).unwrap()
}

fn scope(i: usize) -> Scope {
    Scope::new("tenant", i.to_string())
}

/// A manual start of `plans` (trigger, scope) at `at`, fresh ids and tokens, at most `limit`.
fn manual<'a>(
    runner: &'a str,
    at: DateTime<Utc>,
    plans: &[(uuid::Uuid, Scope)],
    limit: usize,
) -> ManualStart<'a> {
    let mut started: Vec<uuid::Uuid> = plans.iter().map(|(t, _)| *t).collect();
    started.dedup();
    ManualStart {
        job: JOB,
        max_attempts: 2,
        runner_id: runner,
        stale_timeout: STALE,
        limit,
        plans: plans
            .iter()
            .map(|(trigger, scope)| ManualPlan {
                trigger: *trigger,
                plan: PlanClaim::new(scope.clone(), at),
            })
            .collect(),
        started,
    }
}

async fn pending(store: &dyn Store) -> Vec<Trigger> {
    store.trigger_list(Some(JOB), true).await.unwrap()
}

on_every_backend! {
    async fn an_idempotency_key_stores_one_trigger_per_job(db: TestDb) {
        let store = &*db.store;
        assert!(!store.tick_clock(JOB).await.unwrap().triggers_pending);
        let click = |key: Option<&str>| {
            let options = TriggerOptions {
                idempotency_key: key.map(str::to_owned),
                requested_by: "alice".into(),
            };
            Trigger::new(JOB, Some(scope(1)), options)
        };
        let first = store.trigger_create(&click(Some("ticket-1"))).await.unwrap();
        let again = store.trigger_create(&click(Some("ticket-1"))).await.unwrap();
        assert_eq!(again, first, "a double click returns the first trigger, unchanged");
        assert_eq!((first.scope.clone(), first.requested_by.as_str()), (Some(scope(1)), "alice"));
        assert!(!first.is_started());
        let now = store.db_now().await.unwrap();
        assert!((now - first.requested_at).num_seconds().abs() < 60, "database clock");

        let other_key = store.trigger_create(&click(Some("ticket-2"))).await.unwrap();
        let other_job = store
            .trigger_create(&Trigger::new("other", None, TriggerOptions::idempotent("ticket-1")))
            .await
            .unwrap();
        let no_key_1 = store.trigger_create(&click(None)).await.unwrap();
        let no_key_2 = store.trigger_create(&click(None)).await.unwrap();
        let ids = [first.id, other_key.id, other_job.id, no_key_1.id, no_key_2.id];
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 5, "keys are per job; no key never deduplicates");
        assert_eq!(other_job.scope, None, "every scope");

        assert_eq!(pending(store).await.len(), 4);
        assert_eq!(store.trigger_list(None, false).await.unwrap().len(), 5);
        assert!(store.tick_clock(JOB).await.unwrap().triggers_pending);
        assert!(!store.tick_clock("nobody").await.unwrap().triggers_pending);
    }
}

on_every_backend! {
    async fn a_trigger_starts_once_whoever_starts_it_and_is_not_a_plan_of_the_schedule(db: TestDb) {
        let store = &*db.store;
        let trigger = store
            .trigger_create(&Trigger::new(JOB, None, TriggerOptions::default()))
            .await
            .unwrap();
        let at = plan(0) + TimeDelta::milliseconds(1);
        let targets = [(trigger.id, scope(1)), (trigger.id, scope(2))];
        // Two replicas start it at once, each with its own ids and tokens.
        let a = manual("a", at, &targets, 10);
        let b = manual("b", at, &targets, 10);
        let (won_a, won_b) = tokio::join!(store.trigger_start(&a), store.trigger_start(&b));
        let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
        assert_eq!(won_a.len() + won_b.len(), 2, "each manual plan is started once: {won_a:?} {won_b:?}");
        for claimed in won_a.iter().chain(&won_b) {
            assert_eq!((claimed.attempt, claimed.outcome, claimed.plan_time), (1, ClaimOutcome::Won, at));
            let row = store.execution_get(claimed.lease.id).await.unwrap().unwrap();
            assert_eq!(row.status, Status::Running);
            assert_eq!(row.trigger_id, Some(trigger.id));
            assert!(row.is_manual());
        }
        assert!(pending(store).await.is_empty(), "started once nothing is missing");
        assert!(!store.tick_clock(JOB).await.unwrap().triggers_pending);
        let listed = store.trigger_list(Some(JOB), false).await.unwrap();
        assert!(listed[0].is_started());

        // A lost reply: the same request sent again gets its leases back.
        let again = store.trigger_start(&a).await.unwrap();
        assert_eq!(again.len(), won_a.len());
        // Planning does not see manual rows as plans of the schedule.
        assert!(store.execution_latest_plans(JOB).await.unwrap().is_empty());
        // A scheduled plan at a different time of the same scope is its own row.
        let scheduled = store
            .execution_claim(&ClaimRequest {
                job: JOB,
                max_attempts: 2,
                runner_id: "a",
                stale_timeout: STALE,
                allow_stale_reentry: true,
                steal_not_after: None,
                plans: vec![PlanClaim::new(scope(1), plan(0))],
            })
            .await
            .unwrap();
        assert_eq!(scheduled.len(), 1);
        assert_eq!(store.execution_latest_plans(JOB).await.unwrap(), vec![(scope(1), plan(0))]);
    }
}

on_every_backend! {
    async fn a_trigger_larger_than_the_free_slots_starts_over_several_calls(db: TestDb) {
        let store = &*db.store;
        let trigger = store
            .trigger_create(&Trigger::new(JOB, None, TriggerOptions::default()))
            .await
            .unwrap();
        let at = plan(3) + TimeDelta::milliseconds(7);
        let targets: Vec<_> = (0..5).map(|i| (trigger.id, scope(i))).collect();
        let first = store.trigger_start(&manual("a", at, &targets, 2)).await.unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(pending(store).await.len(), 1, "three plans are still missing");
        let second = store.trigger_start(&manual("b", at, &targets, 2)).await.unwrap();
        assert_eq!(second.len(), 2, "the missing ones, not those started");
        assert_eq!(pending(store).await.len(), 1, "as many missing as the limit: maybe more");
        let third = store.trigger_start(&manual("a", at, &targets, 2)).await.unwrap();
        assert_eq!(third.len(), 1);
        assert!(pending(store).await.is_empty());
        let mut scopes: Vec<Scope> = first.iter().chain(&second).chain(&third).map(|c| c.scope.clone()).collect();
        scopes.sort();
        assert_eq!(scopes, (0..5).map(scope).collect::<Vec<_>>());
    }
}

fn backfill(scopes: Option<Vec<Scope>>, rerun: bool) -> Backfill {
    Backfill::new(
        JOB,
        plan(0),
        plan(10),
        BackfillOptions {
            scopes,
            rerun,
            requested_by: "bob".into(),
        },
    )
}

fn cursor(minute: i64, i: usize) -> Option<BackfillCursor> {
    Some(BackfillCursor {
        plan_time: plan(minute),
        scope: scope(i),
    })
}

on_every_backend! {
    async fn backfill_progress_moves_once_per_step_and_ends_done_or_cancelled(db: TestDb) {
        let store = &*db.store;
        assert!(!store.tick_clock(JOB).await.unwrap().backfills_active);
        let stored = store
            .backfill_create(&backfill(Some(vec![scope(2), scope(1)]), false))
            .await
            .unwrap();
        assert_eq!(stored.scopes, Some(vec![scope(1), scope(2)]), "sorted");
        let read = store.backfill_get(stored.id).await.unwrap().expect("stored");
        assert_eq!(read, stored);
        assert_eq!((read.status, read.done, read.total, read.cursor.clone()), (BackfillStatus::Active, 0, None, None));
        assert!(store.tick_clock(JOB).await.unwrap().backfills_active);

        let step = |expected, cursor, handed_out, finished| BackfillAdvance {
            id: stored.id,
            expected,
            cursor,
            handed_out,
            total: 20,
            finished,
        };
        // Two replicas step from the same cursor: one moves it.
        assert!(store.backfill_advance(&step(None, cursor(0, 2), 2, false)).await.unwrap());
        assert!(!store.backfill_advance(&step(None, cursor(1, 1), 3, false)).await.unwrap());
        let moved = store.backfill_get(stored.id).await.unwrap().unwrap();
        assert_eq!((moved.cursor.clone(), moved.done, moved.total), (cursor(0, 2), 2, Some(20)));
        assert!(store.backfill_advance(&step(cursor(0, 2), cursor(9, 2), 18, true)).await.unwrap());
        let done = store.backfill_get(stored.id).await.unwrap().unwrap();
        assert_eq!((done.status, done.done), (BackfillStatus::Done, 20));
        assert!(done.updated_at >= done.created_at);
        assert!(!store.tick_clock(JOB).await.unwrap().backfills_active);
        assert!(!store.backfill_cancel(stored.id).await.unwrap(), "done: nothing to cancel");

        let second = store.backfill_create(&backfill(None, true)).await.unwrap();
        assert_eq!(second.scopes, None);
        assert_eq!(store.backfill_list(Some(JOB), true).await.unwrap(), vec![second.clone()]);
        assert_eq!(store.backfill_list(None, false).await.unwrap().len(), 2);
        assert!(store.backfill_cancel(second.id).await.unwrap());
        assert!(!store.backfill_cancel(second.id).await.unwrap());
        // A step begun before the cancel still counts what it handed out; it stays cancelled.
        let late = BackfillAdvance { id: second.id, ..step(None, cursor(0, 1), 1, true) };
        assert!(store.backfill_advance(&late).await.unwrap());
        let cancelled = store.backfill_get(second.id).await.unwrap().unwrap();
        assert_eq!((cancelled.status, cancelled.done), (BackfillStatus::Cancelled, 1));
        assert!(!store.backfill_advance(&step(cursor(9, 2), cursor(9, 3), 1, false)).await.unwrap(),
            "a done backfill never moves");
        assert!(store.backfill_list(Some(JOB), true).await.unwrap().is_empty());
        assert!(store.backfill_get(uuid::Uuid::now_v7()).await.unwrap().is_none());
    }
}

on_every_backend! {
    async fn a_rerun_makes_finished_plans_due_once_and_leaves_the_rest(db: TestDb) {
        let store = &*db.store;
        let claim = |plans: Vec<PlanClaim>| ClaimRequest {
            job: JOB,
            max_attempts: 1,
            runner_id: "a",
            stale_timeout: STALE,
            allow_stale_reentry: true,
            steal_not_after: None,
            plans,
        };
        // Minute 0 finished; minute 1 still running.
        let done = store.execution_claim(&claim(vec![PlanClaim::new(scope(1), plan(0))])).await.unwrap();
        let running = store.execution_claim(&claim(vec![PlanClaim::new(scope(1), plan(1))])).await.unwrap();
        let finish = |lease| SuccessWrite { lease, duration_ms: 1, rows_affected: 1, result: "{}".into() };
        store.execution_finish_success(&[finish(done[0].lease)]).await.unwrap();
        // Claiming a finished plan again does nothing: it has a row.
        assert!(store.execution_claim(&claim(vec![PlanClaim::new(scope(1), plan(0))])).await.unwrap().is_empty());

        actix_rt::time::sleep(Duration::from_millis(5)).await;
        let created = store.db_now().await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        let plans = vec![(scope(1), plan(0)), (scope(1), plan(1)), (scope(1), plan(2))];
        assert_eq!(store.execution_rerun(JOB, &plans, created, 2).await.unwrap(), 1, "only the finished row");
        let row = store.execution_get(done[0].lease.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.max_attempts), (Status::Failed, 3));
        assert_eq!(store.execution_get(running[0].lease.id).await.unwrap().unwrap().status, Status::Running);

        let rerun = store.execution_claim(&claim(vec![PlanClaim::new(scope(1), plan(0))])).await.unwrap();
        assert_eq!((rerun.len(), rerun[0].outcome, rerun[0].attempt), (1, ClaimOutcome::Replayed, 2));
        assert_eq!(rerun[0].lease.id, done[0].lease.id, "same row, same idempotency key");
        store.execution_finish_success(&[finish(rerun[0].lease)]).await.unwrap();
        // Finished after the backfill was created: a second step of it does not run it again.
        assert_eq!(store.execution_rerun(JOB, &plans, created, 2).await.unwrap(), 0);
        assert_eq!(store.execution_get(done[0].lease.id).await.unwrap().unwrap().status, Status::Success);
    }
}

on_every_backend! {
    async fn pruning_keeps_the_newest_scheduled_row_when_a_manual_run_is_newer(db: TestDb) {
        let store = &*db.store;
        let claim = |minute| ClaimRequest {
            job: JOB,
            max_attempts: 1,
            runner_id: "a",
            stale_timeout: STALE,
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![PlanClaim::new(scope(1), plan(minute))],
        };
        let finish = |lease| SuccessWrite { lease, duration_ms: 1, rows_affected: 1, result: "{}".into() };
        let old = store.execution_claim(&claim(0)).await.unwrap().remove(0);
        let newest = store.execution_claim(&claim(1)).await.unwrap().remove(0);
        let trigger = store
            .trigger_create(&Trigger::new(JOB, Some(scope(1)), TriggerOptions::default()))
            .await
            .unwrap();
        let manual_run = store
            .trigger_start(&manual("a", plan(2) + TimeDelta::milliseconds(1), &[(trigger.id, scope(1))], 1))
            .await
            .unwrap()
            .remove(0);
        store
            .execution_finish_success(&[finish(old.lease), finish(newest.lease), finish(manual_run.lease)])
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        let pruned = store.execution_prune(cronlease::store::PruneSet::Finished, cronlease::store::PruneJobs::All, Duration::ZERO, 100).await.unwrap();
        assert_eq!(pruned, 1, "only the older scheduled row");
        assert!(store.execution_get(old.lease.id).await.unwrap().is_none());
        assert!(store.execution_get(newest.lease.id).await.unwrap().is_some(), "planning still reads it");
        assert!(store.execution_get(manual_run.lease.id).await.unwrap().is_some());
        assert_eq!(store.execution_latest_plans(JOB).await.unwrap(), vec![(scope(1), plan(1))]);
    }
}
