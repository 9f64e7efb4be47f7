//! The order a runner offers its due plans in, and when it stops offering them.
//!
//! - `first_for_claim`: oldest plan times first; among equal times, a ring of scopes shared by
//!   every runner (a hash of the scope), read from 16 points of the ring that depend on the
//!   runner id, so replicas ticking together start their claims at different scopes and move
//!   away from each other, each through its own arcs (their sum is near an even share).
//!   Backwards (after meeting another runner), the runner takes the end of the arcs before
//!   its points, which the runners there work forward through, and they meet halfway.
//! - `others_are_here`: whether a claim batch came back with enough plans another runner
//!   holds that this runner should stop offering plans this tick and read the newest plans
//!   again instead (one statement), rather than learn of the others' claims one conflicted
//!   plan at a time.
//!
//! Both only steer efficiency: every plan is still claimed by exactly one runner, by the
//! database's unique key, whatever order runners offer plans in.

use chrono::{DateTime, Utc};

use crate::scope::Scope;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of the parts, each followed by a byte no UTF-8 text contains, then a final mix so
/// nearby ids spread over the ring.
fn ring_hash(parts: &[&str]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in part.as_bytes() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
        hash = (hash ^ 0xff).wrapping_mul(FNV_PRIME);
    }
    // murmur3's 64-bit finaliser.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Points on the ring per runner: a runner's share is the sum of this many arcs, so shares
/// come out near even (consistent hashing's virtual nodes).
const POINTS: u32 = 16;

/// The first `keep` of `items` in claim order, sorted: oldest plan first; plans of equal time
/// by their distance from the nearest of `runner_id`'s points before them on the ring (after
/// them, `backwards`): the runner takes the start of each of its arcs first (the end of the
/// arcs before its points), see the module docs. The rest is dropped unsorted, in linear time,
/// so a tick that can claim 16,000 of a million due plans does not sort the million.
pub(crate) fn first_for_claim<T>(
    items: Vec<T>,
    keep: usize,
    runner_id: &str,
    backwards: bool,
    key: impl Fn(&T) -> (&Scope, DateTime<Utc>),
) -> Vec<T> {
    let mut points: Vec<u64> = (0..POINTS)
        .map(|i| ring_hash(&[runner_id, &i.to_string()]))
        .collect();
    points.sort_unstable();
    let (first, last) = (points[0], points[points.len() - 1]);
    let order = |item: &T| {
        let (scope, plan_time) = key(item);
        let at = ring_hash(&[&scope.kind, &scope.id]);
        // Index of the first point after `at`.
        let next = points.partition_point(|p| *p <= at);
        let distance = if backwards {
            points.get(next).copied().unwrap_or(first).wrapping_sub(at)
        } else {
            let before = if next == 0 { last } else { points[next - 1] };
            at.wrapping_sub(before)
        };
        (plan_time, distance)
    };
    let mut keyed: Vec<_> = items.into_iter().map(|item| (order(&item), item)).collect();
    if keyed.len() > keep {
        keyed.select_nth_unstable_by_key(keep, |(order, _)| *order);
        keyed.truncate(keep);
    }
    keyed.sort_unstable_by_key(|(order, _)| *order);
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// Whether a claim batch of `sent` plans, of which `conflicted` were held by another runner,
/// says other runners are claiming the plans this runner was about to offer: a quarter or more
/// of the batch.
pub(crate) fn others_are_here(sent: usize, conflicted: usize) -> bool {
    conflicted > 0 && conflicted * 4 >= sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn plans(n: usize) -> Vec<(Scope, DateTime<Utc>)> {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        (0..n)
            .map(|i| (Scope::new("tenant", i.to_string()), at))
            .collect()
    }

    fn order(runner: &str, items: Vec<(Scope, DateTime<Utc>)>) -> Vec<Scope> {
        first_for_claim(items, usize::MAX, runner, false, |(scope, at)| (scope, *at))
            .into_iter()
            .map(|(scope, _)| scope)
            .collect()
    }

    #[test]
    fn older_plans_come_first_whatever_the_ring() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let items = vec![
            (Scope::new("t", "a"), at + TimeDelta::minutes(2)),
            (Scope::new("t", "b"), at),
            (Scope::new("t", "c"), at + TimeDelta::minutes(1)),
        ];
        let ids: Vec<String> = order("r", items).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn four_replicas_own_near_even_shares() {
        // A scope goes to the replica nearest behind it: the one that takes it first.
        let mut shares = [0usize; 4];
        let orders: Vec<Vec<Scope>> = (0..4)
            .map(|i| order(&format!("replica-{i}"), plans(10_000)))
            .collect();
        let ranks: Vec<std::collections::HashMap<&Scope, usize>> = orders
            .iter()
            .map(|o| o.iter().enumerate().map(|(rank, s)| (s, rank)).collect())
            .collect();
        for scope in &orders[0] {
            let owner = (0..4).min_by_key(|i| ranks[*i][scope]).unwrap();
            shares[owner] += 1;
        }
        for share in shares {
            assert!((1_200..=3_800).contains(&share), "shares {shares:?}");
        }
    }

    #[test]
    fn the_order_depends_on_the_runner_and_the_direction_only() {
        let forward = order("runner-a", plans(1000));
        assert_eq!(
            forward,
            order("runner-a", plans(1000)),
            "stable across calls"
        );
        assert_ne!(forward[..10], order("runner-b", plans(1000))[..10]);
        let backward: Vec<Scope> =
            first_for_claim(plans(1000), usize::MAX, "runner-a", true, |(s, at)| {
                (s, *at)
            })
            .into_iter()
            .map(|(scope, _)| scope)
            .collect();
        assert_ne!(forward[..10], backward[..10]);
        let mut a = forward.clone();
        let mut b = backward.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "every plan, once");
    }

    #[test]
    fn keeping_a_few_keeps_the_first_few_in_order() {
        let all = order("runner-a", plans(1000));
        let few: Vec<Scope> =
            first_for_claim(plans(1000), 30, "runner-a", false, |(s, at)| (s, *at))
                .into_iter()
                .map(|(scope, _)| scope)
                .collect();
        assert_eq!(few, all[..30]);
    }

    #[test]
    fn a_stray_conflict_does_not_stop_a_claim_but_a_quarter_does() {
        assert!(!others_are_here(2000, 0));
        assert!(!others_are_here(2000, 3));
        assert!(others_are_here(2000, 500));
        assert!(others_are_here(1, 1));
    }
}
