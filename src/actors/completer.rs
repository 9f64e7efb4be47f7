//! The Completer actor: records the outcomes of ended attempts in batches and reports them ended.
//!
//! An Executor hands over its attempt's outcome (`Record`) and stops; from then on the Completer
//! owns it. It gathers fenced terminal writes and flushes them as one statement for successes and
//! one for failures, when `max_batch` writes are waiting or `linger` after the first one,
//! whichever comes first. Each kind has at most one statement in flight: writes that arrive
//! meanwhile wait for it and go out together as soon as it returns (group commit), so the batch
//! grows with the database's latency instead of the statements queueing up behind each other,
//! each committing a few rows. A flush that fails transiently is retried with the database
//! backoff (the job's Heartbeat keeps the leases alive meanwhile, as they stay in its book). Once
//! a batch's statement returned and the next batch is on its way, it counts and logs each outcome
//! (written, or fenced out because the lease was lost), takes the leases out of their job's book
//! and tells the Supervisor, in one message, which attempts ended, so their execution slots free
//! up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::executor::JobShared;
use super::{db_task, retry_transient};
use crate::error::Result;
use crate::execution::{ErrorCode, Status};
use crate::retry::DbRetry;
use crate::store::{FailureWrite, Lease, Store, SuccessWrite};
use crate::telemetry;

/// Most writes per statement.
pub(crate) const MAX_BATCH: usize = 2000;
/// How long the first waiting write waits for company.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

/// A store method writing a batch and returning the ids it wrote.
type WriteFn<W> = for<'a> fn(&'a dyn Store, &'a [W]) -> BoxFuture<'a, Result<Vec<Uuid>>>;

/// Batches terminal writes.
pub(crate) struct Completer {
    store: Arc<dyn Store>,
    db_retry: DbRetry,
    /// Told which attempts ended (the Supervisor).
    ended_to: Recipient<AttemptsEnded>,
    successes: Batch<SuccessWrite>,
    failures: Batch<FailureWrite>,
    flush_armed: Option<SpawnHandle>,
}

/// Writes waiting for a flush, each with what to report once it is settled, and whether a
/// statement of this kind is in flight.
struct Batch<W> {
    writes: Vec<W>,
    ended: Vec<Ended>,
    in_flight: bool,
}

impl<W> Default for Batch<W> {
    fn default() -> Self {
        Batch {
            writes: Vec::new(),
            ended: Vec::new(),
            in_flight: false,
        }
    }
}

impl<W> Batch<W> {
    /// The oldest `MAX_BATCH` waiting writes, to send now, unless a statement of this kind is
    /// in flight (they go out when it settles).
    fn take_sendable(&mut self) -> Option<(Vec<W>, Vec<Ended>)> {
        if self.in_flight || self.writes.is_empty() {
            return None;
        }
        self.in_flight = true;
        let n = self.writes.len().min(MAX_BATCH);
        if n == self.writes.len() {
            return Some((
                std::mem::take(&mut self.writes),
                std::mem::take(&mut self.ended),
            ));
        }
        Some((
            self.writes.drain(..n).collect(),
            self.ended.drain(..n).collect(),
        ))
    }
}

/// Which of the Completer's two batches.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Success,
    Failure,
}

/// An attempt whose outcome is being recorded.
struct Ended {
    job: Arc<JobShared>,
    lease: Lease,
    plan_time: DateTime<Utc>,
    attempt: u32,
    /// How long the handler ran.
    ran: Duration,
    /// `None` for a success.
    failure: Option<FailureNote>,
}

/// What the log and metrics say about a recorded failure.
struct FailureNote {
    status: Status,
    code: ErrorCode,
    message: String,
    /// When the retry comes due, counted from the write (FAILED rows).
    retry_in: Option<Duration>,
}

