//! Decoding shared by every backend: text and JSON columns into the crate's types.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::execution::FailedAttempt;
use crate::schedule::from_millis;

/// Parses a stored UUID.
pub(crate) fn uuid(id_for_errors: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| corrupt(id_for_errors, format!("bad uuid `{text}`: {e}")))
}

/// Parses a text column with `FromStr` (status, claim outcome).
pub(crate) fn parsed<T: std::str::FromStr<Err = String>>(id: &str, text: &str) -> Result<T> {
    text.parse().map_err(|message| corrupt(id, message))
}

/// Parses the `failures` history. Times in it are Unix milliseconds on every backend.
pub(crate) fn failures(id: &str, json: &serde_json::Value) -> Result<Vec<FailedAttempt>> {
    let entries = json
        .as_array()
        .ok_or_else(|| corrupt(id, "failures is not a JSON array".into()))?;
    Ok(entries
        .iter()
        .map(|entry| FailedAttempt {
            attempt: entry["attempt"].as_u64().unwrap_or(0) as u32,
            code: entry["code"].as_str().unwrap_or_default().to_owned(),
            message: entry["message"].as_str().unwrap_or_default().to_owned(),
            started_at: entry["started_at"].as_i64().map(from_millis),
            finished_at: entry["finished_at"].as_i64().map(from_millis),
        })
        .collect())
}

/// Milliseconds to a time, for nullable columns.
pub(crate) fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_millis)
}

/// Converts a count to `u32`, reporting out-of-range values as corruption.
pub(crate) fn count(id: &str, column: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(id, format!("{column} out of range: {value}")))
}

pub(crate) fn corrupt(id: &str, message: String) -> Error {
    Error::CorruptRow {
        id: id.to_owned(),
        message,
    }
}

/// Which of `len` offered items a statement found, from the positions it returned (counted from
/// `first`: 1 for PostgreSQL's `WITH ORDINALITY`, 0 for SQLite's `json_each` keys).
pub(crate) fn found_at(
    len: usize,
    positions: impl IntoIterator<Item = i64>,
    first: i64,
) -> Vec<bool> {
    let mut found = vec![false; len];
    for position in positions {
        if let Some(slot) = usize::try_from(position - first)
            .ok()
            .and_then(|i| found.get_mut(i))
        {
            *slot = true;
        }
    }
    found
}

/// Decodes rows as they arrive and hands each to `sink`, instead of holding every row or every
/// decoded value first: an answer of a million rows (every scope's newest plan) costs one row at
/// a time. Rows that cannot be decoded are skipped with a warning, as
/// [`skip_corrupt`](super::skip_corrupt) does. Returns the rows handed over.
pub(crate) async fn decode_into<R, T, E>(
    rows: impl futures_util::Stream<Item = std::result::Result<R, E>>,
    decode: impl Fn(&R) -> Result<T>,
    mut sink: impl FnMut(T),
) -> std::result::Result<usize, E> {
    use futures_util::TryStreamExt;
    let mut rows = std::pin::pin!(rows);
    let mut handed = 0;
    while let Some(row) = rows.try_next().await? {
        match decode(&row) {
            Ok(value) => {
                sink(value);
                handed += 1;
            }
            Err(error) => tracing::warn!(%error, "skipping a row that cannot be decoded"),
        }
    }
    Ok(handed)
}
