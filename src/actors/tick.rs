//! One tick of one job: sweep, plan, claim, start.
//!
//! Every job ticks on its own timer (the Supervisor arms them), so a slow scope provider, a
//! slow planner hook or a database error of one job never delays another job's plans. A tick:
//! 1. reads the database time (every decision below uses it);
//! 2. sweeps the job's stale leases (before planning, so a dead runner's plan is retried now);
//! 3. for jobs that opted in, closes FAILED plans a newer success superseded;
//! 4. resolves the scopes (`planning::resolve_scopes`: panics and hangs of the provider are
//!    caught and bounded; scopes that fail [`Scope::validate`] are skipped and counted);
//! 5. collects the FAILED rows due for retry, whatever their plan time (`plan::due_retries`),
//!    and each scope's due plans (`plan::TickPlans`, computed once per tick, or the planner hook);
//!    the plans the catch-up mode jumps over go to the skipped-plan ledger in one statement;
//! 6. when the runner ticks by itself, sets aside the due plans of scopes another live runner
//!    owns, and takes over those set aside earlier that still have no row at the handoff
//!    (`sharing.rs`, `plan/sharing.rs`);
//! 7. claims them oldest first in batched statements while execution slots are free
//!    (conflicts use no slot), retrying a transient failure with the same ids and tokens; a job
//!    with an overlap policy other than `AllowAll` or a concurrency limit claims through
//!    `Store::execution_claim_guarded`, which may also skip plans (SKIPPED rows), cancel
//!    running attempts (`CancelOther`) and leave plans waiting, offered again next tick;
//! 8. starts an Executor per claimed lease and adds it to the Supervisor's running set in the
//!    same step, so a lease lost, an attempt ended or a shutdown begun before the tick is over
//!    reaches the right Executor.
//!
//! The newest plan of every scope is read once per job (one grouped query) and then kept in
//! memory, so a tick where nothing is due costs a constant number of statements whatever the
//! number of scopes. While the last walk over the scopes holds (same scopes and pauses, no
//! scope's next plan due since), a tick does not walk them again: it knows nothing is due, or
//! claims the next plans of the walk's backlog (`plan/last_walk.rs`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use super::Runtime;
use super::executor::{Executor, JobShared};
use super::heartbeat::{Arm, LeaseLost};
use super::planning::{self, PlanningCode};
use crate::control::{ClaimGuard, PauseSet, SKIPPED_OVERLAP, SkipCollector, SkipSpan};
use crate::error::Result;
use crate::execution::{ClaimOutcome, Status};
use crate::plan::{
    HANDOFF_AFTER, LastWalk, NewestPlans, Sharing, TickPlans, claim_order, due_retries, hook_plans,
};
use crate::schedule::{delta, stagger_offset};
use crate::scope::Scope;
use crate::store::{ClaimRequest, Claimed, GuardedClaim, Lease, PlanClaim};
use crate::takeover::takeover_deadline;
use crate::telemetry;

/// Most plans sent in one claim statement.
const CLAIM_BATCH: usize = 2000;
/// Most claim statements per job and tick (each sends up to the free slots' worth of plans).
const MAX_CLAIM_ROUNDS: usize = 8;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TickReport {
    /// The database time the tick planned with (the latest, when several jobs ticked).
    pub db_now: DateTime<Utc>,
    /// Plans and retries found due.
    pub planned: usize,
    /// New rows inserted and started.
    pub won: usize,
    /// Stale leases taken over and started.
    pub stole: usize,
    /// Failed rows retried (or replays) and started.
    pub retried: usize,
    /// Plans someone else holds or that are finished.
    pub conflicted: usize,
    /// Due plans left for a later tick because every execution slot was busy.
    pub deferred: usize,
    /// Stale RUNNING rows moved by the sweep.
    pub swept: usize,
    /// FAILED rows closed as SUPERSEDED (jobs that opted in).
    pub superseded: usize,
    /// Jobs or scopes skipped because of an error (logged and counted in
    /// `cronlease_tick_errors_total`).
    pub job_errors: usize,
    /// Jobs that started nothing because an operator paused them.
    pub paused_jobs: usize,
    /// Plans recorded SKIPPED by the overlap policy: they came due while the previous plan of
    /// their scope was running.
    pub skipped: usize,
    /// Running attempts cancelled (SUPERSEDED, `overlap_cancelled`) for a newer plan of their
    /// scope (`OverlapPolicy::CancelOther`).
    pub cancelled: usize,
    /// Due plans left for a later tick because their scope is busy under the overlap policy
    /// (backlog waiting its turn, a buffered plan, a retry waiting for the scope).
    pub waiting: usize,
    /// Due plans left for a later tick because the job's `max_concurrent` limit was reached.
    pub limited: usize,
    /// Due plans of scopes another live runner owns, set aside for it (runners ticking by
    /// themselves share a job's scopes; `docs/architecture.md`, "The claim strategy").
    pub set_aside: usize,
    /// Plans set aside earlier that had no row at the handoff (their owner did not claim them)
    /// and were offered by this runner.
    pub taken_over: usize,
}

