//! MySQL / MariaDB statements. Times are `DATETIME(6)` holding UTC; `{NOW}` is replaced by the
//! database clock expression (plus the store's clock skew) when the store is built.
//!
//! Batches travel as one JSON array parameter read with `JSON_TABLE` (MySQL 8.0.4+, MariaDB
//! 10.6+), so one statement text serves any number of rows, as `UNNEST` does on PostgreSQL.
//! Ids and tokens travel as 32 hex digits (`UNHEX` makes them `BINARY(16)`), times as
//! `YYYY-MM-DD hh:mm:ss.ffffff` text, durations as milliseconds.
//!
//! Every statement here works on MariaDB 10.11 and on MySQL 8.0: no `RETURNING`, no
//! `IN (SELECT .. LIMIT ..)`, no `FOR UPDATE OF`. A write that must report which rows it
//! changed runs in a transaction: lock the rows (`SELECT .. FOR UPDATE`, ascending id), read the
//! clock once (`DB_NOW`), write, and the locked ids are the answer.
//!
//! **One lock order: the primary key.** InnoDB locks a row when a scan reaches it, so the order
//! of locking is the order of the access path, not of `ORDER BY`. Writes named by id (heartbeats,
//! terminal writes, replays, the second step of a claim) reach their rows through the primary
//! key, driven by a JSON list the store sorts by id; a claim first resolves its plan keys to ids
//! without locking, then locks those ids the same way. A claim's inserts cannot wait on a
//! plan key: every insert of a job's rows runs under the job's claim lock (`CLAIM_GUARD_LOCK`,
//! taken before any execution row), so no rival's row appears between the claim's look and its
//! insert. Statements that may skip a busy row (sweep, supersede, prune) use `SKIP LOCKED` and
//! never wait, so they cannot close a cycle.

/// The database clock; `{SKEW_US}` is the store's clock skew in microseconds. Read in a
/// statement of its own, after the transaction holds its row locks, so statement start (when
/// `UTC_TIMESTAMP` is evaluated) is the moment of the write. Cut to milliseconds, the resolution
/// of the other stores and of the failure history.
pub(super) const NOW_EXPR: &str = "(UTC_TIMESTAMP(3) + INTERVAL {SKEW_US} MICROSECOND)";

pub(super) const DB_NOW: &str = "SELECT {NOW}";

/// Manual runs (a trigger's) are not plans of the schedule: planning ignores them.
pub(super) const EXECUTION_LATEST_PLANS: &str = "\
SELECT scope_kind, scope_id, MAX(plan_time) AS plan_time
FROM cronlease_executions
WHERE job_name = ? AND trigger_id IS NULL
GROUP BY scope_kind, scope_id";

/// Every FAILED row with a retry scheduled and attempts left, whatever its plan time.
pub(super) const EXECUTION_RETRY_CANDIDATES: &str = "\
SELECT scope_kind, scope_id, plan_time, next_retry_at,
  CAST(next_retry_at <= {NOW} AS SIGNED) AS due, replay_pending
FROM cronlease_executions
WHERE job_name = ? AND status = 'FAILED' AND next_retry_at IS NOT NULL
  AND attempt < max_attempts
ORDER BY next_retry_at
LIMIT ?";

/// Step 1 of a claim, without locking: the existing rows of the plans. $1: the plans,
/// `[[scope kind, scope id, plan time], ..]`; $2: the job.
pub(super) const CLAIM_RESOLVE: &str = "\
SELECT e.id, e.scope_kind, e.scope_id, e.plan_time
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[0]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    plan_time DATETIME(6) PATH '$[2]')) AS p
  STRAIGHT_JOIN cronlease_executions AS e
  ON e.job_name = ? AND e.scope_kind = p.scope_kind AND e.scope_id = p.scope_id
  AND e.plan_time = p.plan_time";

/// Step 2 of a claim: locks the existing rows, ascending id, and reads what the decision needs.
pub(super) const CLAIM_LOCK: &str = "\
SELECT e.id, e.status, e.attempt, e.max_attempts, e.next_retry_at, e.stale_after,
  e.lease_token, e.claim_outcome, e.started_at, e.replay_pending
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
ORDER BY e.id
FOR UPDATE";

/// Step 3 of a claim: takes over the rows the store decided to (stale, retry due, or already
/// this request's). $1: `[[id, token, attempt, outcome, failed attempt or null, message,
/// started_at ms], ..]`; then runner, now (heartbeat, started, updated) and stale_after.
/// Every new value comes from the parameters or from the row's own column, so the order in
/// which MySQL and MariaDB apply the assignments cannot matter.
pub(super) const CLAIM_TAKE_OVER: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]',
    token CHAR(32) PATH '$[1]',
    attempt INT PATH '$[2]',
    outcome VARCHAR(16) PATH '$[3]',
    failed_attempt INT PATH '$[4]',
    message TEXT CHARACTER SET utf8mb4 PATH '$[5]',
    started_ms BIGINT PATH '$[6]')) AS u ON e.id = UNHEX(u.id)
