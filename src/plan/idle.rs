//! The idle tick: when the last walk over a job's scopes found no plan due, the next tick can
//! know without walking them again that nothing is due yet.
//!
//! A scope gets a new plan only when the first plan after the one it was last due for comes due
//! (`TickPlans::scope` returns that moment). The walk that found nothing due remembers the
//! earliest such moment over all scopes, with what it planned from: the scopes and the pauses.
//! A later tick with the same scopes and pauses, before that moment, would find nothing due
//! either: each scope's newest known plan only grows (claims, triggers), so a scope that was
//! caught up stays caught up until its next plan comes due. The walk costs a hash lookup per
//! scope in a map that outgrows the CPU caches (about a second at a million scopes); the check
//! costs one sequential pass over the scopes to fingerprint them, or nothing when the scope
//! provider returns the same list.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::control::PauseSet;
use crate::scope::Scope;

/// What the last walk over a job's scopes found when no scope had a plan due.
#[derive(Debug, Default)]
pub(crate) struct IdleWatch {
    /// Keys of this runner's fingerprints, random per process, so no list of scope ids can be
    /// made to collide with another on purpose.
    keys: (RandomState, RandomState),
    /// The last walk that found nothing due; `None` after a walk that found plans.
    idle: Option<IdleWalk>,
}

/// One walk that found nothing due.
#[derive(Debug)]
struct IdleWalk {
    /// The scopes walked.
    scopes: Seen,
    /// The pauses obeyed (paused scopes were not walked).
    pauses: PauseSet,
    /// The earliest moment a scope's next plan comes due, compared with `db_now -
    /// schedule_delay`; `None`: no scope has a later plan.
    next_due: Option<DateTime<Utc>>,
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

impl IdleWatch {
    /// Whether a walk over `scopes` under `pauses` at `eligible` (`db_now - schedule_delay`)
    /// would find nothing due; if so, when the first plan comes due (`Some(None)`: never).
    /// `None`: the scopes must be walked.
    pub(crate) fn still_idle(
        &self,
        scopes: &Arc<[Scope]>,
        pauses: &PauseSet,
        eligible: DateTime<Utc>,
    ) -> Option<Option<DateTime<Utc>>> {
        let walk = self.idle.as_ref()?;
        if walk.next_due.is_some_and(|due| eligible >= due) || walk.pauses != *pauses {
            return None;
        }
        let same = match &walk.scopes {
            Seen::Shared(kept) => Arc::ptr_eq(kept, scopes),
            Seen::Fingerprint(seen) => *seen == self.fingerprint(scopes),
        };
        same.then_some(walk.next_due)
    }

    /// Records a walk over `scopes` under `pauses` that found nothing due, with the moment its
    /// first scope's next plan comes due.
    pub(crate) fn walked_idle(
        &mut self,
        scopes: &Arc<[Scope]>,
        pauses: &PauseSet,
        next_due: Option<DateTime<Utc>>,
    ) {
        // The caller holds one reference; another means the list outlives this tick anyway.
        let scopes = if Arc::strong_count(scopes) > 1 {
            Seen::Shared(scopes.clone())
        } else {
            Seen::Fingerprint(self.fingerprint(scopes))
        };
        self.idle = Some(IdleWalk {
            scopes,
            pauses: pauses.clone(),
            next_due,
        });
    }

