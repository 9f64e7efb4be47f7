//! Settings applied to the code's values: the scheduler's through
//! [`SchedulerBuilder::config`](crate::SchedulerBuilder::config), a job's through
//! [`JobOverrides::apply`].

use std::time::Duration;

use super::{Config, JobOverrides, Keep};
use crate::control::OverlapPolicy;
use crate::error::{Error, Result};
use crate::plan::CatchUp;
use crate::retry::{Backoff, DbRetry};
use crate::schedule::Schedule;
use crate::spec::JobSpec;

/// The EveryPlan window when `catch_up = "every_plan"` names none: 1 day.
pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(86_400);
/// The EveryPlan cap when `catch_up = "every_plan"` names none: 10.
pub const DEFAULT_CATCH_UP_MAX_PLANS: usize = 10;

impl Config {
    /// The database retry policy: `base` with the file's values laid over it.
    pub fn db_retry(&self, base: DbRetry) -> DbRetry {
        let s = &self.scheduler;
        DbRetry {
            initial: s.db_retry_initial.unwrap_or(base.initial),
            max: s.db_retry_max.unwrap_or(base.max),
            give_up_after: s.db_retry_give_up_after.unwrap_or(base.give_up_after),
        }
    }

    /// The retention settings: `base` with the file's values laid over it.
    pub fn retention(&self, base: crate::Retention) -> crate::Retention {
        let r = &self.retention;
        crate::Retention {
            interval: r.interval.unwrap_or(base.interval),
            keep_finished: r
                .keep_finished
                .map_or(base.keep_finished, |k| k.as_option()),
            keep_dead: r.keep_dead.map_or(base.keep_dead, |k| k.as_option()),
            keep_runners: r.keep_runners.map_or(base.keep_runners, |k| k.as_option()),
            batch_size: r.batch_size.unwrap_or(base.batch_size),
            keep_skips: r.keep_skips.map_or(base.keep_skips, |k| k.as_option()),
        }
    }
}

impl JobOverrides {
    /// `spec` with these overrides, checked as [`JobSpecBuilder::build`](crate::JobSpecBuilder::build)
    /// checks the code's settings (an error names the job and the field).
    pub fn apply(&self, spec: &JobSpec) -> Result<JobSpec> {
        let name = spec.name().to_owned();
        let fail =
            |message: String| Error::invalid_job(&name, format!("in the settings: {message}"));
        let mut builder = spec.to_builder();
        if self.schedule.is_some() || self.time_zone.is_some() {
            let text = match (&self.schedule, spec.schedule()) {
                (Some(text), _) => text.clone(),
                (None, Some(schedule)) => schedule.to_text(),
                (None, None) => return Err(fail("time_zone needs a schedule".into())),
            };
            let zone = self
                .time_zone
                .as_deref()
                .or(spec.schedule().map(Schedule::time_zone))
                .unwrap_or("UTC");
            let zone = if text.trim_start().starts_with("every") && self.time_zone.is_none() {
                "UTC"
            } else {
                zone
            };
            let schedule = Schedule::from_text(&text, zone).map_err(|e| match e {
                Error::InvalidConfig(m) => fail(format!("schedule: {m}")),
                other => other,
            })?;
            if matches!(schedule, Schedule::Every { .. }) && zone != "UTC" {
                return Err(fail(format!(
                    "time_zone `{zone}` applies to cron schedules: a cadence counts from UTC"
                )));
            }
            builder = builder.schedule(schedule);
        }
        if let Some(stagger) = self.stagger {
            builder = builder.stagger(&crate::schedule::fmt_duration(stagger));
        }
        if let Some(delay) = self.schedule_delay {
            builder = builder.schedule_delay(delay);
        }
        if let Some(catch_up) = self.catch_up(spec.catch_up()).map_err(fail)? {
            builder = builder.catch_up(catch_up);
        }
        if let Some(timeout) = self.run_timeout {
            builder = builder.run_timeout(timeout);
        }
        if let Some(timeout) = self.stale_timeout {
            builder = builder.stale_timeout(timeout);
        }
        if let Some(interval) = self.heartbeat_interval {
            builder = builder.heartbeat_interval(interval);
        }
        if let Some(attempts) = self.max_attempts {
            builder = builder.max_attempts(attempts);
        }
        if let Some(backoff) = self.backoff().map_err(fail)? {
            builder = builder.backoff(backoff);
        }
        if let Some(allow) = self.allow_stale_reentry {
            builder = builder.allow_stale_reentry(allow);
        }
        if let Some(supersede) = self.supersede_failed {
            builder = builder.supersede_failed(supersede);
        }
        if let Some(name) = &self.overlap {
            builder = builder.overlap(overlap_policy(name).map_err(fail)?);
        }
        if let Some(n) = self.max_concurrent {
            builder = builder.max_concurrent(n);
        }
        match self.keep_finished {
            Some(Keep::For(age)) => builder = builder.keep_finished(age),
            Some(Keep::Forever) => builder = builder.keep_finished_forever(),
            None => {}
        }
        builder.build().map_err(|e| match e {
            Error::InvalidJob { job, message } => {
                Error::invalid_job(&job, format!("in the settings: {message}"))
            }
            other => other,
        })
    }

