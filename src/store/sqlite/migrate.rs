//! SQLite schema, tracked in `cronlease_migrations`.

use sqlx::SqlitePool;

use crate::error::{Error, Result};
use crate::store::{MigrationStatus, db_error};

/// `(version, name, sql)`, applied in order, each in its own `BEGIN IMMEDIATE` transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "executions",
        "
CREATE TABLE cronlease_executions (
  id            TEXT PRIMARY KEY,
  job_name      TEXT NOT NULL,
  scope_kind    TEXT NOT NULL,
  scope_id      TEXT NOT NULL,
  plan_time     INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD')),
  attempt       INTEGER NOT NULL CHECK (attempt >= 1),
  max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
  next_retry_at INTEGER,
  runner_id     TEXT NOT NULL,
  lease_token   TEXT NOT NULL,
  claim_outcome TEXT NOT NULL DEFAULT 'won',
  heartbeat_at  INTEGER,
  stale_after   INTEGER,
  started_at    INTEGER,
  finished_at   INTEGER,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  duration_ms   INTEGER,
  rows_affected INTEGER,
  result        TEXT NOT NULL DEFAULT '{}',
  error_code    TEXT,
  error_msg     TEXT,
  failures      TEXT NOT NULL DEFAULT '[]',
  UNIQUE (job_name, scope_kind, scope_id, plan_time)
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
ALTER TABLE cronlease_executions ADD COLUMN replay_pending INTEGER NOT NULL DEFAULT 0
  CHECK (replay_pending IN (0, 1));
ALTER TABLE cronlease_executions ADD COLUMN replayed_at INTEGER;
",
    ),
    (
        3,
        "superseded",
        // SQLite cannot change a CHECK constraint in place: the table is rebuilt (inside the
        // migration's `BEGIN IMMEDIATE` transaction) with the new status allowed.
        "
CREATE TABLE cronlease_executions_v3 (
  id             TEXT PRIMARY KEY,
  job_name       TEXT NOT NULL,
  scope_kind     TEXT NOT NULL,
  scope_id       TEXT NOT NULL,
  plan_time      INTEGER NOT NULL,
  status         TEXT NOT NULL
    CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED')),
  attempt        INTEGER NOT NULL CHECK (attempt >= 1),
  max_attempts   INTEGER NOT NULL CHECK (max_attempts >= 1),
  next_retry_at  INTEGER,
  runner_id      TEXT NOT NULL,
  lease_token    TEXT NOT NULL,
  claim_outcome  TEXT NOT NULL DEFAULT 'won',
  heartbeat_at   INTEGER,
  stale_after    INTEGER,
  started_at     INTEGER,
  finished_at    INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  duration_ms    INTEGER,
  rows_affected  INTEGER,
  result         TEXT NOT NULL DEFAULT '{}',
  error_code     TEXT,
  error_msg      TEXT,
  failures       TEXT NOT NULL DEFAULT '[]',
  replay_pending INTEGER NOT NULL DEFAULT 0 CHECK (replay_pending IN (0, 1)),
  replayed_at    INTEGER,
  UNIQUE (job_name, scope_kind, scope_id, plan_time)
);
INSERT INTO cronlease_executions_v3 (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts, next_retry_at,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, finished_at,
  created_at, updated_at, duration_ms, rows_affected, result, error_code, error_msg, failures,
  replay_pending, replayed_at)
SELECT
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts, next_retry_at,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, finished_at,
  created_at, updated_at, duration_ms, rows_affected, result, error_code, error_msg, failures,
  replay_pending, replayed_at
FROM cronlease_executions;
DROP TABLE cronlease_executions;
ALTER TABLE cronlease_executions_v3 RENAME TO cronlease_executions;
CREATE INDEX cronlease_executions_stale ON cronlease_executions (job_name, stale_after)
  WHERE status = 'RUNNING';
CREATE INDEX cronlease_executions_retry ON cronlease_executions (job_name, next_retry_at)
  WHERE status = 'FAILED';
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED');
",
    ),
    (
        4,
        "pauses",
        "
CREATE TABLE cronlease_pauses (
  job_name   TEXT NOT NULL,
  scope_kind TEXT NOT NULL,
  scope_id   TEXT NOT NULL,
  paused_by  TEXT NOT NULL,
  reason     TEXT NOT NULL,
  paused_at  INTEGER NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id)
) WITHOUT ROWID;
",
    ),
    (
        5,
        "skips",
        "
CREATE TABLE cronlease_skips (
  job_name    TEXT NOT NULL,
  scope_kind  TEXT NOT NULL,
  scope_id    TEXT NOT NULL,
  reason      TEXT NOT NULL,
  span_from   INTEGER NOT NULL,
  span_to     INTEGER NOT NULL,
  plans       INTEGER,
  scopes      INTEGER NOT NULL,
  detail      TEXT NOT NULL DEFAULT '',
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id, reason, span_from)
) WITHOUT ROWID;
CREATE INDEX cronlease_skips_recorded ON cronlease_skips (recorded_at);
",
    ),
    (
        6,
        "registry",
        "
CREATE TABLE cronlease_runners (
  runner_id           TEXT PRIMARY KEY,
  host                TEXT NOT NULL,
  pid                 INTEGER NOT NULL,
  version             TEXT NOT NULL,
  refresh_interval_ms INTEGER NOT NULL,
  started_at          INTEGER NOT NULL,
  last_seen           INTEGER NOT NULL,
  stopped_at          INTEGER
) WITHOUT ROWID;
CREATE INDEX cronlease_runners_last_seen ON cronlease_runners (last_seen);
CREATE TABLE cronlease_registered_jobs (
  runner_id             TEXT NOT NULL,
  job_name              TEXT NOT NULL,
  spec_hash             TEXT NOT NULL,
  schedule              TEXT,
  time_zone             TEXT NOT NULL,
  stagger_ms            INTEGER NOT NULL,
  schedule_delay_ms     INTEGER NOT NULL,
  catch_up              TEXT NOT NULL,
  max_attempts          INTEGER NOT NULL,
  backoff               TEXT NOT NULL,
  run_timeout_ms        INTEGER NOT NULL,
  stale_timeout_ms      INTEGER NOT NULL,
  heartbeat_interval_ms INTEGER NOT NULL,
  spec                  TEXT NOT NULL,
  registered_at         INTEGER NOT NULL,
  PRIMARY KEY (runner_id, job_name)
) WITHOUT ROWID;
CREATE INDEX cronlease_registered_jobs_job ON cronlease_registered_jobs (job_name);
",
    ),
    (
        7,
        "triggers_backfills",
        "
ALTER TABLE cronlease_executions ADD COLUMN trigger_id TEXT;
CREATE TABLE cronlease_triggers (
  id              TEXT PRIMARY KEY,
  job_name        TEXT NOT NULL,
  scope_kind      TEXT NOT NULL,
  scope_id        TEXT NOT NULL,
  idempotency_key TEXT,
  requested_by    TEXT NOT NULL,
  requested_at    INTEGER NOT NULL,
  started_at      INTEGER,
  UNIQUE (job_name, idempotency_key)
);
CREATE INDEX cronlease_triggers_pending ON cronlease_triggers (job_name)
  WHERE started_at IS NULL;
CREATE TABLE cronlease_backfills (
  id                TEXT PRIMARY KEY,
  job_name          TEXT NOT NULL,
  scopes            TEXT,
  from_time         INTEGER NOT NULL,
  to_time           INTEGER NOT NULL,
  rerun             INTEGER NOT NULL CHECK (rerun IN (0, 1)),
  requested_by      TEXT NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DONE', 'CANCELLED')),
  cursor_plan_time  INTEGER,
  cursor_scope_kind TEXT,
  cursor_scope_id   TEXT,
  done              INTEGER NOT NULL DEFAULT 0,
  total             INTEGER,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE INDEX cronlease_backfills_active ON cronlease_backfills (job_name)
  WHERE status = 'ACTIVE';
",
    ),
    (
        8,
        "overlap",
        // The status CHECK gains SKIPPED: the table is rebuilt as in version 3, keeping every
        // column (`trigger_id` from version 7 too).
        "
CREATE TABLE cronlease_executions_v5 (
  id             TEXT PRIMARY KEY,
  job_name       TEXT NOT NULL,
  scope_kind     TEXT NOT NULL,
  scope_id       TEXT NOT NULL,
  plan_time      INTEGER NOT NULL,
  status         TEXT NOT NULL
    CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED', 'SKIPPED')),
  attempt        INTEGER NOT NULL CHECK (attempt >= 1),
  max_attempts   INTEGER NOT NULL CHECK (max_attempts >= 1),
  next_retry_at  INTEGER,
  runner_id      TEXT NOT NULL,
  lease_token    TEXT NOT NULL,
  claim_outcome  TEXT NOT NULL DEFAULT 'won',
  heartbeat_at   INTEGER,
  stale_after    INTEGER,
  started_at     INTEGER,
  finished_at    INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  duration_ms    INTEGER,
  rows_affected  INTEGER,
  result         TEXT NOT NULL DEFAULT '{}',
  error_code     TEXT,
  error_msg      TEXT,
  failures       TEXT NOT NULL DEFAULT '[]',
  replay_pending INTEGER NOT NULL DEFAULT 0 CHECK (replay_pending IN (0, 1)),
  replayed_at    INTEGER,
  trigger_id     TEXT,
  UNIQUE (job_name, scope_kind, scope_id, plan_time)
);
INSERT INTO cronlease_executions_v5 (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts, next_retry_at,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, finished_at,
  created_at, updated_at, duration_ms, rows_affected, result, error_code, error_msg, failures,
  replay_pending, replayed_at, trigger_id)
SELECT
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts, next_retry_at,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, finished_at,
  created_at, updated_at, duration_ms, rows_affected, result, error_code, error_msg, failures,
  replay_pending, replayed_at, trigger_id
FROM cronlease_executions;
DROP TABLE cronlease_executions;
ALTER TABLE cronlease_executions_v5 RENAME TO cronlease_executions;
CREATE INDEX cronlease_executions_stale ON cronlease_executions (job_name, stale_after)
  WHERE status = 'RUNNING';
CREATE INDEX cronlease_executions_retry ON cronlease_executions (job_name, next_retry_at)
  WHERE status = 'FAILED';
CREATE INDEX cronlease_executions_finished ON cronlease_executions (finished_at)
  WHERE status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED');
",
    ),
    // The RUNNING rows of given scopes, for the guarded claim, which names it (`INDEXED BY`):
    // one probe per scope offered instead of every running row of the job.
    (
        9,
        "running_scopes",
        "
CREATE INDEX cronlease_executions_running ON cronlease_executions
  (job_name, scope_kind, scope_id) WHERE status = 'RUNNING';
",
    ),
];

