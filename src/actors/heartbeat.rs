//! The Heartbeat actors: one per job, keeping that job's running leases alive.
//!
//! The leases live in the job's [`LeaseBook`], shared rather than messaged so that an execution
//! costs no heartbeat messages: the Supervisor adds a lease when it starts its Executor (and sends
//! `Arm`), the Completer removes it once the attempt's outcome is recorded. Every
//! `heartbeat_interval` the Heartbeat renews `heartbeat_at` and `stale_after` (database clock) of
//! every lease in the book in one statement, each fenced by its token. A lease not renewed was
//! taken over by another runner: it leaves the book and the Supervisor is told (`LeasesLost`),
//! which tells the Executor. Transient errors are retried at the next beat, and a beat is
//! bounded by the store's call deadline and by the interval, so a beat the network swallowed
//! fails in time for the next one. A lease stops being
//! renewed after its attempt's `run_timeout` plus a grace, so a handler that ignores cancellation
//! cannot hold it forever. The timer only runs while the book holds leases.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use crate::store::deadline::bounded;
use crate::store::{Lease, Renewal, Store};

/// Most leases renewed by one statement.
const RENEW_BATCH: usize = 5000;

/// The running leases of one job and until when each is renewed.
#[derive(Default)]
pub(crate) struct LeaseBook {
    leases: Mutex<Leases>,
}

/// By execution id: ids this runner's claims made, not input, so a fast hash suffices.
type Leases = HashMap<Uuid, Tracked, foldhash::fast::RandomState>;

struct Tracked {
    lease: Lease,
    /// When renewals stop; `None` once the attempt's outcome was handed over for recording:
    /// then the lease is renewed until the Completer has written it (or given up), so a slow
    /// or retried terminal write never lets a finished result's lease go stale.
    stop_at: Option<Instant>,
}

impl LeaseBook {
    fn lock(&self) -> MutexGuard<'_, Leases> {
        // The map stays consistent whatever panicked while holding the lock.
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Renews `lease` for `beat_for` from now.
    pub(crate) fn track(&self, lease: Lease, beat_for: Duration) {
        let stop_at = Some(Instant::now() + beat_for);
        self.lock().insert(lease.id, Tracked { lease, stop_at });
    }

    /// The attempt of `lease` ended and its outcome is being recorded: renew the lease until
    /// [`untrack`](Self::untrack), whatever the attempt's time limit.
    pub(crate) fn hold_until_recorded(&self, lease: Lease) {
        if let Some(tracked) = self.lock().get_mut(&lease.id)
            && tracked.lease == lease
        {
            tracked.stop_at = None;
        }
    }

