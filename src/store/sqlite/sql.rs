//! SQLite statements. Times are INTEGER Unix milliseconds; `{NOW}` is replaced by the database
//! clock expression (plus the store's clock skew) when the store is built.
//! Batches travel as one JSON array parameter read with `jsonb_each` (whose elements come out as
//! JSONB, so `->>` reads them without parsing text again), so one statement serves any number of
//! plans.

/// The database clock in Unix milliseconds; `{SKEW}` is the store's clock skew.
pub(super) const NOW_EXPR: &str = "(CAST(unixepoch('subsec') * 1000 AS INTEGER) + {SKEW})";

pub(super) const DB_NOW: &str = "SELECT {NOW}";

/// Manual runs (a trigger's) are not plans of the schedule: planning ignores them.
pub(super) const EXECUTION_LATEST_PLANS: &str = "\
SELECT scope_kind, scope_id, MAX(plan_time) AS plan_time
FROM cronlease_executions
WHERE job_name = ?1 AND trigger_id IS NULL
GROUP BY scope_kind, scope_id";

/// Which offered plans have a row: the 0-based positions in ?2 (`[[scope kind, scope id,
/// plan ms], ..]`) of those that do; ?1 is the job. One unique-key probe per plan.
pub(super) const EXECUTION_PLANS_EXIST: &str = "\
SELECT p.key FROM json_each(?2) AS p
WHERE EXISTS (SELECT 1 FROM cronlease_executions AS e WHERE e.job_name = ?1
  AND e.scope_kind = p.value ->> 0 AND e.scope_id = p.value ->> 1 AND e.plan_time = p.value ->> 2)";

/// Every FAILED row with a retry scheduled and attempts left, whatever its plan time: catch-up
/// only decides which never-started plans get rows, a failed row is retried until SUCCESS or DEAD.
pub(super) const EXECUTION_RETRY_CANDIDATES: &str = "\
SELECT scope_kind, scope_id, plan_time, next_retry_at, next_retry_at <= {NOW} AS due, replay_pending
FROM cronlease_executions
WHERE job_name = ?1 AND status = 'FAILED' AND next_retry_at IS NOT NULL
  AND attempt < max_attempts
ORDER BY next_retry_at
LIMIT ?2";

/// Closes the job's FAILED rows that a newer plan of the same scope has succeeded since (the
/// job opted in to superseding): SUPERSEDED, no retry. Walks the partial FAILED index, then one
/// unique-key probe per failed row, so its cost follows the failed rows, not the scopes.
/// Replayed rows are left alone: an operator asked for them.
pub(super) const EXECUTION_SUPERSEDE: &str = "\
UPDATE cronlease_executions AS f SET
  status = 'SUPERSEDED',
  next_retry_at = NULL,
  finished_at = {NOW},
  updated_at = {NOW}
WHERE f.job_name = ?1 AND f.status = 'FAILED' AND f.replay_pending = 0
  AND EXISTS (SELECT 1 FROM cronlease_executions AS n
    WHERE n.job_name = f.job_name AND n.scope_kind = f.scope_kind AND n.scope_id = f.scope_id
      AND n.plan_time > f.plan_time AND n.status = 'SUCCESS')
RETURNING id";

/// The common claim: plans nobody has a row for. ?5 is `[[id, scope_kind, scope_id, plan_time_ms,
/// token], ...]`, ?6 the database clock read just before. Inserts what is missing and touches
/// nothing else; when it inserts every plan offered, the claim is complete without reading back.
pub(super) const EXECUTION_CLAIM_FRESH: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, heartbeat_at, stale_after, started_at, created_at, updated_at)
SELECT p.value ->> 0, ?1, p.value ->> 1, p.value ->> 2, p.value ->> 3, 'RUNNING', 1, ?2,
  ?3, p.value ->> 4, ?6, ?6 + ?4, ?6, ?6, ?6
FROM jsonb_each(?5) AS p
WHERE true
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO NOTHING";

