//! A schedule as one line of text that parses back: how the job registry stores it, so a tool
//! that has only the database (a CLI preview, a dashboard) can rebuild the [`Schedule`] and
//! compute plan times without the application.
//!
//! - `every <cadence>` or `every <cadence> offset <offset>` (humantime durations, whole days
//!   written as `2d`): a fixed cadence.
//! - `cron <pattern>`: a cron expression; its time zone is stored beside it.

use super::{Schedule, fmt_duration};
use crate::error::Error;

impl Schedule {
    /// The schedule as registry text (`every 15m offset 5m`, `cron 0 3 * * *`); the time zone
    /// is [`Schedule::time_zone`]. [`Schedule::from_text`] reads it back.
    ///
    /// ```
    /// use cronlease::Schedule;
    ///
    /// let nightly = Schedule::cron_in("30 2 * * *", "Europe/Berlin").unwrap();
    /// assert_eq!(nightly.to_text(), "cron 30 2 * * *");
    /// let back = Schedule::from_text(&nightly.to_text(), nightly.time_zone()).unwrap();
    /// assert_eq!(back, nightly);
    /// ```
    pub fn to_text(&self) -> String {
        match self {
            Schedule::Every { cadence, offset } if offset.is_zero() => {
                format!("every {}", fmt_duration(*cadence))
            }
            Schedule::Every { cadence, offset } => {
                format!(
                    "every {} offset {}",
                    fmt_duration(*cadence),
                    fmt_duration(*offset)
                )
            }
            Schedule::Cron(cron) => format!("cron {}", cron.pattern()),
        }
    }

    /// Reads registry text written by [`Schedule::to_text`]; `time_zone` applies to a cron
    /// pattern (a cadence is always UTC). Fails with [`Error::InvalidConfig`] for any other text.
    pub fn from_text(text: &str, time_zone: &str) -> Result<Self, Error> {
        let text = text.trim();
        if let Some(pattern) = text.strip_prefix("cron ") {
            return Schedule::cron_in(pattern, time_zone);
        }
        if let Some(rest) = text.strip_prefix("every ") {
            return match rest.split_once(" offset ") {
                Some((cadence, offset)) => Schedule::every(cadence)?.with_offset(offset),
                None => Schedule::every(rest),
            };
        }
        Err(Error::InvalidConfig(format!(
            "`{text}` is not a stored schedule: expected `every <cadence>`, `every <cadence> offset <offset>` or `cron <pattern>`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedule_reads_back_from_its_text() {
        let schedules = [
            Schedule::every("5m").unwrap(),
            Schedule::every("1h 30m").unwrap(),
            Schedule::every("15m").unwrap().with_offset("5m").unwrap(),
            Schedule::every("366d").unwrap(),
            Schedule::every("1d")
                .unwrap()
                .with_offset("2h 30m")
                .unwrap(),
            Schedule::every("250ms").unwrap(),
            Schedule::cron("*/5 * * * *").unwrap(),
            Schedule::cron_in("0 30 9 ? * MON#2", "America/New_York").unwrap(),
            Schedule::cron_in("@daily", "Europe/Berlin").unwrap(),
        ];
        for schedule in schedules {
            let text = schedule.to_text();
            let back = Schedule::from_text(&text, schedule.time_zone()).unwrap();
            assert_eq!(back, schedule, "{text}");
        }
    }

    #[test]
    fn other_text_is_refused() {
        let err = Schedule::from_text("hourly", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a stored schedule"), "{err}");
        assert!(Schedule::from_text("every often", "UTC").is_err());
        assert!(Schedule::from_text("cron 0 3 * * *", "Mars/Olympus").is_err());
    }
}