SET e.status = 'RUNNING',
  e.attempt = u.attempt,
  e.runner_id = ?,
  e.lease_token = UNHEX(u.token),
  e.claim_outcome = u.outcome,
  e.replay_pending = 0,
  e.failures = CASE WHEN u.failed_attempt IS NULL THEN e.failures
    ELSE JSON_ARRAY_APPEND(e.failures, '$', JSON_OBJECT(
      'attempt', u.failed_attempt, 'code', 'stale_timeout', 'message', u.message,
      'started_at', u.started_ms, 'finished_at', ?)) END,
  e.heartbeat_at = ?,
  e.stale_after = ?,
  e.started_at = ?,
  e.updated_at = ?,
  e.finished_at = NULL,
  e.next_retry_at = NULL,
  e.duration_ms = NULL,
  e.rows_affected = NULL,
  e.result = '{}',
  e.error_code = NULL,
  e.error_msg = NULL";

/// The insert of a claim's new plans, in plan-key order. $1..$8: job, max attempts, runner, now
/// (heartbeat), stale_after, now (started, created, updated); $9: `[[id, scope kind, scope id,
/// plan time, token], ..]`.
macro_rules! claim_insert {
    () => {
        "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, created_at,
  updated_at, result, failures)
SELECT UNHEX(p.id), ?, p.scope_kind, p.scope_id, p.plan_time, 'RUNNING', 1, ?,
  ?, UNHEX(p.token), 'won', ?, ?, ?, ?, ?, '{}', '[]'
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    n FOR ORDINALITY,
    id CHAR(32) PATH '$[0]',
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[2]',
    plan_time DATETIME(6) PATH '$[3]',
    token CHAR(32) PATH '$[4]')) AS p
ORDER BY p.n"
    };
}

/// The common claim, every plan new, in one statement (under the job's claim lock): a plain
/// insert. Any plan that has a row fails the whole statement with a duplicate key (1062), and
/// the claim takes the full path instead.
pub(super) const CLAIM_INSERT_NEW: &str = claim_insert!();

/// Step 4 of a claim: inserts the plans that had no row. Under the job's claim lock no rival
/// inserts one since step 1; should a row appear anyway, it is met by the unique key and left as
/// it is (the plan is Conflicted).
pub(super) const CLAIM_INSERT: &str = concat!(
    claim_insert!(),
    "\nON DUPLICATE KEY UPDATE cronlease_executions.id = cronlease_executions.id"
);

/// Step 5 of a claim: the rows now held under the request's tokens. $1: `[[id, token], ..]`.
pub(super) const CLAIM_HELD: &str = "\
SELECT e.id, e.scope_kind, e.scope_id, e.plan_time, e.attempt, e.max_attempts, e.lease_token,
  e.claim_outcome, e.started_at
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.lease_token = UNHEX(i.token) AND e.status = 'RUNNING'";

/// Locks leases still held: `[[id, token], ..]` sorted by id.
pub(super) const LEASES_LOCK_RUNNING: &str = "\
SELECT e.id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.lease_token = UNHEX(i.token) AND e.status = 'RUNNING'
ORDER BY e.id
FOR UPDATE";

/// $1: `[[id, token, stale ms], ..]` of locked leases; $2: now.
pub(super) const EXECUTION_HEARTBEAT: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]', stale_ms BIGINT PATH '$[2]')) AS v
  ON e.id = UNHEX(v.id)
SET e.heartbeat_at = ?,
  e.stale_after = TIMESTAMPADD(MICROSECOND, v.stale_ms * 1000, ?),
  e.updated_at = ?
WHERE e.lease_token = UNHEX(v.token) AND e.status = 'RUNNING'";

/// Locks the rows of terminal writes: `[[id, token], ..]` sorted by id, whatever their status
/// (a row already written under the same token makes a resent write idempotent).
pub(super) const LEASES_LOCK_ANY: &str = "\
SELECT e.id, e.status, e.error_code, e.started_at
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.lease_token = UNHEX(i.token)
ORDER BY e.id
FOR UPDATE";

/// $1: `[[id, token, duration ms, rows affected, result JSON text], ..]` of locked RUNNING
/// rows; $2: now.
pub(super) const EXECUTION_FINISH_SUCCESS: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]', duration_ms BIGINT PATH '$[2]',
    rows_affected BIGINT PATH '$[3]', result LONGTEXT CHARACTER SET utf8mb4 PATH '$[4]')) AS v
  ON e.id = UNHEX(v.id)
