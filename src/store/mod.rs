//! The [`Store`] trait: the only door to the database.
//!
//! - [`Store`]: one method per statement, named entity first (`execution_claim`,
//!   `execution_finish_success`); batched methods take slices so many plans cost one statement.
//! - [`SqliteStore`]: the embedded default (a file, WAL, busy timeout).
//! - [`PgStore`]: PostgreSQL, for several replicas (lease times from `clock_timestamp()`).
//! - [`MySqlStore`]: MySQL 8 or MariaDB 10.11+, for several replicas (lease times from
//!   `UTC_TIMESTAMP(3)` read after the rows are locked).
//! - Parameter and row types: [`ClaimRequest`], [`Claimed`], [`Lease`], [`Renewal`],
//!   [`SuccessWrite`], [`FailureWrite`], [`RetryCandidate`], [`Swept`], [`ExecutionFilter`],
//!   [`ExecutionCursor`], [`PruneSet`], [`MigrationStatus`].
//! - Control-plane rows: [`TickClock`] (what a tick starts with), [`ManualStart`] and
//!   [`ManualPlan`] (starting triggered runs).
//! - [`StoreDeadlines`]: how long a call may take, on the client and on the server.
//! - [`RunnerRegistration`]: what a runner writes about itself in the job and runner registry.
//! - Time-partitioned history (PostgreSQL): [`HistoryPartitions`], [`PartitionKeep`],
//!   [`PartitionDropped`], [`PartitionOptions`], [`HistoryConversion`].
//!
//! Every time a store writes comes from the database clock, never the runner's. Every write of a
//! lease owner is fenced by `(id, lease_token, status = RUNNING)`. Each method is one round of work
//! for the database whatever the batch size, except [`Store::migrate`], and
//! [`Store::runner_register`] and [`Store::runner_prune`] (a few statements, run at start, on job
//! changes and by the retention service, never per tick): one statement, or on SQLite a few on
//! one connection (see `SqliteStore`'s claim and success write). A test can count database work
//! by counting calls.
//!
//! Every write the runtime retries after a transient error is safe to send twice with the same
//! arguments: a claim re-offers the same ids and tokens and gets back the rows an earlier try
//! committed; a terminal write finds its own row already written and reports it written without
//! changing it. So a reply lost with a dropped connection neither orphans a lease nor turns a
//! recorded outcome into a false "lease lost".

/// The columns every statement that returns whole rows names, in every backend. Listed rather
/// than `*`: a statement prepared before a migration added a column would otherwise change shape
/// under a pooled connection (SQLite re-prepares it with more columns than sqlx described;
/// PostgreSQL refuses with "cached plan must not change result type").
macro_rules! execution_columns {
    () => {
        "id, job_name, scope_kind, scope_id, plan_time, status, attempt, max_attempts, \
         next_retry_at, runner_id, lease_token, claim_outcome, heartbeat_at, stale_after, \
         started_at, finished_at, created_at, updated_at, duration_ms, rows_affected, result, \
         error_code, error_msg, failures, replayed_at, trigger_id"
    };
}

mod classify;
pub(crate) mod deadline;
mod guard;
pub mod mysql;
mod partitions;
pub mod postgres;
mod registry;
mod rowmap;
pub mod sqlite;
pub(crate) mod url;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::control::{
    Backfill, ClaimGuard, JobDescription, Pause, RegisteredJob, Runner, SkipReason, SkipSpan,
    Trigger,
};

use crate::error::{Error, Result};
use crate::execution::{ClaimOutcome, Execution, Status};
use crate::scope::Scope;

pub use crate::control::{BackfillAdvance, RunnerRegistration};
pub use classify::classify;
pub(crate) use classify::host_not_found;
pub use deadline::{DEFAULT_CALL_DEADLINE, StoreDeadlines};
pub use guard::GuardedClaim;
pub(crate) use partitions::unsupported as partitions_unsupported;
pub use partitions::{
    DEFAULT_PARTITION_DAYS_AHEAD, DEFAULT_PARTITION_DAYS_BACK, HistoryConversion,
    HistoryPartitions, PartitionDropped, PartitionKeep, PartitionOptions,
};
pub use url::redact_url;

