//! The actors and the messages between them.
//!
//! ```text
//!                    Tick (per job, re-armed after each tick; never overlapping)
//!                      │
//!  Scheduler ──TickNow/Shutdown──▶ Supervisor ──sweep, plan, claim (batched)──▶ Store
//!                                    │  │ books each lease in the job's LeaseBook, Arm ──▶ Heartbeat
//!                                    │  │ spawns one per claimed lease
//!                                    │  ▼
//!                         LeaseLost  │ Executor ──run handler on the handler runtime──▶ Handler
//!                         (Cancel at │  │  │                  (panic, timeout, cancel captured)
//!                          shutdown) │  │  └──Decide──▶ RetryPolicy ──RetryIn / Dead
//!                                    │  │ Record (the outcome; the Executor stops)
//!                                    │  ▼
//!                                  Completer ──batched fenced writes (retried while transient)──▶ Store
//!                                    │ unbooks the leases; AttemptsEnded (one message per batch)
//!                                    ▼
//!                                  Supervisor (frees the slots)
//!
//!           Heartbeat (one per job) ──renew every booked lease, one statement per beat──▶ Store
//!                                    │ LeasesLost ──▶ Supervisor ──LeaseLost──▶ Executor
//!
//!                    run_later(interval) (self, re-armed after each run; never overlapping)
//!                      │
//!  Scheduler ──PruneNow/StopPruner──▶ Pruner ──count stale RUNNING, prune in batches──▶ Store
//!
//!                    run_later(presence_interval) (self, re-armed after each refresh)
//!                      │
//!  Scheduler ──Register/JobsChanged/StopPresence──▶ Presence ──register, refresh last_seen──▶ Store
//! ```
//!
//! - [`supervisor::Supervisor`]: arms each job's tick on its own timer, shares the execution
//!   slots, keeps the running executors (keyed by lease), drains them on shutdown.
//! - [`tick`]: one job's tick: sweep stale leases, supersede, plan, claim in batches, start
//!   executors.
//! - [`planning`]: the user's scope provider and planner hook, run on the handler runtime with
//!   panics caught and a time limit, so they cost only their own job.
//! - [`executor::Executor`]: owns one lease until its outcome is known: runs the handler, turns
//!   success, error, panic, timeout or cancellation into SUCCESS, FAILED or DEAD, hands it over.
//! - [`heartbeat::Heartbeat`]: one per job; renews the leases in the job's
//!   [`heartbeat::LeaseBook`] on a timer, all in one statement; reports `LeasesLost`.
//! - [`retry_policy::RetryPolicy`]: decides backoff versus dead-letter for a failed attempt.
//! - [`completer::Completer`]: records handed-over outcomes in batches (flush on size or after a
//!   few ms), then unbooks their leases and reports them ended, one message per batch.
//! - [`retention::Pruner`]: the retention service: prunes finished and dead rows past their
//!   retention in batches, measures stale RUNNING rows, and deletes runners not seen for
//!   `keep_runners`.
//! - [`presence::Presence`]: this runner's rows in the job and runner registry: registers it and
//!   its jobs, refreshes `last_seen` with one statement per interval, logs spec conflicts once,
//!   marks the runner stopped at shutdown.
//!
//! All actors live on the arbiter that started the scheduler; handlers run on a separate
//! multi-threaded runtime ([`handler_runtime::HandlerRuntime`]) so a blocking or panicking handler
//! cannot stop the actors.

pub(crate) mod completer;
pub(crate) mod executor;
pub(crate) mod handler_runtime;
pub(crate) mod heartbeat;
pub(crate) mod job_changes;
pub(crate) mod planning;
pub(crate) mod presence;
mod requests;
pub(crate) mod retention;
pub(crate) mod retry_policy;
mod sharing;
pub(crate) mod supervisor;
pub(crate) mod tick;
pub(crate) mod watched_store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;

use crate::error::{Error, Result};
use crate::retry::DbRetry;
use crate::store::Store;
use crate::telemetry;