SET e.status = 'SUCCESS',
  e.finished_at = ?,
  e.updated_at = ?,
  e.duration_ms = v.duration_ms,
  e.rows_affected = v.rows_affected,
  e.result = v.result,
  e.next_retry_at = NULL,
  e.error_code = NULL,
  e.error_msg = NULL
WHERE e.lease_token = UNHEX(v.token) AND e.status = 'RUNNING'";

/// The common success write, in one statement (autocommit): every row still RUNNING under its
/// token. `{NOW}` is read once, when the statement starts. When it matches fewer rows than
/// offered, the store takes the full path, which tells which rows were written.
pub(super) const EXECUTION_FINISH_SUCCESS_AT_ONCE: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]', duration_ms BIGINT PATH '$[2]',
    rows_affected BIGINT PATH '$[3]', result LONGTEXT CHARACTER SET utf8mb4 PATH '$[4]')) AS v
  ON e.id = UNHEX(v.id)
SET e.status = 'SUCCESS',
  e.finished_at = {NOW},
  e.updated_at = {NOW},
  e.duration_ms = v.duration_ms,
  e.rows_affected = v.rows_affected,
  e.result = v.result,
  e.next_retry_at = NULL,
  e.error_code = NULL,
  e.error_msg = NULL
WHERE e.lease_token = UNHEX(v.token) AND e.status = 'RUNNING'";

/// $1: `[[id, token, status, code, message, next retry at or null, extend, duration ms,
/// started_at ms], ..]` of locked RUNNING rows; then now (finished, updated) and now in ms.
pub(super) const EXECUTION_FINISH_FAILURE: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]', status VARCHAR(16) PATH '$[2]',
    code TEXT CHARACTER SET utf8mb4 PATH '$[3]', message TEXT CHARACTER SET utf8mb4 PATH '$[4]',
    next_retry_at DATETIME(6) PATH '$[5]', extend INT PATH '$[6]',
    duration_ms BIGINT PATH '$[7]', started_ms BIGINT PATH '$[8]')) AS v
  ON e.id = UNHEX(v.id)
SET e.status = v.status,
  e.next_retry_at = v.next_retry_at,
  e.error_code = v.code,
  e.error_msg = v.message,
  e.finished_at = ?,
  e.updated_at = ?,
  e.duration_ms = v.duration_ms,
  e.max_attempts = CASE WHEN v.extend = 1 THEN GREATEST(e.max_attempts, e.attempt + 1)
    ELSE e.max_attempts END,
  e.failures = JSON_ARRAY_APPEND(e.failures, '$', JSON_OBJECT(
    'attempt', e.attempt, 'code', v.code, 'message', v.message,
    'started_at', v.started_ms, 'finished_at', ?))
WHERE e.lease_token = UNHEX(v.token) AND e.status = 'RUNNING'";

/// The job's stale RUNNING rows ($1: job, $2: now), skipping rows another runner is writing.
/// A range scan of the stale index, forced: sorting by id made InnoDB walk the whole primary key
/// instead, locking (or skipping) every row of every job on the way, so two jobs' sweeps
/// skipped each other's stale rows (and cost grew with the table, not with the stale rows).
/// The order of the locks does not matter here: `SKIP LOCKED` never waits.
pub(super) const SWEEP_LOCK: &str = "\
SELECT id, attempt, max_attempts, started_at
FROM cronlease_executions FORCE INDEX (cronlease_executions_stale)
WHERE status = 'RUNNING' AND job_name = ? AND stale_after < ?
FOR UPDATE SKIP LOCKED";

/// $1: `[[id, status, started_at ms], ..]` of locked rows; then now (next retry for FAILED
/// rows, finished, updated) and now in ms.
pub(super) const EXECUTION_SWEEP_STALE: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(32) PATH '$[0]', status VARCHAR(16) PATH '$[1]',
    started_ms BIGINT PATH '$[2]')) AS v
  ON e.id = UNHEX(v.id)
SET e.status = v.status,
  e.next_retry_at = CASE WHEN v.status = 'FAILED' THEN ? ELSE NULL END,
  e.error_code = 'stale_timeout',
  e.error_msg = 'lease expired without heartbeat',
  e.finished_at = ?,
  e.updated_at = ?,
  e.failures = JSON_ARRAY_APPEND(e.failures, '$', JSON_OBJECT(
    'attempt', e.attempt, 'code', 'stale_timeout', 'message', 'lease expired without heartbeat',
    'started_at', v.started_ms, 'finished_at', ?))
WHERE e.status = 'RUNNING'";

/// FAILED rows of the job ($1) that a newer plan of the same scope has succeeded since, read
/// without locking (a SUCCESS row stays SUCCESS, so the answer holds).
pub(super) const SUPERSEDE_CANDIDATES: &str = "\
SELECT e.id FROM cronlease_executions AS e
WHERE e.job_name = ? AND e.status = 'FAILED' AND e.replay_pending = 0
  AND EXISTS (SELECT 1 FROM cronlease_executions AS n
    WHERE n.job_name = e.job_name AND n.scope_kind = e.scope_kind AND n.scope_id = e.scope_id
      AND n.plan_time > e.plan_time AND n.status = 'SUCCESS')";

