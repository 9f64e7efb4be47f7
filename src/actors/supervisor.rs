//! The Supervisor actor: ticks every job and spawns one Executor per claimed lease.
//!
//! A tick, for each job (one job's error never stops the others):
//! 1. sweep the job's stale leases (before planning, so a dead runner's plan is retried now);
//! 2. resolve the scopes and compute each scope's due plans from the database time read once
//!    per tick (`plan::cadence_plans` or the planner hook);
//! 3. add the FAILED rows due for retry that are still current (`plan::retry_is_current`) or
//!    were replayed by an operator (whatever the catch-up mode);
//! 4. claim them oldest first in batched statements until the free execution slots are used
//!    (conflicts use no slot), retrying a transient failure with the same ids and tokens;
//! 5. start an Executor for every Won, Stole or Retried lease.
//!
//! The newest plan of every scope is read once per job (one grouped query) and then kept in
//! memory, so a tick where nothing is due costs a constant number of statements whatever the
//! number of scopes. Ticks re-arm themselves after finishing (never overlapping, no burst after
//! a stall): at the next plan boundary or retry time, at most `tick_interval` away; after a
//! transient database error, after the database backoff instead (doubling while it lasts).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::Runtime;
use super::completer::AttemptsEnded;
use super::executor::{Abandon, Cancel, Executor, JobShared};
use super::heartbeat::{Arm, Heartbeat, LeaseBook, LeaseLost, LeasesLost, StopHeartbeat};
use crate::error::{Error, Result};
use crate::execution::{ClaimOutcome, Status};
use crate::plan::{cadence_plans, hook_plans, retry_is_current, retry_since};
use crate::schedule::delta;
use crate::scheduler::TickReport;
use crate::scope::Scope;
use crate::spec::JobSpec;
use crate::store::{ClaimRequest, Claimed, PlanClaim};
use crate::telemetry;

/// Most plans sent in one claim statement.
const CLAIM_BATCH: usize = 2000;
/// Most claim statements per job and tick (each sends up to the free slots' worth of plans).
const MAX_CLAIM_ROUNDS: usize = 8;
/// Shortest sleep between ticks, so a boundary just passing does not spin.
const MIN_TICK_GAP: Duration = Duration::from_millis(5);

/// What the Supervisor knows about one job between ticks.
struct JobState {
    /// The spec, the job's Heartbeat and its book of running leases.
    shared: Arc<JobShared>,
    /// The newest plan time stored or claimed per scope; `None` until read from the store.
    newest: Option<HashMap<Scope, DateTime<Utc>>>,
}

/// Ticks jobs, claims plans, supervises executors.
pub(crate) struct Supervisor {
    rt: Arc<Runtime>,
    jobs: Option<Vec<JobState>>,
    running: HashMap<Uuid, Addr<Executor>>,
    /// Attempts that ended before the tick that started them handed them over.
    finished_early: HashSet<Uuid>,
    max_concurrent: usize,
    tick_interval: Duration,
    auto_tick: bool,
    next_tick: Option<SpawnHandle>,
    ticking: bool,
    ticks: u64,
    db_failures: u32,
    /// Manual ticks asked for while a tick was running: answered by the next tick.
    waiting_ticks: Vec<oneshot::Sender<Result<TickReport>>>,
    /// Shutdown callers waiting for the executors to drain.
    draining: Option<Vec<oneshot::Sender<()>>>,
}

impl Supervisor {
    /// `me` is the Supervisor's own address, which the Heartbeats report lost leases to.
    pub(crate) fn new(
        rt: Arc<Runtime>,
        me: Addr<Supervisor>,
        jobs: Vec<Arc<JobSpec>>,
        max_concurrent: usize,
        tick_interval: Duration,
        auto_tick: bool,
    ) -> Self {
        let jobs = jobs
            .into_iter()
            .map(|spec| {
                let leases = Arc::new(LeaseBook::default());
                let heartbeat = Heartbeat::new(
                    rt.store.clone(),
                    spec.name.clone(),
                    spec.heartbeat_interval,
                    spec.stale_timeout,
                    leases.clone(),
                    me.clone().recipient(),
                )
                .start();
                JobState {
                    shared: Arc::new(JobShared {
                        spec,
                        heartbeat,
                        leases,
                    }),
                    newest: None,
                }
            })
            .collect();
        Supervisor {
            rt,
            jobs: Some(jobs),
            running: HashMap::new(),
            finished_early: HashSet::new(),
            max_concurrent,
            tick_interval,
            auto_tick,
            next_tick: None,
            ticking: false,
            ticks: 0,
            db_failures: 0,
            waiting_ticks: Vec::new(),
            draining: None,
        }
    }

