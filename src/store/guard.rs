//! The backend-independent half of [`Store::execution_claim_guarded`](super::Store::execution_claim_guarded):
//! turning the rows a store read under the job's claim lock into the statements it sends, and
//! the statements' outcome into a [`GuardedClaim`]. The decision is `control::decide`.

use std::borrow::Cow;

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
pub(crate) struct GuardPlan<'r, 'a> {
    /// The plans that may start, as a claim request: the request itself when every plan
    /// offered may start (the usual case), so its plans are not copied.
    pub(crate) claim: Cow<'r, ClaimRequest<'a>>,
    /// The plans to record SKIPPED.
    pub(crate) skip: Vec<PlanClaim>,
    /// The attempts to cancel, as `(id, token)`.
    pub(crate) cancel: Vec<(Uuid, Uuid)>,
    decision: GuardDecision,
}

/// Decides what to do with `request`'s plans given the rows read under the job's lock: the
/// RUNNING rows of the offered plans' scopes, the existing rows of the plans, and, when the
/// guard has a limit, the number of the job's RUNNING rows (`job_running`).
pub(crate) fn plan<'r, 'a>(
    request: &'r ClaimRequest<'a>,
    guard: &ClaimGuard,
    rows: &[GuardRow],
    job_running: Option<usize>,
) -> GuardPlan<'r, 'a> {
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
    let everything = decision.claim.len() == request.plans.len()
        && decision.claim.iter().enumerate().all(|(n, &i)| n == i);
    let claim = if everything {
        Cow::Borrowed(request)
    } else {
        // The request's other fields are copied; its plans are not.
        Cow::Owned(ClaimRequest {
            plans: pick(&decision.claim),
            ..*request
        })
    };
    GuardPlan {
        claim,
        skip: pick(&decision.skip),
        cancel: decision.cancel.clone(),
        decision,
    }
}

impl GuardPlan<'_, '_> {
    /// Whether the claim sends exactly the plans offered, in their order (its statement's
    /// parameters may then be the ones built for the offer).
    pub(crate) fn claims_as_offered(&self) -> bool {
        matches!(self.claim, Cow::Borrowed(_))
    }

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::control::OverlapPolicy;
    use crate::execution::Status;

    fn request(plans: Vec<PlanClaim>) -> ClaimRequest<'static> {
        ClaimRequest {
            job: "job",
            max_attempts: 3,
            runner_id: "runner",
            stale_timeout: Duration::from_secs(60),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn a_claim_of_every_plan_offered_sends_the_request_itself() {
        let offered = request(vec![
            PlanClaim::new(Scope::new("t", "a"), at(60)),
            PlanClaim::new(Scope::new("t", "b"), at(60)),
        ]);
        let plan = plan(&offered, &ClaimGuard::default(), &[], None);
        assert!(plan.claims_as_offered());
        assert!(std::ptr::eq(&*plan.claim, &offered));
        assert!(plan.skip.is_empty() && plan.cancel.is_empty());
    }

    #[test]
    fn a_claim_of_some_plans_sends_those_with_the_requests_settings() {
        let offered = request(vec![
            PlanClaim::new(Scope::new("t", "a"), at(60)),
            PlanClaim::new(Scope::new("t", "b"), at(60)),
        ]);
        let running = GuardRow {
            id: Uuid::now_v7(),
            token: Uuid::new_v4(),
            scope: Scope::new("t", "a"),
            plan_time: at(0),
            status: Status::Running,
            started_at: Some(at(1)),
            stale: false,
        };
        let guard = ClaimGuard {
            overlap: OverlapPolicy::Skip,
            ..ClaimGuard::default()
        };
        let plan = plan(&offered, &guard, &[running], None);
        assert!(!plan.claims_as_offered());
        assert_eq!(plan.claim.plans, vec![offered.plans[1].clone()]);
        assert_eq!(plan.skip, vec![offered.plans[0].clone()]);
        let (claim, offered) = (&*plan.claim, &offered);
        assert_eq!(
            (
                claim.job,
                claim.max_attempts,
                claim.runner_id,
                claim.stale_timeout
            ),
            (
                offered.job,
                offered.max_attempts,
                offered.runner_id,
                offered.stale_timeout
            )
        );
        assert_eq!(
            (claim.allow_stale_reentry, claim.steal_not_after),
            (offered.allow_stale_reentry, offered.steal_not_after)
        );
    }
}