pub use mysql::MySqlStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The database seam. Implementations hold the SQL of one backend; the runtime decides.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, e.g. `sqlite` (for logs and metrics).
    fn backend(&self) -> &'static str;

    /// The deadlines of this store's calls; the scheduler bounds every call it makes (but the
    /// migration) by [`StoreDeadlines::call`]. Default: [`StoreDeadlines::default`].
    fn deadlines(&self) -> StoreDeadlines {
        StoreDeadlines::default()
    }

    /// Creates or upgrades the schema, tracked in `cronlease_migrations` (never `_sqlx_migrations`).
    /// Safe to run from several replicas at once.
    async fn migrate(&self) -> Result<()>;

    /// Which schema version the database has and which this library knows, without changing
    /// anything (`applied` 0: no schema yet). For tools that check before they migrate.
    async fn migration_status(&self) -> Result<MigrationStatus>;

    /// The database's current time.
    async fn db_now(&self) -> Result<DateTime<Utc>>;

    /// The newest plan time of every scope of `job`, in one query, handed to `each` row by row
    /// as the rows arrive: a runner's first tick of a job of a million scopes builds its
    /// newest-plan table without a list of a million scopes first. Returns the scopes handed.
    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> Result<usize>;

    /// The newest plan time of every scope of `job`, in one query, as a list
    /// ([`execution_latest_plans_each`](Self::execution_latest_plans_each) gathered).
    async fn execution_latest_plans(&self, job: &str) -> Result<Vec<(Scope, DateTime<Utc>)>> {
        let mut latest = Vec::new();
        self.execution_latest_plans_each(job, &mut |scope, plan_time| {
            latest.push((scope.clone(), plan_time));
        })
        .await?;
        Ok(latest)
    }

    /// Which of `plans` (scope, plan time) of `job` have a row, in the order given: one read of
    /// the plan key per plan, no lock. Used by replicas to learn that another runner claimed
    /// the plans of a scope it owns (`plan/sharing.rs`).
    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> Result<Vec<bool>>;

    /// FAILED rows of `job` with a retry scheduled and attempts left, whatever their plan time
    /// (a failed row is retried until SUCCESS or DEAD in every catch-up mode), soonest
    /// `next_retry_at` first, at most `limit`. Rows not due yet tell the runtime when to wake.
    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>>;

    /// Closes `job`'s FAILED rows whose scope has a newer plan that succeeded: they become
    /// SUPERSEDED (terminal, no retry, finished now), for jobs that opted in with
    /// [`JobSpecBuilder::supersede_failed`](crate::JobSpecBuilder::supersede_failed). Rows an
    /// operator replayed are left alone. Returns the ids closed.
    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>>;

    /// Claims many plans in one statement (SPEC §5.1): inserts the missing rows (Won), takes over
    /// stale or retry-due rows (Stole / Retried, or Replayed for a row an operator replayed),
    /// leaves the rest (Conflicted, not returned). A row RUNNING under a token of the request
    /// (an earlier try of the same request committed, its reply was lost) is returned again
    /// unchanged but for fresh lease stamps.
    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>>;

    /// Claims like [`execution_claim`](Self::execution_claim), under the job's overlap policy
    /// and concurrency limit, race-free across replicas: in one transaction that first takes
    /// the job's claim lock (so two replicas claiming at once are serialized per job), it reads
    /// the job's RUNNING rows and the offered plans' rows, decides (see [`ClaimGuard`]), closes
    /// the attempts `CancelOther` cancels (SUPERSEDED, `overlap_cancelled`), claims the plans
    /// that may start, and inserts SKIPPED rows (`overlap`) for the plans the policy skips.
    /// Plans left waiting or held back by the limit get no row. Every claimer of a job with a
    /// guard must use this method, or the guarantee is void.
    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim>;

    /// Renews leases; returns the ids still held (a missing id means LeaseLost).
    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>>;

    /// Records successes; returns the ids written (a missing id was fenced out: LeaseLost). A
    /// row already SUCCESS under the same token (an earlier try's reply was lost) counts as
    /// written and is left as it is.
    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>>;

    /// Records failures (FAILED with a retry time, or DEAD) and appends to the failure history;
    /// returns the ids written (a missing id was fenced out). A row already in the written
    /// status with the written code under the same token counts as written and is left as it is.
    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>>;

    /// Moves `job`'s RUNNING rows whose lease went stale to FAILED (`stale_timeout`, retry due at
    /// once) when re-entry is allowed and attempts remain, else to DEAD. With `not_after`, the
    /// statement changes nothing if the database clock has passed it when it runs: a sweep held
    /// up behind an outage must not act on leases whose owners could not renew them meanwhile.
    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>>;

    /// One execution by id.
    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>>;

    /// Executions matching `filter`, newest plan first (`plan_time`, then `id`, descending), after
    /// `filter.after` when given. Rows that cannot be decoded (an unknown status written by a
    /// newer version) are skipped with a warning.
    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>>;

    /// The newest execution (by plan time) of each scope of `job`, one row per scope, ordered by
    /// scope (`kind`, then `id`), the scopes after `after` when given, at most `limit`: a page
    /// of a job's scopes with their last run, in one statement whatever the number of rows.
    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Vec<Execution>>;

    /// Row counts by status, for one job or all.
    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>>;

    /// Replays dead-lettered rows: each of `ids` that is DEAD at the moment of the update becomes
    /// FAILED, due for retry now (database clock), with `max_attempts = attempt + extra_attempts`,
    /// `replayed_at` stamped and a replay marker that makes the next claim report
    /// [`ClaimOutcome::Replayed`] and makes it a retry candidate whatever its plan time. Id,
    /// plan and failure history are kept. Returns the replayed rows; ids that are unknown or not
    /// DEAD (for instance replayed a moment ago by another replica) are left alone and missing.
    async fn execution_replay(&self, ids: &[Uuid], extra_attempts: u32) -> Result<Vec<Execution>>;

    /// Deletes at most `limit` rows of `set` whose `finished_at` is older than `older_than`
    /// (database clock), oldest first, using the `finished_at` index; returns how many. Only
    /// rows finished for good are deleted (never RUNNING or FAILED), rows awaiting a replay are
    /// kept, and so is the newest row of every `(job, scope)`: planning
    /// reads it to know which plans were handled. Only rows of the jobs `jobs` selects are
    /// deleted (a job with its own retention is pruned alone, the rest with the default). Call
    /// again until it returns less than `limit`.
    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64>;

    /// [`execution_prune`](Self::execution_prune) limited to the DEFAULT partition of a
    /// time-partitioned history (the newest-row test still reads the whole history): on a
    /// partitioned history, the retention service leaves the day partitions to be dropped whole
    /// instead of deleting their rows one by one. Refused on a plain history, SQLite and MySQL.
    async fn execution_prune_default_partition(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64>;

    /// How many rows [`Store::execution_prune`] would delete now with the same `set`, `jobs`
    /// and `older_than` if it had no batch limit (the same conditions, database clock), in one
    /// statement: what a dry run reports.
    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
    ) -> Result<u64>;

    /// How many RUNNING rows per job have a stale lease (`stale_after` passed, database clock):
    /// rows the stale sweep has not moved yet. Jobs without stale rows are not listed.
    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>>;

    /// How many FAILED or DEAD rows per job have a plan time at or after `since`, in one
    /// statement: the failures a dashboard shows per job (the last 24 hours, say) without
    /// loading the rows. Jobs without such rows are not listed.
    async fn execution_count_failing(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>>;

    /// The database clock, the pauses of `job` and whether it has pending control requests
    /// (triggers, active backfills), in one statement, which a tick starts with: a tick with no
    /// request pays no statement for them.
    async fn tick_clock(&self, job: &str) -> Result<TickClock>;

    /// Pauses a job (`pause.scope` `None`) or one of its scopes: inserts the pause, or replaces
    /// who, why and when of an existing one. Returns it as stored (`paused_at` from the
    /// database clock).
    async fn pause_set(&self, pause: &Pause) -> Result<Pause>;

    /// Lifts the pause of `job` (`scope` `None`: the whole-job pause; a scope's own pause is
    /// lifted separately). Returns whether there was one.
    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool>;

    /// The pauses of `job`, or of every job; by job, whole-job pause first, then by scope.
    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>>;

    /// Stores a request to run a job now (`requested_at` from the database clock). When the
    /// job already has a trigger with the same idempotency key, nothing is stored and that one
    /// is returned (its id differs from `trigger.id`). Any job name is accepted (tools).
    async fn trigger_create(&self, trigger: &Trigger) -> Result<Trigger>;

    /// Triggers of `job` (or of every job), oldest first; with `pending_only`, those no tick has
    /// started yet.
    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>>;

    /// Starts manual executions in one transaction: inserts the first `start.limit` plans that
    /// have no row yet (plans with a row were started by another replica or an earlier tick) as
    /// RUNNING rows (attempt 1) carrying their trigger's id, and, when fewer than `limit` were
    /// missing (nothing is left to start), marks the `start.started` triggers started. Returns
    /// the leases it holds: the rows inserted, and rows an earlier try of the same request
    /// inserted (same ids and tokens), so a lost reply orphans nothing.
    async fn trigger_start(&self, start: &ManualStart<'_>) -> Result<Vec<Claimed>>;

    /// Stores a backfill (`created_at` from the database clock). The range is not checked here
    /// ([`Scheduler::backfill`](crate::Scheduler::backfill) checks it against the job).
    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill>;

    /// One backfill by id.
    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>>;

    /// Backfills of `job` (or of every job), oldest first; with `active_only`, the active ones.
    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>>;

    /// Cancels an active backfill: no tick hands out its plans any more (attempts started
    /// finish). Returns whether it was active.
    async fn backfill_cancel(&self, id: Uuid) -> Result<bool>;

    /// Moves a backfill's cursor, only if it is still `advance.expected`: adds the plans handed
    /// out to `done`, sets `total`, and marks it DONE when finished. A step that began before a
    /// cancel still records what it handed out (the backfill stays CANCELLED), so `done` counts
    /// every plan a backfill ran. Returns whether it moved (another replica's step may have moved
    /// it first; a DONE backfill never moves).
    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool>;

    /// Makes finished rows of `job`'s `plans` due again, for a backfill asked to rerun them:
    /// SUCCESS, DEAD and SUPERSEDED rows that finished before `finished_before` become FAILED,
    /// due now, replay-marked (the next claim reports Replayed), with `extra_attempts` more
    /// attempts. Rows finished later (a rerun already ran them) are left alone. Returns how many.
    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64>;

    /// Records skipped-plan spans in the ledger (`recorded_at` from the database clock), in one
    /// statement. A span recorded already (same job, scope, reason and start: another replica
    /// decided the same) is widened to the later end, never doubled. [`Store::pause_clear`]
    /// records the paused interval itself.
    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()>;

    /// The ledger rows of `job` that may account for the plan at `plan_time` of `scope`, due at
    /// `due_at`: the scope's own rows and the shared ones (`scope` `None`) that start by
    /// `due_at` and end at or after `plan_time`. [`SkipSpan::covers`] decides.
    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<Vec<SkipSpan>>;

    /// The ledger rows of `job`, or of every job, most recently recorded first, at most `limit`.
    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>>;

    /// Deletes at most `limit` ledger rows recorded longer ago than `older_than` (database
    /// clock), oldest first; returns how many. Call again until it returns less than `limit`.
    async fn skip_prune(&self, older_than: Duration, limit: usize) -> Result<u64>;

    /// Registers a runner and the whole set of jobs it runs, in one transaction: upserts its
    /// row (`last_seen` now, database clock; `started_at` now and any stop forgotten when
    /// `runner.starting`), then replaces its rows of the job registry by `jobs`. Writes only
    /// this runner's rows: another runner's view of a job is never touched.
    async fn runner_register(
        &self,
        runner: &RunnerRegistration,
        jobs: &[JobDescription],
    ) -> Result<()>;

    /// Refreshes the runner's `last_seen` to now (database clock), in one statement. Returns
    /// `false` when the runner has no row (pruned while it could not reach the database): it
    /// should register again.
    async fn runner_seen(&self, runner_id: &str) -> Result<bool>;

    /// Marks the runner stopped (a clean shutdown): `stopped_at` and `last_seen` now. Returns
    /// whether the runner had a row.
    async fn runner_stop(&self, runner_id: &str) -> Result<bool>;

    /// Every registered runner, by id, with its state at the database's current time
    /// ([`RunnerState::at`](crate::RunnerState::at)).
    async fn runner_list(&self) -> Result<Vec<Runner>>;

    /// Deletes runners (live, gone or stopped) whose `last_seen` is older than `older_than`
    /// (database clock), and their rows of the job registry. Returns how many runners.
    async fn runner_prune(&self, older_than: Duration) -> Result<u64>;

    /// The registered jobs (one, or all), by name: each with the specs its live runners
    /// registered and whether they conflict.
    async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>>;

    /// The day partitions of a time-partitioned history (PostgreSQL, after
    /// [`PgStore::partition_history`]) and the database clock; `None` while the history is one
    /// plain table, always on SQLite and MySQL. Read from the catalog on every call, so every
    /// runner follows a conversion without a setting.
    async fn history_partitions(&self) -> Result<Option<HistoryPartitions>>;

    /// Creates the partitions of `days` (UTC days) that are missing, moving any rows the DEFAULT
    /// partition holds for them into them; returns how many it created. Safe to run from
    /// several replicas at once. Refused on a plain history and on SQLite and MySQL.
    async fn history_partitions_create(&self, days: &[NaiveDate]) -> Result<u64>;

    /// Drops `day`'s partition whole, in one transaction: the rows
    /// [`execution_prune`](Self::execution_prune) would not delete now under `keep` (not
    /// finished, awaiting a replay, the newest scheduled row of their `(job, scope)`, or younger
    /// than their retention) are moved into the DEFAULT partition first. `None` when the day
    /// has no partition (another replica dropped it). Refused on SQLite and MySQL.
    async fn history_partition_drop(
        &self,
        day: NaiveDate,
        keep: &PartitionKeep,
    ) -> Result<Option<PartitionDropped>>;
}

/// What a tick starts with, read in one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickClock {
    /// The database clock.
    pub now: DateTime<Utc>,
    /// The job's pauses: each paused scope, `None` for a pause of the whole job.
    pub paused: Vec<Option<Scope>>,
    /// Whether the job has triggers no tick has started.
    pub triggers_pending: bool,
    /// Whether the job has an active backfill.
    pub backfills_active: bool,
}