/// ?5 is `[[id, scope_kind, scope_id, plan_time_ms, token], ...]`.
/// A row RUNNING under the very token offered was claimed by an earlier try of this request
/// whose reply was lost: it is returned again (attempt, outcome and history unchanged, lease
/// stamps renewed) instead of being conflicted and left to go stale.
pub(super) const EXECUTION_CLAIM: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, created_at, updated_at)
SELECT p.value ->> 0, ?1, p.value ->> 1, p.value ->> 2, p.value ->> 3, 'RUNNING', 1, ?2,
  ?3, p.value ->> 4, 'won', {NOW}, {NOW} + ?4, {NOW}, {NOW}, {NOW}
FROM jsonb_each(?5) AS p
WHERE true
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO UPDATE SET
  status = 'RUNNING',
  attempt = CASE WHEN status = 'RUNNING' AND lease_token = excluded.lease_token
    THEN attempt ELSE attempt + 1 END,
  runner_id = excluded.runner_id,
  lease_token = excluded.lease_token,
  claim_outcome = CASE WHEN status = 'RUNNING' AND lease_token = excluded.lease_token
    THEN claim_outcome WHEN status = 'RUNNING' THEN 'stole'
    WHEN replay_pending = 1 THEN 'replayed' ELSE 'retried' END,
  replay_pending = 0,
  failures = CASE WHEN status = 'RUNNING' AND lease_token <> excluded.lease_token
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
WHERE (status = 'RUNNING' AND lease_token = excluded.lease_token) OR (attempt < max_attempts AND (
  (status = 'FAILED' AND next_retry_at IS NOT NULL AND next_retry_at <= excluded.started_at)
  OR (status = 'RUNNING' AND ?6 AND stale_after < excluded.started_at
    AND (?7 IS NULL OR excluded.started_at <= ?7))))
";

/// The rows a claim just took, as one JSON array (one result row, not one per plan): every
/// offered plan whose row is RUNNING under the token offered for it. Runs in the claim's
/// transaction, right after `EXECUTION_CLAIM`, with the same ?5 (here ?2). `CROSS JOIN` keeps
/// the plans as the outer loop, so each plan is one lookup on the unique key.
pub(super) const EXECUTION_CLAIMED: &str = "\
SELECT json_group_array(json_array(
  e.id, e.scope_kind, e.scope_id, e.plan_time, e.attempt, e.max_attempts, e.lease_token,
  e.claim_outcome, e.started_at))
FROM jsonb_each(?2) AS p
CROSS JOIN cronlease_executions AS e
  ON e.job_name = ?1 AND e.scope_kind = p.value ->> 1 AND e.scope_id = p.value ->> 2
  AND e.plan_time = p.value ->> 3
WHERE e.lease_token = p.value ->> 4 AND e.status = 'RUNNING'";

/// ?1 is `[[id, token, stale_timeout_ms], ...]`.
pub(super) const EXECUTION_HEARTBEAT: &str = "\
UPDATE cronlease_executions AS e SET
  heartbeat_at = {NOW},
  stale_after = {NOW} + v.stale_ms,
  updated_at = {NOW}
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS stale_ms FROM jsonb_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status = 'RUNNING'
RETURNING id";

/// ?1 is `[[id, token, duration_ms, rows_affected, result_json_text], ...]`.
/// Idempotent for its lease: a retry after a lost reply finds the row SUCCESS under the same
/// token, reports it written and changes nothing.
pub(super) const EXECUTION_FINISH_SUCCESS: &str = "\
UPDATE cronlease_executions AS e SET
  status = 'SUCCESS',
  finished_at = CASE WHEN e.status = 'RUNNING' THEN {NOW} ELSE e.finished_at END,
  updated_at = CASE WHEN e.status = 'RUNNING' THEN {NOW} ELSE e.updated_at END,
  duration_ms = v.duration_ms,
  rows_affected = v.rows_affected,
  result = v.result,
  next_retry_at = NULL,
  error_code = NULL,
  error_msg = NULL
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS duration_ms,
        value ->> 3 AS rows_affected, value ->> 4 AS result FROM jsonb_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status IN ('RUNNING', 'SUCCESS')";

