//! Planning through the public API: the database clock, LatestOnly, EveryPlan, the planner hook,
//! and the cost of a tick where nothing is due.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{CountingStore, Runs, SlowClockSends, eventually, rows, scheduler, settled, tenants};
use cronlease::store::{ClaimRequest, PlanClaim, SuccessWrite};
use cronlease::{CatchUp, JobSpec, OverlapPolicy, Scope, Status, floor_plan};

const HOUR: Duration = Duration::from_secs(3600);

on_every_backend! {
    async fn plans_follow_the_database_clock_not_the_runner_clock(db: TestDb) {
        // The database clock is an hour ahead of this runner's clock.
        let store = db.skewed(TimeDelta::hours(1));
        let runs = Runs::default();
        let s = scheduler(store.clone())
            .job(JobSpec::builder("skew").every("1m").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.won, 1);
        let db_now = store.db_now().await.unwrap();
        let rows = settled(&*db.store, "skew", 1).await;
        let expected = floor_plan(report.db_now, Duration::from_secs(60));
        assert_eq!(rows[0].plan_time, expected);
        let local = Utc::now() + db.base_skew;
        assert!(rows[0].plan_time > local + TimeDelta::minutes(50), "planned an hour ahead of the local clock");
        assert!(db_now - rows[0].plan_time < TimeDelta::minutes(2));
        // Lease stamps come from the database clock too.
        assert!(rows[0].started_at.unwrap() > local + TimeDelta::minutes(50));
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_tick_woken_for_a_plan_reads_the_clock_at_or_after_it(db: TestDb) {
        // Every other clock read reaches the database 300 ms after it was sent. A wake-up
        // counted from the moment such a read was sent comes 300 ms early: the next read, a
        // prompt one, would find the plan it was woken for not due yet.
        let store = Arc::new(SlowClockSends {
            inner: db.store.clone(),
            delay: Duration::from_millis(300),
            calls: Default::default(),
            clocks: Mutex::default(),
        });
        let runs = Runs::default();
        let s = scheduler(store.clone())
            .auto_tick(true)
            .job(JobSpec::builder("prompt").every("1s").handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        eventually(30, "six plans to run", || async { (runs.len() >= 6).then_some(()) }).await;
        s.shutdown().await;
        let clocks = store.clocks.lock().unwrap().clone();
        // The first tick came at start, anywhere in a second; the others were woken by a plan
        // boundary and read the clock within the 300 ms delay (and the tick's own work) after it.
        let early: Vec<_> = clocks[1..]
            .iter()
            .filter(|t| t.timestamp_subsec_millis() >= 600)
            .collect();
        assert!(clocks.len() >= 6, "{clocks:?}");
        assert!(early.is_empty(), "clock reads up to 400 ms before a plan boundary: {early:?} of {clocks:?}");
    }
}

on_every_backend! {
    async fn plan_times_sit_on_cadence_boundaries(db: TestDb) {
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("bounds").every("15m").scopes(tenants(3)).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        s.tick_now().await.unwrap();
        for row in settled(&*db.store, "bounds", 3).await {
            assert_eq!(row.plan_time.timestamp_millis() % (15 * 60 * 1000), 0);
        }
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn latest_only_runs_the_latest_plan_once(db: TestDb) {
        let runs = Runs::default();
        let spec = || JobSpec::builder("latest").every("1h").scopes(tenants(3)).handler(runs.ok_handler()).build().unwrap();
        // A runner five hours in the past leaves history behind.
        let past = scheduler(db.skewed(TimeDelta::hours(-5))).job(spec()).start().await.unwrap();
        assert_eq!(past.tick_now().await.unwrap().won, 3);
        settled(&*db.store, "latest", 3).await;
        past.shutdown().await;

        let s = scheduler(db.store.clone()).job(spec()).start().await.unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.won, 3, "only the latest plan: missed plans are skipped");
        let all = settled(&*db.store, "latest", 6).await;
        let latest = floor_plan(report.db_now, HOUR);
        assert_eq!(all.iter().filter(|r| r.plan_time == latest).count(), 3);
        assert_eq!(all.len(), 6);
        // Finished: ticking again (here or on a fresh runner) is a no-op.
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        let fresh = scheduler(db.store.clone()).job(spec()).start().await.unwrap();
        let report = fresh.tick_now().await.unwrap();
        assert_eq!((report.planned, report.started()), (0, 0));
        assert_eq!(runs.len(), 6);
        s.shutdown().await;
        fresh.shutdown().await;
    }
}

on_every_backend! {
    async fn every_plan_catches_up_in_capped_ascending_steps(db: TestDb) {
        let runs = Runs::default();
        let spec = |window: Duration| {
            // Which plans each tick claims, so a scope's catch-up plans run at once (AllowAll);
            // under the default Skip they would run one at a time (tests/scheduler_overlap.rs).
            JobSpec::builder("catchup")
                .every("1h")
                .overlap(OverlapPolicy::AllowAll)
                .catch_up(CatchUp::EveryPlan { window, max_plans_per_tick: 2 })
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let past = scheduler(db.skewed(TimeDelta::hours(-5))).job(spec(10 * HOUR)).start().await.unwrap();
        past.tick_now().await.unwrap();
        settled(&*db.store, "catchup", 1).await;
        past.shutdown().await;

        let s = scheduler(db.store.clone()).job(spec(10 * HOUR)).start().await.unwrap();
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let hours_ago = |h: i64| latest - TimeDelta::hours(h);
        // Oldest first, two per tick; handlers of one tick run concurrently, so compare sets.
        let expected_per_tick = vec![vec![hours_ago(4), hours_ago(3)], vec![hours_ago(2), hours_ago(1)], vec![latest], vec![]];
        for expected in expected_per_tick {
            let before = runs.len();
            let report = s.tick_now().await.unwrap();
            assert_eq!(report.won, expected.len());
            s.wait_idle(Duration::from_secs(10)).await;
            let mut plans: Vec<DateTime<Utc>> = runs.all()[before..].iter().map(|r| r.1).collect();
            plans.sort();
            assert_eq!(plans, expected, "every missed plan, ascending");
        }
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn every_plan_never_goes_back_further_than_its_window(db: TestDb) {
        let runs = Runs::default();
        let spec = || {
            // Which plans one tick claims: the window's plans of the scope at once (AllowAll).
            JobSpec::builder("window")
                .every("1h")
                .overlap(OverlapPolicy::AllowAll)
                .catch_up(CatchUp::EveryPlan { window: Duration::from_secs(150 * 60), max_plans_per_tick: 10 })
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let past = scheduler(db.skewed(TimeDelta::hours(-6))).job(spec()).start().await.unwrap();
        past.tick_now().await.unwrap();
        settled(&*db.store, "window", 1).await;
        past.shutdown().await;
        let s = scheduler(db.store.clone()).job(spec()).start().await.unwrap();
        let report = s.tick_now().await.unwrap();
        let now = report.db_now;
        assert!(report.won == 2 || report.won == 3, "plans within 2.5 h: {report:?}");
        settled(&*db.store, "window", 1 + report.won).await;
        for (_, plan, _) in runs.all().iter().skip(1) {
            assert!(*plan >= now - TimeDelta::minutes(150));
        }
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn the_planner_hook_replaces_cadence_planning(db: TestDb) {
        let runs = Runs::default();
        type Seen = Vec<(String, Option<DateTime<Utc>>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let base = floor_plan(Utc::now(), HOUR) - TimeDelta::hours(3);
        let seen_in_hook = seen.clone();
        let spec = JobSpec::builder("hooked")
            .scopes([Scope::new("t", "a"), Scope::new("t", "broken"), Scope::new("t", "idle")])
            .catch_up(CatchUp::EveryPlan { window: 24 * HOUR, max_plans_per_tick: 5 })
            // Which plans the hook yields, claimed in one tick (AllowAll: a scope's plans at once).
            .overlap(OverlapPolicy::AllowAll)
            .planner(move |scope, _db_now, newest| {
                seen_in_hook.lock().unwrap().push((scope.id.clone(), newest));
                match scope.id.as_str() {
                    "a" => Ok(vec![base + TimeDelta::hours(1), base, base + TimeDelta::days(2)]),
                    "broken" => Err("no data source".into()),
                    _ => Ok(vec![]),
                }
            })
            .handler(runs.ok_handler())
            .build()
            .unwrap();
        let s = scheduler(db.store.clone()).job(spec).start().await.unwrap();
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.won, 2, "future plans wait; {report:?}");
        assert_eq!(report.job_errors, 1, "only the broken scope is skipped");
        let got = settled(&*db.store, "hooked", 2).await;
        assert!(got.iter().all(|r| r.scope.id == "a"));
        let mut order: Vec<_> = runs.all().iter().map(|r| r.1).collect();
        order.sort();
        assert_eq!(order, vec![base, base + TimeDelta::hours(1)]);
        // Second tick: the hook learns the newest plan, and repeats are no-ops.
        let report = s.tick_now().await.unwrap();
        assert_eq!(report.started(), 0);
        let newest_seen = seen.lock().unwrap().iter().rev().find(|(id, _)| id == "a").unwrap().1;
        assert_eq!(newest_seen, Some(base + TimeDelta::hours(1)));
        s.shutdown().await;
    }
}

/// Statements a tick issues with `scopes` scopes whose plans already have rows.
async fn idle_tick_statements(db: &common::TestDb, job: &str, scopes: usize) -> (usize, usize) {
    idle_tick_statements_of(db, job, scopes, JobSpec::builder(job).every("1h")).await
}

/// The same for a job built from `spec` (an hourly schedule of any kind).
async fn idle_tick_statements_of(
    db: &common::TestDb,
    job: &str,
    scopes: usize,
    spec: cronlease::JobSpecBuilder,
) -> (usize, usize) {
    // Every scope's latest plan already succeeded.
    let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
    let plans: Vec<_> = tenants(scopes)
        .into_iter()
        .map(|s| PlanClaim::new(s, latest))
        .collect();
    let mut claimed = Vec::new();
    for batch in plans.chunks(1_000) {
        claimed.extend(
            db.store
                .execution_claim(&ClaimRequest {
                    job,
                    max_attempts: 3,
                    runner_id: "seed",
                    stale_timeout: HOUR,
                    allow_stale_reentry: true,
                    steal_not_after: None,
                    plans: batch.to_vec(),
                })
                .await
                .unwrap(),
        );
    }
    let writes: Vec<_> = claimed
        .iter()
        .map(|c| SuccessWrite {
            lease: c.lease,
            duration_ms: 1,
            rows_affected: 0,
            result: "{}".into(),
        })
        .collect();
    // In the runtime's batch size: one 10,000-row statement can outlast the server-side
    // deadline on a loaded machine, and the seed is not what this test measures.
    for batch in writes.chunks(1_000) {
        db.store.execution_finish_success(batch).await.unwrap();
    }

    let counting = CountingStore::new(db.store.clone());
    let s = scheduler(counting.clone())
        .job(
            spec.scopes(tenants(scopes))
                .handler(Runs::default().ok_handler())
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    counting.take();
    let first = s.tick_now().await.unwrap();
    let first_statements = counting.take();
    let second = s.tick_now().await.unwrap();
    let second_statements = counting.take();
    assert_eq!((first.planned, second.planned), (0, 0));
    s.shutdown().await;
    (first_statements, second_statements)
}

on_every_backend! {
    async fn an_idle_tick_costs_the_same_for_ten_or_ten_thousand_scopes(db: TestDb) {
        let small = idle_tick_statements(&db, "idle-small", 10).await;
        let large = idle_tick_statements(&db, "idle-large", 10_000).await;
        assert_eq!(small, large, "statements per tick do not grow with scopes");
        // Clock, sweep, retry candidates; the first tick also reads the newest plans once.
        assert_eq!(large, (4, 3));
        assert_eq!(rows(&*db.store, "idle-large").await.iter().filter(|r| r.status == Status::Success).count(), 10_000);
    }
}

on_every_backend! {
    async fn an_idle_tick_of_a_staggered_cron_job_costs_the_same_statements(db: TestDb) {
        // Hourly in Berlin (whole-hour offsets, so the plans are the UTC hours), spread over
        // ten minutes; the database clock sits at half past the hour, so every scope is due
        // for the hour's plan, which already ran.
        let cron = |job: &str| {
            JobSpec::builder(job)
                .cron("0 * * * *")
                .time_zone("Europe/Berlin")
                .stagger("10m")
        };
        let small = idle_tick_statements_of(&db, "cron-small", 10, cron("cron-small")).await;
        let large = idle_tick_statements_of(&db, "cron-large", 10_000, cron("cron-large")).await;
        assert_eq!(small, large, "statements per tick do not grow with scopes");
        assert_eq!(large, (4, 3), "the same statements as a cadence job");
    }
}

on_every_backend! {
    async fn an_idle_tick_still_sees_new_scopes_and_lifted_pauses(db: TestDb) {
        // A tick that finds nothing due does not walk the scopes again until one's next plan
        // comes due, unless the provider's answer or the pauses changed: each change below is
        // planned by the very next tick.
        let listed: Arc<Mutex<Vec<Scope>>> = Arc::new(Mutex::new(tenants(2)));
        let provided = listed.clone();
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("idle-watch")
                    .every("1h")
                    .scopes(cronlease::Scopes::provider(move || {
                        let scopes = provided.lock().unwrap().clone();
                        async move { Ok(scopes) }
                    }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 2);
        settled(&*db.store, "idle-watch", 2).await;
        // Idle: the first finds nothing due and remembers it, the second relies on it.
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        assert_eq!(s.tick_now().await.unwrap().planned, 0);

        // A scope added.
        listed.lock().unwrap().push(Scope::new("tenant", "new"));
        assert_eq!(s.tick_now().await.unwrap().won, 1, "the added scope");
        settled(&*db.store, "idle-watch", 3).await;
        assert_eq!(s.tick_now().await.unwrap().planned, 0);

        // A scope renamed in place: the list has the same length.
        listed.lock().unwrap()[0] = Scope::new("tenant", "renamed");
        assert_eq!(s.tick_now().await.unwrap().won, 1, "the renamed scope");
        settled(&*db.store, "idle-watch", 4).await;
        assert_eq!(s.tick_now().await.unwrap().planned, 0);

        // A scope added while paused waits; the next tick after the resume runs it.
        let paused = Scope::new("tenant", "paused");
        db.store
            .pause_set(&cronlease::Pause::new("idle-watch", Some(paused.clone()), "ops", "test"))
            .await
            .unwrap();
        listed.lock().unwrap().push(paused.clone());
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        assert!(db.store.pause_clear("idle-watch", Some(&paused)).await.unwrap());
        assert_eq!(s.tick_now().await.unwrap().won, 1, "the resumed scope");
        let all = settled(&*db.store, "idle-watch", 5).await;
        assert!(all.iter().all(|r| r.status == Status::Success));
        assert_eq!(runs.len(), 5);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_shared_provider_list_is_planned_without_copies_and_its_changes_are_seen(db: TestDb) {
        // A provider that keeps its list and hands out the same Arc until the list changes: the
        // new list is planned by the very next tick, the same list again plans nothing twice.
        let listed: Arc<Mutex<Arc<[Scope]>>> = Arc::new(Mutex::new(tenants(2).into()));
        let provided = listed.clone();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let called = calls.clone();
        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("shared-list")
                    .every("1h")
                    .scopes(cronlease::Scopes::shared_provider(move || {
                        called.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let scopes = provided.lock().unwrap().clone();
                        async move { Ok(scopes) }
                    }))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 2);
        settled(&*db.store, "shared-list", 2).await;
        assert_eq!(s.tick_now().await.unwrap().planned, 0);

        let mut grown = tenants(2);
        grown.push(Scope::new("tenant", "new"));
        *listed.lock().unwrap() = grown.clone().into();
        assert_eq!(s.tick_now().await.unwrap().won, 1, "the added scope");
        settled(&*db.store, "shared-list", 3).await;
        // The same scopes in a new list: walked, nothing due.
        *listed.lock().unwrap() = grown.into();
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        assert_eq!(s.tick_now().await.unwrap().planned, 0);
        assert_eq!(runs.len(), 3);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 5, "called once per tick");
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn a_catch_up_larger_than_a_tick_runs_every_plan_once_across_backlog_and_walks(db: TestDb) {
        // 4,000 scopes seven hourly plans behind, five plans per scope per tick: the first
        // tick finds 20,000 due and sends 16,000; the next sends the 4,000 it left over without
        // walking the scopes; the one after walks again and finds each scope's last two plans.
        let runs = Runs::default();
        let spec = || {
            JobSpec::builder("deep-catchup")
                .every("1h")
                .scopes(tenants(4_000))
                .overlap(OverlapPolicy::AllowAll)
                .catch_up(CatchUp::EveryPlan { window: 10 * HOUR, max_plans_per_tick: 5 })
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let past = scheduler(db.skewed(TimeDelta::hours(-7))).max_concurrent_executions(20_000).job(spec()).start().await.unwrap();
        assert_eq!(past.tick_now().await.unwrap().won, 4_000);
        settled(&*db.store, "deep-catchup", 4_000).await;
        past.shutdown().await;

        let s = scheduler(db.store.clone()).max_concurrent_executions(20_000).job(spec()).start().await.unwrap();
        let mut reports = Vec::new();
        for _ in 0..4 {
            let report = s.tick_now().await.unwrap();
            reports.push((report.planned, report.won, report.deferred));
            s.wait_idle(Duration::from_secs(30)).await;
        }
        assert_eq!(reports, vec![(20_000, 16_000, 4_000), (4_000, 4_000, 0), (8_000, 8_000, 0), (0, 0, 0)]);
        let all = settled(&*db.store, "deep-catchup", 32_000).await;
        assert_eq!(all.len(), 32_000, "eight plans per scope, each once");
        assert!(all.iter().all(|r| r.status == Status::Success && r.attempt == 1));
        let latest = floor_plan(db.store.db_now().await.unwrap(), HOUR);
        let mut per_scope: std::collections::HashMap<&str, Vec<DateTime<Utc>>> = Default::default();
        for row in &all {
            per_scope.entry(row.scope.id.as_str()).or_default().push(row.plan_time);
        }
        let expected: Vec<DateTime<Utc>> = (0..8).rev().map(|h| latest - TimeDelta::hours(h)).collect();
        for (scope, mut plans) in per_scope {
            plans.sort();
            assert_eq!(plans, expected, "scope {scope}: every hourly plan, none twice");
        }
        assert_eq!(runs.len(), 32_000, "each plan ran once");
        s.shutdown().await;
    }
}