/// Manual executions to start ([`Store::trigger_start`]).
#[derive(Debug, Clone)]
pub struct ManualStart<'a> {
    /// The job's name.
    pub job: &'a str,
    /// Copied into inserted rows.
    pub max_attempts: u32,
    /// The starting runner.
    pub runner_id: &'a str,
    /// `stale_after = now + stale_timeout`.
    pub stale_timeout: Duration,
    /// Most rows inserted (the free execution slots).
    pub limit: usize,
    /// The plans, each with its trigger, in the order they are started.
    pub plans: Vec<ManualPlan>,
    /// The triggers whose every plan is in `plans`: marked started once none is missing.
    pub started: Vec<Uuid>,
}

/// One manual execution in a [`ManualStart`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualPlan {
    /// The trigger that asked for it.
    pub trigger: Uuid,
    /// Its plan (the manual plan time) with the id and token to use.
    pub plan: PlanClaim,
}

/// How the scopes of a backfill are stored: a JSON array of `[kind, id]`, or NULL for every scope.
pub(crate) fn scopes_json(scopes: Option<&Vec<Scope>>) -> Option<String> {
    scopes.map(|scopes| {
        let pairs: Vec<(&str, &str)> = scopes
            .iter()
            .map(|s| (s.kind.as_str(), s.id.as_str()))
            .collect();
        serde_json::to_string(&pairs).expect("strings serialise")
    })
}

