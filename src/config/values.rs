//! How setting values are written: humantime durations (`"30s"`, `"1h 30m"`), lists of them,
//! and retention ages that may be `"forever"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A retention age: how long rows are kept, or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Rows older than this are pruned.
    For(Duration),
    /// Rows are never pruned.
    Forever,
}

impl Keep {
    /// The age as [`Retention`](crate::Retention) holds it: `None` keeps forever.
    pub fn as_option(self) -> Option<Duration> {
        match self {
            Keep::For(d) => Some(d),
            Keep::Forever => None,
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "forever" {
            return Ok(Keep::Forever);
        }
        parse(&text)
            .map(Keep::For)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"forever\"")))
    }
}

/// A humantime duration, e.g. `30s`, `5m`, `1h 30m`, `7d`.
fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}` ({e}): write e.g. \"30s\", \"5m\", \"1d\""))
}

/// `Option<Duration>` from a humantime string.
pub(super) mod duration {
    use super::*;

    /// Reads a humantime string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

/// `Option<Vec<Duration>>` from a list of humantime strings.
pub(super) mod durations {
    use super::*;

    /// Reads a list of humantime strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}
