//! Job specs: a named recurring job and its limits.
//!
//! - [`JobSpec`]: a validated job, ready to register with a scheduler.
//! - [`JobSpecBuilder`]: every setting with its default and its limits; [`JobSpecBuilder::build`]
//!   checks them all and names the first invalid field and the fix.
//! - [`PlannerHook`]: replaces schedule planning for data-driven plan times.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::control::OverlapPolicy;
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::plan::{CatchUp, CatchUpPreview, catch_up_preview};
use crate::retry::Backoff;
use crate::schedule::{PlannedTime, Schedule, stagger_offset, upcoming};
use crate::scope::{ProviderError, Scope, Scopes};

/// A planner hook: `(scope, db_now, newest known plan of the scope) -> plan times`.
///
/// Its output is kept in order, plans later than `db_now - schedule_delay` are left for later
/// ticks, and the list is cut to the catch-up mode's `max_plans_per_tick` (1 for LatestOnly).
/// An error skips only that scope for that tick.
pub type PlannerHook = Arc<
    dyn Fn(
            &Scope,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        ) -> Result<Vec<DateTime<Utc>>, ProviderError>
        + Send
        + Sync,
>;

/// Default `run_timeout`.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default `planning_timeout`: how long a scope provider or planner hook may take per tick.
pub const DEFAULT_PLANNING_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds in a day.
const DAY: u64 = 86_400;

/// A registered, named recurring job. Build one with [`JobSpec::builder`].
#[derive(Clone)]
pub struct JobSpec {
    pub(crate) name: Arc<str>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) planner: Option<PlannerHook>,
    pub(crate) scopes: Scopes,
    pub(crate) catch_up: CatchUp,
    pub(crate) schedule_delay: Duration,
    pub(crate) stagger: Duration,
    pub(crate) run_timeout: Duration,
    pub(crate) stale_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) allow_stale_reentry: bool,
    pub(crate) supersede_failed: bool,
    pub(crate) overlap: OverlapPolicy,
    pub(crate) max_concurrent: Option<u32>,
    pub(crate) planning_timeout: Duration,
    pub(crate) keep_finished: Option<Option<Duration>>,
    pub(crate) handler: Arc<dyn Handler>,
}

impl JobSpec {
    /// The longest job name, in bytes (UTF-8): 512. The name is part of the unique key, like the
    /// scope (see [`Scope::MAX_LEN`]).
    pub const MAX_NAME_LEN: usize = 512;
    /// The most attempts per plan: 1,000,000 (the column is a 32-bit integer, and a replay adds
    /// attempts on top).
    pub const MAX_ATTEMPTS: u32 = 1_000_000;
    /// The longest `run_timeout`: 7 days. Longer work should be split into several plans.
    pub const MAX_RUN_TIMEOUT: Duration = Duration::from_secs(7 * DAY);
    /// The longest `stale_timeout`: 8 days (the longest `run_timeout` and a day to spare).
    pub const MAX_STALE_TIMEOUT: Duration = Duration::from_secs(8 * DAY);
    /// The longest `schedule_delay`: 366 days, the same as the longest cadence
    /// ([`Schedule::MAX_CADENCE`]).
    pub const MAX_SCHEDULE_DELAY: Duration = Duration::from_secs(366 * DAY);
    /// The longest `stagger` window: 1 day.
    pub const MAX_STAGGER: Duration = Duration::from_secs(DAY);

