//! Time-partitioned history on PostgreSQL: converting the plain table, and the day partitions
//! the retention service creates ahead and drops whole once past retention.
//!
//! The partitioned `cronlease_executions` is `PARTITION BY RANGE (plan_time)` with one partition
//! per UTC day (`cronlease_executions_pYYYYMMDD`, `[day 00:00 UTC, next day 00:00 UTC)`) and a
//! `DEFAULT` partition (`cronlease_executions_default`) for every other time. Every index and
//! constraint of the plain table is there with the same name, so later migrations apply to
//! either, but for the primary key on `id`: a partitioned table's unique keys must hold the
//! partition key, and a key on `(id, plan_time)` does not tell the planner that `id = $1`
//! matches one row. Without fresh statistics on a partition (new, or changed faster than
//! autovacuum analyzes it) it then finds rows by id through a bitmap over the partial
//! `status = 'RUNNING'` index instead, a whole-index pass per id: a 2,000-lease heartbeat took
//! 25 s on 2,000 rows. So each partition has its own unique index on `id`
//! (`<partition>_id_key`), which the planner trusts; ids are UUID v7, unique by construction,
//! though no index checks it across partitions. Every statement of `sql.rs` works on both
//! tables: its `ON CONFLICT` target is the plan key, which holds `plan_time`.
//!
//! Every change of the partition layout (convert, create, drop) first takes one transaction
//! advisory lock, so replicas running the retention service at once take turns, and a partition
//! another replica created or dropped meanwhile is seen as such.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::{Error, Result};
use crate::schedule::duration_ms;
use crate::store::db_error;
use crate::store::partitions::{
    HistoryConversion, HistoryPartitions, PartitionDropped, PartitionKeep, PartitionOptions,
};

/// The `pg_advisory_xact_lock` key of every partition layout change (the bytes of `cronpart`).
const PARTITION_LOCK_KEY: i64 = 0x6372_6f6e_7061_7274;

/// The name prefix of a day partition; the day follows as `YYYYMMDD`.
const DAY_PREFIX: &str = "cronlease_executions_p";
/// The DEFAULT partition: rows of days without a partition of their own.
const DEFAULT_PARTITION: &str = "cronlease_executions_default";

/// Whether the history is partitioned, its partitions and the clock, in one statement. Table
/// names resolve through the `search_path`, like every statement of the store.
pub(super) const PARTITION_STATE: &str = "\
SELECT {NOW} AS now,
  EXISTS (SELECT 1 FROM pg_partitioned_table
    WHERE partrelid = to_regclass('cronlease_executions')) AS partitioned,
  ARRAY(SELECT c.relname::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = to_regclass('cronlease_executions') ORDER BY 1) AS parts";

/// Moves the keepers of a detached day partition (`{PART}`) back into the history (they land in
/// DEFAULT), and counts its rows. A row is deleted only when the batched prune
/// (`prunable!` in `sql.rs`) would delete it now: finished for good (or DEAD) longer ago than its
/// job's retention, not awaiting a replay, and not the newest scheduled row of its
/// `(job, scope)`. The newest-row test reads the partition's own newest scheduled plan per scope
/// (`g`, one pass) and probes the rest of the history only for rows at or after it, so its cost
/// follows the scopes, not the rows. `COALESCE(.., false)`: a row whose test is unknown (a NULL)
/// is kept.
/// $1, $2: jobs with their own `keep_finished` and its ms (NULL: forever); $3: the default
/// `keep_finished` ms (NULL: forever); $4: `keep_dead` ms (NULL: forever).
pub(super) const PARTITION_KEEPERS: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
g AS MATERIALIZED (
  SELECT job_name, scope_kind, scope_id,
    MAX(plan_time) FILTER (WHERE trigger_id IS NULL) AS newest, COUNT(*) AS n
  FROM {PART} GROUP BY job_name, scope_kind, scope_id),
