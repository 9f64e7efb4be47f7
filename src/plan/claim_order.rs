//! The order a runner offers its due plans in: oldest plan time first; among equal times, the
//! scopes in the order of the executions table's unique key, starting at a random scope and
//! wrapping around. So a runner short of slots serves every scope in turn, replicas ticking
//! together start at different scopes, and each claim statement inserts a run of neighbouring
//! keys: a few leaf pages of the unique index per statement, where plans in random order each
//! dirtied a page of their own once the index outgrew the database's page cache (about 4 KiB
//! of write-ahead log per plan at a million rows). Only efficiency depends on the order: each
//! plan is still claimed once, by the database's unique key.

use chrono::{DateTime, Utc};

use crate::Scope;

/// Puts `items` in claim order; `key` gives an item's plan time and scope.
pub(crate) fn claim_order<T>(items: &mut [T], key: impl Fn(&T) -> (DateTime<Utc>, &Scope)) {
    // `Scope`'s order is its columns' byte order, as SQLite's BINARY collation compares them.
    items.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let mut start = 0;
    while start < items.len() {
        let plan_time = key(&items[start]).0;
        let equal = items[start..].partition_point(|item| key(item).0 == plan_time);
        items[start..start + equal].rotate_left(fastrand::usize(..equal));
        start += equal;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeDelta;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minute)
    }

    fn scopes(n: usize) -> Vec<Scope> {
        (0..n)
            .map(|i| Scope::new("tenant", i.to_string()))
            .collect()
    }

    #[test]
    fn the_oldest_come_first_and_none_is_lost() {
        let mut items: Vec<(Scope, DateTime<Utc>)> = scopes(1000)
            .into_iter()
            .enumerate()
            .map(|(i, scope)| (scope, at((i % 7) as i64)))
            .collect();
        claim_order(&mut items, |(scope, t)| (*t, scope));
        assert!(items.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(
            items
                .iter()
                .map(|(scope, _)| scope)
                .collect::<HashSet<_>>()
                .len(),
            1000
        );
    }

    #[test]
    fn equal_times_come_in_a_different_order_each_time() {
        let firsts: HashSet<Scope> = (0..20)
            .map(|_| {
                let mut items = scopes(1000);
                claim_order(&mut items, |scope| (at(0), scope));
                items[0].clone()
            })
            .collect();
        // Twenty draws of the first of 1,000 equal plans: the same one every time would be a
        // fixed order (fewer than 10 distinct by chance: negligible).
        assert!(firsts.len() >= 10, "{firsts:?}");
    }

    #[test]
    fn equal_times_come_as_one_run_of_the_keys_order() {
        let mut items: Vec<(Scope, DateTime<Utc>)> = scopes(1000)
            .into_iter()
            .flat_map(|scope| [(scope.clone(), at(1)), (scope, at(0))])
            .collect();
        fastrand::shuffle(&mut items);
        claim_order(&mut items, |(scope, t)| (*t, scope));
        for (minute, plans) in [(0, &items[..1000]), (1, &items[1000..])] {
            assert!(plans.iter().all(|(_, t)| *t == at(minute)));
            // Sorted once rotated back to its smallest scope: neighbours in the unique key
            // follow each other, and only the start is random.
            let smallest = (0..plans.len()).min_by_key(|&k| &plans[k].0).unwrap();
            let mut run: Vec<&Scope> = plans.iter().map(|(scope, _)| scope).collect();
            run.rotate_left(smallest);
            assert!(run.windows(2).all(|w| w[0] < w[1]), "minute {minute}");
        }
    }
}