    /// Starts a job named `name`. The name identifies the job's rows in the database: keep it
    /// stable across deployments.
    pub fn builder(name: impl Into<String>) -> JobSpecBuilder {
        JobSpecBuilder {
            name: name.into(),
            schedule: None,
            parse_error: None,
            cron: None,
            time_zone: None,
            offset: None,
            stagger: None,
            planner: None,
            scopes: Scopes::default(),
            catch_up: CatchUp::default(),
            schedule_delay: Duration::ZERO,
            run_timeout: DEFAULT_RUN_TIMEOUT,
            stale_timeout: None,
            heartbeat_interval: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            allow_stale_reentry: true,
            supersede_failed: false,
            overlap: OverlapPolicy::default(),
            max_concurrent: None,
            planning_timeout: DEFAULT_PLANNING_TIMEOUT,
            keep_finished: None,
            handler: None,
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schedule, unless a planner hook replaces it.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// The stagger window over which scopes' due times are spread (zero: none).
    pub fn stagger(&self) -> Duration {
        self.stagger
    }

    /// How long after its plan time a plan becomes due.
    pub fn schedule_delay(&self) -> Duration {
        self.schedule_delay
    }

    /// The next `n` plan times strictly after `after`, in UTC and in the schedule's time zone,
    /// each due `schedule_delay` after its plan time (stagger aside: see
    /// [`upcoming_for`](Self::upcoming_for)). Empty for a planner-hook job.
    ///
    /// ```
    /// use cronlease::{JobContext, JobOutput, JobSpec};
    ///
    /// let spec = JobSpec::builder("nightly")
    ///     .cron("30 2 * * *")
    ///     .time_zone("Europe/Berlin")
    ///     .handler(|_ctx: JobContext| async move { Ok(JobOutput::rows(0)) })
    ///     .build()
    ///     .unwrap();
    /// let next = spec.upcoming("2026-03-28T12:00:00Z".parse().unwrap(), 2);
    /// // 02:30 does not exist on 2026-03-29 in Berlin: that plan runs at 03:00 CEST.
    /// assert_eq!(next[0].plan_time.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    /// assert_eq!(next[0].local.to_rfc3339(), "2026-03-29T03:00:00+02:00");
    /// assert_eq!(next[1].local.to_rfc3339(), "2026-03-30T02:30:00+02:00");
    /// ```
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<PlannedTime> {
        self.schedule.as_ref().map_or_else(Vec::new, |schedule| {
            upcoming(schedule, after, n, self.schedule_delay)
        })
    }

    /// The next `n` plan times of one scope strictly after `after`: the same plan times as
    /// [`upcoming`](Self::upcoming), due later by the scope's stagger offset.
    pub fn upcoming_for(&self, scope: &Scope, after: DateTime<Utc>, n: usize) -> Vec<PlannedTime> {
        let lag = self.schedule_delay + stagger_offset(&self.name, scope, self.stagger);
        self.schedule
            .as_ref()
            .map_or_else(Vec::new, |schedule| upcoming(schedule, after, n, lag))
    }

    /// "If no scheduler ran from `down_from` to `down_to`, which plans would catch-up run?":
    /// the plans due in between, split by the catch-up mode into those run at restart and those
    /// skipped. Plans due by `down_from` count as run. Stagger offsets are ignored. Empty for a
    /// planner-hook job.
    pub fn catch_up_preview(
        &self,
        down_from: DateTime<Utc>,
        down_to: DateTime<Utc>,
    ) -> CatchUpPreview {
        self.schedule
            .as_ref()
            .map_or_else(CatchUpPreview::default, |schedule| {
                catch_up_preview(
                    schedule,
                    self.catch_up,
                    self.schedule_delay,
                    down_from,
                    down_to,
                )
            })
    }

    /// The catch-up mode.
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up
    }

    /// How long one attempt may run.
    pub fn run_timeout(&self) -> Duration {
        self.run_timeout
    }

    /// How long a lease lives without a heartbeat.
    pub fn stale_timeout(&self) -> Duration {
        self.stale_timeout
    }

    /// How often running leases are renewed.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Attempts per plan, the first run included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a stale lease may be taken over and re-run.
    pub fn allows_stale_reentry(&self) -> bool {
        self.allow_stale_reentry
    }

    /// Whether a failed plan is closed (SUPERSEDED) once a newer plan of its scope succeeds.
    pub fn supersedes_failed(&self) -> bool {
        self.supersede_failed
    }

    /// What a claim does with a plan whose scope is still running.
    pub fn overlap(&self) -> OverlapPolicy {
        self.overlap
    }

    /// The most RUNNING attempts of the job across the cluster; `None`: no limit.
    pub fn max_concurrent(&self) -> Option<u32> {
        self.max_concurrent
    }

    /// How long the scope provider or planner hook may take in one tick.
    pub fn planning_timeout(&self) -> Duration {
        self.planning_timeout
    }

    /// The job's own retention of SUCCESS, SUPERSEDED and SKIPPED rows: `None` when it follows the
    /// scheduler's [`Retention::keep_finished`](crate::Retention::keep_finished), `Some(None)`
    /// when it keeps them forever.
    pub fn keep_finished(&self) -> Option<Option<Duration>> {
        self.keep_finished
    }
}

impl fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSpec")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("planner", &self.planner.is_some())
            .field("scopes", &self.scopes)
            .field("catch_up", &self.catch_up)
            .field("run_timeout", &self.run_timeout)
            .field("stale_timeout", &self.stale_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_attempts", &self.max_attempts)
            .field("overlap", &self.overlap)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JobSpec`]; every setting states its default and its limits.
///
/// [`build`](Self::build) refuses values the database cannot store or the runtime cannot
/// compute with, naming the first invalid field and the fix:
///
/// | setting | limit |
/// |---|---|
/// | job name | not empty, no leading or trailing whitespace, no NUL byte, at most [`JobSpec::MAX_NAME_LEN`] (512) bytes |
/// | cadence ([`every`](Self::every), [`schedule`](Self::schedule)) | a whole number of milliseconds from 1 ms to [`Schedule::MAX_CADENCE`] (366 days); no month or year units |
/// | [`offset`](Self::offset) | a cadence only; shorter than the cadence |
/// | [`cron`](Self::cron) | 5, 6 (seconds first) or 7 (year last) fields or a macro; must match some real date |
/// | [`time_zone`](Self::time_zone) | an IANA name known to the tz database; a cron schedule only |
/// | [`stagger`](Self::stagger) | at most [`JobSpec::MAX_STAGGER`] (1 day) |
/// | static [`scopes`](Self::scopes) | at least one; each passes [`Scope::validate`] (kind and id not empty, no NUL, at most [`Scope::MAX_LEN`] (512) bytes); duplicates are dropped |
/// | [`schedule_delay`](Self::schedule_delay) | at most [`JobSpec::MAX_SCHEDULE_DELAY`] (366 days) |
/// | [`run_timeout`](Self::run_timeout) | longer than zero, at most [`JobSpec::MAX_RUN_TIMEOUT`] (7 days) |
/// | [`stale_timeout`](Self::stale_timeout) | longer than `run_timeout`, at most [`JobSpec::MAX_STALE_TIMEOUT`] (8 days) |
/// | [`heartbeat_interval`](Self::heartbeat_interval) | longer than zero, shorter than `stale_timeout` |
/// | [`max_attempts`](Self::max_attempts) | from 1 to [`JobSpec::MAX_ATTEMPTS`] (1,000,000) |
/// | [`max_concurrent`](Self::max_concurrent) | at least 1 |
/// | [`backoff`](Self::backoff) | delays, base and cap at most [`Backoff::MAX_DELAY`] (365 days); factor at least 1; jitter in `[0, 1]` |
///
/// ```
/// use std::time::Duration;
/// use cronlease::{CatchUp, JobContext, JobOutput, JobSpec, Scope};
///
/// let spec = JobSpec::builder("refresh-stats")
///     .every("5m")
///     .scopes([Scope::new("workspace", "42"), Scope::new("workspace", "43")])
///     .catch_up(CatchUp::EveryPlan { window: Duration::from_secs(3600), max_plans_per_tick: 4 })
///     .run_timeout(Duration::from_secs(30))
///     .handler(|ctx: JobContext| async move { Ok(JobOutput::rows(1)) })
///     .build()
///     .unwrap();
/// assert_eq!(spec.name(), "refresh-stats");
/// ```
#[must_use]
pub struct JobSpecBuilder {
    name: String,
    schedule: Option<Schedule>,
    parse_error: Option<String>,
    cron: Option<String>,
    time_zone: Option<String>,
    offset: Option<String>,
    stagger: Option<String>,
    planner: Option<PlannerHook>,
    scopes: Scopes,
    catch_up: CatchUp,
    schedule_delay: Duration,
    run_timeout: Duration,
    stale_timeout: Option<Duration>,
    heartbeat_interval: Option<Duration>,
    max_attempts: u32,
    backoff: Backoff,
    allow_stale_reentry: bool,
    supersede_failed: bool,
    overlap: OverlapPolicy,
    max_concurrent: Option<u32>,
    planning_timeout: Duration,
    keep_finished: Option<Option<Duration>>,
    handler: Option<Arc<dyn Handler>>,
}

impl JobSpecBuilder {
    /// Runs at every multiple of `cadence`, a `humantime` string such as `"30s"` or `"5m"`,
    /// counted from `0001-01-01T00:00:00Z` in UTC, at most [`Schedule::MAX_CADENCE`] (366 days).
    /// Month and year units (`1M`, `1y`) are refused: humantime counts them as fixed lengths;
    /// use [`cron`](Self::cron) for calendar months. A schedule ([`every`](Self::every),
    /// [`cron`](Self::cron) or [`schedule`](Self::schedule); the last one given wins) is
    /// required unless a [planner hook](Self::planner) is given.
    pub fn every(mut self, cadence: &str) -> Self {
        self.cron = None;
        match Schedule::every(cadence) {
            Ok(schedule) => {
                self.schedule = Some(schedule);
                self.parse_error = None;
            }
            Err(Error::InvalidConfig(message)) => self.parse_error = Some(message),
            Err(other) => self.parse_error = Some(other.to_string()),
        }
        self
    }

    /// Moves every plan of a cadence later by `offset`, a `humantime` string shorter than the
    /// cadence: `.every("15m").offset("5m")` plans at :05, :20, :35 and :50. Default: none.
    pub fn offset(mut self, offset: &str) -> Self {
        self.offset = Some(offset.to_owned());
        self
    }

    /// Runs at the times matching a cron expression, read in [`time_zone`](Self::time_zone)
    /// (UTC when not given): `"0 3 * * *"`, `"*/15 * * * *"`, `"0 30 9 ? * MON#2"`, `"@daily"`.
    /// See [`CronSchedule`](crate::CronSchedule) for the syntax and DST rules; an invalid
    /// pattern fails [`build`](Self::build) naming the field at fault.
    pub fn cron(mut self, pattern: &str) -> Self {
        self.cron = Some(pattern.to_owned());
        self.schedule = None;
        self.parse_error = None;
        self
    }

    /// The IANA time zone a cron expression is read in (`"Europe/Berlin"`). Default: UTC. An
    /// unknown name fails [`build`](Self::build); so does a time zone on a fixed cadence,
    /// which always counts from UTC (for local midnight write `.cron("0 0 * * *")`).
    pub fn time_zone(mut self, zone: &str) -> Self {
        self.time_zone = Some(zone.to_owned());
        self
    }

    /// Spreads the scopes' due times over a window (`"10m"`): each scope's plans come due a
    /// stable offset in `[0, window)` after their plan time, the same on every replica and
    /// restart (see [`stagger_offset`](crate::stagger_offset)), so many scopes sharing a
    /// schedule don't all start at once. Plan times (the rows' identity) are unchanged. At most
    /// [`JobSpec::MAX_STAGGER`] (1 day). Default: none.
    pub fn stagger(mut self, window: &str) -> Self {
        self.stagger = Some(window.to_owned());
        self
    }

    /// Sets the schedule directly; the same limits as [`every`](Self::every) and
    /// [`cron`](Self::cron) apply.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self.cron = None;
        self.parse_error = None;
        self
    }

    /// Replaces cadence planning with a function of `(scope, db_now, newest known plan)`.
    pub fn planner<F>(mut self, hook: F) -> Self
    where
        F: Fn(
                &Scope,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
            ) -> Result<Vec<DateTime<Utc>>, ProviderError>
            + Send
            + Sync
            + 'static,
    {
        self.planner = Some(Arc::new(hook));
        self
    }

    /// The scopes to run for: a list or a [`Scopes`] provider. Default: the global scope only.
    ///
    /// A list is checked at [`build`](Self::build): it must not be empty, every scope must pass
    /// [`Scope::validate`] (kind and id not empty, no NUL byte, at most [`Scope::MAX_LEN`] bytes
    /// each), and repeated scopes are dropped (each scope runs once per plan). A provider's
    /// scopes are checked at every tick instead.
    pub fn scopes(mut self, scopes: impl Into<Scopes>) -> Self {
        self.scopes = scopes.into();
        self
    }

    /// What to do about missed plans. Default: [`CatchUp::LatestOnly`].
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// How long after its plan time a plan becomes due (for data that lands late); at most
    /// [`JobSpec::MAX_SCHEDULE_DELAY`] (366 days). Default: 0.
    pub fn schedule_delay(mut self, delay: Duration) -> Self {
        self.schedule_delay = delay;
        self
    }

    /// How long one attempt may run before it is cancelled and recorded as `run_timeout`; longer
    /// than zero and at most [`JobSpec::MAX_RUN_TIMEOUT`] (7 days). Default: 60 s.
    pub fn run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = timeout;
        self
    }

