//! A silent network (issue 10, item 1): the database's packets are dropped without a reset, as
//! after a firewall change, a failed-over load balancer or a half-open TCP connection. The
//! runners reach PostgreSQL through the test's TCP proxy, which keeps every socket open and
//! drops every byte both ways (`Proxy::black_hole`), then lets bytes flow again.
//!
//! - A 10 s black hole, shorter than `stale_timeout`: every store call meets its deadline and
//!   is counted transient, handlers keep running, and after the heal every result is recorded,
//!   nothing ran twice, nothing failed.
//! - A 15 s black hole around one runner, longer than `stale_timeout`, while another runner
//!   still reaches the database: the other takes its plans over; after the heal the silenced
//!   runner's late writes match no row, and every plan has exactly one SUCCESS.
//!
//! - On both backends, a call behind another session's lock ends at the lock deadline
//!   (PostgreSQL `lock_timeout`, SQLite's busy timeout) with a transient error from the
//!   server's side, and the same store works once the lock is gone.
//!
//! SQLite has no network, so only the last one applies to it. The black-hole runners use the
//! default deadlines.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::chaos::{FaultyStore, all_rows, poll};
use common::proxy::{Proxy, mysql_upstream_of, upstream_of};
use common::{TestDb, tenants};
#[allow(unused_imports)]
use cronlease::Store;
use cronlease::{
    CatchUp, JobContext, JobOutput, JobSpec, MySqlStore, OverlapPolicy, PgStore, Scheduler, Status,
    StoreDeadlines, floor_plan,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use uuid::Uuid;

const SCOPES: usize = 6;

/// The operations the runtime makes on its own.
const OPERATIONS: [&str; 8] = [
    "db_now",
    "execution_sweep_stale",
    "execution_latest_plans",
    "execution_retry_candidates",
    "execution_claim",
    "execution_heartbeat",
    "execution_finish_success",
    "execution_finish_failure",
];

/// One handler run.
#[derive(Debug, Clone)]
struct Run {
    runner: String,
    scope: String,
    plan_time: DateTime<Utc>,
    run_id: String,
    started: Instant,
    finished: Option<Instant>,
    cancelled: bool,
}

#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<Run>>>);

impl Journal {
    fn all(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }
}

/// Every second for each scope; each run works `work` (or stops when cancelled). Runs may
/// outlast the cadence and plans of a scope overlap on purpose (`AllowAll`): the scenario
/// checks that every plan runs, once, through the black hole.
fn job(journal: &Journal, work: Duration, run_timeout: u64, stale_timeout: u64) -> JobSpec {
    let journal = journal.clone();
    JobSpec::builder("silent")
        .every("1s")
        .overlap(OverlapPolicy::AllowAll)
        .scopes(tenants(SCOPES))
        .catch_up(CatchUp::EveryPlan {
            window: Duration::from_secs(300),
            max_plans_per_tick: 30,
        })
        .run_timeout(Duration::from_secs(run_timeout))
        .stale_timeout(Duration::from_secs(stale_timeout))
        .heartbeat_interval(Duration::from_secs(2))
        .handler(move |ctx: JobContext| {
            let journal = journal.clone();
            async move {
                let run_id = Uuid::new_v4().to_string();
                let index = {
                    let mut runs = journal.0.lock().unwrap();
                    runs.push(Run {
                        runner: ctx.runner_id().to_owned(),
                        scope: ctx.scope().id.clone(),
                        plan_time: ctx.plan_time(),
                        run_id: run_id.clone(),
                        started: Instant::now(),
                        finished: None,
                        cancelled: false,
                    });
                    runs.len() - 1
                };
                let cancelled = tokio::select! {
                    _ = tokio::time::sleep(work) => false,
                    _ = ctx.cancelled() => true,
                };
                let mut runs = journal.0.lock().unwrap();
                runs[index].finished = Some(Instant::now());
                runs[index].cancelled = cancelled;
                drop(runs);
                Ok(JobOutput::rows(1).with_result(serde_json::json!({ "run_id": run_id })))
            }
        })
        .build()
        .unwrap()
}

/// A runner with default settings but a 1 s tick, on `store`.
async fn runner(store: Arc<FaultyStore>, name: &str, job: JobSpec) -> Scheduler {
    Scheduler::builder_shared(store)
        .runner_id(name)
        .tick_interval(Duration::from_secs(1))
        .shutdown_grace(Duration::from_secs(3))
        .job(job)
        .start()
        .await
        .unwrap()
}

/// The database server's address, for the proxy (PostgreSQL or MySQL).
fn upstream(db: &TestDb) -> std::net::SocketAddr {
    match (&db.pg_options, &db.mysql_options) {
        (Some(options), _) => upstream_of(options),
        (None, Some(options)) => mysql_upstream_of(options),
        _ => unreachable!("SQLite has no network"),
    }
}

/// A store on the test database through `proxy`, with the default deadlines.
fn through(db: &TestDb, proxy: &Proxy) -> Arc<FaultyStore> {
    let port = proxy.addr().port();
    let store: Arc<dyn cronlease::Store> = match (&db.pg_options, &db.mysql_options) {
        (Some(options), _) => {
            let options = options.clone().host("127.0.0.1").port(port);
            let store = PgStore::connect_lazy_with_deadlines(options, StoreDeadlines::default())
                .unwrap()
                .with_clock_skew(db.base_skew);
            Arc::new(store)
        }
        (None, Some(options)) => {
            let options = options.clone().host("127.0.0.1").port(port);
            let store = MySqlStore::connect_lazy_with_deadlines(options, StoreDeadlines::default())
                .unwrap()
                .with_clock_skew(db.base_skew);
            Arc::new(store)
        }
        _ => unreachable!("SQLite has no network"),
    };
    FaultyStore::new(store)
}

/// A store on the test database reaching the server directly.
fn direct(db: &TestDb) -> Arc<FaultyStore> {
    let store: Arc<dyn cronlease::Store> = match (&db.pg_options, &db.mysql_options) {
        (Some(options), _) => {
            Arc::new(PgStore::connect_lazy_with(options.clone()).with_clock_skew(db.base_skew))
        }
        (None, Some(options)) => {
            Arc::new(MySqlStore::connect_lazy_with(options.clone()).with_clock_skew(db.base_skew))
        }
        _ => unreachable!("SQLite has no network"),
    };
    FaultyStore::new(store)
}

/// Counter totals by `name{labels}` from a debugging recorder.
fn counters(recorder: &DebuggingRecorder, into: &mut HashMap<String, u64>) {
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            *into
                .entry(format!("{}{{{}}}", key.name(), labels.join(",")))
                .or_default() += n;
        }
    }
}

