//! The job and runner registry: which runners are alive and which jobs they run, stored in the
//! database so replicas and tools (a CLI, a dashboard) see the whole cluster without the
//! application running.
//!
//! - [`Runner`] and [`RunnerState`]: one scheduler instance, live, gone or stopped.
//! - [`RunnerRegistration`]: what a runner writes about itself at start.
//! - [`JobDescription`]: a job's settings as a runner registered them, with a stable hash.
//! - [`RegisteredJob`] and [`SpecVariant`]: one job across the cluster; several variants among
//!   live runners (a rolling deploy in progress) are reported as `conflicting`, never resolved.
//!
//! Each runner writes only its own rows (`cronlease_runners`, its rows of
//! `cronlease_registered_jobs`), so two runners with different specs of a job never overwrite
//! each other's view. A runner refreshes `last_seen` every `refresh_interval` (one statement);
//! whether it is live, gone or stopped is decided when reading, from the database clock
//! ([`RunnerState::at`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::control::OverlapPolicy;
use crate::error::Result;
use crate::plan::CatchUp;
use crate::retry::Backoff;
use crate::schedule::{PlannedTime, Schedule, delta, fmt_duration, upcoming};
use crate::spec::JobSpec;

/// A runner whose `last_seen` is older than this many refresh intervals is shown as gone: it
/// crashed, was killed, or lost the database. Three intervals ride out a slow refresh or two.
pub const GONE_AFTER_INTERVALS: u32 = 3;

/// Whether a runner is running, as seen from the database clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunnerState {
    /// It refreshed `last_seen` within [`GONE_AFTER_INTERVALS`] refresh intervals.
    Live,
    /// It stopped refreshing without shutting down (killed, crashed, partitioned away). The
    /// retention service deletes it once `last_seen` is older than `Retention::keep_runners`.
    Gone,
    /// It shut down cleanly ([`Scheduler::shutdown`](crate::Scheduler::shutdown)). Deleted like
    /// a gone runner.
    Stopped,
}

impl RunnerState {
    /// The state of a runner last seen at `last_seen` (stopped at `stopped_at`, if it did),
    /// refreshing every `refresh_interval`, at database time `now`.
    pub fn at(
        last_seen: DateTime<Utc>,
        stopped_at: Option<DateTime<Utc>>,
        refresh_interval: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        if stopped_at.is_some() {
            RunnerState::Stopped
        } else if now - last_seen > delta(refresh_interval * GONE_AFTER_INTERVALS) {
            RunnerState::Gone
        } else {
            RunnerState::Live
        }
    }

    /// `live`, `gone` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunnerState::Live => "live",
            RunnerState::Gone => "gone",
            RunnerState::Stopped => "stopped",
        }
    }
}

/// One scheduler instance as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Runner {
    /// The runner id ([`SchedulerBuilder::runner_id`](crate::SchedulerBuilder::runner_id)).
    pub id: String,
    /// The host name it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The cronlease version it runs.
    pub version: String,
    /// When it started (database clock).
    pub started_at: DateTime<Utc>,
    /// When it last refreshed its presence (database clock).
    pub last_seen: DateTime<Utc>,
    /// When it shut down cleanly, if it did.
    pub stopped_at: Option<DateTime<Utc>>,
    /// How often it refreshes `last_seen`.
    pub refresh_interval: Duration,
    /// Live, gone or stopped, at the time of the read.
    pub state: RunnerState,
}

/// What a runner writes about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRegistration {
    /// The runner id.
    pub id: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The cronlease version.
    pub version: String,
    /// How often it refreshes `last_seen`.
    pub refresh_interval: Duration,
    /// `true` when the runner is starting: `started_at` is set to now and a former stop is
    /// forgotten. `false` when it registers again while running (its row was pruned, or its
    /// jobs changed): `started_at` is kept if the row still exists.
    pub starting: bool,
}

impl RunnerRegistration {
    /// This process: host name (from `HOSTNAME`, else the kernel's), pid and crate version.
    pub(crate) fn this_process(id: &str, refresh_interval: Duration) -> Self {
        RunnerRegistration {
            id: id.to_owned(),
            host: host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            refresh_interval,
            starting: true,
        }
    }
}