/// The ids a success batch wrote, as one JSON array: rows SUCCESS under the token offered.
/// Read after `EXECUTION_FINISH_SUCCESS`, with the same ?1, when it wrote fewer rows than offered.
/// Outside its transaction is enough: no other runner writes a row under this runner's token.
pub(super) const EXECUTION_FINISHED_SUCCESS: &str = "\
SELECT json_group_array(e.id)
FROM jsonb_each(?1) AS p
CROSS JOIN cronlease_executions AS e ON e.id = p.value ->> 0
WHERE e.lease_token = p.value ->> 1 AND e.status = 'SUCCESS'";

/// ?1 is `[[id, token, status, code, message, retry_in_ms|null, extend_budget, duration_ms], ...]`.
/// Idempotent for its lease: a retry after a lost reply finds the row already in the status and
/// code it writes under the same token, reports it written and changes nothing (the sweep writes
/// `stale_timeout`, a code executors never write, so a swept row still fences a late write).
pub(super) const EXECUTION_FINISH_FAILURE: &str = "\
UPDATE cronlease_executions AS e SET
  status = v.status,
  next_retry_at = CASE WHEN e.status <> 'RUNNING' THEN e.next_retry_at
    WHEN v.retry_ms IS NULL THEN NULL ELSE {NOW} + v.retry_ms END,
  error_code = v.code,
  error_msg = v.message,
  finished_at = CASE WHEN e.status = 'RUNNING' THEN {NOW} ELSE e.finished_at END,
  updated_at = CASE WHEN e.status = 'RUNNING' THEN {NOW} ELSE e.updated_at END,
  duration_ms = v.duration_ms,
  max_attempts = CASE WHEN v.extend THEN max(e.max_attempts, e.attempt + 1) ELSE e.max_attempts END,
  failures = CASE WHEN e.status = 'RUNNING' THEN json_insert(e.failures, '$[#]', json_object(
    'attempt', e.attempt, 'code', v.code, 'message', v.message,
    'started_at', e.started_at, 'finished_at', {NOW})) ELSE e.failures END
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS status, value ->> 3 AS code,
        value ->> 4 AS message, value ->> 5 AS retry_ms, value ->> 6 AS extend,
        value ->> 7 AS duration_ms FROM jsonb_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token
  AND (e.status = 'RUNNING' OR (e.status = v.status AND e.error_code = v.code))
RETURNING id";

/// ?3 (nullable) is the latest database time at which the sweep may still act: a sweep whose
/// statement was held up past it (queued behind an outage) changes nothing.
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
WHERE job_name = ?1 AND status = 'RUNNING' AND stale_after < {NOW} AND (?3 IS NULL OR {NOW} <= ?3)
RETURNING id, status";

pub(super) const EXECUTION_GET: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions WHERE id = ?1"
);

/// ?7 and ?8 are the keyset cursor `(plan_time, id)`: rows strictly after it, newest first.
/// Hyphenated lowercase UUID text sorts like PostgreSQL's `uuid`, so pages agree across backends.
pub(super) const EXECUTION_LIST: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions
WHERE (?1 IS NULL OR job_name = ?1)
  AND (?2 IS NULL OR (scope_kind = ?2 AND scope_id = ?3))
  AND (?4 IS NULL OR status = ?4)
  AND (?5 IS NULL OR plan_time >= ?5)
  AND (?6 IS NULL OR plan_time < ?6)
  AND (?7 IS NULL OR plan_time < ?7 OR (plan_time = ?7 AND id < ?8))
ORDER BY plan_time DESC, id DESC
LIMIT ?9"
);

/// The newest row of each scope of a job, one page of scopes in scope order: the grouped
/// subquery walks the unique key in order from the page's start (`('', '')`, before every
/// storable scope, for the first page: no `IS NULL OR` that would keep the index from bounding
/// the scan) and stops at the page's end, then each row is one probe of that key.
pub(super) const EXECUTION_LATEST_PER_SCOPE: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions AS e
JOIN (SELECT scope_kind AS k, scope_id AS i, MAX(plan_time) AS p FROM cronlease_executions
      WHERE job_name = ?1 AND (scope_kind, scope_id) > (?2, ?3)
      GROUP BY scope_kind, scope_id
      ORDER BY scope_kind, scope_id
      LIMIT ?4) AS l
  ON e.job_name = ?1 AND e.scope_kind = l.k AND e.scope_id = l.i AND e.plan_time = l.p
