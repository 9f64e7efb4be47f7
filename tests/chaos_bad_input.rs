//! Bad input (SPEC §7, R4, R26): invalid settings, a database that cannot be reached at start,
//! rows the runtime cannot use, and real database errors, classified by their codes.
//!
//! Invalid job specs have one message per field in `scheduler_lifecycle.rs`; here are the
//! runtime's settings and what the database can throw at it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::chaos::FaultyStore;
use common::proxy::{Proxy, mysql_upstream_of, upstream_of};
use common::{Runs, rows, scheduler};
use cronlease::store::classify;
use cronlease::{
    DbErrorKind, DbRetry, Error, JobContext, JobError, JobOutput, JobSpec, MySqlStore, PgStore,
    Scheduler, Scope, Status, floor_plan,
};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const HOUR: Duration = Duration::from_secs(3600);

fn job() -> JobSpec {
    JobSpec::builder("job")
        .every("1h")
        .handler(|_: JobContext| async { Ok(JobOutput::default()) })
        .build()
        .unwrap()
}

/// A port on 127.0.0.1 where nothing listens: connections are refused.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A lazily connecting PostgreSQL store on `127.0.0.1:port` whose statements give up waiting for
/// a connection after `acquire` (a transient "pool timed out" error).
fn lazy_pg(options: PgConnectOptions, acquire: Duration) -> Arc<FaultyStore> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(acquire)
        .connect_lazy_with(options);
    FaultyStore::new(Arc::new(PgStore::from_pool(pool)))
}

/// A lazily connecting MySQL store, likewise.
fn lazy_mysql(options: sqlx::mysql::MySqlConnectOptions, acquire: Duration) -> Arc<FaultyStore> {
    let pool = MySqlStore::pool_options()
        .max_connections(2)
        .acquire_timeout(acquire)
        .connect_lazy_with(options);
    FaultyStore::new(Arc::new(MySqlStore::from_pool(pool)))
}

fn quick_retry() -> DbRetry {
    DbRetry {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        give_up_after: Duration::from_secs(10),
    }
}

