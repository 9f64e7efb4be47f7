//! MySQL / MariaDB schema, tracked in `cronlease_migrations`.
//!
//! Tables live in the connection's database (the one in the URL). DDL commits implicitly in
//! MySQL, so a migration cannot be rolled back as a whole: each is one statement where the
//! dialect allows, and replicas are kept apart with `GET_LOCK`, a named lock held by one
//! session at a time (released on `RELEASE_LOCK` or when the session ends).

use sqlx::MySqlPool;

use crate::error::{DbErrorKind, Error, Result};
use crate::store::{MigrationStatus, db_error};

/// How long a replica waits for another one's migration to finish, in seconds.
const LOCK_WAIT_SECONDS: i64 = 120;

/// The migrations table. `IF NOT EXISTS` is safe under the lock.
const CREATE_MIGRATIONS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS cronlease_migrations (
  version    BIGINT NOT NULL PRIMARY KEY,
  name       VARCHAR(255) NOT NULL,
  applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

/// `(version, name, statements)`, applied in order. Versions match the other backends'.
///
/// Names and scopes are `VARBINARY`: compared byte for byte (no collation folds case or pads
/// trailing spaces, so two distinct scopes can never share a plan key), at most 512 bytes each
/// as `Scope::MAX_LEN` and `JobSpec::MAX_NAME_LEN` require. MySQL has no partial indexes: the
/// sweep index leads with `status`; the retry index is `(job_name, next_retry_at)`, where only
/// FAILED rows with a retry scheduled have a non-null time, so the retry pickup reads just those,
/// and a terminal write (which leaves `next_retry_at` null) does not touch the index.
const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
        1,
        "executions",
        &["
CREATE TABLE cronlease_executions (
  id            BINARY(16) NOT NULL PRIMARY KEY,
  job_name      VARBINARY(512) NOT NULL,
  scope_kind    VARBINARY(512) NOT NULL,
  scope_id      VARBINARY(512) NOT NULL,
  plan_time     DATETIME(6) NOT NULL,
  status        VARCHAR(16) NOT NULL,
  attempt       INT NOT NULL,
  max_attempts  INT NOT NULL,
  next_retry_at DATETIME(6) NULL,
  runner_id     TEXT CHARACTER SET utf8mb4 NOT NULL,
  lease_token   BINARY(16) NOT NULL,
  claim_outcome VARCHAR(16) NOT NULL DEFAULT 'won',
  heartbeat_at  DATETIME(6) NULL,
  stale_after   DATETIME(6) NULL,
  started_at    DATETIME(6) NULL,
  finished_at   DATETIME(6) NULL,
  created_at    DATETIME(6) NOT NULL,
  updated_at    DATETIME(6) NOT NULL,
  duration_ms   BIGINT NULL,
  rows_affected BIGINT NULL,
  result        JSON NOT NULL,
  error_code    TEXT CHARACTER SET utf8mb4 NULL,
  error_msg     TEXT CHARACTER SET utf8mb4 NULL,
  failures      JSON NOT NULL,
  CONSTRAINT cronlease_executions_status_check
    CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD')),
  CONSTRAINT cronlease_executions_attempt_check CHECK (attempt >= 1),
  CONSTRAINT cronlease_executions_max_attempts_check CHECK (max_attempts >= 1),
  UNIQUE KEY cronlease_executions_plan_key (job_name, scope_kind, scope_id, plan_time),
  KEY cronlease_executions_stale (status, job_name, stale_after),
  KEY cronlease_executions_retry (job_name, next_retry_at),
  KEY cronlease_executions_finished (finished_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"],
    ),
    (
        2,
        "replay",
        &["
ALTER TABLE cronlease_executions
  ADD COLUMN replay_pending BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN replayed_at DATETIME(6) NULL"],
    ),
    (
        3,
        "superseded",
        &[
            "ALTER TABLE cronlease_executions DROP CONSTRAINT cronlease_executions_status_check",
            "ALTER TABLE cronlease_executions ADD CONSTRAINT cronlease_executions_status_check
  CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED'))",
        ],
    ),
    (
        4,
        "pauses",
        &["
CREATE TABLE cronlease_pauses (
  job_name   VARBINARY(512) NOT NULL,
  scope_kind VARBINARY(512) NOT NULL,
  scope_id   VARBINARY(512) NOT NULL,
  paused_by  TEXT CHARACTER SET utf8mb4 NOT NULL,
  reason     TEXT CHARACTER SET utf8mb4 NOT NULL,
  paused_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"],
    ),
    (
        5,
        "skips",
        &["
CREATE TABLE cronlease_skips (
  job_name    VARBINARY(512) NOT NULL,
  scope_kind  VARBINARY(512) NOT NULL,
  scope_id    VARBINARY(512) NOT NULL,
  reason      VARBINARY(32) NOT NULL,
  span_from   DATETIME(6) NOT NULL,
  span_to     DATETIME(6) NOT NULL,
  plans       BIGINT NULL,
  scopes      BIGINT NOT NULL,
  detail      TEXT CHARACTER SET utf8mb4 NOT NULL,
  recorded_at DATETIME(6) NOT NULL,
  PRIMARY KEY (job_name, scope_kind, scope_id, reason, span_from),
  KEY cronlease_skips_recorded (recorded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"],
    ),
    (
        6,
        "registry",
        // Two tables, two statements (DDL commits each): `IF NOT EXISTS` lets a migration
        // interrupted between them run again.
        &[
            "
CREATE TABLE IF NOT EXISTS cronlease_runners (
  runner_id           VARBINARY(512) NOT NULL PRIMARY KEY,
  host                TEXT CHARACTER SET utf8mb4 NOT NULL,
  pid                 BIGINT NOT NULL,
  version             TEXT CHARACTER SET utf8mb4 NOT NULL,
  refresh_interval_ms BIGINT NOT NULL,
  started_at          DATETIME(6) NOT NULL,
  last_seen           DATETIME(6) NOT NULL,
  stopped_at          DATETIME(6) NULL,
  KEY cronlease_runners_last_seen (last_seen)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
            "
CREATE TABLE IF NOT EXISTS cronlease_registered_jobs (
  runner_id             VARBINARY(512) NOT NULL,
  job_name              VARBINARY(512) NOT NULL,
  spec_hash             VARCHAR(32) NOT NULL,
  schedule              TEXT CHARACTER SET utf8mb4 NULL,
  time_zone             TEXT CHARACTER SET utf8mb4 NOT NULL,
  stagger_ms            BIGINT NOT NULL,
  schedule_delay_ms     BIGINT NOT NULL,
  catch_up              TEXT CHARACTER SET utf8mb4 NOT NULL,
  max_attempts          BIGINT NOT NULL,
  backoff               TEXT CHARACTER SET utf8mb4 NOT NULL,
  run_timeout_ms        BIGINT NOT NULL,
  stale_timeout_ms      BIGINT NOT NULL,
  heartbeat_interval_ms BIGINT NOT NULL,
  spec                  TEXT CHARACTER SET utf8mb4 NOT NULL,
  registered_at         DATETIME(6) NOT NULL,
  PRIMARY KEY (runner_id, job_name),
  KEY cronlease_registered_jobs_job (job_name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
        ],
    ),
    (
        7,
        "triggers_backfills",
        &[
            "ALTER TABLE cronlease_executions ADD COLUMN trigger_id BINARY(16) NULL",
            "
CREATE TABLE cronlease_triggers (
  id              BINARY(16) NOT NULL PRIMARY KEY,
  job_name        VARBINARY(512) NOT NULL,
  scope_kind      VARBINARY(512) NOT NULL,
  scope_id        VARBINARY(512) NOT NULL,
  idempotency_key VARBINARY(512) NULL,
  requested_by    TEXT CHARACTER SET utf8mb4 NOT NULL,
  requested_at    DATETIME(6) NOT NULL,
  started_at      DATETIME(6) NULL,
  UNIQUE KEY cronlease_triggers_key (job_name, idempotency_key),
  KEY cronlease_triggers_pending (job_name, started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
            "
CREATE TABLE cronlease_backfills (
  id                BINARY(16) NOT NULL PRIMARY KEY,
  job_name          VARBINARY(512) NOT NULL,
  scopes            LONGTEXT CHARACTER SET utf8mb4 NULL,
  from_time         DATETIME(6) NOT NULL,
  to_time           DATETIME(6) NOT NULL,
  rerun             BOOLEAN NOT NULL,
  requested_by      TEXT CHARACTER SET utf8mb4 NOT NULL,
  status            VARCHAR(16) NOT NULL,
  cursor_plan_time  DATETIME(6) NULL,
  cursor_scope_kind VARBINARY(512) NULL,
  cursor_scope_id   VARBINARY(512) NULL,
  done              BIGINT NOT NULL DEFAULT 0,
  total             BIGINT NULL,
  created_at        DATETIME(6) NOT NULL,
  updated_at        DATETIME(6) NOT NULL,
  CONSTRAINT cronlease_backfills_status_check
    CHECK (status IN ('ACTIVE', 'DONE', 'CANCELLED')),
  KEY cronlease_backfills_active (job_name, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
        ],
    ),
    (
        8,
        "overlap",
        &[
            "ALTER TABLE cronlease_executions DROP CONSTRAINT cronlease_executions_status_check",
            "ALTER TABLE cronlease_executions ADD CONSTRAINT cronlease_executions_status_check
  CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'DEAD', 'SUPERSEDED', 'SKIPPED'))",
            "
CREATE TABLE cronlease_claim_locks (
  job_name VARBINARY(512) NOT NULL PRIMARY KEY
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
        ],
    ),
    (
        9,
        "running_scopes",
        &[
            // MariaDB has no partial index: the key leads with the status, so the RUNNING rows
            // of a job's scopes are one range of it.
            "CREATE INDEX cronlease_executions_running ON cronlease_executions
  (status, job_name, scope_kind, scope_id)",
        ],
    ),
];

/// Applies the migrations the database lacks, holding the database's migration lock.
pub(super) async fn run(pool: &MySqlPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(|e| db_error("migrate", e))?;
    // One lock per database (GET_LOCK names are server-wide and at most 64 characters).
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('cronlease_migrate:', MD5(DATABASE())), ?)")
            .bind(LOCK_WAIT_SECONDS)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error("migrate", e))?;
    if locked != Some(1) {
        conn.close_on_drop();
        // Another replica is still migrating: worth another try later.
        return Err(Error::Database {
            operation: "migrate",
            kind: DbErrorKind::Transient,
            source: sqlx::Error::Protocol(format!(
                "another replica held the migration lock for over {LOCK_WAIT_SECONDS} s"
            )),
        });
    }
    // A migration may wait long for a metadata lock behind a running replica's statements and
    // run long on a big table: lift the store's server-side deadlines on this session, and close the session afterwards so the
    // setting never reaches the pool.
    conn.close_on_drop();
    let flavour = super::session::Flavour::of(&mut conn)
        .await
        .map_err(|e| db_error("migrate", e))?;
    sqlx::query(super::session::unbounded(flavour))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("migrate", e))?;
    let outcome = apply(&mut conn).await;
    let released =
        sqlx::query("SELECT RELEASE_LOCK(CONCAT('cronlease_migrate:', MD5(DATABASE())))")
            .execute(&mut *conn)
            .await;
    if released.is_err() {
        // The session ends with the connection, and the lock with it.
        conn.close_on_drop();
    }
    outcome
}

async fn apply(conn: &mut sqlx::MySqlConnection) -> Result<()> {
    sqlx::query(CREATE_MIGRATIONS_TABLE)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("migrate", e))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let current: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM cronlease_migrations",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("migrate", e))?;
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    for &(version, name, statements) in MIGRATIONS {
        if version <= current {
            continue;
        }
        let fail = |source| Error::Migration {
            version,
            name,
            source,
        };
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        sqlx::query("INSERT INTO cronlease_migrations (version, name) VALUES (?, ?)")
            .bind(version)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
    }
    Ok(())
}

/// The applied and known versions; no table in the database means none applied.
pub(super) async fn status(pool: &MySqlPool) -> Result<MigrationStatus> {
    let fail = |e| db_error("migration_status", e);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = 'cronlease_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    if exists == 0 {
        return Ok(MigrationStatus { applied: 0, known });
    }
    let applied: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM cronlease_migrations",
    )
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    Ok(MigrationStatus { applied, known })
}
