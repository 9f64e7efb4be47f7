//! `history/*`: claim and completion of 1,000 plans while the executions table already holds
//! 0, 1 M or 10 M rows of finished history, per backend; prints each cost's ratio to the empty
//! table of the same run, and the disk bytes per execution row.
//!
//! - The history is written once per size, set-based (a recursive CTE on SQLite,
//!   `generate_series` on PostgreSQL): SUCCESS rows of ten jobs × 1,000 scopes, one plan an hour
//!   going back from 60 days ago, with time-ordered ids like the store's own v7 ids. The sizes
//!   grow cumulatively (0, then 1 M more, then 9 M more) in one table.
//! - The measured job is one of the ten, on the same 1,000 scopes, so every claim lands in the
//!   dense part of the unique key, next to that scope's history.
//! - A claim is one guarded call (`execution_claim_guarded`, the default `Skip` policy) of 1,000
//!   plans and a completion one `execution_finish_success` of 1,000 writes: the batch sizes the
//!   runtime uses (the tick claims up to 2,000 plans a call, the completer writes up to 2,000).
//! - Sizes: `CRONLEASE_BENCH_HISTORY_SQLITE` (default `0,1000000`) and
//!   `CRONLEASE_BENCH_HISTORY_POSTGRES` (default `0,1000000,10000000`), comma-separated row
//!   counts; PostgreSQL runs when `CRONLEASE_TEST_POSTGRES_URL` is set.

#[path = "support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cronlease::store::{ClaimRequest, Claimed, PgStore, PlanClaim};
use cronlease::{ClaimGuard, OverlapPolicy, SqliteStore, Store};

/// Plans per measured claim and completion.
const PLANS: usize = 1000;
/// Jobs and scopes the history is spread over.
const JOBS: i64 = 10;
const SCOPES: i64 = 1000;
/// The measured job: one of the history's jobs.
const JOB: &str = "history-0";

/// A backend under test: the store and a raw pool on the same tables to write history and
/// read sizes.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool, String),
}