use handler_runtime::HandlerRuntime;
use retry_policy::RetryPolicy;

/// What every actor of one scheduler shares.
pub(crate) struct Runtime {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) runner_id: Arc<str>,
    pub(crate) handlers: HandlerRuntime,
    pub(crate) db_retry: DbRetry,
    pub(crate) retry_policy: Addr<RetryPolicy>,
    pub(crate) completer: Addr<completer::Completer>,
    /// How long a shutdown waits for running handlers to stop before recording them `canceled`.
    pub(crate) shutdown_grace: Duration,
    /// Whether this runner may take leases over (fed by every store call through `store`).
    pub(crate) takeover: Arc<crate::takeover::TakeoverGuard>,
}

/// Runs `op` until it succeeds, fails permanently, or `give_up_after` passes, sleeping with the
/// runtime's database backoff between transient failures. Transient errors are counted; giving
/// up is logged and counted (never written to the database that is failing).
pub(crate) async fn retry_transient<T, F, Fut>(
    policy: DbRetry,
    operation: &'static str,
    give_up_after: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut retry = 0;
    loop {
        match op().await {
            Err(error) if error.is_transient() => {
                telemetry::db_transient(operation);
                retry += 1;
                let delay = policy.delay(retry);
                if started.elapsed() + delay > give_up_after {
                    telemetry::db_gave_up(operation);
                    tracing::error!(%error, operation, retries = retry, "giving up on a database call after transient errors");
                    return Err(error);
                }
                tracing::warn!(%error, operation, retry, delay = ?delay, "transient database error; retrying");
                actix_rt::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// Runs a database call as a task of its own on this thread's runtime instead of among the
/// actors' futures, spawned at once. Its replies then wait at most one turn of the actors' queue
/// (tokio runs the actors' `LocalSet` in turns of a few dozen tasks between its other tasks), not
/// behind every Executor a claim has just started: each round trip of a claim or a success write
/// would otherwise wait for thousands of Executor wake-ups, and the database for it. Dropping the
/// returned future aborts the call, as dropping the call itself would; a panic in it is raised
/// here.
pub(crate) fn db_task<T, F>(call: F) -> impl Future<Output = T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(call));
    async move {
        match task.await {
            Ok(value) => value,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only an abort cancels the task, and only dropping this future aborts it.
            Err(error) => unreachable!("a database task was cancelled while awaited: {error}"),
        }
    }
}

/// Logs and counts a failed store call that the caller will simply retry at its next turn.
pub(crate) fn note_db_error(operation: &'static str, error: &Error) {
    if error.is_transient() {
        telemetry::db_transient(operation);
        tracing::warn!(%error, operation, "transient database error; will retry");
    } else {
        tracing::error!(%error, operation, "database error");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::FutureExt;

    use super::*;

    /// The caller gets the call's answer.
    #[actix_rt::test]
    async fn a_database_task_returns_its_answer() {
        assert_eq!(db_task(async { 6 * 7 }).await, 42);
    }

    /// A panic in the call is raised where the call is awaited, as it would be without a task.
    #[actix_rt::test]
    async fn a_panic_in_a_database_task_reaches_its_caller() {
        let outcome = std::panic::AssertUnwindSafe(db_task(async { panic!("the call broke") }))
            .catch_unwind()
            .await;
        let message = outcome.expect_err("the panic is raised");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"the call broke"));
    }

    /// Dropping the awaited future stops the call, as dropping the call itself would.
    #[actix_rt::test]
    async fn dropping_a_database_task_stops_the_call() {
        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(dropped.clone());
        let call = db_task(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        // The task has started: it holds the guard until it is stopped.
        actix_rt::task::yield_now().await;
        assert!(!dropped.load(Ordering::SeqCst));
        drop(call);
        for _ in 0..10 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            actix_rt::task::yield_now().await;
        }
        assert!(dropped.load(Ordering::SeqCst), "the call was stopped");
    }
}
