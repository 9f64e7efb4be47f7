//! What the last walk over a job's scopes found, and how long it still holds.
//!
//! A scope gets a new plan only when the first plan after the one it was last due for comes due
//! (`TickPlans::scope` returns that moment). A walk remembers the earliest such moment over all
//! scopes, with what it planned from: the scopes and the pauses. A later tick with the same
//! scopes and pauses, before that moment, would find the same: each scope's newest known plan
//! only grows (claims, triggers), so a scope that was caught up stays caught up until its next
//! plan comes due. So the tick does not walk the scopes again:
//!
//! - when the walk found nothing due (the idle tick), it knows nothing is due;
//! - when it found more plans than one tick can claim (a burst), the tick claims the next of
//!   the plans left over (its backlog, already in claim order) and walks again only once they
//!   are all sent.
//!
//! A walk costs a hash lookup per scope (0.2 s at a million scopes); the check costs one
//! sequential pass over the scopes to fingerprint them, or nothing when the scope provider
//! returns the same list.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::control::PauseSet;
use crate::scope::Scope;

/// What the last walk over a job's scopes found, while it holds.
#[derive(Debug, Default)]
pub(crate) struct LastWalk {
    /// Keys of this runner's fingerprints, random per process, so no list of scope ids can be
    /// made to collide with another on purpose.
    keys: (RandomState, RandomState),
    /// The last walk; `None`: the next tick walks.
    walk: Option<Walk>,
}

/// One walk.
#[derive(Debug)]
struct Walk {
    /// The scopes walked.
    scopes: Seen,
    /// The pauses obeyed (paused scopes were not walked).
    pauses: PauseSet,
    /// The earliest moment a scope's next plan comes due, compared with `db_now -
    /// schedule_delay`; `None`: no scope has a later plan.
    next_due: Option<DateTime<Utc>>,
    /// Whether the walk found plans due: once its backlog is spent, the next tick walks again
    /// (catch-up may have more); a walk that found none stays the idle answer.
    found_due: bool,
    /// Due plans found and not yet handed out, in claim order, as `(index in the scopes, plan
    /// time)`; from `next` on.
    backlog: Vec<(usize, DateTime<Utc>)>,
    next: usize,
}

/// How a walk's scopes are recognised.
#[derive(Debug)]
enum Seen {
    /// A list something else holds too (a fixed list in the spec): keeping it costs nothing,
    /// and the check is a pointer comparison.
    Shared(Arc<[Scope]>),
    /// A list the scope provider built for this tick: only its fingerprint is kept, not a
    /// second copy of every scope between ticks.
    Fingerprint(Fingerprint),
}

/// The number of scopes and two independent 64-bit hashes of them, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    hashes: (u64, u64),
}

/// What a tick takes from the last walk instead of walking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// When the first scope's next plan comes due (`None`: never).
    pub(crate) next_due: Option<DateTime<Utc>>,
    /// The next plans of the backlog, in claim order, as `(index in the scopes, plan time)`:
    /// empty when the walk found nothing due.
    pub(crate) plans: Vec<(usize, DateTime<Utc>)>,
}

impl LastWalk {
    /// What the last walk still says at `eligible` (`db_now - schedule_delay`) for `scopes`
    /// under `pauses`, handing out at most `room` plans of its backlog; `None`: the scopes must
    /// be walked.
    pub(crate) fn resume(
        &mut self,
        scopes: &Arc<[Scope]>,
        pauses: &PauseSet,
        eligible: DateTime<Utc>,
        room: usize,
    ) -> Option<Resumed> {
        let walk = self.walk.as_ref()?;
        let holds = walk.next_due.is_none_or(|due| eligible < due)
            && walk.pauses == *pauses
            && match &walk.scopes {
                Seen::Shared(kept) => Arc::ptr_eq(kept, scopes),
                Seen::Fingerprint(seen) => *seen == self.fingerprint(scopes),
            };
        if !holds {
            self.walk = None;
            return None;
        }
        let walk = self.walk.as_mut()?;
        let next_due = walk.next_due;
        if walk.next == walk.backlog.len() {
            if walk.found_due {
                // The backlog is spent: walk again (catch-up may have more plans due).
                self.walk = None;
                return None;
            }
            return Some(Resumed {
                next_due,
                plans: Vec::new(),
            });
        }
        let end = walk.backlog.len().min(walk.next.saturating_add(room));
        let plans = walk.backlog[walk.next..end].to_vec();
        walk.next = end;
        Some(Resumed { next_due, plans })
    }

