//! SQLite statements. Times are INTEGER Unix milliseconds; `{NOW}` is replaced by the database
//! clock expression (plus the store's clock skew) when the store is built.
//! Batches travel as one JSON array parameter read with `json_each`, so one statement serves
//! any number of plans.

/// The database clock in Unix milliseconds; `{SKEW}` is the store's clock skew.
pub(super) const NOW_EXPR: &str = "(CAST(unixepoch('subsec') * 1000 AS INTEGER) + {SKEW})";

pub(super) const DB_NOW: &str = "SELECT {NOW}";

pub(super) const EXECUTION_LATEST_PLANS: &str = "\
SELECT scope_kind, scope_id, MAX(plan_time) AS plan_time
FROM cronlease_executions
WHERE job_name = ?1
GROUP BY scope_kind, scope_id";

pub(super) const EXECUTION_RETRY_CANDIDATES: &str = "\
SELECT scope_kind, scope_id, plan_time, next_retry_at, next_retry_at <= {NOW} AS due
FROM cronlease_executions
WHERE job_name = ?1 AND status = 'FAILED' AND next_retry_at IS NOT NULL
  AND attempt < max_attempts AND plan_time >= ?2
ORDER BY next_retry_at
LIMIT ?3";

/// ?5 is `[[id, scope_kind, scope_id, plan_time_ms, token], ...]`.
pub(super) const EXECUTION_CLAIM: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, created_at, updated_at)
SELECT p.value ->> 0, ?1, p.value ->> 1, p.value ->> 2, p.value ->> 3, 'RUNNING', 1, ?2,
  ?3, p.value ->> 4, 'won', {NOW}, {NOW} + ?4, {NOW}, {NOW}, {NOW}
FROM json_each(?5) AS p
WHERE true
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO UPDATE SET
  status = 'RUNNING',
  attempt = attempt + 1,
  runner_id = excluded.runner_id,
  lease_token = excluded.lease_token,
  claim_outcome = CASE WHEN status = 'RUNNING' THEN 'stole' ELSE 'retried' END,
  failures = CASE WHEN status = 'RUNNING'
    THEN json_insert(failures, '$[#]', json_object(
      'attempt', attempt, 'code', 'stale_timeout',
      'message', 'lease expired without heartbeat; taken over by runner ' || excluded.runner_id,
      'started_at', started_at, 'finished_at', excluded.started_at))
    ELSE failures END,
  heartbeat_at = excluded.heartbeat_at,
  stale_after = excluded.stale_after,
  started_at = excluded.started_at,
  updated_at = excluded.updated_at,
  finished_at = NULL,
  next_retry_at = NULL,
  duration_ms = NULL,
  rows_affected = NULL,
  result = '{}',
  error_code = NULL,
  error_msg = NULL
WHERE attempt < max_attempts AND (
  (status = 'FAILED' AND next_retry_at IS NOT NULL AND next_retry_at <= excluded.started_at)
  OR (status = 'RUNNING' AND ?6 AND stale_after < excluded.started_at))
RETURNING id, scope_kind, scope_id, plan_time, attempt, max_attempts, lease_token, claim_outcome, started_at";

/// ?1 is `[[id, token, stale_timeout_ms], ...]`.
pub(super) const EXECUTION_HEARTBEAT: &str = "\
UPDATE cronlease_executions AS e SET
  heartbeat_at = {NOW},
  stale_after = {NOW} + v.stale_ms,
  updated_at = {NOW}
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS stale_ms FROM json_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status = 'RUNNING'
RETURNING id";

/// ?1 is `[[id, token, duration_ms, rows_affected, result_json_text], ...]`.
pub(super) const EXECUTION_FINISH_SUCCESS: &str = "\
UPDATE cronlease_executions AS e SET
  status = 'SUCCESS',
  finished_at = {NOW},
  updated_at = {NOW},
  duration_ms = v.duration_ms,
  rows_affected = v.rows_affected,
  result = v.result,
  next_retry_at = NULL,
  error_code = NULL,
  error_msg = NULL
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS duration_ms,
        value ->> 3 AS rows_affected, value ->> 4 AS result FROM json_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status = 'RUNNING'
RETURNING id";

/// ?1 is `[[id, token, status, code, message, retry_in_ms|null, extend_budget, duration_ms], ...]`.
pub(super) const EXECUTION_FINISH_FAILURE: &str = "\
UPDATE cronlease_executions AS e SET
  status = v.status,
  next_retry_at = CASE WHEN v.retry_ms IS NULL THEN NULL ELSE {NOW} + v.retry_ms END,
  error_code = v.code,
  error_msg = v.message,
  finished_at = {NOW},
  updated_at = {NOW},
  duration_ms = v.duration_ms,
  max_attempts = CASE WHEN v.extend THEN max(e.max_attempts, e.attempt + 1) ELSE e.max_attempts END,
  failures = json_insert(e.failures, '$[#]', json_object(
    'attempt', e.attempt, 'code', v.code, 'message', v.message,
    'started_at', e.started_at, 'finished_at', {NOW}))
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS status, value ->> 3 AS code,
        value ->> 4 AS message, value ->> 5 AS retry_ms, value ->> 6 AS extend,
        value ->> 7 AS duration_ms FROM json_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status = 'RUNNING'
RETURNING id";

pub(super) const EXECUTION_SWEEP_STALE: &str = "\
UPDATE cronlease_executions SET
  status = CASE WHEN ?2 AND attempt < max_attempts THEN 'FAILED' ELSE 'DEAD' END,
  next_retry_at = CASE WHEN ?2 AND attempt < max_attempts THEN {NOW} ELSE NULL END,
  error_code = 'stale_timeout',
  error_msg = 'lease expired without heartbeat',
  finished_at = {NOW},
  updated_at = {NOW},
  failures = json_insert(failures, '$[#]', json_object(
    'attempt', attempt, 'code', 'stale_timeout', 'message', 'lease expired without heartbeat',
    'started_at', started_at, 'finished_at', {NOW}))
WHERE job_name = ?1 AND status = 'RUNNING' AND stale_after < {NOW}
RETURNING id, status";

pub(super) const EXECUTION_GET: &str = "SELECT * FROM cronlease_executions WHERE id = ?1";

pub(super) const EXECUTION_LIST: &str = "\
SELECT * FROM cronlease_executions
WHERE (?1 IS NULL OR job_name = ?1)
  AND (?2 IS NULL OR (scope_kind = ?2 AND scope_id = ?3))
  AND (?4 IS NULL OR status = ?4)
  AND (?5 IS NULL OR plan_time >= ?5)
  AND (?6 IS NULL OR plan_time < ?6)
ORDER BY plan_time DESC, id DESC
LIMIT ?7";

pub(super) const EXECUTION_COUNT_BY_STATUS: &str = "\
SELECT status, COUNT(*) AS n FROM cronlease_executions
WHERE (?1 IS NULL OR job_name = ?1)
GROUP BY status";