#[actix::test]
async fn invalid_settings_are_refused_with_a_message_naming_the_setting() {
    let db = common::sqlite().await;
    let cases = [
        (
            DbRetry {
                initial: Duration::ZERO,
                ..DbRetry::default()
            },
            "db_retry needs initial > 0",
        ),
        (
            DbRetry {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(1),
                ..DbRetry::default()
            },
            "max >= initial",
        ),
    ];
    for (retry, expected) in cases {
        match scheduler(db.store.clone())
            .db_retry(retry)
            .job(job())
            .start()
            .await
        {
            Err(Error::InvalidConfig(message)) => assert!(message.contains(expected), "{message}"),
            other => panic!("expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
    let threads = scheduler(db.store.clone()).handler_threads(0).start().await;
    assert!(matches!(threads, Err(Error::InvalidConfig(m)) if m.contains("handler_threads")));
}

#[actix::test]
async fn an_unreachable_database_fails_start_at_once_by_default() {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(closed_port())
        .username("postgres");
    let store = lazy_pg(options, Duration::from_millis(500));
    let error = Scheduler::builder_shared(store.clone())
        .job(job())
        .start()
        .await
        .map(|_| ())
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("the database is unreachable at start"),
        "{message}"
    );
    assert!(message.contains("wait_for_database"), "{message}");
    assert!(error.is_transient());
    match error {
        Error::DatabaseUnavailable { source, .. } => assert!(source.is_transient(), "{source}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.stats("migrate").transient, 1, "one try, no waiting");
}

#[actix::test]
async fn start_gives_up_waiting_after_its_limit() {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(closed_port())
        .username("postgres");
    let store = lazy_pg(options, Duration::from_millis(200));
    let error = Scheduler::builder_shared(store.clone())
        .db_retry(quick_retry())
        .wait_for_database(Duration::from_secs(2))
        .job(job())
        .start()
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&error, Error::DatabaseUnavailable { waited, .. } if !waited.is_zero()),
        "{error}"
    );
    assert!(
        store.stats("migrate").transient >= 2,
        "it tried again: {:?}",
        store.stats("migrate")
    );
}

#[actix::test]
async fn a_bad_sqlite_path_is_a_clear_permanent_error() {
    let error = cronlease::SqliteStore::open("/nonexistent-directory/cronlease.db")
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert_eq!(
        error.to_string(),
        "unable to open database file `/nonexistent-directory/cronlease.db`: the directory `/nonexistent-directory` does not exist: create it first"
    );
    // The same through a URL, and for a path that is a directory.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("x").join("y.db");
    let url = format!("sqlite://{}", missing.display());
    match cronlease::SqliteStore::connect(&url).await.map(|_| ()) {
        Err(Error::Connect {
            target, message, ..
        }) => {
            assert_eq!(target, missing.display().to_string());
            assert!(
                message.contains(&format!(
                    "the directory `{}` does not exist",
                    dir.path().join("x").display()
                )),
                "{message}"
            );
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    let error = cronlease::SqliteStore::open(dir.path())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("it is a directory: give the path of a file"),
        "{error}"
    );
}

#[actix::test]
async fn a_url_for_another_database_is_refused_not_tried_elsewhere() {
    let sqlite = cronlease::SqliteStore::connect("postgres://app:secret@127.0.0.1:1/app")
        .await
        .map(|_| ());
    match sqlite {
        Err(Error::InvalidConfig(message)) => {
            assert!(message.contains("needs a `sqlite:` URL"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    for url in [
        "mysql://app:secret@127.0.0.1:1/app",
        "sqlite:cronlease.db",
        "sqlite::memory:",
    ] {
        for error in [
            PgStore::connect(url).await.map(|_| ()).unwrap_err(),
            PgStore::connect_lazy(url).map(|_| ()).unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(matches!(error, Error::InvalidConfig(_)), "{message}");
            assert!(message.contains("needs a `postgres://` URL"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}

#[actix::test]
async fn a_mysql_store_refuses_urls_for_other_databases() {
    for url in [
        "postgres://app:secret@127.0.0.1:1/app",
        "sqlite:cronlease.db",
        "app:secret@127.0.0.1/app",
    ] {
        for error in [
            MySqlStore::connect(url).await.map(|_| ()).unwrap_err(),
            MySqlStore::connect_lazy(url).map(|_| ()).unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(matches!(error, Error::InvalidConfig(_)), "{message}");
            assert!(message.contains("`mysql://"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}

/// Whether the MySQL connection tests run (they need no server, but belong to that suite).
fn mysql_suite() -> bool {
    let on = std::env::var_os(common::MYSQL_URL_VAR).is_some();
    if !on {
        eprintln!("skipped: {} is not set", common::MYSQL_URL_VAR);
    }
    on
}

#[actix::test]
async fn mysql_connect_errors_name_host_port_and_database_never_the_password() {
    if !mysql_suite() {
        return;
    }
    let port = closed_port();
    let url = format!("mysql://root:secret-pw@127.0.0.1:{port}/test");
    let error = MySqlStore::connect(&url).await.map(|_| ()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "connection refused at 127.0.0.1:{port} (database `test`)"
        )),
        "{message}"
    );
    assert!(!format!("{error:?}").contains("secret-pw"), "{error:?}");
    assert!(error.is_transient(), "a server that is down may come back");
    // At start, through a lazy store: the unreachable-database error names it too.
    let store = MySqlStore::connect_lazy(&url).unwrap();
    let error = Scheduler::builder(store)
        .job(job())
        .start()
        .await
        .map(|_| ())
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("the database is unreachable at start"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "connection refused at 127.0.0.1:{port} (database `test`)"
        )),
        "{message}"
    );
    assert!(!message.contains("secret-pw"), "{message}");
    // A server that answers but refuses the session: named the same way, permanent.
    let real = std::env::var(common::MYSQL_URL_VAR).unwrap();
    let options: sqlx::mysql::MySqlConnectOptions = real.parse().unwrap();
    let denied = format!(
        "mysql://cronlease_no_such_user:secret-pw@{}:{}/test",
        options.get_host(),
        options.get_port()
    );
    let error = MySqlStore::connect(&denied).await.map(|_| ()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the server refused the connection at {}:{} (database `test`)",
            options.get_host(),
            options.get_port()
        )),
        "{message}"
    );
    assert!(!message.contains("secret-pw"), "{message}");
    assert!(!error.is_transient(), "{message}");
}

/// Whether the PostgreSQL connection tests run (they need no server, but belong to that suite).
fn postgres_suite() -> bool {
    let on = std::env::var_os(common::POSTGRES_URL_VAR).is_some();
    if !on {
        eprintln!("skipped: {} is not set", common::POSTGRES_URL_VAR);
    }
    on
}

#[actix::test]
async fn postgres_connect_errors_name_host_port_and_database_never_the_password() {
    if !postgres_suite() {
        return;
    }
    let port = closed_port();
    let url = format!("postgres://postgres:secret-pw@127.0.0.1:{port}/test");
    let error = PgStore::connect(&url).await.map(|_| ()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "connection refused at 127.0.0.1:{port} (database `test`)"
        )),
        "{message}"
    );
    assert!(!format!("{error:?}").contains("secret-pw"), "{error:?}");
    assert!(error.is_transient(), "a server that is down may come back");
    // At start, through a lazy store: the unreachable-database error names it too.
    let store = PgStore::connect_lazy(&url).unwrap();
    let error = Scheduler::builder(store)
        .job(job())
        .start()
        .await
        .map(|_| ())
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("the database is unreachable at start"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "connection refused at 127.0.0.1:{port} (database `test`)"
        )),
        "{message}"
    );
    assert!(!message.contains("secret-pw"), "{message}");
}

#[actix::test]
async fn postgres_host_that_does_not_resolve_fails_start_at_once() {
    if !postgres_suite() {
        return;
    }
    // `.invalid` never resolves (RFC 6761): waiting for the database would never help.
    let store =
        PgStore::connect_lazy("postgres://postgres@cronlease-test.invalid:5432/test").unwrap();
    let started = std::time::Instant::now();
    let error = Scheduler::builder(store)
        .db_retry(quick_retry())
        .wait_for_database(Duration::from_secs(60))
        .job(job())
        .start()
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "returned after {:?}",
        started.elapsed()
    );
    assert!(!error.is_transient(), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "the host name does not resolve at cronlease-test.invalid:5432 (database `test`)"
        ),
        "{message}"
    );
}

on_every_backend! {
    async fn start_waits_with_backoff_for_a_database_that_comes_back(db: TestDb) {
        match (&db.sqlite_path, &db.pg_options) {
            (Some(path), _) => {
                // Another connection holds the file's write lock for longer than the busy
                // timeout (5 s): the first try fails with SQLITE_BUSY, a later one succeeds.
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut lock = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut lock).await.unwrap();
                let store = FaultyStore::new(db.store.clone());
                let builder = Scheduler::builder_shared(store.clone())
                    .db_retry(quick_retry())
                    .wait_for_database(Duration::from_secs(60))
                    .auto_tick(false)
                    .job(job());
                let release = async {
                    actix_rt::time::sleep(Duration::from_secs(6)).await;
                    sqlx::raw_sql("ROLLBACK").execute(&mut lock).await.unwrap();
                };
                let (started, ()) = tokio::join!(builder.start(), release);
                let s = started.expect("start once the lock is released");
                assert!(store.stats("migrate").transient >= 1, "{:?}", store.stats("migrate"));
                assert_eq!(s.tick_now().await.unwrap().won, 1);
                s.shutdown().await;
            }
            (None, Some(options)) => {
                // The server refuses connections until the proxy heals, 1.5 s in.
                let proxy = Proxy::start(upstream_of(options));
                proxy.cut();
                let through = options.clone().host("127.0.0.1").port(proxy.addr().port());
                let store = lazy_pg(through, Duration::from_millis(300));
                let builder = Scheduler::builder_shared(store.clone())
                    .db_retry(quick_retry())
                    .wait_for_database(Duration::from_secs(60))
                    .auto_tick(false)
                    .job(job());
                let heal = async {
                    actix_rt::time::sleep(Duration::from_millis(1500)).await;
                    proxy.heal();
                };
                let (started, ()) = tokio::join!(builder.start(), heal);
                let s = started.expect("start once the server is reachable");
                assert!(store.stats("migrate").transient >= 1, "{:?}", store.stats("migrate"));
                assert_eq!(s.tick_now().await.unwrap().won, 1);
                s.shutdown().await;
            }
            (None, None) => {
                // Likewise for MySQL: refused until the proxy heals, 1.5 s in.
                let options = db.mysql_options.as_ref().expect("a MySQL test database");
                let proxy = Proxy::start(mysql_upstream_of(options));
                proxy.cut();
                let through = options.clone().host("127.0.0.1").port(proxy.addr().port());
                let store = lazy_mysql(through, Duration::from_millis(300));
                let builder = Scheduler::builder_shared(store.clone())
                    .db_retry(quick_retry())
                    .wait_for_database(Duration::from_secs(60))
                    .auto_tick(false)
                    .job(job());
                let heal = async {
                    actix_rt::time::sleep(Duration::from_millis(1500)).await;
                    proxy.heal();
                };
                let (started, ()) = tokio::join!(builder.start(), heal);
                let s = started.expect("start once the server is reachable");
                assert!(store.stats("migrate").transient >= 1, "{:?}", store.stats("migrate"));
                assert_eq!(s.tick_now().await.unwrap().won, 1);
                s.shutdown().await;
            }
        }
    }
}

/// Inserts a row by hand, as another version of the library or an operator might have.
#[allow(clippy::too_many_arguments)]
async fn insert_row(
    db: &common::TestDb,
    id: &str,
    job: &str,
    scope: &str,
    plan: DateTime<Utc>,
    status: &str,
    stale_after: Option<DateTime<Utc>>,
    next_retry_at: Option<DateTime<Utc>>,
) {
    match (&db.sqlite_path, &db.pg_options) {
        (Some(path), _) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            // A status this version does not know needs the CHECK constraint out of the way.
            sqlx::raw_sql("PRAGMA ignore_check_constraints = ON")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, next_retry_at, runner_id, lease_token,
                   heartbeat_at, stale_after, started_at, created_at, updated_at)
                 VALUES (?1, ?2, 'tenant', ?3, ?4, ?5, 1, 3, ?6, 'someone', ?7, ?4, ?8, ?4, ?4, ?4)",
            )
            .bind(id)
            .bind(job)
            .bind(scope)
            .bind(plan.timestamp_millis())
            .bind(status)
            .bind(next_retry_at.map(|t| t.timestamp_millis()))
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(stale_after.map(|t| t.timestamp_millis()))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        (None, Some(options)) => {
            let mut conn = sqlx::PgConnection::connect_with(options).await.unwrap();
            sqlx::raw_sql(
                "ALTER TABLE cronlease_executions DROP CONSTRAINT IF EXISTS cronlease_executions_status_check",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, next_retry_at, runner_id, lease_token,
                   heartbeat_at, stale_after, started_at, created_at, updated_at)
                 VALUES ($1::uuid, $2, 'tenant', $3, $4, $5, 1, 3, $6, 'someone', $7, $4, $8, $4, $4, $4)",
            )
            .bind(id)
            .bind(job)
            .bind(scope)
            .bind(plan)
            .bind(status)
            .bind(next_retry_at)
            .bind(uuid::Uuid::new_v4())
            .bind(stale_after)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        (None, None) => {
            let options = db.mysql_options.as_ref().expect("a MySQL test database");
            let mut conn = sqlx::MySqlConnection::connect_with(options).await.unwrap();
            // A status this version does not know needs the CHECK constraint out of the way.
            let _ = sqlx::raw_sql(
                "ALTER TABLE cronlease_executions DROP CONSTRAINT cronlease_executions_status_check",
            )
            .execute(&mut conn)
            .await;
            sqlx::query(
                "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, next_retry_at, runner_id, lease_token,
                   heartbeat_at, stale_after, started_at, created_at, updated_at, result, failures)
                 VALUES (UNHEX(REPLACE(?, '-', '')), ?, 'tenant', ?, ?, ?, 1, 3, ?, 'someone', ?,
                   ?, ?, ?, ?, ?, '{}', '[]')",
            )
            .bind(id)
            .bind(job)
            .bind(scope)
            .bind(plan)
            .bind(status)
            .bind(next_retry_at)
            .bind(uuid::Uuid::new_v4())
            .bind(plan)
            .bind(stale_after)
            .bind(plan)
            .bind(plan)
            .bind(plan)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

on_every_backend! {
    async fn rows_the_runtime_cannot_use_are_skipped_not_fatal(db: TestDb) {
        let now = db.store.db_now().await.unwrap();
        let latest = floor_plan(now, HOUR);
        let id = || uuid::Uuid::now_v7().to_string();
        // A status written by a newer version, on a plan the job is about to plan.
        insert_row(&db, &id(), "skip", "paused", latest, "PAUSED", None, None).await;
        // Rows of a job nobody registered: a stale lease and a failure due for retry.
        let hour_ago = now - TimeDelta::hours(1);
        insert_row(&db, &id(), "ghost", "1", latest, "RUNNING", Some(hour_ago), None).await;
        insert_row(&db, &id(), "ghost", "2", latest, "FAILED", None, Some(hour_ago)).await;
        let mut scopes = vec![Scope::new("tenant", "paused"), Scope::new("tenant", "ok")];
        if db.backend == "sqlite" {
            // SQLite's text columns can hold anything: a hand-edited id the claim cannot decode.
            insert_row(&db, "not-a-uuid", "skip", "corrupt", latest, "FAILED", None, Some(hour_ago)).await;
            scopes.push(Scope::new("tenant", "corrupt"));
        }
        let ghosts_before = rows(&*db.store, "ghost").await;

        let runs = Runs::default();
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("skip").every("1h").scopes(scopes).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        for _ in 0..3 {
            let report = s.tick_now().await.expect("the tick goes on");
            assert_eq!(report.job_errors, 0, "{report:?}");
            assert!(s.wait_idle(Duration::from_secs(10)).await);
        }
        // The healthy scope ran; the unknown status was left alone (conflicted, never run); the
        // undecodable row was claimed but not started (it stays RUNNING until its lease goes
        // stale and the sweep takes it).
        assert_eq!(runs.all().iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["ok"]);
        let listed = rows(&*db.store, "skip").await;
        assert_eq!(listed.len(), 1, "rows that cannot be decoded are skipped: {listed:?}");
        assert_eq!((listed[0].scope.id.as_str(), listed[0].status), ("ok", Status::Success));
        let counts = s.counts(Some("skip")).await.unwrap();
        assert!(counts.contains(&(Status::Success, 1)), "{counts:?}");
        assert!(counts.iter().all(|(status, _)| Status::ALL.contains(status)));
        // Another job's rows are never touched.
        assert_eq!(rows(&*db.store, "ghost").await, ghosts_before);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn real_database_errors_are_classified_by_their_codes(db: TestDb) {
        // The runtime's classification; a handler's `JobError::from` agrees with it.
        fn kind(error: &sqlx::Error) -> DbErrorKind {
            classify(error)
        }
        match (&db.sqlite_path, &db.pg_options) {
            (Some(path), _) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut a = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
                let mut b = sqlx::SqliteConnection::connect_with(&options.clone().busy_timeout(Duration::ZERO)).await.unwrap();
                sqlx::raw_sql("CREATE TABLE chaos_t (id INTEGER PRIMARY KEY)").execute(&mut a).await.unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut a).await.unwrap();
                let busy = sqlx::raw_sql("INSERT INTO chaos_t VALUES (1)").execute(&mut b).await.unwrap_err();
                assert_eq!(kind(&busy), DbErrorKind::Transient, "{busy}");
                assert!(!JobError::from(busy).is_permanent());
                sqlx::raw_sql("ROLLBACK").execute(&mut a).await.unwrap();
                sqlx::raw_sql("INSERT INTO chaos_t VALUES (1)").execute(&mut a).await.unwrap();
                let unique = sqlx::raw_sql("INSERT INTO chaos_t VALUES (1)").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&unique), DbErrorKind::Permanent, "{unique}");
                assert!(JobError::from(unique).is_permanent());
                let syntax = sqlx::raw_sql("SELEC 1").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&syntax), DbErrorKind::Permanent, "{syntax}");
                let cant_open = sqlx::SqliteConnection::connect_with(
                    &sqlx::sqlite::SqliteConnectOptions::new().filename("/nonexistent-directory/x.db"),
                )
                .await
                .map(drop)
                .unwrap_err();
                assert_eq!(kind(&cant_open), DbErrorKind::Permanent, "{cant_open}");
            }
            (None, Some(options)) => {
                let connect = || sqlx::PgConnection::connect_with(options);
                let mut a = connect().await.unwrap();
                let mut b = connect().await.unwrap();
                sqlx::raw_sql("CREATE TABLE chaos_t (id int PRIMARY KEY, v int NOT NULL)").execute(&mut a).await.unwrap();
                sqlx::raw_sql("INSERT INTO chaos_t VALUES (1, 0), (2, 0)").execute(&mut a).await.unwrap();
                // Permanent: the same statement fails the same way.
                let unique = sqlx::raw_sql("INSERT INTO chaos_t VALUES (1, 0)").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&unique), DbErrorKind::Permanent, "{unique}");
                let syntax = sqlx::raw_sql("SELEC 1").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&syntax), DbErrorKind::Permanent, "{syntax}");
                // Serialization failure (40001): write skew between two serializable transactions.
                for conn in [&mut a, &mut b] {
                    sqlx::raw_sql("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT sum(v) FROM chaos_t").execute(conn).await.unwrap();
                }
                sqlx::raw_sql("UPDATE chaos_t SET v = 1 WHERE id = 1").execute(&mut a).await.unwrap();
                sqlx::raw_sql("UPDATE chaos_t SET v = 1 WHERE id = 2").execute(&mut b).await.unwrap();
                sqlx::raw_sql("COMMIT").execute(&mut a).await.unwrap();
                let serialization = sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap_err();
                assert_eq!(kind(&serialization), DbErrorKind::Transient, "{serialization}");
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut b).await;
                // Deadlock (40P01): two transactions lock the two rows in opposite orders.
                sqlx::raw_sql("BEGIN; UPDATE chaos_t SET v = 2 WHERE id = 1").execute(&mut a).await.unwrap();
                sqlx::raw_sql("BEGIN; UPDATE chaos_t SET v = 2 WHERE id = 2").execute(&mut b).await.unwrap();
                let (ra, rb) = tokio::join!(
                    sqlx::raw_sql("UPDATE chaos_t SET v = 3 WHERE id = 2").execute(&mut a),
                    sqlx::raw_sql("UPDATE chaos_t SET v = 3 WHERE id = 1").execute(&mut b),
                );
                let deadlock = ra.err().or(rb.err()).expect("one side is chosen as the deadlock victim");
                assert_eq!(kind(&deadlock), DbErrorKind::Transient, "{deadlock}");
                for conn in [&mut a, &mut b] {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(conn).await;
                }
                // Statement cancelled by a timeout (57014).
                let timeout = sqlx::raw_sql("SET statement_timeout = '50ms'; SELECT pg_sleep(2)").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&timeout), DbErrorKind::Transient, "{timeout}");
                // The server ends the session (57P01 admin shutdown, or the closed socket).
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut a).await.unwrap();
                sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut b).await.unwrap();
                let terminated = sqlx::raw_sql("SELECT 1").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&terminated), DbErrorKind::Transient, "{terminated}");
                // Nothing listens: connection refused.
                let refused = sqlx::PgConnection::connect_with(&options.clone().port(closed_port())).await.map(drop).unwrap_err();
                assert_eq!(kind(&refused), DbErrorKind::Transient, "{refused}");
                assert!(!JobError::from(refused).is_permanent());
            }
            (None, None) => {
                let options = db.mysql_options.as_ref().expect("a MySQL test database");
                let number = |error: &sqlx::Error| match error {
                    sqlx::Error::Database(db) => db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number()),
                    _ => None,
                };
                let connect = || sqlx::MySqlConnection::connect_with(options);
                let mut a = connect().await.unwrap();
                let mut b = connect().await.unwrap();
                for conn in [&mut a, &mut b] {
                    sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION innodb_lock_wait_timeout = 1").execute(conn).await.unwrap();
                }
                sqlx::raw_sql("CREATE TABLE chaos_t (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(4) NOT NULL DEFAULT '') ENGINE = InnoDB").execute(&mut a).await.unwrap();
                sqlx::raw_sql("INSERT INTO chaos_t (id, v) VALUES (1, 0), (2, 0)").execute(&mut a).await.unwrap();
                // Permanent: the same statement fails the same way.
                let permanent = [
                    ("INSERT INTO chaos_t (id, v) VALUES (1, 0)", 1062),
                    ("SELEC 1", 1064),
                    ("SELECT * FROM no_such_table", 1146),
                    ("SELECT no_such_column FROM chaos_t", 1054),
                    ("INSERT INTO chaos_t (id, v, s) VALUES (3, 0, 'too long')", 1406),
                ];
                for (statement, expected) in permanent {
                    let error = sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut a).await.unwrap_err();
                    assert_eq!(number(&error), Some(expected), "{error}");
                    assert_eq!(kind(&error), DbErrorKind::Permanent, "{error}");
                    assert!(JobError::from(error).is_permanent());
                }
                // Lock wait timeout (1205): b waits longer than innodb_lock_wait_timeout.
                sqlx::raw_sql("BEGIN; UPDATE chaos_t SET v = 1 WHERE id = 1").execute(&mut a).await.unwrap();
                let lock_wait = sqlx::raw_sql("UPDATE chaos_t SET v = 2 WHERE id = 1").execute(&mut b).await.unwrap_err();
                assert_eq!(number(&lock_wait), Some(1205), "{lock_wait}");
                assert_eq!(kind(&lock_wait), DbErrorKind::Transient, "{lock_wait}");
                assert!(!JobError::from(lock_wait).is_permanent());
                sqlx::raw_sql("ROLLBACK").execute(&mut a).await.unwrap();
                // Deadlock (1213): two transactions lock the two rows in opposite orders.
                sqlx::raw_sql("SET SESSION innodb_lock_wait_timeout = 20").execute(&mut b).await.unwrap();
                sqlx::raw_sql("SET SESSION innodb_lock_wait_timeout = 20").execute(&mut a).await.unwrap();
                sqlx::raw_sql("BEGIN; UPDATE chaos_t SET v = 2 WHERE id = 1").execute(&mut a).await.unwrap();
                sqlx::raw_sql("BEGIN; UPDATE chaos_t SET v = 2 WHERE id = 2").execute(&mut b).await.unwrap();
                let (ra, rb) = tokio::join!(
                    sqlx::raw_sql("UPDATE chaos_t SET v = 3 WHERE id = 2").execute(&mut a),
                    sqlx::raw_sql("UPDATE chaos_t SET v = 3 WHERE id = 1").execute(&mut b),
                );
                let deadlock = ra.err().or(rb.err()).expect("one side is chosen as the deadlock victim");
                assert_eq!(number(&deadlock), Some(1213), "{deadlock}");
                assert_eq!(kind(&deadlock), DbErrorKind::Transient, "{deadlock}");
                for conn in [&mut a, &mut b] {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(conn).await;
                }
                // A statement killed by an operator (1317 query interrupted).
                let id_a: u64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS UNSIGNED)").fetch_one(&mut a).await.unwrap();
                let (slept, killed) = tokio::join!(
                    sqlx::raw_sql("SELECT SLEEP(5) FROM chaos_t WHERE id = 1 AND v = (SELECT COUNT(*) FROM chaos_t)").execute(&mut a),
                    async {
                        actix_rt::time::sleep(Duration::from_millis(300)).await;
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL QUERY {id_a}"))).execute(&mut b).await
                    },
                );
                killed.unwrap();
                // MariaDB reports a killed SLEEP as its result (1) rather than an error; a query
                // interrupted mid-statement reports 1317. Either way nothing permanent.
                if let Err(interrupted) = slept {
                    assert_eq!(kind(&interrupted), DbErrorKind::Transient, "{interrupted}");
                }
                // The connection killed by an operator or a failover tool: the next statement
                // meets 1927 (MariaDB), or the closed socket.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id_a}"))).execute(&mut b).await.unwrap();
                let gone = sqlx::raw_sql("SELECT 1").execute(&mut a).await.unwrap_err();
                assert_eq!(kind(&gone), DbErrorKind::Transient, "{gone}");
                assert!(!JobError::from(gone).is_permanent());
                // Unknown database (1049) and access denied (1045): permanent, at connect.
                let unknown = sqlx::MySqlConnection::connect_with(&options.clone().database("cronlease_no_such_db")).await.map(drop).unwrap_err();
                assert_eq!(number(&unknown), Some(1049), "{unknown}");
                assert_eq!(kind(&unknown), DbErrorKind::Permanent, "{unknown}");
                let denied = sqlx::MySqlConnection::connect_with(&options.clone().username("cronlease_no_such_user").password("wrong")).await.map(drop).unwrap_err();
                assert_eq!(number(&denied), Some(1045), "{denied}");
                assert_eq!(kind(&denied), DbErrorKind::Permanent, "{denied}");
                // Nothing listens: connection refused.
                let refused = sqlx::MySqlConnection::connect_with(&options.clone().port(closed_port())).await.map(drop).unwrap_err();
                assert_eq!(kind(&refused), DbErrorKind::Transient, "{refused}");
                assert!(!JobError::from(refused).is_permanent());
            }
        }
    }
}

