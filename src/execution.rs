//! The executions table as read back: one row per plan, the lease while RUNNING and the audit
//! record afterwards.
//!
//! - [`Execution`]: a row.
//! - [`Status`]: the stored states, each saying who moves a row in and out of it.
//! - [`ErrorCode`]: why an attempt failed.
//! - [`FailedAttempt`]: one entry of a row's failure history.
//! - [`ClaimOutcome`]: how a claim went (Won, Stole, Retried, Conflicted).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::scope::Scope;

/// An execution's stored state. "Stale" is not stored: it is RUNNING with `stale_after` past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Leased by a runner. In: a claim (first run, retry, steal or replay). Out: the owner's
    /// terminal write, or the stale sweep once heartbeats stop.
    Running,
    /// Done. In: the owner's fenced success write. Out: never (pruned after retention).
    Success,
    /// The last attempt failed and attempts remain. In: the owner's failure write, the sweep,
    /// or an operator's replay of a DEAD row. Out: a retry claim once `next_retry_at` passes, in
    /// every catch-up mode (until SUCCESS or DEAD), or SUPERSEDED when the job opted in and a
    /// newer plan of its scope succeeded. Never pruned: every FAILED row has a future.
    Failed,
    /// Dead-lettered: out of attempts, failed permanently, or swept while the job forbids
    /// re-entry. In: a failure write or the sweep. Out: only an operator's replay (back to
    /// FAILED, same id, history kept), or the prune once its own retention has passed.
    Dead,
    /// Closed without success because a newer plan of the same scope succeeded, for jobs that
    /// opted in with [`JobSpecBuilder::supersede_failed`](crate::JobSpecBuilder::supersede_failed)
    /// (refresh-style work, where only the latest result matters). In: the tick of any runner,
    /// from FAILED. Out: never (pruned with SUCCESS rows). The last error and the failure
    /// history stay. Also an attempt cancelled because a newer plan of its scope started, for
    /// jobs with [`OverlapPolicy::CancelOther`](crate::OverlapPolicy::CancelOther) (code
    /// `overlap_cancelled`): in from RUNNING, through the claim of any runner.
    Superseded,
    /// Deliberately not run: the plan came due while the previous plan of its scope was
    /// RUNNING and the job's [`OverlapPolicy`](crate::OverlapPolicy) skips it (code `overlap`).
    /// In: the claim of any runner, as a new row, finished at once (`attempt` 1, never
    /// started: `started_at` is empty). Out: never (pruned with SUCCESS rows). It is the audit
    /// record, and it tells every replica and the planner that the plan was handled.
    Skipped,
}

impl Status {
    /// The stored text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
            Status::Dead => "DEAD",
            Status::Superseded => "SUPERSEDED",
            Status::Skipped => "SKIPPED",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Success,
        Status::Failed,
        Status::Dead,
        Status::Superseded,
        Status::Skipped,
    ];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// Why an attempt failed, stored in `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The handler ran longer than `run_timeout`.
    RunTimeout,
    /// The runner shut down mid-attempt; retry-eligible at once and not counted against the budget.
    Canceled,
    /// Another runner took the lease over; this attempt's outcome was discarded.
    LeaseLost,
    /// The handler panicked.
    HandlerPanic,
    /// The handler returned a retryable error.
    HandlerError,
    /// The lease expired without heartbeat (the runner died or lost the database).
    StaleTimeout,
    /// The handler returned a permanent error.
    Permanent,
}

impl ErrorCode {
    /// The stored text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::RunTimeout => "run_timeout",
            ErrorCode::Canceled => "canceled",
            ErrorCode::LeaseLost => "lease_lost",
            ErrorCode::HandlerPanic => "handler_panic",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::StaleTimeout => "stale_timeout",
            ErrorCode::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One earlier failed attempt, kept in the row's `failures` history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    /// The attempt number.
    pub attempt: u32,
    /// The error code, e.g. `handler_error`.
    pub code: String,
    /// The error message (at most 4000 bytes).
    pub message: String,
    /// When the attempt started (database clock); absent if unknown.
    pub started_at: Option<DateTime<Utc>>,
    /// When the failure was recorded (database clock).
    pub finished_at: Option<DateTime<Utc>>,
}

