//! Schedules: how plan times are derived.
//!
//! - [`Schedule`]: `Every(cadence)`, parsed from `humantime` strings such as `"5m"`.
//! - [`floor_plan`]: truncates a time down to a cadence boundary counted from `0001-01-01T00:00:00Z`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Error;

/// Milliseconds from `0001-01-01T00:00:00Z` to the Unix epoch.
const YEAR_ONE_TO_UNIX_MS: i64 = 62_135_596_800_000;

/// How a job's plan times are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// One plan per cadence, at every multiple of the cadence counted from
    /// `0001-01-01T00:00:00Z` (so `1d` plans at midnight UTC and `7d` on Mondays).
    Every(Duration),
}

impl Schedule {
    /// A fixed cadence from a `humantime` string: `"30s"`, `"5m"`, `"1h 30m"`, `"7d"`.
    pub fn every(cadence: &str) -> Result<Self, Error> {
        cadence.parse()
    }

    /// The cadence of an `Every` schedule.
    pub fn cadence(&self) -> Duration {
        match self {
            Schedule::Every(cadence) => *cadence,
        }
    }

    /// The newest plan time at or before `t`.
    pub fn latest_plan(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        floor_plan(t, self.cadence())
    }

    /// Checks the schedule is usable: a cadence of at least one whole millisecond.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let cadence = self.cadence();
        if cadence.is_zero() {
            return Err("cadence must be longer than zero".into());
        }
        if !cadence.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!(
                "cadence ({}) must be a whole number of milliseconds",
                humantime::format_duration(cadence)
            ));
        }
        Ok(())
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        humantime::parse_duration(s.trim())
            .map(Schedule::Every)
            .map_err(|e| {
                Error::InvalidConfig(format!(
                    "cannot parse cadence `{s}`: {e} (write e.g. `30s`, `5m`, `1h`)"
                ))
            })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(cadence) => write!(f, "every {}", humantime::format_duration(*cadence)),
        }
    }
}

/// `t` truncated down to a multiple of `cadence`, counted from `0001-01-01T00:00:00Z`.
///
/// A time exactly on a boundary is its own plan. Sub-millisecond parts of `t` are dropped first.
/// For cadences that divide 24 hours this equals Unix-epoch alignment; a 7-day cadence starts
/// weeks on Monday. `cadence` must be at least one millisecond.
pub fn floor_plan(t: DateTime<Utc>, cadence: Duration) -> DateTime<Utc> {
    let cadence_ms = duration_ms(cadence).max(1);
    let since_year_one = t.timestamp_millis() + YEAR_ONE_TO_UNIX_MS;
    let floored = since_year_one - since_year_one.rem_euclid(cadence_ms);
    from_millis(floored - YEAR_ONE_TO_UNIX_MS)
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A `TimeDelta` from a std duration, saturating.
pub(crate) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::milliseconds(duration_ms(d).min(i64::MAX / 1_000_000))
}

/// A UTC time from Unix milliseconds (clamped to chrono's range).
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn floors_down_to_the_cadence() {
        let five_min = Duration::from_secs(300);
        assert_eq!(
            floor_plan(at("2026-11-22T10:07:31.250Z"), five_min),
            at("2026-11-22T10:05:00Z")
        );
    }

    #[test]
    fn exact_boundaries_are_kept() {
        let five_min = Duration::from_secs(300);
        let t = at("2026-11-22T10:05:00Z");
        assert_eq!(floor_plan(t, five_min), t);
        let just_before = at("2026-11-22T10:04:59.999Z");
        assert_eq!(
            floor_plan(just_before, five_min),
            at("2026-11-22T10:00:00Z")
        );
    }

    #[test]
    fn daily_cadence_matches_unix_midnight() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            floor_plan(at("2026-11-22T23:59:59Z"), day),
            at("2026-11-22T00:00:00Z")
        );
        assert_eq!(
            floor_plan(at("1970-01-01T00:00:00Z"), day),
            at("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn weekly_cadence_starts_on_monday() {
        let week = Duration::from_secs(7 * 86_400);
        // 2026-11-22 is a Sunday; the week began on Monday 2026-11-16.
        assert_eq!(
            floor_plan(at("2026-11-22T12:00:00Z"), week),
            at("2026-11-16T00:00:00Z")
        );
        assert_eq!(
            floor_plan(at("2026-11-23T00:00:00Z"), week),
            at("2026-11-23T00:00:00Z")
        );
    }

    #[test]
    fn cadences_not_dividing_a_day_count_from_year_one() {
        let seven_hours = Duration::from_secs(7 * 3600);
        let t = at("2026-11-22T12:00:00Z");
        let plan = floor_plan(t, seven_hours);
        let since_year_one = plan.timestamp_millis() + YEAR_ONE_TO_UNIX_MS;
        assert_eq!(since_year_one % (7 * 3_600_000), 0);
        assert!(plan <= t && t - plan < TimeDelta::hours(7));
    }

    #[test]
    fn times_before_the_epoch_floor_down_too() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            floor_plan(at("1969-12-31T23:30:00Z"), hour),
            at("1969-12-31T23:00:00Z")
        );
    }

    #[test]
    fn parses_humantime_cadences() {
        assert_eq!(
            Schedule::every("5m").unwrap(),
            Schedule::Every(Duration::from_secs(300))
        );
        assert_eq!(
            Schedule::every("1h 30m").unwrap().cadence(),
            Duration::from_secs(5400)
        );
        let err = Schedule::every("often").unwrap_err().to_string();
        assert!(err.contains("cannot parse cadence `often`"), "{err}");
    }

    #[test]
    fn validation_rejects_zero_and_sub_millisecond_cadences() {
        assert!(Schedule::Every(Duration::ZERO).validate().is_err());
        assert!(
            Schedule::Every(Duration::from_micros(1500))
                .validate()
                .is_err()
        );
        assert!(Schedule::Every(Duration::from_millis(1)).validate().is_ok());
    }
}
