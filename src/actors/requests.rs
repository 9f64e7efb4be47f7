//! The control requests a job's tick serves: triggers (run now) and backfills (run a range of
//! past plans), both rows that any replica or tool may have written.
//!
//! The tick's first statement (`Store::tick_clock`) says whether the job has any, so a tick with
//! none pays nothing here. Otherwise:
//! - **triggers** (served before the schedule's plans, since an operator is waiting): each
//!   pending trigger's manual executions are inserted with a plan identity of their own
//!   (`control::manual_plan_time`), at most as many as there are free slots, by
//!   `Store::trigger_start`, which marks a trigger started once none of its plans is missing;
//! - **backfills** (served after the schedule's plans and retries, with the slots they left):
//!   each active backfill hands out its next plans (`control::next_step`), which are claimed
//!   like any plan (reruns made due first), then its cursor moves (a compare-and-set, so
//!   replicas stepping together move it once). Cost follows the plans handed out.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::tick::{JobState, JobTick, TickEnv, count_claims, start_claimed};
use crate::control::{
    BackfillAdvance, ClaimGuard, PauseSet, manual_plan_time, next_step, step_budget,
};
use crate::error::Result;
use crate::scope::Scope;
use crate::store::{ClaimRequest, GuardedClaim, ManualPlan, ManualStart, PlanClaim};
use crate::takeover::takeover_deadline;

/// Most triggers served per tick (the rest wait for the next tick, which comes at once).
const TRIGGERS_PER_TICK: usize = 100;
/// Most plans one backfill step claims (one claim statement).
const BACKFILL_STEP: usize = 2000;

/// Starts the manual executions of the job's pending triggers, within the free slots. A
/// trigger of a paused job waits (the tick returns before this); one of a paused scope waits
/// for its resume; one of every scope skips the paused ones.
pub(super) async fn serve_triggers(
    env: &TickEnv,
    job: &JobState,
    pauses: &PauseSet,
    scopes: &[Scope],
    tick: &mut JobTick,
) -> Result<()> {
    let rt = &env.rt;
    let spec = &job.shared.spec;
    let pending = rt.store.trigger_list(Some(&spec.name), true).await?;
    if pending.len() > TRIGGERS_PER_TICK {
        // More wait: come back at once.
        tick.report.deferred += 1;
    }
    let mut plans = Vec::new();
    let mut started = Vec::new();
    for trigger in pending.into_iter().take(TRIGGERS_PER_TICK) {
        let targets: Vec<&Scope> = match &trigger.scope {
            Some(scope) if pauses.runs(scope) => vec![scope],
            Some(_) => continue,
            // The scope provider failed (or named no scope): wait rather than start nothing.
            None if scopes.is_empty() => continue,
            None => scopes.iter().filter(|scope| pauses.runs(scope)).collect(),
        };
        let plan_time = manual_plan_time(trigger.requested_at, spec.schedule.as_ref());
        for scope in targets {
            plans.push(ManualPlan {
                trigger: trigger.id,
                plan: PlanClaim::new(scope.clone(), plan_time),
            });
        }
        started.push(trigger.id);
    }
    let limit = env.free.get();
    if started.is_empty() || limit == 0 {
        tick.report.deferred += plans.len();
        return Ok(());
    }
    let start = ManualStart {
        job: &spec.name,
        max_attempts: spec.max_attempts,
        runner_id: &rt.runner_id,
        stale_timeout: spec.stale_timeout,
        limit,
        plans,
        started,
    };
    env.free.set(env.free.get() - limit);
    // Retried with the same ids and tokens: a try that committed is found by its tokens.
    let claimed = super::retry_transient(
        rt.db_retry,
        "trigger_start",
        rt.db_retry.give_up_after,
        || rt.store.trigger_start(&start),
    )
    .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) => {
            env.free.set(env.free.get() + limit);
            return Err(error);
        }
    };
    env.free
        .set(env.free.get() + limit - claimed.len().min(limit));
    if claimed.len() >= limit {
        // Some trigger may still have plans without a row: come back when slots free.
        tick.report.deferred += 1;
    }
    if !claimed.is_empty() {
        tracing::info!(job = %spec.name, started = claimed.len(), "triggered runs started");
    }
    count_claims(&spec.name, claimed.len(), &claimed, &mut tick.report);
    start_claimed(env, &job.shared, claimed);
    Ok(())
}