impl TickReport {
    /// Executions this tick started.
    pub fn started(&self) -> usize {
        self.won + self.stole + self.retried
    }

    /// Adds another job's tick to this report.
    pub(crate) fn absorb(&mut self, other: &TickReport) {
        self.db_now = self.db_now.max(other.db_now);
        self.planned += other.planned;
        self.won += other.won;
        self.stole += other.stole;
        self.retried += other.retried;
        self.conflicted += other.conflicted;
        self.deferred += other.deferred;
        self.swept += other.swept;
        self.superseded += other.superseded;
        self.job_errors += other.job_errors;
        self.paused_jobs += other.paused_jobs;
        self.skipped += other.skipped;
        self.cancelled += other.cancelled;
        self.waiting += other.waiting;
        self.limited += other.limited;
        self.set_aside += other.set_aside;
        self.taken_over += other.taken_over;
    }
}

/// What the Supervisor keeps about one job between its ticks.
pub(crate) struct JobState {
    /// The spec, the job's Heartbeat and its book of running leases.
    pub(crate) shared: Arc<JobShared>,
    /// The newest plan time stored or claimed per scope; `None` until read from the store.
    pub(crate) newest: Option<NewestPlans>,
    /// Plans the last guarded claim left waiting or held back by the limit (they have no row):
    /// offered again by the next tick even when planning no longer emits them (LatestOnly offers
    /// only the newest plan), so a deferred plan is not lost and a buffered plan that a newer
    /// one replaces is recorded SKIPPED.
    pub(crate) held: Vec<(Scope, DateTime<Utc>)>,
    /// What the last walk over the scopes found (nothing due, or a backlog of plans more than a
    /// tick can claim) while it holds: ticks then need not walk.
    pub(crate) last_walk: LastWalk,
    /// The job's live runners and the due plans of their scopes this runner set aside.
    pub(crate) sharing: Sharing,
}

/// The running Executors by lease, shared by the Supervisor and the ticks (one thread). Leases
/// are ids and tokens this runner made, not input, so a fast hash suffices.
pub(crate) type Running = Rc<RefCell<HashMap<Lease, Addr<Executor>, foldhash::fast::RandomState>>>;

/// What a tick shares with the Supervisor while it runs.
#[derive(Clone)]
pub(crate) struct TickEnv {
    pub(crate) rt: Arc<Runtime>,
    /// Free execution slots, shared by every job's tick: taken before a claim, the unused part
    /// given back after it, freed again when an attempt ends.
    pub(crate) free: Rc<Cell<usize>>,
    /// Set when shutdown begins: no new claim is sent, and leases a claim in flight returns are
    /// handed back as `canceled` without running.
    pub(crate) stopping: Rc<Cell<bool>>,
    /// The Supervisor's running Executors: every Executor a tick starts is added at once, in the
    /// same step, so a lease lost, an attempt ended or a shutdown begun later always finds it.
    pub(crate) running: Running,
    /// The longest wait before the job's next tick.
    pub(crate) tick_interval: Duration,
    /// Whether the job's scopes are shared with the other live runners (the runner ticks by
    /// itself): each offers at once only the due plans of the scopes it owns.
    pub(crate) share_scopes: bool,
}

/// The outcome of one job's tick.
pub(crate) struct JobTick {
    pub(crate) report: TickReport,
    /// When to tick again, counted from `clock_read_at`.
    pub(crate) wake_in: Duration,
    /// When the database clock's reading arrived (the reference point of `wake_in`).
    pub(crate) clock_read_at: Instant,
    /// The job met a transient database error: its next tick backs off.
    pub(crate) db_trouble: bool,
    /// Due plans were left unclaimed with slots free: tick again at once.
    pub(crate) more_due: bool,
    /// Due plans wait for a running attempt of the job to end (overlap policy or concurrency
    /// limit): tick again when one of this runner's attempts ends.
    pub(crate) held_back: bool,
}

impl JobTick {
    /// Ticks again `wait` from the clock read at the latest (a millisecond later, so the time
    /// has surely passed on the database clock).
    fn wake_after(&mut self, wait: Duration) {
        self.wake_in = self.wake_in.min(wait + Duration::from_millis(1));
    }

    /// Ticks again at database time `at` at the latest (the tick read the clock at `db_now`).
    fn wake_at(&mut self, at: DateTime<Utc>, db_now: DateTime<Utc>) {
        self.wake_after((at - db_now).to_std().unwrap_or_default());
    }
}

