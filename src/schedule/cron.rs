//! Cron expressions evaluated in an IANA time zone, through croner's jiff backend.
//!
//! - [`CronSchedule`]: a parsed pattern and its zone; the previous and next plan times of an
//!   instant, as UTC instants.
//! - Parse errors name the field at fault (`the hour field `25` ...`), found by re-parsing each
//!   field alone with the others set to `*`.
//!
//! DST (the Vixie cron / OCPS rules, applied by croner and held by the tests below): a fixed-time
//! pattern (single second, minute and hour) whose local time falls in a spring-forward gap runs
//! once, at the first instant after the gap; in a fall-back overlap it runs once, at the first
//! occurrence. Patterns with a wildcard, step, range or list in those fields fire at every real
//! instant that matches, so they keep firing through both halves of an overlap.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::Error;

/// A cron pattern in a time zone: the plan times are the instants whose local time matches.
///
/// Syntax (5 fields; 6 with seconds first; 7 with a year last): minute `0-59`, hour `0-23`,
/// day of month `1-31` (`L`, `15W`), month `1-12` or `JAN-DEC`, day of week `0-7` or
/// `SUN-SAT` (0 and 7 are Sunday; `5L`, `MON#2`), with `*`, `?`, ranges, lists and steps, and the
/// macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`. When both day
/// fields are restricted, a day matches if **either** matches (POSIX cron).
#[derive(Clone)]
pub struct CronSchedule {
    pattern: String,
    cron: Cron,
    zone: TimeZone,
    zone_name: String,
}

impl CronSchedule {
    /// Parses `pattern` to run in the IANA time zone `zone` (`"UTC"`, `"Europe/Berlin"`).
    ///
    /// Fails with [`Error::InvalidConfig`] naming the field at fault, for an unknown zone, and
    /// for a pattern that never matches (`0 0 30 2 *`).
    pub fn parse(pattern: &str, zone: &str) -> Result<Self, Error> {
        let pattern = pattern.trim();
        let cron = parser()
            .parse(pattern)
            .map_err(|error| Error::InvalidConfig(explain(pattern, &error)))?;
        let zone_name = zone.trim();
        let zone = time_zone(zone_name)?;
        let schedule = CronSchedule {
            pattern: pattern.to_owned(),
            cron,
            zone,
            zone_name: zone_name.to_owned(),
        };
        let probe = Utc::now();
        if schedule.next_after(probe).is_none() && schedule.latest_at_or_before(probe).is_none() {
            return Err(Error::InvalidConfig(format!(
                "cron expression `{pattern}` never matches a real date (e.g. `0 0 30 2 *`): check the day and month fields"
            )));
        }
        Ok(schedule)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The IANA name of the time zone the pattern is read in.
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// The newest plan time at or before `t`, if the pattern ever matched before it.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let origin = self.zoned(t)?;
        let found = self.cron.find_previous_occurrence(&origin, true).ok()?;
        to_utc(found.timestamp())
    }

    /// The first plan time strictly after `t`, if the pattern matches again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let origin = self.zoned(t)?;
        let found = self.cron.find_next_occurrence(&origin, false).ok()?;
        to_utc(found.timestamp())
    }

    /// `t` as a local time of this schedule's zone.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        local_time(&self.zone, t)
    }

    /// `t` in the zone, cut to its whole second (cron times have no smaller unit, and a plan at
    /// `10:00:00` is at or before `10:00:00.5`).
    fn zoned(&self, t: DateTime<Utc>) -> Option<jiff::Zoned> {
        Timestamp::from_second(t.timestamp())
            .ok()
            .map(|ts| ts.to_zoned(self.zone.clone()))
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.zone_name == other.zone_name
    }
}

impl Eq for CronSchedule {}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("pattern", &self.pattern)
            .field("time_zone", &self.zone_name)
            .finish()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron `{}` in {}", self.pattern, self.zone_name)
    }
}

/// An IANA time zone by name, from the system's tz database (or jiff's bundled copy where the
/// system has none). `UTC` always resolves.
fn time_zone(name: &str) -> Result<TimeZone, Error> {
    if name.eq_ignore_ascii_case("UTC") || name.eq_ignore_ascii_case("Etc/UTC") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        Error::InvalidConfig(format!(
            "unknown time zone `{name}`: give an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
        ))
    })
}