/// Locks candidates that are still FAILED and not replayed, skipping busy ones.
pub(super) const SUPERSEDE_LOCK: &str = "\
SELECT e.id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.status = 'FAILED' AND e.replay_pending = 0
ORDER BY e.id
FOR UPDATE SKIP LOCKED";

/// $1: locked ids; $2, $3: now.
pub(super) const EXECUTION_SUPERSEDE: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i ON e.id = UNHEX(i.id)
SET e.status = 'SUPERSEDED', e.next_retry_at = NULL, e.finished_at = ?, e.updated_at = ?
WHERE e.status = 'FAILED'";

pub(super) const EXECUTION_GET: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions WHERE id = ?"
);

/// Each optional filter is bound twice (`? IS NULL OR column = ?`): MySQL placeholders are
/// positional. The keyset cursor `(plan_time, id)`: rows strictly after it, newest first.
pub(super) const EXECUTION_LIST: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions
WHERE (? IS NULL OR job_name = ?)
  AND (? IS NULL OR (scope_kind = ? AND scope_id = ?))
  AND (? IS NULL OR status = ?)
  AND (? IS NULL OR plan_time >= ?)
  AND (? IS NULL OR plan_time < ?)
  AND (? IS NULL OR plan_time < ? OR (plan_time = ? AND id < ?))
ORDER BY plan_time DESC, id DESC
LIMIT ?"
);

/// The newest row of each scope of a job, one page of scopes in scope order: the grouped
/// subquery walks the unique key in order from the page's start (`('', '')`, before every
/// storable scope, for the first page: no `IS NULL OR` that would keep the index from bounding
/// the scan) and stops at the page's end, then each row is one probe of that key. Binds: job, after kind (x2), after id, limit, job.
pub(super) const EXECUTION_LATEST_PER_SCOPE: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions AS e
JOIN (SELECT scope_kind AS k, scope_id AS i, MAX(plan_time) AS p FROM cronlease_executions
      WHERE job_name = ? AND (scope_kind > ? OR (scope_kind = ? AND scope_id > ?))
      GROUP BY scope_kind, scope_id
      ORDER BY scope_kind, scope_id
      LIMIT ?) AS l
  ON e.job_name = ? AND e.scope_kind = l.k AND e.scope_id = l.i AND e.plan_time = l.p
ORDER BY e.scope_kind, e.scope_id"
);

pub(super) const EXECUTION_COUNT_BY_STATUS: &str = "\
SELECT status, COUNT(*) AS n FROM cronlease_executions
WHERE (? IS NULL OR job_name = ?)
GROUP BY status";

/// Locks the DEAD rows among the ids (sorted). A concurrent replay waits for the lock, then
/// finds the row FAILED and skips it, so a row is replayed once.
pub(super) const REPLAY_LOCK: &str = "\
SELECT e.id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.status = 'DEAD'
ORDER BY e.id
FOR UPDATE";

/// $1: locked ids; $2: now (next retry); $3: extra attempts; $4, $5: now.
pub(super) const EXECUTION_REPLAY: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i ON e.id = UNHEX(i.id)
SET e.status = 'FAILED',
  e.next_retry_at = ?,
  e.max_attempts = e.attempt + ?,
  e.replay_pending = 1,
  e.replayed_at = ?,
  e.updated_at = ?
WHERE e.status = 'DEAD'";

/// The replayed rows, by id.
pub(super) const EXECUTIONS_BY_ID: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM JSON_TABLE(?, '$[*]' COLUMNS (wanted CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.wanted)"
);

/// The rows [`PRUNE_CANDIDATES`] offers and [`EXECUTION_COUNT_PRUNABLE`] counts: one text, so
/// a dry run counts exactly what the prune would delete.
macro_rules! prunable {
    () => {
        "
FROM cronlease_executions AS e
WHERE e.finished_at < ?
  AND e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED')
  AND (e.status = 'DEAD') = ?
  AND e.replay_pending = 0
  AND EXISTS (SELECT 1 FROM cronlease_executions AS n
    WHERE n.job_name = e.job_name AND n.scope_kind = e.scope_kind AND n.scope_id = e.scope_id
      AND n.plan_time > e.plan_time AND n.trigger_id IS NULL)"
    };
}

/// The jobs a prune selects: the one job to prune (null, twice: every job), then a JSON array of
/// jobs left out.
macro_rules! prunable_jobs {
    () => {
        "
  AND (? IS NULL OR e.job_name = ?)
  AND e.job_name NOT IN (SELECT j.name FROM JSON_TABLE(?, '$[*]' COLUMNS (name VARCHAR(512) PATH '$')) AS j)"
    };
}