ORDER BY e.scope_kind, e.scope_id"
);

pub(super) const EXECUTION_COUNT_BY_STATUS: &str = "\
SELECT status, COUNT(*) AS n FROM cronlease_executions
WHERE (?1 IS NULL OR job_name = ?1)
GROUP BY status";

/// ?1 is `[id, ...]`. Only rows that are DEAD when the statement runs change, so concurrent
/// replays of one row from several replicas replay it once.
pub(super) const EXECUTION_REPLAY: &str = concat!(
    "\
UPDATE cronlease_executions SET
  status = 'FAILED',
  next_retry_at = {NOW},
  max_attempts = attempt + ?2,
  replay_pending = 1,
  replayed_at = {NOW},
  updated_at = {NOW}
WHERE id IN (SELECT value FROM jsonb_each(?1)) AND status = 'DEAD'
RETURNING ",
    execution_columns!()
);

/// The rows [`EXECUTION_PRUNE`] deletes and [`EXECUTION_COUNT_PRUNABLE`] counts: one text, so
/// a dry run counts exactly what the prune would delete.
macro_rules! prunable {
    () => {
        "
  FROM cronlease_executions AS e
  WHERE e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED', 'SKIPPED')
    AND e.finished_at < {NOW} - ?2
    AND (e.status = 'DEAD') = ?1
    AND e.replay_pending = 0
    AND EXISTS (SELECT 1 FROM cronlease_executions AS n
      WHERE n.job_name = e.job_name AND n.scope_kind = e.scope_kind AND n.scope_id = e.scope_id
        AND n.plan_time > e.plan_time AND n.trigger_id IS NULL)"
    };
}

/// ?1: whether to prune DEAD rows (else SUCCESS and SUPERSEDED); ?2: the age in ms; ?3: the
/// batch. FAILED rows are never pruned: each has a retry ahead of it. The newest scheduled row
/// of a scope is kept (planning reads it); a newer manual run does not count as a newer plan.
/// The `status IN (..)` term is the `finished_at` index's predicate, written out so SQLite
/// uses it. ?4: the one job to prune (null: every job); ?5: a JSON array of jobs left out.
pub(super) const EXECUTION_PRUNE: &str = concat!(
    "DELETE FROM cronlease_executions WHERE id IN (
  SELECT e.id",
    prunable!(),
    "
    AND (?4 IS NULL OR e.job_name = ?4)
    AND e.job_name NOT IN (SELECT value FROM json_each(?5))
  ORDER BY e.finished_at
  LIMIT ?3)"
);

/// ?1, ?2: as [`EXECUTION_PRUNE`]'s, without the batch limit; ?3, ?4: its ?4, ?5.
pub(super) const EXECUTION_COUNT_PRUNABLE: &str = concat!(
    "SELECT COUNT(*)",
    prunable!(),
    "
    AND (?3 IS NULL OR e.job_name = ?3)
    AND e.job_name NOT IN (SELECT value FROM json_each(?4))"
);

/// Per job, the FAILED and DEAD rows planned at or after the bound time.
pub(super) const EXECUTION_COUNT_FAILING: &str = "\
SELECT job_name, COUNT(*) AS n FROM cronlease_executions
WHERE status IN ('FAILED', 'DEAD') AND plan_time >= ?1
GROUP BY job_name";

pub(super) const EXECUTION_COUNT_STALE: &str = "\
SELECT job_name, COUNT(*) AS n FROM cronlease_executions
WHERE status = 'RUNNING' AND stale_after < {NOW}
GROUP BY job_name";

