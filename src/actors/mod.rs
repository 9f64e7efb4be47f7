//! The actors and the messages between them.
//!
//! ```text
//!                    Tick (self, re-armed after each tick; never overlapping)
//!                      │
//!  Scheduler ──TickNow/Shutdown──▶ Supervisor ──sweep, plan, claim──▶ Store
//!                                     │ spawns one per claimed lease
//!                                     ▼
//!                                  Executor ──run handler on the handler runtime──▶ Handler
//!                                     │  ▲  │                      (panic, timeout, cancel captured)
//!                     starts/stops    │  │  └──Decide──▶ RetryPolicy ──RetryIn / Dead──┐
//!                                     ▼  │ LeaseLost                                    │
//!                                  Heartbeat ──renew lease every interval──▶ Store      │
//!                                     Executor ◀────────────────────────────────────────┘
//!                                     │ fenced terminal write (retried while transient)
//!                                     └──ExecutionFinished──▶ Supervisor
//! ```
//!
//! - [`supervisor::Supervisor`]: ticks every job (sweep stale leases, plan, claim in batches),
//!   bounds concurrency, spawns executors, drains them on shutdown.
//! - [`executor::Executor`]: owns one lease: runs the handler, records SUCCESS, FAILED or DEAD.
//! - [`heartbeat::Heartbeat`]: renews one lease on a timer; reports `LeaseLost`.
//! - [`retry_policy::RetryPolicy`]: decides backoff versus dead-letter for a failed attempt.
//!
//! All actors live on the arbiter that started the scheduler; handlers run on a separate
//! multi-threaded runtime ([`handler_runtime::HandlerRuntime`]) so a blocking or panicking handler
//! cannot stop the actors.

pub(crate) mod executor;
pub(crate) mod handler_runtime;
pub(crate) mod heartbeat;
pub(crate) mod retry_policy;
pub(crate) mod supervisor;

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
    /// How long a shutdown waits for running handlers to stop before recording them `canceled`.
    pub(crate) shutdown_grace: Duration,
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

/// Logs and counts a failed store call that the caller will simply retry at its next turn.
pub(crate) fn note_db_error(operation: &'static str, error: &Error) {
    if error.is_transient() {
        telemetry::db_transient(operation);
        tracing::warn!(%error, operation, "transient database error; will retry");
    } else {
        tracing::error!(%error, operation, "database error");
    }
}
