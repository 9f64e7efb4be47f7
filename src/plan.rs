//! Pure planning: which plan times a scope is due for, and which failed rows are still current.
//!
//! - [`CatchUp`]: what to do about plans missed while no runner was ticking.
//! - `TickPlans`: one job's plan times for one tick, computed once and shared by its scopes
//!   (each scope then costs a stagger hash and a binary search); the plans of one scope.
//! - [`CatchUpPreview`]: which plans catch-up would run after a downtime.
//! - `due_retries`: which FAILED rows to claim now, and when the next one comes due.
//! - `claim_order` (`plan/claim_order.rs`): the order a runner offers its due plans in.
//! - `NewestPlans` (`plan/newest.rs`): the newest plan per scope that planning starts from.
//! - `LastWalk` (`plan/last_walk.rs`): what the last walk over a job's scopes found (nothing
//!   due, or a backlog of plans for the next ticks) while it still holds, so ticks need not walk.
//! - `Owners` and `ForeignPlans` (`plan/sharing.rs`): which live runner offers a scope's due
//!   plans first, and the plans of other runners' scopes set aside until the handoff.
//!
//! Catch-up decides only which *never-started* plans get rows. A FAILED row is retried at its
//! `next_retry_at` in every mode, whatever newer plans exist, until SUCCESS or DEAD (or
//! SUPERSEDED, for jobs that opted in).
//!
//! The Supervisor calls these with the database time read once per tick, and the store only writes.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::control::{CatchUpSkip, SkipReason};
use crate::schedule::{Schedule, delta};
use crate::scope::Scope;
use crate::store::RetryCandidate;

mod claim_order;
mod last_walk;
mod newest;
mod sharing;

pub(crate) use claim_order::claim_order;
pub(crate) use last_walk::LastWalk;
pub(crate) use newest::NewestPlans;
pub(crate) use sharing::{HANDOFF_AFTER, Owners, Sharing, plans_to_take_over};

/// What a job does about plans it missed (runner down, ticks delayed).
///
/// Default: [`CatchUp::LatestOnly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CatchUp {
    /// Run only the latest plan. Missed plans are skipped; a plan that already has a row is a
    /// no-op. A failed plan is still retried at its backoff time until SUCCESS or DEAD, even
    /// once newer plans exist (see [`JobSpecBuilder::supersede_failed`](crate::JobSpecBuilder::supersede_failed)
    /// to close it instead once a newer plan succeeds).
    #[default]
    LatestOnly,
    /// Run every plan after the newest stored one, oldest first, never older than
    /// `db_now - window`, at most `max_plans_per_tick` per scope per tick (more come next tick).
    /// A scope without history starts at the latest plan. A zero window means latest only.
    /// The window bounds only plans never started: every FAILED row is retried at its backoff
    /// time until SUCCESS or DEAD, however old.
    EveryPlan {
        /// How far back plans are still worth running.
        window: Duration,
        /// The most plans one scope may claim in one tick; at least 1.
        max_plans_per_tick: usize,
    },
}

impl CatchUp {
    /// The most plans one scope may emit per tick under this mode.
    pub(crate) fn max_plans_per_tick(&self) -> usize {
        match *self {
            CatchUp::LatestOnly => 1,
            CatchUp::EveryPlan {
                max_plans_per_tick, ..
            } => max_plans_per_tick,
        }
    }

    /// The plan times a scope with newest stored plan `newest_known` is due for at `db_now`
    /// (ascending, at most `max_plans_per_tick`), without stagger or delay: what one tick would
    /// claim for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cronlease::{CatchUp, Schedule};
    ///
    /// let now = "2026-11-22T10:07:30Z".parse().unwrap();
    /// let newest = Some("2026-11-22T10:05:00Z".parse().unwrap());
    /// let catch_up = CatchUp::EveryPlan { window: Duration::from_secs(3600), max_plans_per_tick: 5 };
    /// let every_minute = Schedule::cron("* * * * *").unwrap();
    /// let due = catch_up.due_plans(&every_minute, now, newest);
    /// assert_eq!(due.len(), 2); // 10:06 and 10:07
    /// assert!(CatchUp::LatestOnly.due_plans(&every_minute, now, due.last().copied()).is_empty());
    /// ```
    pub fn due_plans(
        &self,
        schedule: &Schedule,
        db_now: DateTime<Utc>,
        newest_known: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        TickPlans::new(schedule, *self, db_now, db_now, Duration::ZERO)
            .plans_for(Duration::ZERO, newest_known)
    }

