//! "Why didn't it run?" played as operators meet it: a runner down for a while, a paused job, a
//! plan not due yet, a time off the schedule; and the skipped-plan ledger staying a handful of
//! rows when many scopes miss a day.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Runs, eventually, rows, scheduler, tenants};
use cronlease::{CatchUp, JobSpec, Scheduler, Scope, SkipReason, Status, Store, Why, floor_plan};

const SECOND: Duration = Duration::from_secs(1);

/// A replica as a user starts one: automatic ticks, default settings but a short grace.
async fn replica(store: Arc<dyn Store>, name: &str, spec: JobSpec) -> Scheduler {
    scheduler(store)
        .auto_tick(true)
        .runner_id(name)
        .job(spec)
        .start()
        .await
        .unwrap()
}

fn every_second(job: &str, runs: &Runs) -> JobSpec {
    JobSpec::builder(job)
        .every("1s")
        .scopes(tenants(2))
        .catch_up(CatchUp::LatestOnly)
        .handler(runs.ok_handler())
        .build()
        .unwrap()
}

/// The newest plan time stored for `job`.
async fn newest_plan(store: &dyn Store, job: &str) -> DateTime<Utc> {
    rows(store, job)
        .await
        .iter()
        .map(|r| r.plan_time)
        .max()
        .unwrap()
}

on_every_backend! {
    async fn why_names_the_catch_up_skip_after_a_downtime_and_the_pause_after_a_resume(db: TestDb) {
        let job = "why-downtime";
        let runs = Runs::default();
        let tenant = Scope::new("tenant", "0");
        let first = replica(db.store.clone(), "a", every_second(job, &runs)).await;
        eventually(10, "a few plans before the downtime", || async {
            (runs.len() >= 4).then_some(())
        })
        .await;
        first.shutdown().await;
        let before = newest_plan(&*db.store, job).await;
        // Nobody ticks the job for three seconds.
        actix_rt::time::sleep(3 * SECOND).await;
        let second = replica(db.store.clone(), "b", every_second(job, &runs)).await;
        let after = eventually(10, "the first plan after the downtime to succeed", || async {
            let rows = rows(&*db.store, job).await;
            rows.iter()
                .filter(|r| r.plan_time > before && r.status == Status::Success && r.scope == tenant)
                .map(|r| r.plan_time)
                .min()
        })
        .await;
        assert!(after - before >= TimeDelta::seconds(3), "{before} .. {after}: nothing was missed");

        // A missed plan: skipped by LatestOnly, recorded once for both scopes.
        let missed = before + TimeDelta::seconds(1);
        let why = second.why(job, &tenant, missed).await.unwrap();
        let Why::Skipped(span) = &why else { panic!("expected a skip, got {why:?}") };
        assert_eq!(span.reason, SkipReason::LatestOnly);
        assert!(span.from <= missed && missed <= span.to, "{span:?}");
        assert!(span.plans.unwrap() >= 2, "{span:?}");
        assert!(why.describe().contains("latest_only"), "{}", why.describe());
        let ledger = second.skipped(Some(job), 10).await.unwrap();
        assert!(
            ledger.len() <= 2 && ledger.iter().all(|s| s.reason == SkipReason::LatestOnly),
            "{ledger:?}"
        );

        // The plan run after the downtime has its row; a plan to come is not due; a time off
        // the schedule is named as such.
        let why = second.why(job, &tenant, after).await.unwrap();
        assert!(matches!(&why, Why::Ran(row) if row.status == Status::Success), "{why:?}");
        let future = floor_plan(db.store.db_now().await.unwrap(), SECOND) + TimeDelta::hours(1);
        assert_eq!(second.why(job, &tenant, future).await.unwrap(), Why::NotDueYet { due_at: future });
        let off = after + TimeDelta::milliseconds(500);
        assert!(matches!(
            second.why(job, &tenant, off).await.unwrap(),
            Why::NotAPlanTime { previous: Some(p), next: Some(n) } if p == after && n == after + TimeDelta::seconds(1)
        ));

        // Pause for three seconds: while it holds, a due plan is held by it; once lifted, the
        // plans that came due meanwhile are explained by the pause (not by the catch-up that
        // followed it), with who and why.
        let pause = second.pause(job, None, "ops", "upstream maintenance").await.unwrap();
        actix_rt::time::sleep(3 * SECOND).await;
        let held = floor_plan(pause.paused_at, SECOND) + TimeDelta::seconds(1);
        assert_eq!(second.why(job, &tenant, held).await.unwrap(), Why::Paused(pause.clone()));
        assert!(second.resume(job, None).await.unwrap());
        let resumed_at = db.store.db_now().await.unwrap();
        eventually(10, "a plan after the resume", || async {
            let rows = rows(&*db.store, job).await;
            rows.iter().any(|r| r.plan_time >= floor_plan(resumed_at, SECOND) && r.status == Status::Success).then_some(())
        })
        .await;
        second.shutdown().await;
        let why = second.why(job, &tenant, held).await.unwrap();
        let Why::Skipped(span) = &why else { panic!("expected a skip, got {why:?}") };
        assert_eq!((span.reason, span.scope.as_ref()), (SkipReason::Paused, None));
        assert!(span.detail.contains("upstream maintenance"), "{span:?}");
        assert!(why.describe().contains("paused"), "{}", why.describe());
        // Unknown jobs are an error, not an answer.
        assert!(second.why("no-such-job", &tenant, held).await.is_err());
    }
}

on_every_backend! {
    async fn a_day_missed_by_many_scopes_is_one_ledger_row(db: TestDb) {
        let job = "why-many";
        let runs = Runs::default();
        let scopes = 1000;
        let spec = || {
            JobSpec::builder(job)
                .every("1m")
                .scopes(tenants(scopes))
                .handler(runs.ok_handler())
                .build()
                .unwrap()
        };
        let runner = |store| scheduler(store).max_concurrent_executions(scopes).job(spec());
        let today = runner(db.store.clone()).start().await.unwrap();
        assert_eq!(today.tick_now().await.unwrap().won, scopes);
        assert!(today.wait_idle(Duration::from_secs(30)).await);
        today.shutdown().await;

        // The same database a day later: every scope missed the day's plans but the last.
        let tomorrow_store = db.skewed(TimeDelta::days(1));
        let tomorrow = runner(tomorrow_store.clone()).start().await.unwrap();
        assert_eq!(tomorrow.tick_now().await.unwrap().won, scopes);
        assert!(tomorrow.wait_idle(Duration::from_secs(30)).await);
        let ledger = tomorrow.skipped(Some(job), 100).await.unwrap();
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        let span = &ledger[0];
        assert_eq!((span.scope.as_ref(), span.scopes, span.reason), (None, scopes as u64, SkipReason::LatestOnly));
        assert_eq!(span.plans, Some(24 * 60 - 1));
        // A second tick decides nothing new and records nothing more.
        tomorrow.tick_now().await.unwrap();
        assert_eq!(tomorrow.skipped(Some(job), 100).await.unwrap().len(), 1);

        let missed = span.from + TimeDelta::hours(5);
        let why = tomorrow.why(job, &Scope::new("tenant", "999"), missed).await.unwrap();
        assert!(matches!(&why, Why::Skipped(s) if s.reason == SkipReason::LatestOnly), "{why:?}");
        tomorrow.shutdown().await;
        let _ = tomorrow_store;
    }
}
