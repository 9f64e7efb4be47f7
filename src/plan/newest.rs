//! The newest plan time stored or claimed per scope, which planning starts from.
//!
//! A runner keeps it in memory for every scope of every job it ticks, so its size per scope is
//! the runtime's memory per scope. Scopes are keyed by two 64-bit hashes with keys random per
//! process instead of by a copy of the scope: 32 bytes a scope in the table instead of about
//! 200 (two strings and a larger slot), 70 MB instead of about 200 MB at a million scopes. Two
//! scopes would share an entry only if both hashes collided, about 1 in 10^27 for a million
//! scopes, and the keys are unknown outside the process, so no scope id can be chosen to
//! collide.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use chrono::{DateTime, Utc};

use crate::scope::Scope;

/// A scope's key: two independent keyed hashes of it. Its own hash is its first half, already
/// uniform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The newest plan time per scope.
#[derive(Debug, Default)]
pub(crate) struct NewestPlans {
    keys: (RandomState, RandomState),
    plans: HashMap<Key, DateTime<Utc>, BuildHasherDefault<KeyHasher>>,
}

impl NewestPlans {
    /// An empty table with room for `scopes` scopes (the job's scopes: the store's answer is
    /// streamed in row by row, so its length is not known before).
    pub(crate) fn with_capacity(scopes: usize) -> Self {
        let mut newest = NewestPlans::default();
        newest.plans.reserve(scopes);
        newest
    }

    /// From a list of every scope's newest plan.
    #[cfg(test)]
    pub(crate) fn new(rows: impl IntoIterator<Item = (Scope, DateTime<Utc>)>) -> Self {
        let rows = rows.into_iter();
        let mut newest = NewestPlans::with_capacity(rows.size_hint().0);
        for (scope, plan_time) in rows {
            newest.note(&scope, plan_time);
        }
        newest
    }

    /// The newest plan known for `scope`.
    pub(crate) fn get(&self, scope: &Scope) -> Option<DateTime<Utc>> {
        self.plans.get(&self.key(scope)).copied()
    }

    /// Notes that `scope` has a row for `plan_time`: the newest known moves forward, never back.
    pub(crate) fn note(&mut self, scope: &Scope, plan_time: DateTime<Utc>) {
        let entry = self.plans.entry(self.key(scope)).or_insert(plan_time);
        if *entry < plan_time {
            *entry = plan_time;
        }
    }

    fn key(&self, scope: &Scope) -> Key {
        Key(self.keys.0.hash_one(scope), self.keys.1.hash_one(scope))
    }
}

/// Hashes a [`Key`]: passes on the one `u64` it writes.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Key` is hashed here, and it writes one `u64`; fold anything else in anyway.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minutes)
    }

    #[test]
    fn each_scope_keeps_its_own_newest_plan_which_only_moves_forward() {
        let a = Scope::new("tenant", "a");
        let b = Scope::new("tenant", "b");
        let a_workspace = Scope::new("workspace", "a");
        let mut newest = NewestPlans::new([(a.clone(), at(5))]);
        assert_eq!(newest.get(&a), Some(at(5)));
        assert_eq!(newest.get(&b), None);
        assert_eq!(
            newest.get(&a_workspace),
            None,
            "the kind is part of the key"
        );
        newest.note(&b, at(1));
        newest.note(&a, at(3));
        assert_eq!(newest.get(&a), Some(at(5)), "never back");
        newest.note(&a, at(7));
        assert_eq!((newest.get(&a), newest.get(&b)), (Some(at(7)), Some(at(1))));
    }

    #[test]
    fn a_million_scopes_are_each_found() {
        let scopes: Vec<Scope> = (0..1_000_000)
            .map(|i| Scope::new("tenant", i.to_string()))
            .collect();
        let newest = NewestPlans::new(
            scopes
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), at(i as i64))),
        );
        assert_eq!(
            newest.plans.len(),
            1_000_000,
            "no two scopes share an entry"
        );
        assert!(
            scopes
                .iter()
                .enumerate()
                .all(|(i, s)| newest.get(s) == Some(at(i as i64)))
        );
    }
}