/// Ticks one job. `Err` only when the database clock could not be read; every later error is
/// logged, counted and reported in the tick (the job is skipped for the rest of this tick).
pub(crate) async fn tick_job(env: TickEnv, job: &mut JobState) -> Result<JobTick> {
    // The clock, the job's pauses and whether it has control requests come in one statement:
    // obeying pauses costs nothing, nor does having no trigger or backfill.
    let clock = env.rt.store.tick_clock(&job.shared.spec.name).await?;
    // Taken once the answer is in, never before the database read its clock: wake-ups counted
    // from it come at or after their time on the database clock. Counted from the moment the
    // statement was sent, a wake-up came early by the time the statement took to reach the
    // database (tens of milliseconds on a loaded machine), and the tick found the plan before
    // the boundary it was woken for still the newest due.
    let clock_read_at = Instant::now();
    let db_now = clock.now;
    let pauses = PauseSet::new(clock.paused);
    let requests = Requests {
        triggers: clock.triggers_pending,
        backfills: clock.backfills_active,
    };
    telemetry::clock_offset((db_now - Utc::now()).num_milliseconds() as f64 / 1000.0);
    let mut tick = JobTick {
        report: TickReport {
            db_now,
            ..TickReport::default()
        },
        wake_in: env.tick_interval,
        clock_read_at,
        db_trouble: false,
        more_due: false,
        held_back: false,
    };
    let name = job.shared.spec.name.clone();
    let span = tracing::info_span!("tick", job = %name, %db_now);
    let outcome = sweep_plan_claim(&env, job, db_now, &pauses, requests, &mut tick)
        .instrument(span)
        .await;
    if let Err(error) = outcome {
        super::note_db_error("tick", &error);
        tick.report.job_errors += 1;
        // A transient error: come back after the database backoff, not a full interval.
        if error.is_transient() {
            tick.db_trouble = true;
        } else {
            telemetry::tick_error(&name, "database");
        }
    }
    Ok(tick)
}