/// The clock, the job's pauses and whether it has pending requests, in one statement: always one
/// row, with a null scope when the job has no pause (a whole-job pause is the empty scope). The
/// two probes use the partial indexes of pending triggers and active backfills.
pub(super) const TICK_CLOCK: &str = "\
SELECT {NOW} AS now, p.scope_kind, p.scope_id,
  EXISTS (SELECT 1 FROM cronlease_triggers WHERE job_name = ?1 AND started_at IS NULL) AS triggers,
  EXISTS (SELECT 1 FROM cronlease_backfills WHERE job_name = ?1 AND status = 'ACTIVE') AS backfills
FROM (SELECT 1) AS one LEFT JOIN cronlease_pauses AS p ON p.job_name = ?1";

/// ?1..?5: job, scope kind, scope id (both empty for the whole job), by, reason.
pub(super) const PAUSE_SET: &str = "\
INSERT INTO cronlease_pauses (job_name, scope_kind, scope_id, paused_by, reason, paused_at)
VALUES (?1, ?2, ?3, ?4, ?5, {NOW})
ON CONFLICT (job_name, scope_kind, scope_id) DO UPDATE SET
  paused_by = excluded.paused_by, reason = excluded.reason, paused_at = excluded.paused_at
RETURNING paused_at";

/// Lifting a pause first records the paused interval in the skipped-plan ledger (same
/// transaction as `PAUSE_CLEAR`).
pub(super) const PAUSE_RECORD: &str = "\
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT job_name, scope_kind, scope_id, 'paused', paused_at, {NOW}, NULL,
  CASE WHEN scope_kind = '' THEN 0 ELSE 1 END, 'paused by ' || paused_by || ': ' || reason, {NOW}
FROM cronlease_pauses WHERE job_name = ?1 AND scope_kind = ?2 AND scope_id = ?3
ON CONFLICT (job_name, scope_kind, scope_id, reason, span_from) DO UPDATE SET
  span_to = excluded.span_to, detail = excluded.detail, recorded_at = excluded.recorded_at";

pub(super) const PAUSE_CLEAR: &str = "\
DELETE FROM cronlease_pauses WHERE job_name = ?1 AND scope_kind = ?2 AND scope_id = ?3";

pub(super) const PAUSE_LIST: &str = "\
SELECT job_name, scope_kind, scope_id, paused_by, reason, paused_at FROM cronlease_pauses
WHERE (?1 IS NULL OR job_name = ?1)
ORDER BY job_name, scope_kind, scope_id";

/// What a guarded claim decides on (inside its `BEGIN IMMEDIATE` transaction, which is the job's
/// claim lock: SQLite has one writer): the RUNNING rows of the offered plans' scopes (the
/// partial running index, one probe per plan) and the existing row of each offered plan (one
/// unique-key probe each). Cost grows with the plans offered, not with the attempts of the job
/// running elsewhere. ?2 is the claim's plans, `[[id, scope_kind, scope_id, plan_time_ms,
/// token], ...]`.
pub(super) const CLAIM_GUARD_ROWS: &str = "\
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after < {NOW} AS stale
FROM jsonb_each(?2) AS p
CROSS JOIN cronlease_executions AS e INDEXED BY cronlease_executions_running
  ON e.job_name = ?1 AND e.status = 'RUNNING' AND e.scope_kind = p.value ->> 1
  AND e.scope_id = p.value ->> 2
UNION
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after < {NOW} AS stale
FROM jsonb_each(?2) AS p
CROSS JOIN cronlease_executions AS e
  ON e.job_name = ?1 AND e.scope_kind = p.value ->> 1 AND e.scope_id = p.value ->> 2
  AND e.plan_time = p.value ->> 3";

/// The number of RUNNING rows of job ?1, for a guarded claim under a concurrency limit.
pub(super) const CLAIM_GUARD_RUNNING_COUNT: &str = "\
SELECT COUNT(*) FROM cronlease_executions WHERE job_name = ?1 AND status = 'RUNNING'";

/// Cancels running attempts for a newer plan of their scope (`CancelOther`): SUPERSEDED with the
/// code `overlap_cancelled`, fenced by id + token + RUNNING. ?1 is `[[id, token], ...]`.
pub(super) const CLAIM_GUARD_CANCEL: &str = "\
UPDATE cronlease_executions AS e SET
  status = 'SUPERSEDED',
  next_retry_at = NULL,
  error_code = 'overlap_cancelled',
  error_msg = 'cancelled: a newer plan of the scope started (overlap policy cancel_other)',
  finished_at = {NOW},
  updated_at = {NOW},
  duration_ms = {NOW} - e.started_at
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token FROM jsonb_each(?1)) AS v
WHERE e.id = v.id AND e.lease_token = v.token AND e.status = 'RUNNING'";

