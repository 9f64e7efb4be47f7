//! The public handle: build a scheduler, register jobs, start, inspect, shut down.
//!
//! - [`SchedulerBuilder`]: every runtime setting with its default.
//! - [`Scheduler`]: the running scheduler; cheap to clone.
//! - [`TickReport`]: what one tick did (for tests, demos and operators).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actors::Runtime;
use crate::actors::completer::Completer;
use crate::actors::handler_runtime::HandlerRuntime;
use crate::actors::job_changes::{AddJob, RemoveJob};
use crate::actors::presence::{
    DEFAULT_REFRESH_INTERVAL, JobsChanged, Presence, Register, StopPresence,
};
use crate::actors::retention::{PruneNow, PruneReport, Pruner, Retention, StopPruner};
use crate::actors::retry_policy::RetryPolicy;
use crate::actors::supervisor::{RunningCount, Shutdown, Supervisor, TickNow, Wake};
pub use crate::actors::tick::TickReport;
use crate::actors::watched_store::WatchedStore;
use crate::config::{Config, JobOverrides};
use crate::control::{
    Backfill, BackfillOptions, JobDescription, Pause, RegisteredJob, Runner, RunnerRegistration,
    SkipSpan, Trigger, TriggerOptions, TriggerTarget, Why,
};
use crate::error::{Error, Result};
use crate::execution::{Execution, Status};
use crate::inspect::{PlanTiming, why_plan};
use crate::retry::DbRetry;
use crate::scope::Scope;
use crate::spec::JobSpec;
use crate::store::deadline::Deadlined;
use crate::store::{ExecutionFilter, Store};
use crate::takeover::TakeoverGuard;
use crate::telemetry;

/// Default tick interval: the longest a Supervisor sleeps between ticks.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(30);
/// Default bound on executions running at once on one runner.
pub const DEFAULT_MAX_CONCURRENT_EXECUTIONS: usize = 64;
/// Default shutdown grace.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default number of handler runtime threads.
pub const DEFAULT_HANDLER_THREADS: usize = 2;
/// Default number of attempts a replay grants a dead execution.
pub const DEFAULT_REPLAY_ATTEMPTS: u32 = 1;

/// Builds and starts a [`Scheduler`].
///
/// ```no_run
/// use cronlease::prelude::*;
///
/// # async fn demo() -> cronlease::Result<()> {
/// let store = SqliteStore::open("cronlease.db").await?;
/// let scheduler = Scheduler::builder(store)
///     .job(
///         JobSpec::builder("nightly-report")
///             .every("1d")
///             .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
///             .build()?,
///     )
///     .start()
///     .await?;
/// // ... serve requests ...
/// scheduler.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use]
pub struct SchedulerBuilder {
    store: Arc<dyn Store>,
    runner_id: Option<String>,
    tick_interval: Duration,
    max_concurrent: usize,
    shutdown_grace: Duration,
    handler_threads: usize,
    db_retry: DbRetry,
    wait_for_database: Duration,
    auto_tick: bool,
    retention: Retention,
    replay_attempts: u32,
    presence_interval: Option<Duration>,
    jobs: Vec<JobSpec>,
    job_overrides: std::collections::BTreeMap<String, JobOverrides>,
}

impl SchedulerBuilder {
    /// This runner's id, stored in the rows it claims and its row of the job and runner
    /// registry: not empty, at most 512 bytes. Keep it stable across restarts of one replica
    /// (a pod name) to see one registry row per replica. Default: a fresh UUID v4.
    pub fn runner_id(mut self, id: impl Into<String>) -> Self {
        self.runner_id = Some(id.into());
        self
    }