/// Sweeps, plans and claims one job.
async fn sweep_plan_claim(
    env: &TickEnv,
    job: &mut JobState,
    db_now: DateTime<Utc>,
    pauses: &PauseSet,
    requests: Requests,
    tick: &mut JobTick,
) -> Result<()> {
    let rt = &env.rt;
    let spec = job.shared.spec.clone();
    // Takeovers (sweeps and steals) wait while this runner is recovering from an outage, and
    // act only if their statement runs promptly (`takeover.rs`).
    let takeover = rt.takeover.may_take_over(db_now, spec.stale_timeout);
    let deadline = takeover_deadline(db_now, spec.heartbeat_interval);
    let swept = if takeover {
        rt.store
            .execution_sweep_stale(&spec.name, spec.allow_stale_reentry, Some(deadline))
            .await?
    } else {
        tracing::debug!(job = %spec.name, "the database just came back: no takeover until owners have renewed");
        Vec::new()
    };
    if !swept.is_empty() {
        telemetry::swept(&spec.name, swept.len() as u64);
        let dead = swept.iter().filter(|s| s.status == Status::Dead).count();
        telemetry::dead_lettered_many(&spec.name, dead as u64);
        tracing::warn!(job = %spec.name, count = swept.len(), "swept stale leases");
        tick.report.swept += swept.len();
    }
    if spec.supersede_failed {
        let closed = rt.store.execution_supersede(&spec.name).await?;
        if !closed.is_empty() {
            telemetry::superseded(&spec.name, closed.len() as u64);
            tracing::info!(job = %spec.name, count = closed.len(), "failed plans superseded by a newer success");
            tick.report.superseded += closed.len();
        }
    }
    // A paused job starts nothing: no new plan, no retry. Leases are still swept above, and
    // attempts already running finish. The next tick (at most `tick_interval` away) reads the
    // pauses again.
    let eligible = db_now - delta(spec.schedule_delay);
    // The job's plan times around now, computed once; each scope then costs a stagger hash and
    // a binary search.
    let mut calendar = match (&spec.schedule, &spec.planner) {
        (Some(schedule), None) => Some(TickPlans::new(
            schedule,
            spec.catch_up,
            db_now,
            eligible,
            spec.stagger,
        )),
        _ => None,
    };
    if pauses.job_paused() {
        tick.report.paused_jobs += 1;
        // Wake at the next plan as usual, so a resume takes effect by the next plan.
        if let Some(due) = calendar
            .as_mut()
            .and_then(|c| c.scope(Duration::ZERO, None).1)
        {
            tick.wake_at(due + delta(spec.schedule_delay), db_now);
        }
        return Ok(());
    }
    // A provider that fails, panics or hangs costs this job its new plans for this tick; its
    // failed rows are still retried below.
    let scopes = match planning::resolve_scopes(&spec.scopes, &rt.handlers, spec.planning_timeout)
        .await
    {
        Ok(scopes) => scopes,
        Err(error) => {
            tracing::error!(job = %spec.name, %error, "scope provider failed; no new plans for this job this tick");
            telemetry::tick_error(&spec.name, error.reason(PlanningCode::ScopeProvider));
            telemetry::scope_provider_failure(&spec.name, error.kind());
            tick.report.job_errors += 1;
            Arc::from(Vec::new())
        }
    };
    let scopes = valid_scopes(&spec.name, &spec.scopes, scopes, tick);
    if requests.triggers {
        super::requests::serve_triggers(env, job, pauses, &scopes, tick).await?;
    }
    if job.newest.is_none() {
        // Streamed into the table row by row, sized for the scopes: no list of every scope's
        // newest plan is built first (at a million scopes, the first tick's memory peak).
        let mut newest = NewestPlans::with_capacity(scopes.len());
        rt.store
            .execution_latest_plans_each(&spec.name, &mut |scope, plan_time| {
                newest.note(scope, plan_time)
            })
            .await?;
        job.newest = Some(newest);
    }
    let newest = job.newest.as_mut().expect("loaded above");
    let staggered = !spec.stagger.is_zero();
    let offset_of = |scope: &Scope| {
        if staggered {
            stagger_offset(&spec.name, scope, spec.stagger)
        } else {
            Duration::ZERO
        }
    };

    // Retries first: they are the oldest due work. Every due FAILED row is claimed, whatever
    // the catch-up mode or newer plans of its scope (SPEC §4.2, revised): only SUCCESS or DEAD
    // (or SUPERSEDED, above) ends a plan.
    let candidates = rt
        .store
        .execution_retry_candidates(&spec.name, env.free.get().saturating_add(1))
        .await?;
    let (mut retries, retry_wait) = due_retries(candidates, db_now);
    // A paused scope's retries wait for its resume.
    retries.retain(|(scope, _)| pauses.runs(scope));
    if let Some(wait) = retry_wait {
        tick.wake_after(wait);
    }
    // Due plans borrow the tick's scopes: a plan becomes a `PlanClaim` (a copy of its scope, a
    // fresh id and token) only when it is chosen for this tick's claims, so a burst of a
    // million due scopes is not copied on every tick that claims 16,000 of them.
    let mut due: Vec<(Source<'_>, DateTime<Utc>)> = Vec::with_capacity(retries.len());
    // Retries queued this tick, so a plan that is both retried and planned is claimed once.
    let mut queued: HashSet<(Scope, DateTime<Utc>)> = HashSet::new();
    for (scope, plan_time) in retries {
        if queued.insert((scope.clone(), plan_time)) {
            due.push((Source::Owned(scope, due.len()), plan_time));
        }
    }

    // Plans held back by the last claim come next (they are older than anything new).
    for (scope, plan_time) in std::mem::take(&mut job.held) {
        if pauses.runs(&scope) && queued.insert((scope.clone(), plan_time)) {
            due.push((Source::Owned(scope, due.len()), plan_time));
        }
    }
    // Plans set aside for the runners owning their scopes whose handoff came and that still
    // have no row: this runner offers them now (`sharing.rs`).
    if env.share_scopes {
        let taken =
            super::sharing::take_over_due(rt, &spec, &mut job.sharing, newest, pauses, db_now)
                .await?;
        tick.report.taken_over += taken.len();
        for (scope, plan_time) in taken {
            if queued.insert((scope.clone(), plan_time)) {
                due.push((Source::Owned(scope, due.len()), plan_time));
            }
        }
    }
    // What one tick's claim rounds can send.
    let room = (MAX_CLAIM_ROUNDS * CLAIM_BATCH).saturating_sub(due.len());

    let max_plans = spec.catch_up.max_plans_per_tick();
    // Plans of one scope are distinct, so only a clash with a retry needs checking.
    let mut add = plan_adder(|source, plans: Vec<DateTime<Utc>>| {
        for plan_time in plans {
            if queued.is_empty() || !queued.contains(&(source.scope().clone(), plan_time)) {
                due.push((source.found_at(due.len()), plan_time));
            }
        }
    });
    // The walk over the scopes this tick made, if it made one: `(found, next due)`, and the
    // plans its catch-up jumped over.
    let mut walked: Option<(usize, Option<DateTime<Utc>>)> = None;
    let mut skips: Option<SkipCollector> = None;
    match (&spec.planner, calendar.as_mut()) {
        (Some(hook), _) => {
            let inputs = scopes
                .iter()
                .filter(|scope| pauses.runs(scope))
                .map(|scope| (scope.clone(), newest.get(scope)))
                .collect();
            match planning::run_hook(hook, &rt.handlers, spec.planning_timeout, db_now, inputs)
                .await
            {
                Ok(answers) => {
                    for (scope, answer) in answers {
                        match answer {
                            Ok(plans) => {
                                let eligible = eligible - delta(offset_of(&scope));
                                add(
                                    Source::Owned(scope, 0),
                                    hook_plans(plans, eligible, max_plans),
                                )
                            }
                            Err(error) => {
                                tracing::warn!(job = %spec.name, %scope, %error, "planner hook failed; scope skipped this tick");
                                telemetry::tick_error(
                                    &spec.name,
                                    error.reason(PlanningCode::PlannerHook),
                                );
                                tick.report.job_errors += 1;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(job = %spec.name, %error, "planner hook failed; no new plans for this job this tick");
                    telemetry::tick_error(&spec.name, error.reason(PlanningCode::PlannerHook));
                    tick.report.job_errors += 1;
                }
            }
        }
        (None, Some(calendar)) => {
            // The last walk still holds (same scopes and pauses, no scope's next plan due since):
            // nothing is due but the rest of its backlog, and the scopes are not walked again
            // (`plan/last_walk.rs`).
            let next_due = match job.last_walk.resume(&scopes, pauses, eligible, room) {
                Some(resumed) => {
                    for (i, plan_time) in resumed.plans {
                        add(Source::Listed(i, &scopes[i]), vec![plan_time]);
                    }
                    resumed.next_due
                }
                None => {
                    let walk =
                        walk_scopes(calendar, &scopes, pauses, newest, &offset_of, |i, p| {
                            add(Source::Listed(i, &scopes[i]), p)
                        });
                    walked = Some((walk.found, walk.next_due));
                    if !walk.skips.is_empty() {
                        skips = Some(walk.skips);
                    }
                    walk.next_due
                }
            };
            if let Some(due) = next_due {
                tick.wake_at(due + delta(spec.schedule_delay), db_now);
            }
        }
        _ => {}
    }
    // Due plans of scopes another live runner owns are set aside for it, to look at again at
    // the handoff; plans of a walk only (retries, held plans and plans taken over stay).
    let mut set_aside = 0;
    if env.share_scopes
        && due
            .iter()
            .any(|(source, _)| matches!(source, Source::Listed(..)))
    {
        let owners =
            super::sharing::owners(rt, &spec.name, &mut job.sharing.owners, db_now).await?;
        if owners.shared() {
            // Another runner's scope's plans are its own to skip: this runner has not seen
            // the claims that moved them on (its newest-plan cache moves at the handoff).
            if let Some(skips) = skips.as_mut() {
                skips.retain(|scope| owners.owns(&spec.name, scope));
            }
            let check_at = db_now + delta(HANDOFF_AFTER);
            let foreign = &mut job.sharing.foreign;
            due.retain(|(source, plan_time)| match source {
                Source::Listed(_, scope) if !owners.owns(&spec.name, scope) => {
                    foreign.set_aside(scope, *plan_time, check_at);
                    set_aside += 1;
                    false
                }
                _ => true,
            });
        }
    }
    tick.report.set_aside += set_aside;
    if let Some(skips) = skips.filter(|skips| !skips.is_empty())
        && let Some(schedule) = spec.schedule.as_ref()
    {
        record_skips(&rt.store, skips.spans(&spec.name, schedule)).await;
    }
    if let Some(at) = job.sharing.foreign.next_check() {
        tick.wake_at(at, db_now);
    }
    tick.report.planned += due.len();
    // Oldest plans first across scopes; among equals, the scopes in the unique key's order from
    // a random start: a runner short of slots serves every scope in turn, replicas ticking
    // together try different scopes first, and each claim statement inserts neighbouring keys.
    claim_order(&mut due, |(source, plan_time)| (*plan_time, source.scope()));
    // Only as many as the claim rounds can send become claims; the rest wait for the next
    // ticks: the walk's plans as its backlog, the others as held plans.
    let left_out = due.len().saturating_sub(MAX_CLAIM_ROUNDS * CLAIM_BATCH);
    let mut backlog = Vec::new();
    for (source, plan_time) in due.drain(due.len() - left_out..) {
        match source {
            Source::Listed(i, _) => backlog.push((i, plan_time)),
            Source::Owned(scope, _) => job.held.push((scope, plan_time)),
        }
    }
    if let Some((found, next_due)) = walked {
        // Plans set aside do not count as found: the walk holds until the next plan comes due,
        // and the plans set aside are looked at by their handoff.
        let found = found.saturating_sub(set_aside);
        job.last_walk
            .walked(&scopes, pauses, next_due, found, backlog);
    }
    // Each claim's index in the scopes when it came from the walk, to give back unsent.
    let listed: Vec<Option<usize>> = due
        .iter()
        .map(|(source, _)| match source {
            Source::Listed(i, _) => Some(*i),
            Source::Owned(..) => None,
        })
        .collect();
    // Ids (UUID v7, in creation order) follow the order the plans were found, not the claim
    // order: rows of one plan time list in the order of the scopes.
    let mut found_order: Vec<usize> = (0..due.len()).collect();
    found_order.sort_by_key(|&k| (due[k].0.found_key(), due[k].1));
    let mut ids = vec![Uuid::nil(); due.len()];
    for k in found_order {
        ids[k] = Uuid::now_v7();
    }
    let due: Vec<PlanClaim> = due
        .into_iter()
        .zip(ids)
        .map(|((source, plan_time), id)| PlanClaim {
            scope: source.into_scope(),
            plan_time,
            id,
            token: Uuid::new_v4(),
        })
        .collect();
    // Claim until the free slots are used. Plans another runner holds come back conflicted and
    // use no slot, so the next ones are tried in the same tick: otherwise replicas short of
    // slots would all send the same first plans every tick and leave the others to starve.
    let guard = ClaimGuard {
        overlap: spec.overlap,
        max_running: spec.max_concurrent,
        schedule_delay: spec.schedule_delay,
    };
    // Each batch moves its plans into its request (they are not copied).
    let due_count = due.len();
    let mut pending = due.into_iter();
    let mut rounds = 0;
    while pending.len() > 0 && rounds < MAX_CLAIM_ROUNDS && !env.stopping.get() {
        let take = pending.len().min(env.free.get()).min(CLAIM_BATCH);
        if take == 0 {
            break;
        }
        rounds += 1;
        env.free.set(env.free.get() - take);
        let plans: Vec<PlanClaim> = pending.by_ref().take(take).collect();
        let (store, db_retry) = (rt.store.clone(), rt.db_retry);
        let (job_name, runner_id) = (spec.name.clone(), rt.runner_id.clone());
        let (max_attempts, stale_timeout) = (spec.max_attempts, spec.stale_timeout);
        let allow_stale_reentry = spec.allow_stale_reentry && takeover;
        // Retried with the same ids and tokens: if a try committed but its reply was lost (the
        // connection dropped), the next try finds rows RUNNING under these tokens and adopts
        // them instead of leaving them to go stale (SPEC §5.1, §7). Rows left behind when it
        // gives up are swept once stale. The plans come back with the outcome.
        let (outcome, plans) = super::db_task(async move {
            let request = ClaimRequest {
                job: &job_name,
                max_attempts,
                runner_id: &runner_id,
                stale_timeout,
                allow_stale_reentry,
                steal_not_after: Some(deadline),
                plans,
            };
            let outcome = if guard.is_open() {
                super::retry_transient(db_retry, "execution_claim", db_retry.give_up_after, || {
                    store.execution_claim(&request)
                })
                .await
                .map(|claimed| GuardedClaim {
                    claimed,
                    ..GuardedClaim::default()
                })
            } else {
                super::retry_transient(db_retry, "execution_claim", db_retry.give_up_after, || {
                    store.execution_claim_guarded(&request, &guard)
                })
                .await
            };
            (outcome, request.plans)
        })
        .await;
        let batch = &plans;
        let mut outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                env.free.set(env.free.get() + take);
                // Plans handed out were not all sent: the next tick walks and finds them.
                job.last_walk.forget();
                return Err(error);
            }
        };
        let claimed = std::mem::take(&mut outcome.claimed);
        env.free.set(env.free.get() + take - claimed.len());
        // Every plan sent now has a row (ours or another runner's), but those left waiting or
        // held back by the limit: remember the others as planned, so the waiting ones are
        // offered again.
        let mut unplanned: HashMap<&Scope, DateTime<Utc>> = HashMap::new();
        for (scope, at) in outcome.waiting.iter().chain(&outcome.limited) {
            let first = unplanned.entry(scope).or_insert(*at);
            *first = (*first).min(*at);
        }
        for plan in batch {
            // Never past a plan of the scope still to run, or it would not be offered again.
            if unplanned
                .get(&plan.scope)
                .is_some_and(|first| plan.plan_time >= *first)
            {
                continue;
            }
            newest.note(&plan.scope, plan.plan_time);
        }
        count_claims(
            &spec.name,
            batch.len().saturating_sub(
                outcome.waiting.len() + outcome.limited.len() + outcome.skipped.len(),
            ),
            &claimed,
            &mut tick.report,
        );
        note_guard(env, &spec.name, &outcome, tick);
        job.held
            .extend(outcome.waiting.iter().chain(&outcome.limited).cloned());
        // A write that waited for this claim's connection (SQLite's one writer) goes first: it
        // was woken as the claim let go, so one turn of the actors' thread lets it reach the
        // database before 2,000 Executors start.
        tokio::task::yield_now().await;
        // Start each batch's executors at once, so handlers run while the next batch is claimed.
        start_claimed(env, &job.shared, claimed);
    }
    let unsent = pending.len();
    if unsent > 0 {
        // Not sent (no free slot, shutdown): the walk's plans go back to the front of its
        // backlog, the others are held for the next tick.
        let sent = due_count - unsent;
        let mut back = Vec::new();
        for (plan, index) in pending.zip(&listed[sent..]) {
            match index {
                Some(i) => back.push((*i, plan.plan_time)),
                None => job.held.push((plan.scope, plan.plan_time)),
            }
        }
        job.last_walk.give_back(back);
    }
    tick.report.deferred += unsent + left_out;
    let backlog_left = job.last_walk.has_backlog();
    if (unsent > 0 || left_out > 0 || backlog_left) && env.free.get() > 0 && !env.stopping.get() {
        // Slots are free but the claim rounds ran out (this tick's plans, or the walk's backlog
        // a resumed tick drew from): come back at once, not at the next boundary.
        tick.more_due = true;
    }
    if requests.backfills && !env.stopping.get() {
        super::requests::serve_backfills(env, job, pauses, &scopes, tick).await?;
    }
    Ok(())
}

/// Where a due plan's scope comes from.
#[derive(Debug, Clone)]
enum Source<'s> {
    /// The tick's scopes, at this index: borrowed until the plan is chosen for a claim.
    Listed(usize, &'s Scope),
    /// A retry, a held plan or the planner hook's answer, with the position it was found at.
    Owned(Scope, usize),
}

impl Source<'_> {
    fn scope(&self) -> &Scope {
        match self {
            Source::Listed(_, scope) => scope,
            Source::Owned(scope, _) => scope,
        }
    }

    /// This source for a plan found at position `at` of the tick's due plans.
    fn found_at(&self, at: usize) -> Self {
        match self {
            Source::Listed(i, scope) => Source::Listed(*i, scope),
            Source::Owned(scope, _) => Source::Owned(scope.clone(), at),
        }
    }

    /// The order plans were found in: retries, held plans and the hook's answers as found,
    /// then the scopes' plans in the order of the scopes.
    fn found_key(&self) -> (bool, usize) {
        match self {
            Source::Owned(_, at) => (false, *at),
            Source::Listed(i, _) => (true, *i),
        }
    }

    fn into_scope(self) -> Scope {
        match self {
            Source::Listed(_, scope) => scope.clone(),
            Source::Owned(scope, _) => scope,
        }
    }
}

/// Ties the due-plan closure's scopes to one lifetime (the tick's scopes), which a closure's
/// own signature cannot name.
fn plan_adder<'s, F: FnMut(Source<'s>, Vec<DateTime<Utc>>)>(add: F) -> F {
    add
}