/// Records plans the overlap policy skips: SKIPPED rows with the code `overlap`, finished at
/// once, never started. ?4 is `[[id, scope_kind, scope_id, plan_time_ms, token], ...]`.
pub(super) const CLAIM_GUARD_SKIP: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, finished_at, created_at, updated_at, error_code, error_msg)
SELECT p.value ->> 0, ?1, p.value ->> 1, p.value ->> 2, p.value ->> 3, 'SKIPPED', 1, ?2,
  ?3, p.value ->> 4, 'won', {NOW}, {NOW}, {NOW}, 'overlap',
  'not run: the previous plan of the scope was still running (overlap policy)'
FROM jsonb_each(?4) AS p
WHERE true
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO NOTHING";

/// ?1 is `[[job, scope_kind, scope_id, reason, from_ms, to_ms, plans, scopes, detail], ...]`.
/// A span recorded already (by another replica that decided the same) is widened, never doubled.
pub(super) const SKIP_RECORD: &str = "\
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT s.value ->> 0, s.value ->> 1, s.value ->> 2, s.value ->> 3, s.value ->> 4, s.value ->> 5,
  s.value ->> 6, s.value ->> 7, s.value ->> 8, {NOW}
FROM jsonb_each(?1) AS s
WHERE true
ON CONFLICT (job_name, scope_kind, scope_id, reason, span_from) DO UPDATE SET
  span_to = max(span_to, excluded.span_to),
  plans = max(plans, excluded.plans),
  scopes = max(scopes, excluded.scopes)";

/// The columns of a ledger row, in the order the row reader expects.
macro_rules! skip_columns {
    () => {
        "job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail, \
         recorded_at"
    };
}

/// ?1 job, ?2/?3 scope, ?4 plan time, ?5 due time: the scope's rows and the shared ones that
/// start by the due time and end at or after the plan time.
pub(super) const SKIP_FIND: &str = concat!(
    "SELECT ",
    skip_columns!(),
    " FROM cronlease_skips
WHERE job_name = ?1 AND ((scope_kind = ?2 AND scope_id = ?3) OR scope_kind = '')
  AND span_from <= ?5 AND span_to >= ?4
ORDER BY span_from"
);

/// ?1: the age in ms; ?2: the batch. Oldest first, along the `recorded_at` index.
pub(super) const SKIP_PRUNE: &str = "\
DELETE FROM cronlease_skips
WHERE (job_name, scope_kind, scope_id, reason, span_from) IN (
  SELECT job_name, scope_kind, scope_id, reason, span_from FROM cronlease_skips
  WHERE recorded_at < {NOW} - ?1
  ORDER BY recorded_at
  LIMIT ?2)";

pub(super) const SKIP_LIST: &str = concat!(
    "SELECT ",
    skip_columns!(),
    " FROM cronlease_skips
WHERE (?1 IS NULL OR job_name = ?1)
ORDER BY recorded_at DESC, job_name, span_from DESC
LIMIT ?2"
);
/// ?1..?5: runner id, host, pid, version, refresh interval (ms); ?6: starting (a fresh
/// `started_at`). A runner that registers is running: any former stop is forgotten.
pub(super) const RUNNER_REGISTER: &str = "\
INSERT INTO cronlease_runners
  (runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at)
VALUES (?1, ?2, ?3, ?4, ?5, {NOW}, {NOW}, NULL)
ON CONFLICT (runner_id) DO UPDATE SET
  host = excluded.host, pid = excluded.pid, version = excluded.version,
  refresh_interval_ms = excluded.refresh_interval_ms,
  started_at = CASE WHEN ?6 THEN excluded.started_at ELSE cronlease_runners.started_at END,
  last_seen = excluded.last_seen, stopped_at = NULL";

