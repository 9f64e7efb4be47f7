//! The Supervisor actor: arms every job's tick and supervises the Executors they start.
//!
//! It coordinates; the tick itself (sweep, plan, claim, start) is `tick::tick_job`. Each job
//! ticks on its own timer, so one job's slow provider, hook or database trouble never delays
//! another's plans. A job's ticks never overlap and re-arm after finishing (no burst after a
//! stall), at the earliest of: the job's next plan boundary, its next known retry time,
//! `tick_interval`; after a transient database error, after the database backoff instead
//! (doubling while it lasts). An attempt that fails with a retry ahead wakes its job for that
//! retry time, so a retry runs within the tick precision of its `next_retry_at`.
//!
//! It keeps the running Executors keyed by lease (execution id and token: the attempts of one
//! row never collide), in a map the ticks add to as they start Executors (before any of them can
//! report anything, and before a shutdown can look), and shares the free execution slots with the ticks. At shutdown
//! it stops claiming (even mid-tick), cancels every attempt and completes once they are
//! recorded.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::Runtime;
use super::completer::AttemptsEnded;
use super::executor::{Abandon, Cancel, JobShared};
use super::heartbeat::{Heartbeat, LeaseBook, LeaseLost, LeasesLost, StopHeartbeat};
use super::tick::{JobState, JobTick, Running, TickEnv, TickReport, tick_job};
use crate::error::{Error, Result};
use crate::spec::JobSpec;
use crate::telemetry;

/// Shortest sleep between ticks of a job, so a boundary just passing does not spin.
const MIN_TICK_GAP: Duration = Duration::from_millis(5);

type TickReply = oneshot::Sender<Result<TickReport>>;

/// One job's timer and tick state.
pub(super) struct JobSlot {
    /// The job, kept here too while its state is lent to a running tick.
    shared: Arc<JobShared>,
    /// Removed from the scheduler: it never ticks again (its attempts finish or were cancelled).
    retired: bool,
    /// The job's state; `None` while its tick runs (the tick owns it).
    state: Option<JobState>,
    /// The armed next tick and when it fires.
    timer: Option<(SpawnHandle, Instant)>,
    /// An earlier wake-up asked for while the tick ran (a retry came due).
    wake_by: Option<Instant>,
    /// Transient database failures in a row, for the backoff.
    db_failures: u32,
    /// Manual ticks waiting for this job's next tick.
    waiting: Vec<TickReply>,
    /// Its last tick left due plans waiting for a running attempt of the job to end (overlap
    /// policy, concurrency limit): it ticks again as soon as one of this runner's attempts ends.
    held_back: bool,
}