/// Records a tick's catch-up skips in the ledger. A failure costs the record, not the plans: it
/// is logged, and the runner that next decides the same records it.
async fn record_skips(store: &Arc<dyn crate::store::Store>, spans: Vec<SkipSpan>) {
    let plans: u64 = spans
        .iter()
        .map(|s| s.plans.unwrap_or(0) * s.scopes.max(1))
        .sum();
    match store.skip_record(&spans).await {
        Ok(()) => {
            if let Some(first) = spans.first() {
                tracing::info!(job = %first.job, reason = %first.reason, rows = spans.len(), plans, "missed plans skipped by the catch-up mode");
            }
            // One tick can skip for several reasons (scopes whose newest plan was on an old
            // schedule skip `schedule_change`, the others `latest_only`): each span counts
            // under its own.
            for span in &spans {
                let n = span.plans.unwrap_or(0) * span.scopes.max(1);
                telemetry::plans_skipped(&span.job, span.reason.as_str(), n);
            }
        }
        Err(error) => {
            tracing::warn!(%error, rows = spans.len(), "could not record skipped plans in the ledger");
        }
    }
}

/// What a walk over a job's scopes found.
struct Walk {
    /// Plans found due (sent to `add`).
    found: usize,
    /// When the next plan of any scope comes due (`schedule_delay` not included).
    next_due: Option<DateTime<Utc>>,
    /// Plans the catch-up mode jumps over, for the ledger.
    skips: SkipCollector,
}

