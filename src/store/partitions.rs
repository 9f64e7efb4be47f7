//! Time-partitioned execution history (PostgreSQL): what the store reports and what it is told.
//!
//! - [`HistoryPartitions`]: the day partitions a partitioned history has, and the database clock.
//! - [`PartitionKeep`]: the retention a dropped day's rows are judged by, so the rows the batched
//!   prune would keep ("keepers") survive the drop.
//! - [`PartitionDropped`]: what dropping one day did.
//! - [`PartitionOptions`] and [`HistoryConversion`]: converting a plain history table.
//!
//! The history stays one plain table unless an operator converts it
//! ([`PgStore::partition_history`](super::PgStore::partition_history)); runners find out from the
//! catalog. Which days to create and drop is decided by `crate::partition_plan`, not here.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

/// Days of partitions [`PartitionOptions::default`] creates ahead of today, and the retention
/// service keeps ahead: 7.
pub const DEFAULT_PARTITION_DAYS_AHEAD: u32 = 7;
/// Days back (before today) [`PartitionOptions::default`] gives partitions of their own when
/// they hold rows: 31, one more than the default `keep_finished`. Older rows go to the DEFAULT
/// partition, which the batched prune empties.
pub const DEFAULT_PARTITION_DAYS_BACK: u32 = 31;

/// The state of a partitioned history: its day partitions (one per UTC day, named
/// `cronlease_executions_pYYYYMMDD`) and the database clock when they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPartitions {
    /// The database clock.
    pub now: DateTime<Utc>,
    /// The UTC days that have a partition, oldest first (the DEFAULT partition is not listed).
    pub days: Vec<NaiveDate>,
}

/// The retention a day partition's rows are judged by when it is dropped: a row is kept (moved
/// to the DEFAULT partition) unless the retention service's batched prune would delete it now.
/// `None` ages keep rows forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionKeep {
    /// The scheduler-wide `keep_finished` for SUCCESS, SUPERSEDED and SKIPPED rows.
    pub finished: Option<Duration>,
    /// Jobs with their own `keep_finished` (`None`: forever), which replaces `finished`.
    pub finished_own: Vec<(String, Option<Duration>)>,
    /// `keep_dead` for DEAD rows, measured from their last failure.
    pub dead: Option<Duration>,
}

/// What dropping one day partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionDropped {
    /// The rows the partition held.
    pub rows: u64,
    /// The rows kept: moved to the DEFAULT partition before the drop.
    pub kept: u64,
}

/// How [`PgStore::partition_history`](super::PgStore::partition_history) lays out a converted
/// history. Default: 31 days back, 7 ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOptions {
    /// Past days (before today, UTC) that get a partition of their own, from the oldest that
    /// holds a row; older rows go to the DEFAULT partition. Default: 31.
    pub days_back: u32,
    /// Days after today that get an (empty) partition. Default: 7.
    pub days_ahead: u32,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions {
            days_back: DEFAULT_PARTITION_DAYS_BACK,
            days_ahead: DEFAULT_PARTITION_DAYS_AHEAD,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConversion {
    /// The history was partitioned already: nothing was changed.
    pub already_partitioned: bool,
    /// Rows copied into the partitioned table.
    pub rows: u64,
    /// The rows that went to the DEFAULT partition (older than the first day partition).
    pub rows_in_default: u64,
    /// The day partitions created, oldest first.
    pub days: Vec<NaiveDate>,
}

/// The error of the partition methods on a backend without partitioned history.
pub(crate) fn unsupported(backend: &str) -> crate::error::Error {
    crate::error::Error::InvalidRequest(format!(
        "time-partitioned history needs PostgreSQL; this database is {backend} (its history stays one table)"
    ))
}
