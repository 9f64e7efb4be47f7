//! The Executor actor: owns one claimed lease from handler start until it hands the outcome over.
//!
//! Lifecycle:
//! 1. `started`: spawns the handler on the handler runtime, bounded by `run_timeout`; a panic
//!    while building or polling the future becomes a `handler_panic` failure. The Supervisor has
//!    already put the lease in the job's book, so the job's Heartbeat renews it. Cancellation is
//!    cooperative: the handler's token fires, and the task is dropped after a grace (one
//!    heartbeat interval after LeaseLost, the shutdown grace at shutdown).
//! 2. The attempt ends: success, error, panic, timeout, or cancellation (`LeaseLost` from the
//!    Supervisor on the Heartbeat's word, `Cancel` from the Supervisor at shutdown).
//! 3. Failures first ask the RetryPolicy for a retry time or DEAD. Then the Executor hands the
//!    outcome to the Completer (`Record`), which writes it (batched, fenced by the lease token,
//!    retried while the database fails transiently), keeps the lease booked until then and
//!    reports the attempt ended to the Supervisor. After LeaseLost nothing is written: the new
//!    owner decides.
//! 4. It stops.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;
use tokio::task::{AbortHandle, JoinError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::Runtime;
use super::completer::{Outcome, Record};
use super::heartbeat::{BeatNow, Heartbeat, LeaseBook, LeaseLost};
use super::retry_policy::Decide;
use crate::execution::{ErrorCode, Status, capped_result, truncate_error_msg};
use crate::handler::{AttemptLink, JobContext, JobError, JobOutput};
use crate::retry::RetryDecision;
use crate::scope::Scope;
use crate::spec::JobSpec;
use crate::store::{Claimed, FailureWrite, SuccessWrite};
use crate::telemetry;

/// What every Executor of one job shares, behind one `Arc` per job (cloning an actor address
/// allocates; an execution should not have to).
pub(crate) struct JobShared {
    pub(crate) spec: Arc<JobSpec>,
    /// Renews the job's running leases; handlers reach it for manual heartbeats.
    pub(crate) heartbeat: Addr<Heartbeat>,
    /// The job's running leases.
    pub(crate) leases: Arc<LeaseBook>,
    /// The newest plan time (Unix milliseconds) whose success this runner recorded, so the
    /// last-success gauge never moves back when an old plan succeeds late.
    pub(crate) last_success: AtomicI64,
}

impl AttemptLink for JobShared {
    fn job(&self) -> &str {
        &self.spec.name
    }

    fn beat_now(&self, id: Uuid) -> BoxFuture<'static, Result<(), String>> {
        let heartbeat = self.heartbeat.clone();
        Box::pin(async move {
            match heartbeat.send(BeatNow { id }).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(lost)) => Err(lost.to_string()),
                Err(_) => Err("the heartbeat has stopped".to_owned()),
            }
        })
    }
}

/// Runs one attempt of one plan.
pub(crate) struct Executor {
    rt: Arc<Runtime>,
    job: Arc<JobShared>,
    claimed: Claimed,
    cancel: CancellationToken,
    cancel_reason: Option<ErrorCode>,
    handler_task: Option<AbortHandle>,
    started: Instant,
    /// How long the attempt ran, once it ended.
    ran: Duration,
    finishing: bool,
    /// Claimed while the runner began shutting down: record `canceled` without running.
    cancelled_at_start: bool,
}

/// How the handler's attempt ended.
#[derive(Debug)]
enum Attempt {
    Succeeded(JobOutput),
    Failed(JobError),
    Panicked(String),
    TimedOut,
    Cancelled,
}

impl Executor {
    /// `cancelled_at_start`: the lease was claimed as shutdown began; hand it back unrun.
    pub(crate) fn new(
        rt: Arc<Runtime>,
        job: Arc<JobShared>,
        claimed: Claimed,
        cancelled_at_start: bool,
    ) -> Self {
        Executor {
            rt,
            job,
            claimed,
            cancel: CancellationToken::new(),
            cancel_reason: None,
            handler_task: None,
            started: Instant::now(),
            ran: Duration::ZERO,
            finishing: false,
            cancelled_at_start,
        }
    }

    /// How long past `run_timeout` a handler that ignores its timeout is waited for.
    fn grace(&self) -> Duration {
        self.job.spec.heartbeat_interval
    }

