//! Time-partitioned history on PostgreSQL: converting a plain table (and back), the retention
//! service creating partitions ahead and dropping past days whole while keeping the keepers,
//! two replicas doing it at once, and a scheduler running on a partitioned table.
//! Every test needs `CRONLEASE_TEST_POSTGRES_URL` (skipped without it; `.ci/run` sets it for the
//! PostgreSQL suite).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use common::{Runs, TestDb, scheduler};
use cronlease::store::{ClaimRequest, PartitionKeep, PartitionOptions, PlanClaim};
use cronlease::{
    Backoff, ExecutionFilter, JobError, JobOutput, JobSpec, PgStore, Retention, Scope, Status,
};
use sqlx::PgPool;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn pg() -> Option<(TestDb, PgStore, PgPool)> {
    let Some(db) = common::postgres().await else {
        common::postgres_missing();
        return None;
    };
    let options = db.pg_options.clone().unwrap();
    let store = PgStore::connect_with(options.clone())
        .await
        .unwrap()
        .with_clock_skew(db.base_skew);
    let pool = PgPool::connect_with(options).await.unwrap();
    Some((db, store, pool))
}

/// One row as a test wants it; the rest filled in.
struct Row {
    job: &'static str,
    scope: &'static str,
    plan_time: DateTime<Utc>,
    status: &'static str,
    finished_at: Option<DateTime<Utc>>,
    replay_pending: bool,
}

fn row(
    job: &'static str,
    scope: &'static str,
    plan_time: DateTime<Utc>,
    status: &'static str,
) -> Row {
    Row {
        job,
        scope,
        plan_time,
        status,
        finished_at: (status != "RUNNING" && status != "FAILED").then_some(plan_time),
        replay_pending: false,
    }
}

async fn insert(pool: &PgPool, r: &Row) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time, status,
           attempt, max_attempts, runner_id, lease_token, finished_at, created_at, updated_at,
           replay_pending, next_retry_at, stale_after)
         VALUES ($1, $2, 'tenant', $3, $4, $5, 1, 3, 'seed', $6, $7, $4, $4, $8,
           CASE WHEN $5 = 'FAILED' THEN $4 END, CASE WHEN $5 = 'RUNNING' THEN $4 END)",
    )
    .bind(id)
    .bind(r.job)
    .bind(r.scope)
    .bind(r.plan_time)
    .bind(r.status)
    .bind(Uuid::new_v4())
    .bind(r.finished_at)
    .bind(r.replay_pending)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Every row, as text, in id order: what a conversion must keep exactly.
