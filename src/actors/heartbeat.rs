//! The Heartbeat actors: one per job, keeping that job's running leases alive.
//!
//! Every `heartbeat_interval` a Heartbeat renews `heartbeat_at` and `stale_after` (database clock)
//! of every lease it tracks in one statement, each fenced by its token. A lease not renewed was
//! taken over by another runner: its Executor is told (`LeaseLost`) and the lease dropped.
//! Transient errors are retried at the next beat. A lease stops being renewed after its attempt's
//! `run_timeout` plus a grace, so a handler that ignores cancellation cannot hold it forever.
//! The timer only runs while leases are tracked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use crate::store::{Lease, Renewal, Store};

/// Most leases renewed by one statement.
const RENEW_BATCH: usize = 5000;

/// Renews the leases of one job.
pub(crate) struct Heartbeat {
    store: Arc<dyn Store>,
    job: Arc<str>,
    interval: Duration,
    stale_timeout: Duration,
    leases: HashMap<Uuid, Tracked>,
    armed: Option<SpawnHandle>,
}

struct Tracked {
    lease: Lease,
    owner: Recipient<LeaseLost>,
    stop_at: Instant,
}

impl Heartbeat {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        job: Arc<str>,
        interval: Duration,
        stale_timeout: Duration,
    ) -> Self {
        Heartbeat {
            store,
            job,
            interval,
            stale_timeout,
            leases: HashMap::new(),
            armed: None,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if self.armed.is_some() || self.leases.is_empty() {
            return;
        }
        self.armed = Some(ctx.run_later(self.interval, |act, ctx| {
            act.armed = None;
            act.beat(ctx);
        }));
    }

    /// Renews every tracked lease, then re-arms (never two beats in flight, no burst).
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let job = self.job.clone();
        self.leases.retain(|id, tracked| {
            let keep = now < tracked.stop_at;
            if !keep {
                tracing::warn!(job = %job, execution = %id, "heartbeats stop: the attempt outlived run_timeout plus grace");
            }
            keep
        });
        let renewals: Vec<Renewal> = self
            .leases
            .values()
            .map(|t| Renewal {
                lease: t.lease,
                stale_timeout: self.stale_timeout,
            })
            .collect();
        if renewals.is_empty() {
            return;
        }
        let store = self.store.clone();
        let work = async move {
            let mut held = Vec::with_capacity(renewals.len());
            for batch in renewals.chunks(RENEW_BATCH) {
                held.extend(store.execution_heartbeat(batch).await?);
            }
            Ok::<_, crate::Error>((renewals, held))
        };
        ctx.wait(work.into_actor(self).map(|outcome, act, ctx| {
            match outcome {
                Ok((sent, held)) => act.settle(&sent, &held),
                Err(error) => super::note_db_error("execution_heartbeat", &error),
            }
            act.arm(ctx);
        }));
    }

    /// Tells the owners of leases that were sent but not renewed that they lost them.
    fn settle(&mut self, sent: &[Renewal], held: &[Uuid]) {
        let held: std::collections::HashSet<&Uuid> = held.iter().collect();
        for renewal in sent {
            let id = renewal.lease.id;
            if held.contains(&id) {
                continue;
            }
            // Still tracked with the same token: another runner owns the plan now.
            if let Some(tracked) = self.leases.get(&id)
                && tracked.lease == renewal.lease
            {
                tracked.owner.do_send(LeaseLost);
                self.leases.remove(&id);
            }
        }
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;
}

/// Starts renewing a lease for `beat_for`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Track {
    pub(crate) lease: Lease,
    pub(crate) owner: Recipient<LeaseLost>,
    pub(crate) beat_for: Duration,
}

impl Handler<Track> for Heartbeat {
    type Result = ();

    fn handle(&mut self, msg: Track, ctx: &mut Context<Self>) {
        self.leases.insert(
            msg.lease.id,
            Tracked {
                lease: msg.lease,
                owner: msg.owner,
                stop_at: Instant::now() + msg.beat_for,
            },
        );
        self.arm(ctx);
    }
}

/// Stops renewing a lease (its attempt is over).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Untrack {
    pub(crate) id: Uuid,
}

impl Handler<Untrack> for Heartbeat {
    type Result = ();

    fn handle(&mut self, msg: Untrack, ctx: &mut Context<Self>) {
        self.leases.remove(&msg.id);
        if self.leases.is_empty()
            && let Some(handle) = self.armed.take()
        {
            ctx.cancel_future(handle);
        }
    }
}

/// Sent to an Executor when its lease is found taken over.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LeaseLost;

/// Renews one lease now (a handler's manual heartbeat); `Err` when the lease is lost.
#[derive(Message)]
#[rtype(result = "Result<(), LeaseLostError>")]
pub struct BeatNow {
    pub(crate) id: Uuid,
}

/// The lease of this attempt is held by another runner.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the lease was lost: another runner owns this plan now")]
pub struct LeaseLostError;

impl Handler<BeatNow> for Heartbeat {
    type Result = ResponseActFuture<Self, Result<(), LeaseLostError>>;

    fn handle(&mut self, msg: BeatNow, _: &mut Context<Self>) -> Self::Result {
        let Some(tracked) = self.leases.get(&msg.id) else {
            return Box::pin(fut::ready(Err(LeaseLostError)));
        };
        let renewal = Renewal {
            lease: tracked.lease,
            stale_timeout: self.stale_timeout,
        };
        let store = self.store.clone();
        Box::pin(
            async move { store.execution_heartbeat(&[renewal]).await }
                .into_actor(self)
                .map(move |outcome, act, _| match outcome {
                    Ok(held) => {
                        act.settle(&[renewal], &held);
                        if held.contains(&renewal.lease.id) {
                            Ok(())
                        } else {
                            Err(LeaseLostError)
                        }
                    }
                    // Unknown: the database could not be asked; the lease may well be held.
                    Err(error) => {
                        super::note_db_error("execution_heartbeat", &error);
                        Ok(())
                    }
                }),
        )
    }
}

/// Stops the actor (the scheduler shut down).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopHeartbeat;

impl Handler<StopHeartbeat> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: StopHeartbeat, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