/// `t` as a local time of `zone`.
fn local_time(zone: &TimeZone, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    let offset = Timestamp::from_second(t.timestamp())
        .map(|ts| zone.to_offset(ts).seconds())
        .unwrap_or(0);
    let offset = FixedOffset::east_opt(offset).unwrap_or(FixedOffset::east_opt(0).expect("zero"));
    t.with_timezone(&offset)
}

/// The parser every cron schedule uses: seconds optional (6 fields), year optional (7 fields),
/// POSIX day-of-month OR day-of-week, POSIX weekday numbers (0 = Sunday).
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Optional)
        .build()
}

fn to_utc(ts: Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.as_second(), 0)
}

const FIELDS_5: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const FIELDS_6: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];
const FIELDS_7: [&str; 7] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
    "year",
];

/// A message for a pattern croner refused, naming the field at fault when one field alone fails.
fn explain(pattern: &str, error: &CronError) -> String {
    if pattern.is_empty() {
        return "cron expression is empty: write e.g. `0 3 * * *` (03:00 every day)".into();
    }
    if pattern.starts_with('@') {
        return format!(
            "unknown cron macro `{pattern}`: use @yearly, @annually, @monthly, @weekly, @daily or @hourly"
        );
    }
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &FIELDS_5,
        6 => &FIELDS_6,
        7 => &FIELDS_7,
        n => {
            return format!(
                "cron expression `{pattern}` has {n} field(s): write 5 (minute hour day-of-month month day-of-week), 6 with seconds first, or 7 with a year last"
            );
        }
    };
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if let Err(error) = parser().parse(&alone.join(" ")) {
            return format!(
                "the {} field `{field}` of cron expression `{pattern}` is invalid ({}): allowed {}",
                names[i],
                detail(&error),
                allowed(names[i])
            );
        }
    }
    format!("invalid cron expression `{pattern}` ({})", detail(error))
}

/// croner's message without its type-name prefixes.
fn detail(error: &CronError) -> String {
    match error {
        CronError::ComponentError(m) | CronError::InvalidPattern(m) => {
            m.trim_end_matches('.').into()
        }
        CronError::IllegalCharacters(m) => m
            .trim_start_matches("CronPattern contains ")
            .trim_end_matches('.')
            .into(),
        other => other.to_string().trim_end_matches('.').into(),
    }
}

