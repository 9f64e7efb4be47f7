//! Which replica offers a due plan first, so replicas ticking together do not all offer every
//! plan.
//!
//! Every live runner of a job knows the same list of live runners (read from the registry).
//! Each scope has one owner among them, by rendezvous hashing: the runner whose hash with the
//! scope is highest. A runner offers the due plans of the scopes it owns at once; a plan of a
//! scope another runner owns is set aside ([`ForeignPlans`]) and looked at again
//! [`HANDOFF_AFTER`] later: the plans that have a row by then (the owner claimed them) are only
//! noted as planned, the others are offered like any due plan (the owner died, froze, or is
//! short of slots). So in the steady state each plan is offered once, by its owner, and a plan
//! whose owner does not claim it is late by `HANDOFF_AFTER`, never lost.
//!
//! Exactly-once never rests on this: two runners that disagree about who is live (one joined or
//! died since the other read the registry) offer some plans twice, and the database's unique key
//! decides as before. The hash is the stable one of the stagger (`schedule/stagger.rs`), so
//! every replica and version computes the same owner; a runner joining or leaving moves only
//! the scopes it gains or owned.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::schedule::{delta, stable_hash};
use crate::scope::Scope;

/// How long after a runner first sees a plan of another runner's scope due it looks whether
/// that plan has a row, and offers it if not.
pub(crate) const HANDOFF_AFTER: Duration = Duration::from_secs(2);

/// How long a read of the job's live runners is used before it is read again (only by ticks
/// that found plans due): a runner that joins offers plans its peers also offer for about
/// this long.
pub(crate) const OWNERS_MAX_AGE: Duration = Duration::from_secs(1);

/// The live runners of a job as one runner read them, and which scopes are its own.
#[derive(Debug, Clone)]
pub(crate) struct Owners {
    /// Each live runner's hash; this runner's is `mine`.
    runners: Vec<u64>,
    mine: u64,
    read_at: DateTime<Utc>,
}

impl Owners {
    /// The owners among `live` (this runner, `me`, is always one of them), read at database
    /// time `read_at`.
    pub(crate) fn new<'a>(
        me: &str,
        live: impl IntoIterator<Item = &'a str>,
        read_at: DateTime<Utc>,
    ) -> Self {
        let mine = runner_hash(me);
        let mut runners: Vec<u64> = live.into_iter().map(runner_hash).collect();
        runners.push(mine);
        runners.sort_unstable();
        runners.dedup();
        Owners {
            runners,
            mine,
            read_at,
        }
    }

    /// Whether another runner shares the job: otherwise every scope is this runner's.
    pub(crate) fn shared(&self) -> bool {
        self.runners.len() > 1
    }

    /// Whether this read is still used at database time `now`.
    pub(crate) fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        now - self.read_at < delta(OWNERS_MAX_AGE) && now >= self.read_at
    }

    /// Whether this runner owns `scope` of `job`: its hash with the scope is the highest.
    pub(crate) fn owns(&self, job: &str, scope: &Scope) -> bool {
        if !self.shared() {
            return true;
        }
        let scope = stable_hash(&[job.as_bytes(), scope.kind.as_bytes(), scope.id.as_bytes()]);
        let best = self
            .runners
            .iter()
            .copied()
            .max_by_key(|&runner| (score(runner, scope), runner))
            .expect("this runner is always listed");
        best == self.mine
    }
}

fn runner_hash(runner: &str) -> u64 {
    stable_hash(&[runner.as_bytes()])
}

/// A runner's score for a scope: both hashes mixed again, so no runner is favoured.
fn score(runner: u64, scope: u64) -> u64 {
    stable_hash(&[&runner.to_le_bytes(), &scope.to_le_bytes()])
}

/// What a job's ticks keep about sharing its scopes with other runners.
#[derive(Debug, Default)]
pub(crate) struct Sharing {
    /// The last read of the job's live runners; `None` until a tick finds plans due.
    pub(crate) owners: Option<Owners>,
    /// Due plans of other runners' scopes, set aside.
    pub(crate) foreign: ForeignPlans,
}

/// Due plans of other runners' scopes, each with the database time to look at it again, in
/// that order (plans set aside later are looked at later).
#[derive(Debug, Default)]
pub(crate) struct ForeignPlans {
    queue: VecDeque<(DateTime<Utc>, Scope, DateTime<Utc>)>,
    /// The plans in the queue, as keyed hashes: a walk that finds a plan again (its scope's
    /// newest plan is not moved until a row is seen) does not queue it twice.
    held: HashSet<u64>,
    /// The newest plan in the queue per scope (keyed hash of the scope): under `LatestOnly` an
    /// older plan of a scope is dropped when looked at while a newer one waits.
    newest: HashMap<u64, DateTime<Utc>>,
    keys: RandomState,
}