/// The scopes of a stored backfill.
pub(crate) fn scopes_from_json(text: Option<String>) -> Result<Option<Vec<Scope>>> {
    text.map(|text| {
        let pairs: Vec<(String, String)> = serde_json::from_str(&text)
            .map_err(|e| rowmap_corrupt("backfill scopes", e.to_string()))?;
        Ok(pairs
            .into_iter()
            .map(|(kind, id)| Scope::new(kind, id))
            .collect())
    })
    .transpose()
}

/// A trigger read back from its row (`scope` empty: every scope).
#[allow(clippy::too_many_arguments)]
pub(crate) fn stored_trigger(
    id: Uuid,
    job: String,
    scope_kind: String,
    scope_id: String,
    idempotency_key: Option<String>,
    requested_by: String,
    requested_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
) -> Trigger {
    let mut trigger = Trigger::new(
        job,
        pause_scope(scope_kind, scope_id),
        crate::control::TriggerOptions {
            idempotency_key,
            requested_by,
        },
    );
    trigger.id = id;
    trigger.requested_at = requested_at;
    trigger.started_at = started_at;
    trigger
}

/// The leases a [`Store::trigger_start`] holds: each offered plan whose row is RUNNING under its
/// token, with the row's start time (`held`).
pub(crate) fn manual_claims(
    start: &ManualStart<'_>,
    held: impl Fn(Uuid) -> Option<DateTime<Utc>>,
) -> Vec<Claimed> {
    start
        .plans
        .iter()
        .filter_map(|m| {
            held(m.plan.id).map(|started_at| Claimed {
                lease: Lease {
                    id: m.plan.id,
                    token: m.plan.token,
                },
                scope: m.plan.scope.clone(),
                plan_time: m.plan.plan_time,
                attempt: 1,
                max_attempts: start.max_attempts,
                outcome: ClaimOutcome::Won,
                started_at,
            })
        })
        .collect()
}

