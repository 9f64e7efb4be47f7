//! "Why didn't it run?": the answer for one plan time of one scope, from the facts the database
//! holds (the execution row, the pauses, the skipped-plan ledger) and the job's schedule.
//!
//! [`explain`] decides; `inspect::why_plan` gathers the facts from a store, for `Scheduler::why`
//! (the running job's spec) and for the command-line tool (the registry's copy of the spec).

use chrono::{DateTime, Utc};

use super::ledger::{SkipReason, SkipSpan};
use super::pause::Pause;
use crate::execution::{Execution, Status};
use crate::schedule::Schedule;

/// What happened to a plan time of a scope.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Why {
    /// The plan has its execution row: it ran (or runs, waits for a retry, is dead-lettered, or
    /// was skipped by the overlap policy: status `SKIPPED`). The row says which.
    Ran(Box<Execution>),
    /// A pause in force since before the plan came due holds it back.
    Paused(Pause),
    /// It was deliberately not run: the ledger's span says why (a pause since lifted, the
    /// catch-up mode, a schedule change).
    Skipped(SkipSpan),
    /// It comes due at `due_at` (database clock; stagger and schedule delay included).
    NotDueYet {
        /// When it comes due.
        due_at: DateTime<Utc>,
    },
    /// It is due and newer than every row of the scope: no runner has claimed it yet (none is
    /// ticking the job, or all are busy). The next tick runs it, or skips it under
    /// [`CatchUp::LatestOnly`](crate::CatchUp::LatestOnly) if a newer plan is due by then.
    Pending {
        /// When it came due.
        due_at: DateTime<Utc>,
    },
    /// The schedule has no plan at that time.
    NotAPlanTime {
        /// The schedule's plan before it.
        previous: Option<DateTime<Utc>>,
        /// The schedule's plan after it.
        next: Option<DateTime<Utc>>,
    },
    /// The scope has no row at or before that time and no record covers it: the job or scope
    /// did not exist yet (or that part of its history was pruned).
    BeforeHistory,
    /// No row and no record: e.g. the ledger's rows or the plan's row were deleted by hand.
    Unknown,
}

impl Why {
    /// One sentence for people (the CLI and the dashboard show it).
    pub fn describe(&self) -> String {
        match self {
            Why::Ran(row) if row.status == Status::Skipped => format!(
                "skipped ({}): the scope's previous plan was still running (execution row {})",
                row.error_code.as_deref().unwrap_or("overlap"),
                row.id
            ),
            Why::Ran(row) => format!(
                "it has its execution row {}: {} (attempt {}/{})",
                row.id, row.status, row.attempt, row.max_attempts
            ),
            Why::Paused(pause) => format!(
                "paused since {} by {}: {}",
                pause.paused_at.to_rfc3339(),
                pause.paused_by,
                pause.reason
            ),
            Why::Skipped(span) => {
                let what = match span.reason {
                    SkipReason::Paused => format!(
                        "it came due while the {} was paused ({}), from {} to {}",
                        if span.scope.is_some() { "scope" } else { "job" },
                        span.detail,
                        span.from.to_rfc3339(),
                        span.to.to_rfc3339()
                    ),
                    SkipReason::Overlap => "the scope's previous plan was still running".into(),
                    SkipReason::LatestOnly => {
                        "no runner planned it in time; catch-up LatestOnly ran a newer plan".into()
                    }
                    SkipReason::OutsideWindow => {
                        "it was older than the EveryPlan catch-up window when a runner came to it"
                            .into()
                    }
                    SkipReason::ScheduleChange => "the job's schedule changed past it".into(),
                };
                let plans = span
                    .plans
                    .map(|n| format!("; {n} plan(s) from {} to {}", span.from, span.to))
                    .unwrap_or_default();
                format!("skipped ({}): {what}{plans}", span.reason)
            }
            Why::NotDueYet { due_at } => format!("not due yet: due at {}", due_at.to_rfc3339()),
            Why::Pending { due_at } => format!(
                "due since {} and not claimed yet: no runner has ticked the job since",
                due_at.to_rfc3339()
            ),
            Why::NotAPlanTime { previous, next } => format!(
                "not a plan time of the schedule (previous {}, next {})",
                previous.map_or("none".into(), |t| t.to_rfc3339()),
                next.map_or("none".into(), |t| t.to_rfc3339())
            ),
            Why::BeforeHistory => {
                "before the scope's history: the job or scope did not exist yet, \
                                   or older rows were pruned"
                    .into()
            }
            Why::Unknown => "no row and no record of a skip".into(),
        }
    }
}

