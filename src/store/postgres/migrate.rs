//! PostgreSQL schema, tracked in `cronlease_migrations`.
//!
//! Table names are unqualified, so the connection's `search_path` chooses the schema.

use sqlx::PgPool;

use crate::error::{Error, Result};
use crate::store::{MigrationStatus, db_error};

/// The `pg_advisory_xact_lock` key every replica takes before reading or applying a migration
/// (the bytes of `cronleas`), so replicas starting together apply each migration once.
const MIGRATION_LOCK_KEY: i64 = 0x6372_6f6e_6c65_6173;

/// The migrations table, created under the advisory lock (a bare concurrent
/// `CREATE TABLE IF NOT EXISTS` can fail with a unique violation in the catalog).
/// `client_min_messages` hides the "already exists, skipping" notice.
const CREATE_MIGRATIONS_TABLE: &str = "
SET LOCAL client_min_messages = warning;
CREATE TABLE IF NOT EXISTS cronlease_migrations (
  version    bigint PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);";

/// `(version, name, sql)`, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "executions",
        "
CREATE TABLE cronlease_executions (
  id            uuid PRIMARY KEY,
  job_name      text NOT NULL,
  scope_kind    text NOT NULL,
  scope_id      text NOT NULL,
  plan_time     timestamptz NOT NULL,
  status        text NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD')),
  attempt       integer NOT NULL CHECK (attempt >= 1),
  max_attempts  integer NOT NULL CHECK (max_attempts >= 1),
  next_retry_at timestamptz,
  runner_id     text NOT NULL,
  lease_token   uuid NOT NULL,
  claim_outcome text NOT NULL DEFAULT 'won',
  heartbeat_at  timestamptz,
  stale_after   timestamptz,
  started_at    timestamptz,
  finished_at   timestamptz,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  duration_ms   bigint,
  rows_affected bigint,
  result        jsonb NOT NULL DEFAULT '{}',
  error_code    text,
  error_msg     text,
  failures      jsonb NOT NULL DEFAULT '[]',
  CONSTRAINT cronlease_executions_plan_key UNIQUE (job_name, scope_kind, scope_id, plan_time)
);
CREATE INDEX cronlease_executions_stale ON cronlease_executions (job_name, stale_after)
  WHERE status = 'RUNNING';