fn rowmap_corrupt(what: &str, message: String) -> Error {
    rowmap::corrupt(what, message)
}

/// A ledger row from its stored columns (the same on every backend once times are decoded).
#[allow(clippy::too_many_arguments)]
pub(crate) fn skip_span(
    job: String,
    scope_kind: String,
    scope_id: String,
    reason: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    plans: Option<i64>,
    scopes: i64,
    detail: String,
    recorded_at: DateTime<Utc>,
) -> Result<SkipSpan> {
    let reason = reason
        .parse::<SkipReason>()
        .map_err(|message| rowmap::corrupt("?", message))?;
    Ok(SkipSpan {
        job,
        scope: pause_scope(scope_kind, scope_id),
        reason,
        from,
        to,
        plans: plans.map(|n| n.max(0) as u64),
        scopes: scopes.max(0) as u64,
        detail,
        recorded_at,
    })
}

/// Where a page of scopes starts: after `after`, or after `('', '')` for the first page, which
/// precedes every scope that can be stored ([`Scope::validate`] refuses empty parts).
pub(crate) fn page_start(after: Option<&Scope>) -> (&str, &str) {
    after.map_or(("", ""), |s| (s.kind.as_str(), s.id.as_str()))
}

/// How a pause of a whole job is stored: an empty scope, which no real scope can be
/// ([`Scope::validate`] refuses empty parts).
pub(crate) fn pause_key(scope: Option<&Scope>) -> (&str, &str) {
    scope.map_or(("", ""), |s| (s.kind.as_str(), s.id.as_str()))
}