pub(super) const REGISTERED_JOBS_CLEAR: &str = "\
DELETE FROM cronlease_registered_jobs WHERE runner_id = ?1";

/// ?1 runner id, ?2..?14 the job's description (see `JobDescription`).
pub(super) const REGISTERED_JOB_INSERT: &str = "\
INSERT INTO cronlease_registered_jobs
  (runner_id, job_name, spec_hash, schedule, time_zone, stagger_ms, schedule_delay_ms, catch_up,
   max_attempts, backoff, run_timeout_ms, stale_timeout_ms, heartbeat_interval_ms, spec,
   registered_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, {NOW})";

pub(super) const RUNNER_SEEN: &str = "\
UPDATE cronlease_runners SET last_seen = {NOW} WHERE runner_id = ?1";

pub(super) const RUNNER_STOP: &str = "\
UPDATE cronlease_runners SET last_seen = {NOW}, stopped_at = {NOW} WHERE runner_id = ?1";

pub(super) const RUNNER_LIST: &str = "\
SELECT runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at,
  {NOW} AS now
FROM cronlease_runners ORDER BY runner_id";

/// ?1: how long after `last_seen` (ms) a runner is deleted.
pub(super) const RUNNER_PRUNE: &str = "\
DELETE FROM cronlease_runners WHERE last_seen < {NOW} - ?1";

/// The registry rows whose runner is gone from `cronlease_runners` (pruned).
pub(super) const REGISTERED_JOBS_PRUNE: &str = "\
DELETE FROM cronlease_registered_jobs WHERE NOT EXISTS (
  SELECT 1 FROM cronlease_runners AS r WHERE r.runner_id = cronlease_registered_jobs.runner_id)";

/// ?1: one job, or NULL for all.
pub(super) const REGISTERED_JOBS: &str = "\
SELECT j.runner_id, j.job_name, j.spec_hash, j.schedule, j.time_zone, j.stagger_ms,
  j.schedule_delay_ms, j.catch_up, j.max_attempts, j.backoff, j.run_timeout_ms,
  j.stale_timeout_ms, j.heartbeat_interval_ms, j.spec, j.registered_at, r.last_seen,
  r.stopped_at, r.refresh_interval_ms, {NOW} AS now
FROM cronlease_registered_jobs AS j JOIN cronlease_runners AS r ON r.runner_id = j.runner_id
WHERE (?1 IS NULL OR j.job_name = ?1)
ORDER BY j.job_name, j.runner_id";
const TRIGGER_COLUMNS: &str =
    "id, job_name, scope_kind, scope_id, idempotency_key, requested_by, requested_at, started_at";

/// ?1..?6: id, job, scope kind, scope id (both empty for every scope), key, by. A key the job
/// used already returns the existing trigger (the no-op update makes `RETURNING` yield it).
pub(super) const TRIGGER_CREATE: &str = "\
INSERT INTO cronlease_triggers (id, job_name, scope_kind, scope_id, idempotency_key, requested_by,
  requested_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
ON CONFLICT (job_name, idempotency_key) DO UPDATE SET job_name = excluded.job_name
RETURNING id, job_name, scope_kind, scope_id, idempotency_key, requested_by, requested_at, started_at";

/// ?1 job or null, ?2 pending only.
pub(super) fn trigger_list() -> String {
    format!(
        "SELECT {TRIGGER_COLUMNS} FROM cronlease_triggers
WHERE (?1 IS NULL OR job_name = ?1) AND (?2 = 0 OR started_at IS NULL)
ORDER BY requested_at, id"
    )
}

/// ?5 is `[[id, scope_kind, scope_id, plan_time_ms, token, trigger_id], ...]`, ?6 the most rows
/// to insert. Only plans without a row count against it (one unique-key probe each).
pub(super) const TRIGGER_START_INSERT: &str = "\
INSERT INTO cronlease_executions (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, heartbeat_at, stale_after, started_at, created_at, updated_at, trigger_id)
SELECT p.value ->> 0, ?1, p.value ->> 1, p.value ->> 2, p.value ->> 3, 'RUNNING', 1, ?2,
  ?3, p.value ->> 4, {NOW}, {NOW} + ?4, {NOW}, {NOW}, {NOW}, p.value ->> 5
