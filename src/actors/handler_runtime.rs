//! The multi-threaded tokio runtime handlers run on.
//!
//! Handler futures run here, not on the actix arbiter, so a handler that blocks its thread
//! cannot stall ticks, heartbeats or other executors, and a panic is caught by the task harness
//! (`JoinError::is_panic`) instead of killing an actor.

use std::future::Future;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Owns the runtime; dropping it from async code is allowed (it shuts down in the background).
#[derive(Debug)]
pub(crate) struct HandlerRuntime {
    runtime: Option<Runtime>,
}

impl HandlerRuntime {
    /// A runtime with `threads` worker threads named `cronlease-handler`.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("cronlease-handler")
            .enable_all()
            .build()?;
        Ok(HandlerRuntime {
            runtime: Some(runtime),
        })
    }

    /// Spawns a handler future.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(future)
    }

    /// Runs blocking user code (a planner hook) on the runtime's blocking pool.
    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn_blocking(f)
    }
}

impl Drop for HandlerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
