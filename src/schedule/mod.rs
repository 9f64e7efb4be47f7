//! Schedules: how plan times are derived.
//!
//! - [`Schedule`]: a fixed cadence (`Every`, from `humantime` strings such as `"5m"`, with an
//!   optional offset) or a cron expression in an IANA time zone (`Cron`).
//! - [`CronSchedule`] (`cron.rs`): the pattern, its zone and the DST rules.
//! - [`stagger_offset`] (`stagger.rs`): a scope's stable offset inside a stagger window.
//! - [`PlannedTime`] and the upcoming plan times of a job (`preview.rs`).
//! - [`Schedule::to_text`] / [`Schedule::from_text`] (`text.rs`): the one-line form the job
//!   registry stores.
//! - [`floor_plan`]: truncates a time down to a cadence boundary counted from `0001-01-01T00:00:00Z`.
//!
//! Whatever the schedule, a plan's identity is the UTC instant stored in `plan_time`.

mod cron;
mod preview;
mod stagger;
mod text;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use crate::error::Error;

pub use cron::CronSchedule;
pub use preview::PlannedTime;
pub(crate) use preview::upcoming;
pub(crate) use stagger::stable_hash;
pub use stagger::stagger_offset;

/// Milliseconds from `0001-01-01T00:00:00Z` to the Unix epoch.
const YEAR_ONE_TO_UNIX_MS: i64 = 62_135_596_800_000;

/// How a job's plan times are derived.
///
/// - `Every`: a cadence of whole milliseconds from 1 ms to [`Schedule::MAX_CADENCE`] (366 days),
///   counted from `0001-01-01T00:00:00Z` plus an optional offset. Month and year units are
///   refused when parsing (`humantime` counts `1M` as 30.44 days): use a cron expression for
///   calendar months (`0 0 1 * *`).
/// - `Cron`: a cron expression read in an IANA time zone (see [`CronSchedule`] for the syntax
///   and the DST rules).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// One plan per cadence, at every multiple of `cadence` counted from
    /// `0001-01-01T00:00:00Z`, moved later by `offset` (so `1d` plans at midnight UTC, `7d` on
    /// Mondays, and `15m` with offset `5m` at :05, :20, :35 and :50).
    Every {
        /// Time between plans.
        cadence: Duration,
        /// Shift of every plan from the cadence boundary; shorter than the cadence.
        offset: Duration,
    },
    /// The instants whose local time in the zone matches a cron expression.
    Cron(Arc<CronSchedule>),
}

impl Schedule {
    /// The longest cadence: 366 days. A longer one has almost no plans to run, and a cadence
    /// counted from year 1 that long would place plans centuries away.
    pub const MAX_CADENCE: Duration = Duration::from_secs(366 * 86_400);

    /// A fixed cadence from a `humantime` string: `"30s"`, `"5m"`, `"1h 30m"`, `"7d"`.
    ///
    /// Fails with [`Error::InvalidConfig`] for text that does not parse (a cron expression gets
    /// a pointer to [`Schedule::cron`]), for month and year units (`1M`, `1month`, `1y`: not
    /// calendar months or years; use a cron expression), and for a cadence of zero, under a
    /// millisecond or over [`Schedule::MAX_CADENCE`].
    pub fn every(cadence: &str) -> Result<Self, Error> {
        cadence.parse()
    }

    /// A cron expression read in UTC; see [`CronSchedule`] for the syntax.
    pub fn cron(pattern: &str) -> Result<Self, Error> {
        Self::cron_in(pattern, "UTC")
    }

    /// A cron expression read in the IANA time zone `zone` (`"Europe/Berlin"`).
    pub fn cron_in(pattern: &str, zone: &str) -> Result<Self, Error> {
        Ok(Schedule::Cron(Arc::new(CronSchedule::parse(
            pattern, zone,
        )?)))
    }

    /// The same cadence with every plan moved later by `offset` (`"5m"`: a `15m` cadence then
    /// plans at :05, :20, :35, :50). Fails for a cron schedule, for text that does not parse and
    /// for an offset not shorter than the cadence.
    pub fn with_offset(self, offset: &str) -> Result<Self, Error> {
        let Schedule::Every { cadence, .. } = self else {
            return Err(Error::InvalidConfig(
                "an offset applies to a fixed cadence (.every(..)); a cron expression sets its own minutes and seconds".into(),
            ));
        };
        let offset = humantime::parse_duration(offset.trim()).map_err(|e| {
            Error::InvalidConfig(format!(
                "cannot parse offset `{offset}` ({e}): write e.g. `5m`"
            ))
        })?;
        let schedule = Schedule::Every { cadence, offset };
        schedule.validate().map_err(Error::InvalidConfig)?;
        Ok(schedule)
    }

    /// The cadence of an `Every` schedule; `None` for cron.
    pub fn cadence(&self) -> Option<Duration> {
        match self {
            Schedule::Every { cadence, .. } => Some(*cadence),
            Schedule::Cron(_) => None,
        }
    }

