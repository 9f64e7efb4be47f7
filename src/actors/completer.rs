//! The Completer actor: records the outcomes of finished attempts in batches.
//!
//! Executors send their fenced terminal write (`Complete`) and wait for the answer. The Completer
//! gathers writes and flushes them as one statement for successes and one for failures, when
//! `max_batch` writes are waiting or `linger` after the first one, whichever comes first. A flush
//! that fails transiently is retried with the database backoff (the Executors' heartbeats keep
//! their leases alive meanwhile); each Executor learns whether its row was written or fenced out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::retry_transient;
use crate::error::{Error, Result};
use crate::retry::DbRetry;
use crate::store::{FailureWrite, Store, SuccessWrite};

/// Most writes per statement.
pub(crate) const MAX_BATCH: usize = 2000;
/// How long the first waiting write waits for company.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

type Reply = oneshot::Sender<Result<bool>>;

/// A store method writing a batch and returning the ids it wrote.
type WriteFn<W> = for<'a> fn(&'a dyn Store, &'a [W]) -> BoxFuture<'a, Result<Vec<Uuid>>>;

/// Batches terminal writes.
pub(crate) struct Completer {
    store: Arc<dyn Store>,
    db_retry: DbRetry,
    successes: Vec<(SuccessWrite, Reply)>,
    failures: Vec<(FailureWrite, Reply)>,
    flush_armed: Option<SpawnHandle>,
}

impl Completer {
    pub(crate) fn new(store: Arc<dyn Store>, db_retry: DbRetry) -> Self {
        Completer {
            store,
            db_retry,
            successes: Vec::new(),
            failures: Vec::new(),
            flush_armed: None,
        }
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
            |w| w.lease.id,
            |store, writes| store.execution_finish_success(writes),
        );
        let failures = std::mem::take(&mut self.failures);
        self.write_batch(
            ctx,
            failures,
            "execution_finish_failure",
            |w| w.lease.id,
            |store, writes| store.execution_finish_failure(writes),
        );
    }

    /// Writes one batch with `write` (retried while the database fails transiently) and answers
    /// each waiting Executor.
    fn write_batch<W: Send + Sync + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        pending: Vec<(W, Reply)>,
        operation: &'static str,
        id: fn(&W) -> Uuid,
        write: WriteFn<W>,
    ) {
        if pending.is_empty() {
            return;
        }
        let (writes, replies): (Vec<W>, Vec<Reply>) = pending.into_iter().unzip();
        let ids: Vec<Uuid> = writes.iter().map(id).collect();
        let (store, writes, policy) = (self.store.clone(), Arc::new(writes), self.db_retry);
        ctx.spawn(
            async move {
                let written = retry_transient(policy, operation, policy.give_up_after, || {
                    let (store, writes) = (store.clone(), writes.clone());
                    async move { write(&*store, &writes).await }
                })
                .await;
                answer(&ids, replies, written);
            }
            .into_actor(self),
        );
    }
}

/// Tells each waiting Executor whether its row was written.
fn answer(ids: &[Uuid], replies: Vec<Reply>, written: Result<Vec<Uuid>>) {
    match written {
        Ok(written) => {
            let written: HashSet<Uuid> = written.into_iter().collect();
            for (id, reply) in ids.iter().zip(replies) {
                let _ = reply.send(Ok(written.contains(id)));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(Error::GaveUp(message.clone())));
            }
        }
    }
}

impl Actor for Completer {
    type Context = Context<Self>;
}

/// A terminal write to record.
pub(crate) enum Outcome {
    Success(SuccessWrite),
    Failure(FailureWrite),
}

/// Records an outcome; answers `true` when written, `false` when fenced out (lease lost).
#[derive(Message)]
#[rtype(result = "Result<bool>")]
pub(crate) struct Complete(pub(crate) Outcome);

impl Handler<Complete> for Completer {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: Complete, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match msg.0 {
            Outcome::Success(write) => self.successes.push((write, tx)),
            Outcome::Failure(write) => self.failures.push((write, tx)),
        }
        if self.successes.len() + self.failures.len() >= MAX_BATCH {
            self.flush(ctx);
        } else if self.flush_armed.is_none() {
            self.flush_armed = Some(ctx.run_later(LINGER, |act, ctx| {
                act.flush_armed = None;
                act.flush(ctx);
            }));
        }
        Box::pin(async move { rx.await.unwrap_or(Err(Error::NotRunning)) })
    }
}
