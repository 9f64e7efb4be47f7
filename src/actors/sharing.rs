//! A tick's part in sharing a job's scopes with the other live runners (`plan/sharing.rs`
//! decides; this reads what it needs).
//!
//! Only runners that tick by themselves (`auto_tick`) share: a tick driven by hand
//! (`tick_now`) offers every due plan, as a test or a tool calling it expects.

use chrono::{DateTime, Utc};

use super::Runtime;
use crate::control::{PauseSet, RunnerState};
use crate::error::Result;
use crate::plan::{NewestPlans, Owners, Sharing, plans_to_take_over};
use crate::scope::Scope;
use crate::spec::JobSpec;

/// The job's live runners as last read, read again when older than `OWNERS_MAX_AGE` (one
/// registry read of this job, only by ticks that found plans due).
pub(super) async fn owners<'o>(
    rt: &Runtime,
    job: &str,
    owners: &'o mut Option<Owners>,
    db_now: DateTime<Utc>,
) -> Result<&'o Owners> {
    if !owners.as_ref().is_some_and(|o| o.fresh_at(db_now)) {
        let registry = rt.store.registered_jobs(Some(job)).await?;
        let live = registry
            .iter()
            .filter(|registered| registered.name == job)
            .flat_map(|registered| &registered.runners)
            .filter(|(_, state)| *state == RunnerState::Live)
            .map(|(id, _)| id.as_str());
        *owners = Some(Owners::new(&rt.runner_id, live, db_now));
    }
    Ok(owners.as_ref().expect("read above"))
}

/// Looks at the plans set aside for other runners whose handoff time came: those with a row
/// are noted as planned; the others (their owner did not claim them) are returned, to be
/// offered by this tick. A failed read puts them back, to look at again next tick.
pub(super) async fn take_over_due(
    rt: &Runtime,
    spec: &JobSpec,
    sharing: &mut Sharing,
    newest: &mut NewestPlans,
    pauses: &PauseSet,
    db_now: DateTime<Utc>,
) -> Result<Vec<(Scope, DateTime<Utc>)>> {
    let latest_only = spec.catch_up == crate::plan::CatchUp::LatestOnly;
    let looked = sharing.foreign.take_due(db_now, latest_only);
    if looked.is_empty() {
        return Ok(Vec::new());
    }
    let exist = match rt.store.execution_plans_exist(&spec.name, &looked).await {
        Ok(exist) => exist,
        Err(error) => {
            sharing.foreign.put_back(looked, db_now);
            return Err(error);
        }
    };
    let mut missing = Vec::new();
    for ((scope, plan_time), has_row) in looked.into_iter().zip(exist) {
        if has_row {
            newest.note(&scope, plan_time);
        } else if pauses.runs(&scope) {
            missing.push((scope, plan_time));
        }
    }
    if !missing.is_empty() {
        tracing::info!(job = %spec.name, plans = missing.len(), "plans of other runners' scopes had no row at the handoff; offering them");
    }
    Ok(plans_to_take_over(missing, latest_only))
}