async fn dump(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT e::text FROM cronlease_executions AS e ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Where a row lives: the partition's name.
async fn partition_of(pool: &PgPool, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT tableoid::regclass::text FROM cronlease_executions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// The index definitions of the history, names and table names left out, the primary key
/// apart (it gains `plan_time` on a partitioned table).
async fn indexes(pool: &PgPool) -> Vec<String> {
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
         WHERE tablename = 'cronlease_executions' AND schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    defs.into_iter()
        .map(|(name, def)| {
            let unique = if def.contains(" UNIQUE ") {
                "unique "
            } else {
                ""
            };
            let def = def.split(" USING ").nth(1).unwrap_or(&def).to_owned();
            format!("{name}: {unique}{def}")
        })
        .collect()
}

fn days_ago(now: DateTime<Utc>, days: u64) -> DateTime<Utc> {
    let day = now.date_naive() - Days::new(days);
    day.and_hms_opt(6, 0, 0).unwrap().and_utc()
}

#[actix::test]
async fn postgres_conversion_keeps_every_row_and_the_plan_key_and_runs_once() {
    let Some((db, pg, pool)) = pg().await else {
        return;
    };
    let now = db.store.db_now().await.unwrap();
    let plain_indexes = indexes(&pool).await;
    let mut seeded = Vec::new();
    for days in [40, 5, 3, 1, 0] {
        let t = days_ago(now, days);
        seeded.push(insert(&pool, &row("j", "1", t, "SUCCESS")).await);
    }
    seeded.push(insert(&pool, &row("j", "2", days_ago(now, 2), "RUNNING")).await);
    seeded.push(insert(&pool, &row("j", "3", days_ago(now, 2), "FAILED")).await);
    seeded.push(insert(&pool, &row("j", "4", days_ago(now, 4), "DEAD")).await);
    let mut replay = row("j", "5", days_ago(now, 3), "FAILED");
    replay.replay_pending = true;
    seeded.push(insert(&pool, &replay).await);
    let before = dump(&pool).await;

    let options = PartitionOptions {
        days_back: 10,
        days_ahead: 3,
    };
    let done = pg.partition_history(&options).await.unwrap();
    assert!(!done.already_partitioned);
    assert_eq!(done.rows, seeded.len() as u64);
    assert_eq!(
        done.rows_in_default, 1,
        "the 40-day-old row is older than days_back"
    );
    let today = now.date_naive();
    assert_eq!(
        done.days.first(),
        Some(&(today - Days::new(10))),
        "days_back, the oldest row being older"
    );
    assert_eq!(done.days.last(), Some(&(today + Days::new(3))));
    assert_eq!(dump(&pool).await, before, "every row kept, unchanged");
    assert_eq!(
        partition_of(&pool, seeded[0]).await.unwrap(),
        "cronlease_executions_default"
    );
    let expected = format!("cronlease_executions_p{}", today.format("%Y%m%d"));
    assert_eq!(partition_of(&pool, seeded[4]).await.unwrap(), expected);

    // Same indexes and constraints but the primary key, replaced by a unique index on id in
    // every partition.
    let partitioned_indexes = indexes(&pool).await;
    let strip = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|d| !d.starts_with("cronlease_executions_pkey"))
            .cloned()
            .collect()
    };
    assert_eq!(partitioned_indexes, strip(&plain_indexes));
    let without_id_key: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'cronlease_executions'::regclass
           AND NOT EXISTS (SELECT 1 FROM pg_indexes AS x WHERE x.tablename = c.relname
             AND x.schemaname = current_schema() AND x.indexdef LIKE 'CREATE UNIQUE INDEX % (id)')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(without_id_key.is_empty(), "{without_id_key:?}");
    // The constraint names later migrations use are there.
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'cronlease_executions'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        checks.contains(&"cronlease_executions_status_check".to_owned()),
        "{checks:?}"
    );

    // The plan key holds across the table: a second row for a plan fails, and a claim of an
    // existing plan is a conflict.
    let dup = row("j", "1", days_ago(now, 3), "SUCCESS");
    let err = sqlx::query(
        "INSERT INTO cronlease_executions (id, job_name, scope_kind, scope_id, plan_time, status,
           attempt, max_attempts, runner_id, lease_token, created_at, updated_at)
         VALUES ($1, $2, 'tenant', $3, $4, 'SUCCESS', 1, 3, 'x', $1, $4, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(dup.job)
    .bind(dup.scope)
    .bind(dup.plan_time)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("duplicate key"), "{err}");
    let claimed = db
        .store
        .execution_claim(&ClaimRequest {
            job: "j",
            max_attempts: 3,
            runner_id: "r",
            stale_timeout: Duration::from_secs(60),
            allow_stale_reentry: false,
            steal_not_after: None,
            plans: vec![PlanClaim::new(Scope::new("tenant", "1"), days_ago(now, 3))],
        })
        .await
        .unwrap();
    assert!(claimed.is_empty(), "the plan has a row: conflicted");

    // A second conversion changes nothing and says so; the store reads the layout.
    let again = pg.partition_history(&options).await.unwrap();
    assert!(again.already_partitioned);
    assert_eq!(dump(&pool).await, before);
    let state = db
        .store
        .history_partitions()
        .await
        .unwrap()
        .expect("partitioned");
    assert_eq!(state.days, done.days);

    // And back: one plain table with every row and the plain indexes.
    assert_eq!(
        pg.unpartition_history().await.unwrap(),
        Some(seeded.len() as u64)
    );
    assert_eq!(
        pg.unpartition_history().await.unwrap(),
        None,
        "plain already"
    );
    assert!(db.store.history_partitions().await.unwrap().is_none());
    assert_eq!(dump(&pool).await, before);
    assert_eq!(indexes(&pool).await, plain_indexes);
}

#[actix::test]
async fn postgres_partition_methods_are_refused_on_a_plain_table() {
    let Some((db, _pg, _pool)) = pg().await else {
        return;
    };
    assert!(db.store.history_partitions().await.unwrap().is_none());
    let today = db.store.db_now().await.unwrap().date_naive();
    let err = db
        .store
        .history_partitions_create(&[today])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not partitioned"), "{err}");
}

/// A day 40 days back, in its own partition, holding one row of each kind.
struct PastDay {
    day: NaiveDate,
    prunable: Vec<Uuid>,
    keepers: Vec<Uuid>,
}

