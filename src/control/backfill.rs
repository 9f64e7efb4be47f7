//! Backfill: run every plan time of a job's schedule in `[from, to)` for chosen scopes.
//!
//! A backfill is a row in `cronlease_backfills` that every replica's tick of the job consults
//! while it is active (the tick's first statement says whether one is, so an idle tick pays
//! nothing for it). Its plans are the job's ordinary plans, `(job, scope, plan_time)`, so the
//! unique key makes each run at most once whoever claims it, and a plan that already has a row is
//! not run again (unless the backfill asked to `rerun` finished ones).
//!
//! Progress lives in the row: a cursor, the last plan handed out in `(plan_time, scope)` order,
//! and `done` / `total`. A tick takes the next plans after the cursor ([`next_step`]), as many as
//! the job may start now ([`step_budget`]), claims them, then moves the cursor with a
//! compare-and-set on its old value: two replicas stepping at once claim the same plans (one wins
//! each row) and only one moves the cursor. Claiming before moving makes a crash between the two
//! harmless: the next step finds those plans' rows and counts them done. So a backfill survives
//! restarts and runs each plan exactly once across replicas.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::schedule::Schedule;
use crate::scope::Scope;

/// A backfill as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backfill {
    /// The backfill's id (UUID v7).
    pub id: Uuid,
    /// The job's name.
    pub job: String,
    /// The scopes to run; `None`: every scope the job has when each step runs.
    pub scopes: Option<Vec<Scope>>,
    /// The first plan time included.
    pub from: DateTime<Utc>,
    /// The end of the range (excluded).
    pub to: DateTime<Utc>,
    /// Whether plans that already finished (SUCCESS, DEAD, SUPERSEDED before the backfill was
    /// created) run again.
    pub rerun: bool,
    /// Who asked (free text).
    pub requested_by: String,
    /// Active, done or cancelled.
    pub status: BackfillStatus,
    /// The last plan handed out; `None` before the first step.
    pub cursor: Option<BackfillCursor>,
    /// Plans handed out so far: started, or found with a row already.
    pub done: u64,
    /// All plans of the backfill; `None` until the first step counts them.
    pub total: Option<u64>,
    /// When it was stored (database clock).
    pub created_at: DateTime<Utc>,
    /// Last change (database clock).
    pub updated_at: DateTime<Utc>,
}

impl Backfill {
    /// A backfill to store, with a fresh id; times of the row are set by the database.
    pub fn new(
        job: impl Into<String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        options: BackfillOptions,
    ) -> Self {
        Backfill {
            id: Uuid::now_v7(),
            job: job.into(),
            scopes: options.scopes.map(|mut scopes| {
                scopes.sort();
                scopes.dedup();
                scopes
            }),
            from,
            to,
            rerun: options.rerun,
            requested_by: options.requested_by,
            status: BackfillStatus::Active,
            cursor: None,
            done: 0,
            total: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Checks the range: `from` before `to`, `to` not after `now` (the database clock).
    pub(crate) fn check_range(&self, now: DateTime<Utc>) -> Result<(), String> {
        if self.from >= self.to {
            return Err(format!(
                "backfill of `{}`: from ({}) must be before to ({})",
                self.job, self.from, self.to
            ));
        }
        if self.to > now {
            return Err(format!(
                "backfill of `{}`: to ({}) is in the future (database time {now}); plans that are not due yet run on schedule",
                self.job, self.to
            ));
        }
        Ok(())
    }
}

/// Options of a backfill. Default: every scope, no rerun, requested by `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillOptions {
    /// The scopes to run. Default: `None`, every scope of the job.
    pub scopes: Option<Vec<Scope>>,
    /// Run again plans that already finished (SUCCESS, DEAD or SUPERSEDED before the backfill
    /// was created). Default: `false`, plans that have a row are left as they are.
    pub rerun: bool,
    /// Who asked (free text). Default: empty.
    pub requested_by: String,
}

/// Where a backfill stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BackfillStatus {
    /// Ticks of the job hand out its plans.
    #[default]
    Active,
    /// Every plan was handed out.
    Done,
    /// An operator cancelled it; attempts already started finish.
    Cancelled,
}