ins AS (
  INSERT INTO cronlease_executions
  SELECT x.* FROM {PART} AS x
  JOIN g ON g.job_name = x.job_name AND g.scope_kind = x.scope_kind AND g.scope_id = x.scope_id
  LEFT JOIN UNNEST($1::text[], $2::bigint[]) AS o(job, keep_ms) ON o.job = x.job_name
  CROSS JOIN c
  WHERE NOT COALESCE(
    NOT x.replay_pending
    AND ((x.status IN ('SUCCESS', 'SUPERSEDED', 'SKIPPED')
        AND x.finished_at < c.now - (CASE WHEN o.job IS NULL THEN $3::bigint ELSE o.keep_ms END)
          * interval '1 millisecond')
      OR (x.status = 'DEAD' AND x.finished_at < c.now - $4::bigint * interval '1 millisecond'))
    AND (x.plan_time < g.newest OR EXISTS (SELECT 1 FROM cronlease_executions AS n
      WHERE n.job_name = x.job_name AND n.scope_kind = x.scope_kind AND n.scope_id = x.scope_id
        AND n.plan_time > x.plan_time AND n.trigger_id IS NULL)),
    false)
  RETURNING 1)
SELECT (SELECT COUNT(*) FROM ins) AS kept, (SELECT COALESCE(SUM(n), 0) FROM g)::bigint AS total";

/// The partitioned table's keys and indexes: the plain table's (see `migrate.rs`, as of its
/// last migration) but the primary key, replaced by each partition's unique index on `id`
/// ([`id_key`]).
const PARTITIONED_INDEXES: &str = "
ALTER TABLE cronlease_executions
  ADD CONSTRAINT cronlease_executions_plan_key UNIQUE (job_name, scope_kind, scope_id, plan_time);
CREATE INDEX cronlease_executions_stale ON cronlease_executions (job_name, stale_after)
  WHERE status = 'RUNNING';
CREATE INDEX cronlease_executions_running ON cronlease_executions
  (job_name, scope_kind, scope_id) WHERE status IN ('RUNNING', '-');
CREATE INDEX cronlease_executions_retry ON cronlease_executions (job_name, next_retry_at)
  WHERE status = 'FAILED';
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED');
";

/// The plain table's keys and indexes, for going back.
const PLAIN_INDEXES: &str = "
ALTER TABLE cronlease_executions
  ADD CONSTRAINT cronlease_executions_pkey PRIMARY KEY (id),
  ADD CONSTRAINT cronlease_executions_plan_key UNIQUE (job_name, scope_kind, scope_id, plan_time);
CREATE INDEX cronlease_executions_stale ON cronlease_executions (job_name, stale_after)
  WHERE status = 'RUNNING';
CREATE INDEX cronlease_executions_running ON cronlease_executions
  (job_name, scope_kind, scope_id) WHERE status IN ('RUNNING', '-');
CREATE INDEX cronlease_executions_retry ON cronlease_executions (job_name, next_retry_at)
  WHERE status = 'FAILED';
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED');
";

/// The name of `day`'s partition.
pub(super) fn day_partition(day: NaiveDate) -> String {
    format!("{DAY_PREFIX}{}", day.format("%Y%m%d"))
}

