//! Pure planning: which plan times a scope is due for, and which failed rows are still current.
//!
//! - [`CatchUp`]: what to do about plans missed while no runner was ticking.
//! - `cadence_plans`: the plans of one scope for one tick (no I/O; unit-tested here).
//! - `retry_is_current`: whether a retry-eligible FAILED row should be offered again.
//!
//! The Supervisor calls these with the database time read once per tick, and the store only writes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::schedule::{delta, floor_plan};

/// What a job does about plans it missed (runner down, ticks delayed).
///
/// Default: [`CatchUp::LatestOnly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CatchUp {
    /// Run only the latest plan. Missed plans are skipped; a plan that already has a row is a
    /// no-op. Failed rows are retried only while they are still the latest plan of their scope.
    #[default]
    LatestOnly,
    /// Run every plan after the newest stored one, oldest first, never older than
    /// `db_now - window`, at most `max_plans_per_tick` per scope per tick (more come next tick).
    /// A scope without history starts at the latest plan. A zero window means latest only.
    /// Every retry-eligible FAILED row inside the window is retried.
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

/// The oldest plan time a retry may still be offered for in this tick, as a lower bound for the
/// store query. `None`: no bound in time (filtering per scope happens in [`retry_is_current`]).
pub(crate) fn retry_since(
    catch_up: CatchUp,
    latest: Option<DateTime<Utc>>,
    db_now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match catch_up.window() {
        Some(window) => Some(db_now - delta(window)),
        None => latest,
    }
}

/// Whether a retry-eligible FAILED row of plan `plan_time` should be offered again.
///
/// Under LatestOnly only while it is still the newest plan of its scope (a newer plan supersedes
/// it); under EveryPlan while it is inside the window, however many newer plans succeeded.
pub(crate) fn retry_is_current(
    catch_up: CatchUp,
    plan_time: DateTime<Utc>,
    newest_known: Option<DateTime<Utc>>,
    db_now: DateTime<Utc>,
) -> bool {
    match catch_up.window() {
        Some(window) => plan_time >= db_now - delta(window),
        None => newest_known.is_none_or(|newest| plan_time >= newest),
    }
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

    #[test]
    fn old_failed_buckets_stay_current_inside_the_window() {
        let now = at("2026-11-22T10:07:30Z");
        let newest = Some(at("2026-11-22T10:07:00Z"));
        let old = at("2026-11-22T10:01:00Z");
        assert!(retry_is_current(every_plan(60, 10), old, newest, now));
        assert!(!retry_is_current(every_plan(5, 10), old, newest, now));
        // LatestOnly: superseded by a newer plan.
        assert!(!retry_is_current(CatchUp::LatestOnly, old, newest, now));
        assert!(retry_is_current(
            CatchUp::LatestOnly,
            at("2026-11-22T10:07:00Z"),
            newest,
            now
        ));
    }

    #[test]
    fn retry_lower_bound_follows_the_mode() {
        let now = at("2026-11-22T10:07:30Z");
        let latest = Some(at("2026-11-22T10:07:00Z"));
        assert_eq!(retry_since(CatchUp::LatestOnly, latest, now), latest);
        assert_eq!(
            retry_since(every_plan(5, 1), latest, now),
            Some(at("2026-11-22T10:02:30Z"))
        );
    }
}