    fn start_handler(&mut self, ctx: &mut Context<Self>) {
        let spec = &self.job.spec;
        let claimed = &mut self.claimed;
        // The span below is the last reader of the scope here: the handler's context takes it.
        let span = telemetry::execution_span(
            &spec.name,
            &claimed.scope,
            claimed.plan_time,
            claimed.lease.id,
            claimed.attempt,
            &self.rt.runner_id,
        );
        let scope = &mut claimed.scope;
        let job_ctx = JobContext {
            scope: Scope::new(
                std::mem::take(&mut scope.kind),
                std::mem::take(&mut scope.id),
            ),
            plan_time: claimed.plan_time,
            attempt: claimed.attempt,
            max_attempts: claimed.max_attempts,
            runner_id: self.rt.runner_id.clone(),
            execution_id: claimed.lease.id,
            cancel: self.cancel.clone(),
            link: self.job.clone(),
        };
        let handler = spec.handler.clone();
        let run_timeout = spec.run_timeout;
        let task = self.rt.handlers.spawn(
            async move {
                // Built inside the task, so a panic while building is caught like one while
                // polling. Cancellation is cooperative: the handler sees the token; the
                // executor drops the task when the cancellation grace runs out.
                let (attempt, outcome) =
                    match tokio::time::timeout(run_timeout, handler.run(job_ctx)).await {
                        Ok(Ok(output)) => (Attempt::Succeeded(output), "success"),
                        Ok(Err(error)) => (Attempt::Failed(error), "error"),
                        Err(_) => (Attempt::TimedOut, "timeout"),
                    };
                tracing::Span::current().record("outcome", outcome);
                attempt
            }
            .instrument(span),
        );
        self.handler_task = Some(task.abort_handle());
        // A handler that blocks its thread never reaches the timeout above: bound it here too.
        let hard_limit = run_timeout + self.grace();
        ctx.spawn(
            async move {
                match actix_rt::time::timeout(hard_limit, task).await {
                    Ok(Ok(attempt)) => attempt,
                    Ok(Err(join_error)) => from_join_error(join_error),
                    Err(_) => Attempt::TimedOut,
                }
            }
            .into_actor(self)
            .map(|attempt, act, ctx| act.finish(attempt, ctx)),
        );
    }

    /// Settles the attempt once: hands its outcome to the Completer and stops.
    fn finish(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        if let Some(task) = self.handler_task.take() {
            task.abort();
        }
        let duration = self.started.elapsed();
        self.ran = duration;
        let job = self.job.spec.name.clone();
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let lease = self.claimed.lease;
        let attempt = match (self.cancel_reason, attempt) {
            (Some(ErrorCode::LeaseLost), _) => {
                telemetry::lease_lost(&job);
                telemetry::execution(&job, "lease_lost", ErrorCode::LeaseLost.as_str());
                tracing::warn!(job = %job, execution = %lease.id, "lease lost: another runner owns this plan; the attempt's outcome is discarded");
                return self.hand_over(Outcome::Discarded(lease), ctx);
            }
            // Shutdown: an attempt that finished within the grace keeps its success; anything
            // else was interrupted.
            (Some(ErrorCode::Canceled), Attempt::Succeeded(output)) => Attempt::Succeeded(output),
            (Some(ErrorCode::Canceled), _) => Attempt::Cancelled,
            (_, attempt) => attempt,
        };
        let (code, message, permanent) = match attempt {
            Attempt::Succeeded(output) => {
                let write = SuccessWrite {
                    lease,
                    duration_ms,
                    rows_affected: output.rows_affected,
                    result: capped_result(&output.result),
                };
                return self.hand_over(Outcome::Success(write), ctx);
            }
            Attempt::Failed(error) if error.is_permanent() => {
                (ErrorCode::Permanent, error.message().to_owned(), true)
            }
            Attempt::Failed(error) => (ErrorCode::HandlerError, error.message().to_owned(), false),
            Attempt::Panicked(message) => (ErrorCode::HandlerPanic, message, false),
            Attempt::TimedOut => (
                ErrorCode::RunTimeout,
                format!(
                    "the handler ran longer than run_timeout ({})",
                    humantime::format_duration(self.job.spec.run_timeout)
                ),
                false,
            ),
            Attempt::Cancelled => {
                let write = FailureWrite {
                    lease,
                    status: Status::Failed,
                    code: ErrorCode::Canceled.as_str().to_owned(),
                    message: "the runner shut down during the attempt".to_owned(),
                    retry_in: Some(Duration::ZERO),
                    extend_budget: true,
                    duration_ms,
                };
                return self.hand_over(Outcome::Failure(write, ErrorCode::Canceled), ctx);
            }
        };
        let decide = Decide {
            job: job.clone(),
            attempt: self.claimed.attempt,
            max_attempts: self.claimed.max_attempts,
            permanent,
        };
        let message = truncate_error_msg(&message).to_owned();
        ctx.wait(self.rt.retry_policy.send(decide).into_actor(self).map(
            move |decision, act, ctx| {
                // Without a RetryPolicy (it stopped) the row stays retryable: the sweep and
                // the attempt counter in the row keep the plan safe.
                let decision = decision.unwrap_or(RetryDecision::RetryIn(Duration::ZERO));
                let (status, retry_in) = match decision {
                    RetryDecision::RetryIn(delay) => (Status::Failed, Some(delay)),
                    RetryDecision::Dead => (Status::Dead, None),
                };
                let write = FailureWrite {
                    lease,
                    status,
                    code: code.as_str().to_owned(),
                    message,
                    retry_in,
                    extend_budget: false,
                    duration_ms,
                };
                act.hand_over(Outcome::Failure(write, code), ctx);
            },
        ));
    }