    /// The longest sleep between ticks; the Supervisor also wakes at the next plan boundary or
    /// retry time. Default: 30 s.
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = interval;
        self
    }

    /// How many executions may run at once on this runner; more due plans wait for a slot.
    /// Default: 64.
    pub fn max_concurrent_executions(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// How long [`Scheduler::shutdown`] waits for running handlers after cancelling them before
    /// recording them `canceled`. Default: 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Worker threads of the runtime handlers run on. Default: 2.
    pub fn handler_threads(mut self, threads: usize) -> Self {
        self.handler_threads = threads;
        self
    }

    /// Backoff for the runtime's own database calls after transient errors.
    /// Default: [`DbRetry::default`] (5 s doubling to 60 s).
    pub fn db_retry(mut self, retry: DbRetry) -> Self {
        self.db_retry = retry;
        self
    }

    /// How long [`start`](Self::start) keeps trying when the database cannot be reached (a
    /// transient error while bringing the schema up to date), backing off by
    /// [`db_retry`](Self::db_retry) between tries. Zero fails fast: `start` returns
    /// [`Error::DatabaseUnavailable`] at the first transient error. Permanent errors (a bad
    /// password, a host name that does not resolve, a schema newer than this library) are
    /// returned at once either way.
    /// Default: zero (fail fast).
    ///
    /// With PostgreSQL, build the store with [`PgStore::connect_lazy`](crate::PgStore::connect_lazy)
    /// so that creating it does not already need the server.
    pub fn wait_for_database(mut self, limit: Duration) -> Self {
        self.wait_for_database = limit;
        self
    }

    /// Whether the scheduler ticks by itself (at start, then on its timer). `false` ticks only
    /// on [`Scheduler::tick_now`] and prunes only on [`Scheduler::prune_now`], which lets tests
    /// drive every step. Default: `true`.
    pub fn auto_tick(mut self, auto: bool) -> Self {
        self.auto_tick = auto;
        self
    }

    /// How long finished and dead executions are kept, and how often the retention service
    /// prunes them; [`Retention::disabled`] keeps everything. Default: [`Retention::default`]
    /// (SUCCESS and SUPERSEDED rows 30 days, DEAD rows 7 days after their last failure, a run every
    /// 5 min in batches of 1000).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How many more attempts [`Scheduler::replay`] grants a dead execution (its `max_attempts`
    /// becomes `attempt + n`); if they all fail it is dead again, its history kept. Default: 1.
    pub fn replay_attempts(mut self, n: u32) -> Self {
        self.replay_attempts = n;
        self
    }

    /// How often this runner refreshes its `last_seen` in the job and runner registry (one
    /// statement per interval); it is shown as gone after
    /// [`GONE_AFTER_INTERVALS`](crate::GONE_AFTER_INTERVALS) intervals without one. Refreshes
    /// run only while the scheduler ticks by itself ([`auto_tick`](Self::auto_tick)).
    /// Default: the shortest `heartbeat_interval` of the jobs given to the builder (10 s
    /// without jobs).
    pub fn presence_interval(mut self, interval: Duration) -> Self {
        self.presence_interval = Some(interval);
        self
    }

    /// Applies settings read from a file and the environment ([`Config::load`]) on top of the
    /// code's: every scheduler and retention value the file sets replaces the one given so far,
    /// and each `[jobs.<name>]` section overrides that job's spec when the scheduler starts
    /// (whether the job was given before or after this call), checked as
    /// [`JobSpecBuilder::build`](crate::JobSpecBuilder::build) checks it: an invalid override
    /// makes [`start`](Self::start) fail naming the job and the field. A section for a job the
    /// builder was not given is logged and ignored. The file's `database_url` is not used here:
    /// the store is built by the caller (from it, if they like).
    ///
    /// ```no_run
    /// # async fn demo(store: cronlease::SqliteStore) -> cronlease::Result<()> {
    /// use cronlease::{Config, Scheduler};
    ///
    /// let config = Config::load(Some("cronlease.toml".as_ref()))?;
    /// let scheduler = Scheduler::builder(store).config(&config) /* .job(..) */ .start().await?;
    /// # Ok(()) }
    /// ```
    pub fn config(mut self, config: &Config) -> Self {
        let s = &config.scheduler;
        if let Some(id) = &s.runner_id {
            self.runner_id = Some(id.clone());
        }
        self.tick_interval = s.tick_interval.unwrap_or(self.tick_interval);
        self.max_concurrent = s.max_concurrent_executions.unwrap_or(self.max_concurrent);
        self.shutdown_grace = s.shutdown_grace.unwrap_or(self.shutdown_grace);
        self.handler_threads = s.handler_threads.unwrap_or(self.handler_threads);
        self.wait_for_database = s.wait_for_database.unwrap_or(self.wait_for_database);
        self.auto_tick = s.auto_tick.unwrap_or(self.auto_tick);
        self.replay_attempts = s.replay_attempts.unwrap_or(self.replay_attempts);
        self.presence_interval = s.presence_interval.or(self.presence_interval);
        self.db_retry = config.db_retry(self.db_retry);
        self.retention = config.retention(self.retention);
        for (name, overrides) in &config.jobs {
            self.job_overrides.insert(name.clone(), overrides.clone());
        }
        self
    }

    /// Registers a job. Names must be unique.
    pub fn job(mut self, spec: JobSpec) -> Self {
        self.jobs.push(spec);
        self
    }

    /// Checks the settings, brings the schema up to date, starts the actors on the current
    /// actix arbiter (call it inside an actix `System`, e.g. from `#[actix_web::main]`) and
    /// registers the runner and its jobs in the job and runner registry (a failed registration
    /// is logged and retried at the next refresh, never fatal). It also registers the metric
    /// descriptions with the installed `metrics` recorder ([`telemetry::describe`]).
    pub async fn start(mut self) -> Result<Scheduler> {
        for (name, overrides) in std::mem::take(&mut self.job_overrides) {
            match self.jobs.iter_mut().find(|spec| *spec.name == *name) {
                Some(spec) => *spec = overrides.apply(spec)?,
                None => {
                    tracing::warn!(job = %name, "the settings override a job this scheduler does not run; ignored")
                }
            }
        }
        if self.tick_interval.is_zero() {
            return Err(Error::InvalidConfig(
                "tick_interval must be longer than zero".into(),
            ));
        }
        if self.max_concurrent == 0 {
            return Err(Error::InvalidConfig(
                "max_concurrent_executions must be at least 1".into(),
            ));
        }
        if self.handler_threads == 0 {
            return Err(Error::InvalidConfig(
                "handler_threads must be at least 1".into(),
            ));
        }
        if self.db_retry.initial.is_zero() || self.db_retry.max < self.db_retry.initial {
            return Err(Error::InvalidConfig(
                "db_retry needs initial > 0 and max >= initial".into(),
            ));
        }
        self.retention.validate().map_err(Error::InvalidConfig)?;
        if let Some(id) = &self.runner_id
            && (id.is_empty() || id.len() > JobSpec::MAX_NAME_LEN)
        {
            return Err(Error::InvalidConfig(format!(
                "runner_id must be 1 to {} bytes long (it is {})",
                JobSpec::MAX_NAME_LEN,
                id.len()
            )));
        }
        if self.presence_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidConfig(
                "presence_interval must be longer than zero".into(),
            ));
        }
        if self.replay_attempts == 0 {
            return Err(Error::InvalidConfig(
                "replay_attempts must be at least 1".into(),
            ));
        }
        let mut names = HashSet::new();
        for spec in &self.jobs {
            if !names.insert(spec.name.clone()) {
                return Err(Error::DuplicateJob(spec.name.to_string()));
            }
        }
        if self.jobs.is_empty() {
            tracing::warn!("starting a scheduler without jobs");
        }
        if !cfg!(panic = "unwind") {
            tracing::warn!(
                "built with panic = \"abort\": a panicking handler will abort the process instead of being recorded"
            );
        }
        self.store.deadlines().validate()?;
        // After the host installed its recorder (it did, if it has one, before starting us).
        telemetry::describe();
        migrate_at_start(&*self.store, self.db_retry, self.wait_for_database).await?;
        // Every call from here on is bounded by the store's deadline.
        let bounded: Arc<dyn Store> = Arc::new(Deadlined::new(self.store.clone()));
        let runner_id: Arc<str> = self
            .runner_id
            .unwrap_or_else(|| Uuid::new_v4().to_string())
            .into();
        let jobs: Vec<Arc<JobSpec>> = self.jobs.into_iter().map(Arc::new).collect();
        let descriptions: Vec<JobDescription> =
            jobs.iter().map(|spec| JobDescription::of(spec)).collect();
        let presence_interval = self.presence_interval.unwrap_or_else(|| {
            jobs.iter()
                .map(|spec| spec.heartbeat_interval)
                .min()
                .unwrap_or(DEFAULT_REFRESH_INTERVAL)
        });
        let job_specs: Arc<Mutex<HashMap<String, Arc<JobSpec>>>> = Arc::new(Mutex::new(
            jobs.iter()
                .map(|spec| (spec.name.to_string(), spec.clone()))
                .collect(),
        ));
        let backoffs: HashMap<_, _> = jobs
            .iter()
            .map(|spec| (spec.name.clone(), spec.backoff.clone()))
            .collect();
        let handlers = HandlerRuntime::new(self.handler_threads)
            .map_err(|e| Error::InvalidConfig(format!("cannot start the handler runtime: {e}")))?;
        // Every store call of the runtime feeds the takeover guard (deadline expiries included):
        // a runner that regains the database after an outage lets the owners renew their
        // leases before taking any over.
        let shortest_heartbeat = jobs
            .iter()
            .map(|spec| spec.heartbeat_interval)
            .min()
            .unwrap_or(Duration::from_secs(10));
        let takeover = Arc::new(TakeoverGuard::new(shortest_heartbeat));
        let store: Arc<dyn Store> = Arc::new(WatchedStore::new(bounded.clone(), takeover.clone()));
        let (db_retry, shutdown_grace) = (self.db_retry, self.shutdown_grace);
        let (max_concurrent, tick_interval, auto_tick) =
            (self.max_concurrent, self.tick_interval, self.auto_tick);
        tracing::info!(runner_id = %runner_id, backend = self.store.backend(), jobs = jobs.len(), "scheduler starting");
        let rt_runner_id = runner_id.clone();
        let supervisor = Supervisor::create(move |ctx| {
            let me = actix::AsyncContext::address(ctx);
            let rt = Arc::new(Runtime {
                store: store.clone(),
                runner_id: rt_runner_id,
                handlers,
                db_retry,
                retry_policy: RetryPolicy::new(backoffs).start(),
                completer: Completer::new(store, db_retry, me.clone().recipient()).start(),
                shutdown_grace,
                takeover,
            });
            Supervisor::new(rt, me, jobs, max_concurrent, tick_interval, auto_tick)
        });
        let pruner = Pruner::new(
            bounded.clone(),
            self.retention,
            job_specs.clone(),
            self.auto_tick,
        )
        .start();
        // Registered once the runtime is up, so a runner that failed to start is never listed.
        let presence = Presence::new(
            bounded.clone(),
            RunnerRegistration::this_process(&runner_id, presence_interval),
            descriptions,
            self.auto_tick,
        )
        .start();
        if let Err(error) = presence
            .send(Register)
            .await
            .map_err(|_| Error::NotRunning)?
        {
            tracing::warn!(%error, "could not register the runner and its jobs; retrying at the next refresh");
        }
        Ok(Scheduler {
            supervisor,
            pruner,
            presence,
            store: bounded,
            runner_id,
            replay_attempts: self.replay_attempts,
            job_specs,
        })
    }
}

