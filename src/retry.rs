//! Retry decisions: backoff for failed attempts, and backoff for the runtime's own database calls.
//!
//! - [`Backoff`]: the delay before a failed attempt may run again (a list, or exponential with jitter).
//! - [`RetryDecision`] and `decide`: retry after a delay, or dead-letter. A pure function; the
//!   RetryPolicy actor applies it.
//! - [`DbRetry`]: how the runtime backs off when the database itself fails transiently.

use std::time::Duration;

/// The delay before a failed attempt may run again.
///
/// Default: exponential from 30 s, doubling, capped at 10 min, with 10 % jitter.
///
/// Every delay, the exponential base and cap included, is at most [`Backoff::MAX_DELAY`] (365
/// days): [`JobSpecBuilder::build`](crate::JobSpecBuilder::build) refuses longer ones, and
/// [`Backoff::delay`] never returns more (nor panics) whatever the policy holds.
///
/// ```
/// use std::time::Duration;
/// use cronlease::Backoff;
///
/// let list = Backoff::list(["1m", "5m", "15m"]).unwrap();
/// assert_eq!(list.delay(1, 0.5), Duration::from_secs(60));
/// assert_eq!(list.delay(7, 0.5), Duration::from_secs(900)); // clamped to the last entry
///
/// let exp = Backoff::exponential(Duration::from_secs(10), 2.0, Duration::from_secs(60));
/// assert_eq!(exp.without_jitter().delay(3, 0.5), Duration::from_secs(40));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// Delay `n` after failed attempt `n`, clamped to the last entry.
    List(Vec<Duration>),
    /// `base * factor^(attempt - 1)`, randomised by ±`jitter` (a fraction), capped at `cap`.
    Exponential {
        /// Delay after the first failed attempt.
        base: Duration,
        /// Growth per attempt; at least 1.
        factor: f64,
        /// Longest delay.
        cap: Duration,
        /// Fraction of randomisation, in `[0, 1]`; spreads retries of many scopes apart.
        jitter: f64,
    },
}

impl Backoff {
    /// The longest delay between attempts: 365 days.
    pub const MAX_DELAY: Duration = Duration::from_secs(365 * 86_400);

    /// An explicit list of `humantime` delays, e.g. `["1m", "5m", "15m"]`, each at most
    /// [`Backoff::MAX_DELAY`].
    ///
    /// Fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the first delay
    /// that does not parse or is too long.
    pub fn list<I, S>(delays: I) -> Result<Self, crate::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let delays = delays
            .into_iter()
            .map(|s| {
                let text = s.as_ref();
                let delay = humantime::parse_duration(text.trim()).map_err(|e| {
                    crate::Error::InvalidConfig(format!(
                        "cannot parse backoff delay `{text}` ({e}): write e.g. `30s`, `5m` or `1h`"
                    ))
                })?;
                check_delay("backoff delay", delay).map_err(crate::Error::InvalidConfig)?;
                Ok(delay)
            })
            .collect::<Result<Vec<_>, crate::Error>>()?;
        Ok(Backoff::List(delays))
    }

    /// Exponential backoff with the default 10 % jitter.
    pub fn exponential(base: Duration, factor: f64, cap: Duration) -> Self {
        Backoff::Exponential {
            base,
            factor,
            cap,
            jitter: 0.1,
        }
    }

    /// The same policy with jitter switched off (deterministic delays).
    pub fn without_jitter(self) -> Self {
        match self {
            Backoff::Exponential {
                base, factor, cap, ..
            } => Backoff::Exponential {
                base,
                factor,
                cap,
                jitter: 0.0,
            },
            list => list,
        }
    }

    /// The delay after failed attempt `attempt` (1-based). `unit` is a random number in `[0, 1)`
    /// used for jitter (`0.5` means none).
    ///
    /// Never panics and never exceeds [`Backoff::MAX_DELAY`], even for a policy `build()` would
    /// refuse (a huge cap, a NaN factor).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let index = attempt.max(1) - 1;
        let delay = match self {
            Backoff::List(delays) => delays
                .get(index as usize)
                .or(delays.last())
                .copied()
                .unwrap_or_default(),
            Backoff::Exponential {
                base,
                factor,
                cap,
                jitter,
            } => {
                let exp = i32::try_from(index).unwrap_or(i32::MAX);
                let raw = base.as_secs_f64() * factor.powi(exp);
                let spread = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
                let cap = (*cap).min(Self::MAX_DELAY).as_secs_f64();
                let secs = (raw * spread).min(cap);
                if secs > 0.0 {
                    // `secs` is finite here (at most the cap); NaN fails the comparison above.
                    Duration::try_from_secs_f64(secs).unwrap_or(Self::MAX_DELAY)
                } else {
                    Duration::ZERO
                }
            }
        };
        delay.min(Self::MAX_DELAY)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Backoff::List(delays) if delays.is_empty() => {
                Err("backoff list must have at least one delay".into())
            }
            Backoff::List(delays) => delays
                .iter()
                .try_for_each(|delay| check_delay("backoff delay", *delay)),
            Backoff::Exponential { factor, .. } if !(*factor >= 1.0 && factor.is_finite()) => {
                Err(format!("backoff factor ({factor}) must be at least 1"))
            }
            Backoff::Exponential { jitter, .. } if !(0.0..=1.0).contains(jitter) => {
                Err(format!("backoff jitter ({jitter}) must be between 0 and 1"))
            }
            Backoff::Exponential { base, cap, .. } => {
                check_delay("backoff base", *base)?;
                check_delay("backoff cap", *cap)
            }
        }
    }
}

