//! Checkpointing the WAL off the writer connection.
//!
//! In WAL mode SQLite copies the log back into the database file when a commit leaves the log
//! longer than `wal_autocheckpoint` pages, inside that commit, on the connection that made it.
//! With every write of this process on one writer connection, that copy (and its `fsync`) would
//! sit in front of the next claim or terminal write. So a file store raises the writer's threshold
//! to a safety net and, a few milliseconds after writes, runs a `PASSIVE` checkpoint on a reader
//! connection: it copies what it can without blocking the writer or readers, on another thread.
//! When no writes happen, nothing runs.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The writer's own threshold, in pages: reached only if background checkpoints fall behind.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: &str = "10000";

/// How long after a write the checkpoint waits, so a burst of writes shares one.
const AFTER_WRITES: Duration = Duration::from_millis(20);

/// Wakes the background checkpoint task; stops it when the last store clone is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    wake: Arc<Notify>,
    stop: CancellationToken,
}

impl Checkpointer {
    /// Starts the task on the current tokio runtime; `None` outside one (the writer then
    /// checkpoints by itself, as SQLite does by default).
    pub(super) fn start(readers: SqlitePool) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (wake, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        runtime.spawn(run(readers, wake.clone(), stop.clone()));
        Some(Arc::new(Checkpointer { wake, stop }))
    }

    /// Notes that the writer committed something.
    pub(super) fn wrote(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(readers: SqlitePool, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(AFTER_WRITES) => {}
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&readers)
            .await
        {
            tracing::debug!(%error, "background WAL checkpoint failed; the writer checkpoints past its threshold");
        }
    }
}