/// Brings the schema up to date, retrying transient errors for up to `wait` (none when zero);
/// an unreachable database becomes [`Error::DatabaseUnavailable`].
async fn migrate_at_start(store: &dyn Store, retry: DbRetry, wait: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    let migrate = || async { store.migrate().await.map_err(permanent_at_start) };
    let outcome = if wait.is_zero() {
        let outcome = migrate().await;
        if outcome.as_ref().is_err_and(Error::is_transient) {
            crate::telemetry::db_transient("migrate");
            crate::telemetry::db_gave_up("migrate");
        }
        outcome
    } else {
        crate::actors::retry_transient(retry, "migrate", wait, migrate).await
    };
    match outcome {
        Err(error) if error.is_transient() => {
            let waited = Duration::from_millis(started.elapsed().as_millis() as u64);
            tracing::error!(%error, ?waited, "the database is unreachable at start");
            Err(Error::DatabaseUnavailable {
                waited,
                source: Box::new(error),
            })
        }
        other => other,
    }
}

/// At start, a host name that does not resolve is a wrong URL, not an outage: waiting for the
/// database would retry it until `wait_for_database` runs out, so it is made permanent and
/// returned at once. (Once running, the same error stays transient: a resolver blip.)
fn permanent_at_start(error: Error) -> Error {
    use crate::error::DbErrorKind::Permanent;
    match error {
        Error::Database {
            operation, source, ..
        } if crate::store::host_not_found(&source) => Error::Database {
            operation,
            kind: Permanent,
            source,
        },
        Error::Connect {
            target,
            message,
            source,
            ..
        } if crate::store::host_not_found(&source) => Error::Connect {
            target,
            message,
            kind: Permanent,
            source,
        },
        other => other,
    }
}