FROM jsonb_each(?5) AS p
WHERE NOT EXISTS (SELECT 1 FROM cronlease_executions AS e
  WHERE e.job_name = ?1 AND e.scope_kind = p.value ->> 1 AND e.scope_id = p.value ->> 2
    AND e.plan_time = p.value ->> 3)
ORDER BY p.key
LIMIT ?6
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO NOTHING";

/// ?1 is `[trigger id, ...]`.
pub(super) const TRIGGER_MARK_STARTED: &str = "\
UPDATE cronlease_triggers SET started_at = {NOW}
WHERE id IN (SELECT value FROM jsonb_each(?1)) AND started_at IS NULL";

/// The manual rows held under the offered tokens, as one JSON array; ?1 as `TRIGGER_START_INSERT`'s ?5.
pub(super) const TRIGGER_STARTED_ROWS: &str = "\
SELECT json_group_array(json_array(e.id, e.lease_token, e.started_at))
FROM jsonb_each(?1) AS p
CROSS JOIN cronlease_executions AS e ON e.id = p.value ->> 0
WHERE e.lease_token = p.value ->> 4 AND e.status = 'RUNNING'";

const BACKFILL_COLUMNS: &str = "id, job_name, scopes, from_time, to_time, rerun, requested_by, \
  status, cursor_plan_time, cursor_scope_kind, cursor_scope_id, done, total, created_at, updated_at";

/// ?1..?7: id, job, scopes JSON or null, from, to, rerun, by.
pub(super) const BACKFILL_CREATE: &str = "\
INSERT INTO cronlease_backfills (id, job_name, scopes, from_time, to_time, rerun, requested_by,
  status, done, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ACTIVE', 0, {NOW}, {NOW})
RETURNING created_at";

pub(super) fn backfill_get() -> String {
    format!("SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills WHERE id = ?1")
}

/// ?1 job or null, ?2 active only.
pub(super) fn backfill_list() -> String {
    format!(
        "SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills
WHERE (?1 IS NULL OR job_name = ?1) AND (?2 = 0 OR status = 'ACTIVE')
ORDER BY created_at, id"
    )
}

pub(super) const BACKFILL_CANCEL: &str = "\
UPDATE cronlease_backfills SET status = 'CANCELLED', updated_at = {NOW}
WHERE id = ?1 AND status = 'ACTIVE'";

/// ?1 id; ?2..?4 the new cursor; ?5 plans handed out; ?6 total; ?7 finished; ?8..?10 the
/// expected cursor (`IS` compares nulls as equal).
pub(super) const BACKFILL_ADVANCE: &str = "\
UPDATE cronlease_backfills SET
  cursor_plan_time = ?2, cursor_scope_kind = ?3, cursor_scope_id = ?4,
  done = done + ?5, total = ?6,
  status = CASE WHEN ?7 AND status = 'ACTIVE' THEN 'DONE' ELSE status END,
  updated_at = {NOW}
WHERE id = ?1 AND status IN ('ACTIVE', 'CANCELLED')
  AND cursor_plan_time IS ?8 AND cursor_scope_kind IS ?9 AND cursor_scope_id IS ?10";

/// ?2 is `[[scope_kind, scope_id, plan_time_ms], ...]`, ?3 the creation time of the backfill,
/// ?4 the extra attempts. One unique-key probe per plan.
pub(super) const EXECUTION_RERUN: &str = "\
UPDATE cronlease_executions SET
  status = 'FAILED',
  next_retry_at = {NOW},
  max_attempts = attempt + ?4,
  replay_pending = 1,
  replayed_at = {NOW},
  updated_at = {NOW}
WHERE job_name = ?1 AND status IN ('SUCCESS', 'DEAD', 'SUPERSEDED') AND finished_at < ?3
  AND (scope_kind, scope_id, plan_time) IN
    (SELECT value ->> 0, value ->> 1, value ->> 2 FROM jsonb_each(?2))";