impl BackfillStatus {
    /// The stored text: `ACTIVE`, `DONE`, `CANCELLED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackfillStatus::Active => "ACTIVE",
            BackfillStatus::Done => "DONE",
            BackfillStatus::Cancelled => "CANCELLED",
        }
    }
}

impl std::str::FromStr for BackfillStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ACTIVE" => Ok(BackfillStatus::Active),
            "DONE" => Ok(BackfillStatus::Done),
            "CANCELLED" => Ok(BackfillStatus::Cancelled),
            other => Err(format!("unknown backfill status `{other}`")),
        }
    }
}

/// A position in a backfill's plans, ordered by plan time, then scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackfillCursor {
    /// The plan time.
    pub plan_time: DateTime<Utc>,
    /// The scope.
    pub scope: Scope,
}

/// A step's move of a backfill's progress, applied only if the cursor is still `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillAdvance {
    /// The backfill.
    pub id: Uuid,
    /// The cursor the step started from.
    pub expected: Option<BackfillCursor>,
    /// The new cursor: the last plan handed out.
    pub cursor: Option<BackfillCursor>,
    /// Plans handed out by the step.
    pub handed_out: u64,
    /// The backfill's plan count, as the step counted it.
    pub total: u64,
    /// Whether the step handed out the last plan: the backfill becomes DONE.
    pub finished: bool,
}

/// What one step of a backfill hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackfillStep {
    /// The plans to claim, in cursor order.
    pub(crate) plans: Vec<(Scope, DateTime<Utc>)>,
    /// The cursor after them.
    pub(crate) cursor: Option<BackfillCursor>,
    /// No plan is left after them.
    pub(crate) finished: bool,
    /// The backfill's plan count.
    pub(crate) total: u64,
}

/// How many plans of a backfill a tick may hand out: the free execution slots left after the
/// job's scheduled plans and retries (`job_limit_left` bounds it further when known). The job's
/// overlap policy and concurrency limit are enforced by the guarded claim itself; the step then
/// gives back what it held back ([`BackfillStep::held_back`]).
pub(crate) fn step_budget(free_slots: usize, job_limit_left: Option<usize>) -> usize {
    job_limit_left.map_or(free_slots, |left| free_slots.min(left))
}

impl BackfillStep {
    /// The step cut before its first plan the guarded claim held back (its scope was busy, or
    /// the job's concurrency limit was reached), so the cursor never moves past a plan that did
    /// not get a row: that plan and the ones after it are handed out again by a later tick.
    /// `previous` is the backfill's cursor before the step.
    pub(crate) fn held_back(
        mut self,
        previous: Option<BackfillCursor>,
        unclaimed: &std::collections::HashSet<(Scope, DateTime<Utc>)>,
    ) -> Self {
        let Some(cut) = self.plans.iter().position(|p| unclaimed.contains(p)) else {
            return self;
        };
        self.plans.truncate(cut);
        self.cursor = match self.plans.last() {
            Some((scope, plan_time)) => Some(BackfillCursor {
                plan_time: *plan_time,
                scope: scope.clone(),
            }),
            None => previous,
        };
        self.finished = false;
        self
    }
}

/// The first plan time of `schedule` at or after `t`.
fn first_plan_from(schedule: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match schedule.latest_plan(t) {
        Some(plan) if plan == t => Some(t),
        _ => schedule.next_plan(t),
    }
}