    /// How long a lease lives without a heartbeat before another runner may take it over; must be
    /// longer than `run_timeout` and at most [`JobSpec::MAX_STALE_TIMEOUT`] (8 days).
    /// Default: `run_timeout + 60 s`.
    pub fn stale_timeout(mut self, timeout: Duration) -> Self {
        self.stale_timeout = Some(timeout);
        self
    }

    /// How often a running lease is renewed; must be shorter than `stale_timeout`.
    /// Default: a third of `stale_timeout`, at most 10 s.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// Attempts per plan, the first run included; from 1 to [`JobSpec::MAX_ATTEMPTS`]
    /// (1,000,000). Default: 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay between failed attempts; delays, base and cap at most [`Backoff::MAX_DELAY`]
    /// (365 days). Default: [`Backoff::default`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Whether a lease whose runner stopped heartbeating may be taken over and the plan re-run.
    /// Set `false` for work that must not run twice: swept rows then go DEAD for an operator to
    /// replay. Default: `true`.
    pub fn allow_stale_reentry(mut self, allow: bool) -> Self {
        self.allow_stale_reentry = allow;
        self
    }

    /// For refresh-style jobs, where only the newest result matters: once a newer plan of the
    /// same scope succeeds, an older FAILED plan is closed as
    /// [`Status::Superseded`](crate::Status::Superseded) (kept in history with its failures,
    /// counted in `cronlease_superseded_total`) instead of being retried. Replayed plans are
    /// never superseded. Default: `false`: every failed plan is retried at its backoff time
    /// until SUCCESS or DEAD, whatever the catch-up mode.
    pub fn supersede_failed(mut self, supersede: bool) -> Self {
        self.supersede_failed = supersede;
        self
    }