    /// The catch-up window, `None` meaning latest only.
    fn window(&self) -> Option<Duration> {
        match *self {
            CatchUp::EveryPlan { window, .. } if !window.is_zero() => Some(window),
            _ => None,
        }
    }
}

/// The most recent plan times a tick keeps for its scopes' stagger offsets; older ones (a
/// stagger window holding more plans than this) are computed per scope.
const MAX_RECENT_PLANS: usize = 4096;

/// One job's plan times for one tick, computed once and shared by all its scopes.
///
/// A scope with stagger offset `o` is due for the newest plan `p` with `p + o <= eligible`
/// (`eligible` is `db_now - schedule_delay`). `recent` holds every plan from the one at or before
/// `eligible - stagger` to the one at or before `eligible`, so each scope finds its plan by a
/// binary search instead of a schedule computation; catch-up walks between plans are memoised,
/// so scopes in step share them.
pub(crate) struct TickPlans<'a> {
    schedule: &'a Schedule,
    catch_up: CatchUp,
    db_now: DateTime<Utc>,
    eligible: DateTime<Utc>,
    /// Ascending; the last is the newest plan at or before `eligible`.
    recent: Vec<DateTime<Utc>>,
    /// Whether `recent` reaches back to `eligible - stagger` (or the schedule's first plan).
    complete: bool,
    /// The first plan after `eligible`.
    next: Option<DateTime<Utc>>,
    /// `t -> the first plan after t`, for catch-up walks of cron schedules.
    memo: HashMap<DateTime<Utc>, Option<DateTime<Utc>>>,
}

impl<'a> TickPlans<'a> {
    /// The plan times around `eligible`, for scopes whose offsets lie in `[0, stagger)`.
    pub(crate) fn new(
        schedule: &'a Schedule,
        catch_up: CatchUp,
        db_now: DateTime<Utc>,
        eligible: DateTime<Utc>,
        stagger: Duration,
    ) -> Self {
        let floor = eligible - delta(stagger);
        let mut recent = Vec::new();
        let mut complete = true;
        let mut cursor = schedule.latest_plan(eligible);
        while let Some(plan) = cursor {
            recent.push(plan);
            if plan <= floor {
                break;
            }
            if recent.len() == MAX_RECENT_PLANS {
                complete = false;
                break;
            }
            cursor = schedule.latest_plan(plan - TimeDelta::milliseconds(1));
        }
        recent.reverse();
        TickPlans {
            schedule,
            catch_up,
            db_now,
            eligible,
            recent,
            complete,
            next: schedule.next_plan(eligible),
            memo: HashMap::new(),
        }
    }

