//! One job at a glance, as the JSON API and the dashboard both show it.
//!
//! - [`JobSummary`]: a job's schedule, next plan, pauses, row counts, last success, recent
//!   failures and the runners that run it.
//! - [`JobRunner`]: one runner of a job and whether it is live, gone or stopped.
//! - [`job_summaries`] / [`job_summary`]: gather them from the scheduler's public reads.
//!
//! Jobs come from the job registry in the database, so a summary covers every job of the
//! cluster, also those only other replicas run ([`JobSummary::runs_here`] tells). Every time is
//! read against the database clock.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Serialize, Serializer};

use crate::control::{Pause, RegisteredJob};
use crate::error::{Error, Result};
use crate::execution::Status;
use crate::scheduler::Scheduler;
use crate::store::ExecutionFilter;

/// How far back [`JobSummary::failures_24h`] counts.
const FAILURE_WINDOW: TimeDelta = TimeDelta::hours(24);

/// One job at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JobSummary {
    /// The job's name.
    pub(crate) name: String,
    /// The schedule as text (`every 5m`, `cron 0 3 * * *`); `None` for a planner-hook job.
    pub(crate) schedule: Option<String>,
    /// The IANA time zone the schedule is read in (`UTC` for a cadence).
    pub(crate) time_zone: String,
    /// The next plan time after the database clock's now; `None` for a planner-hook job.
    pub(crate) next_plan: Option<DateTime<Utc>>,
    /// Whether the whole job is paused.
    pub(crate) paused: bool,
    /// How many of its scopes are paused on their own.
    pub(crate) paused_scopes: usize,
    /// Row counts by status, every status listed (zero included), in lifecycle order.
    #[serde(serialize_with = "counts_as_map")]
    pub(crate) counts: Vec<(Status, i64)>,
    /// When the newest successful plan finished; `None` if none succeeded (or was pruned).
    pub(crate) last_success_at: Option<DateTime<Utc>>,
    /// FAILED and DEAD plans with a plan time in the last 24 hours (database clock).
    pub(crate) failures_24h: u64,
    /// Every runner that registered the job, by id.
    pub(crate) runners: Vec<JobRunner>,
    /// Whether live runners registered different specs of the job (a rolling deploy).
    pub(crate) conflicting: bool,
    /// Whether this scheduler runs the job, so actions (pause, trigger, backfill) can be asked
    /// of it here.
    pub(crate) runs_here: bool,
}

/// One runner of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct JobRunner {
    /// The runner id.
    pub(crate) id: String,
    /// `live`, `gone` or `stopped`.
    pub(crate) state: &'static str,
}

impl JobSummary {
    /// The count of `status`.
    pub(crate) fn count(&self, status: Status) -> i64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}

fn counts_as_map<S: Serializer>(counts: &[(Status, i64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(counts.iter().map(|(status, n)| (status.as_str(), n)))
}

/// The summary of every job in the registry, by name.
pub(crate) async fn job_summaries(scheduler: &Scheduler) -> Result<Vec<JobSummary>> {
    let now = scheduler.store().db_now().await?;
    let jobs = scheduler.registered_jobs(None).await?;
    let pauses = scheduler.pauses(None).await?;
    let failing = failing_since(scheduler, now).await?;
    let local = scheduler.job_names();
    let mut summaries = Vec::with_capacity(jobs.len());
    for job in &jobs {
        summaries.push(summarize(scheduler, job, &pauses, &failing, &local, now).await?);
    }
    Ok(summaries)
}

/// The summary of `name`; [`Error::UnknownJob`] when no runner registered it.
pub(crate) async fn job_summary(scheduler: &Scheduler, name: &str) -> Result<JobSummary> {
    let now = scheduler.store().db_now().await?;
    let job = registered_job(scheduler, name).await?;
    let pauses = scheduler.pauses(Some(name)).await?;
    let failing = failing_since(scheduler, now).await?;
    summarize(
        scheduler,
        &job,
        &pauses,
        &failing,
        &scheduler.job_names(),
        now,
    )
    .await
}

/// Per job, the FAILED and DEAD plans of the last [`FAILURE_WINDOW`], in one statement.
async fn failing_since(scheduler: &Scheduler, now: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
    scheduler
        .store()
        .execution_count_failing(now - FAILURE_WINDOW)
        .await
}

/// `name` as the registry knows it; [`Error::UnknownJob`] when no runner registered it.
pub(crate) async fn registered_job(scheduler: &Scheduler, name: &str) -> Result<RegisteredJob> {
    scheduler
        .registered_jobs(Some(name))
        .await?
        .into_iter()
        .find(|job| job.name == name)
        .ok_or_else(|| Error::UnknownJob(name.to_owned()))
}

async fn summarize(
    scheduler: &Scheduler,
    job: &RegisteredJob,
    pauses: &[Pause],
    failing: &[(String, i64)],
    local: &[String],
    now: DateTime<Utc>,
) -> Result<JobSummary> {
    let name = job.name.as_str();
    let by_status: HashMap<Status, i64> = scheduler.counts(Some(name)).await?.into_iter().collect();
    let counts = Status::ALL
        .iter()
        .map(|s| (*s, by_status.get(s).copied().unwrap_or(0)))
        .collect();
    let last_success_at = scheduler
        .executions(&ExecutionFilter {
            job: Some(name.to_owned()),
            status: Some(Status::Success),
            limit: 1,
            ..ExecutionFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .and_then(|row| row.finished_at);
    let failures_24h = failing
        .iter()
        .find(|(job, _)| job == name)
        .map_or(0, |(_, n)| (*n).max(0) as u64);
    let next_plan = job
        .spec
        .upcoming(now, 1)?
        .into_iter()
        .next()
        .map(|p| p.plan_time);
    let job_pauses = pauses.iter().filter(|p| p.job == name);
    Ok(JobSummary {
        name: name.to_owned(),
        schedule: job.spec.schedule.clone(),
        time_zone: job.spec.time_zone.clone(),
        next_plan,
        paused: job_pauses.clone().any(|p| p.scope.is_none()),
        paused_scopes: job_pauses.filter(|p| p.scope.is_some()).count(),
        counts,
        last_success_at,
        failures_24h,
        runners: job
            .runners
            .iter()
            .map(|(id, state)| JobRunner {
                id: id.clone(),
                state: state.as_str(),
            })
            .collect(),
        conflicting: job.conflicting,
        runs_here: local.iter().any(|l| l == name),
    })
}
