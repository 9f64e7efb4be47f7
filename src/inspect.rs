//! Inspections that read the store and let the control plane's pure decisions answer: why a plan
//! of a scope ran or did not ([`why_plan`]). Used by `Scheduler::why` (the running job's spec)
//! and by the command-line tool (the registry's copy of the spec), so both answer alike.
//!
//! It sits above `control` (types and decisions) and `store` (the reads), so neither imports the
//! other's way up.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::control::{PlanFacts, Why, explain};
use crate::error::{Error, Result};
use crate::schedule::{Schedule, delta, stagger_offset};
use crate::scope::Scope;
use crate::store::{ExecutionFilter, Store};

/// What decides when a plan of a job comes due: its schedule (`None` for a planner hook), its
/// stagger window and its schedule delay.
#[derive(Debug, Clone)]
pub(crate) struct PlanTiming {
    /// The schedule; `None` for a planner-hook job.
    pub(crate) schedule: Option<Schedule>,
    /// The stagger window over which scopes' due times are spread.
    pub(crate) stagger: Duration,
    /// How long after its plan time a plan becomes due.
    pub(crate) schedule_delay: Duration,
}

/// Why the plan at `plan_time` of `scope` of `job` ran or did not: gathers the facts (its row,
/// the scope's newest and older rows, the pauses, the ledger; a few reads) and [`explain`]s.
pub(crate) async fn why_plan(
    store: &dyn Store,
    job: &str,
    timing: &PlanTiming,
    scope: &Scope,
    plan_time: DateTime<Utc>,
) -> Result<Why> {
    scope.validate().map_err(Error::InvalidConfig)?;
    let offset = if timing.stagger.is_zero() {
        Duration::ZERO
    } else {
        stagger_offset(job, scope, timing.stagger)
    };
    let due_at = plan_time + delta(offset) + delta(timing.schedule_delay);
    let rows = |plan_from, plan_before| ExecutionFilter {
        job: Some(job.to_owned()),
        scope: Some(scope.clone()),
        plan_from,
        plan_before,
        limit: 1,
        ..ExecutionFilter::default()
    };
    let db_now = store.db_now().await?;
    let at = plan_time + TimeDelta::milliseconds(1);
    let row = store
        .execution_list(&rows(Some(plan_time), Some(at)))
        .await?
        .into_iter()
        .next();
    let newest = store
        .execution_list(&rows(None, None))
        .await?
        .first()
        .map(|e| e.plan_time);
    let older_row = !store
        .execution_list(&rows(None, Some(plan_time)))
        .await?
        .is_empty();
    let pauses = store
        .pause_list(Some(job))
        .await?
        .into_iter()
        .filter(|p| p.scope.as_ref().is_none_or(|s| s == scope))
        .collect();
    let spans = store.skip_find(job, scope, plan_time, due_at).await?;
    let facts = PlanFacts {
        row,
        newest,
        older_row,
        pauses,
        spans,
    };
    Ok(explain(
        timing.schedule.as_ref(),
        plan_time,
        due_at,
        db_now,
        facts,
    ))
}