/// Plans every scope that runs under `pauses` from its newest known plan, handing each
/// scope's due plans to `add` with the scope's index.
fn walk_scopes(
    calendar: &mut TickPlans<'_>,
    scopes: &[Scope],
    pauses: &PauseSet,
    newest: &NewestPlans,
    offset_of: &impl Fn(&Scope) -> Duration,
    mut add: impl FnMut(usize, Vec<DateTime<Utc>>),
) -> Walk {
    let mut walk = Walk {
        found: 0,
        next_due: None,
        skips: SkipCollector::default(),
    };
    for (i, scope) in scopes.iter().enumerate() {
        if !pauses.runs(scope) {
            continue;
        }
        let known = newest.get(scope);
        let offset = offset_of(scope);
        let (plans, due) = calendar.scope(offset, known);
        if !plans.is_empty()
            && let Some(skip) = calendar.skipped(offset, known)
        {
            walk.skips.note(scope, skip);
        }
        walk.found += plans.len();
        if !plans.is_empty() {
            add(i, plans);
        }
        if let Some(due) = due {
            walk.next_due = Some(walk.next_due.map_or(due, |d| d.min(due)));
        }
    }
    walk
}

/// Which control requests the job has, as the tick's first statement read them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requests {
    /// Triggers no tick has started.
    triggers: bool,
    /// Active backfills.
    backfills: bool,
}