/// Arms ticks, supervises executors.
pub(crate) struct Supervisor {
    rt: Arc<Runtime>,
    /// Its own address, which the Heartbeats of jobs added later report lost leases to.
    me: Addr<Supervisor>,
    jobs: Vec<JobSlot>,
    /// Job index by name, for wake-ups reported by name.
    index: HashMap<Arc<str>, usize>,
    heartbeats: Vec<Addr<Heartbeat>>,
    /// Shared with the ticks, which add every Executor they start.
    running: Running,
    free: Rc<Cell<usize>>,
    stopping: Rc<Cell<bool>>,
    max_concurrent: usize,
    tick_interval: Duration,
    auto_tick: bool,
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
        let mut supervisor = Supervisor {
            rt,
            me,
            jobs: Vec::with_capacity(jobs.len()),
            index: HashMap::with_capacity(jobs.len()),
            heartbeats: Vec::with_capacity(jobs.len()),
            running: Running::default(),
            free: Rc::new(Cell::new(max_concurrent)),
            stopping: Rc::new(Cell::new(false)),
            max_concurrent,
            tick_interval,
            auto_tick,
            draining: None,
        };
        for spec in jobs {
            supervisor.add_slot(spec);
        }
        supervisor
    }

    /// Adds a job: its Heartbeat, its slot and its index entry. Returns the slot's index.
    pub(super) fn add_slot(&mut self, spec: Arc<JobSpec>) -> usize {
        let leases = Arc::new(LeaseBook::default());
        let heartbeat = Heartbeat::new(
            self.rt.store.clone(),
            spec.name.clone(),
            spec.heartbeat_interval,
            spec.stale_timeout,
            leases.clone(),
            self.me.clone().recipient(),
        )
        .start();
        self.heartbeats.push(heartbeat.clone());
        let i = self.jobs.len();
        self.index.insert(spec.name.clone(), i);
        let shared = Arc::new(JobShared {
            spec,
            heartbeat,
            leases,
            last_success: AtomicI64::new(i64::MIN),
        });
        self.jobs.push(JobSlot {
            shared: shared.clone(),
            retired: false,
            state: Some(JobState {
                shared,
                newest: None,
                held: Vec::new(),
                last_walk: crate::plan::LastWalk::default(),
                sharing: crate::plan::Sharing::default(),
            }),
            timer: None,
            wake_by: None,
            db_failures: 0,
            waiting: Vec::new(),
            held_back: false,
        });
        i
    }

    /// The runner's retry policy, for jobs added later.
    pub(super) fn retry_policy(&self) -> &Addr<super::retry_policy::RetryPolicy> {
        &self.rt.retry_policy
    }

    /// A job added later with a shorter heartbeat interval shortens the outage that closes
    /// takeovers (`takeover.rs`).
    pub(super) fn lower_takeover_threshold(&self, heartbeat_interval: Duration) {
        self.rt.takeover.lower_threshold(heartbeat_interval);
    }

    /// Whether a job of this name is registered (and not removed).
    pub(super) fn has_job(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Starts a job added while running: its first tick now (when ticking by itself).
    pub(super) fn start_slot(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.auto_tick {
            self.tick(i, ctx);
        }
    }

    /// Removes job `name`: it never ticks again; with `cancel`, its running attempts are
    /// cancelled (recorded `canceled`, retry-eligible), else they finish. Returns whether it was
    /// registered.
    pub(super) fn retire_slot(
        &mut self,
        name: &str,
        cancel: bool,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(i) = self.index.remove(name) else {
            return false;
        };
        let slot = &mut self.jobs[i];
        slot.retired = true;
        slot.state = None;
        if let Some((handle, _)) = slot.timer.take() {
            ctx.cancel_future(handle);
        }
        for reply in slot.waiting.drain(..) {
            let _ = reply.send(Err(Error::NotRunning));
        }
        if cancel {
            let running = self.running.borrow();
            for lease in slot.shared.leases.held() {
                if let Some(executor) = running.get(&lease) {
                    executor.do_send(Cancel {
                        grace: self.rt.shutdown_grace,
                    });
                }
            }
        }
        true
    }
}

impl Supervisor {
    fn env(&self) -> TickEnv {
        TickEnv {
            rt: self.rt.clone(),
            free: self.free.clone(),
            stopping: self.stopping.clone(),
            running: self.running.clone(),
            tick_interval: self.tick_interval,
            share_scopes: self.auto_tick,
        }
    }

    fn ticking(&self) -> bool {
        self.jobs
            .iter()
            .any(|job| job.state.is_none() && !job.retired)
    }