/// Applies the migrations the database lacks. `BEGIN IMMEDIATE` takes the write lock before
/// reading the version, so concurrent processes apply each migration once.
pub(super) async fn run(pool: &SqlitePool) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS cronlease_migrations (
           version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(|e| db_error("migrate", e))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    for &(version, name, sql) in MIGRATIONS {
        let mut conn = pool.acquire().await.map_err(|e| db_error("migrate", e))?;
        let fail = |source| Error::Migration {
            version,
            name,
            source,
        };
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        let applied: Result<bool, sqlx::Error> = async {
            let current: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM cronlease_migrations")
                    .fetch_one(&mut *conn)
                    .await?;
            if current > known {
                return Ok(false);
            }
            if current >= version {
                return Ok(true);
            }
            sqlx::raw_sql(sql).execute(&mut *conn).await?;
            sqlx::query(
                "INSERT INTO cronlease_migrations (version, name, applied_at)
                 VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
            )
            .bind(version)
            .bind(name)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        }
        .await;
        match applied {
            Ok(true) => {
                sqlx::raw_sql("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .map_err(fail)?;
            }
            Ok(false) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                let found: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) FROM cronlease_migrations",
                )
                .fetch_one(pool)
                .await
                .map_err(|e| db_error("migrate", e))?;
                return Err(Error::SchemaTooNew { found, known });
            }
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                return Err(fail(e));
            }
        }
    }
    Ok(())
}

/// The applied and known versions; no table means none applied.
pub(super) async fn status(pool: &SqlitePool) -> Result<MigrationStatus> {
    let fail = |e| db_error("migration_status", e);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'cronlease_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    if exists == 0 {
        return Ok(MigrationStatus { applied: 0, known });
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM cronlease_migrations")
            .fetch_one(pool)
            .await
            .map_err(fail)?;
    Ok(MigrationStatus { applied, known })
}