/// The host name, or `unknown`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A job's settings as one runner registered them.
///
/// `spec` is the description the hash covers: one `key=value` line per setting, in a fixed
/// order, durations in milliseconds (`stagger_ms=30000`). `spec_hash` is its 64-bit FNV-1a hash
/// in hex, the same in every process and version (no per-process seed; a unit test pins one
/// value). To cover a new setting, append a line for it **only when it differs from its
/// default**: specs written by older versions then keep their hash, and a real change of the new
/// setting changes it. Scopes are not covered (a provider's scopes change at run time).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobDescription {
    /// The job's name.
    pub name: String,
    /// The schedule as [`Schedule::to_text`] writes it; `None` for a planner-hook job.
    pub schedule: Option<String>,
    /// The IANA time zone the schedule is read in (`UTC` for a cadence).
    pub time_zone: String,
    /// The stagger window over which scopes' due times are spread.
    pub stagger: Duration,
    /// How long after its plan time a plan becomes due.
    pub schedule_delay: Duration,
    /// The catch-up mode: `latest_only`, or `every_plan window=<d> max_plans_per_tick=<n>`.
    pub catch_up: String,
    /// Attempts per plan.
    pub max_attempts: u32,
    /// The retry backoff: `list <d>,<d>,..`, or `exponential base=<d> factor=<f> cap=<d>
    /// jitter=<f>`.
    pub backoff: String,
    /// How long one attempt may run.
    pub run_timeout: Duration,
    /// How long a lease lives without a heartbeat.
    pub stale_timeout: Duration,
    /// How often running leases are renewed.
    pub heartbeat_interval: Duration,
    /// The description the hash covers (`key=value` lines).
    pub spec: String,
    /// The stable hash of `spec` (16 hex digits).
    pub spec_hash: String,
}

impl JobDescription {
    /// The description of `spec`.
    pub fn of(spec: &JobSpec) -> Self {
        let schedule = spec
            .schedule
            .as_ref()
            .filter(|_| spec.planner.is_none())
            .map(Schedule::to_text);
        let time_zone = spec
            .schedule
            .as_ref()
            .map_or("UTC", Schedule::time_zone)
            .to_owned();
        let catch_up = catch_up_text(spec.catch_up);
        let backoff = backoff_text(&spec.backoff);
        let text = hashed_description(spec);
        JobDescription {
            name: spec.name.to_string(),
            schedule,
            time_zone,
            stagger: spec.stagger,
            schedule_delay: spec.schedule_delay,
            catch_up,
            max_attempts: spec.max_attempts,
            backoff,
            run_timeout: spec.run_timeout,
            stale_timeout: spec.stale_timeout,
            heartbeat_interval: spec.heartbeat_interval,
            spec_hash: spec_hash(&text),
            spec: text,
        }
    }

    /// The job's own retention of finished rows, read back from [`spec`](Self::spec): `None`
    /// when it keeps the scheduler-wide default, `Some(None)` when it keeps them forever (see
    /// [`JobSpecBuilder::keep_finished`](crate::JobSpecBuilder::keep_finished)).
    pub fn keep_finished(&self) -> Option<Option<Duration>> {
        self.spec.lines().find_map(|line| {
            if line == "keep_finished=forever" {
                return Some(None);
            }
            let ms: u64 = line.strip_prefix("keep_finished_ms=")?.parse().ok()?;
            Some(Some(Duration::from_millis(ms)))
        })
    }

    /// The job's schedule rebuilt from the stored text; `None` for a planner-hook job.
    pub fn schedule(&self) -> Option<Result<Schedule>> {
        self.schedule
            .as_deref()
            .map(|text| Schedule::from_text(text, &self.time_zone))
    }

    /// The next `n` plan times strictly after `after`, computed from the registry alone (the
    /// same as [`JobSpec::upcoming`]); empty for a planner-hook job.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Result<Vec<PlannedTime>> {
        match self.schedule() {
            None => Ok(Vec::new()),
            Some(schedule) => Ok(upcoming(&schedule?, after, n, self.schedule_delay)),
        }
    }
}

