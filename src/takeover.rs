//! When a runner may take a lease away from its owner: sweep it as stale, or steal it in a claim.
//!
//! A lease goes stale when its owner stops renewing it. Usually the owner died and taking over at
//! once is right. But when the database itself could not be reached, every owner missed its
//! renewals, and the first statement after the heal must not be a takeover: the owners are alive
//! and renew within a heartbeat interval. Three rules keep them their leases:
//!
//! - a runner that regained the database after failing for at least a heartbeat interval takes
//!   nothing over for one `stale_timeout`, counted on the database clock from its first clock
//!   read after the failures ([`TakeoverGuard`]), so every owner gets to renew first;
//! - every takeover statement carries a deadline on the database clock ([`takeover_deadline`]):
//!   held up behind an outage (queued for a connection, waiting on a lock) it runs late and
//!   changes nothing;
//! - a heartbeat renews a row still RUNNING under its own token even past its `stale_after`,
//!   as long as nobody took it over (the store's heartbeat statement).
//!
//! A runner whose own database calls kept succeeding (a kill -9 of another runner) takes over
//! exactly as before.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::schedule::delta;

/// One runner's view of its database connectivity, fed by every store call it makes.
#[derive(Debug)]
pub(crate) struct TakeoverGuard {
    /// A failure streak at least this long closes takeovers for a `stale_timeout` after it: the
    /// shortest heartbeat interval of the runner's jobs (a shorter streak cannot have cost any
    /// owner a renewal it needed).
    threshold: Mutex<Duration>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the current streak of transient failures began; `None` while calls succeed.
    failing_since: Option<Instant>,
    /// A long streak ended, and the database clock has not been read since.
    awaiting_clock: bool,
    /// The database time of the first clock read after the last long streak.
    regained_at: Option<DateTime<Utc>>,
}

impl TakeoverGuard {
    /// A guard for a runner whose shortest heartbeat interval is `threshold`.
    pub(crate) fn new(threshold: Duration) -> Self {
        TakeoverGuard {
            threshold: Mutex::new(threshold),
            state: Mutex::new(State::default()),
        }
    }

    /// A job with a shorter heartbeat interval joined the runner.
    pub(crate) fn lower_threshold(&self, heartbeat_interval: Duration) {
        let mut threshold = self
            .threshold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *threshold = (*threshold).min(heartbeat_interval);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A store call failed transiently at `at`.
    pub(crate) fn failed(&self, at: Instant) {
        self.state().failing_since.get_or_insert(at);
    }

    /// A store call succeeded at `at`.
    pub(crate) fn succeeded(&self, at: Instant) {
        let threshold = *self
            .threshold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut state = self.state();
        if let Some(since) = state.failing_since.take()
            && at.saturating_duration_since(since) >= threshold
        {
            state.awaiting_clock = true;
        }
    }

    /// The database clock read `db_now` at `at` (a successful call).
    pub(crate) fn clock_read(&self, db_now: DateTime<Utc>, at: Instant) {
        self.succeeded(at);
        let mut state = self.state();
        if state.awaiting_clock {
            state.awaiting_clock = false;
            state.regained_at = Some(db_now);
        }
    }

    /// Whether this runner may take over leases of a job with `stale_timeout` at `db_now`.
    pub(crate) fn may_take_over(&self, db_now: DateTime<Utc>, stale_timeout: Duration) -> bool {
        let state = self.state();
        state.failing_since.is_none()
            && !state.awaiting_clock
            && state
                .regained_at
                .is_none_or(|regained| db_now >= regained + delta(stale_timeout))
    }
}

/// The latest database time at which a takeover statement decided on at `db_now` may still act:
/// a heartbeat interval later. A statement delayed longer was held up (an outage, a lock), and
/// the owners it would take from may not have been able to renew meanwhile.
///
/// A heartbeat interval is at most a third of `stale_timeout`, so an owner whose last renewal
/// came before an outage began still had more than this left on its lease when the statement was
/// decided: a prompt statement never needs a longer deadline.
pub(crate) fn takeover_deadline(
    db_now: DateTime<Utc>,
    heartbeat_interval: Duration,
) -> DateTime<Utc> {
    db_now + delta(heartbeat_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(5);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_healthy_runner_takes_over_at_once() {
        let guard = TakeoverGuard::new(Duration::from_secs(1));
        let t0 = Instant::now();
        guard.clock_read(at("2026-11-30T10:00:00Z"), t0);
        assert!(guard.may_take_over(at("2026-11-30T10:00:00Z"), STALE));
    }

    #[test]
    fn a_long_failure_streak_closes_takeovers_for_a_stale_timeout_after_the_heal() {
        let guard = TakeoverGuard::new(Duration::from_secs(1));
        let t0 = Instant::now();
        guard.failed(t0);
        assert!(
            !guard.may_take_over(at("2026-11-30T10:00:00Z"), STALE),
            "while failing"
        );
        guard.failed(t0 + Duration::from_secs(10));
        // A heartbeat gets through first: still no clock read, still closed.
        guard.succeeded(t0 + Duration::from_secs(20));
        assert!(!guard.may_take_over(at("2026-11-30T10:00:20Z"), STALE));
        guard.clock_read(at("2026-11-30T10:00:20Z"), t0 + Duration::from_secs(20));
        assert!(!guard.may_take_over(at("2026-11-30T10:00:24.999Z"), STALE));
        assert!(guard.may_take_over(at("2026-11-30T10:00:25Z"), STALE));
    }

    #[test]
    fn a_short_blip_changes_nothing() {
        // A deadlock retried after 200 ms, a busy SQLite file: no owner missed a renewal.
        let guard = TakeoverGuard::new(Duration::from_secs(1));
        let t0 = Instant::now();
        guard.failed(t0);
        guard.clock_read(at("2026-11-30T10:00:00Z"), t0 + Duration::from_millis(200));
        assert!(guard.may_take_over(at("2026-11-30T10:00:00Z"), STALE));
    }

    #[test]
    fn a_later_outage_moves_the_window() {
        let guard = TakeoverGuard::new(Duration::from_secs(1));
        let t0 = Instant::now();
        guard.failed(t0);
        guard.clock_read(at("2026-11-30T10:00:00Z"), t0 + Duration::from_secs(3));
        guard.failed(t0 + Duration::from_secs(4));
        guard.clock_read(at("2026-11-30T10:00:10Z"), t0 + Duration::from_secs(10));
        assert!(!guard.may_take_over(at("2026-11-30T10:00:12Z"), STALE));
        assert!(guard.may_take_over(at("2026-11-30T10:00:15Z"), STALE));
    }

    #[test]
    fn the_statement_deadline_is_a_heartbeat_after_the_decision() {
        assert_eq!(
            takeover_deadline(at("2026-11-30T10:00:00Z"), Duration::from_secs(10)),
            at("2026-11-30T10:00:10Z")
        );
    }
}