/// What [`Scheduler::remove_job`] does with the job's running attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RemoveMode {
    /// Let them finish and record their outcome (default).
    #[default]
    Finish,
    /// Cancel them (recorded `canceled`, retry-eligible, not charged to the budget).
    Cancel,
}

/// A running scheduler. Dropping the handle does not stop it; call [`Scheduler::shutdown`].
#[derive(Clone)]
pub struct Scheduler {
    supervisor: Addr<Supervisor>,
    pruner: Addr<Pruner>,
    presence: Addr<Presence>,
    store: Arc<dyn Store>,
    runner_id: Arc<str>,
    replay_attempts: u32,
    /// The jobs this scheduler runs, by name.
    job_specs: Arc<Mutex<HashMap<String, Arc<JobSpec>>>>,
}

impl Scheduler {
    /// Starts building a scheduler on `store`.
    pub fn builder(store: impl Store) -> SchedulerBuilder {
        Self::builder_shared(Arc::new(store))
    }

    /// Starts building a scheduler on a store shared with other code.
    pub fn builder_shared(store: Arc<dyn Store>) -> SchedulerBuilder {
        SchedulerBuilder {
            store,
            runner_id: None,
            tick_interval: DEFAULT_TICK_INTERVAL,
            max_concurrent: DEFAULT_MAX_CONCURRENT_EXECUTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            handler_threads: DEFAULT_HANDLER_THREADS,
            db_retry: DbRetry::default(),
            wait_for_database: Duration::ZERO,
            auto_tick: true,
            retention: Retention::default(),
            replay_attempts: DEFAULT_REPLAY_ATTEMPTS,
            presence_interval: None,
            job_overrides: std::collections::BTreeMap::new(),
            jobs: Vec::new(),
        }
    }