/// Hands out the next plans of the job's active backfills with the free slots, claims them and
/// moves each backfill's cursor.
pub(super) async fn serve_backfills(
    env: &TickEnv,
    job: &mut JobState,
    pauses: &PauseSet,
    scopes: &[Scope],
    tick: &mut JobTick,
) -> Result<()> {
    let rt = env.rt.clone();
    let spec = job.shared.spec.clone();
    let backfills = rt.store.backfill_list(Some(&spec.name), true).await?;
    for backfill in backfills {
        let Some(schedule) = spec.schedule.as_ref() else {
            tracing::warn!(job = %spec.name, backfill = %backfill.id, "a job planned by a hook has no plan times to backfill; cancelling the backfill");
            rt.store.backfill_cancel(backfill.id).await?;
            continue;
        };
        let mut targets: Vec<Scope> = match &backfill.scopes {
            Some(chosen) => chosen.clone(),
            None => scopes.to_vec(),
        };
        targets.sort();
        if targets.is_empty() {
            // The scope provider failed (or named no scope): wait for scopes rather than finish
            // with nothing run.
            continue;
        }
        // The job's overlap policy and concurrency limit act in the guarded claim below, which
        // holds back what they do not allow (the step is cut before it).
        let budget = step_budget(env.free.get(), None).min(BACKFILL_STEP);
        let mut step = next_step(&backfill, schedule, &targets, budget, |s| pauses.runs(s));
        if step.plans.is_empty() && !step.finished {
            if budget == 0 {
                tick.report.deferred += 1;
            }
            continue;
        }
        let sent = step.plans.len();
        if sent > 0 {
            if backfill.rerun {
                rt.store
                    .execution_rerun(
                        &spec.name,
                        &step.plans,
                        backfill.created_at,
                        spec.max_attempts,
                    )
                    .await?;
            }
            let held_back = claim_plans(env, job, &step.plans, tick).await?;
            if !held_back.is_empty() {
                step = step.held_back(backfill.cursor.clone(), &held_back);
            }
        }
        let sent = step.plans.len();
        let moved = rt
            .store
            .backfill_advance(&BackfillAdvance {
                id: backfill.id,
                expected: backfill.cursor.clone(),
                cursor: step.cursor.clone(),
                handed_out: sent as u64,
                total: step.total,
                finished: step.finished,
            })
            .await?;
        if step.finished && moved {
            tracing::info!(job = %spec.name, backfill = %backfill.id, total = step.total, "backfill done");
        }
        if !step.finished {
            // More plans wait: come back at once if slots are free, else when one frees.
            tick.report.deferred += 1;
        }
    }
    Ok(())
}

/// Claims a backfill step's plans in one statement and starts what it won; plans that have a
/// row already come back conflicted and give their slot back. Under the job's overlap policy or
/// concurrency limit the claim is guarded, like the job's scheduled plans: a plan whose scope is
/// busy, or beyond the limit, is held back (returned) for a later step.
async fn claim_plans(
    env: &TickEnv,
    job: &mut JobState,
    plans: &[(Scope, DateTime<Utc>)],
    tick: &mut JobTick,
) -> Result<HashSet<(Scope, DateTime<Utc>)>> {
    let rt = &env.rt;
    let spec = Arc::clone(&job.shared.spec);
    let take = plans.len();
    let request = ClaimRequest {
        job: &spec.name,
        max_attempts: spec.max_attempts,
        runner_id: &rt.runner_id,
        stale_timeout: spec.stale_timeout,
        // A backfill never takes a stale lease over: the job's own ticks do that.
        allow_stale_reentry: false,
        steal_not_after: Some(takeover_deadline(
            tick.report.db_now,
            spec.heartbeat_interval,
        )),
        plans: plans
            .iter()
            .map(|(scope, plan_time)| PlanClaim::new(scope.clone(), *plan_time))
            .collect(),
    };
    env.free.set(env.free.get() - take);
    let guard = ClaimGuard {
        overlap: spec.overlap,
        max_running: spec.max_concurrent,
        schedule_delay: spec.schedule_delay,
    };
    let outcome = if guard.is_open() {
        super::retry_transient(
            rt.db_retry,
            "execution_claim",
            rt.db_retry.give_up_after,
            || rt.store.execution_claim(&request),
        )
        .await
        .map(|claimed| GuardedClaim {
            claimed,
            ..GuardedClaim::default()
        })
    } else {
        super::retry_transient(
            rt.db_retry,
            "execution_claim",
            rt.db_retry.give_up_after,
            || rt.store.execution_claim_guarded(&request, &guard),
        )
        .await
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            env.free.set(env.free.get() + take);
            return Err(error);
        }
    };
    let held_back: HashSet<(Scope, DateTime<Utc>)> =
        outcome.waiting.into_iter().chain(outcome.limited).collect();
    let claimed = outcome.claimed;
    env.free.set(env.free.get() + take - claimed.len());
    tick.report.planned += take;
    // As for scheduled plans: every plan sent has a row now; planning must know.
    if let Some(newest) = job.newest.as_mut() {
        for (scope, plan_time) in plans {
            newest.note(scope, *plan_time);
        }
    }
    count_claims(&spec.name, take, &claimed, &mut tick.report);
    start_claimed(env, &job.shared, claimed);
    Ok(held_back)
}