/// The scope of a stored pause: `None` for the empty scope of a whole-job pause.
pub(crate) fn pause_scope(kind: String, id: String) -> Option<Scope> {
    (!kind.is_empty() || !id.is_empty()).then(|| Scope::new(kind, id))
}

/// The schema versions of [`Store::migration_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The newest migration applied to the database (0: none).
    pub applied: i64,
    /// The newest migration this library has.
    pub known: i64,
}

impl MigrationStatus {
    /// Whether [`Store::migrate`] has nothing to do.
    pub fn is_current(&self) -> bool {
        self.applied == self.known
    }
}

/// Which terminal rows [`Store::execution_prune`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneSet {
    /// SUCCESS, SUPERSEDED and SKIPPED rows: finished for good. FAILED rows are never pruned, since
    /// each has a retry ahead of it.
    Finished,
    /// DEAD rows (the dead-letter set), kept for their own retention.
    Dead,
}

impl PruneSet {
    /// The metric label: `finished` or `dead`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PruneSet::Finished => "finished",
            PruneSet::Dead => "dead",
        }
    }
}

/// Which jobs' rows one [`Store::execution_prune`] call deletes: the retention service prunes
/// each job that keeps its rows for its own time alone, then every other job with the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneJobs<'a> {
    /// Every job.
    All,
    /// This job only.
    Only(&'a str),
    /// Every job but these (the jobs pruned with their own retention, or kept forever).
    Except(&'a [String]),
}

impl PruneJobs<'_> {
    /// The one job selected, if any: bound as a nullable parameter.
    pub(crate) fn only(&self) -> Option<&str> {
        match self {
            PruneJobs::Only(job) => Some(job),
            _ => None,
        }
    }

    /// The jobs left out, as the JSON array SQLite and MySQL read (`[]` when none).
    pub(crate) fn except_json(&self) -> String {
        serde_json::to_string(self.except()).unwrap_or_else(|_| "[]".into())
    }

    /// The jobs left out (none unless `Except`).
    pub(crate) fn except(&self) -> &[String] {
        match self {
            PruneJobs::Except(jobs) => jobs,
            _ => &[],
        }
    }
}

