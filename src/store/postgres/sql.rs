//! PostgreSQL statements. Times are `timestamptz`; `{NOW}` is replaced by the database clock
//! expression (plus the store's clock skew) when the store is built.
//!
//! Batches travel as one array parameter per column, read with `UNNEST`, so one statement serves
//! any number of plans. Durations travel as milliseconds (`bigint`) and become intervals here.
//! Every statement that stamps or compares lease times reads the clock once, in a
//! `MATERIALIZED` CTE (`c.now`), so the value it stores is the value it compared against.
//!
//! **One lock order: the plan key** `(job_name, scope_kind, scope_id, plan_time)`. A claim
//! inserts its plans (or meets their existing rows through `ON CONFLICT`) in key order; every
//! other statement that writes several rows first locks them in key order, in a `MATERIALIZED`
//! CTE (`l`) with `ORDER BY .. FOR UPDATE`, before it changes any. Batches listing their rows in
//! different orders (a heartbeat and a success write of the same leases, a rival's claim of the
//! same plans) then queue behind each other instead of deadlocking. Statements that may skip a
//! busy row (sweep, supersede, prune) use `SKIP LOCKED` and never wait.
//!
//! **Rows found by id keep to the primary key.** A statement that finds rows by id and tests
//! their status writes the test as `status IN ('RUNNING', '')` (or `'FAILED'`): the same meaning,
//! as the CHECK constraint refuses '', but it does not imply the predicate of the partial index
//! on that status (`cronlease_executions_stale`, `cronlease_executions_retry`). When it does, and
//! the statistics were taken while that index was nearly empty (estimated at one row),
//! PostgreSQL prefers scanning the whole partial index, once per input row, to probing the
//! primary key: a heartbeat of 2,000 leases among 10,000 running rows took 12 s. The test
//! `plans_keep_to_the_primary_key_after_analyze` checks the plans.

/// The database clock; `{SKEW}` is the store's clock skew in milliseconds. `clock_timestamp()`
/// advances inside a transaction (unlike `now()`), so a lease is never stamped with a stale
/// transaction start. Cut to milliseconds, the resolution of the SQLite store and of the
/// failure history, so a time read back from the history equals the column it came from.
pub(super) const NOW_EXPR: &str =
    "date_trunc('milliseconds', clock_timestamp() + interval '{SKEW} milliseconds')";

pub(super) const DB_NOW: &str = "SELECT {NOW}";

/// Manual runs (a trigger's) are not plans of the schedule: planning ignores them.
pub(super) const EXECUTION_LATEST_PLANS: &str = "\
SELECT scope_kind, scope_id, MAX(plan_time) AS plan_time
FROM cronlease_executions
WHERE job_name = $1 AND trigger_id IS NULL
GROUP BY scope_kind, scope_id";

/// Which offered plans have a row: the 1-based positions in $2..$4 (scope kinds, scope ids,
/// plan times) of those that do; $1 is the job. One unique-key probe per plan, no lock.
pub(super) const EXECUTION_PLANS_EXIST: &str = "\
SELECT u.n FROM UNNEST($2::text[], $3::text[], $4::timestamptz[])
  WITH ORDINALITY AS u(scope_kind, scope_id, plan_time, n)
WHERE EXISTS (SELECT 1 FROM cronlease_executions AS x WHERE x.job_name = $1
  AND x.scope_kind = u.scope_kind AND x.scope_id = u.scope_id AND x.plan_time = u.plan_time)";

/// Every FAILED row with a retry scheduled and attempts left, whatever its plan time: catch-up
/// only decides which never-started plans get rows, a failed row is retried until SUCCESS or DEAD.
pub(super) const EXECUTION_RETRY_CANDIDATES: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
SELECT e.scope_kind, e.scope_id, e.plan_time, e.next_retry_at, e.next_retry_at <= c.now AS due,
  e.replay_pending
FROM cronlease_executions AS e CROSS JOIN c
WHERE e.job_name = $1 AND e.status = 'FAILED' AND e.next_retry_at IS NOT NULL
  AND e.attempt < e.max_attempts
ORDER BY e.next_retry_at
LIMIT $2";

/// Closes the job's FAILED rows that a newer plan of the same scope has succeeded since (the
/// job opted in to superseding): SUPERSEDED, no retry. Walks the partial FAILED index, then one
/// unique-key probe per failed row, so its cost follows the failed rows, not the scopes. Rows
/// are locked in id order (the one global order of the batched writes), skipping rows another
/// runner holds; replayed rows are left alone: an operator asked for them.
pub(super) const EXECUTION_SUPERSEDE: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
f AS (
  SELECT e.id FROM cronlease_executions AS e
  WHERE e.job_name = $1 AND e.status = 'FAILED' AND NOT e.replay_pending
    AND EXISTS (SELECT 1 FROM cronlease_executions AS n
      WHERE n.job_name = e.job_name AND n.scope_kind = e.scope_kind AND n.scope_id = e.scope_id
        AND n.plan_time > e.plan_time AND n.status = 'SUCCESS')
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e SKIP LOCKED)
UPDATE cronlease_executions AS e SET
  status = 'SUPERSEDED',
  next_retry_at = NULL,
  finished_at = c.now,
  updated_at = c.now
