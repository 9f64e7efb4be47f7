//! The order a runner offers its due plans in: oldest plan time first, in random order among
//! equal times, so a runner short of slots serves every scope in turn and replicas ticking
//! together try different scopes first. Only efficiency depends on it: each plan is still
//! claimed once, by the database's unique key.

use chrono::{DateTime, Utc};

/// The first `keep` of `items` in claim order, sorted. The rest is dropped unsorted, in linear
/// time, so a tick that can claim 16,000 of a million due plans neither sorts the million nor
/// turns them into claims.
pub(crate) fn first_for_claim<T>(
    mut items: Vec<T>,
    keep: usize,
    plan_time: impl Fn(&T) -> DateTime<Utc>,
) -> Vec<T> {
    fastrand::shuffle(&mut items);
    if items.len() > keep {
        items.select_nth_unstable_by_key(keep, |item| plan_time(item));
        items.truncate(keep);
    }
    // Stable: equal times keep their random order.
    items.sort_by_key(|item| plan_time(item));
    items
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeDelta;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minute)
    }

    #[test]
    fn the_oldest_come_first_and_only_as_many_as_kept() {
        // Scope i has plans at minutes i % 7: the 10 kept are the oldest, sorted.
        let items: Vec<(usize, DateTime<Utc>)> =
            (0..1000).map(|i| (i, at((i % 7) as i64))).collect();
        let kept = first_for_claim(items.clone(), 10, |(_, t)| *t);
        assert_eq!(kept.len(), 10);
        assert!(kept.iter().all(|(_, t)| *t == at(0)));
        let kept = first_for_claim(items.clone(), 300, |(_, t)| *t);
        let times: Vec<DateTime<Utc>> = kept.iter().map(|(_, t)| *t).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "oldest first");
        // 143 at minute 0, 143 at minute 1, then 14 of minute 2.
        assert_eq!(times.iter().filter(|t| **t == at(0)).count(), 143);
        assert_eq!(times.iter().filter(|t| **t == at(1)).count(), 143);
        assert_eq!(times.iter().filter(|t| **t == at(2)).count(), 14);
        // Keeping more than there are keeps them all, sorted, none lost.
        let all = first_for_claim(items, usize::MAX, |(_, t)| *t);
        assert_eq!(all.len(), 1000);
        assert_eq!(
            all.iter().map(|(i, _)| *i).collect::<HashSet<_>>().len(),
            1000
        );
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn equal_times_come_in_a_different_order_each_time() {
        let items: Vec<usize> = (0..1000).collect();
        let firsts: HashSet<usize> = (0..20)
            .map(|_| first_for_claim(items.clone(), 1000, |_| at(0))[0])
            .collect();
        // Twenty draws of the first of 1,000 equal plans: the same one every time would be
        // a fixed order (probability of fewer than 10 distinct by chance: negligible).
        assert!(firsts.len() >= 10, "{firsts:?}");
        let kept: HashSet<usize> = (0..20)
            .flat_map(|_| first_for_claim(items.clone(), 10, |_| at(0)))
            .collect();
        assert!(
            kept.len() > 50,
            "which plans are kept varies too: {}",
            kept.len()
        );
    }
}
