//! Jobs added, replaced and removed while the scheduler runs (`Scheduler::add_job`,
//! `replace_job`, `remove_job`).
//!
//! A job added later is a job like the others: its own Heartbeat, its own tick timer, a first
//! tick at once. A removed job never ticks again on this runner; its running attempts finish (or
//! are cancelled, recorded `canceled` and left retry-eligible for a runner that still has the
//! job). Replacing a job is removing it (its running attempts finish under the old spec) and
//! adding the new spec under the same name: the next plans use the new schedule and settings.
//! Rows are keyed by the job's name, so history and pending retries carry over.

use std::sync::Arc;

use actix::prelude::*;

use super::retry_policy::SetBackoff;
use super::supervisor::Supervisor;
use crate::error::{Error, Result};
use crate::spec::JobSpec;

/// Registers a new job and ticks it at once.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct AddJob {
    pub(crate) spec: Arc<JobSpec>,
    /// Replace a job of the same name (its running attempts finish under the old spec).
    pub(crate) replace: bool,
}

impl Handler<AddJob> for Supervisor {
    type Result = Result<()>;

    fn handle(&mut self, msg: AddJob, ctx: &mut Context<Self>) -> Result<()> {
        let name = msg.spec.name.clone();
        let exists = self.has_job(&name);
        match (exists, msg.replace) {
            (true, false) => return Err(Error::DuplicateJob(name.to_string())),
            (false, true) => return Err(Error::UnknownJob(name.to_string())),
            (true, true) => {
                self.retire_slot(&name, false, ctx);
            }
            (false, false) => {}
        }
        self.retry_policy().do_send(SetBackoff {
            job: name.clone(),
            backoff: msg.spec.backoff.clone(),
        });
        self.lower_takeover_threshold(msg.spec.heartbeat_interval);
        let i = self.add_slot(msg.spec);
        self.start_slot(i, ctx);
        tracing::info!(job = %name, replaced = msg.replace, "job registered while running");
        Ok(())
    }
}

/// Removes a job: it never ticks again here.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct RemoveJob {
    pub(crate) name: String,
    /// Cancel its running attempts (recorded `canceled`, retry-eligible) instead of letting
    /// them finish.
    pub(crate) cancel_running: bool,
}

impl Handler<RemoveJob> for Supervisor {
    type Result = Result<()>;

    fn handle(&mut self, msg: RemoveJob, ctx: &mut Context<Self>) -> Result<()> {
        if !self.retire_slot(&msg.name, msg.cancel_running, ctx) {
            return Err(Error::UnknownJob(msg.name));
        }
        tracing::info!(job = %msg.name, cancel_running = msg.cancel_running, "job removed while running");
        Ok(())
    }
}
