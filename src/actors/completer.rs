//! The Completer actor: records the outcomes of ended attempts in batches and reports them ended.
//!
//! An Executor hands over its attempt's outcome (`Record`) and stops; from then on the Completer
//! owns it. It gathers fenced terminal writes and flushes them as one statement for successes and
//! one for failures, when `max_batch` writes are waiting or `linger` after the first one,
//! whichever comes first. A flush that fails transiently is retried with the database backoff
//! (the job's Heartbeat keeps the leases alive meanwhile, as they stay in its book). Once a batch
//! is settled it counts and logs each outcome (written, or fenced out because the lease was
//! lost), takes the leases out of their job's book and tells the Supervisor, in one message, which
//! attempts ended, so their execution slots free up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::executor::JobShared;
use super::retry_transient;
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

/// Writes waiting for a flush, each with what to report once it is settled.
struct Batch<W> {
    writes: Vec<W>,
    ended: Vec<Ended>,
}

impl<W> Default for Batch<W> {
    fn default() -> Self {
        Batch {
            writes: Vec::new(),
            ended: Vec::new(),
        }
    }
}

/// An attempt whose outcome is being recorded.
struct Ended {
    job: Arc<JobShared>,
    lease: Lease,
    plan_time: DateTime<Utc>,
    attempt: u32,
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
        let successes = std::mem::take(&mut self.successes);
        self.write_batch(
            ctx,
            successes,
            "execution_finish_success",
            |store, writes| store.execution_finish_success(writes),
        );
        let failures = std::mem::take(&mut self.failures);
        self.write_batch(
            ctx,
            failures,
            "execution_finish_failure",
            |store, writes| store.execution_finish_failure(writes),
        );
    }

    /// Writes one batch with `write` (retried while the database fails transiently), then
    /// settles every attempt in it.
    fn write_batch<W: Send + Sync + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        batch: Batch<W>,
        operation: &'static str,
        write: WriteFn<W>,
    ) {
        if batch.writes.is_empty() {
            return;
        }
        let (store, policy, ended_to) = (self.store.clone(), self.db_retry, self.ended_to.clone());
        let Batch { writes, ended } = batch;
        let writes = Arc::new(writes);
        ctx.spawn(
            async move {
                let written = retry_transient(policy, operation, policy.give_up_after, || {
                    let (store, writes) = (store.clone(), writes.clone());
                    async move { write(&*store, &writes).await }
                })
                .await;
                settle(ended, written, &ended_to);
            }
            .into_actor(self),
        );
    }
}

/// Counts and logs each outcome, takes the leases out of their books and reports them ended.
fn settle(ended: Vec<Ended>, written: Result<Vec<Uuid>>, ended_to: &Recipient<AttemptsEnded>) {
    let written = written.map(|ids| ids.into_iter().collect::<HashSet<Uuid>>());
    let mut leases = Vec::with_capacity(ended.len());
    let mut retries: HashMap<Arc<str>, Duration> = HashMap::new();
    for attempt in ended {
        match &written {
            Ok(written) if written.contains(&attempt.lease.id) => {
                attempt.note_written();
                if let Some(retry_in) = attempt.failure.as_ref().and_then(|f| f.retry_in) {
                    let job = attempt.job.spec.name.clone();
                    let soonest = retries.entry(job).or_insert(retry_in);
                    *soonest = (*soonest).min(retry_in);
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
    ended_to.do_send(AttemptsEnded {
        leases,
        retries: retries.into_iter().collect(),
    });
}

impl Ended {
    fn note_written(&self) {
        let job = &self.job.spec.name;
        let id = self.lease.id;
        let Some(failure) = &self.failure else {
            telemetry::execution(job, "success", "");
            telemetry::last_success(job, &self.job.last_success, self.plan_time);
            tracing::debug!(job = %job, execution = %id, "execution succeeded");
            return;
        };
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
            outcome,
        } = msg;
        match outcome {
            Outcome::Success(write) => {
                self.successes.ended.push(Ended {
                    job,
                    lease: write.lease,
                    plan_time,
                    attempt,
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