/// A lease: the right to write an execution row, fenced by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The execution id.
    pub id: Uuid,
    /// The token issued by the claim.
    pub token: Uuid,
}

/// A batch of plans of one job to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The job's name.
    pub job: &'a str,
    /// Copied into inserted rows.
    pub max_attempts: u32,
    /// The claiming runner.
    pub runner_id: &'a str,
    /// `stale_after = now + stale_timeout`.
    pub stale_timeout: Duration,
    /// Whether stale RUNNING rows may be taken over.
    pub allow_stale_reentry: bool,
    /// With a time, a stale RUNNING row is taken over only if the claim runs at or before it
    /// (database clock): a claim held up behind an outage must not steal leases whose owners
    /// could not renew them meanwhile. `None`: no bound.
    pub steal_not_after: Option<DateTime<Utc>>,
    /// The plans, each with the fresh execution id and lease token to use if it is claimed.
    pub plans: Vec<PlanClaim>,
}

/// One plan in a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanClaim {
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// Id for a newly inserted row (UUID v7).
    pub id: Uuid,
    /// Token of the new lease (UUID v4).
    pub token: Uuid,
}

impl PlanClaim {
    /// A plan with a fresh v7 id and v4 token.
    pub fn new(scope: Scope, plan_time: DateTime<Utc>) -> Self {
        PlanClaim {
            scope,
            plan_time,
            id: Uuid::now_v7(),
            token: Uuid::new_v4(),
        }
    }
}

/// A plan this runner now holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The lease (execution id and new token).
    pub lease: Lease,
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// This attempt's number.
    pub attempt: u32,
    /// The row's attempt budget.
    pub max_attempts: u32,
    /// Won, Stole or Retried.
    pub outcome: ClaimOutcome,
    /// Lease start (database clock).
    pub started_at: DateTime<Utc>,
}

/// A lease to renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// The lease.
    pub lease: Lease,
    /// `stale_after = now + stale_timeout`.
    pub stale_timeout: Duration,
}

/// A success to record.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessWrite {
    /// The lease.
    pub lease: Lease,
    /// Handler run time.
    pub duration_ms: i64,
    /// The handler's row count.
    pub rows_affected: i64,
    /// The JSON result text, already capped at 16 KiB.
    pub result: String,
}

/// A failure to record.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureWrite {
    /// The lease.
    pub lease: Lease,
    /// `Failed` (a retry follows) or `Dead`.
    pub status: Status,
    /// The error code, e.g. `handler_error`.
    pub code: String,
    /// The message, already cut to 4000 bytes.
    pub message: String,
    /// `next_retry_at = now + retry_in` for FAILED rows.
    pub retry_in: Option<Duration>,
    /// Raise `max_attempts` to at least `attempt + 1` so the attempt does not count (shutdown).
    pub extend_budget: bool,
    /// Handler run time.
    pub duration_ms: i64,
}

/// A retry-eligible FAILED row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryCandidate {
    /// The scope.
    pub scope: Scope,
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// When it may be claimed.
    pub next_retry_at: DateTime<Utc>,
    /// Whether `next_retry_at` has passed (database clock).
    pub due: bool,
    /// Whether an operator replayed the row: it is offered whatever the job's catch-up mode.
    pub replayed: bool,
}

/// A row the stale sweep moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    /// The execution id.
    pub id: Uuid,
    /// FAILED (retry due) or DEAD.
    pub status: Status,
}