/// Waits until every plan of every scope from the first plan all scopes have up to `end` is
/// SUCCESS; returns that first plan time.
async fn all_succeeded_up_to(db: &TestDb, end: DateTime<Utc>) -> DateTime<Utc> {
    poll(Duration::from_secs(120), || async {
        if db.store.db_now().await.unwrap() <= end {
            return None;
        }
        let rows = all_rows(&*db.store, "silent").await;
        let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for row in &rows {
            let at = first.entry(row.scope.id.as_str()).or_insert(row.plan_time);
            *at = (*at).min(row.plan_time);
        }
        let start = *first.values().max()?;
        let expected = first.len() * ((end - start).num_seconds() + 1) as usize;
        let done = rows
            .iter()
            .filter(|r| r.plan_time >= start && r.plan_time <= end && r.status == Status::Success)
            .count();
        (first.len() == SCOPES && done == expected).then_some(start)
    })
    .await
    .expect("every plan up to 3 s after the heal SUCCESS within 120 s")
}

#[actix::test]
async fn a_ten_second_black_hole_fails_nothing_and_runs_nothing_twice_postgres() {
    match common::postgres().await {
        Some(db) => a_ten_second_black_hole_fails_nothing_and_runs_nothing_twice(db).await,
        None => eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR),
    }
}

#[actix::test]
async fn a_ten_second_black_hole_fails_nothing_and_runs_nothing_twice_mysql() {
    match common::mysql().await {
        Some(db) => a_ten_second_black_hole_fails_nothing_and_runs_nothing_twice(db).await,
        None => eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR),
    }
}