CREATE INDEX cronlease_executions_retry ON cronlease_executions (job_name, next_retry_at)
  WHERE status = 'FAILED';
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'FAILED', 'DEAD');
",
    ),
    (
        2,
        "replay",
        "
ALTER TABLE cronlease_executions
  ADD COLUMN replay_pending boolean NOT NULL DEFAULT false,
  ADD COLUMN replayed_at timestamptz;
",
    ),
    (
        3,
        "superseded",
        "
ALTER TABLE cronlease_executions DROP CONSTRAINT cronlease_executions_status_check;
ALTER TABLE cronlease_executions ADD CONSTRAINT cronlease_executions_status_check
  CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED'));
DROP INDEX cronlease_executions_finished;
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED');
",
    ),
    (
        4,
        "pauses",
        "
CREATE TABLE cronlease_pauses (
  job_name   text NOT NULL,
  scope_kind text NOT NULL,
  scope_id   text NOT NULL,
  paused_by  text NOT NULL,
  reason     text NOT NULL,
  paused_at  timestamptz NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id)
);
",
    ),
    (
        5,
        "skips",
        "
CREATE TABLE cronlease_skips (
  job_name    text NOT NULL,
  scope_kind  text NOT NULL,
  scope_id    text NOT NULL,
  reason      text NOT NULL,
  span_from   timestamptz NOT NULL,
  span_to     timestamptz NOT NULL,
  plans       bigint,
  scopes      bigint NOT NULL,
  detail      text NOT NULL DEFAULT '',
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id, reason, span_from)
);
CREATE INDEX cronlease_skips_recorded ON cronlease_skips (recorded_at);
",
    ),
    (
        6,
        "registry",
        "
CREATE TABLE cronlease_runners (
  runner_id           text PRIMARY KEY,
  host                text NOT NULL,
  pid                 bigint NOT NULL,
  version             text NOT NULL,
  refresh_interval_ms bigint NOT NULL,
  started_at          timestamptz NOT NULL,
  last_seen           timestamptz NOT NULL,
  stopped_at          timestamptz
);
CREATE INDEX cronlease_runners_last_seen ON cronlease_runners (last_seen);
CREATE TABLE cronlease_registered_jobs (
  runner_id             text NOT NULL,
  job_name              text NOT NULL,
  spec_hash             text NOT NULL,
  schedule              text,
  time_zone             text NOT NULL,
  stagger_ms            bigint NOT NULL,
  schedule_delay_ms     bigint NOT NULL,
  catch_up              text NOT NULL,
  max_attempts          bigint NOT NULL,
  backoff               text NOT NULL,
  run_timeout_ms        bigint NOT NULL,
  stale_timeout_ms      bigint NOT NULL,
  heartbeat_interval_ms bigint NOT NULL,
  spec                  text NOT NULL,
  registered_at         timestamptz NOT NULL,
  PRIMARY KEY (runner_id, job_name)
);
CREATE INDEX cronlease_registered_jobs_job ON cronlease_registered_jobs (job_name);
",
    ),
    (
        7,
        "triggers_backfills",
        "
ALTER TABLE cronlease_executions ADD COLUMN trigger_id uuid;
CREATE TABLE cronlease_triggers (
  id              uuid PRIMARY KEY,
  job_name        text NOT NULL,
  scope_kind      text NOT NULL,
  scope_id        text NOT NULL,
  idempotency_key text,
  requested_by    text NOT NULL,
  requested_at    timestamptz NOT NULL,
  started_at      timestamptz,
  UNIQUE (job_name, idempotency_key)
);
CREATE INDEX cronlease_triggers_pending ON cronlease_triggers (job_name)
  WHERE started_at IS NULL;
CREATE TABLE cronlease_backfills (
  id                uuid PRIMARY KEY,
  job_name          text NOT NULL,
  scopes            jsonb,
  from_time         timestamptz NOT NULL,
  to_time           timestamptz NOT NULL,
  rerun             boolean NOT NULL,
  requested_by      text NOT NULL,
  status            text NOT NULL CHECK (status IN ('ACTIVE', 'DONE', 'CANCELLED')),
  cursor_plan_time  timestamptz,
  cursor_scope_kind text,
  cursor_scope_id   text,
  done              bigint NOT NULL DEFAULT 0,
  total             bigint,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL
);
CREATE INDEX cronlease_backfills_active ON cronlease_backfills (job_name)
  WHERE status = 'ACTIVE';
",
    ),
    (
        8,
        "overlap",
        "
ALTER TABLE cronlease_executions DROP CONSTRAINT cronlease_executions_status_check;
ALTER TABLE cronlease_executions ADD CONSTRAINT cronlease_executions_status_check
  CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED', 'SKIPPED'));
DROP INDEX cronlease_executions_finished;
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED');
",
    ),
    // The RUNNING rows of given scopes, for the guarded claim. Its predicate is written so that
    // only a statement that names it (`status IN ('RUNNING', '-')`, equal in meaning as the CHECK
    // refuses '-') can use it, and that statement cannot use the stale index: with statistics
    // that put one row in the partial indexes, the planner took the stale index and filtered
    // every running row of the job once per scope offered.
    (
        9,
        "running_scopes",
        "
CREATE INDEX cronlease_executions_running ON cronlease_executions
  (job_name, scope_kind, scope_id) WHERE status IN ('RUNNING', '-');
",
    ),
];

/// Applies the migrations the database lacks. Each runs in a transaction that first takes the
/// advisory lock, then reads the version, so concurrent replicas apply each migration once.
pub(super) async fn run(pool: &PgPool) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    for &(version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(|e| db_error("migrate", e))?;
        let fail = |source| Error::Migration {
            version,
            name,
            source,
        };
        // A migration may rightly outlast the statement and lock timeouts of the pool's
        // sessions (an index on a big table, another replica migrating first).
        sqlx::raw_sql("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("migrate", e))?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM cronlease_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
        if current > known {
            // Dropping the transaction rolls it back and releases the lock.
            drop(tx);
            return Err(Error::SchemaTooNew {
                found: current,
                known,
            });
        }
        if current < version {
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query("INSERT INTO cronlease_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
    }
    Ok(())
}

/// The applied and known versions; no table (on the `search_path`) means none applied.
pub(super) async fn status(pool: &PgPool) -> Result<MigrationStatus> {
    let fail = |e| db_error("migration_status", e);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('cronlease_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    if !exists {
        return Ok(MigrationStatus { applied: 0, known });
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM cronlease_migrations")
            .fetch_one(pool)
            .await
            .map_err(fail)?;
    Ok(MigrationStatus { applied, known })
}
