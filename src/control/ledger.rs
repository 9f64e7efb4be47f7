//! The skipped-plan ledger: plan times that were deliberately not run, and why.
//!
//! A plan that ran has its row in `cronlease_executions`; a plan that never ran has none, so
//! without a record "why didn't the 03:00 run happen?" has no answer. The ledger keeps one
//! [`SkipSpan`] per decision, not one row per plan: the plans a catch-up jumped over form one
//! span per scope, and the scopes that jumped the same plans share one row. A day of downtime
//! over 100,000 scopes is a handful of rows.
//!
//! Who records what:
//! - A tick records the spans its catch-up mode skips ([`SkipReason::LatestOnly`],
//!   [`SkipReason::OutsideWindow`], [`SkipReason::ScheduleChange`]), with the plans it claims
//!   past them. Replicas that decide the same record the same row once.
//! - Lifting a pause records the paused interval ([`SkipReason::Paused`]) in the same statement.
//! - A plan skipped because its scope was still running (the overlap policy) has its own
//!   execution row, status `SKIPPED`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::schedule::Schedule;
use crate::scope::Scope;

/// Why plans were not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SkipReason {
    /// An operator paused the job or the scope; the span is the paused interval.
    Paused,
    /// The scope's previous plan was still running (the job's overlap policy).
    Overlap,
    /// [`CatchUp::LatestOnly`](crate::CatchUp::LatestOnly) ran the newest due plan and skipped
    /// the older ones missed while no runner planned the job.
    LatestOnly,
    /// The plans were older than the [`CatchUp::EveryPlan`](crate::CatchUp::EveryPlan) window
    /// when a runner came to them.
    OutsideWindow,
    /// The schedule changed: the plans between the last plan of the old schedule and the first
    /// one run under the new schedule.
    ScheduleChange,
}

impl SkipReason {
    /// The stored form: `paused`, `overlap`, `latest_only`, `outside_window`,
    /// `schedule_change`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::Paused => "paused",
            SkipReason::Overlap => "overlap",
            SkipReason::LatestOnly => "latest_only",
            SkipReason::OutsideWindow => "outside_window",
            SkipReason::ScheduleChange => "schedule_change",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SkipReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "paused" => SkipReason::Paused,
            "overlap" => SkipReason::Overlap,
            "latest_only" => SkipReason::LatestOnly,
            "outside_window" => SkipReason::OutsideWindow,
            "schedule_change" => SkipReason::ScheduleChange,
            other => return Err(format!("unknown skip reason `{other}`")),
        })
    }
}

/// One ledger row: plans of a job (one scope, or many) that were not run, for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkipSpan {
    /// The job's name.
    pub job: String,
    /// The scope; `None` when the row stands for several scopes (`scopes` says how many): the
    /// job's whole pause, or the scopes whose catch-up skipped the same plans.
    pub scope: Option<Scope>,
    /// Why.
    pub reason: SkipReason,
    /// The first plan time skipped; for [`SkipReason::Paused`], when the pause began.
    pub from: DateTime<Utc>,
    /// The last plan time skipped (inclusive); for [`SkipReason::Paused`], when it was lifted
    /// (exclusive).
    pub to: DateTime<Utc>,
    /// Plans skipped per scope, at least (counting stops at [`SkipSpan::MAX_COUNTED`]); `None`
    /// for a pause, whose plans follow from the schedule.
    pub plans: Option<u64>,
    /// How many scopes the row stands for: 1 for a scope's own row; for a whole-job pause, 0
    /// (every scope).
    pub scopes: u64,
    /// Free text: who paused and why, for a pause.
    pub detail: String,
    /// When it was recorded (database clock).
    pub recorded_at: DateTime<Utc>,
}

impl SkipSpan {
    /// Counting the plans of a span stops here: a schedule of every second skipped for a year
    /// is not walked to the end.
    pub const MAX_COUNTED: u64 = 1_000_000;