    /// Starts a tick unless one is running; `reply` receives its report.
    fn tick(
        &mut self,
        ctx: &mut Context<Self>,
        reply: Option<oneshot::Sender<Result<TickReport>>>,
    ) {
        if let Some(reply) = reply {
            self.waiting_ticks.push(reply);
        }
        if self.ticking || self.draining.is_some() {
            return;
        }
        if let Some(handle) = self.next_tick.take() {
            ctx.cancel_future(handle);
        }
        self.ticking = true;
        let waiting = std::mem::take(&mut self.waiting_ticks);
        let jobs = self.jobs.take().expect("jobs are home between ticks");
        let capacity = self.max_concurrent.saturating_sub(self.running.len());
        let rotate = (self.ticks as usize) % jobs.len().max(1);
        self.ticks += 1;
        let work = run_tick(self.rt.clone(), jobs, capacity, rotate, self.tick_interval);
        ctx.spawn(work.into_actor(self).map(move |(jobs, outcome), act, ctx| {
            act.jobs = Some(jobs);
            act.ticking = false;
            let report = match outcome {
                Ok(tick) => {
                    // Executors started during the tick; some may have finished already.
                    for (id, executor) in tick.started {
                        if !act.finished_early.remove(&id) {
                            act.running.insert(id, executor);
                        }
                    }
                    act.finished_early.clear();
                    telemetry::running(act.running.len());
                    // A job that met a transient database error backs off like a failed tick
                    // (doubling while the trouble lasts), not at the next plan boundary.
                    if tick.db_trouble {
                        act.db_failures += 1;
                        act.schedule_next(act.rt.db_retry.delay(act.db_failures), ctx);
                    } else {
                        act.db_failures = 0;
                        // Wake-up times were computed from the clock read at the tick's start.
                        let wait = if tick.more_due {
                            Duration::ZERO
                        } else {
                            tick.wake_in.saturating_sub(tick.clock_read_at.elapsed())
                        };
                        act.schedule_next(wait, ctx);
                    }
                    Ok(tick.report)
                }
                Err(error) => {
                    super::note_db_error("tick", &error);
                    act.db_failures += 1;
                    let backoff = act.rt.db_retry.delay(act.db_failures);
                    act.schedule_next(backoff, ctx);
                    Err(error)
                }
            };
            for reply in waiting {
                let _ = reply.send(clone_report(&report));
            }
            if act.draining.is_some() {
                // Shutdown began during this tick: cancel what it claimed so it is handed off.
                let grace = act.rt.shutdown_grace;
                for executor in act.running.values() {
                    executor.do_send(Cancel { grace });
                }
                if act.running.is_empty() {
                    act.complete_drain(ctx);
                }
            } else if !act.waiting_ticks.is_empty() {
                act.tick(ctx, None);
            }
        }));
    }

    /// Answers every shutdown caller and stops.
    fn complete_drain(&mut self, ctx: &mut Context<Self>) {
        for job in self.jobs.iter().flatten() {
            job.shared.heartbeat.do_send(StopHeartbeat);
        }
        for waiter in self.draining.iter_mut().flat_map(|w| w.drain(..)) {
            let _ = waiter.send(());
        }
        for reply in self.waiting_ticks.drain(..) {
            let _ = reply.send(Err(Error::NotRunning));
        }
        ctx.stop();
    }

    fn schedule_next(&mut self, wake_in: Duration, ctx: &mut Context<Self>) {
        if !self.auto_tick || self.draining.is_some() {
            return;
        }
        if let Some(handle) = self.next_tick.take() {
            ctx.cancel_future(handle);
        }
        let wait = wake_in.min(self.tick_interval).max(MIN_TICK_GAP);
        self.next_tick = Some(ctx.run_later(wait, |act, ctx| {
            act.next_tick = None;
            act.tick(ctx, None);
        }));
    }
}

/// The outcome of one tick.
struct Tick {
    report: TickReport,
    /// Executors started by this tick, as each claim batch returned.
    started: Vec<(Uuid, Addr<Executor>)>,
    wake_in: Duration,
    /// When the database clock was read (the reference point of `wake_in`).
    clock_read_at: std::time::Instant,
    /// A job met a transient database error: the next tick backs off.
    db_trouble: bool,
    /// Due plans were left unclaimed with slots free: tick again at once.
    more_due: bool,
}