/// `what` at most [`Backoff::MAX_DELAY`].
fn check_delay(what: &str, delay: Duration) -> Result<(), String> {
    if delay > Backoff::MAX_DELAY {
        return Err(format!(
            "{what} ({}) must be at most {} (Backoff::MAX_DELAY)",
            crate::schedule::fmt_duration(delay),
            crate::schedule::fmt_duration(Backoff::MAX_DELAY)
        ));
    }
    Ok(())
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(30), 2.0, Duration::from_secs(600))
    }
}

/// What happens to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// FAILED, claimable again after this delay (database clock).
    RetryIn(Duration),
    /// DEAD: out of attempts or permanently failed; only an operator's replay runs it again.
    Dead,
}

/// Decides the fate of failed attempt `attempt` of `max_attempts`.
///
/// Attempts come from the execution row, never from memory, so a restart cannot reset them.
pub(crate) fn decide(
    backoff: &Backoff,
    attempt: u32,
    max_attempts: u32,
    permanent: bool,
    unit: f64,
) -> RetryDecision {
    if permanent || attempt >= max_attempts {
        RetryDecision::Dead
    } else {
        RetryDecision::RetryIn(backoff.delay(attempt, unit))
    }
}

/// How the runtime retries its own database calls after a transient error (connection lost,
/// database locked, server restarting).
///
/// Default: 5 s doubling to a 60 s cap; claims and terminal writes give up after 15 min (logged
/// and counted in `cronlease_db_gave_up_total`, never written to the failing database; the lease
/// then goes stale and the plan is re-run).
///
/// Who uses it:
/// - a tick whose reads or sweep fail transiently: the next tick comes after `delay(n)` for the
///   `n`th failing tick in a row, instead of at the next plan boundary;
/// - a claim: the same statement (same ids and tokens) is sent again after each delay, so a
///   claim that committed before its reply was lost is recovered, not orphaned;
/// - terminal writes (SUCCESS, FAILED, DEAD, `canceled`): sent again after each delay while the
///   heartbeats keep the lease alive;
/// - `SchedulerBuilder::wait_for_database`: the tries at start.
///
/// Heartbeats do not back off: a failed renewal is tried again at the next beat, since the lease
/// must be renewed before `stale_timeout` whatever happened to the previous beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbRetry {
    /// First delay after a transient error. Default: 5 s.
    pub initial: Duration,
    /// Longest delay. Default: 60 s.
    pub max: Duration,
    /// How long a claim or terminal write keeps retrying before giving up. Default: 15 min.
    pub give_up_after: Duration,
}

impl DbRetry {
    /// The delay before retry number `retry` (1-based) of a failed call.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.max(1).saturating_sub(1).min(32);
        self.initial
            .saturating_mul(1u32.checked_shl(exp).unwrap_or(u32::MAX))
            .min(self.max)
    }
}

