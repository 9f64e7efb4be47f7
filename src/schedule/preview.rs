//! Upcoming plan times of a schedule, for people: the UTC instant that is the plan's identity,
//! the local time it stands for, and when it comes due (after a stagger offset and a delay).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::{Schedule, delta};

/// One plan time of a job, as a preview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedTime {
    /// The plan's identity: the UTC instant stored in `plan_time`.
    pub plan_time: DateTime<Utc>,
    /// The same instant in the schedule's time zone.
    pub local: DateTime<FixedOffset>,
    /// When the plan comes due: `plan_time` plus the scope's stagger offset and the job's
    /// `schedule_delay`.
    pub due_at: DateTime<Utc>,
}

/// The first `n` plans of `schedule` strictly after `after`, each due `lag` after its plan time.
pub(crate) fn upcoming(
    schedule: &Schedule,
    after: DateTime<Utc>,
    n: usize,
    lag: Duration,
) -> Vec<PlannedTime> {
    std::iter::successors(schedule.next_plan(after), |t| schedule.next_plan(*t))
        .take(n)
        .map(|plan_time| PlannedTime {
            plan_time,
            local: schedule.local_time(plan_time),
            due_at: plan_time + delta(lag),
        })
        .collect()
}