fn clone_report(report: &Result<TickReport>) -> Result<TickReport> {
    match report {
        Ok(report) => Ok(report.clone()),
        Err(error) => Err(Error::InvalidConfig(format!("tick failed: {error}"))),
    }
}

/// One tick over every job. Returns the job states (caches updated) with the outcome.
async fn run_tick(
    rt: Arc<Runtime>,
    mut jobs: Vec<JobState>,
    capacity: usize,
    rotate: usize,
    tick_interval: Duration,
) -> (Vec<JobState>, Result<Tick>) {
    let clock_read_at = std::time::Instant::now();
    let db_now = match rt.store.db_now().await {
        Ok(now) => now,
        Err(error) => return (jobs, Err(error)),
    };
    telemetry::clock_offset((db_now - Utc::now()).num_milliseconds() as f64 / 1000.0);
    let mut tick = Tick {
        report: TickReport {
            db_now,
            ..TickReport::default()
        },
        started: Vec::new(),
        wake_in: tick_interval,
        clock_read_at,
        db_trouble: false,
        more_due: false,
    };
    let mut free = capacity;
    let count = jobs.len();
    for i in 0..count {
        let job = &mut jobs[(i + rotate) % count];
        let span = tracing::info_span!("tick", job = %job.shared.spec.name, %db_now);
        let _enter = span.enter();
        match tick_job(&rt, job, db_now, &mut free, &mut tick).await {
            Ok(()) => {}
            Err(error) => {
                super::note_db_error("tick_job", &error);
                tick.report.job_errors += 1;
                // A transient error: come back after the database backoff, not a full interval.
                tick.db_trouble |= error.is_transient();
            }
        }
    }
    (jobs, Ok(tick))
}