/// $1: whether to prune DEAD rows (else SUCCESS, SUPERSEDED and SKIPPED); $2: the cutoff.
/// The newest scheduled row of a scope is kept (planning reads it); a newer manual run does not
/// count as a newer plan.
/// Read without locking along the `finished_at` index; keeps the newest row of every scope.
/// Then the jobs ([`prunable_jobs`]) and the batch.
pub(super) const PRUNE_CANDIDATES: &str = concat!(
    "SELECT e.id",
    prunable!(),
    prunable_jobs!(),
    "
ORDER BY e.finished_at
LIMIT ?"
);

/// [`PRUNE_CANDIDATES`] counted, unlimited: the same parameters without the batch.
pub(super) const EXECUTION_COUNT_PRUNABLE: &str =
    concat!("SELECT COUNT(*)", prunable!(), prunable_jobs!());

/// Locks the candidates still finished and not replayed, skipping rows another replica holds.
pub(super) const PRUNE_LOCK: &str = "\
SELECT e.id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED') AND e.replay_pending = 0
ORDER BY e.id
FOR UPDATE SKIP LOCKED";

/// Deletes the locked ids.
pub(super) const EXECUTION_PRUNE: &str = "\
DELETE e FROM cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i ON e.id = UNHEX(i.id)";

/// Per job, the FAILED and DEAD rows planned at or after the bound time.
pub(super) const EXECUTION_COUNT_FAILING: &str = "\
SELECT job_name, COUNT(*) AS n FROM cronlease_executions
WHERE status IN ('FAILED', 'DEAD') AND plan_time >= ?
GROUP BY job_name";

pub(super) const EXECUTION_COUNT_STALE: &str = "\
SELECT job_name, COUNT(*) AS n FROM cronlease_executions
WHERE status = 'RUNNING' AND stale_after < {NOW}
GROUP BY job_name";

/// The clock and the job's pauses in one statement: always one row, with a null scope when the
/// job has no pause (a whole-job pause is the empty scope).
pub(super) const TICK_CLOCK: &str = "\
SELECT {NOW} AS now, p.scope_kind, p.scope_id,
  EXISTS (SELECT 1 FROM cronlease_triggers AS t WHERE t.job_name = ? AND t.started_at IS NULL)
    AS triggers,
  EXISTS (SELECT 1 FROM cronlease_backfills AS b WHERE b.job_name = ? AND b.status = 'ACTIVE')
    AS backfills
FROM (SELECT 1 AS one) AS one LEFT JOIN cronlease_pauses AS p ON p.job_name = ?";