/// The description the spec hash covers: one `key=value` line per setting, in a fixed order,
/// durations in whole milliseconds and numbers in Rust's shortest round-trip form, so the text
/// (and the hash) depends on the settings alone, never on how a library formats durations.
fn hashed_description(spec: &JobSpec) -> String {
    let ms = crate::schedule::duration_ms;
    let mut text = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(text, "{key}={value}");
    };
    match (&spec.planner, &spec.schedule) {
        (Some(_), _) | (None, None) => line("schedule", &"planner_hook"),
        (None, Some(Schedule::Every { cadence, offset })) => line(
            "schedule",
            &format_args!(
                "every cadence_ms={} offset_ms={}",
                ms(*cadence),
                ms(*offset)
            ),
        ),
        (None, Some(Schedule::Cron(cron))) => {
            line("schedule", &format_args!("cron {}", cron.pattern()))
        }
    }
    line(
        "time_zone",
        &spec.schedule.as_ref().map_or("UTC", Schedule::time_zone),
    );
    line("stagger_ms", &ms(spec.stagger));
    line("schedule_delay_ms", &ms(spec.schedule_delay));
    match spec.catch_up {
        CatchUp::LatestOnly => line("catch_up", &"latest_only"),
        CatchUp::EveryPlan {
            window,
            max_plans_per_tick,
        } => line(
            "catch_up",
            &format_args!(
                "every_plan window_ms={} max_plans_per_tick={max_plans_per_tick}",
                ms(window)
            ),
        ),
    }
    line("max_attempts", &spec.max_attempts);
    match &spec.backoff {
        Backoff::List(delays) => {
            let delays: Vec<String> = delays.iter().map(|d| ms(*d).to_string()).collect();
            line("backoff", &format_args!("list_ms {}", delays.join(",")))
        }
        Backoff::Exponential {
            base,
            factor,
            cap,
            jitter,
        } => line(
            "backoff",
            &format_args!(
                "exponential base_ms={} factor={factor} cap_ms={} jitter={jitter}",
                ms(*base),
                ms(*cap)
            ),
        ),
    }
    line("run_timeout_ms", &ms(spec.run_timeout));
    line("stale_timeout_ms", &ms(spec.stale_timeout));
    line("heartbeat_interval_ms", &ms(spec.heartbeat_interval));
    line("allow_stale_reentry", &spec.allow_stale_reentry);
    line("supersede_failed", &spec.supersede_failed);
    // New settings go below, each written only when not at its default (see `JobDescription`).
    if spec.overlap != OverlapPolicy::default() {
        line("overlap", &spec.overlap);
    }
    if let Some(n) = spec.max_concurrent {
        line("max_concurrent", &n);
    }
    match spec.keep_finished {
        None => {}
        Some(Some(age)) => line("keep_finished_ms", &ms(age)),
        Some(None) => line("keep_finished", &"forever"),
    }
    text
}

/// The catch-up mode as registry text.
fn catch_up_text(catch_up: CatchUp) -> String {
    match catch_up {
        CatchUp::LatestOnly => "latest_only".into(),
        CatchUp::EveryPlan {
            window,
            max_plans_per_tick,
        } => format!(
            "every_plan window={} max_plans_per_tick={max_plans_per_tick}",
            fmt_duration(window)
        ),
    }
}

/// The backoff as registry text.
fn backoff_text(backoff: &Backoff) -> String {
    match backoff {
        Backoff::List(delays) => {
            let delays: Vec<String> = delays.iter().map(|d| fmt_duration(*d)).collect();
            format!("list {}", delays.join(","))
        }
        Backoff::Exponential {
            base,
            factor,
            cap,
            jitter,
        } => format!(
            "exponential base={} factor={factor} cap={} jitter={jitter}",
            fmt_duration(*base),
            fmt_duration(*cap)
        ),
    }
}

/// 64-bit FNV-1a of `text`, as 16 hex digits: fixed constants, so every process and version
/// computes the same value (unlike `DefaultHasher`, seeded per process).
fn spec_hash(text: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = text
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// One job across the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredJob {
    /// The job's name.
    pub name: String,
    /// The settings last registered by a live runner (by any runner when none is live).
    pub spec: JobDescription,
    /// The distinct specs among live runners, most runners first; empty when no live runner
    /// has the job.
    pub variants: Vec<SpecVariant>,
    /// Whether live runners disagree on the spec (more than one variant): a rolling deploy in
    /// progress, or a runner left behind. Reported, never resolved by the runners.
    pub conflicting: bool,
    /// Every runner that registered the job (live, gone or stopped), by id.
    pub runners: Vec<(String, RunnerState)>,
}