async fn a_ten_second_black_hole_fails_nothing_and_runs_nothing_twice(db: TestDb) {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    const SILENCE: Duration = Duration::from_secs(10);
    let proxy = Proxy::start(upstream(&db));
    let stores = [through(&db, &proxy), through(&db, &proxy)];
    let journal = Journal::default();
    // Work 1.5 s: attempts are always running, and some finish during the black hole.
    let work = Duration::from_millis(1500);
    let r1 = runner(stores[0].clone(), "runner-1", job(&journal, work, 20, 30)).await;
    let r2 = runner(stores[1].clone(), "runner-2", job(&journal, work, 20, 30)).await;
    actix_rt::time::sleep(Duration::from_secs(4)).await;

    let running_at_silence = r1.running().await.unwrap() + r2.running().await.unwrap();
    let silenced_at = db.store.db_now().await.unwrap();
    let t_silence = Instant::now();
    proxy.black_hole();
    actix_rt::time::sleep(SILENCE).await;
    proxy.heal();
    let t_heal = Instant::now();
    let healed_at = db.store.db_now().await.unwrap();

    let end = floor_plan(healed_at, Duration::from_secs(1)) + TimeDelta::seconds(3);
    let start = all_succeeded_up_to(&db, end).await;
    let recovered = t_heal.elapsed();
    r1.shutdown().await;
    r2.shutdown().await;

    let rows = all_rows(&*db.store, "silent").await;
    let runs = journal.all();
    let mut runs_by_plan: HashMap<(&str, DateTime<Utc>), Vec<&Run>> = HashMap::new();
    for run in &runs {
        runs_by_plan
            .entry((run.scope.as_str(), run.plan_time))
            .or_default()
            .push(run);
    }
    let mut checked = 0;
    for row in &rows {
        assert_ne!(row.status, Status::Running, "stuck: {row:?}");
        // The only failures anywhere: attempts interrupted by the final shutdown.
        for failure in &row.failures {
            assert_eq!(
                failure.code, "canceled",
                "failed by the black hole: {row:?}"
            );
        }
        if row.plan_time < start || row.plan_time > end {
            continue;
        }
        assert_eq!(
            (row.status, row.attempt, row.failures.len()),
            (Status::Success, 1, 0),
            "{row:?}"
        );
        let ran = &runs_by_plan[&(row.scope.id.as_str(), row.plan_time)];
        assert_eq!(ran.len(), 1, "{row:?} ran {} times", ran.len());
        assert_eq!(row.result["run_id"], ran[0].run_id.as_str());
        checked += 1;
    }
    assert_eq!(checked, SCOPES * ((end - start).num_seconds() + 1) as usize);
    // Handlers kept running through the silence: those running when it began were not
    // cancelled, finished during it, and their results were recorded after the heal.
    let through_silence: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            r.started < t_silence && r.finished.is_some_and(|f| f > t_silence && f < t_heal)
        })
        .collect();
    assert!(
        !through_silence.is_empty(),
        "no attempt ran through the black hole"
    );
    for run in &through_silence {
        assert!(!run.cancelled, "cancelled by the black hole: {run:?}");
        let row = rows
            .iter()
            .find(|r| r.scope.id == run.scope && r.plan_time == run.plan_time)
            .unwrap();
        assert_eq!(
            (row.status, row.result["run_id"].as_str()),
            (Status::Success, Some(run.run_id.as_str()))
        );
    }
    // The runtime noticed: calls ended at their deadlines (abandoned by the scheduler's
    // deadline, or failed by the pool's acquire timeout) and were counted transient.
    let mut abandoned: BTreeMap<&str, Vec<(Duration, Instant)>> = BTreeMap::new();
    for store in &stores {
        for op in OPERATIONS {
            let stats = store.stats(op);
            let during = stats
                .abandoned
                .into_iter()
                .chain(stats.transient_waits)
                .filter(|(_, at)| *at > t_silence);
            abandoned.entry(op).or_default().extend(during);
        }
    }
    let first_noticed = abandoned
        .values()
        .flatten()
        .map(|(_, at)| *at)
        .min()
        .expect("no call was abandoned: the runtime did not notice the black hole");
    assert!(
        !abandoned["execution_heartbeat"].is_empty(),
        "{abandoned:?}"
    );
    assert!(
        !abandoned["execution_finish_success"].is_empty(),
        "no terminal write met the black hole: {abandoned:?}"
    );
    let mut metrics = HashMap::new();
    counters(&recorder, &mut metrics);
    let transient = |op: &str| {
        metrics
            .get(&format!(
                "cronlease_db_transient_errors_total{{operation={op}}}"
            ))
            .copied()
            .unwrap_or(0)
    };
    for op in ["execution_heartbeat", "execution_finish_success"] {
        assert!(transient(op) > 0, "{op} not counted transient: {metrics:?}");
    }
    assert_eq!(
        metrics.get("cronlease_lease_lost_total{job=silent}"),
        None,
        "a lease was lost under a black hole shorter than stale_timeout"
    );
    let waits = |op: &str| {
        let w: Vec<f64> = abandoned[op].iter().map(|(d, _)| d.as_secs_f64()).collect();
        let max = w.iter().cloned().fold(0.0, f64::max);
        format!("{} ended at a deadline, longest wait {max:.1} s", w.len())
    };
    println!(
        "black hole [{}]: {}s silence ({} bytes dropped), {running_at_silence} attempts running at its start, {} ran through it and were recorded after; first call ended at its deadline {:.1} s after the silence began; heartbeats: {}; success writes: {}; claims: {}; tick reads (db_now): {}; transient errors counted {:?}; every plan up to heal+3 s SUCCESS {:.1} s after heal; {checked} plans checked, each run once; 0 FAILED, 0 RUNNING; silenced at {silenced_at}",
        db.backend,
        SILENCE.as_secs(),
        proxy.bytes_swallowed(),
        through_silence.len(),
        (first_noticed - t_silence).as_secs_f64(),
        waits("execution_heartbeat"),
        waits("execution_finish_success"),
        waits("execution_claim"),
        waits("db_now"),
        OPERATIONS
            .iter()
            .map(|op| (*op, transient(op)))
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>(),
        recovered.as_secs_f64(),
    );
}