/// Sweeps, plans and claims one job.
async fn tick_job(
    rt: &Arc<Runtime>,
    job: &mut JobState,
    db_now: DateTime<Utc>,
    free: &mut usize,
    tick: &mut Tick,
) -> Result<()> {
    let spec = job.shared.spec.clone();
    let swept = rt
        .store
        .execution_sweep_stale(&spec.name, spec.allow_stale_reentry)
        .await?;
    if !swept.is_empty() {
        telemetry::swept(&spec.name, swept.len() as u64);
        let dead = swept.iter().filter(|s| s.status == Status::Dead).count();
        telemetry::dead_lettered_many(&spec.name, dead as u64);
        tracing::warn!(job = %spec.name, count = swept.len(), "swept stale leases");
        tick.report.swept += swept.len();
    }
    let scopes = match spec.scopes.resolve().await {
        Ok(scopes) => scopes,
        Err(error) => {
            tracing::error!(job = %spec.name, %error, "scope provider failed; job skipped this tick");
            tick.report.job_errors += 1;
            return Ok(());
        }
    };
    if job.newest.is_none() {
        let latest = rt.store.execution_latest_plans(&spec.name).await?;
        job.newest = Some(latest.into_iter().collect());
    }
    let newest = job.newest.as_mut().expect("loaded above");
    let eligible = db_now - delta(spec.schedule_delay);
    let latest = spec.schedule.map(|s| s.latest_plan(eligible));
    if let (Some(schedule), Some(latest), None) = (spec.schedule, latest, &spec.planner) {
        let next_due = latest + delta(schedule.cadence()) + delta(spec.schedule_delay);
        let wait = (next_due - db_now).to_std().unwrap_or_default();
        tick.wake_in = tick.wake_in.min(wait + Duration::from_millis(1));
    }

    // Retries first: they are the oldest due work.
    let mut due: Vec<PlanClaim> = Vec::new();
    // Retries queued this tick, so a plan that is both retried and planned is claimed once.
    let mut queued: HashSet<(Scope, DateTime<Utc>)> = HashSet::new();
    let since = retry_since(
        spec.catch_up,
        latest.filter(|_| spec.planner.is_none()),
        db_now,
    );
    let candidates = rt
        .store
        .execution_retry_candidates(&spec.name, since, (*free).max(1))
        .await?;
    for candidate in candidates {
        if !candidate.due {
            let wait = (candidate.next_retry_at - db_now)
                .to_std()
                .unwrap_or_default();
            tick.wake_in = tick.wake_in.min(wait + Duration::from_millis(1));
            continue;
        }
        // A replayed row runs whatever the catch-up mode: an operator asked for it.
        let current = candidate.replayed
            || retry_is_current(
                spec.catch_up,
                candidate.plan_time,
                newest.get(&candidate.scope).copied(),
                db_now,
            );
        if current && queued.insert((candidate.scope.clone(), candidate.plan_time)) {
            due.push(PlanClaim::new(candidate.scope, candidate.plan_time));
        }
    }

    let max_plans = spec.catch_up.max_plans_per_tick();
    for scope in scopes.iter() {
        let known = newest.get(scope).copied();
        let plans = match (&spec.planner, spec.schedule, latest) {
            (Some(hook), _, _) => match hook(scope, db_now, known) {
                Ok(planned) => hook_plans(planned, eligible, max_plans),
                Err(error) => {
                    tracing::warn!(job = %spec.name, %scope, %error, "planner hook failed; scope skipped this tick");
                    tick.report.job_errors += 1;
                    continue;
                }
            },
            (None, Some(schedule), Some(latest)) => {
                cadence_plans(spec.catch_up, schedule.cadence(), latest, db_now, known)
            }
            _ => Vec::new(),
        };
        for plan_time in plans {
            // Plans of one scope are distinct, so only a clash with a retry needs checking.
            if queued.is_empty() || !queued.contains(&(scope.clone(), plan_time)) {
                due.push(PlanClaim::new(scope.clone(), plan_time));
            }
        }
    }
    tick.report.planned += due.len();
    // Oldest plans first across scopes, in random order among equals: a runner short of slots
    // serves every scope in turn, and replicas ticking together try different scopes first.
    fastrand::shuffle(&mut due);
    due.sort_by_key(|plan| plan.plan_time);
    // Claim until the free slots are used. Plans another runner holds come back conflicted and
    // use no slot, so the next ones are tried in the same tick: otherwise replicas short of
    // slots would all send the same first plans every tick and leave the others to starve.
    let mut pending = &due[..];
    let mut rounds = 0;
    while !pending.is_empty() && *free > 0 && rounds < MAX_CLAIM_ROUNDS {
        rounds += 1;
        let (batch, rest) = pending.split_at(pending.len().min(*free).min(CLAIM_BATCH));
        pending = rest;
        let request = ClaimRequest {
            job: &spec.name,
            max_attempts: spec.max_attempts,
            runner_id: &rt.runner_id,
            stale_timeout: spec.stale_timeout,
            allow_stale_reentry: spec.allow_stale_reentry,
            plans: batch.to_vec(),
        };
        // Retried with the same ids and tokens: if a try committed but its reply was lost (the
        // connection dropped), the next try finds rows RUNNING under these tokens and adopts
        // them instead of leaving them to go stale (SPEC §5.1, §7). Rows left behind when it
        // gives up are swept once stale.
        let claimed = super::retry_transient(
            rt.db_retry,
            "execution_claim",
            rt.db_retry.give_up_after,
            || rt.store.execution_claim(&request),
        )
        .await?;
        // Every plan sent now has a row (ours or another runner's): remember it as planned.
        for plan in batch {
            let entry = newest.entry(plan.scope.clone()).or_insert(plan.plan_time);
            if *entry < plan.plan_time {
                *entry = plan.plan_time;
            }
        }
        let mut by_outcome = [0u64; 4];
        for claim in &claimed {
            match claim.outcome {
                ClaimOutcome::Stole => by_outcome[1] += 1,
                ClaimOutcome::Retried => by_outcome[2] += 1,
                ClaimOutcome::Replayed => by_outcome[3] += 1,
                _ => by_outcome[0] += 1,
            }
        }
        let conflicted = (batch.len() - claimed.len()) as u64;
        telemetry::claims(&spec.name, "won", by_outcome[0]);
        telemetry::claims(&spec.name, "stole", by_outcome[1]);
        telemetry::claims(&spec.name, "retried", by_outcome[2]);
        telemetry::claims(&spec.name, "replayed", by_outcome[3]);
        telemetry::claims(&spec.name, "conflicted", conflicted);
        tick.report.won += by_outcome[0] as usize;
        tick.report.stole += by_outcome[1] as usize;
        tick.report.retried += (by_outcome[2] + by_outcome[3]) as usize;
        tick.report.conflicted += conflicted as usize;
        *free -= claimed.len();
        // Start each batch's executors at once, so handlers run while the next batch is claimed.
        if !claimed.is_empty() {
            for claim in claimed {
                let executor = start_executor(rt, &job.shared, claim);
                tick.started.push(executor);
            }
            job.shared.heartbeat.do_send(Arm);
        }
    }
    tick.report.deferred += pending.len();
    if !pending.is_empty() && *free > 0 {
        // Slots are free but the claim rounds ran out: come back at once, not at the next boundary.
        tick.more_due = true;
    }
    Ok(())
}

