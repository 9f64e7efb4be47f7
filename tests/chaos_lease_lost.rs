//! Lease lost (SPEC §5.2, §5.3, R8, R24): the path between a runner and the database is cut
//! while it holds two leases, long enough for them to go stale; another runner, with the same
//! real clock, sweeps them and finishes both plans; then the path heals.
//!
//! Because `stale_timeout` must exceed `run_timeout`, a lease can only go stale once its
//! attempt is over: the original attempts end during the cut, one by finishing (a late success),
//! one by being cancelled at `run_timeout` (a late `run_timeout` failure). Both late terminal
//! writes are retried through the cut and, once it heals, fenced out by the new owner's token:
//! each plan has exactly one SUCCESS, the new owner's.
//!
//! - PostgreSQL: the first runner reaches the server through a TCP proxy that is cut and healed.
//! - SQLite (a file has no network path): its store is cut off at the store seam instead, every
//!   call failing with a transient "connection reset".

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::chaos::{FaultyStore, all_rows, poll};
use common::proxy::{Proxy, mysql_upstream_of, upstream_of};
use cronlease::{DbRetry, JobContext, JobOutput, JobSpec, Scheduler, Scope, Status, Store};
use uuid::Uuid;

/// What the handlers saw, in this process.
#[derive(Default)]
struct Seen {
    /// `(runner, scope, run id, when it started)`.
    started: Vec<(String, String, String, Instant)>,
    /// When the original attempt of scope `finishes` returned.
    finished: Option<Instant>,
    /// When the original attempt of scope `overruns` was dropped (cancelled at `run_timeout`).
    dropped: Option<Instant>,
}

type Shared = Arc<Mutex<Seen>>;

/// Marks the handler future of `overruns` as dropped when it is.
struct DropGuard(Shared);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap().dropped = Some(Instant::now());
    }
}

