//! Pure planning: which plan times a scope is due for, and which failed rows are still current.
//!
//! - [`CatchUp`]: what to do about plans missed while no runner was ticking.
//! - `cadence_plans`: the plans of one scope for one tick (no I/O; unit-tested here).
//! - `due_retries`: which FAILED rows to claim now, and when the next one comes due.
//!
//! Catch-up decides only which *never-started* plans get rows. A FAILED row is retried at its
//! `next_retry_at` in every mode, whatever newer plans exist, until SUCCESS or DEAD (or
//! SUPERSEDED, for jobs that opted in).
//!
//! The Supervisor calls these with the database time read once per tick, and the store only writes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::schedule::{delta, floor_plan};
use crate::scope::Scope;
use crate::store::RetryCandidate;

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
    /// (ascending, at most `max_plans_per_tick`), for a cadence schedule without delay: what one
    /// tick would claim for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cronlease::CatchUp;
    ///
    /// let now = "2026-11-22T10:07:30Z".parse().unwrap();
    /// let newest = Some("2026-11-22T10:05:00Z".parse().unwrap());
    /// let catch_up = CatchUp::EveryPlan { window: Duration::from_secs(3600), max_plans_per_tick: 5 };
    /// let due = catch_up.due_plans(Duration::from_secs(60), now, newest);
    /// assert_eq!(due.len(), 2); // 10:06 and 10:07
    /// assert!(CatchUp::LatestOnly.due_plans(Duration::from_secs(60), now, due.last().copied()).is_empty());
    /// ```
    pub fn due_plans(
        &self,
        cadence: Duration,
        db_now: DateTime<Utc>,
        newest_known: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        let latest = floor_plan(db_now, cadence);
        cadence_plans(*self, cadence, latest, db_now, newest_known)
    }

    /// The catch-up window, `None` meaning latest only.
    fn window(&self) -> Option<Duration> {
        match *self {
            CatchUp::EveryPlan { window, .. } if !window.is_zero() => Some(window),
            _ => None,
        }
    }
}

/// The plan times one scope should claim this tick, ascending.
///
/// `latest` is `floor_plan(db_now - schedule_delay)`; `newest_known` is the newest plan time stored
/// (or already claimed) for the scope.
pub(crate) fn cadence_plans(
    catch_up: CatchUp,
    cadence: Duration,
    latest: DateTime<Utc>,
    db_now: DateTime<Utc>,
    newest_known: Option<DateTime<Utc>>,
) -> Vec<DateTime<Utc>> {
    if newest_known.is_some_and(|newest| newest >= latest) {
        return Vec::new();
    }
    let Some(window) = catch_up.window() else {
        return vec![latest];
    };
    let step = delta(cadence);
    let oldest_allowed = ceil_plan(db_now - delta(window), cadence);
    let first = match newest_known {
        Some(newest) => (floor_plan(newest, cadence) + step).max(oldest_allowed),
        None => latest,
    };
    std::iter::successors(Some(first), |t| Some(*t + step))
        .take_while(|t| *t <= latest)
        .take(catch_up.max_plans_per_tick())
        .collect()
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

/// The first plan boundary at or after `t`.
fn ceil_plan(t: DateTime<Utc>, cadence: Duration) -> DateTime<Utc> {
    let floor = floor_plan(t, cadence);
    if floor < t {
        floor + delta(cadence)
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn every_plan(window_min: u64, max: usize) -> CatchUp {
        CatchUp::EveryPlan {
            window: MIN * window_min as u32,
            max_plans_per_tick: max,
        }
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
}
