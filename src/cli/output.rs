//! How results are shown: aligned tables for people, one JSON document for scripts.
//!
//! Colours are used only when standard output is a terminal and `NO_COLOR` is unset or empty.
//! Times are shown in UTC and in the job's time zone (`2026-11-29 04:00:00 CET`).

use std::io::IsTerminal;

use chrono::{DateTime, Utc};
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table, presets};

use crate::execution::Status;

/// Where and how to print.
pub(crate) struct Out {
    /// One JSON document instead of tables.
    pub(crate) json: bool,
    /// Whether to colour.
    color: bool,
}

impl Out {
    /// From `--json` and the terminal.
    pub(crate) fn new(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            json,
            color: !json && !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// A table with these column headers, aligned, never wrapped (the width of the terminal
    /// does not change what is printed).
    pub(crate) fn table(&self, headers: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        if self.color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(headers.iter().map(|h| self.style(Cell::new(h), None, true)));
        table
    }

    /// A cell showing a status, coloured by it.
    pub(crate) fn status(&self, status: Status) -> Cell {
        let color = match status {
            Status::Success => Color::Green,
            Status::Running => Color::Cyan,
            Status::Failed => Color::Yellow,
            Status::Dead => Color::Red,
            Status::Superseded | Status::Skipped => Color::DarkGrey,
        };
        self.style(Cell::new(status.as_str()), Some(color), false)
    }

    /// A cell in a warning colour when `alarm`.
    pub(crate) fn alarm(&self, text: impl ToString, alarm: bool) -> Cell {
        self.style(Cell::new(text), alarm.then_some(Color::Red), false)
    }

    fn style(&self, mut cell: Cell, color: Option<Color>, bold: bool) -> Cell {
        if self.color {
            if let Some(color) = color {
                cell = cell.fg(color);
            }
            if bold {
                cell = cell.add_attribute(Attribute::Bold);
            }
        }
        cell
    }

    /// Prints a table, trimming the blank right margin of each line.
    pub(crate) fn print_table(&self, table: &mut Table) {
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        for line in table.to_string().lines() {
            println!("{}", line.trim_end());
        }
    }

    /// Prints a JSON document.
    pub(crate) fn print_json(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("a JSON value serializes")
        );
    }
}

/// A time in UTC: `2026-11-29 03:00:00 UTC`; `-` for none.
pub(crate) fn utc(t: Option<DateTime<Utc>>) -> String {
    t.map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// A time in the IANA zone `zone`: `2026-11-29 04:00:00 CET`; `-` for none. An unknown zone
/// falls back to UTC.
pub(crate) fn local(t: Option<DateTime<Utc>>, zone: &str) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let zoned = jiff::tz::TimeZone::get(zone)
        .ok()
        .zip(jiff::Timestamp::from_millisecond(t.timestamp_millis()).ok())
        .map(|(tz, ts)| ts.to_zoned(tz));
    match zoned {
        Some(z) => z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => utc(Some(t)),
    }
}

/// A time in the zone as RFC 3339 with its offset, for JSON; `null` for none.
pub(crate) fn local_json(t: Option<DateTime<Utc>>, zone: &str) -> serde_json::Value {
    let Some(t) = t else {
        return serde_json::Value::Null;
    };
    let zoned = jiff::tz::TimeZone::get(zone)
        .ok()
        .zip(jiff::Timestamp::from_millisecond(t.timestamp_millis()).ok())
        .map(|(tz, ts)| ts.to_zoned(tz));
    match zoned {
        Some(z) => z.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string().into(),
        None => rfc3339(Some(t)),
    }
}

/// RFC 3339 in UTC with milliseconds, for JSON; `null` for none.
pub(crate) fn rfc3339(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into()
    })
}

/// A duration for people: `1m 30s`, `2d`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    crate::schedule::fmt_duration(d)
}

/// Text cut to `max` characters with an ellipsis, on one line.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc_and_the_jobs_zone() {
        let t: DateTime<Utc> = "2026-11-29T03:00:00Z".parse().unwrap();
        assert_eq!(utc(Some(t)), "2026-11-29 03:00:00 UTC");
        assert_eq!(local(Some(t), "Europe/Berlin"), "2026-11-29 04:00:00 CET");
        assert_eq!(local(Some(t), "UTC"), "2026-11-29 03:00:00 UTC");
        assert_eq!(local(None, "UTC"), "-");
        assert_eq!(
            local_json(Some(t), "America/New_York"),
            serde_json::json!("2026-11-28T22:00:00.000-05:00")
        );
        assert_eq!(
            rfc3339(Some(t)),
            serde_json::json!("2026-11-29T03:00:00.000Z")
        );
    }

    #[test]
    fn long_text_is_cut_on_one_line() {
        assert_eq!(cut("a\nb", 10), "a b");
        assert_eq!(cut("abcdefghijk", 5), "abcd…");
    }
}