async fn past_day(db: &TestDb, pg: &PgStore, pool: &PgPool) -> PastDay {
    let now = db.store.db_now().await.unwrap();
    let day = now.date_naive() - Days::new(40);
    let at = |hour: u32| day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    let recent = now - TimeDelta::hours(1);
    let mut prunable = Vec::new();
    let mut keepers = Vec::new();
    // Scope 1: three old SUCCESS rows; the newest of the scope is a keeper.
    prunable.push(insert(pool, &row("j", "1", at(1), "SUCCESS")).await);
    prunable.push(insert(pool, &row("j", "1", at(2), "SUCCESS")).await);
    keepers.push(insert(pool, &row("j", "1", at(3), "SUCCESS")).await);
    // Scope 2 has a newer plan today: its old rows all go, DEAD and SKIPPED alike.
    prunable.push(insert(pool, &row("j", "2", at(1), "SUCCESS")).await);
    prunable.push(insert(pool, &row("j", "2", at(2), "DEAD")).await);
    prunable.push(insert(pool, &row("j", "2", at(3), "SKIPPED")).await);
    insert(pool, &row("j", "2", now - TimeDelta::minutes(5), "SUCCESS")).await;
    // Not finished, or awaiting a replay: kept.
    keepers.push(insert(pool, &row("j", "2", at(4), "RUNNING")).await);
    keepers.push(insert(pool, &row("j", "2", at(5), "FAILED")).await);
    let mut replay = row("j", "2", at(6), "FAILED");
    replay.replay_pending = true;
    keepers.push(insert(pool, &replay).await);
    // Finished recently (a late retry of an old plan), for both sets: kept.
    let mut late = row("j", "2", at(7), "SUCCESS");
    late.finished_at = Some(recent);
    keepers.push(insert(pool, &late).await);
    let mut late_dead = row("j", "2", at(8), "DEAD");
    late_dead.finished_at = Some(recent);
    keepers.push(insert(pool, &late_dead).await);
    // A job kept forever: kept; a job with a shorter retention of its own: pruned.
    keepers.push(insert(pool, &row("audit", "2", at(1), "SUCCESS")).await);
    insert(
        pool,
        &row("audit", "2", now - TimeDelta::minutes(5), "SUCCESS"),
    )
    .await;
    prunable.push(insert(pool, &row("minutely", "2", at(1), "SUCCESS")).await);
    insert(
        pool,
        &row("minutely", "2", now - TimeDelta::minutes(5), "SUCCESS"),
    )
    .await;
    // A manual run newer than the last scheduled plan does not count as newer: the scheduled
    // row stays (and the manual one has no newer scheduled row either).
    keepers.push(insert(pool, &row("j", "3", at(1), "SUCCESS")).await);
    let manual = insert(pool, &row("j", "3", at(2), "SUCCESS")).await;
    sqlx::query("UPDATE cronlease_executions SET trigger_id = $1 WHERE id = $1")
        .bind(manual)
        .execute(pool)
        .await
        .unwrap();
    keepers.push(manual);
    let options = PartitionOptions {
        days_back: 45,
        days_ahead: 1,
    };
    let done = pg.partition_history(&options).await.unwrap();
    assert_eq!(done.rows_in_default, 0);
    for id in prunable.iter().chain(&keepers) {
        let expected = format!("cronlease_executions_p{}", day.format("%Y%m%d"));
        assert_eq!(partition_of(pool, *id).await.unwrap(), expected);
    }
    PastDay {
        day,
        prunable,
        keepers,
    }
}

fn keep_rules() -> PartitionKeep {
    PartitionKeep {
        finished: Some(30 * DAY),
        finished_own: vec![("audit".into(), None), ("minutely".into(), Some(DAY))],
        dead: Some(7 * DAY),
    }
}

#[actix::test]
async fn postgres_dropping_a_past_day_keeps_exactly_the_keepers_in_default() {
    let Some((db, pg, pool)) = pg().await else {
        return;
    };
    let past = past_day(&db, &pg, &pool).await;
    let total = past.prunable.len() + past.keepers.len();
    let dropped = db
        .store
        .history_partition_drop(past.day, &keep_rules())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (dropped.rows, dropped.kept),
        (total as u64, past.keepers.len() as u64)
    );
    for id in &past.prunable {
        assert_eq!(partition_of(&pool, *id).await, None, "{id} deleted");
    }
    for id in &past.keepers {
        assert_eq!(
            partition_of(&pool, *id).await.as_deref(),
            Some("cronlease_executions_default"),
            "{id} kept"
        );
    }
    let state = db.store.history_partitions().await.unwrap().unwrap();
    assert!(!state.days.contains(&past.day));
    assert_eq!(
        db.store
            .history_partition_drop(past.day, &keep_rules())
            .await
            .unwrap(),
        None,
        "gone already"
    );
}