FROM f, c
WHERE e.id = f.id AND e.status IN ('FAILED', '')
RETURNING e.id";

/// $5..$9 are the plans' ids, scope kinds, scope ids, plan times and tokens (parallel arrays).
/// A plan repeated in the batch is claimed once (its first occurrence), as one row per plan
/// allows. Plans are inserted (or their existing rows locked by `ON CONFLICT`) in plan-key
/// order: the global lock order, with no extra pass.
/// On conflict the SET expressions read the old row (`e`), the new values come from `excluded`,
/// and `excluded.started_at` is the statement's single clock reading.
/// A row RUNNING under the very token offered was claimed by an earlier try of this request
/// whose reply was lost: it is returned again (attempt, outcome and history unchanged, lease
/// stamps renewed) instead of being conflicted and left to go stale.
pub(super) const EXECUTION_CLAIM: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
p AS MATERIALIZED (
  SELECT DISTINCT ON (u.scope_kind, u.scope_id, u.plan_time)
    u.id, u.scope_kind, u.scope_id, u.plan_time, u.token
  FROM UNNEST($5::uuid[], $6::text[], $7::text[], $8::timestamptz[], $9::uuid[])
    WITH ORDINALITY AS u(id, scope_kind, scope_id, plan_time, token, n)
  ORDER BY u.scope_kind, u.scope_id, u.plan_time, u.n)
INSERT INTO cronlease_executions AS e (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, started_at, created_at, updated_at)
SELECT p.id, $1::text, p.scope_kind, p.scope_id, p.plan_time, 'RUNNING', 1, $2::bigint,
  $3::text, p.token, 'won', c.now, c.now + $4::bigint * interval '1 millisecond', c.now, c.now, c.now
FROM p CROSS JOIN c
ORDER BY p.scope_kind, p.scope_id, p.plan_time
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO UPDATE SET
  status = 'RUNNING',
  attempt = CASE WHEN e.status = 'RUNNING' AND e.lease_token = excluded.lease_token
    THEN e.attempt ELSE e.attempt + 1 END,
  runner_id = excluded.runner_id,
  lease_token = excluded.lease_token,
  claim_outcome = CASE WHEN e.status = 'RUNNING' AND e.lease_token = excluded.lease_token
    THEN e.claim_outcome WHEN e.status = 'RUNNING' THEN 'stole'
    WHEN e.replay_pending THEN 'replayed' ELSE 'retried' END,
  replay_pending = false,
  failures = CASE WHEN e.status = 'RUNNING' AND e.lease_token <> excluded.lease_token
    THEN e.failures || jsonb_build_array(jsonb_build_object(
      'attempt', e.attempt, 'code', 'stale_timeout',
      'message', 'lease expired without heartbeat; taken over by runner ' || excluded.runner_id,
      'started_at', floor(extract(epoch FROM e.started_at) * 1000)::bigint,
      'finished_at', floor(extract(epoch FROM excluded.started_at) * 1000)::bigint))
    ELSE e.failures END,
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
WHERE (e.status = 'RUNNING' AND e.lease_token = excluded.lease_token)
  OR (e.attempt < e.max_attempts AND (
  (e.status = 'FAILED' AND e.next_retry_at IS NOT NULL AND e.next_retry_at <= excluded.started_at)
  OR (e.status = 'RUNNING' AND $10::boolean AND e.stale_after < excluded.started_at
    AND ($11::timestamptz IS NULL OR excluded.started_at <= $11::timestamptz))))
RETURNING e.id, e.scope_kind, e.scope_id, e.plan_time, e.attempt, e.max_attempts, e.lease_token,
  e.claim_outcome, e.started_at";

/// $1..$3 are the leases' ids, tokens and stale timeouts in milliseconds.
/// The locked rows (`l`) carry their input values, so the update joins them to the table by
/// primary key alone: joining `l` back to `v` let PostgreSQL's generic plan (which guesses 10
/// input rows) pick a nested loop over both, quadratic in the batch: 265 ms for 1,000 writes.
/// The status test is written `IN ('RUNNING', '')` ('' cannot be stored: the CHECK refuses it)
/// so it does not imply the predicate of the partial stale index: with `= 'RUNNING'`, statistics
/// taken while few rows ran (the stale index estimated at one row) let the planner scan that
/// whole index once per lease, 12 s for 2,000 leases among 10,000 running rows (see the module
/// documentation).
pub(super) const EXECUTION_HEARTBEAT: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
v AS MATERIALIZED (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[]) AS v(id, token, stale_ms)),
l AS MATERIALIZED (
  SELECT v.* FROM cronlease_executions AS e JOIN v ON e.id = v.id AND e.lease_token = v.token
  WHERE e.status IN ('RUNNING', '')
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e)
UPDATE cronlease_executions AS e SET
  heartbeat_at = c.now,
  stale_after = c.now + v.stale_ms * interval '1 millisecond',
  updated_at = c.now
FROM l AS v CROSS JOIN c
WHERE e.id = v.id AND e.lease_token = v.token AND e.status IN ('RUNNING', '')
RETURNING e.id";