fn allowed(field: &str) -> &'static str {
    match field {
        "second" | "minute" => "0-59 with * , - /",
        "hour" => "0-23 with * , - /",
        "day-of-month" => "1-31 with * ? , - / L W",
        "month" => "1-12 or JAN-DEC with * , - /",
        "day-of-week" => "0-7 or SUN-SAT (0 and 7 are Sunday) with * ? , - / L #",
        _ => "a year with * , - /",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The plan times of `pattern` in `zone` strictly after `from`, `n` of them.
    fn walk(pattern: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let schedule = CronSchedule::parse(pattern, zone).unwrap();
        std::iter::successors(schedule.next_after(at(from)), |t| schedule.next_after(*t))
            .take(n)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    /// The same plan times found walking backwards from `to`, oldest first.
    fn walk_back(pattern: &str, zone: &str, to: &str, n: usize) -> Vec<String> {
        let schedule = CronSchedule::parse(pattern, zone).unwrap();
        let mut found: Vec<String> =
            std::iter::successors(schedule.latest_at_or_before(at(to)), |t| {
                schedule.latest_at_or_before(*t - chrono::TimeDelta::seconds(1))
            })
            .take(n)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect();
        found.reverse();
        found
    }

    fn check_both_ways(pattern: &str, zone: &str, from: &str, expected: &[&str]) {
        let forward = walk(pattern, zone, from, expected.len());
        assert_eq!(forward, expected, "{pattern} in {zone} forwards");
        let back = walk_back(pattern, zone, expected.last().unwrap(), expected.len());
        assert_eq!(back, expected, "{pattern} in {zone} backwards");
    }

    #[test]
    fn berlin_spring_forward_runs_a_skipped_fixed_time_once_after_the_gap() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:30 does not exist that day.
        check_both_ways(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            &[
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST, the first instant after the gap
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ],
        );
    }

    #[test]
    fn berlin_fall_back_runs_a_repeated_fixed_time_once_at_its_first_occurrence() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 happens twice.
        check_both_ways(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-23T12:00:00Z",
            &[
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z", // 02:30 CEST, not 02:30 CET an hour later
                "2026-10-26T01:30:00Z",
            ],
        );
    }

    #[test]
    fn hourly_patterns_fire_through_both_halves_of_an_overlap_and_skip_the_gap() {
        check_both_ways(
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            &[
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T02:00:00Z", // 03:00 CET
            ],
        );
        check_both_ways(
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:30:00Z",
            &[
                "2026-03-29T00:00:00Z", // 01:00 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST: 02:00 does not exist
                "2026-03-29T02:00:00Z",
            ],
        );
    }

    #[test]
    fn quarter_hour_patterns_keep_every_real_instant_across_new_york_transitions() {
        // 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00Z; 01:00-01:59 happens twice.
        let fall = walk(
            "*/15 * * * *",
            "America/New_York",
            "2026-11-01T04:50:00Z",
            12,
        );
        let expected: Vec<String> = (0..12)
            .map(|i| {
                (at("2026-11-01T05:00:00Z") + chrono::TimeDelta::minutes(15 * i))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            })
            .collect();
        assert_eq!(fall, expected, "every quarter hour of both 01:xx hours");
        // 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z: 02:xx never happens, but every
        // real quarter hour still fires once.
        let spring = walk(
            "*/15 * * * *",
            "America/New_York",
            "2026-03-08T06:40:00Z",
            4,
        );
        assert_eq!(
            spring,
            [
                "2026-03-08T06:45:00Z", // 01:45 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT
                "2026-03-08T07:15:00Z",
                "2026-03-08T07:30:00Z",
            ]
        );
    }

    #[test]
    fn new_york_daily_at_half_past_one_runs_once_on_the_repeated_night() {
        check_both_ways(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31T05:30:00Z", // 01:30 EDT
                "2026-11-01T05:30:00Z", // 01:30 EDT, first of two
                "2026-11-02T06:30:00Z", // 01:30 EST
            ],
        );
        check_both_ways(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT, after the gap
                "2026-03-09T06:30:00Z", // 02:30 EDT
            ],
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        // Australia/Lord_Howe moves by 30 minutes. 2026-10-04: 02:00 (+10:30) becomes 02:30
        // (+11:00) at 2026-10-03T15:30Z; 02:15 does not exist.
        check_both_ways(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            &[
                "2026-10-02T15:45:00Z", // 02:15 +10:30
                "2026-10-03T15:30:00Z", // 02:30 +11:00, after the gap
                "2026-10-04T15:15:00Z", // 02:15 +11:00
            ],
        );
        // 2026-04-05: 02:00 (+11:00) becomes 01:30 (+10:30) at 2026-04-04T15:00Z; 01:45 twice.
        check_both_ways(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            &[
                "2026-04-03T14:45:00Z",
                "2026-04-04T14:45:00Z", // 01:45 +11:00, the first occurrence
                "2026-04-05T15:15:00Z", // 01:45 +10:30
            ],
        );
        // Every quarter hour fires on each real instant through the repeated half hour.
        let fall = walk(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:40:00Z",
            4,
        );
        assert_eq!(
            fall,
            [
                "2026-04-04T14:45:00Z", // 01:45 +11:00
                "2026-04-04T15:00:00Z", // 01:30 +10:30 (the clock went back)
                "2026-04-04T15:15:00Z", // 01:45 +10:30
                "2026-04-04T15:30:00Z", // 02:00 +10:30
            ]
        );
    }

    #[test]
    fn southern_hemisphere_transitions_in_sydney() {
        // 2026-04-05: 03:00 AEDT becomes 02:00 AEST at 16:00Z the day before.
        check_both_ways(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-04-03T00:00:00Z",
            &[
                "2026-04-03T15:30:00Z", // 02:30 AEDT
                "2026-04-04T15:30:00Z", // 02:30 AEDT, first of two
                "2026-04-05T16:30:00Z", // 02:30 AEST
            ],
        );
        // 2026-10-04: 02:00 AEST becomes 03:00 AEDT at 16:00Z the day before.
        check_both_ways(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-10-02T00:00:00Z",
            &[
                "2026-10-02T16:30:00Z", // 02:30 AEST
                "2026-10-03T16:00:00Z", // 03:00 AEDT, after the gap
                "2026-10-04T15:30:00Z", // 02:30 AEDT
            ],
        );
        check_both_ways(
            "0 * * * *",
            "Australia/Sydney",
            "2026-04-04T14:30:00Z",
            &[
                "2026-04-04T15:00:00Z", // 02:00 AEDT
                "2026-04-04T16:00:00Z", // 02:00 AEST
                "2026-04-04T17:00:00Z",
            ],
        );
    }

    #[test]
    fn utc_patterns_with_names_steps_and_specials() {
        assert_eq!(
            walk("0 9 * * MON-FRI", "UTC", "2026-11-27T10:00:00Z", 2),
            ["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"]
        );
        assert_eq!(
            walk("0 30 9 ? * MON#2", "UTC", "2026-11-01T00:00:00Z", 2),
            ["2026-11-09T09:30:00Z", "2026-12-14T09:30:00Z"]
        );
        assert_eq!(
            walk("0 0 L * *", "UTC", "2026-02-01T00:00:00Z", 2),
            ["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"]
        );
        // 2026-08-15 is a Saturday: the nearest weekday is Friday the 14th.
        assert_eq!(
            walk("0 0 15W * *", "UTC", "2026-08-01T00:00:00Z", 1),
            ["2026-08-14T00:00:00Z"]
        );
        assert_eq!(
            walk("0 0 * * 5L", "UTC", "2026-11-01T00:00:00Z", 1),
            ["2026-11-27T00:00:00Z"]
        );
        assert_eq!(
            walk("*/20 * * * * *", "UTC", "2026-11-01T00:00:00Z", 3),
            [
                "2026-11-01T00:00:20Z",
                "2026-11-01T00:00:40Z",
                "2026-11-01T00:01:00Z"
            ]
        );
        assert_eq!(
            walk("@monthly", "UTC", "2026-11-15T00:00:00Z", 1),
            ["2026-12-01T00:00:00Z"]
        );
        assert_eq!(
            walk("@weekly", "UTC", "2026-11-25T00:00:00Z", 1),
            ["2026-11-29T00:00:00Z"]
        );
    }

    #[test]
    fn day_fields_combine_with_or_as_in_posix_cron() {
        // The 13th of the month or any Friday.
        assert_eq!(
            walk("0 0 13 * FRI", "UTC", "2026-11-01T00:00:00Z", 4),
            [
                "2026-11-06T00:00:00Z",
                "2026-11-13T00:00:00Z",
                "2026-11-20T00:00:00Z",
                "2026-11-27T00:00:00Z"
            ]
        );
        assert_eq!(
            walk("0 0 13 * FRI", "UTC", "2026-12-01T00:00:00Z", 3),
            [
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z"
            ]
        );
    }

    #[test]
    fn a_time_inside_a_second_belongs_to_that_second() {
        let schedule = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let t = at("2026-11-01T00:00:10.500Z");
        assert_eq!(
            schedule.latest_at_or_before(t),
            Some(at("2026-11-01T00:00:10Z"))
        );
        assert_eq!(schedule.next_after(t), Some(at("2026-11-01T00:00:11Z")));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("0 25 * * *", "the hour field `25`"),
            ("61 * * * *", "the minute field `61`"),
            ("0 0 32 * *", "the day-of-month field `32`"),
            ("0 0 * 13 *", "the month field `13`"),
            ("0 0 * * FOO", "the day-of-week field `FOO`"),
            ("0 0 * * 1-", "the day-of-week field `1-`"),
            ("*/0 * * * *", "the minute field `*/0`"),
            ("70 0 0 * * *", "the second field `70`"),
        ];
        for (pattern, start) in cases {
            let err = CronSchedule::parse(pattern, "UTC").unwrap_err().to_string();
            assert!(err.starts_with(start), "{pattern}: {err}");
            assert!(err.contains("allowed "), "{pattern}: {err}");
        }
        let err = CronSchedule::parse("* * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("has 3 field(s): write 5"), "{err}");
        let err = CronSchedule::parse("@sometimes", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown cron macro `@sometimes`"), "{err}");
        let err = CronSchedule::parse("  ", "UTC").unwrap_err().to_string();
        assert!(err.starts_with("cron expression is empty"), "{err}");
    }

    #[test]
    fn patterns_that_never_match_and_unknown_zones_are_refused() {
        let err = CronSchedule::parse("0 0 30 2 *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("never matches"), "{err}");
        let err = CronSchedule::parse("0 3 * * *", "Mars/Olympus_Mons")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown time zone `Mars/Olympus_Mons`: give an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
        );
    }

    #[test]
    fn local_times_carry_the_offset_in_force() {
        let schedule = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let local = schedule.local(at("2026-03-29T01:00:00Z"));
        assert_eq!(local.to_rfc3339(), "2026-03-29T03:00:00+02:00");
        let local = schedule.local(at("2026-01-10T01:30:00Z"));
        assert_eq!(local.to_rfc3339(), "2026-01-10T02:30:00+01:00");
    }
}