#[actix::test]
async fn a_black_hole_longer_than_stale_timeout_fences_the_silenced_runner_postgres() {
    match common::postgres().await {
        Some(db) => a_black_hole_longer_than_stale_timeout_fences_the_silenced_runner(db).await,
        None => eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR),
    }
}

#[actix::test]
async fn a_black_hole_longer_than_stale_timeout_fences_the_silenced_runner_mysql() {
    match common::mysql().await {
        Some(db) => a_black_hole_longer_than_stale_timeout_fences_the_silenced_runner(db).await,
        None => eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR),
    }
}

async fn a_black_hole_longer_than_stale_timeout_fences_the_silenced_runner(db: TestDb) {
    const SILENCE: Duration = Duration::from_secs(15);
    let proxy = Proxy::start(upstream(&db));
    // The silenced runner goes through the proxy; the other reaches the database directly.
    let silenced = through(&db, &proxy);
    let direct = direct(&db);
    let journal = Journal::default();
    // Work 3 s with a 6 s stale_timeout: the silenced runner has attempts in flight whose
    // leases go stale during the silence.
    let work = Duration::from_secs(3);
    // The silenced runner starts first and the other joins once it runs attempts: a claim under
    // the job's claim lock (the default overlap policy; every claim on MySQL) takes all it has
    // slots for, so the runner with the shorter path to the database would otherwise win every
    // plan and leave nothing in flight to silence.
    let a = runner(silenced.clone(), "silenced", job(&journal, work, 4, 6)).await;
    poll(Duration::from_secs(20), || async {
        (a.running().await.unwrap() > 0).then_some(())
    })
    .await
    .expect("the silenced runner runs attempts");
    let b = runner(direct.clone(), "direct", job(&journal, work, 4, 6)).await;
    // Silence it while its attempts (3 s of work each) are in flight.
    assert!(
        a.running().await.unwrap() > 0,
        "the silenced runner's attempts are in flight"
    );
    let t_silence = Instant::now();
    proxy.black_hole();
    actix_rt::time::sleep(SILENCE).await;
    proxy.heal();
    let t_heal = Instant::now();
    let healed_at = db.store.db_now().await.unwrap();
    let end = floor_plan(healed_at, Duration::from_secs(1)) + TimeDelta::seconds(3);
    let start = all_succeeded_up_to(&db, end).await;
    // The silenced runner's late terminal writes are retried after the heal (with the default
    // database backoff): wait for one to meet a row taken over.
    let fenced_count = || {
        silenced.stats("execution_finish_success").fenced
            + silenced.stats("execution_finish_failure").fenced
    };
    let fenced = poll(Duration::from_secs(90), || async {
        let n = fenced_count();
        (n > 0).then_some(n)
    })
    .await
    .expect("no late write of the silenced runner was fenced out within 90 s");
    a.shutdown().await;
    b.shutdown().await;

    let rows = all_rows(&*db.store, "silent").await;
    let runs = journal.all();
    let mut taken_over = 0;
    for row in &rows {
        assert_ne!(row.status, Status::Running, "stuck: {row:?}");
        for failure in &row.failures {
            assert!(
                ["stale_timeout", "canceled"].contains(&failure.code.as_str()),
                "failed by the black hole: {row:?}"
            );
        }
        if row.failures.iter().any(|f| f.code == "stale_timeout") {
            taken_over += 1;
        }
        if row.plan_time < start || row.plan_time > end {
            continue;
        }
        // Exactly one SUCCESS per plan (one row per plan), recording one of its own runs.
        assert_eq!(row.status, Status::Success, "{row:?}");
        let run_id = row.result["run_id"].as_str().unwrap();
        let run = runs
            .iter()
            .find(|r| r.run_id == run_id)
            .expect("the recorded result is a run's own");
        assert_eq!(
            (run.scope.as_str(), run.plan_time),
            (row.scope.id.as_str(), row.plan_time)
        );
    }
    assert!(
        taken_over > 0,
        "no lease went stale: the silence did not outlast stale_timeout"
    );
    let abandoned: usize = OPERATIONS
        .iter()
        .map(|op| silenced.stats(op).abandoned.len())
        .sum();
    assert!(abandoned > 0, "the silenced runner noticed nothing");
    let silenced_runs_recorded = rows
        .iter()
        .filter(|r| r.runner_id == "silenced" && r.status == Status::Success)
        .count();
    let late: Vec<&Run> = runs
        .iter()
        .filter(|r| r.runner == "silenced" && r.started < t_silence && r.finished.is_some())
        .collect();
    println!(
        "black hole > stale_timeout [{}]: {}s silence around one runner (stale_timeout 6 s); {taken_over} plans taken over by the other runner; {} attempts of the silenced runner were in flight, {fenced} of its late terminal writes fenced out (matched no row), {abandoned} of its calls abandoned at their deadlines; {silenced_runs_recorded} successes recorded by it in all; every plan up to heal+3 s has one SUCCESS {:.1} s after heal",
        db.backend,
        SILENCE.as_secs(),
        late.len(),
        (t_heal.elapsed()).as_secs_f64(),
    );
}

