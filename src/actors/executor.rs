//! The Executor actor: owns one claimed lease from handler start to terminal write.
//!
//! Lifecycle:
//! 1. `started`: registers its lease with the job's Heartbeat and spawns the handler on the handler runtime, bounded by
//!    `run_timeout`; a panic while building or polling the future becomes a `handler_panic`
//!    failure. Cancellation is cooperative: the handler's token fires, and the task is dropped
//!    after a grace (one heartbeat interval after LeaseLost, the shutdown grace at shutdown).
//! 2. The attempt ends: success, error, panic, timeout, or cancellation (`LeaseLost` from the
//!    Heartbeat, `Cancel` from the Supervisor at shutdown).
//! 3. It hands the outcome to the Completer, which writes it (batched, fenced by the lease token,
//!    retried while the database fails transiently); failures first ask the RetryPolicy for a
//!    retry time or DEAD. The job's Heartbeat keeps the lease alive until then. After LeaseLost
//!    nothing is written: the new owner decides.
//! 4. It stops tracking its lease, reports `ExecutionFinished` to the Supervisor and stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::task::{AbortHandle, JoinError};
use tokio_util::sync::CancellationToken;

use super::Runtime;
use super::completer::{Complete, Outcome};
use super::heartbeat::{Heartbeat, LeaseLost, Track, Untrack};
use super::retry_policy::Decide;
use super::supervisor::{ExecutionFinished, Supervisor};
use crate::execution::{ErrorCode, Status, capped_result, truncate_error_msg};
use crate::handler::{JobContext, JobError, JobOutput};
use crate::retry::RetryDecision;
use crate::spec::JobSpec;
use crate::store::{Claimed, FailureWrite, SuccessWrite};
use crate::telemetry;

/// Runs one attempt of one plan.
pub(crate) struct Executor {
    rt: Arc<Runtime>,
    spec: Arc<JobSpec>,
    claimed: Claimed,
    supervisor: Addr<Supervisor>,
    cancel: CancellationToken,
    cancel_reason: Option<ErrorCode>,
    heartbeat: Addr<Heartbeat>,
    handler_task: Option<AbortHandle>,
    started: Instant,
    finishing: bool,
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
    pub(crate) fn new(
        rt: Arc<Runtime>,
        spec: Arc<JobSpec>,
        claimed: Claimed,
        supervisor: Addr<Supervisor>,
        heartbeat: Addr<Heartbeat>,
    ) -> Self {
        Executor {
            rt,
            spec,
            claimed,
            supervisor,
            cancel: CancellationToken::new(),
            cancel_reason: None,
            heartbeat,
            handler_task: None,
            started: Instant::now(),
            finishing: false,
        }
    }

    /// How long past `run_timeout` a handler that ignores its timeout is waited for.
    fn grace(&self) -> Duration {
        self.spec.heartbeat_interval
    }

    fn start_handler(&mut self, ctx: &mut Context<Self>) {
        let job_ctx = JobContext {
            job: self.spec.name.clone(),
            scope: self.claimed.scope.clone(),
            plan_time: self.claimed.plan_time,
            attempt: self.claimed.attempt,
            max_attempts: self.claimed.max_attempts,
            runner_id: self.rt.runner_id.clone(),
            execution_id: self.claimed.lease.id,
            cancel: self.cancel.clone(),
            heartbeat: self.heartbeat.clone(),
        };
        let handler = self.spec.handler.clone();
        let run_timeout = self.spec.run_timeout;
        let task = self.rt.handlers.spawn(async move {
            // Built inside the task, so a panic while building is caught like one while polling.
            // Cancellation is cooperative: the handler sees the token; the executor drops the
            // task when the cancellation grace runs out.
            match tokio::time::timeout(run_timeout, handler.run(job_ctx)).await {
                Ok(Ok(output)) => Attempt::Succeeded(output),
                Ok(Err(error)) => Attempt::Failed(error),
                Err(_) => Attempt::TimedOut,
            }
        });
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

    /// Records the attempt's outcome once, then reports and stops.
    fn finish(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        if let Some(task) = self.handler_task.take() {
            task.abort();
        }
        let duration = self.started.elapsed();
        let job = self.spec.name.clone();
        telemetry::handler_duration(&job, duration);
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let lease = self.claimed.lease;
        let attempt = match (self.cancel_reason, attempt) {
            (Some(ErrorCode::LeaseLost), _) => {
                telemetry::lease_lost(&job);
                telemetry::execution(&job, "lease_lost", ErrorCode::LeaseLost.as_str());
                tracing::warn!(job = %job, execution = %lease.id, "lease lost: another runner owns this plan; the attempt's outcome is discarded");
                return self.done(ctx);
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
                return self.write_success(write, ctx);
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
                    humantime::format_duration(self.spec.run_timeout)
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
                return self.write_failure(write, ErrorCode::Canceled, ctx);
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
                act.write_failure(write, code, ctx);
            },
        ));
    }