    /// What a claim does with a plan that comes due while the previous plan of its scope is
    /// still RUNNING (a run outlasting the cadence). Enforced in the claim, under a per-job lock
    /// in the database, so every replica obeys it. Default: [`OverlapPolicy::Skip`]: one run
    /// at a time per scope, as cron users expect; the plan that came due is recorded SKIPPED.
    /// [`OverlapPolicy::AllowAll`] lets plans of one scope run at once.
    pub fn overlap(mut self, policy: OverlapPolicy) -> Self {
        self.overlap = policy;
        self
    }

    /// At most `n` RUNNING attempts of this job at once across the cluster (every replica, every
    /// scope), e.g. for a rate-limited upstream. Claims beyond it are deferred to later ticks,
    /// oldest plan first, not lost. Enforced in the claim under a per-job lock in the database.
    /// Must be at least 1. Default: no limit (each runner's `max_concurrent` still bounds what
    /// that runner runs).
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = Some(n);
        self
    }

    /// How long the scope provider (or the planner hook, for all scopes together) may take in
    /// one tick. Past it the job gets no new plans that tick (logged, counted in
    /// `cronlease_tick_errors_total`); other jobs are not delayed either way, since every job
    /// ticks on its own. Default: 10 s.
    pub fn planning_timeout(mut self, timeout: Duration) -> Self {
        self.planning_timeout = timeout;
        self
    }

    /// Keeps this job's SUCCESS, SUPERSEDED and SKIPPED rows for `age` after they finished,
    /// instead of the scheduler's [`Retention::keep_finished`](crate::Retention::keep_finished):
    /// a job that runs every minute rarely needs 30 days of successes, a monthly one may want
    /// more. DEAD rows keep the scheduler's `keep_dead`. Longer than zero. Default: the
    /// scheduler's setting.
    pub fn keep_finished(mut self, age: Duration) -> Self {
        self.keep_finished = Some(Some(age));
        self
    }

    /// Keeps this job's SUCCESS, SUPERSEDED and SKIPPED rows forever, whatever the scheduler's
    /// [`Retention::keep_finished`](crate::Retention::keep_finished). Default: the scheduler's
    /// setting.
    pub fn keep_finished_forever(mut self) -> Self {
        self.keep_finished = Some(None);
        self
    }

    /// The work to run. Required.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Checks every setting and returns the spec, or the first invalid field with its fix (see
    /// the limits in the [type's documentation](Self)).
    pub fn build(self) -> Result<JobSpec> {
        let name = self.name;
        let fail = |message: String| Err(Error::invalid_job(&name, message));
        if let Err(message) = check_name(&name) {
            return fail(message);
        }
        if let Some(message) = self.parse_error {
            return fail(message);
        }
        let schedule = match resolve_schedule(
            self.schedule,
            self.cron.as_deref(),
            self.time_zone.as_deref(),
            self.offset.as_deref(),
        ) {
            Ok(schedule) => schedule,
            Err(message) => return fail(message),
        };
        let stagger = match self.stagger.as_deref().map(parse_stagger).transpose() {
            Ok(stagger) => stagger.unwrap_or(Duration::ZERO),
            Err(message) => return fail(message),
        };
        match (&schedule, &self.planner) {
            (None, None) => {
                return fail(
                    "a schedule is required: call .every(\"5m\"), .cron(\"0 3 * * *\") or give a .planner(..) hook"
                        .into(),
                );
            }
            (Some(schedule), None) => {
                if let Err(message) = schedule.validate() {
                    return fail(format!("{message} (or give a .planner(..) hook)"));
                }
            }
            _ => {}
        }
        if self.schedule_delay > JobSpec::MAX_SCHEDULE_DELAY {
            return fail(format!(
                "schedule_delay ({}) must be at most {} (JobSpec::MAX_SCHEDULE_DELAY)",
                fmt_duration(self.schedule_delay),
                fmt_duration(JobSpec::MAX_SCHEDULE_DELAY)
            ));
        }
        if self.run_timeout.is_zero() {
            return fail("run_timeout must be longer than zero".into());
        }
        if self.run_timeout > JobSpec::MAX_RUN_TIMEOUT {
            return fail(format!(
                "run_timeout ({}) must be at most {} (JobSpec::MAX_RUN_TIMEOUT): split longer work into several plans",
                fmt_duration(self.run_timeout),
                fmt_duration(JobSpec::MAX_RUN_TIMEOUT)
            ));
        }
        let stale_timeout = self
            .stale_timeout
            .unwrap_or(self.run_timeout + Duration::from_secs(60));
        if stale_timeout <= self.run_timeout {
            return fail(format!(
                "stale_timeout ({}) must be longer than run_timeout ({})",
                fmt_duration(stale_timeout),
                fmt_duration(self.run_timeout)
            ));
        }
        if stale_timeout > JobSpec::MAX_STALE_TIMEOUT {
            return fail(format!(
                "stale_timeout ({}) must be at most {} (JobSpec::MAX_STALE_TIMEOUT)",
                fmt_duration(stale_timeout),
                fmt_duration(JobSpec::MAX_STALE_TIMEOUT)
            ));
        }
        let heartbeat_interval = self
            .heartbeat_interval
            .unwrap_or((stale_timeout / 3).min(Duration::from_secs(10)));
        if heartbeat_interval.is_zero() || heartbeat_interval >= stale_timeout {
            return fail(format!(
                "heartbeat_interval ({}) must be longer than zero and shorter than stale_timeout ({})",
                fmt_duration(heartbeat_interval),
                fmt_duration(stale_timeout)
            ));
        }
        if self.max_concurrent == Some(0) {
            return fail("max_concurrent must be at least 1 (leave it unset for no limit)".into());
        }
        if self.max_attempts < 1 {
            return fail("max_attempts must be at least 1".into());
        }
        if self.max_attempts > JobSpec::MAX_ATTEMPTS {
            return fail(format!(
                "max_attempts ({}) must be at most {} (JobSpec::MAX_ATTEMPTS)",
                self.max_attempts,
                JobSpec::MAX_ATTEMPTS
            ));
        }
        if let Err(message) = self.backoff.validate() {
            return fail(message);
        }
        if self.planning_timeout.is_zero() {
            return fail("planning_timeout must be longer than zero".into());
        }
        if self.keep_finished == Some(Some(Duration::ZERO)) {
            return fail(
                "keep_finished must be longer than zero (keep_finished_forever keeps rows forever)"
                    .into(),
            );
        }
        let Some(handler) = self.handler else {
            return fail("a handler is required: call .handler(..)".into());
        };
        if self.catch_up.max_plans_per_tick() == 0 {
            return fail(
                "catch-up EveryPlan needs max_plans_per_tick of at least 1 (the most plans one scope may claim per tick)"
                    .into(),
            );
        }
        let scopes = match self.scopes {
            Scopes::Static(list) => match check_scopes(&list) {
                Ok(list) => Scopes::Static(list.into()),
                Err(message) => return fail(message),
            },
            provider => provider,
        };
        Ok(JobSpec {
            name: name.into(),
            schedule,
            planner: self.planner,
            scopes,
            catch_up: self.catch_up,
            schedule_delay: self.schedule_delay,
            stagger,
            run_timeout: self.run_timeout,
            stale_timeout,
            heartbeat_interval,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            allow_stale_reentry: self.allow_stale_reentry,
            supersede_failed: self.supersede_failed,
            overlap: self.overlap,
            max_concurrent: self.max_concurrent,
            planning_timeout: self.planning_timeout,
            keep_finished: self.keep_finished,
            handler,
        })
    }
}