/// One spec of a job and the live runners that registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecVariant {
    /// The spec.
    pub spec: JobDescription,
    /// The live runners that run the job with it, sorted.
    pub runners: Vec<String>,
}

/// One `(runner, job)` row of the registry, as a store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegistryRow {
    /// The runner.
    pub(crate) runner_id: String,
    /// The runner's state at the time of the read.
    pub(crate) runner_state: RunnerState,
    /// The job as that runner registered it.
    pub(crate) job: JobDescription,
    /// When it registered it (database clock).
    pub(crate) registered_at: DateTime<Utc>,
}

/// Groups registry rows into jobs, sorted by name: the variants among live runners, and
/// whether they conflict.
pub(crate) fn registered_jobs(rows: Vec<RegistryRow>) -> Vec<RegisteredJob> {
    let mut by_job: BTreeMap<String, Vec<RegistryRow>> = BTreeMap::new();
    for row in rows {
        by_job.entry(row.job.name.clone()).or_default().push(row);
    }
    by_job
        .into_iter()
        .filter_map(|(name, mut rows)| {
            rows.sort_by(|a, b| a.runner_id.cmp(&b.runner_id));
            let live = |row: &&RegistryRow| row.runner_state == RunnerState::Live;
            let shown = rows
                .iter()
                .filter(live)
                .max_by_key(|row| row.registered_at)
                .or_else(|| rows.iter().max_by_key(|row| row.registered_at))?
                .job
                .clone();
            let mut variants: Vec<SpecVariant> = Vec::new();
            for row in rows.iter().filter(live) {
                match variants
                    .iter_mut()
                    .find(|v| v.spec.spec_hash == row.job.spec_hash)
                {
                    Some(variant) => variant.runners.push(row.runner_id.clone()),
                    None => variants.push(SpecVariant {
                        spec: row.job.clone(),
                        runners: vec![row.runner_id.clone()],
                    }),
                }
            }
            variants.sort_by(|a, b| {
                b.runners
                    .len()
                    .cmp(&a.runners.len())
                    .then_with(|| a.spec.spec_hash.cmp(&b.spec.spec_hash))
            });
            Some(RegisteredJob {
                name,
                spec: shown,
                conflicting: variants.len() > 1,
                variants,
                runners: rows
                    .iter()
                    .map(|row| (row.runner_id.clone(), row.runner_state))
                    .collect(),
            })
        })
        .collect()
}

/// The spec conflicts a runner has logged, so each is logged once: again only when the set of
/// live variants of the job changes, and once more when it resolves.
#[derive(Debug, Default)]
pub(crate) struct ConflictLog {
    /// Job name -> the variants' hashes last reported.
    reported: HashMap<String, Vec<String>>,
}