    /// The newest plan due for a scope with stagger offset `offset`, and the plan after it.
    fn around(&self, offset: Duration) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let cut = self.eligible - delta(offset);
        let i = self.recent.partition_point(|plan| *plan <= cut);
        if i > 0 {
            let next = self.recent.get(i).copied().or(self.next);
            return (Some(self.recent[i - 1]), next);
        }
        if self.complete {
            return (None, self.recent.first().copied().or(self.next));
        }
        (self.schedule.latest_plan(cut), self.schedule.next_plan(cut))
    }

    /// The plan times a scope should claim this tick, ascending: `offset` is its stagger offset,
    /// `newest_known` the newest plan time stored (or already claimed) for it.
    pub(crate) fn plans_for(
        &mut self,
        offset: Duration,
        newest_known: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        self.scope(offset, newest_known).0
    }

    /// [`plans_for`](Self::plans_for) and [`next_due`](Self::next_due) of one scope together,
    /// with one search of the recent plans.
    pub(crate) fn scope(
        &mut self,
        offset: Duration,
        newest_known: Option<DateTime<Utc>>,
    ) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let (latest, next) = self.around(offset);
        let next_due = next.map(|plan| plan + delta(offset));
        let plans = match latest {
            Some(latest) => self.plans_up_to(latest, newest_known),
            None => Vec::new(),
        };
        (plans, next_due)
    }

    /// The plans up to `latest` (the newest due) of a scope whose newest row is `newest_known`.
    fn plans_up_to(
        &mut self,
        latest: DateTime<Utc>,
        newest_known: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        if newest_known.is_some_and(|newest| newest >= latest) {
            return Vec::new();
        }
        let (Some(window), Some(newest)) = (self.catch_up.window(), newest_known) else {
            return vec![latest];
        };
        let oldest_allowed = self.db_now - delta(window);
        let start = newest.max(oldest_allowed - TimeDelta::milliseconds(1));
        let max = self.catch_up.max_plans_per_tick();
        let mut plans = Vec::new();
        let mut cursor = self.next_after(start);
        while let Some(plan) = cursor {
            if plan > latest || plans.len() == max {
                break;
            }
            plans.push(plan);
            cursor = self.next_after(plan);
        }
        plans
    }

    /// The plans a scope's catch-up skips this tick: newer than `newest_known` (its newest
    /// stored plan), older than the ones [`scope`](Self::scope) returns, and never to be run.
    /// `None` when nothing is skipped, or the scope has no history (it starts at the latest
    /// plan; nothing before it was missed). Cheap when nothing is skipped: one memoised step.
    pub(crate) fn skipped(
        &mut self,
        offset: Duration,
        newest_known: Option<DateTime<Utc>>,
    ) -> Option<CatchUpSkip> {
        let newest = newest_known?;
        let latest = self.around(offset).0?;
        if newest >= latest {
            return None;
        }
        let first = self.next_after(newest)?;
        let (last, reason) = match self.catch_up.window() {
            None => {
                if first >= latest {
                    return None;
                }
                let last = self
                    .schedule
                    .latest_plan(latest - TimeDelta::milliseconds(1))?;
                (last, SkipReason::LatestOnly)
            }
            Some(window) => {
                let oldest_allowed = self.db_now - delta(window);
                if first >= oldest_allowed {
                    return None;
                }
                let last = self
                    .schedule
                    .latest_plan(oldest_allowed - TimeDelta::milliseconds(1))?
                    .min(latest);
                (last, SkipReason::OutsideWindow)
            }
        };
        if last < first {
            return None;
        }
        // A newest plan the schedule would not produce was planned under another schedule.
        let reason = if self.schedule.latest_plan(newest) == Some(newest) {
            reason
        } else {
            SkipReason::ScheduleChange
        };
        Some(CatchUpSkip {
            first,
            last,
            reason,
        })
    }

    /// When the next plan of a scope with stagger offset `offset` comes due, `schedule_delay`
    /// not included; `None` if the schedule has no later plan.
    #[cfg(test)]
    pub(crate) fn next_due(&self, offset: Duration) -> Option<DateTime<Utc>> {
        self.around(offset).1.map(|plan| plan + delta(offset))
    }

    /// The first plan after `t`.
    fn next_after(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Schedule::Every { .. } = self.schedule {
            return self.schedule.next_plan(t);
        }
        let schedule = self.schedule;
        *self.memo.entry(t).or_insert_with(|| schedule.next_plan(t))
    }
}

/// Which plans catch-up runs after a downtime, for one scope of a job (stagger aside): see
/// [`JobSpec::catch_up_preview`](crate::JobSpec::catch_up_preview).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatchUpPreview {
    /// The plans that come due during the downtime and run at restart, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// How many plans come due during the downtime and are skipped by the catch-up mode.
    pub skipped: usize,
    /// The oldest and newest skipped plan.
    pub skipped_span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The downtime held more than [`CatchUpPreview::MAX_PLANS`] plans: the lists stop there.
    pub truncated: bool,
}

impl CatchUpPreview {
    /// The most plans a preview walks.
    pub const MAX_PLANS: usize = 100_000;
}

/// The plans of `schedule` that come due between `down_from` (the last tick before the
/// downtime, whose plans all ran) and `down_to` (the first tick after), split into those the
/// catch-up mode runs and those it skips.
pub(crate) fn catch_up_preview(
    schedule: &Schedule,
    catch_up: CatchUp,
    delay: Duration,
    down_from: DateTime<Utc>,
    down_to: DateTime<Utc>,
) -> CatchUpPreview {
    let newest = schedule.latest_plan(down_from - delta(delay));
    let latest = schedule.latest_plan(down_to - delta(delay));
    let mut missed = Vec::new();
    let mut truncated = false;
    let mut cursor = match newest {
        Some(newest) => schedule.next_plan(newest),
        None => latest,
    };
    while let Some(plan) = cursor {
        if latest.is_none_or(|latest| plan > latest) {
            break;
        }
        if missed.len() == CatchUpPreview::MAX_PLANS {
            truncated = true;
            break;
        }
        missed.push(plan);
        cursor = schedule.next_plan(plan);
    }
    let runs = |plan: &DateTime<Utc>| match catch_up.window() {
        None => Some(*plan) == latest,
        Some(window) => *plan >= down_to - delta(window),
    };
    let (run, skipped): (Vec<_>, Vec<_>) = missed.into_iter().partition(runs);
    CatchUpPreview {
        run,
        skipped: skipped.len(),
        skipped_span: skipped.first().zip(skipped.last()).map(|(a, b)| (*a, *b)),
        truncated,
    }
}