/// Which executions to list, newest plan first. Default: all, 100 at most.
///
/// Pages follow a keyset cursor, so rows with equal plan times are never skipped or repeated:
///
/// ```no_run
/// # async fn demo(scheduler: cronlease::Scheduler) -> cronlease::Result<()> {
/// use cronlease::ExecutionFilter;
///
/// let mut filter = ExecutionFilter { job: Some("nightly-report".into()), ..Default::default() };
/// loop {
///     let page = scheduler.executions(&filter).await?;
///     // ... show the page ...
///     match filter.next_page(&page) {
///         Some(next) => filter = next,
///         None => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFilter {
    /// Only this job. Default: any.
    pub job: Option<String>,
    /// Only this scope. Default: any.
    pub scope: Option<Scope>,
    /// Only this status. Default: any.
    pub status: Option<Status>,
    /// Only plans at or after this time. Default: no lower bound.
    pub plan_from: Option<DateTime<Utc>>,
    /// Only plans before this time. Default: no upper bound.
    pub plan_before: Option<DateTime<Utc>>,
    /// Only rows after this position in the newest-first order (the last row of the previous
    /// page). Default: from the newest.
    pub after: Option<ExecutionCursor>,
    /// Most rows returned. Default: 100.
    pub limit: usize,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        ExecutionFilter {
            job: None,
            scope: None,
            status: None,
            plan_from: None,
            plan_before: None,
            after: None,
            limit: 100,
        }
    }
}

impl ExecutionFilter {
    /// The filter for the page after `page` (a result of this filter), or `None` when `page` was
    /// the last one (shorter than `limit`).
    pub fn next_page(&self, page: &[Execution]) -> Option<ExecutionFilter> {
        if page.len() < self.limit {
            return None;
        }
        let last = page.last()?;
        Some(ExecutionFilter {
            after: Some(ExecutionCursor::of(last)),
            ..self.clone()
        })
    }
}

/// A position in a newest-first listing: the `(plan_time, id)` of a row. A page continues
/// strictly after it. Its text form, `<plan time in Unix ms>_<id>`, travels well in a URL.
///
/// ```
/// use cronlease::store::ExecutionCursor;
///
/// let cursor: ExecutionCursor = "1700000000000_0190c7a4-0000-7000-8000-000000000000".parse().unwrap();
/// assert_eq!(cursor.to_string().parse::<ExecutionCursor>().unwrap(), cursor);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecutionCursor {
    /// The row's plan time.
    pub plan_time: DateTime<Utc>,
    /// The row's id, which orders rows with equal plan times.
    pub id: Uuid,
}

impl ExecutionCursor {
    /// The position of `execution`.
    pub fn of(execution: &Execution) -> Self {
        ExecutionCursor {
            plan_time: execution.plan_time,
            id: execution.id,
        }
    }
}

impl std::fmt::Display for ExecutionCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.plan_time.timestamp_millis(), self.id)
    }
}

impl std::str::FromStr for ExecutionCursor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("bad cursor `{s}`: expected `<unix ms>_<uuid>`");
        let (ms, id) = s.split_once('_').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        Ok(ExecutionCursor {
            plan_time: DateTime::from_timestamp_millis(ms).ok_or_else(bad)?,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

/// Wraps a driver error with its operation and classification.
pub(crate) fn db_error(operation: &'static str, source: sqlx::Error) -> Error {
    if classify::is_deadlock(&source) {
        crate::telemetry::db_deadlock(operation);
    }
    Error::Database {
        operation,
        kind: classify(&source),
        source,
    }
}

/// Keeps the rows that decode, logging the others (a newer version's status, a hand-edited row).
/// One bad row never fails a whole listing, planning read, claim or sweep: a claimed row that
/// cannot be decoded is not started, stays RUNNING and is swept once its lease goes stale.
pub(crate) fn skip_corrupt<T>(rows: impl Iterator<Item = Result<T>>) -> Vec<T> {
    rows.filter_map(|row| match row {
        Ok(execution) => Some(execution),
        Err(error) => {
            tracing::warn!(%error, "skipping an execution row that cannot be decoded");
            None
        }
    })
    .collect()
}

/// Parses `(status text, count)` pairs, skipping unknown statuses with a warning.
pub(crate) fn counts(rows: impl Iterator<Item = (String, i64)>) -> Result<Vec<(Status, i64)>> {
    Ok(rows
        .filter_map(|(status, n)| match status.parse::<Status>() {
            Ok(status) => Some((status, n)),
            Err(message) => {
                tracing::warn!(%message, "skipping executions with an unknown status");
                None
            }
        })
        .collect())
}
