//! The backend-independent half of [`Store::execution_claim_guarded`](super::Store::execution_claim_guarded):
//! turning the rows a store read under the job's claim lock into the statements it sends, and
//! the statements' outcome into a [`GuardedClaim`]. The decision is `control::decide`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimRequest, Claimed, PlanClaim};
use crate::control::{ClaimGuard, GuardDecision, GuardRow, Offer, decide};
use crate::scope::Scope;

/// What a guarded claim did with the plans offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardedClaim {
    /// The plans this runner now holds the lease of.
    pub claimed: Vec<Claimed>,
    /// Plans recorded SKIPPED (`overlap`): they came due while their scope ran.
    pub skipped: Vec<(Scope, DateTime<Utc>)>,
    /// Running attempts closed as SUPERSEDED (`overlap_cancelled`) for a newer plan of their
    /// scope, as `(id, token)` of the lease taken away.
    pub cancelled: Vec<(Uuid, Uuid)>,
    /// Plans left without a row for a later tick because their scope is busy (backlog, a
    /// buffered plan, a retry waiting for the scope).
    pub waiting: Vec<(Scope, DateTime<Utc>)>,
    /// Plans left without a row for a later tick because the job's concurrency limit is reached.
    pub limited: Vec<(Scope, DateTime<Utc>)>,
}

/// The statements a guarded claim sends, from the decision.
pub(crate) struct GuardPlan<'a> {
    /// The plans that may start, as a claim request.
    pub(crate) claim: ClaimRequest<'a>,
    /// The plans to record SKIPPED.
    pub(crate) skip: Vec<PlanClaim>,
    /// The attempts to cancel, as `(id, token)`.
    pub(crate) cancel: Vec<(Uuid, Uuid)>,
    decision: GuardDecision,
}

/// Decides what to do with `request`'s plans given the rows read under the job's lock: the
/// RUNNING rows of the offered plans' scopes, the existing rows of the plans, and, when the
/// guard has a limit, the number of the job's RUNNING rows (`job_running`).
pub(crate) fn plan<'a>(
    request: &ClaimRequest<'a>,
    guard: &ClaimGuard,
    rows: &[GuardRow],
    job_running: Option<usize>,
) -> GuardPlan<'a> {
    let offers: Vec<Offer<'_>> = request
        .plans
        .iter()
        .map(|p| Offer {
            scope: &p.scope,
            plan_time: p.plan_time,
            token: p.token,
        })
        .collect();
    let decision = decide(
        guard,
        request.allow_stale_reentry,
        &offers,
        rows,
        job_running,
    );
    let pick = |ids: &[usize]| -> Vec<PlanClaim> {
        ids.iter().map(|&i| request.plans[i].clone()).collect()
    };
    GuardPlan {
        claim: ClaimRequest {
            plans: pick(&decision.claim),
            ..request.clone()
        },
        skip: pick(&decision.skip),
        cancel: decision.cancel.clone(),
        decision,
    }
}

impl GuardPlan<'_> {
    /// The outcome, once the statements ran.
    pub(crate) fn report(self, request: &ClaimRequest<'_>, claimed: Vec<Claimed>) -> GuardedClaim {
        let keys = |ids: &[usize]| -> Vec<(Scope, DateTime<Utc>)> {
            ids.iter()
                .map(|&i| (request.plans[i].scope.clone(), request.plans[i].plan_time))
                .collect()
        };
        GuardedClaim {
            claimed,
            skipped: keys(&self.decision.skip),
            cancelled: self.cancel,
            waiting: keys(&self.decision.wait),
            limited: keys(&self.decision.limited),
        }
    }
}