on_every_backend! {
    async fn repeated_static_scopes_run_once_per_plan(db: TestDb) {
        // Repeats in a static list are dropped at build(): each scope runs once per plan.
        let runs = Runs::default();
        let scopes = [Scope::new("tenant", "a"), Scope::new("tenant", "a"), Scope::new("tenant", "b")];
        let s = scheduler(db.store.clone())
            .job(JobSpec::builder("dup").every("1h").scopes(scopes).handler(runs.ok_handler()).build().unwrap())
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.expect("tick");
        assert_eq!((report.won, report.job_errors), (2, 0), "{report:?}");
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        let mut ran: Vec<_> = runs.all().into_iter().map(|r| r.0).collect();
        ran.sort();
        assert_eq!(ran, ["a", "b"]);
        s.shutdown().await;
    }
}

on_every_backend! {
    async fn specs_at_their_limits_plan_and_run(db: TestDb) {
        // The longest settings build() accepts must not overflow planning or lease arithmetic
        // on any backend.
        let runs = Runs::default();
        let longest = "é".repeat(Scope::MAX_LEN / 2);
        let s = scheduler(db.store.clone())
            .job(
                JobSpec::builder("l".repeat(JobSpec::MAX_NAME_LEN))
                    .every("366d")
                    .schedule_delay(Duration::from_secs(3600))
                    .scopes([Scope::new(longest.clone(), longest)])
                    .run_timeout(JobSpec::MAX_RUN_TIMEOUT)
                    .stale_timeout(JobSpec::MAX_STALE_TIMEOUT)
                    .max_attempts(JobSpec::MAX_ATTEMPTS)
                    .backoff(cronlease::Backoff::exponential(Duration::from_secs(1), 10.0, cronlease::Backoff::MAX_DELAY))
                    .handler(runs.ok_handler())
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let report = s.tick_now().await.expect("tick");
        assert_eq!((report.won, report.job_errors), (1, 0), "{report:?}");
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        assert_eq!(runs.len(), 1);
        s.shutdown().await;
    }
}