    /// The IANA time zone the schedule is read in (`UTC` for a cadence).
    pub fn time_zone(&self) -> &str {
        match self {
            Schedule::Every { .. } => "UTC",
            Schedule::Cron(cron) => cron.time_zone(),
        }
    }

    /// The newest plan time at or before `t`; `None` if the schedule never matched before.
    pub fn latest_plan(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every { cadence, offset } => {
                Some(floor_plan(t - delta(*offset), *cadence) + delta(*offset))
            }
            Schedule::Cron(cron) => cron.latest_at_or_before(t),
        }
    }

    /// The first plan time strictly after `t`; `None` if the schedule never matches again.
    pub fn next_plan(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every { cadence, .. } => {
                self.latest_plan(t).map(|latest| latest + delta(*cadence))
            }
            Schedule::Cron(cron) => cron.next_after(t),
        }
    }

    /// `t` in the schedule's time zone.
    pub fn local_time(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Schedule::Every { .. } => t.fixed_offset(),
            Schedule::Cron(cron) => cron.local(t),
        }
    }

    /// Checks a cadence is usable: whole milliseconds, from 1 ms to [`Schedule::MAX_CADENCE`],
    /// with an offset shorter than the cadence. Cron schedules were checked when parsed.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let Schedule::Every { cadence, offset } = self else {
            return Ok(());
        };
        let (cadence, offset) = (*cadence, *offset);
        if cadence.is_zero() {
            return Err("cadence must be longer than zero".into());
        }
        if cadence > Self::MAX_CADENCE {
            return Err(format!(
                "cadence ({}) must be at most {} (Schedule::MAX_CADENCE)",
                fmt_duration(cadence),
                fmt_duration(Self::MAX_CADENCE)
            ));
        }
        if !cadence.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!(
                "cadence ({}) must be a whole number of milliseconds",
                fmt_duration(cadence)
            ));
        }
        if offset >= cadence {
            return Err(format!(
                "offset ({}) must be shorter than the cadence ({})",
                fmt_duration(offset),
                fmt_duration(cadence)
            ));
        }
        if !offset.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!(
                "offset ({}) must be a whole number of milliseconds",
                fmt_duration(offset)
            ));
        }
        Ok(())
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// Parses a cadence; see [`Schedule::every`].
    fn from_str(s: &str) -> Result<Self, Error> {
        if looks_like_cron(s) {
            return Err(Error::InvalidConfig(format!(
                "`{s}` looks like a cron expression, not a cadence: use .cron(\"{}\") (Schedule::cron)",
                s.trim()
            )));
        }
        if let Some(unit) = calendar_unit(s) {
            return Err(Error::InvalidConfig(format!(
                "cadence `{s}` uses the unit `{unit}`, which humantime counts as a fixed length, not a calendar month or year: for calendar months use a cron expression such as .cron(\"0 0 1 * *\"), or write a fixed cadence such as `30d`"
            )));
        }
        let cadence = humantime::parse_duration(s.trim()).map_err(|e| {
            Error::InvalidConfig(format!(
                "cannot parse cadence `{s}` ({e}): write e.g. `30s`, `5m`, `1h` or `7d`"
            ))
        })?;
        let schedule = Schedule::Every {
            cadence,
            offset: Duration::ZERO,
        };
        schedule.validate().map_err(Error::InvalidConfig)?;
        Ok(schedule)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { cadence, offset } if offset.is_zero() => {
                write!(f, "every {}", fmt_duration(*cadence))
            }
            Schedule::Every { cadence, offset } => write!(
                f,
                "every {} offset {}",
                fmt_duration(*cadence),
                fmt_duration(*offset)
            ),
            Schedule::Cron(cron) => cron.fmt(f),
        }
    }
}

/// Text with a cron shape: a macro, or several space-separated fields.
fn looks_like_cron(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('@')
        || (text.split_whitespace().count() >= 5
            && text.split_whitespace().all(|f| {
                f.chars()
                    .all(|c| c.is_ascii_digit() || "*?,-/#LW".contains(c) || c.is_ascii_uppercase())
            }))
}

/// The first month or year unit (`M`, `month`, `months`, `y`, `year`, `years`) in a humantime
/// string, if any.
fn calendar_unit(text: &str) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .find(|unit| matches!(*unit, "M" | "month" | "months" | "y" | "year" | "years"))
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