/// The day of a partition named by [`day_partition`]; `None` for any other name (DEFAULT, or a
/// table an operator attached by hand, which the retention service leaves alone).
pub(super) fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(DAY_PREFIX)?;
    if digits.len() != 8 {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// The unique index on `id` of one partition (see the module's documentation).
fn id_key(partition: &str) -> String {
    format!("CREATE UNIQUE INDEX {partition}_id_key ON {partition} (id);\n")
}

/// `day`'s bounds as SQL literals: `[day, day + 1)` in UTC.
fn bounds(day: NaiveDate) -> (String, String) {
    let next = day + Days::new(1);
    (
        format!("'{} 00:00:00+00'", day.format("%Y-%m-%d")),
        format!("'{} 00:00:00+00'", next.format("%Y-%m-%d")),
    )
}

async fn exec(conn: &mut PgConnection, op: &'static str, sql: String) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(|e| db_error(op, e))?;
    Ok(())
}

/// The transaction a conversion either way runs in: no statement timeout (it copies the whole
/// history), quiet notices, and the partition lock, so it never runs beside another change.
async fn begin_layout_change<'c>(
    conn: &'c mut PgConnection,
    op: &'static str,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>> {
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(|e| db_error(op, e))?;
    exec(
        &mut tx,
        op,
        "SET LOCAL statement_timeout = 0; SET LOCAL client_min_messages = warning".into(),
    )
    .await?;
    lock(&mut tx, op).await?;
    Ok(tx)
}

async fn lock(conn: &mut PgConnection, op: &'static str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PARTITION_LOCK_KEY)
        .execute(conn)
        .await
        .map_err(|e| db_error(op, e))?;
    Ok(())
}

async fn exists(conn: &mut PgConnection, op: &'static str, table: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(conn)
        .await
        .map_err(|e| db_error(op, e))
}

async fn is_partitioned(conn: &mut PgConnection, op: &'static str) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table
           WHERE partrelid = to_regclass('cronlease_executions'))",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| db_error(op, e))
}

/// The state from [`PARTITION_STATE`] (clock filled in): `None` for a plain table.
pub(super) async fn state(conn: &mut PgConnection, sql: &str) -> Result<Option<HistoryPartitions>> {
    let (now, partitioned, parts): (DateTime<Utc>, bool, Vec<String>) =
        sqlx::query_as(AssertSqlSafe(sql.to_owned()))
            .fetch_one(conn)
            .await
            .map_err(|e| db_error("history_partitions", e))?;
    if !partitioned {
        return Ok(None);
    }
    let mut days: Vec<NaiveDate> = parts.iter().filter_map(|p| partition_day(p)).collect();
    days.sort();
    Ok(Some(HistoryPartitions { now, days }))
}

/// Creates the partitions of `days` that are missing; returns how many it created. Rows the
/// DEFAULT partition holds for such a day (written while the day had no partition) move into
/// it: the table is created standalone, filled, then attached (which checks DEFAULT holds no
/// more rows of the day).
pub(super) async fn create(conn: &mut PgConnection, days: &[NaiveDate]) -> Result<u64> {
    const OP: &str = "history_partitions_create";
    if days.is_empty() {
        return Ok(0);
    }
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(|e| db_error(OP, e))?;
    lock(&mut tx, OP).await?;
    if !is_partitioned(&mut tx, OP).await? {
        return Err(Error::InvalidRequest(
            "the execution history is not partitioned: no day partition to create".into(),
        ));
    }
    let mut created = 0;
    for &day in days {
        let name = day_partition(day);
        if exists(&mut tx, OP, &name).await? {
            continue;
        }
        let (from, to) = bounds(day);
        exec(
            &mut tx,
            OP,
            format!(
                "CREATE TABLE {name} (LIKE cronlease_executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE plan_time >= {from} AND plan_time < {to}
  RETURNING *)
INSERT INTO {name} SELECT * FROM moved;
{}ALTER TABLE cronlease_executions ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to});",
                id_key(&name)
            ),
        )
        .await?;
        created += 1;
    }
    tx.commit().await.map_err(|e| db_error(OP, e))?;
    Ok(created)
}

