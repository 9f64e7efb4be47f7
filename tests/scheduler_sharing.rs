//! Replicas ticking by themselves share a job's scopes: each offers at once only the due plans
//! of the scopes it owns among the live runners, and offers another runner's plans only when
//! they still have no row at the handoff (`plan/sharing.rs`). Played with real timers.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, eventually, rows, scheduler, tenants};
use cronlease::store::RunnerRegistration;
use cronlease::{JobDescription, JobSpec, Scopes, Status};

const SCOPES: usize = 40;

fn hourly(runs: &Runs) -> JobSpec {
    JobSpec::builder("shared")
        .every("1h")
        .scopes(Scopes::Static(tenants(SCOPES).into()))
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

/// A runner registered for the job, live for hours, that never ticks: frozen, or killed just
/// after it refreshed.
async fn register_frozen_runner(store: &dyn cronlease::Store, spec: &JobSpec) {
    let frozen = RunnerRegistration {
        id: "frozen".into(),
        host: "elsewhere".into(),
        pid: 1,
        version: "0.0.1".into(),
        refresh_interval: Duration::from_secs(3600),
        starting: true,
    };
    store
        .runner_register(&frozen, &[JobDescription::of(spec)])
        .await
        .unwrap();
}

on_every_backend! {
    async fn plans_of_a_frozen_owner_are_taken_over_at_the_handoff(db: TestDb) {
        let runs = Runs::default();
        let spec = hourly(&runs);
        register_frozen_runner(&*db.store, &spec).await;
        let s = scheduler(db.store.clone())
            .runner_id("live")
            .auto_tick(true)
            .tick_interval(Duration::from_millis(200))
            .job(spec)
            .start()
            .await
            .unwrap();
        let done = eventually(30, "every scope's plan SUCCESS", || async {
            let rows = rows(&*db.store, "shared").await;
            (rows.len() == SCOPES && rows.iter().all(|r| r.status == Status::Success))
                .then_some(rows)
        })
        .await;
        s.shutdown().await;
        assert_eq!(runs.len(), SCOPES, "each plan ran once");
        assert!(done.iter().all(|r| r.runner_id == "live"));
        // The frozen runner's share started only after the handoff, the live runner's own at its
        // first tick: without sharing every plan would start in that one tick.
        let starts: Vec<DateTime<Utc>> = done.iter().filter_map(|r| r.started_at).collect();
        let (first, last) = (starts.iter().min().unwrap(), starts.iter().max().unwrap());
        assert!(
            *last - *first >= TimeDelta::milliseconds(1_900),
            "the frozen runner's plans waited for the handoff: {first} .. {last}"
        );
        let early = starts.iter().filter(|t| **t - *first < TimeDelta::seconds(1)).count();
        assert!(
            (5..SCOPES - 5).contains(&early),
            "about half the scopes are the live runner's own: {early} of {SCOPES} started at once"
        );
    }
}

on_every_backend! {
    async fn a_tick_driven_by_hand_offers_every_due_plan(db: TestDb) {
        let runs = Runs::default();
        let spec = hourly(&runs);
        register_frozen_runner(&*db.store, &spec).await;
        let s = scheduler(db.store.clone())
            .runner_id("manual")
            .job(spec)
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        s.shutdown().await;
        assert_eq!((report.won, report.set_aside), (SCOPES, 0), "{report:?}");
    }
}

on_every_backend! {
    async fn replicas_each_run_the_scopes_they_own(db: TestDb) {
        let runs = Runs::default();
        let spec = || {
            JobSpec::builder("shared")
                .every("1s")
                .scopes(Scopes::Static(tenants(SCOPES).into()))
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let mut replicas = Vec::new();
        for i in 0..3 {
            replicas.push(
                scheduler(db.store.clone())
                    .runner_id(format!("replica-{i}"))
                    .auto_tick(true)
                    .tick_interval(Duration::from_millis(500))
                    .job(spec())
                    .start()
                    .await
                    .unwrap(),
            );
        }
        // Every replica has registered before the plans counted here came due.
        let counted_from = eventually(10, "a first run", || async {
            runs.all().first().map(|r| r.1)
        })
        .await
            + TimeDelta::seconds(3);
        let runners_per_scope = eventually(60, "four plans of every scope after the start", || async {
            let rows = rows(&*db.store, "shared").await;
            let mut per_scope: HashMap<String, Vec<String>> = HashMap::new();
            for row in rows.iter().filter(|r| r.plan_time >= counted_from && r.status == Status::Success) {
                per_scope.entry(row.scope.id.clone()).or_default().push(row.runner_id.clone());
            }
            (per_scope.len() == SCOPES && per_scope.values().all(|r| r.len() >= 4)).then_some(per_scope)
        })
        .await;
        for s in replicas {
            s.shutdown().await;
        }
        // No plan that ran is in the skipped-plan ledger: a replica does not record skips of
        // the scopes it does not own (it has not seen their claims yet).
        let ran = rows(&*db.store, "shared").await;
        for span in db.store.skip_list(Some("shared"), 10_000).await.unwrap() {
            let covered = ran.iter().find(|row| {
                span.scope.as_ref().is_none_or(|s| *s == row.scope)
                    && span.from <= row.plan_time
                    && row.plan_time <= span.to
            });
            assert!(covered.is_none(), "{span:?} covers a plan that has a row: {covered:?}");
        }
        // Each plan ran once.
        let mut seen = std::collections::HashSet::new();
        for run in runs.all() {
            assert!(seen.insert((run.0.clone(), run.1)), "{run:?} ran twice");
        }
        // Each scope's plans ran on its owner (a replica's tick delayed past the handoff on a
        // loaded machine may leave one to another), and every replica owns scopes.
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (scope, runners) in &runners_per_scope {
            let mut counts: HashMap<&String, usize> = HashMap::new();
            for runner in runners {
                *counts.entry(runner).or_default() += 1;
            }
            let (owner, most) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
            assert!(
                most * 4 >= runners.len() * 3,
                "scope {scope} ran on {runners:?}: no runner ran most of its plans"
            );
            *owners.entry(owner.clone()).or_default() += 1;
        }
        assert_eq!(owners.len(), 3, "every replica owns scopes: {owners:?}");
    }
}
