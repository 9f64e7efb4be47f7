//! The Heartbeat actor: keeps one lease alive.
//!
//! Every `interval` it renews `heartbeat_at` and `stale_after` (database clock), fenced by the
//! lease token. No row renewed means another runner took the lease: it tells its Executor
//! (`LeaseLost`) and stops. Transient errors are retried at the next beat. Beats stop after
//! `run_timeout` plus a grace, so a handler that ignores cancellation cannot hold a lease forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Runtime;
use crate::store::{Lease, Renewal};

/// Renews one lease.
pub(crate) struct Heartbeat {
    rt: Arc<Runtime>,
    lease: Lease,
    stale_timeout: Duration,
    interval: Duration,
    stop_at: Instant,
    owner: Recipient<LeaseLost>,
    job: Arc<str>,
}

impl Heartbeat {
    pub(crate) fn new(
        rt: Arc<Runtime>,
        job: Arc<str>,
        lease: Lease,
        stale_timeout: Duration,
        interval: Duration,
        beat_for: Duration,
        owner: Recipient<LeaseLost>,
    ) -> Self {
        Heartbeat {
            rt,
            lease,
            stale_timeout,
            interval,
            stop_at: Instant::now() + beat_for,
            owner,
            job,
        }
    }

    fn arm(&self, ctx: &mut Context<Self>) {
        ctx.run_later(self.interval, |act, ctx| {
            if Instant::now() >= act.stop_at {
                tracing::warn!(job = %act.job, execution = %act.lease.id, "heartbeats stop: the attempt outlived run_timeout plus grace");
                ctx.stop();
                return;
            }
            ctx.wait(act.renew().into_actor(act).map(|held, act, ctx| match held {
                Renewed::Held | Renewed::Unknown => act.arm(ctx),
                Renewed::Lost => {
                    act.owner.do_send(LeaseLost);
                    ctx.stop();
                }
            }));
        });
    }

    fn renew(&self) -> impl std::future::Future<Output = Renewed> + 'static {
        let store = self.rt.store.clone();
        let renewal = Renewal {
            lease: self.lease,
            stale_timeout: self.stale_timeout,
        };
        async move {
            match store.execution_heartbeat(&[renewal]).await {
                Ok(held) if held.contains(&renewal.lease.id) => Renewed::Held,
                Ok(_) => Renewed::Lost,
                Err(error) => {
                    super::note_db_error("execution_heartbeat", &error);
                    Renewed::Unknown
                }
            }
        }
    }
}

enum Renewed {
    Held,
    Lost,
    /// The database could not be asked; try again at the next beat.
    Unknown,
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm(ctx);
    }
}

/// Sent to the Executor when the lease is found taken over.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LeaseLost;

/// Renew now (a handler's manual heartbeat); `Err` when the lease is lost.
#[derive(Message)]
#[rtype(result = "Result<(), LeaseLostError>")]
pub struct BeatNow;

/// The lease of this attempt is held by another runner.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the lease was lost: another runner owns this plan now")]
pub struct LeaseLostError;

impl Handler<BeatNow> for Heartbeat {
    type Result = ResponseActFuture<Self, Result<(), LeaseLostError>>;

    fn handle(&mut self, _: BeatNow, _: &mut Context<Self>) -> Self::Result {
        Box::pin(
            self.renew()
                .into_actor(self)
                .map(|held, act, ctx| match held {
                    Renewed::Held | Renewed::Unknown => Ok(()),
                    Renewed::Lost => {
                        act.owner.do_send(LeaseLost);
                        ctx.stop();
                        Err(LeaseLostError)
                    }
                }),
        )
    }
}

/// Stops renewing (the attempt is over).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopHeartbeat;

impl Handler<StopHeartbeat> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: StopHeartbeat, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