    /// Starts job `i`'s tick unless it is running (then the waiting callers get the next one).
    fn tick(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.draining.is_some() {
            return;
        }
        let slot = &mut self.jobs[i];
        if slot.retired {
            return;
        }
        let Some(mut state) = slot.state.take() else {
            return;
        };
        if let Some((handle, _)) = slot.timer.take() {
            ctx.cancel_future(handle);
        }
        let waiting = std::mem::take(&mut slot.waiting);
        let env = self.env();
        let work = async move {
            let outcome = tick_job(env, &mut state).await;
            (state, outcome)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |(state, outcome), act, ctx| {
                    if act.jobs[i].retired {
                        // Removed while this tick ran: its callers were answered then.
                        drop(state);
                        if act.draining.is_some() {
                            act.drain_if_done(ctx);
                        }
                        return;
                    }
                    act.jobs[i].state = Some(state);
                    let report = act.settle_tick(i, outcome, ctx);
                    for reply in waiting {
                        let _ = reply.send(clone_report(&report));
                    }
                    if act.draining.is_some() {
                        act.drain_if_done(ctx);
                    } else if !act.jobs[i].waiting.is_empty() {
                        act.tick(i, ctx);
                    }
                }),
        );
    }

    /// Arms job `i`'s next tick from what its tick found; returns the tick's report.
    fn settle_tick(
        &mut self,
        i: usize,
        outcome: Result<JobTick>,
        ctx: &mut Context<Self>,
    ) -> Result<TickReport> {
        let slot = &mut self.jobs[i];
        let (wait, report) = match outcome {
            Ok(tick) if tick.db_trouble => {
                slot.db_failures += 1;
                (self.rt.db_retry.delay(slot.db_failures), Ok(tick.report))
            }
            Ok(tick) => {
                slot.db_failures = 0;
                slot.held_back = tick.held_back;
                // Wake-up times were computed from the clock read at the tick's start. Plans left
                // for want of slots come back at once if slots freed meanwhile (another job's
                // claim gave back what its conflicts did not use).
                let slots_back = tick.report.deferred > 0 && self.free.get() > 0;
                let wait = if tick.more_due || slots_back {
                    Duration::ZERO
                } else {
                    tick.wake_in.saturating_sub(tick.clock_read_at.elapsed())
                };
                (wait, Ok(tick.report))
            }
            Err(error) => {
                super::note_db_error("tick", &error);
                slot.db_failures += 1;
                (self.rt.db_retry.delay(slot.db_failures), Err(error))
            }
        };
        let mut at = Instant::now() + wait.min(self.tick_interval);
        if let Some(asked) = self.jobs[i].wake_by.take() {
            at = at.min(asked);
        }
        self.arm(i, at, ctx);
        report
    }

    /// Arms job `i`'s tick for `at`, unless it is already armed for earlier. A job whose tick is
    /// running remembers the time and arms it when the tick ends.
    fn arm(&mut self, i: usize, at: Instant, ctx: &mut Context<Self>) {
        if !self.auto_tick || self.draining.is_some() {
            return;
        }
        let slot = &mut self.jobs[i];
        if slot.retired {
            return;
        }
        if slot.state.is_none() {
            slot.wake_by = Some(slot.wake_by.map_or(at, |w| w.min(at)));
            return;
        }
        if let Some((handle, armed_at)) = slot.timer {
            if armed_at <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = at
            .saturating_duration_since(Instant::now())
            .max(MIN_TICK_GAP);
        let handle = ctx.run_later(wait, move |act, ctx| {
            act.jobs[i].timer = None;
            act.tick(i, ctx);
        });
        slot.timer = Some((handle, Instant::now() + wait));
    }

    /// Arms every job's tick now (slots opened up, an operator replayed something).
    fn wake_all(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for i in 0..self.jobs.len() {
            self.arm(i, now, ctx);
        }
    }

    /// Completes the shutdown once no attempt runs and no tick is in flight.
    fn drain_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.running.borrow().is_empty() && !self.ticking() {
            self.complete_drain(ctx);
        }
    }

    /// Answers every shutdown caller and stops.
    fn complete_drain(&mut self, ctx: &mut Context<Self>) {
        for heartbeat in &self.heartbeats {
            heartbeat.do_send(StopHeartbeat);
        }
        for waiter in self.draining.iter_mut().flat_map(|w| w.drain(..)) {
            let _ = waiter.send(());
        }
        for job in &mut self.jobs {
            for reply in job.waiting.drain(..) {
                let _ = reply.send(Err(Error::NotRunning));
            }
        }
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.auto_tick {
            for i in 0..self.jobs.len() {
                self.tick(i, ctx);
            }
        }
    }
}

/// A report for every caller waiting on one tick (`Error` is not `Clone`).
fn clone_report(report: &Result<TickReport>) -> Result<TickReport> {
    match report {
        Ok(report) => Ok(report.clone()),
        Err(error) => Err(Error::TickFailed(error.to_string())),
    }
}

/// Runs a tick of every job now and returns their summed report (a job whose tick is running
/// is ticked again after it).
#[derive(Message)]
#[rtype(result = "Result<TickReport>")]
pub(crate) struct TickNow;