fn job(seen: &Shared, original: bool) -> JobSpec {
    let seen = seen.clone();
    JobSpec::builder("lease-lost")
        .every("1h")
        .scopes([
            Scope::new("case", "finishes"),
            Scope::new("case", "overruns"),
        ])
        .run_timeout(Duration::from_secs(3))
        .stale_timeout(Duration::from_secs(4))
        .heartbeat_interval(Duration::from_millis(500))
        .handler(move |ctx: JobContext| {
            let seen = seen.clone();
            async move {
                let run_id = Uuid::new_v4().to_string();
                let scope = ctx.scope().id.clone();
                seen.lock().unwrap().started.push((
                    ctx.runner_id().to_owned(),
                    scope.clone(),
                    run_id.clone(),
                    Instant::now(),
                ));
                if original && scope == "finishes" {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    seen.lock().unwrap().finished = Some(Instant::now());
                } else if original {
                    // Ignores time; only the runtime's run_timeout stops it.
                    let _guard = DropGuard(seen.clone());
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .unwrap()
}

async fn runner(store: Arc<dyn Store>, name: &str, seen: &Shared, original: bool) -> Scheduler {
    Scheduler::builder_shared(store)
        .runner_id(name)
        .auto_tick(false)
        .shutdown_grace(Duration::from_secs(1))
        .db_retry(DbRetry {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
            give_up_after: Duration::from_secs(120),
        })
        .job(job(seen, original))
        .start()
        .await
        .unwrap()
}

on_every_backend! {
    async fn a_runner_cut_off_loses_its_leases_and_its_late_writes_are_fenced_out(db: TestDb) {
        // The original owner's store: through a proxy (PostgreSQL, MySQL) or cut at the seam
        // (SQLite).
        let proxy = db
            .pg_options
            .as_ref()
            .map(|options| Proxy::start(upstream_of(options)))
            .or_else(|| db.mysql_options.as_ref().map(|options| Proxy::start(mysql_upstream_of(options))));
        let owner_store = match (&proxy, &db.pg_options) {
            (Some(proxy), Some(options)) => {
                let through = options.clone().host("127.0.0.1").port(proxy.addr().port());
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_lazy_with(through);
                FaultyStore::new(Arc::new(cronlease::PgStore::from_pool(pool).with_clock_skew(db.base_skew)))
            }
            (Some(proxy), None) => {
                let options = db.mysql_options.as_ref().expect("a MySQL test database");
                let through = options.clone().host("127.0.0.1").port(proxy.addr().port());
                let pool = cronlease::MySqlStore::pool_options()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_lazy_with(through);
                FaultyStore::new(Arc::new(cronlease::MySqlStore::from_pool(pool).with_clock_skew(db.base_skew)))
            }
            _ => FaultyStore::new(db.store.clone()),
        };
        let cut = |on: bool| match &proxy {
            Some(proxy) if on => drop(proxy.cut()),
            Some(proxy) => proxy.heal(),
            None => owner_store.set_cut(on),
        };
        let seen = Shared::default();
        let owner = runner(owner_store.clone(), "owner", &seen, true).await;
        assert_eq!(owner.tick_now().await.unwrap().won, 2);
        poll(Duration::from_secs(10), || async { (seen.lock().unwrap().started.len() == 2).then_some(()) })
            .await
            .expect("both original attempts start");
        cut(true);
        let t_cut = Instant::now();

        // The thief, on the same database with the same clock, ticks until it has both plans.
        let thief = runner(db.store.clone(), "thief", &seen, false).await;
        let mut taken = 0;
        let mut swept = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while taken < 2 {
            assert!(Instant::now() < deadline, "the thief never took both leases");
            let report = thief.tick_now().await.unwrap();
            taken += report.started();
            swept += report.swept;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let stolen_after = t_cut.elapsed();
        assert!(thief.wait_idle(Duration::from_secs(10)).await);
        let rows = all_rows(&*db.store, "lease-lost").await;
        assert!(rows.iter().all(|r| r.status == Status::Success && r.runner_id == "thief"), "{rows:?}");

        cut(false);
        assert!(owner.wait_idle(Duration::from_secs(30)).await, "the owner finishes once the path heals");
        owner.shutdown().await;
        thief.shutdown().await;

        let rows = all_rows(&*db.store, "lease-lost").await;
        assert_eq!(rows.len(), 2);
        let seen = seen.lock().unwrap();
        for row in &rows {
            // Exactly one SUCCESS per plan, the thief's, as attempt 2 after the stale lease.
            assert_eq!((row.status, row.attempt, row.runner_id.as_str()), (Status::Success, 2, "thief"), "{row:?}");
            assert_eq!(row.failures.len(), 1, "{row:?}");
            assert_eq!(row.failures[0].code, "stale_timeout");
            let thief_run = seen
                .started
                .iter()
                .find(|(runner, scope, _, _)| runner == "thief" && *scope == row.scope.id)
                .expect("the thief ran the plan");
            assert_eq!(row.result["run_id"], thief_run.2.as_str(), "the new owner's result is kept");
            // The original attempt had ended before the new owner started.
            let ended = if row.scope.id == "finishes" { seen.finished } else { seen.dropped };
            let ended = ended.unwrap_or_else(|| panic!("the original {} attempt never ended", row.scope.id));
            assert!(ended < thief_run.3, "{}: the original attempt outlived its lease", row.scope.id);
        }
        assert_eq!(seen.started.len(), 4, "each plan ran once per owner");
        // Both late terminal writes were tried through the cut, then fenced out.
        let success = owner_store.stats("execution_finish_success");
        let failure = owner_store.stats("execution_finish_failure");
        assert!(success.transient > 0 && failure.transient > 0, "late writes met the cut: {success:?} {failure:?}");
        assert_eq!((success.fenced, failure.fenced), (1, 1), "{success:?} {failure:?}");
        // A beat fails transient, or is abandoned at its deadline (the heartbeat interval,
        // shorter here than the pool's wait for a refused connection).
        let beats = owner_store.stats("execution_heartbeat");
        assert!(beats.transient + beats.abandoned.len() > 0, "heartbeats met the cut: {beats:?}");
        println!(
            "lease lost [{}]: owner cut off; thief swept {swept} stale leases and started both plans {:.2} s after the cut (stale_timeout 4 s); owner's late success and run_timeout writes retried {} + {} times, then fenced out; one SUCCESS per plan",
            db.backend,
            stolen_after.as_secs_f64(),
            success.transient,
            failure.transient,
        );
    }
}