impl Default for DbRetry {
    fn default() -> Self {
        DbRetry {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(15 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn list_backoff_is_clamped_to_its_last_entry() {
        let b = Backoff::List(vec![S, 5 * S, 15 * S]);
        assert_eq!(b.delay(1, 0.9), S);
        assert_eq!(b.delay(2, 0.9), 5 * S);
        assert_eq!(b.delay(3, 0.9), 15 * S);
        assert_eq!(b.delay(9, 0.9), 15 * S);
    }

    #[test]
    fn exponential_backoff_grows_and_caps() {
        let b = Backoff::exponential(10 * S, 2.0, 60 * S).without_jitter();
        assert_eq!(b.delay(1, 0.0), 10 * S);
        assert_eq!(b.delay(2, 0.0), 20 * S);
        assert_eq!(b.delay(3, 0.0), 40 * S);
        assert_eq!(b.delay(4, 0.0), 60 * S);
        assert_eq!(b.delay(200, 0.0), 60 * S);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b = Backoff::exponential(100 * S, 2.0, 10_000 * S);
        assert_eq!(b.delay(1, 0.0), 90 * S);
        assert_eq!(b.delay(1, 0.5), 100 * S);
        assert_eq!(b.delay(1, 1.0), 110 * S);
    }

    #[test]
    fn jittered_delays_stay_within_their_band_and_under_the_cap() {
        let b = Backoff::exponential(10 * S, 3.0, 100 * S);
        for attempt in 1..=12u32 {
            let raw = 10.0 * 3f64.powi(attempt as i32 - 1);
            for step in 0..=20 {
                let secs = b.delay(attempt, f64::from(step) / 20.0).as_secs_f64();
                assert!(secs <= 100.0, "attempt {attempt}: {secs} over the cap");
                assert!(
                    secs >= (raw * 0.9).min(100.0) - 1e-6,
                    "attempt {attempt}: {secs}"
                );
                assert!(secs <= raw * 1.1 + 1e-6, "attempt {attempt}: {secs}");
            }
        }
        // An empty jitter band is deterministic.
        let fixed = b.without_jitter();
        assert_eq!(fixed.delay(2, 0.0), fixed.delay(2, 1.0));
    }

    #[test]
    fn retries_until_attempts_run_out_then_dead() {
        let b = Backoff::List(vec![S]);
        assert_eq!(decide(&b, 1, 3, false, 0.5), RetryDecision::RetryIn(S));
        assert_eq!(decide(&b, 2, 3, false, 0.5), RetryDecision::RetryIn(S));
        assert_eq!(decide(&b, 3, 3, false, 0.5), RetryDecision::Dead);
    }

    #[test]
    fn permanent_errors_skip_remaining_attempts() {
        assert_eq!(
            decide(&Backoff::default(), 1, 5, true, 0.5),
            RetryDecision::Dead
        );
    }

    #[test]
    fn invalid_backoffs_are_rejected() {
        assert!(Backoff::List(vec![]).validate().is_err());
        assert!(Backoff::exponential(S, 0.5, S).validate().is_err());
        let err = Backoff::list(["1m", "soon"]).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot parse backoff delay `soon` ("),
            "{err}"
        );
        assert!(err.ends_with("): write e.g. `30s`, `5m` or `1h`"), "{err}");
    }

    #[test]
    fn delays_over_the_maximum_are_rejected() {
        let err = Backoff::list(["1m", "400d"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "backoff delay (400d) must be at most 365d (Backoff::MAX_DELAY)"
        );
        assert!(Backoff::list(["365d"]).is_ok());
        assert!(
            Backoff::List(vec![Duration::MAX])
                .validate()
                .unwrap_err()
                .contains("backoff delay")
        );
        let huge_cap = Backoff::exponential(S, 2.0, Duration::MAX);
        assert!(huge_cap.validate().unwrap_err().starts_with("backoff cap"));
        let huge_base = Backoff::exponential(Duration::MAX, 2.0, S);
        assert!(
            huge_base
                .validate()
                .unwrap_err()
                .starts_with("backoff base")
        );
    }

    #[test]
    fn delay_never_panics_and_stays_under_the_maximum() {
        // A policy `build()` refuses can still reach `delay` through `decide`: it must not panic.
        let huge = Backoff::exponential(Duration::MAX, 10.0, Duration::MAX);
        for attempt in [1, 2, 50, 1000, u32::MAX] {
            for unit in [0.0, 0.5, 1.0] {
                assert_eq!(huge.delay(attempt, unit), Backoff::MAX_DELAY);
            }
        }
        let nan = Backoff::Exponential {
            base: S,
            factor: f64::NAN,
            cap: 60 * S,
            jitter: 0.1,
        };
        assert_eq!(
            nan.delay(3, 0.5),
            60 * S,
            "a NaN delay falls back to the cap"
        );
        let infinite = Backoff::exponential(S, f64::INFINITY, Duration::MAX);
        assert_eq!(infinite.delay(2, 0.5), Backoff::MAX_DELAY);
        assert_eq!(
            Backoff::List(vec![Duration::MAX]).delay(1, 0.5),
            Backoff::MAX_DELAY
        );
    }

    #[test]
    fn db_retry_doubles_to_its_cap() {
        let r = DbRetry::default();
        assert_eq!(r.delay(1), 5 * S);
        assert_eq!(r.delay(2), 10 * S);
        assert_eq!(r.delay(4), 40 * S);
        assert_eq!(r.delay(5), 60 * S);
        assert_eq!(r.delay(100), 60 * S);
    }
}