/// Job, scope kind, scope id (both empty for the whole job), by, reason, and the time read just
/// before (`VALUES()` works on MariaDB and MySQL 8, where it is deprecated but kept).
pub(super) const PAUSE_SET: &str = "\
INSERT INTO cronlease_pauses (job_name, scope_kind, scope_id, paused_by, reason, paused_at)
VALUES (?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE
  paused_by = VALUES(paused_by), reason = VALUES(reason), paused_at = VALUES(paused_at)";

pub(super) const PAUSE_CLEAR: &str = "\
DELETE FROM cronlease_pauses WHERE job_name = ? AND scope_kind = ? AND scope_id = ?";

pub(super) const PAUSE_LIST: &str = "\
SELECT job_name, scope_kind, scope_id, paused_by, reason, paused_at FROM cronlease_pauses
WHERE (? IS NULL OR job_name = ?)
ORDER BY job_name, scope_kind, scope_id";

/// Makes sure the job's claim-lock row exists (autocommit, once per job and store): the lock
/// itself is then a plain `FOR UPDATE` of an existing row, which concurrent first inserts of
/// the same key cannot deadlock on.
pub(super) const CLAIM_GUARD_LOCK_ROW: &str =
    "INSERT IGNORE INTO cronlease_claim_locks (job_name) VALUES (?)";

/// The job's claim lock, for every claim (guarded or not) and manual start: its row in
/// `cronlease_claim_locks`, locked before any execution row, so the inserts of one job's rows are
/// serialized across replicas and the lock order stays global (the job's lock row, then
/// execution rows by id).
pub(super) const CLAIM_GUARD_LOCK: &str =
    "SELECT job_name FROM cronlease_claim_locks WHERE job_name = ? FOR UPDATE";

/// The RUNNING rows of the offered plans' scopes (the running index, which leads with
/// `status`), for a guarded claim: cost grows with the plans offered, not with the attempts of
/// the job running elsewhere. $1: `[[scope kind, scope id, plan time], ..]`; $2: the job.
pub(super) const CLAIM_GUARD_RUNNING: &str = "\
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[0]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]')) AS p
  STRAIGHT_JOIN cronlease_executions AS e FORCE INDEX (cronlease_executions_running)
  ON e.status = 'RUNNING' AND e.job_name = ? AND e.scope_kind = p.scope_kind
  AND e.scope_id = p.scope_id";

/// The number of RUNNING rows of a job, for a guarded claim under a concurrency limit.
pub(super) const CLAIM_GUARD_RUNNING_COUNT: &str = "\
SELECT COUNT(*) FROM cronlease_executions WHERE status = 'RUNNING' AND job_name = ?";

/// The existing rows of the offered plans, for a guarded claim. $1: `[[scope kind, scope id,
/// plan time], ..]`; $2: the job.
pub(super) const CLAIM_GUARD_RESOLVE: &str = "\
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[0]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    plan_time DATETIME(6) PATH '$[2]')) AS p
  STRAIGHT_JOIN cronlease_executions AS e
  ON e.job_name = ? AND e.scope_kind = p.scope_kind AND e.scope_id = p.scope_id
  AND e.plan_time = p.plan_time";

/// Cancels running attempts for a newer plan of their scope (`CancelOther`): SUPERSEDED with the
/// code `overlap_cancelled`, fenced by id + token + RUNNING. $1: `[[id, token], ..]` of rows
/// already locked; $2..$4: now.
pub(super) const CLAIM_GUARD_CANCEL: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$[0]', token CHAR(32) PATH '$[1]')) AS v
  ON e.id = UNHEX(v.id)
SET e.status = 'SUPERSEDED',
  e.next_retry_at = NULL,
  e.error_code = 'overlap_cancelled',
  e.error_msg = 'cancelled: a newer plan of the scope started (overlap policy cancel_other)',
  e.finished_at = ?,
  e.updated_at = ?,
  e.duration_ms = TIMESTAMPDIFF(MICROSECOND, e.started_at, ?) DIV 1000
WHERE e.lease_token = UNHEX(v.token) AND e.status = 'RUNNING'";

/// Records plans the overlap policy skips: SKIPPED rows with the code `overlap`, finished at
/// once, never started. $1..$3: job, max attempts, runner; $4..$6: now (finished, created,
/// updated); $7: `[[id, scope kind, scope id, plan time, token], ..]`.
pub(super) const CLAIM_GUARD_SKIP: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, finished_at, created_at, updated_at, result, failures,
  error_code, error_msg)
SELECT UNHEX(p.id), ?, p.scope_kind, p.scope_id, p.plan_time, 'SKIPPED', 1, ?,
  ?, UNHEX(p.token), 'won', ?, ?, ?, '{}', '[]', 'overlap',
  'not run: the previous plan of the scope was still running (overlap policy)'
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    n FOR ORDINALITY,
    id CHAR(32) PATH '$[0]',
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[2]',
    plan_time DATETIME(6) PATH '$[3]',
    token CHAR(32) PATH '$[4]')) AS p
ORDER BY p.n
ON DUPLICATE KEY UPDATE cronlease_executions.id = cronlease_executions.id";

/// Lifting a pause first records the paused interval in the skipped-plan ledger (same
/// transaction as `PAUSE_CLEAR`): job, scope kind, scope id, then the time read just before.
pub(super) const PAUSE_RECORD: &str = "\
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT p.job_name, p.scope_kind, p.scope_id, 'paused', p.paused_at, ?, NULL,
  CASE WHEN p.scope_kind = '' THEN 0 ELSE 1 END,
  CONCAT('paused by ', p.paused_by, ': ', p.reason), ?
FROM cronlease_pauses AS p WHERE p.job_name = ? AND p.scope_kind = ? AND p.scope_id = ?
ON DUPLICATE KEY UPDATE span_to = VALUES(span_to), detail = VALUES(detail),
  recorded_at = VALUES(recorded_at)";

/// `[[job, scope kind, scope id, reason, from, to, plans, scopes, detail], ..]`, sorted by key,
/// then the time read just before. A span recorded already (another replica decided the same)
/// is widened, never doubled.
pub(super) const SKIP_RECORD: &str = "\
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT s.job_name, s.scope_kind, s.scope_id, s.reason, s.span_from, s.span_to, s.plans, s.scopes,
  s.detail, ?
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    job_name VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[0]',
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[2]',
    reason VARCHAR(32) CHARACTER SET utf8mb4 PATH '$[3]',
    span_from DATETIME(6) PATH '$[4]',
    span_to DATETIME(6) PATH '$[5]',
    plans BIGINT PATH '$[6]',
    scopes BIGINT PATH '$[7]',
    detail VARCHAR(4000) CHARACTER SET utf8mb4 PATH '$[8]')) AS s
ON DUPLICATE KEY UPDATE
  span_to = GREATEST(cronlease_skips.span_to, VALUES(span_to)),
  plans = GREATEST(cronlease_skips.plans, VALUES(plans)),
  scopes = GREATEST(cronlease_skips.scopes, VALUES(scopes))";