/// $1..$5 are ids, tokens, durations, row counts and result JSON texts.
/// Idempotent for its lease: a retry after a lost reply finds the row SUCCESS under the same
/// token, reports it written and changes nothing.
/// `l` carries the input values: see [`EXECUTION_HEARTBEAT`].
pub(super) const EXECUTION_FINISH_SUCCESS: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
v AS MATERIALIZED (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[])
    AS v(id, token, duration_ms, rows_affected, result)),
l AS MATERIALIZED (
  SELECT v.* FROM cronlease_executions AS e JOIN v ON e.id = v.id AND e.lease_token = v.token
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e)
UPDATE cronlease_executions AS e SET
  status = 'SUCCESS',
  finished_at = CASE WHEN e.status = 'RUNNING' THEN c.now ELSE e.finished_at END,
  updated_at = CASE WHEN e.status = 'RUNNING' THEN c.now ELSE e.updated_at END,
  duration_ms = v.duration_ms,
  rows_affected = v.rows_affected,
  result = v.result::jsonb,
  next_retry_at = NULL,
  error_code = NULL,
  error_msg = NULL
FROM l AS v CROSS JOIN c
WHERE e.id = v.id AND e.lease_token = v.token AND e.status IN ('RUNNING', 'SUCCESS')
RETURNING e.id";

/// $1..$8 are ids, tokens, statuses, codes, messages, retry delays in milliseconds (null: no
/// retry), extend-budget flags and durations.
/// Idempotent for its lease: a retry after a lost reply finds the row already in the status and
/// code it writes under the same token, reports it written and changes nothing (the sweep writes
/// `stale_timeout`, a code executors never write, so a swept row still fences a late write).
/// `l` carries the input values: see [`EXECUTION_HEARTBEAT`].
pub(super) const EXECUTION_FINISH_FAILURE: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
v AS MATERIALIZED (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
      $6::bigint[], $7::boolean[], $8::bigint[])
    AS v(id, token, status, code, message, retry_ms, extend, duration_ms)),
l AS MATERIALIZED (
  SELECT v.* FROM cronlease_executions AS e JOIN v ON e.id = v.id AND e.lease_token = v.token
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e)
UPDATE cronlease_executions AS e SET
  status = v.status,
  next_retry_at = CASE WHEN e.status <> 'RUNNING' THEN e.next_retry_at
    WHEN v.retry_ms IS NULL THEN NULL
    ELSE c.now + v.retry_ms * interval '1 millisecond' END,
  error_code = v.code,
  error_msg = v.message,
  finished_at = CASE WHEN e.status = 'RUNNING' THEN c.now ELSE e.finished_at END,
  updated_at = CASE WHEN e.status = 'RUNNING' THEN c.now ELSE e.updated_at END,
  duration_ms = v.duration_ms,
  max_attempts = CASE WHEN v.extend THEN GREATEST(e.max_attempts, e.attempt + 1)
    ELSE e.max_attempts END,
  failures = CASE WHEN e.status = 'RUNNING'
    THEN e.failures || jsonb_build_array(jsonb_build_object(
    'attempt', e.attempt, 'code', v.code, 'message', v.message,
    'started_at', floor(extract(epoch FROM e.started_at) * 1000)::bigint,
    'finished_at', floor(extract(epoch FROM c.now) * 1000)::bigint))
    ELSE e.failures END
FROM l AS v CROSS JOIN c
WHERE e.id = v.id AND e.lease_token = v.token
  AND (e.status = 'RUNNING' OR (e.status = v.status AND e.error_code = v.code))
RETURNING e.id";

/// Rows another runner is writing right now (its late heartbeat or terminal write) are skipped
/// this tick, not waited for. $3 (nullable) is the latest database time at which the sweep may
/// still act: a sweep whose statement was held up past it (queued behind an outage) changes
/// nothing.
pub(super) const EXECUTION_SWEEP_STALE: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
l AS MATERIALIZED (
  SELECT e.id FROM cronlease_executions AS e, c
  WHERE e.job_name = $1 AND e.status = 'RUNNING' AND e.stale_after < c.now
    AND ($3::timestamptz IS NULL OR c.now <= $3::timestamptz)
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e SKIP LOCKED)
UPDATE cronlease_executions AS e SET
  status = CASE WHEN $2::boolean AND e.attempt < e.max_attempts THEN 'FAILED' ELSE 'DEAD' END,
  next_retry_at = CASE WHEN $2::boolean AND e.attempt < e.max_attempts THEN c.now ELSE NULL END,
  error_code = 'stale_timeout',
  error_msg = 'lease expired without heartbeat',
  finished_at = c.now,
  updated_at = c.now,
  failures = e.failures || jsonb_build_array(jsonb_build_object(
    'attempt', e.attempt, 'code', 'stale_timeout', 'message', 'lease expired without heartbeat',
    'started_at', floor(extract(epoch FROM e.started_at) * 1000)::bigint,
    'finished_at', floor(extract(epoch FROM c.now) * 1000)::bigint))