    /// This runner's id.
    pub fn runner_id(&self) -> &str {
        &self.runner_id
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs one tick now (after any tick in progress) and reports what it did. The executions it
    /// starts run in the background.
    pub async fn tick_now(&self) -> Result<TickReport> {
        self.supervisor
            .send(TickNow)
            .await
            .map_err(|_| Error::NotRunning)?
    }

    /// How many executions are running on this runner.
    pub async fn running(&self) -> Result<usize> {
        self.supervisor
            .send(RunningCount)
            .await
            .map_err(|_| Error::NotRunning)
    }

    /// Waits until no execution is running on this runner (polling every 10 ms), or `timeout`.
    /// Returns whether it became idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.running().await {
                Ok(0) | Err(_) => return true,
                Ok(_) if tokio::time::Instant::now() >= deadline => return false,
                Ok(_) => actix_rt::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Executions matching `filter` (job, scope, status, plan time range), newest plan first,
    /// one page of at most `filter.limit` rows; [`ExecutionFilter::next_page`] gives the next.
    pub async fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        self.store.execution_list(filter).await
    }

    /// The dead-letter set: DEAD executions matching `filter` (its `status` is ignored), newest
    /// plan first, one page. Each row carries its whole failure history.
    pub async fn dead_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let filter = ExecutionFilter {
            status: Some(Status::Dead),
            ..filter.clone()
        };
        self.store.execution_list(&filter).await
    }

    /// One dead execution with its failure history. Errors: [`Error::ExecutionNotFound`],
    /// or [`Error::NotDead`] when the row is in another state.
    pub async fn dead_execution(&self, id: Uuid) -> Result<Execution> {
        match self.store.execution_get(id).await? {
            None => Err(Error::ExecutionNotFound(id)),
            Some(row) if row.status == Status::Dead => Ok(row),
            Some(row) => Err(Error::NotDead {
                id,
                status: row.status.to_string(),
            }),
        }
    }

    /// Replays one dead execution: the same row (same id, the handler's idempotency key, same
    /// job, scope and plan time) becomes FAILED and due now, with `replay_attempts` more
    /// attempts and its failure history kept. The next tick of any runner that has the job
    /// registered runs it, whatever the job's catch-up mode, and reports the claim as
    /// [`ClaimOutcome::Replayed`](crate::ClaimOutcome::Replayed). Works from any replica; when
    /// several replay the same row at once, it is replayed once and the others get
    /// [`Error::NotDead`]. Returns the replayed row.
    ///
    /// Errors: [`Error::ExecutionNotFound`] for an unknown id, [`Error::NotDead`] when the row
    /// is not DEAD.
    pub async fn replay(&self, id: Uuid) -> Result<Execution> {
        let mut replayed = self
            .store
            .execution_replay(&[id], self.replay_attempts)
            .await?;
        match replayed.pop() {
            Some(row) => {
                self.replayed(std::slice::from_ref(&row));
                Ok(row)
            }
            None => match self.store.execution_get(id).await? {
                None => Err(Error::ExecutionNotFound(id)),
                Some(row) => Err(Error::NotDead {
                    id,
                    status: row.status.to_string(),
                }),
            },
        }
    }

    /// Replays the dead executions matching `filter` (job, scope, plan time range; its `status`
    /// is ignored), at most `filter.limit` of them, newest plan first, as [`Scheduler::replay`]
    /// does for one. Call again to replay more: replayed rows are no longer dead. Returns the
    /// rows replayed; rows another replica replayed at the same moment are not among them.
    pub async fn replay_where(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let ids: Vec<Uuid> = self
            .dead_executions(filter)
            .await?
            .iter()
            .map(|row| row.id)
            .collect();
        let mut replayed = self
            .store
            .execution_replay(&ids, self.replay_attempts)
            .await?;
        replayed.sort_by_key(|row| std::cmp::Reverse((row.plan_time, row.id)));
        self.replayed(&replayed);
        Ok(replayed)
    }

    fn replayed(&self, rows: &[Execution]) {
        for row in rows {
            telemetry::replayed(&row.job_name);
            tracing::info!(job = %row.job_name, execution = %row.id, scope = %row.scope, plan_time = %row.plan_time, attempts = row.max_attempts - row.attempt, "dead execution replayed");
        }
        if !rows.is_empty() {
            self.supervisor.do_send(Wake);
        }
    }

    /// Runs the retention service once now (after a run in progress): measures stale RUNNING
    /// rows and prunes what is past its retention, in batches. Works with or without
    /// [`SchedulerBuilder::auto_tick`].
    pub async fn prune_now(&self) -> Result<PruneReport> {
        self.pruner
            .send(PruneNow)
            .await
            .map_err(|_| Error::NotRunning)?
    }

    /// One execution by id.
    pub async fn execution(&self, id: Uuid) -> Result<Option<Execution>> {
        self.store.execution_get(id).await
    }

    /// Row counts by status, for one job or all.
    pub async fn counts(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        self.store.execution_count_by_status(job).await
    }

    /// Pauses `job` on every replica (`scope` `None`), or one of its scopes: no new plan is
    /// claimed and no retry started for it from each replica's next tick on (at most
    /// `tick_interval` away). Attempts already running finish; leases are still swept. The pause
    /// is stored in the database with `paused_by` and `reason`, so it survives restarts and
    /// replicas obey it whichever one was asked. Pausing again replaces who, why and when.
    ///
    /// Fails with [`Error::UnknownJob`] for a job this scheduler does not run, and with
    /// [`Error::InvalidConfig`] for a scope that could not be stored.
    ///
    /// ```no_run
    /// # async fn demo(scheduler: cronlease::Scheduler) -> cronlease::Result<()> {
    /// use cronlease::Scope;
    ///
    /// let tenant = Scope::new("tenant", "42");
    /// scheduler.pause("nightly-report", Some(tenant.clone()), "alice", "tenant migration").await?;
    /// // ... later, on any replica:
    /// scheduler.resume("nightly-report", Some(&tenant)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(
        &self,
        job: &str,
        scope: Option<Scope>,
        paused_by: &str,
        reason: &str,
    ) -> Result<Pause> {
        self.known_job(job)?;
        if let Some(scope) = &scope {
            scope.validate().map_err(Error::InvalidConfig)?;
        }
        let pause = self
            .store
            .pause_set(&Pause::new(job, scope, paused_by, reason))
            .await?;
        tracing::info!(job, scope = ?pause.scope, paused_by, reason, "paused");
        Ok(pause)
    }

    /// Lifts a pause set by [`pause`](Self::pause): the whole-job pause (`scope` `None`) or one
    /// scope's own pause. Returns whether there was one. On resume, the job's catch-up mode
    /// decides what runs, as after any downtime: LatestOnly the newest due plan, EveryPlan the
    /// plans of its window; FAILED plans are retried as they come due.
    pub async fn resume(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        self.known_job(job)?;
        let lifted = self.store.pause_clear(job, scope).await?;
        tracing::info!(job, scope = ?scope, lifted, "resumed");
        Ok(lifted)
    }

    /// The pauses in force, of `job` or of every job.
    pub async fn pauses(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        self.store.pause_list(job).await
    }

    /// Runs `job` now, outside its schedule, for one scope or every scope, on whichever replica
    /// ticks the job first (this one is woken at once; others within their `tick_interval`).
    /// Each run is an execution of its own, marked with the trigger's id
    /// ([`Execution::trigger_id`]), under the same leases, heartbeats, retries and dead letters
    /// as a scheduled plan, which it never replaces (see `docs/operations.md`). With an
    /// idempotency key, a repeated request (a double click) returns the first trigger and runs
    /// nothing more.
    ///
    /// Fails with [`Error::UnknownJob`] for a job this scheduler does not run, and with
    /// [`Error::InvalidConfig`] for a scope that could not be stored.
    ///
    /// ```no_run
    /// # async fn demo(scheduler: cronlease::Scheduler) -> cronlease::Result<()> {
    /// use cronlease::{Scope, TriggerOptions, TriggerTarget};
    ///
    /// let tenant = TriggerTarget::Scope(Scope::new("tenant", "42"));
    /// let options = TriggerOptions::idempotent("ticket-1234").by("alice");
    /// let trigger = scheduler.trigger("nightly-report", tenant, options).await?;
    /// println!("requested at {}", trigger.requested_at);
    /// # Ok(()) }
    /// ```
    pub async fn trigger(
        &self,
        job: &str,
        target: TriggerTarget,
        options: TriggerOptions,
    ) -> Result<Trigger> {
        self.known_job(job)?;
        let scope = target.into_scope();
        if let Some(scope) = &scope {
            scope.validate().map_err(Error::InvalidConfig)?;
        }
        let asked = Trigger::new(job, scope, options);
        let stored = self.store.trigger_create(&asked).await?;
        let repeated = stored.id != asked.id;
        tracing::info!(job, trigger = %stored.id, scope = ?stored.scope, repeated, "trigger requested");
        self.supervisor.do_send(Wake);
        Ok(stored)
    }

    /// The triggers of `job` (or of every job), oldest first, started or pending.
    pub async fn triggers(&self, job: Option<&str>) -> Result<Vec<Trigger>> {
        self.store.trigger_list(job, false).await
    }

    /// Runs every plan time of `job`'s schedule in `[from, to)`, for the chosen scopes (or all),
    /// as a backfill that every replica's tick serves with its free execution slots. Plans that
    /// already have a row are not run again unless `options.rerun` asks to re-run finished ones.
    /// Progress (`done` / `total`) is kept in the row, so it survives restarts; see
    /// [`backfill_status`](Self::backfill_status) and [`cancel_backfill`](Self::cancel_backfill).
    ///
    /// Fails with [`Error::UnknownJob`] for a job this scheduler does not run (or no longer
    /// runs), [`Error::InvalidRequest`] when `from` is not before `to` or `to` is in the future
    /// (database clock), and [`Error::InvalidConfig`] for a scope that could not be stored.
    ///
    /// ```no_run
    /// # async fn demo(scheduler: cronlease::Scheduler) -> cronlease::Result<()> {
    /// use cronlease::BackfillOptions;
    ///
    /// let from = "2026-11-24T00:00:00Z".parse().unwrap();
    /// let to = "2026-11-27T00:00:00Z".parse().unwrap();
    /// let backfill = scheduler.backfill("nightly-report", from, to, BackfillOptions::default()).await?;
    /// let progress = scheduler.backfill_status(backfill.id).await?.unwrap();
    /// println!("{} of {:?} plans handed out", progress.done, progress.total);
    /// # Ok(()) }
    /// ```
    pub async fn backfill(
        &self,
        job: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        options: BackfillOptions,
    ) -> Result<Backfill> {
        let spec = self.known_job(job)?;
        if spec.planner.is_some() || spec.schedule.is_none() {
            return Err(Error::InvalidRequest(format!(
                "job `{job}` plans with a planner hook: a backfill needs a schedule to know its plan times"
            )));
        }
        for scope in options.scopes.iter().flatten() {
            scope.validate().map_err(Error::InvalidConfig)?;
        }
        let asked = Backfill::new(job, from, to, options);
        let now = self.store.db_now().await?;
        asked.check_range(now).map_err(Error::InvalidRequest)?;
        let stored = self.store.backfill_create(&asked).await?;
        tracing::info!(job, backfill = %stored.id, %from, %to, rerun = stored.rerun, "backfill requested");
        self.supervisor.do_send(Wake);
        Ok(stored)
    }

    /// One backfill with its progress, or `None` for an unknown id.
    pub async fn backfill_status(&self, id: Uuid) -> Result<Option<Backfill>> {
        self.store.backfill_get(id).await
    }

    /// The backfills of `job` (or of every job), oldest first, whatever their status.
    pub async fn backfills(&self, job: Option<&str>) -> Result<Vec<Backfill>> {
        self.store.backfill_list(job, false).await
    }

    /// Cancels an active backfill on every replica: no further plan of it is handed out;
    /// attempts already started finish. Returns whether it was active.
    pub async fn cancel_backfill(&self, id: Uuid) -> Result<bool> {
        let cancelled = self.store.backfill_cancel(id).await?;
        tracing::info!(backfill = %id, cancelled, "backfill cancel requested");
        Ok(cancelled)
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobSpec>>> {
        self.job_specs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The names of the jobs this scheduler runs, sorted.
    pub fn job_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names().keys().cloned().collect();
        names.sort();
        names
    }

    /// Registers a job on the running scheduler: it ticks at once, with its own heartbeat and
    /// timer, like the jobs given to the builder. Fails with [`Error::DuplicateJob`] if a job of
    /// that name runs already (use [`replace_job`](Self::replace_job)).
    pub async fn add_job(&self, spec: JobSpec) -> Result<()> {
        self.change_job(spec, false).await
    }

    /// Replaces the job of the same name (a new schedule or new settings) without a restart:
    /// its running attempts finish under the old spec, its next plans follow the new one. Rows
    /// are keyed by name, so history and pending retries carry over (see
    /// `docs/schedules.md` on changing a schedule). Fails with [`Error::UnknownJob`] if no job
    /// of that name runs.
    pub async fn replace_job(&self, spec: JobSpec) -> Result<()> {
        self.change_job(spec, true).await
    }

    /// Removes a job from the running scheduler: it never ticks again here. With
    /// [`RemoveMode::Finish`] its running attempts finish and are recorded; with
    /// [`RemoveMode::Cancel`] they are cancelled within `shutdown_grace`, recorded `canceled`
    /// and left retry-eligible (not charged to the budget) for any runner that still has the
    /// job. Fails with [`Error::UnknownJob`] if no job of that name runs.
    pub async fn remove_job(&self, name: &str, mode: RemoveMode) -> Result<()> {
        self.supervisor
            .send(RemoveJob {
                name: name.to_owned(),
                cancel_running: mode == RemoveMode::Cancel,
            })
            .await
            .map_err(|_| Error::NotRunning)??;
        self.names().remove(name);
        self.jobs_changed(name, None).await;
        Ok(())
    }

    async fn change_job(&self, spec: JobSpec, replace: bool) -> Result<()> {
        let spec = Arc::new(spec);
        let description = JobDescription::of(&spec);
        self.supervisor
            .send(AddJob {
                spec: spec.clone(),
                replace,
            })
            .await
            .map_err(|_| Error::NotRunning)??;
        let name = spec.name.to_string();
        self.names().insert(name.clone(), spec);
        self.jobs_changed(&name, Some(description)).await;
        Ok(())
    }

    /// Registers the changed job set; the job change stands even if the registry could not be
    /// written (the next refresh retries).
    async fn jobs_changed(&self, name: &str, description: Option<JobDescription>) {
        let change = JobsChanged {
            name: name.to_owned(),
            description,
        };
        if let Ok(Err(error)) = self.presence.send(change).await {
            tracing::warn!(%error, job = name, "could not register the changed jobs; retrying at the next refresh");
        }
    }

    /// The jobs registered by the runners sharing this database (`job`: one, `None`: all), by
    /// name: the spec each live runner registered, and whether they conflict (a rolling deploy
    /// in progress). The same read as [`Store::registered_jobs`], which a tool with only a
    /// database URL can call.
    pub async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>> {
        self.store.registered_jobs(job).await
    }

    /// The runners sharing this database, by id: host, pid, version, when they started and were
    /// last seen, and whether each is live, gone or stopped (database clock). The same read as
    /// [`Store::runner_list`].
    pub async fn runners(&self) -> Result<Vec<Runner>> {
        self.store.runner_list().await
    }

    fn known_job(&self, job: &str) -> Result<Arc<JobSpec>> {
        self.names()
            .get(job)
            .cloned()
            .ok_or_else(|| Error::UnknownJob(job.to_owned()))
    }

    /// Why the plan at `plan_time` of `scope` of `job` ran or did not: its row if it has one;
    /// else a pause in force, a skip recorded in the ledger (a lifted pause, the catch-up mode,
    /// a schedule change), not due yet, due but not claimed yet, not a plan time of the job's
    /// schedule, or before the scope's history. See `docs/operations.md`.
    ///
    /// Reads the database only (a few statements): it answers for plans decided by any replica.
    pub async fn why(&self, job: &str, scope: &Scope, plan_time: DateTime<Utc>) -> Result<Why> {
        let spec = self.known_job(job)?;
        let timing = PlanTiming {
            schedule: spec.schedule.clone(),
            stagger: spec.stagger,
            schedule_delay: spec.schedule_delay,
        };
        why_plan(&*self.store, job, &timing, scope, plan_time).await
    }

    /// The skipped-plan ledger: spans of plans deliberately not run, of `job` or of every job,
    /// most recently recorded first, at most `limit`.
    pub async fn skipped(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        self.store.skip_list(job, limit).await
    }

    /// Graceful shutdown: stops ticking, cancels running attempts, waits up to the shutdown
    /// grace, records unfinished attempts as FAILED `canceled` (retry-eligible at once, not
    /// counted against the budget), stops the retention service, marks this runner stopped in
    /// the registry and completes when done. Never stops the actix System.
    pub async fn shutdown(&self) {
        let _ = self.supervisor.send(Shutdown).await;
        let _ = self.pruner.send(StopPruner).await;
        let _ = self.presence.send(StopPresence).await;
    }
}
