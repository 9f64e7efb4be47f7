//! Calendar schedules as a user runs them: cron expressions in a time zone with the default
//! settings and real timers (`auto_tick` on), the database clock placed just before real DST
//! transitions, per-scope stagger, and a schedule changed between deploys.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, eventually, rows, scheduler, tenants};
use cronlease::{CatchUp, Execution, JobSpec, Scope, Status, Store, stagger_offset};

/// A scheduler as a user starts one: automatic ticks, default tick interval.
fn real(store: Arc<dyn Store>) -> cronlease::SchedulerBuilder {
    scheduler(store)
        .auto_tick(true)
        .shutdown_grace(Duration::from_millis(200))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The store of `db` seen through a clock that reads `target` now.
fn clock_at(db: &common::TestDb, target: DateTime<Utc>) -> Arc<dyn Store> {
    db.skewed(target - Utc::now() - db.base_skew)
}

/// Waits until `job` has a SUCCESS row for every plan time in `plans`.
async fn succeeded(
    store: &dyn Store,
    job: &str,
    plans: &[DateTime<Utc>],
    secs: u64,
) -> Vec<Execution> {
    eventually(secs, &format!("{job} to run {plans:?}"), || async {
        let rows = rows(store, job).await;
        plans
            .iter()
            .all(|p| {
                rows.iter()
                    .any(|r| r.plan_time == *p && r.status == Status::Success)
            })
            .then_some(rows)
    })
    .await
}

fn plan_times(rows: &[Execution]) -> Vec<DateTime<Utc>> {
    let mut plans: Vec<_> = rows.iter().map(|r| r.plan_time).collect();
    plans.sort();
    plans
}

on_every_backend! {
    async fn a_six_field_cron_job_runs_every_second_with_default_settings(db: TestDb) {
        let runs = Runs::default();
        let s = real(db.store.clone())
            .job(
                JobSpec::builder("every-second")
                    .cron("* * * * * *")
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let rows = eventually(15, "four plans to succeed", || async {
            let rows = rows(&*db.store, "every-second").await;
            (rows.iter().filter(|r| r.status == Status::Success).count() >= 4).then_some(rows)
        })
        .await;
        s.shutdown().await;
        let plans = plan_times(&rows);
        for plan in &plans {
            assert_eq!(plan.timestamp_subsec_millis(), 0, "whole seconds: {plan}");
        }
        for pair in plans.windows(2) {
            assert_eq!(pair[1] - pair[0], TimeDelta::seconds(1), "one plan per second: {plans:?}");
        }
        for row in rows.iter().filter(|r| r.status == Status::Success) {
            assert_eq!(row.attempt, 1, "{row:?}");
            let started = row.started_at.expect("started");
            assert!(started >= row.plan_time, "a plan never starts before its time: {row:?}");
        }
    }
}

on_every_backend! {
    async fn a_fixed_time_in_the_spring_forward_gap_runs_once_after_the_gap(db: TestDb) {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00:00Z, so 02:30 never
        // happens; its plan runs at 03:00 CEST. The database clock reads 00:59:57Z.
        let store = clock_at(&db, at("2026-03-29T00:59:57Z"));
        let runs = Runs::default();
        let s = real(store)
            .job(
                JobSpec::builder("nightly")
                    .cron("30 2 * * *")
                    .time_zone("Europe/Berlin")
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        // A job without history starts at its newest due plan (yesterday's 02:30 CET), then
        // wakes for the shifted plan by itself, three seconds later.
        let yesterday = at("2026-03-28T01:30:00Z");
        let shifted = at("2026-03-29T01:00:00Z");
        let rows = succeeded(&*db.store, "nightly", &[yesterday, shifted], 15).await;
        // Two more seconds: nothing else comes due (the next plan is 2026-03-30T00:30Z).
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        s.shutdown().await;
        let rows_after = common::rows(&*db.store, "nightly").await;
        assert_eq!(plan_times(&rows_after), vec![yesterday, shifted], "{rows:?}");
        let row = rows_after.iter().find(|r| r.plan_time == shifted).unwrap();
        // Stored timestamps are on the skewed clock: the attempt began at or after 01:00:00Z.
        assert!(row.started_at.unwrap() >= shifted, "{row:?}");
        assert_eq!(runs.len(), 2);
    }
}

on_every_backend! {
    async fn the_fall_back_overlap_runs_a_fixed_time_once_and_every_second_twice(db: TestDb) {
        // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00:00Z, so 02:00:00-02:59:59
        // happens twice. The database clock reads 00:59:56Z (02:59:56 CEST).
        let store = clock_at(&db, at("2026-10-25T00:59:56Z"));
        let fixed = Runs::default();
        let seconds = Runs::default();
        let s = real(store)
            .job(
                JobSpec::builder("at-two")
                    .cron("0 0 2 * * *")
                    .time_zone("Europe/Berlin")
                    .handler(fixed.ok_handler())
                    .build()
                    .unwrap(),
            )
            .job(
                // Every second of local hour 2: an interval pattern, so both halves fire.
                JobSpec::builder("hour-two")
                    .cron("* * 2 * * *")
                    .time_zone("Europe/Berlin")
                    .catch_up(CatchUp::EveryPlan {
                        window: Duration::from_secs(60),
                        max_plans_per_tick: 10,
                    })
                    .handler(seconds.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let second_half = at("2026-10-25T01:00:02Z"); // 02:00:02 CET
        let rows = succeeded(&*db.store, "hour-two", &[second_half], 20).await;
        s.shutdown().await;
        // The fixed 02:00:00 ran once, at its first occurrence (00:00:00Z, CEST), when the
        // scheduler started; 02:00:00 CET (01:00:00Z) was not run again.
        let fixed_rows = common::rows(&*db.store, "at-two").await;
        assert_eq!(plan_times(&fixed_rows), vec![at("2026-10-25T00:00:00Z")]);
        // The every-second job ran 02:59:5x CEST and then 02:00:0x CET: distinct, consecutive
        // UTC seconds across 01:00:00Z, each once.
        let plans = plan_times(&rows);
        assert!(plans.contains(&at("2026-10-25T00:59:59Z")), "{plans:?}");
        assert!(plans.contains(&at("2026-10-25T01:00:00Z")), "{plans:?}");
        for pair in plans.windows(2) {
            assert_eq!(pair[1] - pair[0], TimeDelta::seconds(1), "{plans:?}");
        }
        assert_eq!(seconds.len(), plans.len(), "each plan ran once");
    }
}

on_every_backend! {
    async fn stagger_starts_each_scope_at_its_offset_after_the_plan(db: TestDb) {
        let job = "staggered";
        let window = Duration::from_secs(3);
        let scopes = tenants(12);
        let runs = Runs::default();
        let s = real(db.store.clone())
            .job(
                JobSpec::builder(job)
                    .cron("*/5 * * * * *")
                    .stagger("3s")
                    .scopes(scopes.clone())
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        // Let one full plan pass for every scope after the first boundary.
        let rows = eventually(20, "two plans of every scope", || async {
            let rows = rows(&*db.store, job).await;
            scopes
                .iter()
                .all(|scope| {
                    rows.iter()
                        .filter(|r| &r.scope == scope && r.status == Status::Success)
                        .count()
                        >= 2
                })
                .then_some(rows)
        })
        .await;
        s.shutdown().await;
        let offsets: Vec<Duration> = scopes.iter().map(|sc| stagger_offset(job, sc, window)).collect();
        assert!(
            offsets.iter().any(|o| *o >= Duration::from_secs(1)),
            "the scopes' offsets spread over the window: {offsets:?}"
        );
        for row in rows.iter().filter(|r| r.status == Status::Success) {
            let offset = stagger_offset(job, &row.scope, window);
            let due = row.plan_time + TimeDelta::from_std(offset).unwrap();
            let started = row.started_at.unwrap();
            // The first plan of a scope without history is run at once (its newest due
            // plan); every later one waits for its offset.
            let newest_first = rows
                .iter()
                .filter(|r| r.scope == row.scope)
                .map(|r| r.plan_time)
                .min()
                == Some(row.plan_time);
            if !newest_first {
                assert!(
                    started >= due,
                    "scope {} plan {} started at {started}, before its due time {due}",
                    row.scope,
                    row.plan_time
                );
            }
        }
    }
}

on_every_backend! {
    async fn a_schedule_changed_between_deploys_runs_only_new_plan_times_once(db: TestDb) {
        // First deploy: every second. Second deploy: every other second, catching up.
        let job = "reshaped";
        let first = Runs::default();
        let s = real(db.store.clone())
            .job(
                JobSpec::builder(job)
                    .every("1s")
                    .handler(first.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        eventually(10, "three plans of the first deploy", || async {
            (first.len() >= 3).then_some(())
        })
        .await;
        s.shutdown().await;
        let before = rows(&*db.store, job).await;
        let last_old = before.iter().map(|r| r.plan_time).max().unwrap();
        let second = Runs::default();
        let s = real(db.store.clone())
            .job(
                JobSpec::builder(job)
                    .cron("*/2 * * * * *")
                    .catch_up(CatchUp::EveryPlan {
                        window: Duration::from_secs(3600),
                        max_plans_per_tick: 10,
                    })
                    .handler(second.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        eventually(10, "three plans of the second deploy", || async {
            (second.len() >= 3).then_some(())
        })
        .await;
        s.shutdown().await;
        // Every plan time the second deploy created is one of its own, after the old ones; a
        // plan time it ran at or before `last_old` can only be an old plan left unfinished at
        // shutdown (retried until it ends, like every started plan).
        let unfinished: Vec<_> = before
            .iter()
            .filter(|r| r.status != Status::Success)
            .map(|r| r.plan_time)
            .collect();
        for (_, plan, _) in second.all() {
            if plan <= last_old {
                assert!(unfinished.contains(&plan), "an old plan time ran again: {plan}");
            } else {
                assert_eq!(plan.timestamp() % 2, 0, "not a plan of the new schedule: {plan}");
            }
        }
        // No plan time ran twice, across both deploys.
        let mut ran: Vec<_> = first.all().into_iter().chain(second.all()).map(|r| r.1).collect();
        let total = ran.len();
        ran.sort();
        ran.dedup();
        assert_eq!(ran.len(), total, "a plan time ran twice: {:?}", rows(&*db.store, job).await);
    }
}

#[actix::test]
async fn invalid_calendar_settings_fail_at_build_naming_the_field() {
    let handler = Runs::default();
    let build = |b: cronlease::JobSpecBuilder| {
        b.handler(handler.ok_handler())
            .build()
            .unwrap_err()
            .to_string()
    };
    let err = build(JobSpec::builder("j").cron("0 25 * * *"));
    assert!(err.contains("the hour field `25`"), "{err}");
    let err = build(
        JobSpec::builder("j")
            .cron("0 3 * * *")
            .time_zone("Europe/Berlinn"),
    );
    assert!(err.contains("unknown time zone `Europe/Berlinn`"), "{err}");
    let err = build(JobSpec::builder("j").every("1d").time_zone("Europe/Berlin"));
    assert!(err.contains("applies to cron schedules"), "{err}");
    let err = build(JobSpec::builder("j").every("0 3 * * *"));
    assert!(err.contains("looks like a cron expression"), "{err}");
    let err = build(JobSpec::builder("j").every("1M"));
    assert!(err.contains(".cron(\"0 0 1 * *\")"), "{err}");
    let err = build(JobSpec::builder("j").cron("0 * * * *").offset("5m"));
    assert!(
        err.contains("an offset applies to a fixed cadence"),
        "{err}"
    );
    let err = build(JobSpec::builder("j").every("15m").offset("20m"));
    assert!(
        err.contains("offset (20m) must be shorter than the cadence (15m)"),
        "{err}"
    );
    let err = build(JobSpec::builder("j").cron("@daily").stagger("2d"));
    assert!(err.contains("stagger (2d) must be at most 1d"), "{err}");
    let err = build(JobSpec::builder("j").cron("@daily").stagger("soon"));
    assert!(err.contains("cannot parse stagger `soon`"), "{err}");
    // The last schedule given wins.
    let spec = JobSpec::builder("j")
        .cron("0 25 * * *")
        .every("5m")
        .handler(handler.ok_handler())
        .build()
        .unwrap();
    assert_eq!(spec.schedule().unwrap().to_string(), "every 5m");
}

#[actix::test]
async fn previews_list_plans_in_utc_and_local_time_with_stagger() {
    let handler = Runs::default();
    let spec = JobSpec::builder("report")
        .cron("0 3 * * *")
        .time_zone("America/New_York")
        .stagger("10m")
        .handler(handler.ok_handler())
        .build()
        .unwrap();
    let after = at("2026-11-29T12:00:00Z");
    let next = spec.upcoming(after, 3);
    let utc: Vec<_> = next.iter().map(|p| p.plan_time).collect();
    assert_eq!(
        utc,
        vec![
            at("2026-11-30T08:00:00Z"),
            at("2026-12-01T08:00:00Z"),
            at("2026-12-02T08:00:00Z")
        ]
    );
    assert_eq!(next[0].local.to_rfc3339(), "2026-11-30T03:00:00-05:00");
    assert_eq!(next[0].due_at, next[0].plan_time);
    let scope = Scope::new("tenant", "7");
    let offset = stagger_offset("report", &scope, Duration::from_secs(600));
    let scoped = spec.upcoming_for(&scope, after, 1);
    assert_eq!(
        scoped[0].plan_time, next[0].plan_time,
        "the identity is unchanged"
    );
    assert_eq!(
        scoped[0].due_at,
        next[0].plan_time + TimeDelta::from_std(offset).unwrap()
    );
    // Down from Friday noon to Monday noon: LatestOnly runs Monday's 03:00 only.
    let preview = spec.catch_up_preview(at("2026-11-27T17:00:00Z"), at("2026-11-30T17:00:00Z"));
    assert_eq!(preview.run, vec![at("2026-11-30T08:00:00Z")]);
    assert_eq!(preview.skipped, 2);
    assert_eq!(
        preview.skipped_span,
        Some((at("2026-11-28T08:00:00Z"), at("2026-11-29T08:00:00Z")))
    );
}