FROM l CROSS JOIN c
WHERE e.id = l.id AND e.job_name = $1 AND e.status IN ('RUNNING', '') AND e.stale_after < c.now
RETURNING e.id, e.status";

pub(super) const EXECUTION_GET: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions WHERE id = $1"
);

/// $7 and $8 are the keyset cursor `(plan_time, id)`: rows strictly after it, newest first.
pub(super) const EXECUTION_LIST: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM cronlease_executions
WHERE ($1::text IS NULL OR job_name = $1::text)
  AND ($2::text IS NULL OR (scope_kind = $2::text AND scope_id = $3::text))
  AND ($4::text IS NULL OR status = $4::text)
  AND ($5::timestamptz IS NULL OR plan_time >= $5::timestamptz)
  AND ($6::timestamptz IS NULL OR plan_time < $6::timestamptz)
  AND ($7::timestamptz IS NULL OR (plan_time, id) < ($7::timestamptz, $8::uuid))
ORDER BY plan_time DESC, id DESC
LIMIT $9"
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
      WHERE job_name = $1::text
        AND (scope_kind, scope_id) > ($2::text, $3::text)
      GROUP BY scope_kind, scope_id
      ORDER BY scope_kind, scope_id
      LIMIT $4) AS l
  ON e.job_name = $1::text AND e.scope_kind = l.k AND e.scope_id = l.i AND e.plan_time = l.p
ORDER BY e.scope_kind, e.scope_id"
);

pub(super) const EXECUTION_COUNT_BY_STATUS: &str = "\
SELECT status, COUNT(*) AS n FROM cronlease_executions
WHERE ($1::text IS NULL OR job_name = $1::text)
GROUP BY status";

/// $1 is the ids. Only rows that are DEAD when the statement runs change (a concurrent replay
/// waits for the row lock, then finds it FAILED and skips it), so a row is replayed once.
pub(super) const EXECUTION_REPLAY: &str = concat!(
    "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
l AS MATERIALIZED (
  SELECT e.id AS locked_id FROM cronlease_executions AS e
  WHERE e.id = ANY($1::uuid[]) AND e.status = 'DEAD'
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e)
UPDATE cronlease_executions AS e SET
  status = 'FAILED',
  next_retry_at = c.now,
  max_attempts = e.attempt + $2::integer,
  replay_pending = true,
  replayed_at = c.now,
  updated_at = c.now
FROM l CROSS JOIN c
WHERE e.id = l.locked_id AND e.status = 'DEAD'
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
    AND e.finished_at < (SELECT c.now FROM c) - $2::bigint * interval '1 millisecond'
    AND (e.status = 'DEAD') = $1::boolean
    AND NOT e.replay_pending
    AND EXISTS (SELECT 1 FROM cronlease_executions AS n
      WHERE n.job_name = e.job_name AND n.scope_kind = e.scope_kind AND n.scope_id = e.scope_id
        AND n.plan_time > e.plan_time AND n.trigger_id IS NULL)"
    };
}

/// $1: whether to prune DEAD rows (else SUCCESS, SUPERSEDED and SKIPPED); $2: the age in ms; $3: the batch.
/// The newest scheduled row of a scope is kept (planning reads it); a newer manual run does not
/// count as a newer plan.
/// The cutoff is a scalar subquery, so it is an index condition on `finished_at` (the scan stops
/// at the cutoff), and the ids travel as an array, so the delete finds them by primary key.
/// Rows another replica is pruning (or replaying) right now are skipped, not waited for.
/// $4: the one job to prune (null: every job); $5: jobs left out.
pub(super) const EXECUTION_PRUNE: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT {NOW} AS now)
DELETE FROM cronlease_executions WHERE id = ANY (ARRAY(
  SELECT e.id",
    prunable!(),
    "
    AND ($4::text IS NULL OR e.job_name = $4) AND e.job_name <> ALL ($5::text[])
  ORDER BY e.finished_at
  LIMIT $3
  FOR UPDATE OF e SKIP LOCKED))"
);

/// [`EXECUTION_PRUNE`] on the DEFAULT partition of a partitioned history only (the newer-row
/// test still reads the whole history).
pub(super) fn execution_prune_default_partition() -> String {
    EXECUTION_PRUNE
        .replace(
            "DELETE FROM cronlease_executions WHERE",
            "DELETE FROM cronlease_executions_default WHERE",
        )
        .replace(
            "FROM cronlease_executions AS e\n",
            "FROM cronlease_executions_default AS e\n",
        )
}

/// $1, $2: as [`EXECUTION_PRUNE`]'s, without the batch limit; $3, $4: its $4, $5.
pub(super) const EXECUTION_COUNT_PRUNABLE: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT {NOW} AS now)
SELECT COUNT(*)",
    prunable!(),
    "
    AND ($3::text IS NULL OR e.job_name = $3) AND e.job_name <> ALL ($4::text[])"
);

/// The cutoff is a scalar subquery, so the partial stale index answers it.
/// Per job, the FAILED and DEAD rows planned at or after the bound time.
pub(super) const EXECUTION_COUNT_FAILING: &str = "\
SELECT job_name, COUNT(*) AS n FROM cronlease_executions
WHERE status IN ('FAILED', 'DEAD') AND plan_time >= $1
GROUP BY job_name";