#[actix::test]
async fn postgres_retention_service_creates_days_ahead_and_drops_past_days_from_two_replicas() {
    let Some((db, pg, pool)) = pg().await else {
        return;
    };
    let past = past_day(&db, &pg, &pool).await;
    let runs = Runs::default();
    let job = |name: &str| {
        JobSpec::builder(name)
            .every("1d")
            .handler(runs.ok_handler())
    };
    let replica = || {
        scheduler(db.store.clone())
            .retention(Retention {
                batch_size: 2,
                ..Retention::default()
            })
            .job(job("j").build().unwrap())
            .job(job("audit").keep_finished_forever().build().unwrap())
            .job(job("minutely").keep_finished(DAY).build().unwrap())
    };
    let (a, b) = (
        replica().start().await.unwrap(),
        replica().start().await.unwrap(),
    );
    let (ra, rb) = tokio::join!(a.prune_now(), b.prune_now());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // The conversion made days -40 to +1; -40 to -31 ended more than 30 days ago.
    assert_eq!(
        ra.partitions_dropped + rb.partitions_dropped,
        10,
        "{ra:?} {rb:?}"
    );
    assert_eq!(
        ra.partition_kept + rb.partition_kept,
        past.keepers.len() as u64
    );
    let state = db.store.history_partitions().await.unwrap().unwrap();
    let today = state.now.date_naive();
    let ahead: Vec<NaiveDate> = today.iter_days().take(8).collect();
    assert!(
        ahead.iter().all(|d| state.days.contains(d)),
        "today and 7 days ahead: {:?}",
        state.days
    );
    assert_eq!(
        ra.partitions_created + rb.partitions_created,
        6,
        "{ra:?} {rb:?}"
    );
    assert!(!state.days.contains(&past.day));
    for id in &past.prunable {
        assert_eq!(partition_of(&pool, *id).await, None, "{id} deleted");
    }
    for id in &past.keepers {
        assert!(partition_of(&pool, *id).await.is_some(), "{id} kept");
    }
    // A second run has nothing left to do.
    let again = a.prune_now().await.unwrap();
    assert_eq!((again.partitions_created, again.partitions_dropped), (0, 0));
    a.shutdown().await;
    b.shutdown().await;
}

#[actix::test]
async fn postgres_partitioned_scheduler_runs_plans_to_success_and_failures_to_dead_letters() {
    let Some(db) = common::postgres_partitioned().await else {
        common::postgres_missing();
        return;
    };
    let runs = Runs::default();
    let s = cronlease::Scheduler::builder_shared(db.store.clone())
        .retention(Retention {
            interval: Duration::from_millis(200),
            ..Retention::default()
        })
        .job(
            JobSpec::builder("ok")
                .every("1s")
                .scopes(common::tenants(3))
                .handler(runs.ok_handler())
                .build()
                .unwrap(),
        )
        .job(
            JobSpec::builder("broken")
                .every("1h")
                .max_attempts(2)
                .backoff(Backoff::list(["0s"]).unwrap())
                .handler(|ctx: cronlease::JobContext| {
                    std::future::ready(Err::<JobOutput, _>(JobError::retryable(format!(
                        "attempt {} failed",
                        ctx.attempt()
                    ))))
                })
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    let store = db.store.clone();
    common::eventually(20, "two plans of each scope SUCCESS", || {
        let store = store.clone();
        async move {
            let rows = common::rows(&*store, "ok").await;
            let mut per_scope: BTreeMap<String, usize> = BTreeMap::new();
            for r in rows.iter().filter(|r| r.status == Status::Success) {
                *per_scope.entry(r.scope.id.clone()).or_default() += 1;
            }
            (per_scope.len() == 3 && per_scope.values().all(|n| *n >= 2)).then_some(())
        }
    })
    .await;
    let dead = common::eventually(20, "the failing plan dead-lettered", || {
        let store = store.clone();
        async move {
            let rows = store
                .execution_list(&ExecutionFilter {
                    job: Some("broken".into()),
                    status: Some(Status::Dead),
                    ..ExecutionFilter::default()
                })
                .await
                .unwrap();
            rows.into_iter().next()
        }
    })
    .await;
    assert_eq!(
        (dead.attempt, dead.failures.len()),
        (2, 2),
        "retried once, then dead"
    );
    s.shutdown().await;
    assert!(
        db.store.history_partitions().await.unwrap().is_some(),
        "still partitioned"
    );
}