/// The number of plan times of `schedule` in `[from, to)`.
pub(crate) fn plan_count(schedule: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    if let Some(cadence) = schedule.cadence() {
        // A fixed cadence counts without walking.
        let Some(first) = first_plan_from(schedule, from).filter(|t| *t < to) else {
            return 0;
        };
        let span = (to - first).num_milliseconds().max(0) as u128;
        let step = cadence.as_millis().max(1);
        return (span.div_ceil(step)) as u64;
    }
    let mut n = 0;
    let mut at = first_plan_from(schedule, from);
    while let Some(plan) = at.filter(|t| *t < to) {
        n += 1;
        at = schedule.next_plan(plan);
    }
    n
}

/// The next plans of `backfill` after its cursor: at most `budget`, in `(plan_time, scope)`
/// order over `scopes` (sorted), stopping before the first plan of a scope that may not run now
/// (`runs` false: paused), so a paused scope holds the backfill instead of losing its plans.
pub(crate) fn next_step(
    backfill: &Backfill,
    schedule: &Schedule,
    scopes: &[Scope],
    budget: usize,
    runs: impl Fn(&Scope) -> bool,
) -> BackfillStep {
    let total = backfill
        .total
        .unwrap_or_else(|| plan_count(schedule, backfill.from, backfill.to) * scopes.len() as u64);
    let mut step = BackfillStep {
        plans: Vec::new(),
        cursor: backfill.cursor.clone(),
        finished: false,
        total,
    };
    let start = backfill
        .cursor
        .as_ref()
        .map_or(backfill.from, |c| c.plan_time.max(backfill.from));
    let mut at = first_plan_from(schedule, start);
    while let Some(plan_time) = at.filter(|t| *t < backfill.to) {
        for scope in scopes {
            if let Some(cursor) = &backfill.cursor
                && (plan_time, scope) <= (cursor.plan_time, &cursor.scope)
            {
                continue;
            }
            if step.plans.len() == budget || !runs(scope) {
                return step;
            }
            step.plans.push((scope.clone(), plan_time));
            step.cursor = Some(BackfillCursor {
                plan_time,
                scope: scope.clone(),
            });
        }
        at = schedule.next_plan(plan_time);
    }
    step.finished = true;
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_cut_before_the_first_plan_the_guard_held_back() {
        let t = |m: i64| DateTime::from_timestamp(1_700_000_000 + m * 60, 0).unwrap();
        let a = Scope::new("tenant", "a");
        let b = Scope::new("tenant", "b");
        let step = BackfillStep {
            plans: vec![(a.clone(), t(0)), (b.clone(), t(0)), (a.clone(), t(1))],
            cursor: Some(BackfillCursor {
                plan_time: t(1),
                scope: a.clone(),
            }),
            finished: true,
            total: 3,
        };
        let previous = Some(BackfillCursor {
            plan_time: t(-1),
            scope: b.clone(),
        });
        let none = std::collections::HashSet::new();
        assert_eq!(step.clone().held_back(previous.clone(), &none), step);

        let busy_b: std::collections::HashSet<_> = [(b.clone(), t(0))].into();
        let cut = step.clone().held_back(previous.clone(), &busy_b);
        assert_eq!(cut.plans, vec![(a.clone(), t(0))]);
        assert_eq!(
            cut.cursor,
            Some(BackfillCursor {
                plan_time: t(0),
                scope: a.clone()
            })
        );
        assert!(!cut.finished);

        let busy_first: std::collections::HashSet<_> = [(a.clone(), t(0))].into();
        let none_out = step.held_back(previous.clone(), &busy_first);
        assert!(none_out.plans.is_empty());
        assert_eq!(none_out.cursor, previous);
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hourly_backfill(scopes: Option<Vec<Scope>>) -> Backfill {
        Backfill::new(
            "report",
            at("2026-01-01T00:30:00Z"),
            at("2026-01-01T04:00:00Z"),
            BackfillOptions {
                scopes,
                ..BackfillOptions::default()
            },
        )
    }

    fn scopes() -> Vec<Scope> {
        vec![Scope::new("t", "1"), Scope::new("t", "2")]
    }

    #[test]
    fn counts_the_plan_times_of_the_range() {
        let hourly = Schedule::every("1h").unwrap();
        let (from, to) = (at("2026-01-01T00:30:00Z"), at("2026-01-01T04:00:00Z"));
        assert_eq!(plan_count(&hourly, from, to), 3, "01:00, 02:00, 03:00");
        assert_eq!(plan_count(&hourly, at("2026-01-01T01:00:00Z"), to), 3);
        assert_eq!(
            plan_count(
                &hourly,
                at("2026-01-01T01:00:00Z"),
                at("2026-01-01T01:00:00.001Z")
            ),
            1
        );
        assert_eq!(
            plan_count(
                &hourly,
                at("2026-01-01T01:00:01Z"),
                at("2026-01-01T02:00:00Z")
            ),
            0
        );
        let cron = Schedule::cron("0 * * * *").unwrap();
        assert_eq!(plan_count(&cron, from, to), 3);
    }

    #[test]
    fn steps_walk_the_plans_in_order_within_the_budget_until_done() {
        let hourly = Schedule::every("1h").unwrap();
        let mut backfill = hourly_backfill(None);
        let scopes = scopes();
        let mut seen = Vec::new();
        loop {
            let step = next_step(&backfill, &hourly, &scopes, 4, |_| true);
            assert_eq!(step.total, 6);
            assert!(step.plans.len() <= 4);
            seen.extend(step.plans.clone());
            backfill.cursor = step.cursor;
            backfill.total = Some(step.total);
            if step.finished {
                break;
            }
        }
        let expected: Vec<_> = ["01", "02", "03"]
            .iter()
            .flat_map(|h| {
                let t = at(&format!("2026-01-01T{h}:00:00Z"));
                scopes.iter().map(move |s| (s.clone(), t))
            })
            .collect();
        assert_eq!(seen, expected);
        let again = next_step(&backfill, &hourly, &scopes, 4, |_| true);
        assert!(again.plans.is_empty() && again.finished);
    }

    #[test]
    fn a_step_with_no_budget_hands_out_nothing_and_a_paused_scope_holds_the_backfill() {
        let hourly = Schedule::every("1h").unwrap();
        let backfill = hourly_backfill(None);
        let none = next_step(&backfill, &hourly, &scopes(), 0, |_| true);
        assert!(none.plans.is_empty() && !none.finished && none.cursor.is_none());
        let paused = Scope::new("t", "2");
        let held = next_step(&backfill, &hourly, &scopes(), 10, |s| *s != paused);
        assert_eq!(
            held.plans,
            vec![(Scope::new("t", "1"), at("2026-01-01T01:00:00Z"))]
        );
        assert!(!held.finished);
    }

    #[test]
    fn an_empty_range_finishes_at_once_and_ranges_are_checked() {
        let hourly = Schedule::every("1h").unwrap();
        let mut backfill = hourly_backfill(None);
        backfill.from = at("2026-01-01T01:00:01Z");
        backfill.to = at("2026-01-01T02:00:00Z");
        let step = next_step(&backfill, &hourly, &scopes(), 10, |_| true);
        assert!(step.plans.is_empty() && step.finished && step.total == 0);

        let now = at("2026-01-01T05:00:00Z");
        assert!(hourly_backfill(None).check_range(now).is_ok());
        let mut reversed = hourly_backfill(None);
        reversed.to = reversed.from;
        assert!(
            reversed
                .check_range(now)
                .unwrap_err()
                .contains("must be before")
        );
        assert!(
            hourly_backfill(None)
                .check_range(at("2026-01-01T03:00:00Z"))
                .unwrap_err()
                .contains("in the future")
        );
    }

    #[test]
    fn the_budget_hook_takes_the_smaller_of_the_slots_and_the_job_limit() {
        assert_eq!(step_budget(8, None), 8);
        assert_eq!(step_budget(8, Some(3)), 3);
        assert_eq!(step_budget(2, Some(3)), 2);
    }
}