/// Starts an Executor per claimed lease and adds it to the running set in the same step.
pub(super) fn start_claimed(env: &TickEnv, job: &Arc<JobShared>, claimed: Vec<Claimed>) {
    if claimed.is_empty() {
        return;
    }
    // Shutdown began while the claim was in flight: hand the leases back unrun.
    let cancelled = env.stopping.get();
    let mut running = env.running.borrow_mut();
    let lags = telemetry::start_lags(&job.spec.name);
    for claim in claimed {
        let (lease, executor) = start_executor(env, job, claim, cancelled, &lags);
        running.insert(lease, executor);
    }
    telemetry::running(running.len());
    drop(running);
    job.heartbeat.do_send(Arm);
}

/// Keeps the scopes that can be stored the same way on every backend; logs and counts the rest.
/// A fixed list was checked when the spec was built, so only a provider's answer is checked.
fn valid_scopes(
    job: &Arc<str>,
    source: &crate::scope::Scopes,
    scopes: Arc<[Scope]>,
    tick: &mut JobTick,
) -> Arc<[Scope]> {
    if matches!(source, crate::scope::Scopes::Static(_)) {
        return scopes;
    }
    // The common case (every scope valid) allocates nothing; the rare bad answer is filtered.
    let mut errors = scopes.iter().filter_map(|scope| scope.validate().err());
    let Some(first_error) = errors.next() else {
        return scopes;
    };
    let invalid = 1 + errors.count();
    tracing::error!(job = %job, invalid, error = %first_error, "the scope provider returned scopes that cannot be stored; they are skipped, the others run");
    telemetry::tick_errors(job, "invalid_scope", invalid as u64);
    tick.report.job_errors += invalid;
    scopes
        .iter()
        .filter(|scope| scope.validate().is_ok())
        .cloned()
        .collect()
}