/// Books the lease of one claimed plan with the job's Heartbeat and starts its Executor.
fn start_executor(
    rt: &Arc<Runtime>,
    job: &Arc<JobShared>,
    claimed: Claimed,
) -> (Uuid, Addr<Executor>) {
    let spec = &job.spec;
    let lag = (claimed.started_at - claimed.plan_time - delta(spec.schedule_delay))
        .num_milliseconds() as f64
        / 1000.0;
    telemetry::start_lag(&spec.name, lag.max(0.0));
    let id = claimed.lease.id;
    job.leases
        .track(claimed.lease, spec.run_timeout + spec.heartbeat_interval);
    let executor = Executor::new(rt.clone(), job.clone(), claimed).start();
    (id, executor)
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.auto_tick {
            self.tick(ctx, None);
        }
    }
}

/// Runs a tick now and returns its report (waits for a running tick, then ticks again).
#[derive(Message)]
#[rtype(result = "Result<TickReport>")]
pub(crate) struct TickNow;

impl Handler<TickNow> for Supervisor {
    type Result = ResponseFuture<Result<TickReport>>;

    fn handle(&mut self, _: TickNow, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.draining.is_some() {
            return Box::pin(async { Err(Error::NotRunning) });
        }
        self.tick(ctx, Some(tx));
        Box::pin(async move { rx.await.unwrap_or(Err(Error::NotRunning)) })
    }
}

impl Handler<AttemptsEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AttemptsEnded, ctx: &mut Context<Self>) {
        let was_full = self.running.len() >= self.max_concurrent;
        for id in msg.ids {
            if self.running.remove(&id).is_none() && self.ticking {
                self.finished_early.insert(id);
            }
        }
        telemetry::running(self.running.len());
        if self.draining.is_some() {
            if self.running.is_empty() && !self.ticking {
                self.complete_drain(ctx);
            }
            return;
        }
        // A slot opened after a full tick: plans may be waiting for it.
        if was_full && self.auto_tick && !self.ticking {
            self.schedule_next(Duration::ZERO, ctx);
        }
    }
}

/// Tells each Executor whose lease the Heartbeat found taken over.
impl Handler<LeasesLost> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: LeasesLost, _: &mut Context<Self>) {
        for id in msg.ids {
            if let Some(executor) = self.running.get(&id) {
                executor.do_send(LeaseLost);
            }
        }
    }
}

/// How many executions are running.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct RunningCount;

impl Handler<RunningCount> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: RunningCount, _: &mut Context<Self>) -> usize {
        self.running.len()
    }
}

/// Stops ticking, cancels running attempts and completes when they are recorded (or abandoned
/// after the deadline).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if let Some(handle) = self.next_tick.take() {
            ctx.cancel_future(handle);
        }
        let first = self.draining.is_none();
        self.draining.get_or_insert_with(Vec::new).push(tx);
        if first {
            let grace = self.rt.shutdown_grace;
            tracing::info!(running = self.running.len(), grace = ?grace, "shutting down");
            for executor in self.running.values() {
                executor.do_send(Cancel { grace });
            }
            // Writes of canceled attempts get a little longer than the grace; then give up.
            let deadline = grace + grace.max(Duration::from_secs(5));
            ctx.run_later(deadline, |act, ctx| {
                for executor in act.running.values() {
                    executor.do_send(Abandon);
                }
                act.running.clear();
                act.complete_drain(ctx);
            });
            if self.running.is_empty() && !self.ticking {
                self.complete_drain(ctx);
            }
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Asks for a tick soon, e.g. after an operator replayed executions. Ignored while a tick runs
/// (its end schedules the next one) and when the scheduler does not tick by itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

impl Handler<Wake> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        if !self.ticking {
            self.schedule_next(Duration::ZERO, ctx);
        }
    }
}