pub(super) const EXECUTION_COUNT_STALE: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
SELECT e.job_name, COUNT(*) AS n FROM cronlease_executions AS e
WHERE e.status = 'RUNNING' AND e.stale_after < (SELECT c.now FROM c)
GROUP BY e.job_name";

/// The clock and the job's pauses in one statement: always one row, with a null scope when the
/// job has no pause (a whole-job pause is the empty scope).
pub(super) const TICK_CLOCK: &str = "\
SELECT {NOW} AS now, p.scope_kind, p.scope_id,
  EXISTS (SELECT 1 FROM cronlease_triggers WHERE job_name = $1 AND started_at IS NULL) AS triggers,
  EXISTS (SELECT 1 FROM cronlease_backfills WHERE job_name = $1 AND status = 'ACTIVE') AS backfills
FROM (SELECT 1) AS one LEFT JOIN cronlease_pauses AS p ON p.job_name = $1";

/// $1..$5: job, scope kind, scope id (both empty for the whole job), by, reason.
pub(super) const PAUSE_SET: &str = "\
INSERT INTO cronlease_pauses (job_name, scope_kind, scope_id, paused_by, reason, paused_at)
VALUES ($1, $2, $3, $4, $5, {NOW})
ON CONFLICT (job_name, scope_kind, scope_id) DO UPDATE SET
  paused_by = excluded.paused_by, reason = excluded.reason, paused_at = excluded.paused_at
RETURNING paused_at";

/// Lifts a pause and records the paused interval in the skipped-plan ledger, in one statement.
/// Returns one row per pause lifted.
pub(super) const PAUSE_CLEAR: &str = "\
WITH gone AS (
  DELETE FROM cronlease_pauses WHERE job_name = $1 AND scope_kind = $2 AND scope_id = $3
  RETURNING job_name, scope_kind, scope_id, paused_by, reason, paused_at)
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT job_name, scope_kind, scope_id, 'paused', paused_at, {NOW}, NULL,
  CASE WHEN scope_kind = '' THEN 0 ELSE 1 END, 'paused by ' || paused_by || ': ' || reason, {NOW}
FROM gone
ON CONFLICT (job_name, scope_kind, scope_id, reason, span_from) DO UPDATE SET
  span_to = excluded.span_to, detail = excluded.detail, recorded_at = excluded.recorded_at";

pub(super) const PAUSE_LIST: &str = "\
SELECT job_name, scope_kind, scope_id, paused_by, reason, paused_at FROM cronlease_pauses
WHERE ($1::text IS NULL OR job_name = $1::text)
ORDER BY job_name, scope_kind, scope_id";

/// The job's claim lock for a guarded claim (overlap policy, concurrency limit): a transaction
/// advisory lock on a hash of the job's name, taken before any row, so guarded claims of one job
/// are serialized across replicas and the lock order stays global (the job's lock, then rows in
/// plan-key order). Released at commit or rollback.
pub(super) const CLAIM_GUARD_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('cronlease.claim:' || $1::text, 0))";

/// What a guarded claim decides on: the RUNNING rows of the offered plans' scopes (one probe of
/// the partial running index per scope: `OFFSET 0` keeps the lateral read from being turned
/// into a join that scans the job's running rows, and its status test names that index's
/// predicate, see `migrate.rs`) and the existing row of each offered plan (one unique-key probe
/// each): cost grows with the plans offered, not with the attempts of the job running
/// elsewhere. $2..$4 are the plans' scope kinds, scope ids and plan times.
pub(super) const CLAIM_GUARD_ROWS: &str = "\
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after < {NOW} AS stale
FROM cronlease_executions AS e
WHERE e.id IN (
  SELECT r.id FROM (SELECT DISTINCT scope_kind, scope_id FROM UNNEST($2::text[], $3::text[])
      AS o(scope_kind, scope_id)) AS o
  CROSS JOIN LATERAL (SELECT r.id FROM cronlease_executions AS r
    WHERE r.job_name = $1 AND r.status IN ('RUNNING', '-') AND r.scope_kind = o.scope_kind
      AND r.scope_id = o.scope_id OFFSET 0) AS r
  UNION
  SELECT x.id FROM UNNEST($2::text[], $3::text[], $4::timestamptz[]) AS u(scope_kind, scope_id, plan_time)
  JOIN cronlease_executions AS x ON x.job_name = $1 AND x.scope_kind = u.scope_kind
    AND x.scope_id = u.scope_id AND x.plan_time = u.plan_time)
ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time";