on_every_backend! {
    async fn a_held_lock_ends_a_call_at_the_lock_deadline_and_the_store_recovers(db: TestDb) {
        // Short server-side deadlines, so the lock wait ends on the server's side first.
        let deadlines = StoreDeadlines {
            call: Duration::from_secs(3),
            statement: Duration::from_secs(2),
            lock: Duration::from_millis(300),
            ..StoreDeadlines::default()
        };
        let bounded: Arc<dyn cronlease::Store> = match (&db.sqlite_path, &db.pg_options) {
            (Some(path), _) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let store = cronlease::SqliteStore::connect_with_deadlines(options, deadlines).await.unwrap();
                Arc::new(store.with_clock_skew(db.base_skew))
            }
            (None, Some(options)) => {
                let store = PgStore::connect_with_deadlines(options.clone(), deadlines).await.unwrap();
                Arc::new(store.with_clock_skew(db.base_skew))
            }
            _ => {
                // MySQL counts lock waits in whole seconds: 300 ms becomes 1 s.
                let options = db.mysql_options.clone().expect("a MySQL test database");
                let store = cronlease::MySqlStore::connect_with_deadlines(options, deadlines).await.unwrap();
                Arc::new(store.with_clock_skew(db.base_skew))
            }
        };
        assert_eq!(bounded.deadlines(), deadlines);
        let request = cronlease::store::ClaimRequest {
            job: "locked",
            max_attempts: 3,
            runner_id: "r",
            stale_timeout: Duration::from_secs(60),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![cronlease::store::PlanClaim::new(cronlease::Scope::global(), Utc::now())],
        };
        let lease = db.store.execution_claim(&request).await.unwrap()[0].lease;
        let renewal = [cronlease::store::Renewal { lease, stale_timeout: Duration::from_secs(60) }];

        // Another session holds the row (PostgreSQL) or the write lock (SQLite).
        enum Holder {
            Sqlite(sqlx::SqliteConnection),
            Pg(sqlx::PgConnection),
            MySql(sqlx::MySqlConnection),
        }
        use sqlx::Connection;
        let holder = match (&db.sqlite_path, &db.pg_options) {
            (Some(path), _) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
                Holder::Sqlite(conn)
            }
            (None, Some(options)) => {
                let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = $1 FOR UPDATE")
                    .bind(lease.id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Holder::Pg(conn)
            }
            _ => {
                let options = db.mysql_options.clone().expect("a MySQL test database");
                let mut conn = sqlx::MySqlConnection::connect_with(&options).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = ? FOR UPDATE")
                    .bind(lease.id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Holder::MySql(conn)
            }
        };
        let t = Instant::now();
        let error = bounded.execution_heartbeat(&renewal).await.unwrap_err();
        let waited = t.elapsed();
        assert!(error.is_transient(), "{error}");
        // The server gave up, not the client: a database error, not a deadline.
        assert!(matches!(error, cronlease::Error::Database { .. }), "{error:?}");
        match holder {
            Holder::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Holder::Pg(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Holder::MySql(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
        // The same store (and its connections) works once the lock is gone.
        assert_eq!(bounded.execution_heartbeat(&renewal).await.unwrap(), vec![lease.id]);
        println!(
            "held lock [{}]: a heartbeat behind another session's lock failed transient after {:.2} s (lock deadline 300 ms; 1 s on MySQL): {error}",
            db.backend,
            waited.as_secs_f64()
        );
    }
}

/// A call dropped at its deadline while its statement is on the wire closes its connection:
/// twelve such calls in a row (more than the pool's ten connections) leave the store working
/// once the network is back. (Returned to the pool instead, each connection would wait forever
/// for the rest of a reply the black hole swallowed, holding its slot.)
#[actix::test]
async fn connections_abandoned_at_their_deadline_are_closed_not_returned_postgres() {
    match common::postgres().await {
        Some(db) => connections_abandoned_at_their_deadline_are_closed_not_returned(db).await,
        None => eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR),
    }
}

#[actix::test]
async fn connections_abandoned_at_their_deadline_are_closed_not_returned_mysql() {
    match common::mysql().await {
        Some(db) => connections_abandoned_at_their_deadline_are_closed_not_returned(db).await,
        None => eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR),
    }
}

/// Another session (not through the proxy) holding one execution row in an open transaction.
enum RowHolder {
    Pg(sqlx::PgConnection),
    MySql(sqlx::MySqlConnection),
}

impl RowHolder {
    async fn lock(db: &TestDb, id: Uuid) -> RowHolder {
        use sqlx::Connection;
        match (&db.pg_options, &db.mysql_options) {
            (Some(options), _) => {
                let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                RowHolder::Pg(conn)
            }
            (None, Some(options)) => {
                let mut conn = sqlx::MySqlConnection::connect_with(options).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM cronlease_executions WHERE id = ? FOR UPDATE")
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                RowHolder::MySql(conn)
            }
            _ => unreachable!("SQLite has no network"),
        }
    }

    async fn release(self) {
        use sqlx::Connection;
        match self {
            RowHolder::Pg(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            RowHolder::MySql(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

async fn connections_abandoned_at_their_deadline_are_closed_not_returned(db: TestDb) {
    let proxy = Proxy::start(upstream(&db));
    let port = proxy.addr().port();
    // The idle-transaction deadline is set far beyond the test: it would otherwise end the
    // server's side of a stuck connection after 30 s and free its slot, hiding a connection
    // that went back to the pool.
    let deadlines = StoreDeadlines {
        call: Duration::from_secs(3),
        statement: Duration::from_secs(3),
        lock: Duration::from_secs(2),
        idle_in_transaction: Duration::from_secs(600),
        ..StoreDeadlines::default()
    };
    let store: Arc<dyn cronlease::Store> = match (&db.pg_options, &db.mysql_options) {
        (Some(options), _) => {
            let through = options.clone().host("127.0.0.1").port(port);
            let store = PgStore::connect_lazy_with_deadlines(through, deadlines).unwrap();
            Arc::new(store.with_clock_skew(db.base_skew))
        }
        (None, Some(options)) => {
            let through = options.clone().host("127.0.0.1").port(port);
            let store = MySqlStore::connect_lazy_with_deadlines(through, deadlines).unwrap();
            Arc::new(store.with_clock_skew(db.base_skew))
        }
        _ => unreachable!("SQLite has no network"),
    };
    let request = cronlease::store::ClaimRequest {
        job: "abandoned",
        max_attempts: 3,
        runner_id: "r",
        stale_timeout: Duration::from_secs(600),
        allow_stale_reentry: true,
        steal_not_after: None,
        plans: vec![cronlease::store::PlanClaim::new(
            cronlease::Scope::global(),
            Utc::now(),
        )],
    };
    let lease = db.store.execution_claim(&request).await.unwrap()[0].lease;
    let renewal = [cronlease::store::Renewal {
        lease,
        stale_timeout: Duration::from_secs(600),
    }];
    // Another session (not through the proxy) holds the row, so each renewal's statement is
    // on the server, waiting, when the network goes silent.
    let holder = RowHolder::lock(&db, lease.id).await;
    const CALLS: usize = 12;
    let started = Instant::now();
    for _ in 0..CALLS {
        let call =
            tokio::time::timeout(Duration::from_secs(1), store.execution_heartbeat(&renewal));
        // Silent from 0.3 s to 2.5 s: the call is dropped at 1 s; the server's answer (its
        // lock deadline, at 2 s) and whatever the connection sends next (sqlx's release ping,
        // if it went back to the pool) are swallowed too.
        let silence = async {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            proxy.black_hole();
            actix_rt::time::sleep(Duration::from_millis(2200)).await;
            proxy.heal();
        };
        let (outcome, ()) = tokio::join!(call, silence);
        assert!(
            outcome.is_err(),
            "the call ended before its deadline: {outcome:?}"
        );
    }
    holder.release().await;
    let t = Instant::now();
    let held = store.execution_heartbeat(&renewal).await;
    assert_eq!(
        held.as_ref().ok(),
        Some(&vec![lease.id]),
        "the store does not recover after {CALLS} abandoned calls: {held:?}"
    );
    println!(
        "abandoned connections [{}]: {CALLS} calls dropped mid-statement under a black hole in {:.1} s (pool of 10); the next call succeeded in {:.3} s; {} connections accepted by the proxy",
        db.backend,
        started.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64(),
        proxy.accepted(),
    );
}

/// MySQL's server-side statement deadline: a heartbeat behind another session's row lock,
/// with `statement` (1 s) shorter than `lock` (4 s), is ended by the server's statement timer
/// (MariaDB's `max_statement_time`, error 1969; MySQL 8's `max_execution_time` on the locking
/// `SELECT`, error 3024), not by the lock wait (1205) nor by the client: a transient database
/// error, after which the same store works.
#[actix::test]
async fn a_statement_past_its_deadline_is_ended_by_the_server_mysql() {
    let Some(db) = common::mysql().await else {
        eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR);
        return;
    };
    let deadlines = StoreDeadlines {
        call: Duration::from_secs(6),
        statement: Duration::from_secs(1),
        lock: Duration::from_secs(4),
        ..StoreDeadlines::default()
    };
    let options = db.mysql_options.clone().unwrap();
    let store = MySqlStore::connect_with_deadlines(options, deadlines)
        .await
        .unwrap()
        .with_clock_skew(db.base_skew);
    let request = cronlease::store::ClaimRequest {
        job: "slow",
        max_attempts: 3,
        runner_id: "r",
        stale_timeout: Duration::from_secs(60),
        allow_stale_reentry: true,
        steal_not_after: None,
        plans: vec![cronlease::store::PlanClaim::new(
            cronlease::Scope::global(),
            Utc::now(),
        )],
    };
    let lease = db.store.execution_claim(&request).await.unwrap()[0].lease;
    let renewal = [cronlease::store::Renewal {
        lease,
        stale_timeout: Duration::from_secs(60),
    }];
    let holder = RowHolder::lock(&db, lease.id).await;
    let t = Instant::now();
    let error = store.execution_heartbeat(&renewal).await.unwrap_err();
    let waited = t.elapsed();
    holder.release().await;
    assert!(error.is_transient(), "{error}");
    let number = match &error {
        cronlease::Error::Database {
            source: sqlx::Error::Database(db),
            ..
        } => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|my| my.number()),
        _ => None,
    };
    assert!(
        matches!(number, Some(1969 | 3024)),
        "not ended by the statement deadline: {error:?}"
    );
    assert_eq!(
        store.execution_heartbeat(&renewal).await.unwrap(),
        vec![lease.id]
    );
    println!(
        "statement deadline [mysql]: a heartbeat behind another session's lock was ended by the server after {:.2} s (statement 1 s, lock 4 s): {error}",
        waited.as_secs_f64()
    );
}