    /// Stops renewing `lease` (a later lease of the same row, with another token, stays).
    pub(crate) fn untrack(&self, lease: Lease) {
        let mut leases = self.lock();
        if leases.get(&lease.id).is_some_and(|t| t.lease == lease) {
            leases.remove(&lease.id);
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The leases held now.
    pub(crate) fn held(&self) -> Vec<Lease> {
        self.lock().values().map(|tracked| tracked.lease).collect()
    }

    fn get(&self, id: &Uuid) -> Option<Lease> {
        self.lock().get(id).map(|t| t.lease)
    }

    /// The leases to renew now; drops (and logs) those past their attempt's time.
    fn renewable(&self, job: &str) -> Vec<Lease> {
        let now = Instant::now();
        let mut leases = self.lock();
        leases.retain(|id, tracked| {
            let keep = tracked.stop_at.is_none_or(|stop_at| now < stop_at);
            if !keep {
                tracing::warn!(job = %job, execution = %id, "heartbeats stop: the attempt outlived run_timeout plus grace");
            }
            keep
        });
        leases.values().map(|t| t.lease).collect()
    }

    /// Removes the leases that were `sent` for renewal but not `held`, if still booked under the
    /// same token (another runner owns the plan now), and returns them.
    fn take_lost(&self, sent: &[Lease], held: &[Uuid]) -> Vec<Lease> {
        let held: HashSet<&Uuid> = held.iter().collect();
        let mut leases = self.lock();
        let mut lost = Vec::new();
        for lease in sent.iter().filter(|lease| !held.contains(&lease.id)) {
            if leases.get(&lease.id).is_some_and(|t| t.lease == *lease) {
                leases.remove(&lease.id);
                lost.push(*lease);
            }
        }
        lost
    }
}

/// Renews the leases of one job.
pub(crate) struct Heartbeat {
    store: Arc<dyn Store>,
    job: Arc<str>,
    interval: Duration,
    /// The longest a beat may take: the store's call deadline, at most `interval`, so a beat
    /// the network swallowed never delays the next one by more than an interval.
    deadline: Duration,
    stale_timeout: Duration,
    book: Arc<LeaseBook>,
    /// Told which leases were lost (the Supervisor, which tells their Executors).
    lost_to: Recipient<LeasesLost>,
    armed: Option<SpawnHandle>,
}

impl Heartbeat {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        job: Arc<str>,
        interval: Duration,
        stale_timeout: Duration,
        book: Arc<LeaseBook>,
        lost_to: Recipient<LeasesLost>,
    ) -> Self {
        let deadline = store.deadlines().call.min(interval);
        Heartbeat {
            store,
            job,
            interval,
            deadline,
            stale_timeout,
            book,
            lost_to,
            armed: None,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if self.armed.is_some() || self.book.is_empty() {
            return;
        }
        self.armed = Some(ctx.run_later(self.interval, |act, ctx| {
            act.armed = None;
            act.beat(ctx);
        }));
    }

    /// Renews every booked lease, then re-arms (never two beats in flight, no burst).
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let leases = self.book.renewable(&self.job);
        if leases.is_empty() {
            return;
        }
        let (store, stale_timeout) = (self.store.clone(), self.stale_timeout);
        let deadline = self.deadline;
        let work = async move {
            let mut held = Vec::with_capacity(leases.len());
            for batch in leases.chunks(RENEW_BATCH) {
                let renewals: Vec<Renewal> = batch
                    .iter()
                    .map(|&lease| Renewal {
                        lease,
                        stale_timeout,
                    })
                    .collect();
                let beat = store.execution_heartbeat(&renewals);
                held.extend(bounded("execution_heartbeat", deadline, beat).await?);
            }
            Ok::<_, crate::Error>((leases, held))
        };
        ctx.wait(work.into_actor(self).map(|outcome, act, ctx| {
            match outcome {
                Ok((sent, held)) => act.settle(&sent, &held),
                Err(error) => super::note_db_error("execution_heartbeat", &error),
            }
            act.arm(ctx);
        }));
    }

    /// Reports the leases that were sent but not renewed.
    fn settle(&mut self, sent: &[Lease], held: &[Uuid]) {
        let lost = self.book.take_lost(sent, held);
        if !lost.is_empty() {
            self.lost_to.do_send(LeasesLost { leases: lost });
        }
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;
}

/// Leases were added to the book: start the timer if it is not running.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Arm;

impl Handler<Arm> for Heartbeat {
    type Result = ();

    fn handle(&mut self, _: Arm, ctx: &mut Context<Self>) {
        self.arm(ctx);
    }
}

/// Sent to the Supervisor: these leases were found taken over by another runner.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LeasesLost {
    pub(crate) leases: Vec<Lease>,
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
        let Some(lease) = self.book.get(&msg.id) else {
            return Box::pin(fut::ready(Err(LeaseLostError)));
        };
        let renewal = Renewal {
            lease,
            stale_timeout: self.stale_timeout,
        };
        let (store, deadline) = (self.store.clone(), self.deadline);
        Box::pin(
            async move {
                bounded(
                    "execution_heartbeat",
                    deadline,
                    store.execution_heartbeat(&[renewal]),
                )
                .await
            }
            .into_actor(self)
            .map(move |outcome, act, _| match outcome {
                Ok(held) => {
                    act.settle(&[lease], &held);
                    if held.contains(&lease.id) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            id: Uuid::now_v7(),
            token: Uuid::new_v4(),
        }
    }

    #[test]
    fn untracking_an_old_attempt_keeps_the_rows_newer_lease() {
        let book = LeaseBook::default();
        let old = lease();
        let retry = Lease {
            token: Uuid::new_v4(),
            ..old
        };
        book.track(retry, Duration::from_secs(60));
        book.untrack(old);
        assert_eq!(book.get(&old.id), Some(retry));
        book.untrack(retry);
        assert!(book.is_empty());
    }

    #[test]
    fn leases_past_their_attempt_are_no_longer_renewed() {
        let book = LeaseBook::default();
        let (live, expired) = (lease(), lease());
        book.track(live, Duration::from_secs(60));
        book.track(expired, Duration::ZERO);
        assert_eq!(book.renewable("job"), vec![live]);
        assert_eq!(book.get(&expired.id), None);
    }

    #[test]
    fn a_lease_whose_outcome_is_being_recorded_is_renewed_past_its_attempt() {
        let book = LeaseBook::default();
        let (recording, other) = (lease(), lease());
        book.track(recording, Duration::ZERO);
        book.track(other, Duration::ZERO);
        book.hold_until_recorded(recording);
        // Another token of the same row is not affected.
        book.hold_until_recorded(Lease {
            token: Uuid::new_v4(),
            ..other
        });
        assert_eq!(book.renewable("job"), vec![recording]);
        book.untrack(recording);
        assert!(book.is_empty());
    }

    #[test]
    fn only_sent_leases_not_held_and_still_booked_are_lost() {
        let book = LeaseBook::default();
        let (held, lost, ended) = (lease(), lease(), lease());
        for l in [held, lost, ended] {
            book.track(l, Duration::from_secs(60));
        }
        // `ended` was recorded (unbooked) while the beat was in flight: not lost.
        book.untrack(ended);
        assert_eq!(book.take_lost(&[held, lost, ended], &[held.id]), vec![lost]);
        assert_eq!(book.get(&lost.id), None);
        assert_eq!(book.get(&held.id), Some(held));
    }
}