impl ForeignPlans {
    /// Sets `plan_time` of `scope` aside until `check_at`; `false` when it already is.
    pub(crate) fn set_aside(
        &mut self,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        check_at: DateTime<Utc>,
    ) -> bool {
        if !self.held.insert(self.key(scope, plan_time)) {
            return false;
        }
        self.note_newest(scope, plan_time);
        self.queue.push_back((check_at, scope.clone(), plan_time));
        true
    }

    /// The plans to look at by database time `now`, taken out, oldest first. Under
    /// `latest_only`, a plan of a scope with a newer plan still set aside is dropped instead:
    /// the owner that ran the newer plan skipped it, as catch-up does, and offering it at its
    /// handoff would run it after the newer one (a runner that woke just before a boundary saw
    /// the plan before it due, then the boundary's).
    pub(crate) fn take_due(
        &mut self,
        now: DateTime<Utc>,
        latest_only: bool,
    ) -> Vec<(Scope, DateTime<Utc>)> {
        let mut due = Vec::new();
        while self.queue.front().is_some_and(|(at, ..)| *at <= now) {
            let (_, scope, plan_time) = self.queue.pop_front().expect("checked above");
            self.held.remove(&self.key(&scope, plan_time));
            let scope_key = self.keys.hash_one(&scope);
            let newest = self.newest.get(&scope_key).copied();
            if newest.is_none_or(|newest| newest <= plan_time) {
                self.newest.remove(&scope_key);
            } else if latest_only {
                continue;
            }
            due.push((scope, plan_time));
        }
        due
    }

    /// When the next plan set aside is looked at.
    pub(crate) fn next_check(&self) -> Option<DateTime<Utc>> {
        self.queue.front().map(|(at, ..)| *at)
    }

    /// Puts plans taken out by [`take_due`](Self::take_due) back in front, to look at by
    /// `check_at` (the look failed). Plans set aside again meanwhile are not doubled.
    pub(crate) fn put_back(&mut self, plans: Vec<(Scope, DateTime<Utc>)>, check_at: DateTime<Utc>) {
        for (scope, plan_time) in plans.into_iter().rev() {
            if self.held.insert(self.key(&scope, plan_time)) {
                self.note_newest(&scope, plan_time);
                self.queue.push_front((check_at, scope, plan_time));
            }
        }
    }

    fn note_newest(&mut self, scope: &Scope, plan_time: DateTime<Utc>) {
        let newest = self
            .newest
            .entry(self.keys.hash_one(scope))
            .or_insert(plan_time);
        *newest = (*newest).max(plan_time);
    }

    /// Plans set aside.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    fn key(&self, scope: &Scope, plan_time: DateTime<Utc>) -> u64 {
        self.keys.hash_one((scope, plan_time))
    }
}

