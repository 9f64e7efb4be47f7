//! Overlap policy and concurrency limit: what a claim does with a plan of a scope whose previous
//! plan is still RUNNING, and how many attempts of a job may run at once across the cluster.
//!
//! - [`OverlapPolicy`]: `Skip` (the default), `BufferOne`, `AllowAll`, `CancelOther`.
//! - [`ClaimGuard`]: a job's policy and limit, as the store's guarded claim applies them.
//! - `decide`: the decision itself, a plain function the stores call while they hold the job's
//!   claim lock, on the rows they just read.
//!
//! The rule for backlog: a plan that was due *before* the running attempt of its scope started
//! (an EveryPlan catch-up after downtime, a retry) is backlog, not overlap: it waits its turn,
//! one plan at a time per scope, oldest first, and plans queued behind backlog wait with it.
//! Only a plan that came due *while* the attempt ran, with no backlog ahead of it, is subject to
//! the policy. "Due" here is the plan time plus the job's `schedule_delay`
//! (a stagger offset is not counted: a staggered plan is compared by its unstaggered time).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::execution::Status;
use crate::scope::Scope;

/// What a claim does with a plan of a scope whose previous plan is still RUNNING.
///
/// Enforced in the claim, under a per-job lock in the database, so every replica obeys it and
/// two replicas claiming at once cannot both start a plan of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// One run at a time per scope, as cron users expect (the default): a plan that comes due
    /// while the previous plan of its scope is RUNNING is not run. It is recorded as a SKIPPED
    /// row with the code `overlap`, so every replica and the planner see it as handled.
    #[default]
    Skip,
    /// One run at a time per scope, and the plan that came due meanwhile starts as soon as the
    /// running one ends: at most one waits per scope, and an older waiting plan that a newer one
    /// replaces is recorded SKIPPED (`overlap`).
    BufferOne,
    /// No limit per scope: plans of one scope may run at once (for work that tolerates it).
    AllowAll,
    /// The newer plan wins: the running attempt of the scope is cancelled through its lease (its
    /// row becomes SUPERSEDED with the code `overlap_cancelled`, its owner's next heartbeat
    /// reports the lease lost and cancels the handler, its late writes are fenced out), and the
    /// new plan starts.
    CancelOther,
}

impl OverlapPolicy {
    /// The name used in docs and logs, e.g. `skip`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::BufferOne => "buffer_one",
            OverlapPolicy::AllowAll => "allow_all",
            OverlapPolicy::CancelOther => "cancel_other",
        }
    }
}

impl std::fmt::Display for OverlapPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored code (`error_code`) of a plan skipped because its scope was busy.
pub const SKIPPED_OVERLAP: &str = "overlap";
/// The stored code of an attempt cancelled because a newer plan of its scope started.
pub const CANCELLED_OVERLAP: &str = "overlap_cancelled";

/// A job's overlap policy and concurrency limit, for [`Store::execution_claim_guarded`](crate::Store::execution_claim_guarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimGuard {
    /// The job's overlap policy.
    pub overlap: OverlapPolicy,
    /// At most this many RUNNING attempts of the job across the cluster; `None`: no limit.
    pub max_running: Option<u32>,
    /// The job's `schedule_delay`: a plan is due at `plan_time + schedule_delay`.
    pub schedule_delay: Duration,
}

impl ClaimGuard {
    /// Whether the guard changes nothing (`AllowAll`, no limit): the plain claim serves.
    pub fn is_open(&self) -> bool {
        self.overlap == OverlapPolicy::AllowAll && self.max_running.is_none()
    }
}

/// A plan offered to the guarded claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer<'a> {
    /// The scope.
    pub(crate) scope: &'a Scope,
    /// The plan time.
    pub(crate) plan_time: DateTime<Utc>,
    /// The lease token the claim would use (an existing row RUNNING under it is ours).
    pub(crate) token: Uuid,
}

/// A row the guarded claim reads under the job's lock: every RUNNING row of the offered plans'
/// scopes, and the row of each plan offered, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuardRow {
    /// The row's id.
    pub(crate) id: Uuid,
    /// The row's current or last lease token.
    pub(crate) token: Uuid,
    /// The scope.
    pub(crate) scope: Scope,
    /// The plan time.
    pub(crate) plan_time: DateTime<Utc>,
    /// The stored status.
    pub(crate) status: Status,
    /// When its current or last attempt started.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// RUNNING with its lease past `stale_after` (database clock): its owner stopped renewing.
    pub(crate) stale: bool,
}