/// Job, scope kind, scope id, plan time, due time: the scope's rows and the shared ones that
/// start by the due time and end at or after the plan time.
pub(super) const SKIP_FIND: &str = "\
SELECT job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail,
  recorded_at
FROM cronlease_skips
WHERE job_name = ? AND ((scope_kind = ? AND scope_id = ?) OR scope_kind = '')
  AND span_from <= ? AND span_to >= ?
ORDER BY span_from";

/// The cutoff (database clock read just before), then the batch. Oldest first, along the
/// `recorded_at` index.
pub(super) const SKIP_PRUNE: &str = "\
DELETE FROM cronlease_skips WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?";

pub(super) const SKIP_LIST: &str = "\
SELECT job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail,
  recorded_at
FROM cronlease_skips
WHERE (? IS NULL OR job_name = ?)
ORDER BY recorded_at DESC, job_name, span_from DESC
LIMIT ?";
/// Runner id, host, pid, version, refresh interval (ms), now, now, then starting (a fresh
/// `started_at`). A runner that registers is running: any former stop is forgotten.
/// `started_at` is assigned before `last_seen`: MySQL assigns left to right.
pub(super) const RUNNER_REGISTER: &str = "\
INSERT INTO cronlease_runners
  (runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at)
VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
ON DUPLICATE KEY UPDATE
  host = VALUES(host), pid = VALUES(pid), version = VALUES(version),
  refresh_interval_ms = VALUES(refresh_interval_ms),
  started_at = IF(?, VALUES(started_at), started_at),
  last_seen = VALUES(last_seen), stopped_at = NULL";

pub(super) const REGISTERED_JOBS_CLEAR: &str = "\
DELETE FROM cronlease_registered_jobs WHERE runner_id = ?";

/// Runner id, the job's description (see `JobDescription`), now.
pub(super) const REGISTERED_JOB_INSERT: &str = "\
INSERT INTO cronlease_registered_jobs
  (runner_id, job_name, spec_hash, schedule, time_zone, stagger_ms, schedule_delay_ms, catch_up,
   max_attempts, backoff, run_timeout_ms, stale_timeout_ms, heartbeat_interval_ms, spec,
   registered_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub(super) const RUNNER_SEEN: &str = "\
UPDATE cronlease_runners SET last_seen = {NOW} WHERE runner_id = ?";

pub(super) const RUNNER_STOP: &str = "\
UPDATE cronlease_runners SET last_seen = {NOW}, stopped_at = {NOW} WHERE runner_id = ?";

pub(super) const RUNNER_LIST: &str = "\
SELECT runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at,
  {NOW} AS now
FROM cronlease_runners ORDER BY runner_id";

/// How long after `last_seen` (µs) a runner is deleted.
pub(super) const RUNNER_PRUNE: &str = "\
DELETE FROM cronlease_runners WHERE last_seen < {NOW} - INTERVAL ? MICROSECOND";

/// The registry rows whose runner is gone from `cronlease_runners` (pruned).
pub(super) const REGISTERED_JOBS_PRUNE: &str = "\
DELETE j FROM cronlease_registered_jobs AS j
LEFT JOIN cronlease_runners AS r ON r.runner_id = j.runner_id
WHERE r.runner_id IS NULL";

/// One job (bound twice), or NULL for all.
pub(super) const REGISTERED_JOBS: &str = "\
SELECT j.runner_id, j.job_name, j.spec_hash, j.schedule, j.time_zone, j.stagger_ms,
  j.schedule_delay_ms, j.catch_up, j.max_attempts, j.backoff, j.run_timeout_ms,
  j.stale_timeout_ms, j.heartbeat_interval_ms, j.spec, j.registered_at, r.last_seen,
  r.stopped_at, r.refresh_interval_ms, {NOW} AS now
FROM cronlease_registered_jobs AS j JOIN cronlease_runners AS r ON r.runner_id = j.runner_id
WHERE (? IS NULL OR j.job_name = ?)
ORDER BY j.job_name, j.runner_id";
/// Id, job, scope kind, scope id (both empty for every scope), key, by, requested at. A key the
/// job used already leaves the existing trigger as it is.
pub(super) const TRIGGER_CREATE: &str = "\
INSERT INTO cronlease_triggers (id, job_name, scope_kind, scope_id, idempotency_key,
  requested_by, requested_at)