    /// Records a walk that found plans due (or anything else that may have changed what the
    /// scopes are due for): the next tick walks them.
    pub(crate) fn forget(&mut self) {
        self.idle = None;
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

    #[test]
    fn nothing_is_known_before_a_walk_and_after_one_that_found_plans() {
        let mut watch = IdleWatch::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        assert_eq!(watch.still_idle(&scopes, &pauses, at(0)), None);
        watch.walked_idle(&scopes, &pauses, Some(at(10)));
        assert_eq!(
            watch.still_idle(&scopes, &pauses, at(0)),
            Some(Some(at(10)))
        );
        watch.forget();
        assert_eq!(watch.still_idle(&scopes, &pauses, at(0)), None);
    }

    #[test]
    fn idle_until_the_first_next_plan_comes_due() {
        let mut watch = IdleWatch::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        watch.walked_idle(&scopes, &pauses, Some(at(10)));
        assert_eq!(
            watch.still_idle(&scopes, &pauses, at(9)),
            Some(Some(at(10)))
        );
        assert_eq!(watch.still_idle(&scopes, &pauses, at(10)), None);
        assert_eq!(watch.still_idle(&scopes, &pauses, at(11)), None);
    }

    #[test]
    fn a_schedule_without_later_plans_stays_idle() {
        let mut watch = IdleWatch::default();
        let scopes = tenants(3);
        let pauses = PauseSet::default();
        watch.walked_idle(&scopes, &pauses, None);
        assert_eq!(watch.still_idle(&scopes, &pauses, at(59)), Some(None));
    }

    #[test]
    fn an_equal_new_list_is_recognised_and_a_changed_one_is_walked() {
        let mut watch = IdleWatch::default();
        let pauses = PauseSet::default();
        watch.walked_idle(&tenants(3), &pauses, Some(at(10)));
        // A provider building the same list again.
        assert!(watch.still_idle(&tenants(3), &pauses, at(1)).is_some());
        // A scope added, removed, renamed or moved.
        assert_eq!(watch.still_idle(&tenants(4), &pauses, at(1)), None);
        assert_eq!(watch.still_idle(&tenants(2), &pauses, at(1)), None);
        let renamed: Arc<[Scope]> = vec![
            Scope::new("tenant", "0"),
            Scope::new("tenant", "1"),
            Scope::new("tenant", "x"),
        ]
        .into();
        assert_eq!(watch.still_idle(&renamed, &pauses, at(1)), None);
        let moved: Arc<[Scope]> = vec![
            Scope::new("tenant", "1"),
            Scope::new("tenant", "0"),
            Scope::new("tenant", "2"),
        ]
        .into();
        assert_eq!(watch.still_idle(&moved, &pauses, at(1)), None);
        let other_kind: Arc<[Scope]> = vec![
            Scope::new("tenant", "0"),
            Scope::new("tenant", "1"),
            Scope::new("workspace", "2"),
        ]
        .into();
        assert_eq!(watch.still_idle(&other_kind, &pauses, at(1)), None);
    }

    #[test]
    fn a_shared_list_is_kept_and_a_new_one_only_fingerprinted() {
        let mut watch = IdleWatch::default();
        let pauses = PauseSet::default();
        let fixed = tenants(3);
        let spec_copy = fixed.clone();
        watch.walked_idle(&fixed, &pauses, Some(at(10)));
        assert!(
            matches!(&watch.idle.as_ref().unwrap().scopes, Seen::Shared(kept) if Arc::ptr_eq(kept, &spec_copy))
        );
        watch.walked_idle(&tenants(3), &pauses, Some(at(10)));
        assert!(matches!(
            watch.idle.as_ref().unwrap().scopes,
            Seen::Fingerprint(_)
        ));
        assert!(watch.still_idle(&spec_copy, &pauses, at(1)).is_some());
    }

    #[test]
    fn a_pause_set_or_lifted_means_walking_again() {
        let mut watch = IdleWatch::default();
        let scopes = tenants(3);
        let one = PauseSet::new([Some(Scope::new("tenant", "1"))]);
        watch.walked_idle(&scopes, &one, Some(at(10)));
        assert!(watch.still_idle(&scopes, &one, at(1)).is_some());
        assert_eq!(watch.still_idle(&scopes, &PauseSet::default(), at(1)), None);
        let two = PauseSet::new([Some(Scope::new("tenant", "2"))]);
        assert_eq!(watch.still_idle(&scopes, &two, at(1)), None);
    }
}