impl JobSpec {
    /// A builder holding this spec's settings, its handler and scopes, to change some and build
    /// again (settings from a file are applied this way, checked like the code's own).
    pub(crate) fn to_builder(&self) -> JobSpecBuilder {
        JobSpecBuilder {
            name: self.name.to_string(),
            schedule: self.schedule.clone(),
            parse_error: None,
            cron: None,
            time_zone: None,
            offset: None,
            stagger: Some(fmt_duration(self.stagger)),
            planner: self.planner.clone(),
            scopes: self.scopes.clone(),
            catch_up: self.catch_up,
            schedule_delay: self.schedule_delay,
            run_timeout: self.run_timeout,
            stale_timeout: Some(self.stale_timeout),
            heartbeat_interval: Some(self.heartbeat_interval),
            max_attempts: self.max_attempts,
            backoff: self.backoff.clone(),
            allow_stale_reentry: self.allow_stale_reentry,
            supersede_failed: self.supersede_failed,
            overlap: self.overlap,
            max_concurrent: self.max_concurrent,
            planning_timeout: self.planning_timeout,
            keep_finished: self.keep_finished,
            handler: Some(self.handler.clone()),
        }
    }
}

impl<I: IntoIterator<Item = Scope>> From<I> for Scopes {
    fn from(scopes: I) -> Self {
        Scopes::list(scopes)
    }
}