/// Applies a planner hook's output: keeps its order, drops repeats and plans later than
/// `eligible` (they come due in a later tick), and cuts the list to `max_plans`.
pub(crate) fn hook_plans(
    planned: Vec<DateTime<Utc>>,
    eligible: DateTime<Utc>,
    max_plans: usize,
) -> Vec<DateTime<Utc>> {
    let mut kept: Vec<DateTime<Utc>> = Vec::new();
    for t in planned {
        if kept.len() == max_plans {
            break;
        }
        if t <= eligible && !kept.contains(&t) {
            kept.push(t);
        }
    }
    kept
}

/// Splits a job's retry candidates (soonest `next_retry_at` first) into the plans to claim now
/// and how long until the first one that is not due yet, if any.
pub(crate) fn due_retries(
    candidates: Vec<RetryCandidate>,
    db_now: DateTime<Utc>,
) -> (Vec<(Scope, DateTime<Utc>)>, Option<Duration>) {
    let mut due = Vec::new();
    let mut wait: Option<Duration> = None;
    for candidate in candidates {
        if candidate.due {
            due.push((candidate.scope, candidate.plan_time));
        } else {
            let until = (candidate.next_retry_at - db_now)
                .to_std()
                .unwrap_or_default();
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
    }
    (due, wait)
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::schedule::floor_plan;

    const MIN: Duration = Duration::from_secs(60);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The plans of one scope of an every-`cadence` job at `now` (no stagger, no delay);
    /// `latest` is what the tick derives itself, checked here.
    fn cadence_plans(
        catch_up: CatchUp,
        cadence: Duration,
        latest: DateTime<Utc>,
        now: DateTime<Utc>,
        known: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        let schedule = Schedule::every(&humantime::format_duration(cadence).to_string()).unwrap();
        assert_eq!(schedule.latest_plan(now), Some(latest));
        TickPlans::new(&schedule, catch_up, now, now, Duration::ZERO)
            .plans_for(Duration::ZERO, known)
    }

    fn cron(pattern: &str, zone: &str) -> Schedule {
        Schedule::cron_in(pattern, zone).unwrap()
    }

    fn every_plan(window_min: u64, max: usize) -> CatchUp {
        CatchUp::EveryPlan {
            window: MIN * window_min as u32,
            max_plans_per_tick: max,
        }
    }

    fn skipped(
        catch_up: CatchUp,
        now: &str,
        known: Option<&str>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>, SkipReason)> {
        let schedule = Schedule::every("1m").unwrap();
        let now = at(now);
        TickPlans::new(&schedule, catch_up, now, now, Duration::ZERO)
            .skipped(Duration::ZERO, known.map(at))
            .map(|s| (s.first, s.last, s.reason))
    }

    #[test]
    fn catch_up_skips_are_the_plans_between_the_newest_row_and_the_ones_run() {
        let now = "2026-11-22T10:07:30Z";
        assert_eq!(
            skipped(CatchUp::LatestOnly, now, Some("2026-11-22T10:00:00Z")),
            Some((
                at("2026-11-22T10:01:00Z"),
                at("2026-11-22T10:06:00Z"),
                SkipReason::LatestOnly
            ))
        );
        // In step, or without history, nothing was skipped.
        assert_eq!(
            skipped(CatchUp::LatestOnly, now, Some("2026-11-22T10:06:00Z")),
            None
        );
        assert_eq!(skipped(CatchUp::LatestOnly, now, None), None);
        assert_eq!(
            skipped(CatchUp::LatestOnly, now, Some("2026-11-22T10:07:00Z")),
            None
        );
        // EveryPlan skips only what fell out of its window (10:04:30 onwards runs).
        assert_eq!(
            skipped(every_plan(3, 10), now, Some("2026-11-22T10:00:00Z")),
            Some((
                at("2026-11-22T10:01:00Z"),
                at("2026-11-22T10:04:00Z"),
                SkipReason::OutsideWindow
            ))
        );
        assert_eq!(
            skipped(every_plan(60, 10), now, Some("2026-11-22T10:00:00Z")),
            None
        );
        // A newest row off the schedule was planned under an older one.
        assert_eq!(
            skipped(CatchUp::LatestOnly, now, Some("2026-11-22T10:00:30Z")),
            Some((
                at("2026-11-22T10:01:00Z"),
                at("2026-11-22T10:06:00Z"),
                SkipReason::ScheduleChange
            ))
        );
    }

    #[test]
    fn latest_only_emits_the_latest_plan_once() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        assert_eq!(
            cadence_plans(CatchUp::LatestOnly, MIN, latest, now, None),
            vec![at("2026-11-22T10:07:00Z")]
        );
        // Missed plans are skipped: the newest stored plan is long ago.
        assert_eq!(
            cadence_plans(
                CatchUp::LatestOnly,
                MIN,
                latest,
                now,
                Some(at("2026-11-22T09:00:00Z"))
            ),
            vec![latest]
        );
        // Already planned: nothing to do.
        assert!(cadence_plans(CatchUp::LatestOnly, MIN, latest, now, Some(latest)).is_empty());
    }

    #[test]
    fn every_plan_without_history_starts_at_the_latest() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        assert_eq!(
            cadence_plans(every_plan(60, 10), MIN, latest, now, None),
            vec![latest]
        );
    }

    #[test]
    fn every_plan_emits_each_missed_plan_ascending() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        let plans = cadence_plans(
            every_plan(60, 10),
            MIN,
            latest,
            now,
            Some(at("2026-11-22T10:04:00Z")),
        );
        assert_eq!(
            plans,
            vec![
                at("2026-11-22T10:05:00Z"),
                at("2026-11-22T10:06:00Z"),
                at("2026-11-22T10:07:00Z")
            ]
        );
    }

    #[test]
    fn every_plan_is_capped_per_tick() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        let plans = cadence_plans(
            every_plan(60, 2),
            MIN,
            latest,
            now,
            Some(at("2026-11-22T10:00:00Z")),
        );
        assert_eq!(
            plans,
            vec![at("2026-11-22T10:01:00Z"), at("2026-11-22T10:02:00Z")]
        );
    }

    #[test]
    fn every_plan_is_clamped_to_the_window() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        // Window of 3 minutes: nothing before 10:04:30, so the first plan is 10:05.
        let plans = cadence_plans(
            every_plan(3, 100),
            MIN,
            latest,
            now,
            Some(at("2026-11-21T00:00:00Z")),
        );
        assert_eq!(
            plans,
            vec![
                at("2026-11-22T10:05:00Z"),
                at("2026-11-22T10:06:00Z"),
                at("2026-11-22T10:07:00Z")
            ]
        );
    }

    #[test]
    fn zero_window_means_latest_only() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        let plans = cadence_plans(
            every_plan(0, 100),
            MIN,
            latest,
            now,
            Some(at("2026-11-22T10:00:00Z")),
        );
        assert_eq!(plans, vec![latest]);
    }

    #[test]
    fn every_plan_realigns_after_a_cadence_change() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = floor_plan(now, MIN);
        let plans = cadence_plans(
            every_plan(60, 10),
            MIN,
            latest,
            now,
            Some(at("2026-11-22T10:05:30Z")),
        );
        assert_eq!(
            plans,
            vec![at("2026-11-22T10:06:00Z"), at("2026-11-22T10:07:00Z")]
        );
    }

    #[test]
    fn hook_output_keeps_order_drops_repeats_and_future_and_is_cut() {
        let eligible = at("2026-11-22T10:00:00Z");
        let planned = vec![
            at("2026-11-22T09:30:00Z"),
            at("2026-11-22T09:30:00Z"),
            at("2026-11-22T09:10:00Z"),
            at("2026-11-22T11:00:00Z"),
            at("2026-11-22T09:50:00Z"),
        ];
        assert_eq!(
            hook_plans(planned, eligible, 2),
            vec![at("2026-11-22T09:30:00Z"), at("2026-11-22T09:10:00Z")]
        );
    }

    fn candidate(plan: &str, retry_at: &str, now: DateTime<Utc>) -> RetryCandidate {
        let next_retry_at = at(retry_at);
        RetryCandidate {
            scope: Scope::global(),
            plan_time: at(plan),
            next_retry_at,
            due: next_retry_at <= now,
            replayed: false,
        }
    }

    #[test]
    fn every_due_retry_is_claimed_however_old_its_plan() {
        let now = at("2026-11-22T10:07:30Z");
        let candidates = vec![
            // Far older than any catch-up window or the latest plan: still retried.
            candidate("2026-11-20T10:00:00Z", "2026-11-22T10:07:00Z", now),
            candidate("2026-11-22T10:07:00Z", "2026-11-22T10:07:30Z", now),
            candidate("2026-11-22T10:06:00Z", "2026-11-22T10:07:32Z", now),
            candidate("2026-11-22T10:05:00Z", "2026-11-22T10:08:00Z", now),
        ];
        let (due, wait) = due_retries(candidates, now);
        assert_eq!(
            due,
            vec![
                (Scope::global(), at("2026-11-20T10:00:00Z")),
                (Scope::global(), at("2026-11-22T10:07:00Z")),
            ]
        );
        assert_eq!(wait, Some(Duration::from_secs(2)));
    }

    #[test]
    fn no_pending_retry_means_no_wake_up() {
        let now = at("2026-11-22T10:07:30Z");
        let (due, wait) = due_retries(
            vec![candidate(
                "2026-11-22T10:07:00Z",
                "2026-11-22T10:07:00Z",
                now,
            )],
            now,
        );
        assert_eq!(due.len(), 1);
        assert_eq!(wait, None);
        assert_eq!(due_retries(Vec::new(), now), (Vec::new(), None));
    }

    #[test]
    fn cron_plans_follow_the_calendar_in_both_modes() {
        // Every weekday at 09:00 New York time; the runner was down over a weekend.
        let schedule = cron("0 9 * * MON-FRI", "America/New_York");
        let now = at("2026-11-30T15:00:00Z"); // Monday 10:00 EST
        let friday = at("2026-11-27T14:00:00Z");
        let mut tick = TickPlans::new(&schedule, CatchUp::LatestOnly, now, now, Duration::ZERO);
        assert_eq!(
            tick.plans_for(Duration::ZERO, Some(friday - TimeDelta::days(1))),
            vec![at("2026-11-30T14:00:00Z")]
        );
        let mut tick = TickPlans::new(
            &schedule,
            every_plan(7 * 24 * 60, 10),
            now,
            now,
            Duration::ZERO,
        );
        assert_eq!(
            tick.plans_for(Duration::ZERO, Some(friday - TimeDelta::days(1))),
            vec![friday, at("2026-11-30T14:00:00Z")]
        );
        assert_eq!(
            tick.next_due(Duration::ZERO),
            Some(at("2026-12-01T14:00:00Z"))
        );
    }

    #[test]
    fn a_downtime_across_spring_forward_runs_the_shifted_plan_once() {
        // Berlin, 2026-03-29: 02:30 does not exist; its plan is 03:00 CEST (01:00Z).
        let daily = cron("30 2 * * *", "Europe/Berlin");
        let hourly = cron("0 * * * *", "Europe/Berlin");
        let quarter = cron("*/15 * * * *", "Europe/Berlin");
        let down_from = at("2026-03-28T23:10:00Z");
        let down_to = at("2026-03-29T03:10:00Z");
        let window = every_plan(24 * 60, 100);
        let newest = |s: &Schedule| s.latest_plan(down_from);
        let run = |s: &Schedule, mode| {
            TickPlans::new(s, mode, down_to, down_to, Duration::ZERO)
                .plans_for(Duration::ZERO, newest(s))
        };
        assert_eq!(run(&daily, window), vec![at("2026-03-29T01:00:00Z")]);
        assert_eq!(
            run(&daily, CatchUp::LatestOnly),
            vec![at("2026-03-29T01:00:00Z")]
        );
        assert_eq!(
            run(&hourly, window),
            vec![
                at("2026-03-29T00:00:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-29T02:00:00Z"),
                at("2026-03-29T03:00:00Z"),
            ]
        );
        assert_eq!(
            run(&hourly, CatchUp::LatestOnly),
            vec![at("2026-03-29T03:00:00Z")]
        );
        let quarters = run(&quarter, window);
        assert_eq!(
            quarters.len(),
            16,
            "every real quarter hour from 23:15Z to 03:00Z"
        );
        assert!(
            quarters
                .windows(2)
                .all(|w| w[1] - w[0] == TimeDelta::minutes(15))
        );
    }

    #[test]
    fn a_downtime_across_fall_back_runs_each_instant_once() {
        // Berlin, 2026-10-25: 02:00-02:59 happens twice (00:00Z-00:59Z CEST, 01:00Z-01:59Z CET).
        let daily = cron("30 2 * * *", "Europe/Berlin");
        let hourly = cron("0 * * * *", "Europe/Berlin");
        let down_from = at("2026-10-24T23:10:00Z");
        let down_to = at("2026-10-25T02:10:00Z");
        let window = every_plan(24 * 60, 100);
        let run = |s: &Schedule, mode| {
            TickPlans::new(s, mode, down_to, down_to, Duration::ZERO)
                .plans_for(Duration::ZERO, s.latest_plan(down_from))
        };
        assert_eq!(run(&daily, window), vec![at("2026-10-25T00:30:00Z")]);
        assert_eq!(
            run(&daily, CatchUp::LatestOnly),
            vec![at("2026-10-25T00:30:00Z")]
        );
        assert_eq!(
            run(&hourly, window),
            vec![
                at("2026-10-25T00:00:00Z"),
                at("2026-10-25T01:00:00Z"),
                at("2026-10-25T02:00:00Z"),
            ]
        );
        // A tick in the second 02:30 (01:30Z) does not run the daily plan again.
        let second = at("2026-10-25T01:30:00Z");
        let mut tick = TickPlans::new(&daily, window, second, second, Duration::ZERO);
        assert!(
            tick.plans_for(Duration::ZERO, Some(at("2026-10-25T00:30:00Z")))
                .is_empty()
        );
    }

    #[test]
    fn a_schedule_change_never_runs_old_plan_times() {
        // Rows of an every-7-minutes cadence, then the job moves to cron at :00 and :30.
        let schedule = cron("0,30 * * * *", "UTC");
        let now = at("2026-11-22T10:45:00Z");
        let old_newest = Some(at("2026-11-22T10:42:00Z"));
        let mut tick = TickPlans::new(&schedule, every_plan(120, 10), now, now, Duration::ZERO);
        // 10:30 is older than the newest row: nothing runs until 11:00.
        assert!(tick.plans_for(Duration::ZERO, old_newest).is_empty());
        assert_eq!(
            tick.next_due(Duration::ZERO),
            Some(at("2026-11-22T11:00:00Z"))
        );
        // Older history: only the new schedule's times after it, never 10:21 or 10:28.
        let plans = tick.plans_for(Duration::ZERO, Some(at("2026-11-22T10:14:00Z")));
        assert_eq!(plans, vec![at("2026-11-22T10:30:00Z")]);
    }

    #[test]
    fn stagger_moves_each_scope_due_time_not_its_plan() {
        let schedule = cron("0 0 * * *", "UTC");
        let stagger = Duration::from_secs(600);
        let now = at("2026-11-22T00:04:00Z");
        let mut tick = TickPlans::new(&schedule, CatchUp::LatestOnly, now, now, stagger);
        let yesterday = Some(at("2026-11-21T00:00:00Z"));
        // Offset 3 min: due at 00:03, so the 00:00 plan runs.
        assert_eq!(
            tick.plans_for(Duration::from_secs(180), yesterday),
            vec![at("2026-11-22T00:00:00Z")]
        );
        // Offset 5 min: not due before 00:05; yesterday's plan already ran.
        assert!(
            tick.plans_for(Duration::from_secs(300), yesterday)
                .is_empty()
        );
        assert_eq!(
            tick.next_due(Duration::from_secs(300)),
            Some(at("2026-11-22T00:05:00Z"))
        );
        assert_eq!(
            tick.next_due(Duration::from_secs(180)),
            Some(at("2026-11-23T00:03:00Z"))
        );
        // A scope never run and not yet due gets yesterday's plan (its newest due one).
        assert_eq!(
            tick.plans_for(Duration::from_secs(300), None),
            vec![at("2026-11-21T00:00:00Z")]
        );
    }

    #[test]
    fn a_stagger_longer_than_the_recent_list_falls_back_per_scope() {
        let schedule = Schedule::every("1ms").unwrap();
        let now = at("2026-11-22T10:00:00Z");
        let stagger = Duration::from_secs(10);
        let tick = TickPlans::new(&schedule, CatchUp::LatestOnly, now, now, stagger);
        assert!(!tick.complete);
        let offset = Duration::from_secs(9);
        assert_eq!(
            tick.around(offset).0,
            Some(at("2026-11-22T09:59:51Z")),
            "computed from the schedule"
        );
    }

    #[test]
    fn catch_up_preview_splits_run_and_skipped() {
        let hourly = cron("0 * * * *", "UTC");
        let from = at("2026-11-22T02:10:00Z");
        let to = at("2026-11-22T08:10:00Z");
        let latest = catch_up_preview(&hourly, CatchUp::LatestOnly, Duration::ZERO, from, to);
        assert_eq!(latest.run, vec![at("2026-11-22T08:00:00Z")]);
        assert_eq!(latest.skipped, 5);
        assert_eq!(
            latest.skipped_span,
            Some((at("2026-11-22T03:00:00Z"), at("2026-11-22T07:00:00Z")))
        );
        let windowed = catch_up_preview(&hourly, every_plan(150, 1), Duration::ZERO, from, to);
        assert_eq!(
            windowed.run,
            vec![
                at("2026-11-22T06:00:00Z"),
                at("2026-11-22T07:00:00Z"),
                at("2026-11-22T08:00:00Z")
            ]
        );
        assert_eq!(windowed.skipped, 3);
        let none = catch_up_preview(&hourly, CatchUp::LatestOnly, Duration::ZERO, from, from);
        assert!(none.run.is_empty() && none.skipped == 0 && !none.truncated);
    }

    #[test]
    fn downtimes_across_real_transitions_run_each_instant_once_in_both_modes() {
        // (zone, a time before a transition, a time after it)
        let transitions = [
            (
                "Europe/Berlin",
                "2026-03-28T22:00:00Z",
                "2026-03-29T04:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2026-10-24T22:00:00Z",
                "2026-10-25T04:00:00Z",
            ),
            (
                "America/New_York",
                "2026-03-08T04:00:00Z",
                "2026-03-08T10:00:00Z",
            ),
            (
                "America/New_York",
                "2026-11-01T03:00:00Z",
                "2026-11-01T09:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2026-10-03T12:00:00Z",
                "2026-10-03T18:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2026-04-04T12:00:00Z",
                "2026-04-04T18:00:00Z",
            ),
            (
                "Australia/Sydney",
                "2026-04-04T13:00:00Z",
                "2026-04-04T19:00:00Z",
            ),
            (
                "Australia/Sydney",
                "2026-10-03T13:00:00Z",
                "2026-10-03T19:00:00Z",
            ),
        ];
        for (zone, from, to) in transitions {
            for pattern in ["30 2 * * *", "0 * * * *", "*/15 * * * *"] {
                let schedule = cron(pattern, zone);
                let (from, to) = (at(from), at(to));
                let newest = schedule.latest_plan(from);
                // Every real instant the pattern names in between, found one by one.
                let expected: Vec<_> =
                    std::iter::successors(schedule.next_plan(from), |t| schedule.next_plan(*t))
                        .take_while(|t| *t <= to)
                        .collect();
                let mut distinct = expected.clone();
                distinct.dedup();
                assert_eq!(distinct, expected, "{pattern} {zone}: no instant twice");
                let mut tick =
                    TickPlans::new(&schedule, every_plan(24 * 60, 1000), to, to, Duration::ZERO);
                assert_eq!(
                    tick.plans_for(Duration::ZERO, newest),
                    expected,
                    "{pattern} {zone} EveryPlan"
                );
                let mut tick =
                    TickPlans::new(&schedule, CatchUp::LatestOnly, to, to, Duration::ZERO);
                let latest: Vec<_> = expected.last().copied().into_iter().collect();
                assert_eq!(
                    tick.plans_for(Duration::ZERO, newest),
                    latest,
                    "{pattern} {zone} LatestOnly"
                );
                // Daily plans: one per local day, shifted or not.
                if pattern == "30 2 * * *" {
                    assert!(expected.len() <= 1, "{zone}: {expected:?}");
                }
            }
        }
    }
}