/// Of the plans looked at again and still without a row, the ones to offer: every one, or
/// under `latest_only` the newest of each scope (catch-up would offer no other).
pub(crate) fn plans_to_take_over(
    mut missing: Vec<(Scope, DateTime<Utc>)>,
    latest_only: bool,
) -> Vec<(Scope, DateTime<Utc>)> {
    if !latest_only {
        return missing;
    }
    // Newest first per scope, then keep the first of each scope.
    missing.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    missing.dedup_by(|later, first| later.0 == first.0);
    missing
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, second).unwrap()
    }

    fn tenant(i: usize) -> Scope {
        Scope::new("tenant", i.to_string())
    }

    fn owners(me: &str, live: &[&str]) -> Owners {
        Owners::new(me, live.iter().copied(), at(0))
    }

    #[test]
    fn every_scope_has_exactly_one_owner_and_shares_are_even() {
        let live = ["replica-0", "replica-1", "replica-2", "replica-3"];
        let views: Vec<Owners> = live.iter().map(|me| owners(me, &live)).collect();
        let mut shares = [0usize; 4];
        for i in 0..10_000 {
            let scope = tenant(i);
            let owning: Vec<usize> = (0..4).filter(|&r| views[r].owns("job", &scope)).collect();
            assert_eq!(owning.len(), 1, "scope {i} has one owner: {owning:?}");
            shares[owning[0]] += 1;
        }
        for share in shares {
            assert!(
                (2_200..=2_800).contains(&share),
                "uneven shares: {shares:?}"
            );
        }
    }

    #[test]
    fn a_runner_leaving_moves_only_its_own_scopes() {
        let four = ["a", "b", "c", "d"];
        let three = ["a", "b", "c"];
        for i in 0..2_000 {
            let scope = tenant(i);
            for me in three {
                if owners("d", &four).owns("job", &scope) {
                    continue;
                }
                // Scopes "d" did not own keep their owner once it is gone.
                assert_eq!(
                    owners(me, &four).owns("job", &scope),
                    owners(me, &three).owns("job", &scope),
                    "scope {i} moved from or to {me}"
                );
            }
        }
    }

    #[test]
    fn alone_or_unlisted_a_runner_owns_everything_it_is_not_told_otherwise() {
        let alone = owners("a", &[]);
        assert!(!alone.shared());
        assert!((0..100).all(|i| alone.owns("job", &tenant(i))));
        // This runner missing from the registry (its registration failed) still counts.
        let others = owners("a", &["b"]);
        assert!(others.shared());
        let mine = (0..1_000)
            .filter(|&i| others.owns("job", &tenant(i)))
            .count();
        assert!((350..=650).contains(&mine), "{mine}");
    }

    #[test]
    fn owners_differ_per_job() {
        let view = owners("a", &["a", "b"]);
        let differ = (0..1_000)
            .filter(|&i| view.owns("one", &tenant(i)) != view.owns("two", &tenant(i)))
            .count();
        assert!(differ > 300, "{differ}");
    }

    #[test]
    fn a_read_is_fresh_for_a_while_only() {
        let view = owners("a", &["b"]);
        assert!(view.fresh_at(at(0)));
        assert!(!view.fresh_at(at(1)));
    }

    #[test]
    fn plans_set_aside_come_back_once_in_order_when_due() {
        let mut foreign = ForeignPlans::default();
        assert!(foreign.set_aside(&tenant(1), at(0), at(2)));
        assert!(foreign.set_aside(&tenant(2), at(0), at(3)));
        assert!(!foreign.set_aside(&tenant(1), at(0), at(4)), "queued once");
        assert_eq!(foreign.len(), 2);
        assert_eq!(foreign.next_check(), Some(at(2)));
        assert!(foreign.take_due(at(1), true).is_empty());
        assert_eq!(foreign.take_due(at(2), true), vec![(tenant(1), at(0))]);
        assert_eq!(foreign.next_check(), Some(at(3)));
        assert_eq!(foreign.take_due(at(9), true), vec![(tenant(2), at(0))]);
        assert_eq!(foreign.next_check(), None);
        // A failed look puts plans back in front, once.
        foreign.set_aside(&tenant(3), at(0), at(20));
        foreign.put_back(vec![(tenant(1), at(0)), (tenant(3), at(0))], at(9));
        assert_eq!(foreign.len(), 2);
        assert_eq!(foreign.take_due(at(9), true), vec![(tenant(1), at(0))]);
        assert_eq!(foreign.take_due(at(20), true), vec![(tenant(3), at(0))]);
        // Taken out, a plan may be set aside again.
        assert!(foreign.set_aside(&tenant(1), at(0), at(30)));
        assert_eq!(foreign.len(), 1);
    }

    #[test]
    fn under_latest_only_a_newer_plan_set_aside_drops_an_older_one_of_its_scope() {
        // A runner woke just before a boundary and set aside the plan before it, then the
        // boundary's: the owner ran the boundary's plan, so the older one is never offered.
        let set_aside = || {
            let mut foreign = ForeignPlans::default();
            foreign.set_aside(&tenant(1), at(0), at(2));
            foreign.set_aside(&tenant(2), at(0), at(2));
            foreign.set_aside(&tenant(1), at(5), at(7));
            foreign
        };
        let mut latest_only = set_aside();
        assert_eq!(latest_only.take_due(at(2), true), vec![(tenant(2), at(0))]);
        assert_eq!(latest_only.take_due(at(7), true), vec![(tenant(1), at(5))]);
        // Every plan is looked at under EveryPlan, oldest first.
        let mut every_plan = set_aside();
        assert_eq!(
            every_plan.take_due(at(2), false),
            vec![(tenant(1), at(0)), (tenant(2), at(0))]
        );
        assert_eq!(every_plan.take_due(at(7), false), vec![(tenant(1), at(5))]);
        // Once the newer plan is looked at, an older one set aside again is offered.
        let mut again = set_aside();
        again.take_due(at(7), true);
        again.set_aside(&tenant(1), at(0), at(9));
        assert_eq!(again.take_due(at(9), true), vec![(tenant(1), at(0))]);
    }

    #[test]
    fn latest_only_takes_over_the_newest_missing_plan_of_each_scope() {
        let missing = vec![(tenant(1), at(0)), (tenant(2), at(0)), (tenant(1), at(1))];
        let mut every = plans_to_take_over(missing.clone(), false);
        every.sort();
        assert_eq!(every.len(), 3);
        let mut latest = plans_to_take_over(missing, true);
        latest.sort();
        assert_eq!(latest, vec![(tenant(1), at(1)), (tenant(2), at(0))]);
    }
}