/// The same rows, locked in plan-key order: for `CancelOther`, whose cancellations and claim
/// then touch only rows this statement already holds.
pub(super) const CLAIM_GUARD_ROWS_LOCKED: &str = concat!(
    "\
SELECT e.id, e.lease_token, e.scope_kind, e.scope_id, e.plan_time, e.status, e.started_at,
  e.stale_after < {NOW} AS stale
FROM cronlease_executions AS e
WHERE e.id IN (
  SELECT r.id FROM (SELECT DISTINCT scope_kind, scope_id FROM UNNEST($2::text[], $3::text[])
      AS o(scope_kind, scope_id)) AS o
  CROSS JOIN LATERAL (SELECT r.id FROM cronlease_executions AS r
    WHERE r.job_name = $1 AND r.status IN ('RUNNING', '-') AND r.scope_kind = o.scope_kind
      AND r.scope_id = o.scope_id OFFSET 0) AS r
  UNION
  SELECT x.id FROM UNNEST($2::text[], $3::text[], $4::timestamptz[]) AS u(scope_kind, scope_id, plan_time)
  JOIN cronlease_executions AS x ON x.job_name = $1 AND x.scope_kind = u.scope_kind
    AND x.scope_id = u.scope_id AND x.plan_time = u.plan_time)
ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time",
    "\nFOR UPDATE OF e"
);

/// The number of RUNNING rows of job $1, for a guarded claim under a concurrency limit.
pub(super) const CLAIM_GUARD_RUNNING_COUNT: &str =
    "SELECT COUNT(*) FROM cronlease_executions WHERE job_name = $1 AND status = 'RUNNING'";

/// Cancels running attempts for a newer plan of their scope (`CancelOther`): SUPERSEDED with the
/// code `overlap_cancelled`, fenced by id + token + RUNNING. The owner's next heartbeat finds its
/// lease gone and cancels the handler; its late writes are fenced out. $1, $2: ids and tokens.
pub(super) const CLAIM_GUARD_CANCEL: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
UPDATE cronlease_executions AS e SET
  status = 'SUPERSEDED',
  next_retry_at = NULL,
  error_code = 'overlap_cancelled',
  error_msg = 'cancelled: a newer plan of the scope started (overlap policy cancel_other)',
  finished_at = c.now,
  updated_at = c.now,
  duration_ms = floor(extract(epoch FROM c.now - e.started_at) * 1000)::bigint
FROM UNNEST($1::uuid[], $2::uuid[]) AS v(id, token) CROSS JOIN c
WHERE e.id = v.id AND e.lease_token = v.token AND e.status IN ('RUNNING', '')";

/// Records plans the overlap policy skips: SKIPPED rows with the code `overlap`, finished at
/// once, never started. $4..$8: ids, scope kinds, scope ids, plan times and tokens.
pub(super) const CLAIM_GUARD_SKIP: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
INSERT INTO cronlease_executions AS e (
  id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
  runner_id, lease_token, claim_outcome, finished_at, created_at, updated_at, error_code, error_msg)
SELECT u.id, $1::text, u.scope_kind, u.scope_id, u.plan_time, 'SKIPPED', 1, $2::bigint,
  $3::text, u.token, 'won', c.now, c.now, c.now, 'overlap',
  'not run: the previous plan of the scope was still running (overlap policy)'
FROM UNNEST($4::uuid[], $5::text[], $6::text[], $7::timestamptz[], $8::uuid[])
  AS u(id, scope_kind, scope_id, plan_time, token) CROSS JOIN c
ORDER BY u.scope_kind, u.scope_id, u.plan_time
ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO NOTHING";

/// One array per column. A span recorded already (another replica decided the same) is widened,
/// never doubled; the store sends the rows sorted by key, so replicas lock them in one order.
pub(super) const SKIP_RECORD: &str = "\
INSERT INTO cronlease_skips (job_name, scope_kind, scope_id, reason, span_from, span_to, plans,
  scopes, detail, recorded_at)
SELECT s.job_name, s.scope_kind, s.scope_id, s.reason, s.span_from, s.span_to, s.plans, s.scopes,
  s.detail, {NOW}
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
  $7::bigint[], $8::bigint[], $9::text[])
  AS s(job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail)
ON CONFLICT (job_name, scope_kind, scope_id, reason, span_from) DO UPDATE SET
  span_to = GREATEST(cronlease_skips.span_to, excluded.span_to),
  plans = GREATEST(cronlease_skips.plans, excluded.plans),
  scopes = GREATEST(cronlease_skips.scopes, excluded.scopes)";

/// $1 job, $2/$3 scope, $4 plan time, $5 due time: the scope's rows and the shared ones that
/// start by the due time and end at or after the plan time.
pub(super) const SKIP_FIND: &str = "\
SELECT job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail,
  recorded_at
FROM cronlease_skips
WHERE job_name = $1 AND ((scope_kind = $2 AND scope_id = $3) OR scope_kind = '')
  AND span_from <= $5 AND span_to >= $4
ORDER BY span_from";

/// $1: the age in ms; $2: the batch. Oldest first, along the `recorded_at` index.
pub(super) const SKIP_PRUNE: &str = "\
DELETE FROM cronlease_skips
WHERE (job_name, scope_kind, scope_id, reason, span_from) IN (
  SELECT job_name, scope_kind, scope_id, reason, span_from FROM cronlease_skips
  WHERE recorded_at < {NOW} - $1::bigint * interval '1 millisecond'
  ORDER BY recorded_at
  LIMIT $2)";

pub(super) const SKIP_LIST: &str = "\
SELECT job_name, scope_kind, scope_id, reason, span_from, span_to, plans, scopes, detail,
  recorded_at
