//! Presence: this runner's rows in the job and runner registry (`control::registry`).
//!
//! - At start the Presence registers the runner (id, host, pid, version, refresh interval) and
//!   the whole set of its jobs, with their descriptions and spec hashes, in one transaction.
//! - Every `refresh_interval` (only while the scheduler ticks by itself) it refreshes
//!   `last_seen` with one statement, whatever the number of jobs, leases or ticks. A runner
//!   whose row is missing (pruned while it could not reach the database) registers again; a
//!   registration that failed is retried at the next refresh.
//! - Jobs added, replaced or removed while running (`job_changes.rs`) re-register the set, so a
//!   removed job stops being registered by this runner.
//! - After each registration, and every [`CONFLICT_CHECK_EVERY`] refreshes, it reads the
//!   registry: a job of this runner whose spec differs between live runners is logged once as a
//!   warning (a rolling deploy in progress), never overwritten: each runner writes only its
//!   own rows.
//! - A clean shutdown marks the runner stopped. A runner that simply stops refreshing (killed,
//!   crashed, dropped without shutdown) is shown as gone after
//!   [`GONE_AFTER_INTERVALS`](crate::GONE_AFTER_INTERVALS) intervals, and the retention
//!   service deletes it after `Retention::keep_runners`.
//!
//! The timed work runs with `ctx.wait`, so a registration, a refresh and a stop never overlap,
//! and the refresh re-arms itself after each run (no burst after a stall).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::control::{ConflictLog, JobDescription, RegisteredJob, RunnerRegistration};
use crate::error::Result;
use crate::store::Store;

/// How many refreshes pass between two reads of the registry for spec conflicts (about a
/// minute at the default 10 s interval); registrations read it at once.
pub(crate) const CONFLICT_CHECK_EVERY: u32 = 6;

/// This runner's presence in the registry.
pub(crate) struct Presence {
    store: Arc<dyn Store>,
    runner: RunnerRegistration,
    jobs: BTreeMap<String, JobDescription>,
    /// Whether the database holds the current registration.
    registered: bool,
    /// Whether a registration ever succeeded (the first one sets `started_at`).
    ever_registered: bool,
    auto: bool,
    refreshes: u32,
    conflicts: ConflictLog,
}

impl Presence {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        runner: RunnerRegistration,
        jobs: impl IntoIterator<Item = JobDescription>,
        auto: bool,
    ) -> Self {
        Presence {
            store,
            runner,
            jobs: jobs
                .into_iter()
                .map(|job| (job.name.clone(), job))
                .collect(),
            registered: false,
            ever_registered: false,
            auto,
            refreshes: 0,
            conflicts: ConflictLog::default(),
        }
    }

    /// Brings the database up to date: refreshes `last_seen` with one statement when the
    /// registration is in place, else (or when `register`) writes the runner and its whole job
    /// set. Reads the registry for conflicts after a registration, and every
    /// [`CONFLICT_CHECK_EVERY`] refreshes.
    fn sync(&mut self, register: bool) -> impl ActorFuture<Self, Output = Result<()>> + 'static {
        self.refreshes = self.refreshes.wrapping_add(1);
        let check = self.refreshes.is_multiple_of(CONFLICT_CHECK_EVERY);
        let store = self.store.clone();
        let runner = RunnerRegistration {
            starting: !self.ever_registered,
            ..self.runner.clone()
        };
        let jobs: Vec<JobDescription> = self.jobs.values().cloned().collect();
        let refresh = self.registered && !register;
        async move {
            let seen = refresh && store.runner_seen(&runner.id).await?;
            if !seen {
                store.runner_register(&runner, &jobs).await?;
            }
            let registry = if !seen || check {
                store.registered_jobs(None).await.ok()
            } else {
                None
            };
            Ok((!seen, registry))
        }
        .into_actor(self)
        .map(
            |outcome: Result<(bool, Option<Vec<RegisteredJob>>)>, act, _| {
                let (wrote, registry) = outcome?;
                act.registered = true;
                if wrote {
                    act.ever_registered = true;
                    tracing::debug!(runner_id = %act.runner.id, jobs = act.jobs.len(), "runner registered");
                }
                if let Some(registry) = registry {
                    act.report_conflicts(&registry);
                }
                Ok(())
            },
        )
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.runner.refresh_interval, |act, ctx| {
            ctx.wait(act.sync(false).map(|outcome, act, ctx| {
                if let Err(error) = outcome {
                    super::note_db_error("presence", &error);
                }
                act.schedule(ctx);
            }));
        });
    }

    /// Logs the conflicts of this runner's jobs not logged yet, and those resolved.
    fn report_conflicts(&mut self, registry: &[RegisteredJob]) {
        let ours = registry
            .iter()
            .filter(|job| self.jobs.contains_key(&job.name));
        let (new, resolved) = self.conflicts.update(ours);
        for job in new {
            let variants: Vec<String> = job
                .variants
                .iter()
                .map(|v| format!("{} on {}", v.spec.spec_hash, v.runners.join(", ")))
                .collect();
            tracing::warn!(
                job = %job.name,
                variants = %variants.join("; "),
                "live runners run this job with different specs (a rolling deploy in progress?); each runs its own, nothing is overwritten"
            );
        }
        for job in resolved {
            tracing::info!(job = %job, "live runners agree on the job's spec again");
        }
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.auto {
            self.schedule(ctx);
        }
    }
}

/// Registers the runner and its jobs now; the reply says whether it was written (a failure is
/// retried at the next refresh).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct Register;

impl Handler<Register> for Presence {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, _: Register, _: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(Box::pin(self.sync(true)))
    }
}

/// A job was added or replaced (`Some`), or removed (`None` for the named job): the runner's
/// job set is registered again. The reply says whether it was written (a failure is retried at
/// the next refresh).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct JobsChanged {
    pub(crate) name: String,
    pub(crate) description: Option<JobDescription>,
}

impl Handler<JobsChanged> for Presence {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: JobsChanged, _: &mut Context<Self>) -> Self::Result {
        match msg.description {
            Some(description) => self.jobs.insert(msg.name, description),
            None => self.jobs.remove(&msg.name),
        };
        self.registered = false;
        AtomicResponse::new(Box::pin(self.sync(true)))
    }
}

/// Marks the runner stopped (a clean shutdown) and stops the Presence.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopPresence;

impl Handler<StopPresence> for Presence {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: StopPresence, _: &mut Context<Self>) -> Self::Result {
        let (store, id) = (self.store.clone(), self.runner.id.clone());
        AtomicResponse::new(Box::pin(
            async move { store.runner_stop(&id).await }
                .into_actor(self)
                .map(|outcome, _, ctx| {
                    if let Err(error) = outcome {
                        super::note_db_error("runner_stop", &error);
                    }
                    ctx.stop();
                }),
        ))
    }
}

/// The refresh interval when the scheduler starts without jobs.
pub(crate) const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
