//! Which day partitions of a time-partitioned history the retention service creates and drops:
//! pure decisions, no I/O (the store writes them).
//!
//! - [`partition_plan`]: the days to create ahead and the days past retention, given the clock,
//!   the partitions that exist and the retention that applies.
//! - [`PartitionPlan`]: its answer.
//!
//! A day is dropped only once all of it is older than the **longest** retention the service
//! applies (the default `keep_finished`, every job's own finite one, `keep_dead`), so by then
//! the batched prune would have deleted nearly every row of it; the few it keeps (not finished,
//! awaiting a replay, the newest of their scope, a job kept forever) are moved to the DEFAULT
//! partition by the store before the drop. With the default `keep_finished` forever nothing is
//! dropped: every row would be a keeper.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};

use crate::store::PartitionKeep;

/// What one run of the retention service does to the day partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionPlan {
    /// Days (today and the next ones) that need a partition, oldest first.
    pub(crate) create: Vec<NaiveDate>,
    /// Days whose partition is entirely past retention, oldest first.
    pub(crate) drop: Vec<NaiveDate>,
}

/// The longest retention `keep` applies to rows it lets go, or `None` when the default
/// `keep_finished` keeps rows forever (then no day is ever past retention).
pub(crate) fn longest_retention(keep: &PartitionKeep) -> Option<Duration> {
    let default = keep.finished?;
    let own = keep.finished_own.iter().filter_map(|(_, keep)| *keep);
    Some(own.chain(keep.dead).fold(default, Duration::max))
}

/// The partitions to create (today and the `ahead` days after it, UTC, those missing from
/// `existing`) and to drop (existing days that ended at least the longest retention before
/// `now`).
pub(crate) fn partition_plan(
    now: DateTime<Utc>,
    existing: &[NaiveDate],
    keep: &PartitionKeep,
    ahead: u32,
) -> PartitionPlan {
    let today = now.date_naive();
    let last = today + Days::new(u64::from(ahead));
    let create = today
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| !existing.contains(d))
        .collect();
    let mut drop: Vec<NaiveDate> = match longest_retention(keep)
        .and_then(|d| TimeDelta::from_std(d).ok())
        .and_then(|d| now.checked_sub_signed(d))
    {
        Some(cutoff) => existing
            .iter()
            .copied()
            .filter(|day| {
                let end = (*day + Days::new(1))
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc());
                end.is_some_and(|end| end <= cutoff)
            })
            .collect(),
        None => Vec::new(),
    };
    drop.sort();
    PartitionPlan { create, drop }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn keep(finished: Option<Duration>, dead: Option<Duration>) -> PartitionKeep {
        PartitionKeep {
            finished,
            finished_own: Vec::new(),
            dead,
        }
    }

    #[test]
    fn creates_today_and_the_days_ahead_that_are_missing() {
        let now = at("2026-03-10T23:59:00Z");
        let plan = partition_plan(now, &[day("2026-03-11")], &keep(Some(DAY), None), 2);
        assert_eq!(plan.create, vec![day("2026-03-10"), day("2026-03-12")]);
        assert!(plan.drop.is_empty());
    }

    #[test]
    fn drops_only_days_that_ended_the_longest_retention_ago() {
        let now = at("2026-03-10T12:00:00Z");
        let existing = [day("2026-03-07"), day("2026-03-08"), day("2026-03-09")];
        // Two days: 03-08 ended 03-09 00:00, 36 h ago; 03-09 ended 12 h ago.
        let plan = partition_plan(now, &existing, &keep(Some(DAY), Some(DAY)), 0);
        assert_eq!(plan.drop, vec![day("2026-03-07"), day("2026-03-08")]);
        // A longer keep_dead holds them back: 03-07 ended 60 h ago.
        let plan = partition_plan(now, &existing, &keep(Some(DAY), Some(2 * DAY)), 0);
        assert_eq!(plan.drop, vec![day("2026-03-07")]);
    }

    #[test]
    fn a_job_with_a_longer_retention_of_its_own_holds_days_back() {
        let now = at("2026-03-10T00:00:00Z");
        let existing = [day("2026-03-05"), day("2026-03-08")];
        let mut rules = keep(Some(DAY), None);
        rules.finished_own = vec![("monthly".into(), Some(3 * DAY)), ("audit".into(), None)];
        assert_eq!(longest_retention(&rules), Some(3 * DAY));
        let plan = partition_plan(now, &existing, &rules, 0);
        // 03-05 ended 03-06 00:00, four days ago; 03-08 ended one day ago.
        assert_eq!(plan.drop, vec![day("2026-03-05")]);
    }

    #[test]
    fn a_day_ending_exactly_at_the_cutoff_is_past_retention() {
        let now = at("2026-03-10T00:00:00Z");
        let plan = partition_plan(now, &[day("2026-03-08")], &keep(Some(DAY), None), 0);
        assert_eq!(plan.drop, vec![day("2026-03-08")]);
        let plan = partition_plan(now, &[day("2026-03-09")], &keep(Some(DAY), None), 0);
        assert!(
            plan.drop.is_empty(),
            "03-09 ends 03-10 00:00: zero age, not one day"
        );
    }

    #[test]
    fn with_finished_rows_kept_forever_nothing_is_dropped() {
        let now = at("2026-03-10T00:00:00Z");
        let existing = [day("2020-01-01")];
        let plan = partition_plan(now, &existing, &keep(None, Some(DAY)), 1);
        assert!(plan.drop.is_empty());
        assert_eq!(plan.create, vec![day("2026-03-10"), day("2026-03-11")]);
    }
}