/// What the guarded claim does with each plan offered (indexes into the offered plans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GuardDecision {
    /// Sent to the claim statement.
    pub(crate) claim: Vec<usize>,
    /// Recorded SKIPPED (`overlap`): came due while its scope ran, and lost to the policy.
    pub(crate) skip: Vec<usize>,
    /// Left without a row for a later tick: backlog or a buffered plan of a busy scope.
    pub(crate) wait: Vec<usize>,
    /// Left without a row for a later tick: the job's concurrency limit is reached.
    pub(crate) limited: Vec<usize>,
    /// Already finished (or dead): nothing to do, reported as conflicted.
    pub(crate) settled: Vec<usize>,
    /// RUNNING attempts to cancel (`CancelOther`), as `(id, token)`.
    pub(crate) cancel: Vec<(Uuid, Uuid)>,
}

/// Decides, under the job's claim lock, which offered plans are claimed, skipped, left waiting
/// or held back by the limit, and which running attempts are cancelled. `rows` are the rows
/// read under the lock: every RUNNING row of the offered plans' scopes and the existing rows of
/// the plans. `job_running` is the number of RUNNING rows of the whole job, which only the
/// limit needs: stores count them when the guard has a limit, so a claim without one reads
/// nothing of the scopes it does not offer (`None`: the RUNNING rows in `rows`).
/// `steal`: whether the claim may take over stale leases (a plan whose own row went stale is
/// then sent to the claim, as without a guard; the scope stays busy for its other plans).
pub(crate) fn decide(
    guard: &ClaimGuard,
    steal: bool,
    plans: &[Offer<'_>],
    rows: &[GuardRow],
    job_running: Option<usize>,
) -> GuardDecision {
    let mut decision = GuardDecision::default();
    let by_plan: HashMap<(&Scope, DateTime<Utc>), &GuardRow> =
        rows.iter().map(|r| ((&r.scope, r.plan_time), r)).collect();
    let mut running_in: HashMap<&Scope, Vec<&GuardRow>> = HashMap::new();
    let mut running_read = 0usize;
    for row in rows.iter().filter(|r| r.status == Status::Running) {
        running_read += 1;
        running_in.entry(&row.scope).or_default().push(row);
    }
    let mut running = job_running.unwrap_or(running_read);
    let delay = chrono::Duration::from_std(guard.schedule_delay).unwrap_or_default();

    // The candidates of each scope, oldest first; plans with nothing to claim are settled here.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| plans[i].plan_time);
    if rows.is_empty() {
        // The usual claim: no plan has a row and nothing of the offered scopes runs, so each
        // scope's oldest plan is a start and the others wait their turn (under AllowAll all
        // start). The same outcome as below, without grouping the plans by scope.
        let mut seen: HashSet<&Scope> = HashSet::with_capacity(plans.len());
        let mut start = Vec::with_capacity(plans.len());
        for i in order {
            if guard.overlap == OverlapPolicy::AllowAll || seen.insert(plans[i].scope) {
                start.push(i);
            } else {
                decision.wait.push(i);
            }
        }
        limit(guard, plans, start, running, &mut decision);
        return decision;
    }
    let mut candidates: HashMap<&Scope, Vec<usize>> = HashMap::new();
    for &i in &order {
        let plan = &plans[i];
        match by_plan.get(&(plan.scope, plan.plan_time)) {
            // An earlier try of this very request claimed it (its reply was lost): it is ours.
            Some(row) if row.status == Status::Running && row.token == plan.token => {
                decision.claim.push(i);
            }
            // Held by another attempt: it is the running plan itself. A stale lease may be taken
            // over, as without a guard (the takeover replaces the attempt: no room used); a live
            // one is sent on only under AllowAll (the claim conflicts); the others wait for the
            // owner or the sweep.
            Some(row) if row.status == Status::Running => {
                if guard.overlap == OverlapPolicy::AllowAll || (steal && row.stale) {
                    decision.claim.push(i);
                } else {
                    decision.wait.push(i);
                }
            }
            Some(row) if row.status != Status::Failed => decision.settled.push(i),
            _ => candidates.entry(plan.scope).or_default().push(i),
        }
    }

    // Per scope: which candidate would start now, and what happens to the others.
    let mut start: Vec<usize> = Vec::new();
    for (scope, list) in candidates {
        if guard.overlap == OverlapPolicy::AllowAll {
            start.extend(list);
            continue;
        }
        // Every RUNNING row of the scope keeps it busy, this request's own included (an
        // earlier try of it claimed that plan: the others still wait behind it).
        let busy: Vec<&GuardRow> = running_in.get(scope).cloned().unwrap_or_default();
        if busy.is_empty() {
            // Nothing runs: the oldest starts, the rest wait their turn.
            let (first, rest) = list.split_first().expect("a scope has a candidate");
            start.push(*first);
            decision.wait.extend_from_slice(rest);
            continue;
        }
        let began = busy.iter().filter_map(|r| r.started_at).max();
        // A retry (a FAILED row) is never fresh: it waits for the scope to be free.
        let fresh = |i: &usize| {
            let plan = &plans[*i];
            let retry = by_plan.contains_key(&(plan.scope, plan.plan_time));
            !retry && began.is_none_or(|b| plan.plan_time + delay > b)
        };
        let (fresh, backlog): (Vec<usize>, Vec<usize>) = list.into_iter().partition(fresh);
        // Backlog without a row (catch-up plans) goes first: the plans after it wait behind
        // it instead of being skipped, so no plan is recorded ahead of one still to run.
        let queued = backlog.iter().any(|i| {
            let plan = &plans[*i];
            !by_plan.contains_key(&(plan.scope, plan.plan_time))
        });
        decision.wait.extend(backlog);
        if queued {
            decision.wait.extend(fresh);
            continue;
        }
        let Some((&newest, older)) = fresh.split_last() else {
            continue;
        };
        match guard.overlap {
            OverlapPolicy::Skip => decision.skip.extend(fresh.iter().copied()),
            OverlapPolicy::BufferOne => {
                decision.skip.extend_from_slice(older);
                decision.wait.push(newest);
            }
            OverlapPolicy::CancelOther => {
                decision.skip.extend_from_slice(older);
                decision.cancel.extend(busy.iter().map(|r| (r.id, r.token)));
                running = running.saturating_sub(busy.len());
                start.push(newest);
            }
            OverlapPolicy::AllowAll => unreachable!("handled above"),
        }
    }

    limit(guard, plans, start, running, &mut decision);
    decision
}

/// The limit: of the plans that would start, the oldest are claimed while the job's
/// `max_running` allows (`running` attempts run already), the rest are held back.
fn limit(
    guard: &ClaimGuard,
    plans: &[Offer<'_>],
    mut start: Vec<usize>,
    running: usize,
    decision: &mut GuardDecision,
) {
    start.sort_by_key(|&i| (plans[i].plan_time, i));
    let room = guard
        .max_running
        .map_or(usize::MAX, |n| (n as usize).saturating_sub(running));
    decision.claim.reserve(start.len().min(room));
    for (n, i) in start.into_iter().enumerate() {
        if n < room {
            decision.claim.push(i);
        } else {
            decision.limited.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn scope(id: &str) -> &'static Scope {
        Box::leak(Box::new(Scope::new("t", id)))
    }

    fn plan(id: &str, at: i64) -> Offer<'static> {
        Offer {
            scope: scope(id),
            plan_time: t(at),
            token: Uuid::new_v4(),
        }
    }

    fn row(id: &str, at: i64, status: Status, started: i64) -> GuardRow {
        GuardRow {
            id: Uuid::now_v7(),
            token: Uuid::new_v4(),
            scope: Scope::new("t", id),
            plan_time: t(at),
            status,
            started_at: Some(t(started)),
            stale: false,
        }
    }

    /// The decision on rows that hold every RUNNING row of the job.
    fn decide(
        guard: &ClaimGuard,
        steal: bool,
        plans: &[Offer<'_>],
        rows: &[GuardRow],
    ) -> GuardDecision {
        super::decide(guard, steal, plans, rows, None)
    }

    fn guard(overlap: OverlapPolicy) -> ClaimGuard {
        ClaimGuard {
            overlap,
            ..ClaimGuard::default()
        }
    }

    #[test]
    fn the_default_is_skip_and_allow_all_without_limit_is_open() {
        assert_eq!(OverlapPolicy::default(), OverlapPolicy::Skip);
        assert!(!ClaimGuard::default().is_open());
        assert!(guard(OverlapPolicy::AllowAll).is_open());
    }

    #[test]
    fn skip_records_a_plan_that_came_due_while_its_scope_ran() {
        let plans = [plan("a", 60), plan("b", 60)];
        let rows = [row("a", 0, Status::Running, 1)];
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans, &rows);
        assert_eq!(d.skip, vec![0]);
        assert_eq!(d.claim, vec![1]);
        assert!(d.wait.is_empty() && d.cancel.is_empty());
    }

    #[test]
    fn backlog_due_before_the_running_start_waits_one_at_a_time() {
        // Catch-up: plans 60..180 were due before the attempt of plan 0 started at 200.
        let plans = [
            plan("a", 60),
            plan("a", 120),
            plan("a", 180),
            plan("a", 240),
        ];
        let rows = [row("a", 0, Status::Running, 200)];
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans, &rows);
        // Plan 240 came due during the run, but backlog is queued ahead of it: it waits too,
        // so no plan is recorded ahead of one still to run.
        assert_eq!(d.wait, vec![0, 1, 2, 3]);
        assert!(d.skip.is_empty());
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans[3..], &rows);
        assert_eq!(d.skip, vec![0]);
        // With the scope free, only the oldest starts.
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans[..3], &[]);
        assert_eq!(d.claim, vec![0]);
        assert_eq!(d.wait, vec![1, 2]);
    }

    #[test]
    fn schedule_delay_counts_in_the_due_time() {
        let plans = [plan("a", 60)];
        let rows = [row("a", 0, Status::Running, 100)];
        let mut g = guard(OverlapPolicy::Skip);
        assert_eq!(decide(&g, true, &plans, &rows).wait, vec![0]);
        g.schedule_delay = Duration::from_secs(50);
        assert_eq!(decide(&g, true, &plans, &rows).skip, vec![0]);
    }

    #[test]
    fn a_retry_waits_for_its_busy_scope() {
        let plans = [plan("a", 60)];
        let rows = [
            row("a", 0, Status::Running, 100),
            row("a", 60, Status::Failed, 61),
        ];
        for policy in [
            OverlapPolicy::Skip,
            OverlapPolicy::BufferOne,
            OverlapPolicy::CancelOther,
        ] {
            let d = decide(&guard(policy), true, &plans, &rows);
            assert_eq!(d.wait, vec![0], "{policy}");
            assert!(d.cancel.is_empty());
        }
    }

    #[test]
    fn buffer_one_keeps_the_newest_waiting_and_skips_older() {
        let plans = [plan("a", 60), plan("a", 120)];
        let rows = [row("a", 0, Status::Running, 1)];
        let d = decide(&guard(OverlapPolicy::BufferOne), true, &plans, &rows);
        assert_eq!(d.skip, vec![0]);
        assert_eq!(d.wait, vec![1]);
        assert!(d.claim.is_empty());
    }

    #[test]
    fn cancel_other_cancels_the_running_attempt_and_starts_the_newest() {
        let plans = [plan("a", 60), plan("a", 120)];
        let running = row("a", 0, Status::Running, 1);
        let d = decide(
            &guard(OverlapPolicy::CancelOther),
            true,
            &plans,
            std::slice::from_ref(&running),
        );
        assert_eq!(d.cancel, vec![(running.id, running.token)]);
        assert_eq!(d.claim, vec![1]);
        assert_eq!(d.skip, vec![0]);
    }

    #[test]
    fn allow_all_starts_everything() {
        let plans = [plan("a", 60), plan("a", 120)];
        let rows = [row("a", 0, Status::Running, 1)];
        let d = decide(&guard(OverlapPolicy::AllowAll), true, &plans, &rows);
        assert_eq!(d.claim, vec![0, 1]);
    }

    #[test]
    fn the_limit_counts_running_attempts_of_every_scope_and_holds_back_the_newest() {
        let plans = [plan("b", 120), plan("c", 60), plan("d", 60)];
        let rows = [row("a", 0, Status::Running, 1)];
        let g = ClaimGuard {
            overlap: OverlapPolicy::AllowAll,
            max_running: Some(2),
            ..ClaimGuard::default()
        };
        let d = decide(&g, true, &plans, &rows);
        assert_eq!(d.claim.len(), 1);
        assert!(d.claim[0] == 1 || d.claim[0] == 2);
        assert_eq!(d.limited.len(), 2);
        assert!(d.limited.contains(&0));
    }

    #[test]
    fn the_limit_counts_the_jobs_running_attempts_the_store_counted_not_only_those_read() {
        // The store read only the rows of the offered scopes (none run) and counted two
        // RUNNING rows elsewhere in the job: a limit of three leaves room for one plan.
        let plans = [plan("b", 60), plan("c", 60)];
        let g = ClaimGuard {
            overlap: OverlapPolicy::Skip,
            max_running: Some(3),
            ..ClaimGuard::default()
        };
        let d = super::decide(&g, true, &plans, &[], Some(2));
        assert_eq!(d.claim.len(), 1);
        assert_eq!(d.limited.len(), 1);
        // Counted, a running attempt of an offered scope is not counted twice.
        let rows = [row("b", 0, Status::Running, 1)];
        let d = super::decide(&g, true, &plans, &rows, Some(2));
        assert_eq!(d.skip, vec![0]);
        assert_eq!(d.claim, vec![1]);
    }

    #[test]
    fn cancelled_attempts_make_room_under_the_limit() {
        let plans = [plan("a", 60)];
        let rows = [row("a", 0, Status::Running, 1)];
        let g = ClaimGuard {
            overlap: OverlapPolicy::CancelOther,
            max_running: Some(1),
            ..ClaimGuard::default()
        };
        let d = decide(&g, true, &plans, &rows);
        assert_eq!(d.claim, vec![0]);
        assert_eq!(d.cancel.len(), 1);
    }

    #[test]
    fn a_resent_claim_keeps_its_own_running_plan_and_the_scope_busy() {
        // The first try claimed plan 60 (plan 120 waited); its reply was lost and it is sent
        // again: plan 60 is claimed again, plan 120 still waits behind it.
        let (first, second) = (plan("a", 60), plan("a", 120));
        let mut own = row("a", 60, Status::Running, 130);
        own.token = first.token;
        for policy in [OverlapPolicy::Skip, OverlapPolicy::CancelOther] {
            let d = decide(
                &guard(policy),
                true,
                &[first, second],
                std::slice::from_ref(&own),
            );
            assert_eq!(d.claim, vec![0], "{policy}");
            assert_eq!(d.wait, vec![1], "{policy}");
            assert!(d.cancel.is_empty());
        }
    }

    #[test]
    fn a_stale_lease_of_the_plan_is_taken_over_only_when_steals_are_allowed() {
        let plans = [plan("a", 60)];
        let mut stale = row("a", 60, Status::Running, 61);
        stale.stale = true;
        let d = decide(
            &guard(OverlapPolicy::Skip),
            true,
            &plans,
            std::slice::from_ref(&stale),
        );
        assert_eq!(d.claim, vec![0]);
        let d = decide(&guard(OverlapPolicy::Skip), false, &plans, &[stale]);
        assert_eq!(d.wait, vec![0]);
    }

    #[test]
    fn finished_plans_are_settled_and_own_rows_are_claimed_again() {
        let again = plan("a", 60);
        let mut own = row("a", 60, Status::Running, 61);
        own.token = again.token;
        let plans = [plan("b", 60), again];
        let rows = [row("b", 60, Status::Success, 61), own];
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans, &rows);
        assert_eq!(d.settled, vec![0]);
        assert_eq!(d.claim, vec![1]);
    }

    /// Sorted copies of each list, to compare decisions whose order within a list may differ.
    fn sorted(d: &GuardDecision) -> [Vec<usize>; 5] {
        let sort = |v: &Vec<usize>| {
            let mut v = v.clone();
            v.sort_unstable();
            v
        };
        [
            sort(&d.claim),
            sort(&d.skip),
            sort(&d.wait),
            sort(&d.limited),
            sort(&d.settled),
        ]
    }

    #[test]
    fn a_claim_that_read_no_row_decides_as_one_that_read_rows() {
        // No row read is the usual claim and takes a shorter way; a SUCCESS row of a plan not
        // offered changes nothing and sends the decision the general way: both must agree.
        let plans = [
            plan("a", 120),
            plan("b", 60),
            plan("a", 60),
            plan("c", 180),
            plan("b", 120),
            plan("a", 180),
            plan("d", 60),
        ];
        let unrelated = [row("a", 0, Status::Success, 1)];
        for overlap in [
            OverlapPolicy::Skip,
            OverlapPolicy::BufferOne,
            OverlapPolicy::CancelOther,
            OverlapPolicy::AllowAll,
        ] {
            for max_running in [None, Some(0), Some(2), Some(3), Some(10)] {
                for job_running in [None, Some(1)] {
                    let g = ClaimGuard {
                        overlap,
                        max_running,
                        ..ClaimGuard::default()
                    };
                    let short = super::decide(&g, true, &plans, &[], job_running);
                    let long = super::decide(&g, true, &plans, &unrelated, job_running);
                    assert_eq!(
                        sorted(&short),
                        sorted(&long),
                        "{overlap} {max_running:?} {job_running:?}"
                    );
                    // The claim and the held back plans stay oldest first.
                    assert_eq!(short.claim, long.claim);
                    assert_eq!(short.limited, long.limited);
                }
            }
        }
        // Each scope's oldest plan starts, the others wait.
        let d = decide(&guard(OverlapPolicy::Skip), true, &plans, &[]);
        assert_eq!(d.claim, vec![1, 2, 6, 3]);
        assert_eq!(d.wait, vec![0, 4, 5]);
    }
}