    /// Records a walk over `scopes` under `pauses`: `found` plans were due, `backlog` of them
    /// (in claim order) were left for later ticks, and the first scope's next plan comes due at
    /// `next_due`.
    pub(crate) fn walked(
        &mut self,
        scopes: &Arc<[Scope]>,
        pauses: &PauseSet,
        next_due: Option<DateTime<Utc>>,
        found: usize,
        backlog: Vec<(usize, DateTime<Utc>)>,
    ) {
        // The caller holds one reference; another means the list outlives this tick anyway.
        let scopes = if Arc::strong_count(scopes) > 1 {
            Seen::Shared(scopes.clone())
        } else {
            Seen::Fingerprint(self.fingerprint(scopes))
        };
        self.walk = Some(Walk {
            scopes,
            pauses: pauses.clone(),
            next_due,
            found_due: found > 0,
            backlog,
            next: 0,
        });
    }

    /// Puts plans handed out but not sent (no free slot this tick) back at the front of the
    /// backlog, in their order. Without a walk to put them in, they are found by the next walk
    /// (they have no row).
    pub(crate) fn give_back(&mut self, plans: Vec<(usize, DateTime<Utc>)>) {
        if plans.is_empty() {
            return;
        }
        if let Some(walk) = self.walk.as_mut() {
            let mut backlog = plans;
            backlog.extend_from_slice(&walk.backlog[walk.next..]);
            walk.backlog = backlog;
            walk.next = 0;
            walk.found_due = true;
        }
    }

    /// Whether the last walk still holds plans not handed out: the job should tick again at
    /// once, not at its next plan or tick interval.
    pub(crate) fn has_backlog(&self) -> bool {
        self.walk
            .as_ref()
            .is_some_and(|walk| walk.next < walk.backlog.len())
    }

    /// Forgets the last walk: the next tick walks.
    pub(crate) fn forget(&mut self) {
        self.walk = None;
    }