    fn write_success(&mut self, write: SuccessWrite, ctx: &mut Context<Self>) {
        let job = self.spec.name.clone();
        let id = self.claimed.lease.id;
        let complete = self.rt.completer.send(Complete(Outcome::Success(write)));
        ctx.wait(complete.into_actor(self).map(move |written, act, ctx| {
            match written {
                Ok(Ok(true)) => {
                    telemetry::execution(&job, "success", "");
                    tracing::debug!(job = %job, execution = %id, "execution succeeded");
                }
                Ok(Ok(false)) => act.fenced_out(),
                Ok(Err(error)) => {
                    tracing::error!(%error, job = %job, execution = %id, "could not record success; the lease will go stale and the plan re-run");
                }
                Err(_) => tracing::error!(job = %job, execution = %id, "the completer stopped; the lease will go stale and the plan re-run"),
            }
            act.done(ctx);
        }));
    }

    fn write_failure(&mut self, write: FailureWrite, code: ErrorCode, ctx: &mut Context<Self>) {
        let job = self.spec.name.clone();
        let status = write.status;
        let attempt = self.claimed.attempt;
        let message = write.message.clone();
        let id = self.claimed.lease.id;
        let complete = self.rt.completer.send(Complete(Outcome::Failure(write)));
        ctx.wait(complete.into_actor(self).map(move |written, act, ctx| {
            match written {
                Ok(Ok(true)) => {
                    let outcome = if status == Status::Dead { "dead" } else { "failed" };
                    telemetry::execution(&job, outcome, code.as_str());
                    if status == Status::Dead {
                        telemetry::dead_lettered(&job);
                        tracing::error!(job = %job, execution = %id, attempt, code = code.as_str(), error = %message, "execution dead-lettered");
                    } else {
                        if code != ErrorCode::Canceled {
                            telemetry::retry(&job, attempt);
                        }
                        tracing::warn!(job = %job, execution = %id, attempt, code = code.as_str(), error = %message, "execution failed; will retry");
                    }
                }
                Ok(Ok(false)) => act.fenced_out(),
                Ok(Err(error)) => {
                    tracing::error!(%error, job = %job, execution = %id, "could not record failure; the lease will go stale and the plan re-run");
                }
                Err(_) => tracing::error!(job = %job, execution = %id, "the completer stopped; the lease will go stale and the plan re-run"),
            }
            act.done(ctx);
        }));
    }

    fn fenced_out(&self) {
        telemetry::lease_lost(&self.spec.name);
        telemetry::execution(&self.spec.name, "lease_lost", ErrorCode::LeaseLost.as_str());
        tracing::warn!(job = %self.spec.name, execution = %self.claimed.lease.id, "terminal write fenced out: the lease was lost");
    }

    fn done(&mut self, ctx: &mut Context<Self>) {
        self.heartbeat.do_send(Untrack {
            id: self.claimed.lease.id,
        });
        self.supervisor.do_send(ExecutionFinished {
            id: self.claimed.lease.id,
        });
        ctx.stop();
    }
}

/// A handler task that did not return: it panicked, or its runtime dropped it.
fn from_join_error(error: JoinError) -> Attempt {
    if error.is_panic() {
        let payload = error.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        Attempt::Panicked(format!("handler panicked: {message}"))
    } else {
        Attempt::Cancelled
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.heartbeat.do_send(Track {
            lease: self.claimed.lease,
            owner: ctx.address().recipient(),
            beat_for: self.spec.run_timeout + self.grace(),
        });
        self.start_handler(ctx);
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
        ctx.run_later(self.spec.heartbeat_interval, |act, ctx| {
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
        self.heartbeat.do_send(Untrack {
            id: self.claimed.lease.id,
        });
        tracing::warn!(job = %self.spec.name, execution = %self.claimed.lease.id, "abandoned at shutdown; the lease will go stale and the plan re-run");
        ctx.stop();
    }
}