impl Completer {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        db_retry: DbRetry,
        ended_to: Recipient<AttemptsEnded>,
    ) -> Self {
        Completer {
            store,
            db_retry,
            ended_to,
            successes: Batch::default(),
            failures: Batch::default(),
            flush_armed: None,
        }
    }

    fn waiting(&self) -> usize {
        self.successes.writes.len() + self.failures.writes.len()
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.flush_armed.take() {
            ctx.cancel_future(handle);
        }
        self.send(Kind::Success, ctx);
        self.send(Kind::Failure, ctx);
    }

    /// Sends the waiting writes of one kind, unless one of its statements is in flight.
    fn send(&mut self, kind: Kind, ctx: &mut Context<Self>) {
        match kind {
            Kind::Success => {
                if let Some(batch) = self.successes.take_sendable() {
                    self.write_batch(ctx, kind, batch, "execution_finish_success", |store, w| {
                        store.execution_finish_success(w)
                    });
                }
            }
            Kind::Failure => {
                if let Some(batch) = self.failures.take_sendable() {
                    self.write_batch(ctx, kind, batch, "execution_finish_failure", |store, w| {
                        store.execution_finish_failure(w)
                    });
                }
            }
        }
    }

    /// Writes one batch with `write` (retried while the database fails transiently), sends what
    /// waited for it, then settles every attempt in it.
    fn write_batch<W: Send + Sync + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        kind: Kind,
        (writes, ended): (Vec<W>, Vec<Ended>),
        operation: &'static str,
        write: WriteFn<W>,
    ) {
        let (store, policy, ended_to) = (self.store.clone(), self.db_retry, self.ended_to.clone());
        let writes = Arc::new(writes);
        ctx.spawn(
            db_task(async move {
                retry_transient(policy, operation, policy.give_up_after, || {
                    let (store, writes) = (store.clone(), writes.clone());
                    async move { write(&*store, &writes).await }
                })
                .await
            })
            .into_actor(self)
            .map(move |written, act, ctx| {
                match kind {
                    Kind::Success => act.successes.in_flight = false,
                    Kind::Failure => act.failures.in_flight = false,
                }
                // What arrived meanwhile goes out now: it waited for this statement, which the
                // database has just shown it can take, so a linger would only add latency. It
                // goes before this batch is settled, so the database does not wait for that.
                act.send(kind, ctx);
                settle(ended, written, &ended_to);
            }),
        );
    }
}

/// Counts and logs each outcome, takes the leases out of their books and reports them ended.
fn settle(ended: Vec<Ended>, written: Result<Vec<Uuid>>, ended_to: &Recipient<AttemptsEnded>) {
    // Every write of the batch landed (the usual case): no need to look each one up.
    let all_written = matches!(&written, Ok(ids) if ids.len() == ended.len());
    let written = written.map(|ids| {
        if all_written {
            HashSet::default()
        } else {
            ids.into_iter().collect::<HashSet<Uuid>>()
        }
    });
    let mut leases = Vec::with_capacity(ended.len());
    let mut retries: HashMap<Arc<str>, Duration> = HashMap::new();
    let mut run: Option<JobRun> = None;
    for attempt in ended {
        let run = match &mut run {
            Some(run) if Arc::ptr_eq(&run.job, &attempt.job) => run,
            _ => {
                if let Some(done) = run.take() {
                    done.record();
                }
                run.insert(JobRun::new(&attempt.job))
            }
        };
        run.durations.record(attempt.ran.as_secs_f64());
        match &written {
            Ok(written) if all_written || written.contains(&attempt.lease.id) => {
                match &attempt.failure {
                    None => run.succeeded(&attempt),
                    Some(failure) => {
                        attempt.note_failure_written(failure);
                        if let Some(retry_in) = failure.retry_in {
                            let job = attempt.job.spec.name.clone();
                            let soonest = retries.entry(job).or_insert(retry_in);
                            *soonest = (*soonest).min(retry_in);
                        }
                    }
                }
            }
            Ok(_) => attempt.note_fenced_out(),
            Err(error) => {
                tracing::error!(%error, job = %attempt.job.spec.name, execution = %attempt.lease.id, "could not record the outcome; the lease will go stale and the plan re-run");
            }
        }
        attempt.job.leases.untrack(attempt.lease);
        leases.push(attempt.lease);
    }
    if let Some(done) = run {
        done.record();
    }
    ended_to.do_send(AttemptsEnded {
        leases,
        retries: retries.into_iter().collect(),
    });
}

/// The metrics of consecutive attempts of one job in a settled batch, recorded once for all of
/// them: registering a metric builds and hashes its labels, which cost more than the count.
struct JobRun {
    job: Arc<JobShared>,
    durations: metrics::Histogram,
    successes: u64,
    newest_success: Option<DateTime<Utc>>,
}