    /// The catch-up mode these overrides give, from the code's `current` one; `None` when they
    /// name none.
    fn catch_up(&self, current: CatchUp) -> std::result::Result<Option<CatchUp>, String> {
        let (window, max) = match current {
            CatchUp::EveryPlan {
                window,
                max_plans_per_tick,
            } => (window, max_plans_per_tick),
            CatchUp::LatestOnly => (DEFAULT_CATCH_UP_WINDOW, DEFAULT_CATCH_UP_MAX_PLANS),
        };
        let every_plan = || CatchUp::EveryPlan {
            window: self.catch_up_window.unwrap_or(window),
            max_plans_per_tick: self.catch_up_max_plans_per_tick.unwrap_or(max),
        };
        let tuned = self.catch_up_window.is_some() || self.catch_up_max_plans_per_tick.is_some();
        match self.catch_up.as_deref().map(str::trim) {
            Some("latest_only") if tuned => Err(
                "catch_up_window and catch_up_max_plans_per_tick apply to catch_up = \"every_plan\""
                    .into(),
            ),
            Some("latest_only") => Ok(Some(CatchUp::LatestOnly)),
            Some("every_plan") => Ok(Some(every_plan())),
            Some(other) => Err(format!(
                "catch_up `{other}` is not a mode: write \"latest_only\" or \"every_plan\""
            )),
            None if tuned && current == CatchUp::LatestOnly => Err(
                "catch_up_window and catch_up_max_plans_per_tick need catch_up = \"every_plan\""
                    .into(),
            ),
            None if tuned => Ok(Some(every_plan())),
            None => Ok(None),
        }
    }

    /// The backoff these overrides give: a list, or exponential from all three of base, factor
    /// and cap; `None` when they name none.
    fn backoff(&self) -> std::result::Result<Option<Backoff>, String> {
        let exponential = (self.backoff_base, self.backoff_factor, self.backoff_cap);
        match (&self.backoff, exponential) {
            (Some(_), (None, None, None)) | (None, (None, None, None)) => Ok(self
                .backoff
                .as_ref()
                .map(|delays| Backoff::List(delays.clone()))),
            (Some(_), _) => Err(
                "backoff (a list) and backoff_base/backoff_factor/backoff_cap (exponential) exclude each other"
                    .into(),
            ),
            (None, (Some(base), Some(factor), Some(cap))) => {
                Ok(Some(Backoff::exponential(base, factor, cap)))
            }
            (None, _) => Err(
                "an exponential backoff needs all of backoff_base, backoff_factor and backoff_cap"
                    .into(),
            ),
        }
    }
}

/// An overlap policy by its name (`skip`, `buffer_one`, `allow_all`, `cancel_other`).
fn overlap_policy(name: &str) -> std::result::Result<OverlapPolicy, String> {
    let all = [
        OverlapPolicy::Skip,
        OverlapPolicy::BufferOne,
        OverlapPolicy::AllowAll,
        OverlapPolicy::CancelOther,
    ];
    all.into_iter()
        .find(|policy| policy.as_str() == name.trim())
        .ok_or_else(|| {
            format!(
                "overlap `{name}` is not a policy: write \"skip\", \"buffer_one\", \"allow_all\" or \"cancel_other\""
            )
        })
}