VALUES (UNHEX(?), ?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE cronlease_triggers.id = cronlease_triggers.id";

const TRIGGER_COLUMNS: &str =
    "id, job_name, scope_kind, scope_id, idempotency_key, requested_by, requested_at, started_at";

/// The trigger just created, or the one holding its idempotency key: id, job, key.
pub(super) fn trigger_created() -> String {
    format!(
        "SELECT {TRIGGER_COLUMNS} FROM cronlease_triggers
WHERE id = UNHEX(?) OR (job_name = ? AND idempotency_key = ?)"
    )
}

/// Job or null (twice), pending only.
pub(super) fn trigger_list() -> String {
    format!(
        "SELECT {TRIGGER_COLUMNS} FROM cronlease_triggers
WHERE (? IS NULL OR job_name = ?) AND (NOT ? OR started_at IS NULL)
ORDER BY requested_at, id"
    )
}

/// Inserts manual plans, in the order given. $1..$8: job, max attempts, runner, now
/// (heartbeat), stale_after, now (started, created, updated); $9: `[[id, scope kind, scope id,
/// plan time, token, trigger id], ..]`. A row a rival inserted meanwhile is left as it is.
pub(super) const TRIGGER_INSERT: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, created_at,
  updated_at, result, failures, trigger_id)
SELECT UNHEX(p.id), ?, p.scope_kind, p.scope_id, p.plan_time, 'RUNNING', 1, ?,
  ?, UNHEX(p.token), 'won', ?, ?, ?, ?, ?, '{}', '[]', UNHEX(p.trigger_id)
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    n FOR ORDINALITY,
    id CHAR(32) PATH '$[0]',
    scope_kind VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[1]',
    scope_id VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[2]',
    plan_time DATETIME(6) PATH '$[3]',
    token CHAR(32) PATH '$[4]',
    trigger_id CHAR(32) PATH '$[5]')) AS p
ORDER BY p.n
ON DUPLICATE KEY UPDATE cronlease_executions.id = cronlease_executions.id";

/// $1: `[trigger id, ..]`; $2: now.
pub(super) const TRIGGER_MARK_STARTED: &str = "\
UPDATE cronlease_triggers AS t
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i ON t.id = UNHEX(i.id)
SET t.started_at = ?
WHERE t.started_at IS NULL";

const BACKFILL_COLUMNS: &str = "id, job_name, scopes, from_time, to_time, rerun, requested_by, \
  status, cursor_plan_time, cursor_scope_kind, cursor_scope_id, done, total, created_at, updated_at";

/// Id, job, scopes JSON or null, from, to, rerun, by, now (created, updated).
pub(super) const BACKFILL_CREATE: &str = "\
INSERT INTO cronlease_backfills (id, job_name, scopes, from_time, to_time, rerun, requested_by,
  status, done, created_at, updated_at)
VALUES (UNHEX(?), ?, ?, ?, ?, ?, ?, 'ACTIVE', 0, ?, ?)";

pub(super) fn backfill_get() -> String {
    format!("SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills WHERE id = UNHEX(?)")
}

/// Job or null (twice), active only.
pub(super) fn backfill_list() -> String {
    format!(
        "SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills
WHERE (? IS NULL OR job_name = ?) AND (NOT ? OR status = 'ACTIVE')
ORDER BY created_at, id"
    )
}

pub(super) const BACKFILL_CANCEL: &str = "\
UPDATE cronlease_backfills SET status = 'CANCELLED', updated_at = {NOW}
WHERE id = UNHEX(?) AND status = 'ACTIVE'";

/// The new cursor (time, kind, id), plans handed out, total, finished; the id; the expected
/// cursor (`<=>` compares nulls as equal).
pub(super) const BACKFILL_ADVANCE: &str = "\
UPDATE cronlease_backfills SET
  cursor_plan_time = ?, cursor_scope_kind = ?, cursor_scope_id = ?,
  done = done + ?, total = ?,
  status = CASE WHEN ? AND status = 'ACTIVE' THEN 'DONE' ELSE status END,
  updated_at = {NOW}
WHERE id = UNHEX(?) AND status IN ('ACTIVE', 'CANCELLED')
  AND cursor_plan_time <=> ? AND cursor_scope_kind <=> ? AND cursor_scope_id <=> ?";

/// Locks the finished rows a rerun may reset: `[id, ..]` sorted by id; then the creation time of
/// the backfill.
pub(super) const RERUN_LOCK: &str = "\
SELECT e.id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i
  STRAIGHT_JOIN cronlease_executions AS e ON e.id = UNHEX(i.id)
WHERE e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED') AND e.finished_at < ?
ORDER BY e.id
FOR UPDATE";

/// $1: locked ids; $2: now (next retry); $3: extra attempts; $4, $5: now.
pub(super) const EXECUTION_RERUN: &str = "\
UPDATE cronlease_executions AS e
  JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(32) PATH '$')) AS i ON e.id = UNHEX(i.id)
SET e.status = 'FAILED',
  e.next_retry_at = ?,
  e.max_attempts = e.attempt + ?,
  e.replay_pending = 1,
  e.replayed_at = ?,
  e.updated_at = ?
WHERE e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED')";