FROM cronlease_skips
WHERE ($1::text IS NULL OR job_name = $1::text)
ORDER BY recorded_at DESC, job_name, span_from DESC
LIMIT $2";
/// $1..$5: runner id, host, pid, version, refresh interval (ms); $6: starting (a fresh
/// `started_at`). A runner that registers is running: any former stop is forgotten.
pub(super) const RUNNER_REGISTER: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
INSERT INTO cronlease_runners
  (runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at)
SELECT $1, $2, $3, $4, $5, c.now, c.now, NULL FROM c
ON CONFLICT (runner_id) DO UPDATE SET
  host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version,
  refresh_interval_ms = EXCLUDED.refresh_interval_ms,
  started_at = CASE WHEN $6 THEN EXCLUDED.started_at ELSE cronlease_runners.started_at END,
  last_seen = EXCLUDED.last_seen, stopped_at = NULL";

pub(super) const REGISTERED_JOBS_CLEAR: &str = "\
DELETE FROM cronlease_registered_jobs WHERE runner_id = $1";

/// $1 runner id, $2..$14 the job's description (see `JobDescription`).
pub(super) const REGISTERED_JOB_INSERT: &str = "\
INSERT INTO cronlease_registered_jobs
  (runner_id, job_name, spec_hash, schedule, time_zone, stagger_ms, schedule_delay_ms, catch_up,
   max_attempts, backoff, run_timeout_ms, stale_timeout_ms, heartbeat_interval_ms, spec,
   registered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, {NOW})";

pub(super) const RUNNER_SEEN: &str = "\
UPDATE cronlease_runners SET last_seen = {NOW} WHERE runner_id = $1";

pub(super) const RUNNER_STOP: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now)
UPDATE cronlease_runners SET last_seen = c.now, stopped_at = c.now FROM c WHERE runner_id = $1";

pub(super) const RUNNER_LIST: &str = "\
SELECT runner_id, host, pid, version, refresh_interval_ms, started_at, last_seen, stopped_at,
  {NOW} AS now
FROM cronlease_runners ORDER BY runner_id";

/// $1: how long after `last_seen` (ms) a runner is deleted, with its registered jobs, in one
/// statement; returns how many runners.
pub(super) const RUNNER_PRUNE: &str = "\
WITH gone AS (
  DELETE FROM cronlease_runners WHERE last_seen < {NOW} - $1 * interval '1 millisecond'
  RETURNING runner_id),
jobs AS (
  DELETE FROM cronlease_registered_jobs AS j USING gone WHERE j.runner_id = gone.runner_id)
SELECT COUNT(*) FROM gone";

/// $1: one job, or NULL for all.
pub(super) const REGISTERED_JOBS: &str = "\
SELECT j.runner_id, j.job_name, j.spec_hash, j.schedule, j.time_zone, j.stagger_ms,
  j.schedule_delay_ms, j.catch_up, j.max_attempts, j.backoff, j.run_timeout_ms,
  j.stale_timeout_ms, j.heartbeat_interval_ms, j.spec, j.registered_at, r.last_seen,
  r.stopped_at, r.refresh_interval_ms, {NOW} AS now
FROM cronlease_registered_jobs AS j JOIN cronlease_runners AS r ON r.runner_id = j.runner_id
WHERE ($1::text IS NULL OR j.job_name = $1::text)
ORDER BY j.job_name, j.runner_id";
const TRIGGER_COLUMNS: &str =
    "id, job_name, scope_kind, scope_id, idempotency_key, requested_by, requested_at, started_at";

/// $1..$6: id, job, scope kind, scope id (both empty for every scope), key, by. A key the job
/// used already returns the existing trigger (the no-op update makes `RETURNING` yield it).
pub(super) const TRIGGER_CREATE: &str = "\
INSERT INTO cronlease_triggers AS t (id, job_name, scope_kind, scope_id, idempotency_key,
  requested_by, requested_at)
VALUES ($1, $2, $3, $4, $5, $6, {NOW})
ON CONFLICT (job_name, idempotency_key) DO UPDATE SET job_name = t.job_name
RETURNING id, job_name, scope_kind, scope_id, idempotency_key, requested_by, requested_at, started_at";

/// $1 job or null, $2 pending only.
pub(super) fn trigger_list() -> String {
    format!(
        "SELECT {TRIGGER_COLUMNS} FROM cronlease_triggers
WHERE ($1::text IS NULL OR job_name = $1::text) AND (NOT $2::boolean OR started_at IS NULL)
ORDER BY requested_at, id"
    )
}

/// $5..$10 the plans as parallel arrays (id, scope kind, scope id, plan time, token, trigger id),
/// $11 the most rows to insert, $12 the triggers to mark started when fewer than $11 plans were
/// missing. Returns the rows held under the offered tokens: those inserted now, and those an
/// earlier try of the request inserted (visible in the statement's snapshot).
pub(super) const TRIGGER_START: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
o AS MATERIALIZED (
  SELECT * FROM UNNEST($5::uuid[], $6::text[], $7::text[], $8::timestamptz[], $9::uuid[],
    $10::uuid[]) WITH ORDINALITY AS u(id, scope_kind, scope_id, plan_time, token, trigger_id, n)),