impl JobRun {
    fn new(job: &Arc<JobShared>) -> Self {
        JobRun {
            job: job.clone(),
            durations: telemetry::handler_durations(&job.spec.name),
            successes: 0,
            newest_success: None,
        }
    }

    fn succeeded(&mut self, attempt: &Ended) {
        self.successes += 1;
        self.newest_success = self.newest_success.max(Some(attempt.plan_time));
        tracing::debug!(job = %self.job.spec.name, execution = %attempt.lease.id, "execution succeeded");
    }

    fn record(self) {
        let job = &self.job.spec.name;
        if let Some(newest) = self.newest_success {
            telemetry::executions(job, "success", "", self.successes);
            telemetry::last_success(job, &self.job.last_success, newest);
        }
    }
}

impl Ended {
    fn note_failure_written(&self, failure: &FailureNote) {
        let job = &self.job.spec.name;
        let id = self.lease.id;
        let (code, attempt, message) = (failure.code.as_str(), self.attempt, &failure.message);
        if failure.status == Status::Dead {
            telemetry::execution(job, "dead", code);
            telemetry::dead_lettered(job);
            tracing::error!(job = %job, execution = %id, attempt, code, error = %message, "execution dead-lettered");
        } else {
            telemetry::execution(job, "failed", code);
            if failure.code != ErrorCode::Canceled {
                telemetry::retry(job, attempt);
            }
            tracing::warn!(job = %job, execution = %id, attempt, code, error = %message, "execution failed; will retry");
        }
    }

    fn note_fenced_out(&self) {
        let job = &self.job.spec.name;
        telemetry::lease_lost(job);
        telemetry::execution(job, "lease_lost", ErrorCode::LeaseLost.as_str());
        tracing::warn!(job = %job, execution = %self.lease.id, "terminal write fenced out: the lease was lost");
    }
}

impl Actor for Completer {
    type Context = Context<Self>;
}

/// An ended attempt, handed over by its Executor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Record {
    pub(crate) job: Arc<JobShared>,
    /// The plan's time, for the last-success gauge.
    pub(crate) plan_time: DateTime<Utc>,
    pub(crate) attempt: u32,
    /// How long the handler ran, for the handler-duration histogram.
    pub(crate) ran: Duration,
    pub(crate) outcome: Outcome,
}

/// What to record.
pub(crate) enum Outcome {
    Success(SuccessWrite),
    Failure(FailureWrite, ErrorCode),
    /// Nothing: the lease was lost, the new owner decides.
    Discarded(Lease),
}

impl Handler<Record> for Completer {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        let Record {
            job,
            plan_time,
            attempt,
            ran,
            outcome,
        } = msg;
        match outcome {
            Outcome::Success(write) => {
                self.successes.ended.push(Ended {
                    job,
                    lease: write.lease,
                    plan_time,
                    attempt,
                    ran,
                    failure: None,
                });
                self.successes.writes.push(write);
            }
            Outcome::Failure(write, code) => {
                self.failures.ended.push(Ended {
                    job,
                    lease: write.lease,
                    plan_time,
                    attempt,
                    ran,
                    failure: Some(FailureNote {
                        status: write.status,
                        code,
                        message: write.message.clone(),
                        retry_in: write.retry_in.filter(|_| write.status == Status::Failed),
                    }),
                });
                self.failures.writes.push(write);
            }
            Outcome::Discarded(lease) => {
                telemetry::handler_durations(&job.spec.name).record(ran.as_secs_f64());
                job.leases.untrack(lease);
                self.ended_to.do_send(AttemptsEnded {
                    leases: vec![lease],
                    retries: Vec::new(),
                });
                return;
            }
        }
        if self.waiting() >= MAX_BATCH {
            self.flush(ctx);
        } else if self.flush_armed.is_none() {
            self.flush_armed = Some(ctx.run_later(LINGER, |act, ctx| {
                act.flush_armed = None;
                act.flush(ctx);
            }));
        }
    }
}

/// Sent to the Supervisor: these attempts ended (recorded, fenced out, discarded or given up on).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AttemptsEnded {
    pub(crate) leases: Vec<Lease>,
    /// Per job, how soon the earliest retry of these attempts comes due: the job's next tick
    /// is armed for then.
    pub(crate) retries: Vec<(Arc<str>, Duration)>,
}
