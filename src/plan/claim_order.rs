//! The order a runner offers its due plans in: oldest plan time first, in random order among
//! equal times, so a runner short of slots serves every scope in turn and replicas ticking
//! together try different scopes first. Only efficiency depends on it: each plan is still
//! claimed once, by the database's unique key.

use chrono::{DateTime, Utc};

/// Puts `items` in claim order.
pub(crate) fn claim_order<T>(items: &mut [T], plan_time: impl Fn(&T) -> DateTime<Utc>) {
    fastrand::shuffle(items);
    // Stable: equal times keep their random order.
    items.sort_by_key(|item| plan_time(item));
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
    fn the_oldest_come_first_and_none_is_lost() {
        let mut items: Vec<(usize, DateTime<Utc>)> =
            (0..1000).map(|i| (i, at((i % 7) as i64))).collect();
        claim_order(&mut items, |(_, t)| *t);
        assert!(items.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(
            items.iter().map(|(i, _)| *i).collect::<HashSet<_>>().len(),
            1000
        );
    }

    #[test]
    fn equal_times_come_in_a_different_order_each_time() {
        let firsts: HashSet<usize> = (0..20)
            .map(|_| {
                let mut items: Vec<usize> = (0..1000).collect();
                claim_order(&mut items, |_| at(0));
                items[0]
            })
            .collect();
        // Twenty draws of the first of 1,000 equal plans: the same one every time would be a
        // fixed order (fewer than 10 distinct by chance: negligible).
        assert!(firsts.len() >= 10, "{firsts:?}");
    }
}