/// What the database holds about one plan of one scope.
#[derive(Debug, Default)]
pub(crate) struct PlanFacts {
    /// The plan's own row.
    pub(crate) row: Option<Execution>,
    /// The scope's newest plan time stored.
    pub(crate) newest: Option<DateTime<Utc>>,
    /// Whether the scope has a row older than the plan.
    pub(crate) older_row: bool,
    /// The pauses of the job in force now.
    pub(crate) pauses: Vec<Pause>,
    /// The ledger rows of the job that may cover the plan (its scope's and shared ones).
    pub(crate) spans: Vec<SkipSpan>,
}

/// The answer for the plan at `plan_time` of a scope, due at `due_at`, with the database clock
/// at `db_now`. A row wins over every record; a pause or a ledger span over inference.
pub(crate) fn explain(
    schedule: Option<&Schedule>,
    plan_time: DateTime<Utc>,
    due_at: DateTime<Utc>,
    db_now: DateTime<Utc>,
    facts: PlanFacts,
) -> Why {
    if let Some(row) = facts.row {
        return Why::Ran(Box::new(row));
    }
    if let Some(schedule) = schedule {
        let on_schedule = schedule
            .latest_plan(plan_time)
            .is_some_and(|p| p == plan_time);
        if !on_schedule {
            return Why::NotAPlanTime {
                previous: schedule.latest_plan(plan_time - chrono::TimeDelta::milliseconds(1)),
                next: schedule.next_plan(plan_time),
            };
        }
    }
    if due_at > db_now {
        return Why::NotDueYet { due_at };
    }
    // A pause in force: the whole job's first, then the scope's.
    let mut pauses = facts.pauses;
    pauses.sort_by_key(|p| p.scope.is_some());
    if let Some(pause) = pauses.into_iter().find(|p| p.paused_at <= due_at) {
        return Why::Paused(pause);
    }
    // A lifted pause explains a skip better than the catch-up that followed it.
    let mut spans: Vec<SkipSpan> = facts
        .spans
        .into_iter()
        .filter(|s| s.covers(plan_time, due_at))
        .collect();
    spans.sort_by_key(|s| (s.reason != SkipReason::Paused, s.scope.is_none()));
    if let Some(span) = spans.into_iter().next() {
        return Why::Skipped(span);
    }
    if facts.newest.is_none_or(|newest| newest < plan_time) && facts.older_row {
        return Why::Pending { due_at };
    }
    if !facts.older_row {
        return Why::BeforeHistory;
    }
    Why::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn execution(status: Status) -> Execution {
        let t = at("2026-11-29T03:00:00Z");
        Execution {
            id: uuid::Uuid::now_v7(),
            job_name: "report".into(),
            scope: Scope::new("tenant", "1"),
            plan_time: t,
            status,
            attempt: 3,
            max_attempts: 3,
            next_retry_at: None,
            runner_id: "r1".into(),
            lease_token: uuid::Uuid::new_v4(),
            claim_outcome: crate::execution::ClaimOutcome::Retried,
            heartbeat_at: None,
            stale_after: None,
            started_at: Some(t),
            finished_at: Some(t),
            created_at: t,
            updated_at: t,
            duration_ms: Some(1),
            rows_affected: None,
            result: serde_json::json!({}),
            error_code: Some("handler_error".into()),
            error_msg: Some("boom".into()),
            failures: Vec::new(),
            replayed_at: None,
            trigger_id: None,
        }
    }

    fn hourly() -> Schedule {
        Schedule::every("1h").unwrap()
    }

    fn span(reason: SkipReason, from: &str, to: &str, scope: Option<Scope>) -> SkipSpan {
        SkipSpan {
            job: "report".into(),
            scope,
            reason,
            from: at(from),
            to: at(to),
            plans: None,
            scopes: 1,
            detail: "ops: migration".into(),
            recorded_at: at(to),
        }
    }

    fn ask(plan: &str, facts: PlanFacts) -> Why {
        let plan = at(plan);
        explain(
            Some(&hourly()),
            plan,
            plan,
            at("2026-11-29T12:30:00Z"),
            facts,
        )
    }

    fn history() -> PlanFacts {
        PlanFacts {
            newest: Some(at("2026-11-29T12:00:00Z")),
            older_row: true,
            ..PlanFacts::default()
        }
    }

    #[test]
    fn a_row_answers_first() {
        let row = execution(Status::Dead);
        let why = ask(
            "2026-11-29T03:00:00Z",
            PlanFacts {
                row: Some(row),
                spans: vec![span(
                    SkipReason::LatestOnly,
                    "2026-11-29T00:00:00Z",
                    "2026-11-29T05:00:00Z",
                    None,
                )],
                ..history()
            },
        );
        assert!(matches!(why, Why::Ran(row) if row.status == Status::Dead));
        let mut skipped = execution(Status::Skipped);
        skipped.error_code = Some("overlap".into());
        let why = ask(
            "2026-11-29T03:00:00Z",
            PlanFacts {
                row: Some(skipped),
                ..history()
            },
        );
        assert!(
            why.describe().starts_with("skipped (overlap)"),
            "{}",
            why.describe()
        );
    }

    #[test]
    fn times_off_the_schedule_and_in_the_future_are_named() {
        assert_eq!(
            ask("2026-11-29T03:15:00Z", history()),
            Why::NotAPlanTime {
                previous: Some(at("2026-11-29T03:00:00Z")),
                next: Some(at("2026-11-29T04:00:00Z")),
            }
        );
        assert_eq!(
            ask("2026-11-29T13:00:00Z", history()),
            Why::NotDueYet {
                due_at: at("2026-11-29T13:00:00Z")
            }
        );
    }

    #[test]
    fn a_lifted_pause_explains_better_than_the_catch_up_after_it() {
        let facts = PlanFacts {
            spans: vec![
                span(
                    SkipReason::LatestOnly,
                    "2026-11-29T02:00:00Z",
                    "2026-11-29T05:00:00Z",
                    None,
                ),
                span(
                    SkipReason::Paused,
                    "2026-11-29T01:30:00Z",
                    "2026-11-29T05:30:00Z",
                    Some(Scope::new("tenant", "1")),
                ),
            ],
            ..history()
        };
        let why = ask("2026-11-29T03:00:00Z", facts);
        assert!(
            matches!(&why, Why::Skipped(s) if s.reason == SkipReason::Paused),
            "{why:?}"
        );
        assert!(
            why.describe().contains("ops: migration"),
            "{}",
            why.describe()
        );
    }

    #[test]
    fn a_catch_up_span_answers_a_missed_plan() {
        let facts = PlanFacts {
            spans: vec![span(
                SkipReason::LatestOnly,
                "2026-11-29T02:00:00Z",
                "2026-11-29T05:00:00Z",
                None,
            )],
            ..history()
        };
        assert!(matches!(
            ask("2026-11-29T05:00:00Z", facts),
            Why::Skipped(s) if s.reason == SkipReason::LatestOnly
        ));
        // Outside the span, with rows on both sides: no record.
        assert_eq!(ask("2026-11-29T07:00:00Z", history()), Why::Unknown);
    }

    #[test]
    fn a_pause_in_force_holds_plans_due_after_it_began() {
        let mut pause = Pause::new("report", None, "ops", "migration");
        pause.paused_at = at("2026-11-29T11:30:00Z");
        let facts = || PlanFacts {
            pauses: vec![pause.clone()],
            ..history()
        };
        assert_eq!(
            ask("2026-11-29T12:00:00Z", facts()),
            Why::Paused(pause.clone())
        );
        assert_eq!(ask("2026-11-29T11:00:00Z", facts()), Why::Unknown);
    }

    #[test]
    fn newer_than_every_row_is_pending_and_older_than_all_is_before_history() {
        let facts = PlanFacts {
            newest: Some(at("2026-11-29T10:00:00Z")),
            ..history()
        };
        assert_eq!(
            ask("2026-11-29T12:00:00Z", facts),
            Why::Pending {
                due_at: at("2026-11-29T12:00:00Z")
            }
        );
        let facts = PlanFacts {
            older_row: false,
            ..history()
        };
        assert_eq!(ask("2026-10-01T00:00:00Z", facts), Why::BeforeHistory);
        assert_eq!(
            ask("2026-10-01T00:00:00Z", PlanFacts::default()),
            Why::BeforeHistory
        );
    }
}