    /// A span to record: `scope` `None` stands for several scopes (give their number with
    /// [`counts`](Self::counts)); `recorded_at` is set by the store.
    pub fn new(
        job: impl Into<String>,
        scope: Option<Scope>,
        reason: SkipReason,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        SkipSpan {
            job: job.into(),
            scopes: u64::from(scope.is_some()),
            scope,
            reason,
            from,
            to,
            plans: None,
            detail: String::new(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// With the plans skipped per scope and the number of scopes the row stands for.
    pub fn counts(mut self, plans: Option<u64>, scopes: u64) -> Self {
        self.plans = plans;
        self.scopes = scopes;
        self
    }

    /// Whether the span accounts for the plan at `plan_time` of a scope, due at `due_at`. A
    /// pause covers the plans that came due while it was in force; other spans cover plan
    /// times.
    pub fn covers(&self, plan_time: DateTime<Utc>, due_at: DateTime<Utc>) -> bool {
        match self.reason {
            SkipReason::Paused => self.from <= due_at && due_at < self.to,
            _ => self.from <= plan_time && plan_time <= self.to,
        }
    }
}

/// The plans one scope's catch-up skipped this tick: the first and last plan time skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CatchUpSkip {
    pub(crate) first: DateTime<Utc>,
    pub(crate) last: DateTime<Utc>,
    pub(crate) reason: SkipReason,
}

/// Gathers one tick's catch-up skips and turns them into few ledger rows: the largest group of
/// scopes that skipped the same plans shares one row, the other scopes get their own.
#[derive(Debug, Default)]
pub(crate) struct SkipCollector {
    groups: HashMap<CatchUpSkip, Vec<Scope>>,
}

impl SkipCollector {
    /// Notes that `scope` skipped `skip`.
    pub(crate) fn note(&mut self, scope: &Scope, skip: CatchUpSkip) {
        self.groups.entry(skip).or_default().push(scope.clone());
    }

    /// Whether nothing was skipped.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Keeps the skips of the scopes `keep` accepts (a runner sharing a job's scopes records
    /// only its own: another runner's plan it has not seen claimed yet is not skipped).
    pub(crate) fn retain(&mut self, keep: impl Fn(&Scope) -> bool) {
        self.groups.retain(|_, scopes| {
            scopes.retain(|scope| keep(scope));
            !scopes.is_empty()
        });
    }

    /// The rows to record for `job` (`recorded_at` is set by the store), counting each span's
    /// plans on `schedule` once.
    pub(crate) fn spans(self, job: &str, schedule: &Schedule) -> Vec<SkipSpan> {
        let shared = self
            .groups
            .iter()
            .filter(|(_, scopes)| scopes.len() > 1)
            .max_by_key(|(skip, scopes)| (scopes.len(), skip.first, skip.last, skip.reason))
            .map(|(skip, _)| *skip);
        let mut groups: Vec<_> = self.groups.into_iter().collect();
        groups.sort_by_key(|(skip, _)| (skip.first, skip.last, skip.reason));
        let mut spans = Vec::new();
        for (skip, mut scopes) in groups {
            let plans = Some(count_plans(schedule, skip.first, skip.last));
            let span = |scope: Option<Scope>, scopes: u64| SkipSpan {
                job: job.to_owned(),
                scope,
                reason: skip.reason,
                from: skip.first,
                to: skip.last,
                plans,
                scopes,
                detail: String::new(),
                recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            };
            if Some(skip) == shared {
                spans.push(span(None, scopes.len() as u64));
            } else {
                scopes.sort();
                spans.extend(scopes.into_iter().map(|scope| span(Some(scope), 1)));
            }
        }
        spans
    }
}

/// The plans of `schedule` in `[first, last]`, counting at most [`SkipSpan::MAX_COUNTED`].
pub(crate) fn count_plans(schedule: &Schedule, first: DateTime<Utc>, last: DateTime<Utc>) -> u64 {
    if last < first {
        return 0;
    }
    if let Some(cadence) = schedule.cadence() {
        let step = cadence.as_millis().max(1) as i64;
        let span = (last - first).num_milliseconds();
        return (span / step + 1).min(SkipSpan::MAX_COUNTED as i64) as u64;
    }
    let mut n = 0;
    let mut cursor = Some(first);
    while let Some(plan) = cursor {
        if plan > last || n == SkipSpan::MAX_COUNTED {
            break;
        }
        n += 1;
        cursor = schedule.next_plan(plan);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn skip(first: &str, last: &str) -> CatchUpSkip {
        CatchUpSkip {
            first: at(first),
            last: at(last),
            reason: SkipReason::LatestOnly,
        }
    }

    #[test]
    fn reasons_round_trip() {
        for reason in [
            SkipReason::Paused,
            SkipReason::Overlap,
            SkipReason::LatestOnly,
            SkipReason::OutsideWindow,
            SkipReason::ScheduleChange,
        ] {
            assert_eq!(reason.as_str().parse::<SkipReason>().unwrap(), reason);
        }
        assert!("tired".parse::<SkipReason>().is_err());
    }

    #[test]
    fn scopes_that_skipped_the_same_plans_share_one_row() {
        let schedule = Schedule::every("1m").unwrap();
        let mut collector = SkipCollector::default();
        for i in 0..100_000 {
            collector.note(
                &Scope::new("tenant", i.to_string()),
                skip("2026-11-29T00:00:00Z", "2026-11-29T23:58:00Z"),
            );
        }
        // One scope ran longer before the downtime: its own, shorter span.
        collector.note(
            &Scope::new("tenant", "late"),
            skip("2026-11-29T01:00:00Z", "2026-11-29T23:58:00Z"),
        );
        let spans = collector.spans("report", &schedule);
        assert_eq!(spans.len(), 2, "{spans:?}");
        let shared = spans.iter().find(|s| s.scope.is_none()).unwrap();
        assert_eq!(shared.scopes, 100_000);
        assert_eq!(shared.plans, Some(24 * 60 - 1));
        let own = spans.iter().find(|s| s.scope.is_some()).unwrap();
        assert_eq!(own.scope, Some(Scope::new("tenant", "late")));
        assert_eq!((own.scopes, own.plans), (1, Some(23 * 60 - 1)));
    }

    #[test]
    fn a_lone_scope_keeps_its_own_row() {
        let schedule = Schedule::every("1h").unwrap();
        let mut collector = SkipCollector::default();
        collector.note(
            &Scope::new("tenant", "1"),
            skip("2026-11-29T01:00:00Z", "2026-11-29T03:00:00Z"),
        );
        let spans = collector.spans("report", &schedule);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].scope, Some(Scope::new("tenant", "1")));
        assert_eq!(spans[0].plans, Some(3));
    }

    #[test]
    fn cron_spans_are_counted_on_the_calendar_and_capped() {
        let weekdays = Schedule::cron("0 9 * * MON-FRI").unwrap();
        // Mon 2026-11-23 09:00 to Mon 2026-11-30 09:00: six weekdays.
        assert_eq!(
            count_plans(
                &weekdays,
                at("2026-11-23T09:00:00Z"),
                at("2026-11-30T09:00:00Z")
            ),
            6
        );
        let every_second = Schedule::cron("* * * * * *").unwrap();
        assert_eq!(
            count_plans(
                &every_second,
                at("2026-01-01T00:00:00Z"),
                at("2026-12-31T00:00:00Z")
            ),
            SkipSpan::MAX_COUNTED
        );
        assert_eq!(
            count_plans(
                &weekdays,
                at("2026-11-30T09:00:00Z"),
                at("2026-11-23T09:00:00Z")
            ),
            0
        );
    }

    #[test]
    fn a_pause_covers_plans_that_came_due_while_it_held() {
        let span = SkipSpan {
            job: "report".into(),
            scope: None,
            reason: SkipReason::Paused,
            from: at("2026-11-29T10:00:00Z"),
            to: at("2026-11-29T11:00:00Z"),
            plans: None,
            scopes: 0,
            detail: String::new(),
            recorded_at: at("2026-11-29T11:00:00Z"),
        };
        let plan = at("2026-11-29T09:59:00Z");
        assert!(
            span.covers(plan, at("2026-11-29T10:00:30Z")),
            "due while paused"
        );
        assert!(!span.covers(plan, plan), "due before the pause");
        assert!(!span.covers(at("2026-11-29T11:00:00Z"), at("2026-11-29T11:00:00Z")));
    }
}