impl ConflictLog {
    /// Compares with the jobs just read (the runner's own jobs): returns the conflicts not
    /// reported yet, and the names of jobs whose reported conflict has resolved.
    pub(crate) fn update<'a>(
        &mut self,
        jobs: impl IntoIterator<Item = &'a RegisteredJob>,
    ) -> (Vec<&'a RegisteredJob>, Vec<String>) {
        let mut new = Vec::new();
        let mut seen = HashMap::new();
        for job in jobs {
            if !job.conflicting {
                continue;
            }
            let hashes: Vec<String> = job
                .variants
                .iter()
                .map(|v| v.spec.spec_hash.clone())
                .collect();
            if self.reported.get(&job.name) != Some(&hashes) {
                new.push(job);
            }
            seen.insert(job.name.clone(), hashes);
        }
        let mut resolved: Vec<String> = self
            .reported
            .keys()
            .filter(|name| !seen.contains_key(*name))
            .cloned()
            .collect();
        resolved.sort();
        self.reported = seen;
        (new, resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::JobContext;
    use crate::handler::JobOutput;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn spec(every: &str, attempts: u32) -> JobSpec {
        JobSpec::builder("report")
            .every(every)
            .max_attempts(attempts)
            .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(0)) })
            .build()
            .unwrap()
    }

    #[test]
    fn a_runner_is_gone_after_three_silent_intervals_and_stopped_once_it_says_so() {
        let seen = at("2026-11-30T10:00:00Z");
        let interval = Duration::from_secs(10);
        let state = |now: &str| RunnerState::at(seen, None, interval, at(now));
        assert_eq!(state("2026-11-30T10:00:30Z"), RunnerState::Live);
        assert_eq!(state("2026-11-30T10:00:30.001Z"), RunnerState::Gone);
        assert_eq!(
            RunnerState::at(seen, Some(seen), interval, seen),
            RunnerState::Stopped
        );
    }

    /// Every setting given, so a change of a builder default does not move the pinned hash.
    fn pinned_spec() -> JobSpec {
        pinned_builder()
            .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(0)) })
            .build()
            .unwrap()
    }

    /// [`pinned_spec`]'s settings, before its handler.
    fn pinned_builder() -> crate::spec::JobSpecBuilder {
        JobSpec::builder("report")
            .every("5m")
            .max_attempts(3)
            .backoff(Backoff::exponential(
                Duration::from_secs(30),
                2.0,
                Duration::from_secs(600),
            ))
            .run_timeout(Duration::from_secs(60))
            .stale_timeout(Duration::from_secs(120))
            .heartbeat_interval(Duration::from_secs(10))
            .allow_stale_reentry(true)
            .supersede_failed(false)
    }

    const PINNED_DESCRIPTION: &str = "\
schedule=every cadence_ms=300000 offset_ms=0
time_zone=UTC
stagger_ms=0
schedule_delay_ms=0
catch_up=latest_only
max_attempts=3
backoff=exponential base_ms=30000 factor=2 cap_ms=600000 jitter=0.1
run_timeout_ms=60000
stale_timeout_ms=120000
heartbeat_interval_ms=10000
allow_stale_reentry=true
supersede_failed=false
";

    #[test]
    fn the_hash_is_fixed_by_the_description_alone() {
        let a = JobDescription::of(&spec("5m", 3));
        assert_eq!(a, JobDescription::of(&spec("5m", 3)));
        // FNV-1a reference values: the hash never depends on the process.
        assert_eq!(spec_hash(""), "cbf29ce484222325");
        assert_eq!(spec_hash("a"), "af63dc4c8601ec8c");
        assert_eq!(a.spec_hash, spec_hash(&a.spec));
        assert!(
            a.spec.starts_with(
                "schedule=every cadence_ms=300000 offset_ms=0\ntime_zone=UTC\nstagger_ms=0\n"
            ),
            "{}",
            a.spec
        );
        // Pinned: the same settings hash the same in every later version.
        let pinned = JobDescription::of(&pinned_spec());
        assert_eq!(
            pinned.spec, PINNED_DESCRIPTION,
            "the description of existing settings never changes"
        );
        assert_eq!(pinned.spec_hash, "5ccb7ebc8e1c1f09");
        assert_ne!(a.spec_hash, JobDescription::of(&spec("10m", 3)).spec_hash);
        assert_ne!(a.spec_hash, JobDescription::of(&spec("5m", 4)).spec_hash);
    }

    #[test]
    fn settings_added_later_change_the_hash_only_away_from_their_defaults() {
        let with = |f: fn(crate::spec::JobSpecBuilder) -> crate::spec::JobSpecBuilder| {
            JobDescription::of(
                &f(pinned_builder())
                    .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(0)) })
                    .build()
                    .unwrap(),
            )
        };
        let pinned = JobDescription::of(&pinned_spec());
        // At their defaults: the description (and hash) of an older version.
        assert_eq!(with(|b| b.overlap(OverlapPolicy::Skip)), pinned);
        let changed = [
            (
                with(|b| b.overlap(OverlapPolicy::AllowAll)),
                "overlap=allow_all\n",
            ),
            (with(|b| b.max_concurrent(4)), "max_concurrent=4\n"),
            (
                with(|b| b.keep_finished(Duration::from_secs(86_400))),
                "keep_finished_ms=86400000\n",
            ),
            (
                with(|b| b.keep_finished_forever()),
                "keep_finished=forever\n",
            ),
        ];
        let mut hashes: Vec<&str> = vec![&pinned.spec_hash];
        for (described, line) in &changed {
            assert_eq!(described.spec, format!("{PINNED_DESCRIPTION}{line}"));
            hashes.push(&described.spec_hash);
        }
        hashes.sort();
        hashes.dedup();
        assert_eq!(
            hashes.len(),
            1 + changed.len(),
            "each setting moves the hash"
        );
        // The retention reads back from the description.
        assert_eq!(pinned.keep_finished(), None);
        assert_eq!(changed[1].0.keep_finished(), None);
        assert_eq!(
            changed[2].0.keep_finished(),
            Some(Some(Duration::from_secs(86_400)))
        );
        assert_eq!(changed[3].0.keep_finished(), Some(None));
    }

    #[test]
    fn the_stored_schedule_gives_the_same_plans_as_the_spec() {
        let job = JobSpec::builder("nightly")
            .cron("30 2 * * *")
            .time_zone("Europe/Berlin")
            .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(0)) })
            .build()
            .unwrap();
        let described = JobDescription::of(&job);
        assert_eq!(described.schedule.as_deref(), Some("cron 30 2 * * *"));
        assert_eq!(described.time_zone, "Europe/Berlin");
        let after = at("2026-03-28T12:00:00Z");
        assert_eq!(
            described.upcoming(after, 3).unwrap(),
            job.upcoming(after, 3)
        );
    }

    fn row(runner: &str, state: RunnerState, spec: &JobSpec, registered: &str) -> RegistryRow {
        RegistryRow {
            runner_id: runner.into(),
            runner_state: state,
            job: JobDescription::of(spec),
            registered_at: at(registered),
        }
    }

    #[test]
    fn live_runners_with_different_specs_conflict_and_gone_ones_do_not_count() {
        let (old, new) = (spec("5m", 3), spec("10m", 3));
        let jobs = registered_jobs(vec![
            row("a", RunnerState::Live, &old, "2026-11-30T10:00:00Z"),
            row("b", RunnerState::Live, &new, "2026-11-30T10:01:00Z"),
            row("c", RunnerState::Live, &old, "2026-11-30T09:00:00Z"),
        ]);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert!(job.conflicting);
        assert_eq!(job.variants.len(), 2);
        assert_eq!(
            job.variants[0].runners,
            vec!["a", "c"],
            "most runners first"
        );
        assert_eq!(
            job.spec.schedule.as_deref(),
            Some("every 10m"),
            "newest registration"
        );

        let settled = registered_jobs(vec![
            row("a", RunnerState::Gone, &old, "2026-11-30T10:00:00Z"),
            row("b", RunnerState::Live, &new, "2026-11-30T09:00:00Z"),
            row("c", RunnerState::Stopped, &old, "2026-11-30T10:02:00Z"),
        ]);
        assert!(!settled[0].conflicting);
        assert_eq!(settled[0].variants.len(), 1);
        assert_eq!(
            settled[0].spec.schedule.as_deref(),
            Some("every 10m"),
            "a live runner's"
        );
        assert_eq!(settled[0].runners.len(), 3);

        let nobody = registered_jobs(vec![row(
            "a",
            RunnerState::Gone,
            &old,
            "2026-11-30T10:00:00Z",
        )]);
        assert!(nobody[0].variants.is_empty() && !nobody[0].conflicting);
        assert_eq!(nobody[0].spec.schedule.as_deref(), Some("every 5m"));
    }

    #[test]
    fn a_conflict_is_logged_once_until_its_variants_change_or_it_resolves() {
        let (old, new, newer) = (spec("5m", 3), spec("10m", 3), spec("15m", 3));
        let jobs = |specs: &[(&str, &JobSpec)]| {
            registered_jobs(
                specs
                    .iter()
                    .map(|(runner, spec)| {
                        row(runner, RunnerState::Live, spec, "2026-11-30T10:00:00Z")
                    })
                    .collect(),
            )
        };
        let mut log = ConflictLog::default();
        let deploy = jobs(&[("a", &old), ("b", &new)]);
        assert_eq!(log.update(&deploy).0.len(), 1, "reported");
        assert_eq!(log.update(&deploy), (vec![], vec![]), "not again");
        let third = jobs(&[("a", &old), ("b", &new), ("c", &newer)]);
        assert_eq!(log.update(&third).0.len(), 1, "a new variant is news");
        let done = jobs(&[("a", &newer), ("b", &newer), ("c", &newer)]);
        assert_eq!(
            log.update(&done),
            (vec![], vec!["report".to_owned()]),
            "resolved once"
        );
        assert_eq!(log.update(&done), (vec![], vec![]));
    }
}
