//! Per-scope stagger: a stable offset that spreads the due times of many scopes sharing a
//! schedule over a window, so 100,000 tenants on `0 0 * * *` don't all start at 00:00:00.
//!
//! The offset is a function of `(job, scope, window)` only: the same on every replica, every
//! restart and every version of this crate (the hash is FNV-1a 64 followed by murmur3's 64-bit
//! finaliser, written out here, never a hasher whose output may change; the finaliser makes
//! neighbouring ids such as `tenant:1` and `tenant:2` land far apart). A plan's identity (`plan_time`) is unchanged; only the time
//! it comes due moves, to `plan_time + offset`.

use std::time::Duration;

use crate::scope::Scope;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The offset of `scope`'s plans of `job` inside a stagger `window`: a whole number of
/// milliseconds in `[0, window)`, zero when the window is zero.
///
/// ```
/// use std::time::Duration;
/// use cronlease::{Scope, stagger_offset};
///
/// let window = Duration::from_secs(600);
/// let offset = stagger_offset("nightly-report", &Scope::new("tenant", "42"), window);
/// assert!(offset < window);
/// assert_eq!(offset, stagger_offset("nightly-report", &Scope::new("tenant", "42"), window));
/// ```
pub fn stagger_offset(job: &str, scope: &Scope, window: Duration) -> Duration {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if window_ms == 0 {
        return Duration::ZERO;
    }
    let hash = stable_hash(&[job.as_bytes(), scope.kind.as_bytes(), scope.id.as_bytes()]);
    // Multiply-shift maps the hash onto the window without the bias of a remainder.
    let offset_ms = ((u128::from(hash) * u128::from(window_ms)) >> 64) as u64;
    Duration::from_millis(offset_ms)
}

/// The hash of `parts` this module describes (FNV-1a 64 over the parts, each followed by a
/// separator byte, then murmur3's finaliser): the same on every replica, restart and version,
/// so replicas agree on offsets and on which runner owns a scope (`plan/sharing.rs`).
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in *part {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
        // A separator no UTF-8 text contains, so ("ab", "c") and ("a", "bc") differ.
        hash = (hash ^ 0xff).wrapping_mul(FNV_PRIME);
    }
    fmix64(hash)
}

/// murmur3's finaliser: every input bit flips about half of the output bits.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_pinned_forever() {
        // These values are part of the contract: a change would move every tenant's due time
        // on upgrade. Do not update them.
        let window = Duration::from_secs(600);
        assert_eq!(
            stagger_offset("nightly", &Scope::new("tenant", "1"), window),
            Duration::from_millis(PINNED_1)
        );
        assert_eq!(
            stagger_offset("nightly", &Scope::new("tenant", "2"), window),
            Duration::from_millis(PINNED_2)
        );
        assert_eq!(
            stagger_offset("nightly", &Scope::global(), window),
            Duration::from_millis(PINNED_GLOBAL)
        );
    }

    const PINNED_1: u64 = 510_281;
    const PINNED_2: u64 = 89_801;
    const PINNED_GLOBAL: u64 = 242_672;

    #[test]
    fn offsets_stay_inside_the_window_and_spread_over_it() {
        let window = Duration::from_secs(600);
        let mut buckets = [0usize; 10];
        for i in 0..10_000 {
            let offset = stagger_offset("nightly", &Scope::new("tenant", i.to_string()), window);
            assert!(offset < window);
            buckets[(offset.as_secs() / 60) as usize] += 1;
        }
        // 1,000 expected per minute of the window.
        for (minute, count) in buckets.iter().enumerate() {
            assert!((850..=1150).contains(count), "minute {minute}: {count}");
        }
    }

    #[test]
    fn neighbouring_ids_land_far_apart() {
        // Sequential tenant ids must not cluster: 100 of them cover the window's ten minutes.
        let window = Duration::from_secs(600);
        let mut minutes = [false; 10];
        for i in 0..100 {
            let offset = stagger_offset("nightly", &Scope::new("tenant", i.to_string()), window);
            minutes[(offset.as_secs() / 60) as usize] = true;
        }
        assert!(minutes.iter().all(|m| *m), "{minutes:?}");
    }

    #[test]
    fn job_and_scope_parts_do_not_run_together() {
        let window = Duration::from_secs(3600);
        let a = stagger_offset("ab", &Scope::new("c", "d"), window);
        let b = stagger_offset("a", &Scope::new("bc", "d"), window);
        assert_ne!(a, b);
        assert_eq!(
            stagger_offset("x", &Scope::new("t", "1"), Duration::ZERO),
            Duration::ZERO
        );
    }
}