    /// The Completer records the outcome from here on (the lease stays booked until it has).
    fn hand_over(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        if !matches!(outcome, Outcome::Discarded(_)) {
            self.job.leases.hold_until_recorded(self.claimed.lease);
        }
        self.rt.completer.do_send(Record {
            job: self.job.clone(),
            plan_time: self.claimed.plan_time,
            attempt: self.claimed.attempt,
            ran: self.ran,
            outcome,
        });
        ctx.stop();
    }
}

/// A handler task that did not return: it panicked, or its runtime dropped it.
fn from_join_error(error: JoinError) -> Attempt {
    if error.is_panic() {
        let message = super::planning::panic_text(error.into_panic());
        Attempt::Panicked(format!("handler panicked: {message}"))
    } else {
        Attempt::Cancelled
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.cancelled_at_start {
            self.cancel_reason = Some(ErrorCode::Canceled);
            self.finish(Attempt::Cancelled, ctx);
        } else {
            self.start_handler(ctx);
        }
    }
}

impl Handler<LeaseLost> for Executor {
    type Result = ();

    fn handle(&mut self, _: LeaseLost, ctx: &mut Context<Self>) {
        if self.finishing {
            // The outcome is being written; the fenced write itself tells whether it counted.
            return;
        }
        self.cancel_reason = Some(ErrorCode::LeaseLost);
        self.cancel.cancel();
        // The handler gets one heartbeat interval to notice; then it is dropped.
        ctx.run_later(self.job.spec.heartbeat_interval, |act, ctx| {
            act.finish(Attempt::Cancelled, ctx)
        });
    }
}

/// Asks a running attempt to stop because the runner is shutting down. A handler that returns
/// success within `grace` is recorded as such; otherwise, after `grace` at the latest, the
/// attempt is recorded `canceled` (retry-eligible at once) and the handler dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Cancel {
    pub(crate) grace: Duration,
}

impl Handler<Cancel> for Executor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        self.cancel_reason.get_or_insert(ErrorCode::Canceled);
        self.cancel.cancel();
        ctx.run_later(msg.grace, |act, ctx| act.finish(Attempt::Cancelled, ctx));
    }
}

/// Stops at once without writing (shutdown deadline passed): the lease goes stale and the plan
/// is re-run by another runner.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Abandon;

impl Handler<Abandon> for Executor {
    type Result = ();

    fn handle(&mut self, _: Abandon, ctx: &mut Context<Self>) {
        if let Some(task) = self.handler_task.take() {
            task.abort();
        }
        self.job.leases.untrack(self.claimed.lease);
        tracing::warn!(job = %self.job.spec.name, execution = %self.claimed.lease.id, "abandoned at shutdown; the lease will go stale and the plan re-run");
        ctx.stop();
    }
}