    fn fingerprint(&self, scopes: &[Scope]) -> Fingerprint {
        let mut a = self.keys.0.build_hasher();
        let mut b = self.keys.1.build_hasher();
        for scope in scopes {
            scope.hash(&mut a);
            scope.hash(&mut b);
        }
        Fingerprint {
            len: scopes.len(),
            hashes: (a.finish(), b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, second).unwrap()
    }

    fn tenants(n: usize) -> Arc<[Scope]> {
        (0..n)
            .map(|i| Scope::new("tenant", i.to_string()))
            .collect()
    }

    fn idle(next_due: Option<DateTime<Utc>>) -> Option<Resumed> {
        Some(Resumed {
            next_due,
            plans: Vec::new(),
        })
    }

    #[test]
    fn nothing_is_known_before_a_walk_and_after_one_that_found_plans_and_left_none() {
        let mut last = LastWalk::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        assert_eq!(last.resume(&scopes, &pauses, at(0), 10), None);
        last.walked(&scopes, &pauses, Some(at(10)), 0, Vec::new());
        assert_eq!(last.resume(&scopes, &pauses, at(0), 10), idle(Some(at(10))));
        last.walked(&scopes, &pauses, Some(at(10)), 3, Vec::new());
        assert_eq!(
            last.resume(&scopes, &pauses, at(0), 10),
            None,
            "walk again: catch-up may have more"
        );
        last.walked(&scopes, &pauses, Some(at(10)), 0, Vec::new());
        last.forget();
        assert_eq!(last.resume(&scopes, &pauses, at(0), 10), None);
    }

    #[test]
    fn a_backlog_is_reported_until_every_plan_is_handed_out() {
        let mut last = LastWalk::default();
        let scopes = tenants(5);
        let pauses = PauseSet::default();
        assert!(!last.has_backlog());
        let backlog: Vec<_> = (0..5).map(|i| (i, at(0))).collect();
        last.walked(&scopes, &pauses, Some(at(10)), 5, backlog);
        assert!(last.has_backlog());
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 2).unwrap().plans.len(),
            2
        );
        assert!(last.has_backlog(), "three left");
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 3).unwrap().plans.len(),
            3
        );
        assert!(!last.has_backlog());
        last.give_back(vec![(4, at(0))]);
        assert!(last.has_backlog());
        last.forget();
        assert!(!last.has_backlog());
    }

    #[test]
    fn idle_until_the_first_next_plan_comes_due() {
        let mut last = LastWalk::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        last.walked(&scopes, &pauses, Some(at(10)), 0, Vec::new());
        assert_eq!(last.resume(&scopes, &pauses, at(9), 10), idle(Some(at(10))));
        assert_eq!(last.resume(&scopes, &pauses, at(10), 10), None);
        // Once it no longer holds, it is gone.
        assert_eq!(last.resume(&scopes, &pauses, at(9), 10), None);
    }

    #[test]
    fn a_schedule_without_later_plans_stays_idle() {
        let mut last = LastWalk::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        last.walked(&scopes, &pauses, None, 0, Vec::new());
        assert_eq!(last.resume(&scopes, &pauses, at(59), 10), idle(None));
    }

    #[test]
    fn the_backlog_is_handed_out_in_order_then_the_next_tick_walks() {
        let mut last = LastWalk::default();
        let scopes = tenants(5);
        let pauses = PauseSet::default();
        let backlog: Vec<(usize, DateTime<Utc>)> = (0..5).map(|i| (4 - i, at(0))).collect();
        last.walked(&scopes, &pauses, Some(at(10)), 7, backlog.clone());
        let first = last.resume(&scopes, &pauses, at(1), 2).unwrap();
        assert_eq!(
            (first.next_due, first.plans),
            (Some(at(10)), backlog[..2].to_vec())
        );
        // No room (retries filled the tick): nothing handed out, nothing lost.
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 0).unwrap().plans,
            Vec::new()
        );
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 2).unwrap().plans,
            backlog[2..4].to_vec()
        );
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 2).unwrap().plans,
            backlog[4..].to_vec()
        );
        assert_eq!(
            last.resume(&scopes, &pauses, at(1), 2),
            None,
            "drained: walk again"
        );
    }

    #[test]
    fn plans_given_back_come_first_and_keep_the_walk_going() {
        let mut last = LastWalk::default();
        let scopes = tenants(5);
        let pauses = PauseSet::default();
        let backlog: Vec<(usize, DateTime<Utc>)> = (0..4).map(|i| (i, at(i as u32))).collect();
        last.walked(&scopes, &pauses, Some(at(30)), 6, backlog.clone());
        let handed = last.resume(&scopes, &pauses, at(20), 3).unwrap().plans;
        assert_eq!(handed, backlog[..3]);
        // One slot was free: the last two were not sent.
        last.give_back(handed[1..].to_vec());
        let again = last.resume(&scopes, &pauses, at(20), 10).unwrap().plans;
        assert_eq!(again, [backlog[1], backlog[2], backlog[3]]);
        // A walk that found nothing due and got plans back (a tick's own) hands them out too.
        last.walked(&scopes, &pauses, Some(at(30)), 0, Vec::new());
        last.give_back(vec![(2, at(0))]);
        assert_eq!(
            last.resume(&scopes, &pauses, at(20), 10).unwrap().plans,
            [(2, at(0))]
        );
        assert_eq!(
            last.resume(&scopes, &pauses, at(20), 10),
            None,
            "then walks"
        );
        // Without a walk, nothing is kept: the next walk finds them.
        last.give_back(vec![(2, at(0))]);
        assert_eq!(last.resume(&scopes, &pauses, at(20), 10), None);
    }

    #[test]
    fn a_backlog_is_dropped_when_the_walk_no_longer_holds() {
        let mut last = LastWalk::default();
        let scopes = tenants(5);
        let pauses = PauseSet::default();
        last.walked(
            &scopes,
            &pauses,
            Some(at(10)),
            5,
            vec![(0, at(0)), (1, at(0))],
        );
        assert_eq!(last.resume(&tenants(6), &pauses, at(1), 1), None);
        assert_eq!(last.resume(&scopes, &pauses, at(1), 1), None, "gone");
        last.walked(
            &scopes,
            &pauses,
            Some(at(10)),
            5,
            vec![(0, at(0)), (1, at(0))],
        );
        assert_eq!(
            last.resume(&scopes, &pauses, at(10), 1),
            None,
            "a next plan came due"
        );
    }

    #[test]
    fn an_equal_new_list_is_recognised_and_a_changed_one_is_walked() {
        let mut last = LastWalk::default();
        let pauses = PauseSet::default();
        let walked =
            |last: &mut LastWalk| last.walked(&tenants(3), &pauses, Some(at(10)), 0, Vec::new());
        walked(&mut last);
        // A provider building the same list again.
        assert!(last.resume(&tenants(3), &pauses, at(1), 10).is_some());
        // A scope added, removed, renamed, moved or of another kind.
        let renamed: Arc<[Scope]> = vec![
            Scope::new("tenant", "0"),
            Scope::new("tenant", "1"),
            Scope::new("tenant", "x"),
        ]
        .into();
        let moved: Arc<[Scope]> = vec![
            Scope::new("tenant", "1"),
            Scope::new("tenant", "0"),
            Scope::new("tenant", "2"),
        ]
        .into();
        let other_kind: Arc<[Scope]> = vec![
            Scope::new("tenant", "0"),
            Scope::new("tenant", "1"),
            Scope::new("workspace", "2"),
        ]
        .into();
        for changed in [tenants(4), tenants(2), renamed, moved, other_kind] {
            walked(&mut last);
            assert_eq!(
                last.resume(&changed, &pauses, at(1), 10),
                None,
                "{changed:?}"
            );
        }
    }

    #[test]
    fn a_shared_list_is_kept_and_a_new_one_only_fingerprinted() {
        let mut last = LastWalk::default();
        let pauses = PauseSet::default();
        let fixed = tenants(3);
        let spec_copy = fixed.clone();
        last.walked(&fixed, &pauses, Some(at(10)), 0, Vec::new());
        assert!(
            matches!(&last.walk.as_ref().unwrap().scopes, Seen::Shared(kept) if Arc::ptr_eq(kept, &spec_copy))
        );
        last.walked(&tenants(3), &pauses, Some(at(10)), 0, Vec::new());
        assert!(matches!(
            last.walk.as_ref().unwrap().scopes,
            Seen::Fingerprint(_)
        ));
        assert!(last.resume(&spec_copy, &pauses, at(1), 10).is_some());
    }

    #[test]
    fn a_pause_set_or_lifted_means_walking_again() {
        let mut last = LastWalk::default();
        let scopes = tenants(3);
        let one = PauseSet::new([Some(Scope::new("tenant", "1"))]);
        last.walked(&scopes, &one, Some(at(10)), 0, Vec::new());
        assert!(last.resume(&scopes, &one, at(1), 10).is_some());
        assert_eq!(last.resume(&scopes, &PauseSet::default(), at(1), 10), None);
        last.walked(&scopes, &one, Some(at(10)), 0, Vec::new());
        let two = PauseSet::new([Some(Scope::new("tenant", "2"))]);
        assert_eq!(last.resume(&scopes, &two, at(1), 10), None);
    }
}