/// Counts what the overlap policy and the concurrency limit did in one guarded claim, and tells
/// this runner's Executors whose attempts it cancelled (their heartbeat would find out within
/// one interval; this is at once).
fn note_guard(env: &TickEnv, job: &Arc<str>, outcome: &GuardedClaim, tick: &mut JobTick) {
    let report = &mut tick.report;
    report.skipped += outcome.skipped.len();
    report.cancelled += outcome.cancelled.len();
    report.waiting += outcome.waiting.len();
    report.limited += outcome.limited.len();
    telemetry::plans_skipped(job, SKIPPED_OVERLAP, outcome.skipped.len() as u64);
    if !outcome.skipped.is_empty() {
        tracing::info!(job = %job, count = outcome.skipped.len(), "plans skipped: their scope was still running (overlap policy)");
    }
    if !outcome.waiting.is_empty() || !outcome.limited.is_empty() {
        tick.held_back = true;
    }
    if !outcome.cancelled.is_empty() {
        tracing::info!(job = %job, count = outcome.cancelled.len(), "running attempts cancelled for a newer plan of their scope (overlap policy)");
        let running = env.running.borrow();
        for &(id, token) in &outcome.cancelled {
            if let Some(executor) = running.get(&Lease { id, token }) {
                executor.do_send(LeaseLost);
            }
        }
    }
}

/// Counts one claim statement's outcomes in the metrics and the report.
pub(super) fn count_claims(
    job: &Arc<str>,
    sent: usize,
    claimed: &[Claimed],
    report: &mut TickReport,
) {
    let mut by_outcome = [0u64; 4];
    for claim in claimed {
        match claim.outcome {
            ClaimOutcome::Stole => by_outcome[1] += 1,
            ClaimOutcome::Retried => by_outcome[2] += 1,
            ClaimOutcome::Replayed => by_outcome[3] += 1,
            _ => by_outcome[0] += 1,
        }
    }
    let conflicted = (sent - claimed.len()) as u64;
    telemetry::claims(job, "won", by_outcome[0]);
    telemetry::claims(job, "stole", by_outcome[1]);
    telemetry::claims(job, "retried", by_outcome[2]);
    telemetry::claims(job, "replayed", by_outcome[3]);
    telemetry::claims(job, "conflicted", conflicted);
    report.won += by_outcome[0] as usize;
    report.stole += by_outcome[1] as usize;
    report.retried += (by_outcome[2] + by_outcome[3]) as usize;
    report.conflicted += conflicted as usize;
}

/// Books the lease of one claimed plan with the job's Heartbeat and starts its Executor;
/// records its start lag into `lags`.
fn start_executor(
    env: &TickEnv,
    job: &Arc<JobShared>,
    claimed: Claimed,
    cancelled: bool,
    lags: &metrics::Histogram,
) -> (Lease, Addr<Executor>) {
    let spec = &job.spec;
    let lag = (claimed.started_at - claimed.plan_time - delta(spec.schedule_delay))
        .num_milliseconds() as f64
        / 1000.0;
    lags.record(lag.max(0.0));
    let lease = claimed.lease;
    job.leases
        .track(lease, spec.run_timeout + spec.heartbeat_interval);
    let executor = Executor::new(env.rt.clone(), job.clone(), claimed, cancelled).start();
    (lease, executor)
}