/// Drops `day`'s partition whole, in one transaction: detaches it, moves its keepers (see
/// [`PARTITION_KEEPERS`], `keepers` with the clock filled in) back into the history, where they
/// land in DEFAULT, and drops it. `None` when the day has no partition (another replica dropped
/// it first). Detaching takes an `ACCESS EXCLUSIVE` lock on the history until the commit; the
/// session's `lock_timeout` bounds the wait for it.
pub(super) async fn drop_day(
    conn: &mut PgConnection,
    keepers: &str,
    day: NaiveDate,
    keep: &PartitionKeep,
) -> Result<Option<PartitionDropped>> {
    const OP: &str = "history_partition_drop";
    let fail = |e| db_error(OP, e);
    let name = day_partition(day);
    let mut tx = sqlx::Connection::begin(conn).await.map_err(fail)?;
    lock(&mut tx, OP).await?;
    if !exists(&mut tx, OP, &name).await? {
        return Ok(None);
    }
    exec(
        &mut tx,
        OP,
        format!("ALTER TABLE cronlease_executions DETACH PARTITION {name}"),
    )
    .await?;
    let ms = |d: Option<std::time::Duration>| d.map(duration_ms);
    let (kept, total): (i64, i64) = sqlx::query_as(AssertSqlSafe(keepers.replace("{PART}", &name)))
        .bind(
            keep.finished_own
                .iter()
                .map(|(job, _)| job.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            keep.finished_own
                .iter()
                .map(|(_, keep)| ms(*keep))
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(ms(keep.finished))
        .bind(ms(keep.dead))
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
    exec(&mut tx, OP, format!("DROP TABLE {name}")).await?;
    tx.commit().await.map_err(fail)?;
    Ok(Some(PartitionDropped {
        rows: total.max(0) as u64,
        kept: kept.max(0) as u64,
    }))
}

/// The days a conversion gives partitions: from the oldest day holding a row (`oldest`), but
/// not before `days_back` days before `today`, to `days_ahead` days after it.
pub(super) fn conversion_days(
    today: NaiveDate,
    oldest: Option<NaiveDate>,
    options: &PartitionOptions,
) -> Vec<NaiveDate> {
    let floor = today - Days::new(u64::from(options.days_back));
    let first = oldest.map_or(today, |d| d.clamp(floor, today));
    let last = today + Days::new(u64::from(options.days_ahead));
    first.iter_days().take_while(|d| *d <= last).collect()
}

/// Converts the plain history into a partitioned one, in one transaction under an `ACCESS
/// EXCLUSIVE` lock (runners wait meanwhile; the copy is one `INSERT .. SELECT`). Partitioned
/// already: changes nothing and says so. `now_sql` reads the database clock.
pub(super) async fn convert(
    conn: &mut PgConnection,
    now_sql: &str,
    options: &PartitionOptions,
) -> Result<HistoryConversion> {
    const OP: &str = "history_partition";
    let fail = |e| db_error(OP, e);
    let mut tx = begin_layout_change(conn, OP).await?;
    if !exists(&mut tx, OP, "cronlease_executions").await? {
        return Err(Error::InvalidRequest(
            "there is no execution history to partition: run the migrations first".into(),
        ));
    }
    if is_partitioned(&mut tx, OP).await? {
        return Ok(HistoryConversion {
            already_partitioned: true,
            rows: 0,
            rows_in_default: 0,
            days: Vec::new(),
        });
    }
    exec(
        &mut tx,
        OP,
        "LOCK TABLE cronlease_executions IN ACCESS EXCLUSIVE MODE".into(),
    )
    .await?;
    let now: DateTime<Utc> = sqlx::query_scalar(AssertSqlSafe(now_sql.to_owned()))
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
    let oldest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT MIN(plan_time) FROM cronlease_executions")
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
    let days = conversion_days(now.date_naive(), oldest.map(|t| t.date_naive()), options);
    let mut ddl = String::from(
        "CREATE TABLE cronlease_executions_partitioned
  (LIKE cronlease_executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (plan_time);\n",
    );
    for &day in &days {
        let (from, to) = bounds(day);
        ddl.push_str(&format!(
            "CREATE TABLE {} PARTITION OF cronlease_executions_partitioned FOR VALUES FROM ({from}) TO ({to});\n",
            day_partition(day)
        ));
    }
    ddl.push_str(&format!(
        "CREATE TABLE {DEFAULT_PARTITION} PARTITION OF cronlease_executions_partitioned DEFAULT;\n"
    ));
    exec(&mut tx, OP, ddl).await?;
    let rows = sqlx::query(
        "INSERT INTO cronlease_executions_partitioned SELECT * FROM cronlease_executions",
    )
    .execute(&mut *tx)
    .await
    .map_err(fail)?
    .rows_affected();
    // The old table goes first: its index names become free for the new table's.
    let mut ddl = format!(
        "DROP TABLE cronlease_executions;
ALTER TABLE cronlease_executions_partitioned RENAME TO cronlease_executions;
{PARTITIONED_INDEXES}"
    );
    for &day in &days {
        ddl.push_str(&id_key(&day_partition(day)));
    }
    ddl.push_str(&id_key(DEFAULT_PARTITION));
    exec(&mut tx, OP, ddl).await?;
    let in_default: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {DEFAULT_PARTITION}"
    )))
    .fetch_one(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(HistoryConversion {
        already_partitioned: false,
        rows,
        rows_in_default: in_default.max(0) as u64,
        days,
    })
}

/// Turns a partitioned history back into one plain table (every row kept), in one transaction
/// under an `ACCESS EXCLUSIVE` lock. Returns the rows copied, or `None` when the history is
/// plain already (nothing changed).
pub(super) async fn revert(conn: &mut PgConnection) -> Result<Option<u64>> {
    const OP: &str = "history_unpartition";
    let fail = |e| db_error(OP, e);
    let mut tx = begin_layout_change(conn, OP).await?;
    if !is_partitioned(&mut tx, OP).await? {
        return Ok(None);
    }
    exec(
        &mut tx,
        OP,
        "LOCK TABLE cronlease_executions IN ACCESS EXCLUSIVE MODE;
CREATE TABLE cronlease_executions_plain
  (LIKE cronlease_executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
            .into(),
    )
    .await?;
    let rows =
        sqlx::query("INSERT INTO cronlease_executions_plain SELECT * FROM cronlease_executions")
            .execute(&mut *tx)
            .await
            .map_err(fail)?
            .rows_affected();
    exec(
        &mut tx,
        OP,
        format!(
            "DROP TABLE cronlease_executions;
ALTER TABLE cronlease_executions_plain RENAME TO cronlease_executions;
{PLAIN_INDEXES}"
        ),
    )
    .await?;
    tx.commit().await.map_err(fail)?;
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn partition_names_round_trip_and_other_tables_are_not_days() {
        let d = day("2026-03-09");
        assert_eq!(day_partition(d), "cronlease_executions_p20260309");
        assert_eq!(partition_day(&day_partition(d)), Some(d));
        assert_eq!(partition_day(DEFAULT_PARTITION), None);
        assert_eq!(partition_day("cronlease_executions_p2026030"), None);
        assert_eq!(partition_day("cronlease_executions_p20261399"), None);
    }

    #[test]
    fn a_conversion_covers_the_oldest_recent_day_to_the_days_ahead() {
        let options = PartitionOptions {
            days_back: 3,
            days_ahead: 2,
        };
        let today = day("2026-01-10");
        let days = conversion_days(today, Some(day("2026-01-09")), &options);
        assert_eq!(
            days,
            vec![
                day("2026-01-09"),
                day("2026-01-10"),
                day("2026-01-11"),
                day("2026-01-12")
            ]
        );
        // Older rows go to DEFAULT: the first partition is `days_back` before today.
        let days = conversion_days(today, Some(day("2025-06-01")), &options);
        assert_eq!(days.first(), Some(&day("2026-01-07")));
        assert_eq!(days.len(), 6);
        // No rows (or only future ones): from today.
        assert_eq!(conversion_days(today, None, &options).first(), Some(&today));
        assert_eq!(
            conversion_days(today, Some(day("2026-02-01")), &options).first(),
            Some(&today)
        );
    }
}