/// A duration for a message, in the units a cadence is written in: whole days as `367d` (never
/// humantime's months and years, which cadences refuse), the rest as humantime writes it.
pub(crate) fn fmt_duration(d: Duration) -> String {
    const DAY: u64 = 86_400;
    let days = d.as_secs() / DAY;
    let rest = d - Duration::from_secs(days * DAY);
    match (days, rest.is_zero()) {
        (0, _) => humantime::format_duration(d).to_string(),
        (_, true) => format!("{days}d"),
        (_, false) => format!("{days}d {}", humantime::format_duration(rest)),
    }
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

    fn every(cadence: Duration) -> Schedule {
        Schedule::Every {
            cadence,
            offset: Duration::ZERO,
        }
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
            Schedule::Every {
                cadence: Duration::from_secs(300),
                offset: Duration::ZERO
            }
        );
        assert_eq!(
            Schedule::every("1h 30m").unwrap().cadence(),
            Some(Duration::from_secs(5400))
        );
        let err = Schedule::every("often").unwrap_err().to_string();
        assert!(err.starts_with("cannot parse cadence `often` ("), "{err}");
        assert!(
            err.ends_with("): write e.g. `30s`, `5m`, `1h` or `7d`"),
            "{err}"
        );
    }

    #[test]
    fn messages_write_long_durations_in_days() {
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(fmt_duration(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(
            fmt_duration(Duration::from_secs(400 * 86_400 + 3_600)),
            "400d 1h"
        );
        assert!(fmt_duration(Duration::MAX).starts_with("213503982334601d "));
    }

    #[test]
    fn month_and_year_units_are_refused() {
        for cadence in ["1M", "1month", "2months", "1y", "1year", "2years", "1d 1M"] {
            let err = Schedule::every(cadence).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("cadence `{cadence}` uses the unit")),
                "{err}"
            );
            assert!(err.contains("not a calendar month or year"), "{err}");
            assert!(err.contains("`30d`"), "{err}");
            assert!(err.contains(".cron(\"0 0 1 * *\")"), "{err}");
        }
        // Minutes, milliseconds and the other fixed units are fine.
        for cadence in ["1m", "5min", "10ms", "1d", "2w", "1h 30m"] {
            assert!(Schedule::every(cadence).is_ok(), "{cadence}");
        }
    }

    #[test]
    fn cadences_over_the_maximum_are_refused() {
        assert_eq!(
            Schedule::every("366d").unwrap().cadence(),
            Some(Schedule::MAX_CADENCE)
        );
        let err = Schedule::every("367d").unwrap_err().to_string();
        assert_eq!(
            err,
            "cadence (367d) must be at most 366d (Schedule::MAX_CADENCE)"
        );
        assert!(Schedule::every("100000000w").is_err());
        assert!(every(Duration::MAX).validate().is_err());
    }

    #[test]
    fn validation_rejects_zero_and_sub_millisecond_cadences() {
        assert!(every(Duration::ZERO).validate().is_err());
        assert!(every(Duration::from_micros(1500)).validate().is_err());
        assert!(every(Duration::from_millis(1)).validate().is_ok());
    }

    #[test]
    fn offsets_shift_every_plan_of_a_cadence() {
        let schedule = Schedule::every("15m").unwrap().with_offset("5m").unwrap();
        assert_eq!(
            schedule.latest_plan(at("2026-11-22T10:19:59Z")),
            Some(at("2026-11-22T10:05:00Z"))
        );
        assert_eq!(
            schedule.latest_plan(at("2026-11-22T10:20:00Z")),
            Some(at("2026-11-22T10:20:00Z"))
        );
        assert_eq!(
            schedule.next_plan(at("2026-11-22T10:20:00Z")),
            Some(at("2026-11-22T10:35:00Z"))
        );
        assert_eq!(schedule.to_string(), "every 15m offset 5m");
        let err = Schedule::every("15m")
            .unwrap()
            .with_offset("15m")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "offset (15m) must be shorter than the cadence (15m)");
        assert!(
            Schedule::cron("0 * * * *")
                .unwrap()
                .with_offset("5m")
                .is_err()
        );
    }

    #[test]
    fn cron_text_given_as_a_cadence_points_at_cron() {
        for text in ["0 3 * * *", "*/5 * * * *", "@daily", "0 30 9 ? * MON#2"] {
            let err = Schedule::every(text).unwrap_err().to_string();
            assert!(
                err.contains("looks like a cron expression"),
                "{text}: {err}"
            );
            assert!(err.contains(".cron("), "{err}");
        }
    }

    #[test]
    fn cron_schedules_find_plans_in_their_zone() {
        let schedule = Schedule::cron_in("0 3 * * *", "Europe/Berlin").unwrap();
        assert_eq!(schedule.time_zone(), "Europe/Berlin");
        assert_eq!(schedule.cadence(), None);
        assert_eq!(
            schedule.latest_plan(at("2026-11-22T10:00:00Z")),
            Some(at("2026-11-22T02:00:00Z"))
        );
        assert_eq!(
            schedule.next_plan(at("2026-11-22T02:00:00Z")),
            Some(at("2026-11-23T02:00:00Z"))
        );
        assert_eq!(schedule.to_string(), "cron `0 3 * * *` in Europe/Berlin");
    }
}