p AS MATERIALIZED (
  SELECT o.* FROM o
  WHERE NOT EXISTS (SELECT 1 FROM cronlease_executions AS e
    WHERE e.job_name = $1 AND e.scope_kind = o.scope_kind AND e.scope_id = o.scope_id
      AND e.plan_time = o.plan_time)
  ORDER BY o.n
  LIMIT $11),
ins AS (
  INSERT INTO cronlease_executions (
    id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts,
    runner_id, lease_token, heartbeat_at, stale_after, started_at, created_at, updated_at,
    trigger_id)
  SELECT p.id, $1::text, p.scope_kind, p.scope_id, p.plan_time, 'RUNNING', 1, $2::bigint,
    $3::text, p.token, c.now, c.now + $4::bigint * interval '1 millisecond', c.now, c.now, c.now,
    p.trigger_id
  FROM p CROSS JOIN c
  ORDER BY p.scope_kind, p.scope_id, p.plan_time
  ON CONFLICT (job_name, scope_kind, scope_id, plan_time) DO NOTHING
  RETURNING id, started_at),
mark AS (
  UPDATE cronlease_triggers AS t SET started_at = c.now FROM c
  WHERE t.id = ANY($12::uuid[]) AND t.started_at IS NULL
    AND (SELECT count(*) FROM p) < $11
  RETURNING t.id)
SELECT id, started_at FROM ins
UNION ALL
SELECT e.id, e.started_at FROM o
JOIN cronlease_executions AS e ON e.id = o.id AND e.lease_token = o.token
WHERE e.status IN ('RUNNING', '')";

const BACKFILL_COLUMNS: &str = "id, job_name, scopes::text AS scopes, from_time, to_time, rerun, \
  requested_by, status, cursor_plan_time, cursor_scope_kind, cursor_scope_id, done, total, \
  created_at, updated_at";

/// $1..$7: id, job, scopes JSON or null, from, to, rerun, by.
pub(super) const BACKFILL_CREATE: &str = "\
INSERT INTO cronlease_backfills (id, job_name, scopes, from_time, to_time, rerun, requested_by,
  status, done, created_at, updated_at)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, 'ACTIVE', 0, {NOW}, {NOW})
RETURNING created_at";

pub(super) fn backfill_get() -> String {
    format!("SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills WHERE id = $1")
}

/// $1 job or null, $2 active only.
pub(super) fn backfill_list() -> String {
    format!(
        "SELECT {BACKFILL_COLUMNS} FROM cronlease_backfills
WHERE ($1::text IS NULL OR job_name = $1::text) AND (NOT $2::boolean OR status = 'ACTIVE')
ORDER BY created_at, id"
    )
}

pub(super) const BACKFILL_CANCEL: &str = "\
UPDATE cronlease_backfills SET status = 'CANCELLED', updated_at = {NOW}
WHERE id = $1 AND status = 'ACTIVE'";

/// $1 id; $2..$4 the new cursor; $5 plans handed out; $6 total; $7 finished; $8..$10 the
/// expected cursor.
pub(super) const BACKFILL_ADVANCE: &str = "\
UPDATE cronlease_backfills SET
  cursor_plan_time = $2, cursor_scope_kind = $3, cursor_scope_id = $4,
  done = done + $5, total = $6,
  status = CASE WHEN $7 AND status = 'ACTIVE' THEN 'DONE' ELSE status END,
  updated_at = {NOW}
WHERE id = $1 AND status IN ('ACTIVE', 'CANCELLED')
  AND cursor_plan_time IS NOT DISTINCT FROM $8::timestamptz
  AND cursor_scope_kind IS NOT DISTINCT FROM $9::text
  AND cursor_scope_id IS NOT DISTINCT FROM $10::text";

/// $2..$4 the plans as parallel arrays (scope kind, scope id, plan time), $5 the creation time of
/// the backfill, $6 the extra attempts. Rows are locked in key order first, like every batched
/// write, so concurrent batches cannot deadlock.
pub(super) const EXECUTION_RERUN: &str = "\
WITH c AS MATERIALIZED (SELECT {NOW} AS now),
l AS MATERIALIZED (
  SELECT e.id AS locked_id FROM cronlease_executions AS e
  JOIN UNNEST($2::text[], $3::text[], $4::timestamptz[]) AS u(scope_kind, scope_id, plan_time)
    ON e.job_name = $1 AND e.scope_kind = u.scope_kind AND e.scope_id = u.scope_id
      AND e.plan_time = u.plan_time
  WHERE e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED') AND e.finished_at < $5
  ORDER BY e.job_name, e.scope_kind, e.scope_id, e.plan_time
  FOR UPDATE OF e)
UPDATE cronlease_executions AS e SET
  status = 'FAILED',
  next_retry_at = c.now,
  max_attempts = e.attempt + $6::integer,
  replay_pending = true,
  replayed_at = c.now,
  updated_at = c.now
FROM l CROSS JOIN c
WHERE e.id = l.locked_id AND e.status IN ('SUCCESS', 'DEAD', 'SUPERSEDED')
  AND e.finished_at < $5";