impl Handler<TickNow> for Supervisor {
    type Result = ResponseFuture<Result<TickReport>>;

    fn handle(&mut self, _: TickNow, ctx: &mut Context<Self>) -> Self::Result {
        if self.draining.is_some() {
            return Box::pin(async { Err(Error::NotRunning) });
        }
        if self.index.is_empty() {
            let store = self.rt.store.clone();
            return Box::pin(async move {
                let db_now = store.db_now().await?;
                Ok(TickReport {
                    db_now,
                    ..TickReport::default()
                })
            });
        }
        let mut replies = Vec::with_capacity(self.jobs.len());
        for i in 0..self.jobs.len() {
            if self.jobs[i].retired {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            self.jobs[i].waiting.push(tx);
            replies.push(rx);
            self.tick(i, ctx);
        }
        Box::pin(async move {
            let mut merged: Option<TickReport> = None;
            let mut first_error = None;
            for reply in join_all(replies).await {
                match reply.unwrap_or(Err(Error::NotRunning)) {
                    Ok(report) => merged
                        .get_or_insert_with(TickReport::default)
                        .absorb(&report),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            match (merged, first_error) {
                (Some(mut report), Some(_)) => {
                    report.job_errors += 1;
                    Ok(report)
                }
                (Some(report), None) => Ok(report),
                (None, Some(error)) => Err(error),
                (None, None) => Err(Error::NotRunning),
            }
        })
    }
}

impl Handler<AttemptsEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AttemptsEnded, ctx: &mut Context<Self>) {
        let was_full = self.free.get() == 0;
        let mut running = self.running.borrow_mut();
        for lease in msg.leases {
            if running.remove(&lease).is_some() {
                self.free
                    .set((self.free.get() + 1).min(self.max_concurrent));
            }
        }
        telemetry::running(running.len());
        drop(running);
        if self.draining.is_some() {
            self.drain_if_done(ctx);
            return;
        }
        // A failed attempt with a retry ahead: wake its job when the retry comes due.
        let now = Instant::now();
        for (job, retry_in) in msg.retries {
            if let Some(&i) = self.index.get(&job) {
                self.arm(i, now + retry_in + Duration::from_millis(1), ctx);
            }
        }
        // A slot opened after the slots ran out: plans may be waiting for it.
        if was_full && self.free.get() > 0 {
            self.wake_all(ctx);
        } else {
            // Plans waiting for a running attempt of their job (a busy scope, the job's limit)
            // may start now that one ended.
            for i in 0..self.jobs.len() {
                if self.jobs[i].held_back {
                    self.arm(i, now, ctx);
                }
            }
        }
    }
}

/// Tells each Executor whose lease the Heartbeat found taken over.
impl Handler<LeasesLost> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: LeasesLost, _: &mut Context<Self>) {
        for lease in msg.leases {
            if let Some(executor) = self.running.borrow().get(&lease) {
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
        self.running.borrow().len()
    }
}

/// Stops ticking and claiming, cancels running attempts and completes when they are recorded
/// (or abandoned after the deadline).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.stopping.set(true);
        for job in &mut self.jobs {
            if let Some((handle, _)) = job.timer.take() {
                ctx.cancel_future(handle);
            }
        }
        let first = self.draining.is_none();
        self.draining.get_or_insert_with(Vec::new).push(tx);
        if first {
            let grace = self.rt.shutdown_grace;
            tracing::info!(running = self.running.borrow().len(), grace = ?grace, "shutting down");
            for executor in self.running.borrow().values() {
                executor.do_send(Cancel { grace });
            }
            // Writes of canceled attempts get a little longer than the grace; then give up.
            let deadline = grace + grace.max(Duration::from_secs(5));
            ctx.run_later(deadline, |act, ctx| {
                for (_, executor) in act.running.borrow_mut().drain() {
                    executor.do_send(Abandon);
                }
                act.complete_drain(ctx);
            });
            self.drain_if_done(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Asks every job to tick soon, e.g. after an operator replayed executions. Ignored when the
/// scheduler does not tick by itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

impl Handler<Wake> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.wake_all(ctx);
    }
}