/// Per-iteration times recorded by the criterion closures: (backend, rows, op) -> times.
type Times = RefCell<BTreeMap<(String, u64, &'static str), Vec<Duration>>>;

fn sizes(var: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(var) {
        Ok(text) => text
            .split(',')
            .map(|s| s.trim().parse().expect("a row count"))
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// Adds history rows number `from..to` (see the module doc for their shape).
async fn fill(raw: &Raw, from: u64, to: u64) {
    if to <= from {
        return;
    }
    let started = Instant::now();
    match raw {
        Raw::Sqlite(pool) => {
            let base = (Utc::now() - TimeDelta::days(60)).timestamp_millis();
            let sql = format!(
                "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {to}),
                 r AS (SELECT i, {base} + (i / {per_slot}) * 3600000 AS t FROM n)
                 INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, runner_id, lease_token, claim_outcome,
                   heartbeat_at, stale_after, started_at, finished_at, created_at, updated_at,
                   duration_ms, rows_affected)
                 SELECT printf('%08x-%04x-7000-8000-%012x', t / 65536, t % 65536, i),
                   'history-' || (i % {JOBS}), 'tenant', CAST((i / {JOBS}) % {SCOPES} AS TEXT), t,
                   'SUCCESS', 1, 3, 'runner-1', printf('00000000-0000-4000-8000-%012x', i), 'won',
                   t, t + 600000, t, t + 1000, t, t + 1000, 1000, 0
                 FROM r",
                per_slot = JOBS * SCOPES,
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .expect("fill sqlite");
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
        Raw::Postgres(pool, _) => {
            let sql = format!(
                "WITH r AS (SELECT i, date_trunc('hour', now()) - interval '60 days'
                   + (i / {per_slot}) * interval '1 hour' AS t FROM generate_series({from}::bigint, {to}::bigint - 1) AS i)
                 INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time,
                   status, attempt, max_attempts, runner_id, lease_token, claim_outcome,
                   heartbeat_at, stale_after, started_at, finished_at, created_at, updated_at,
                   duration_ms, rows_affected)
                 SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0')
                     || '7000' || '8000' || lpad(to_hex(i), 12, '0'))::uuid,
                   'history-' || (i % {JOBS}), 'tenant', ((i / {JOBS}) % {SCOPES})::text, t,
                   'SUCCESS', 1, 3, 'runner-1', ('00000000000040008000' || lpad(to_hex(i), 12, '0'))::uuid,
                   'won', t, t + interval '10 minutes', t, t + interval '1 second', t,
                   t + interval '1 second', 1000, 0
                 FROM r",
                per_slot = JOBS * SCOPES,
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .expect("fill postgres");
            sqlx::query("VACUUM ANALYZE cronlease_executions")
                .execute(pool)
                .await
                .expect("vacuum analyze");
        }
    }
    eprintln!(
        "history: wrote rows {from}..{to} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Rows in the executions table and the bytes it takes on disk (table and indexes).
async fn footprint(raw: &Raw) -> (i64, i64) {
    match raw {
        Raw::Sqlite(pool) => {
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cronlease_executions")
                .fetch_one(pool)
                .await
                .expect("count");
            // dbstat is not in every build: fall back to the whole file's pages.
            let bytes: i64 = match sqlx::query_scalar::<_, i64>(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'cronlease_executions'
                   OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'cronlease_executions')",
            )
            .fetch_one(pool)
            .await
            {
                Ok(bytes) => bytes,
                Err(_) => {
                    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                        .fetch_one(pool)
                        .await
                        .expect("page_count");
                    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                        .fetch_one(pool)
                        .await
                        .expect("page_size");
                    pages * size
                }
            };
            (rows, bytes)
        }
        Raw::Postgres(pool, _) => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM cronlease_executions),
                    pg_total_relation_size('cronlease_executions')",
        )
        .fetch_one(pool)
        .await
        .expect("size"),
    }
}

/// Claims `PLANS` fresh plans of the measured job at `plan_time`, guarded as the runtime's
/// default `Skip` policy claims; returns the claims and the time the call took.
async fn claim(store: &Arc<dyn Store>, plan_time: DateTime<Utc>) -> (Vec<Claimed>, Duration) {
    let request = ClaimRequest {
        job: JOB,
        max_attempts: 3,
        runner_id: "bench",
        stale_timeout: Duration::from_secs(600),
        allow_stale_reentry: true,
        steal_not_after: None,
        plans: support::scopes(PLANS)
            .into_iter()
            .map(|scope| PlanClaim::new(scope, plan_time))
            .collect(),
    };
    let guard = ClaimGuard {
        overlap: OverlapPolicy::Skip,
        ..ClaimGuard::default()
    };
    let started = Instant::now();
    let claimed = store
        .execution_claim_guarded(&request, &guard)
        .await
        .expect("claim")
        .claimed;
    let elapsed = started.elapsed();
    assert_eq!(claimed.len(), PLANS, "every fresh plan is claimed");
    (claimed, elapsed)
}

/// Records success for every claim in one call; returns the time it took.
async fn finish(store: &Arc<dyn Store>, claimed: &[Claimed]) -> Duration {
    let writes = support::success_writes(claimed);
    let started = Instant::now();
    let written = store
        .execution_finish_success(&writes)
        .await
        .expect("finish");
    let elapsed = started.elapsed();
    assert_eq!(written.len(), claimed.len(), "every lease is written");
    elapsed
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    c: &mut Criterion,
    runner: &actix_rt::SystemRunner,
    name: &str,
    store: &Arc<dyn Store>,
    raw: &Raw,
    sizes: &[u64],
    times: &Times,
    footprints: &mut Vec<(String, u64, i64, i64)>,
) {
    let mut written = 0u64;
    // Measured plans come after the history: one minute apart from a minute from now.
    let base = Utc::now() + TimeDelta::minutes(1);
    let round = RefCell::new(0i64);
    let next_plan = || {
        *round.borrow_mut() += 1;
        base + TimeDelta::minutes(*round.borrow())
    };
    for &rows in sizes {
        runner.block_on(fill(raw, written, rows));
        written = written.max(rows);
        let (counted, bytes) = runner.block_on(footprint(raw));
        footprints.push((name.to_owned(), rows, counted, bytes));
        let mut group = c.benchmark_group("history");
        group.sample_size(10);
        group.throughput(Throughput::Elements(PLANS as u64));
        group.bench_function(BenchmarkId::new(format!("{name}_claim_1000"), rows), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (claimed, took) = runner.block_on(claim(store, next_plan()));
                    runner.block_on(finish(store, &claimed));
                    times
                        .borrow_mut()
                        .entry((name.to_owned(), rows, "claim"))
                        .or_default()
                        .push(took);
                    total += took;
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new(format!("{name}_finish_1000"), rows), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (claimed, _) = runner.block_on(claim(store, next_plan()));
                    let took = runner.block_on(finish(store, &claimed));
                    times
                        .borrow_mut()
                        .entry((name.to_owned(), rows, "finish"))
                        .or_default()
                        .push(took);
                    total += took;
                }
                total
            })
        });
        group.finish();
    }
}