/// The job name's rules: not empty, no surrounding whitespace, no NUL, at most 512 bytes.
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("job name must not be empty".into());
    }
    if name.trim() != name {
        return Err(format!(
            "job name `{}` has leading or trailing whitespace: remove it (the name identifies the job's rows, so `a` and ` a` would be two jobs)",
            name.escape_debug()
        ));
    }
    if name.contains('\0') {
        return Err(format!(
            "job name `{}` has a NUL byte, which PostgreSQL cannot store: remove it",
            name.escape_debug()
        ));
    }
    if name.len() > JobSpec::MAX_NAME_LEN {
        let cut = name
            .char_indices()
            .nth(40)
            .map_or(name.len(), |(index, _)| index);
        return Err(format!(
            "job name `{}...` is {} bytes, over the limit of {} (JobSpec::MAX_NAME_LEN): choose a shorter name",
            name[..cut].escape_debug(),
            name.len(),
            JobSpec::MAX_NAME_LEN
        ));
    }
    Ok(())
}

/// The schedule from the builder's parts: a cron pattern in its zone, or the cadence with its
/// offset. A zone without cron and an offset without a cadence are refused.
fn resolve_schedule(
    schedule: Option<Schedule>,
    cron: Option<&str>,
    zone: Option<&str>,
    offset: Option<&str>,
) -> Result<Option<Schedule>, String> {
    let message = |error: Error| match error {
        Error::InvalidConfig(message) => message,
        other => other.to_string(),
    };
    let schedule = match (cron, schedule) {
        (Some(pattern), _) => {
            Some(Schedule::cron_in(pattern, zone.unwrap_or("UTC")).map_err(message)?)
        }
        (None, Some(Schedule::Every { .. })) if zone.is_some() => {
            return Err(format!(
                "time_zone `{}` applies to cron schedules: a cadence counts from UTC; for local times write e.g. .cron(\"0 0 * * *\").time_zone(\"{}\")",
                zone.unwrap_or_default(),
                zone.unwrap_or_default()
            ));
        }
        (None, schedule) => schedule,
    };
    match (offset, schedule) {
        (Some(offset), Some(schedule)) => schedule.with_offset(offset).map(Some).map_err(message),
        (Some(_), None) => Err("an offset applies to a fixed cadence: call .every(..) too".into()),
        (None, schedule) => Ok(schedule),
    }
}

/// A stagger window from a `humantime` string, at most [`JobSpec::MAX_STAGGER`].
fn parse_stagger(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text.trim())
        .map_err(|e| format!("cannot parse stagger `{text}` ({e}): write e.g. `10m`"))?;
    if window > JobSpec::MAX_STAGGER {
        return Err(format!(
            "stagger ({}) must be at most {} (JobSpec::MAX_STAGGER)",
            fmt_duration(window),
            fmt_duration(JobSpec::MAX_STAGGER)
        ));
    }
    Ok(window)
}

/// A static scope list: not empty, every scope valid; repeated scopes dropped (first kept).
fn check_scopes(list: &[Scope]) -> Result<Vec<Scope>, String> {
    if list.is_empty() {
        return Err(
            "the scope list is empty: give at least one scope, or leave scopes unset for the global scope"
                .into(),
        );
    }
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    let mut kept = Vec::with_capacity(list.len());
    for scope in list {
        scope.validate()?;
        if seen.insert(scope) {
            kept.push(scope.clone());
        }
    }
    Ok(kept)
}

fn fmt_duration(d: Duration) -> String {
    crate::schedule::fmt_duration(d)
}