/// One execution row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    /// UUID v7, stable across attempts and replays: an idempotency key.
    pub id: Uuid,
    /// The job's name.
    pub job_name: String,
    /// The scope.
    pub scope: Scope,
    /// The plan time (UTC).
    pub plan_time: DateTime<Utc>,
    /// The stored state.
    pub status: Status,
    /// The current or last attempt, 1 for the first run.
    pub attempt: u32,
    /// The attempt budget.
    pub max_attempts: u32,
    /// When a FAILED row may be claimed again; `None` means no retry is scheduled.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The current or last owner.
    pub runner_id: String,
    /// The current or last lease token; every write of the owner is fenced by it.
    pub lease_token: Uuid,
    /// How the current or last attempt's lease was obtained.
    pub claim_outcome: ClaimOutcome,
    /// Last renewal of the lease.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When the lease goes stale without renewal.
    pub stale_after: Option<DateTime<Utc>>,
    /// When the current or last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the row was inserted.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
    /// The last attempt's handler run time.
    pub duration_ms: Option<i64>,
    /// The last successful attempt's row count.
    pub rows_affected: Option<i64>,
    /// The last successful attempt's JSON result (`{}` otherwise).
    pub result: serde_json::Value,
    /// The last failure's code.
    pub error_code: Option<String>,
    /// The last failure's message.
    pub error_msg: Option<String>,
    /// Every failed attempt, oldest first.
    pub failures: Vec<FailedAttempt>,
    /// When an operator last replayed the row out of the dead-letter set; `None` if never.
    pub replayed_at: Option<DateTime<Utc>>,
    /// The trigger that started this execution outside the schedule (a manual run); `None` for
    /// a scheduled plan.
    pub trigger_id: Option<Uuid>,
}

impl Execution {
    /// Whether an operator's trigger started it (a manual run), not the schedule.
    pub fn is_manual(&self) -> bool {
        self.trigger_id.is_some()
    }
}

/// How a claim of one plan went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// A new row was inserted: first attempt.
    Won,
    /// A RUNNING row whose lease had gone stale was taken over.
    Stole,
    /// A FAILED row due for retry was taken.
    Retried,
    /// A DEAD row was replayed by an operator.
    Replayed,
    /// Someone holds a live lease, or the plan is finished, not yet due, exhausted or dead.
    Conflicted,
}

impl ClaimOutcome {
    /// The stored and metric label text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClaimOutcome::Won => "won",
            ClaimOutcome::Stole => "stole",
            ClaimOutcome::Retried => "retried",
            ClaimOutcome::Replayed => "replayed",
            ClaimOutcome::Conflicted => "conflicted",
        }
    }
}

impl FromStr for ClaimOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            ClaimOutcome::Won,
            ClaimOutcome::Stole,
            ClaimOutcome::Retried,
            ClaimOutcome::Replayed,
            ClaimOutcome::Conflicted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown claim outcome `{s}`"))
    }
}

impl fmt::Display for ClaimOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most bytes of `error_msg` stored.
pub const MAX_ERROR_MSG_BYTES: usize = 4000;
/// Most bytes of a JSON `result` stored; larger results become a truncation marker.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// `message` cut to at most [`MAX_ERROR_MSG_BYTES`] bytes on a UTF-8 character boundary.
pub(crate) fn truncate_error_msg(message: &str) -> &str {
    if message.len() <= MAX_ERROR_MSG_BYTES {
        return message;
    }
    let mut end = MAX_ERROR_MSG_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// The JSON text stored for a result: the result itself, or a truncation marker when its
/// serialisation exceeds [`MAX_RESULT_BYTES`].
pub(crate) fn capped_result(result: &serde_json::Value) -> String {
    let text = match result {
        serde_json::Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    if text.len() <= MAX_RESULT_BYTES {
        return text;
    }
    serde_json::json!({
        "truncated": true,
        "original_bytes": text.len(),
        "limit_bytes": MAX_RESULT_BYTES,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(3000); // 6000 bytes, 2 bytes per char
        let cut = truncate_error_msg(&long);
        assert_eq!(cut.len(), 4000);
        let odd = format!("a{}", "é".repeat(3000)); // boundary falls mid-char at 4000
        let cut = truncate_error_msg(&odd);
        assert_eq!(cut.len(), 3999);
        assert!(cut.is_char_boundary(cut.len()));
        assert_eq!(truncate_error_msg("short"), "short");
    }

    #[test]
    fn oversize_results_become_a_marker() {
        let big = serde_json::json!({ "blob": "x".repeat(20_000) });
        let stored: serde_json::Value = serde_json::from_str(&capped_result(&big)).unwrap();
        assert_eq!(stored["truncated"], true);
        assert!(stored["original_bytes"].as_u64().unwrap() > 20_000);
        let small = serde_json::json!({ "n": 1 });
        assert_eq!(capped_result(&small), r#"{"n":1}"#);
        assert_eq!(capped_result(&serde_json::Value::Null), "{}");
    }

    #[test]
    fn statuses_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
        assert!("STALE".parse::<Status>().is_err());
    }
}