fn median_ms(times: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    support::percentile(&ms, 50.0)
}

fn bench(c: &mut Criterion) {
    let runner = actix_rt::System::new();
    let times: Times = RefCell::default();
    let mut footprints = Vec::new();
    let load_before = load_average();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.db");
    let sqlite = runner.block_on(async {
        let store = SqliteStore::open(&path).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("raw sqlite");
        (Arc::new(store) as Arc<dyn Store>, Raw::Sqlite(raw))
    });
    measure(
        c,
        &runner,
        "sqlite",
        &sqlite.0,
        &sqlite.1,
        &sizes("CRONLEASE_BENCH_HISTORY_SQLITE", &[0, 1_000_000]),
        &times,
        &mut footprints,
    );
    drop(sqlite);

    if let Ok(url) = std::env::var(support::POSTGRES_URL_VAR) {
        let (store, raw) = runner.block_on(async {
            let schema = format!("cronlease_history_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .expect("create schema");
            admin.close().await;
            let options: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres url");
            let options = options.options([("search_path", schema.as_str())]);
            let store = PgStore::connect_with(options.clone())
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            let raw = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .expect("raw postgres");
            (
                Arc::new(store) as Arc<dyn Store>,
                Raw::Postgres(raw, schema),
            )
        });
        measure(
            c,
            &runner,
            "postgres",
            &store,
            &raw,
            &sizes(
                "CRONLEASE_BENCH_HISTORY_POSTGRES",
                &[0, 1_000_000, 10_000_000],
            ),
            &times,
            &mut footprints,
        );
        if let Raw::Postgres(pool, schema) = raw {
            runner.block_on(async {
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await {
                    eprintln!("could not drop bench schema {schema}: {error}");
                }
            });
        }
    }

    println!();
    println!(
        "history: load average before {load_before}, after {}",
        load_average()
    );
    println!(
        "{:<9} {:>12} {:>14} {:>7} {:>15} {:>7} {:>11}",
        "backend", "history rows", "claim ms/1000", "ratio", "finish ms/1000", "ratio", "bytes/row"
    );
    let times = times.borrow();
    for (name, rows, counted, bytes) in &footprints {
        let at = |rows: u64, op| {
            times
                .get(&(name.clone(), rows, op))
                .map(|t| median_ms(t))
                .unwrap_or(f64::NAN)
        };
        let empty = footprints
            .iter()
            .find(|f| &f.0 == name)
            .map(|f| f.1)
            .unwrap_or(0);
        let per_row = if *counted > 0 {
            format!("{}", bytes / counted)
        } else {
            "-".into()
        };
        println!(
            "{:<9} {:>12} {:>14.2} {:>7.2} {:>15.2} {:>7.2} {:>11}",
            name,
            rows,
            at(*rows, "claim"),
            at(*rows, "claim") / at(empty, "claim"),
            at(*rows, "finish"),
            at(*rows, "finish") / at(empty, "finish"),
            per_row
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
