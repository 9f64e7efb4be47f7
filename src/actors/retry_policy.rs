//! The RetryPolicy actor: decides whether a failed attempt is retried (and when) or dead-lettered.
//!
//! The decision itself is the pure `retry::decide`; this actor holds each job's [`Backoff`] and
//! the randomness for jitter, so executors ask one place and policies can change without
//! touching them.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::retry::{Backoff, RetryDecision, decide};

/// Holds every job's backoff.
pub(crate) struct RetryPolicy {
    backoffs: HashMap<Arc<str>, Backoff>,
}

impl RetryPolicy {
    pub(crate) fn new(backoffs: HashMap<Arc<str>, Backoff>) -> Self {
        RetryPolicy { backoffs }
    }
}

impl Actor for RetryPolicy {
    type Context = Context<Self>;
}

/// Sets the backoff of a job added or replaced while running.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SetBackoff {
    pub(crate) job: Arc<str>,
    pub(crate) backoff: Backoff,
}

impl Handler<SetBackoff> for RetryPolicy {
    type Result = ();

    fn handle(&mut self, msg: SetBackoff, _: &mut Context<Self>) {
        self.backoffs.insert(msg.job, msg.backoff);
    }
}

/// Asks what happens to failed attempt `attempt` of `max_attempts` of `job`.
#[derive(Message)]
#[rtype(result = "RetryDecision")]
pub(crate) struct Decide {
    pub(crate) job: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) permanent: bool,
}

impl Handler<Decide> for RetryPolicy {
    type Result = MessageResult<Decide>;

    fn handle(&mut self, msg: Decide, _: &mut Context<Self>) -> Self::Result {
        let backoff = self.backoffs.get(&msg.job).cloned().unwrap_or_default();
        MessageResult(decide(
            &backoff,
            msg.attempt,
            msg.max_attempts,
            msg.permanent,
            fastrand::f64(),
        ))
    }
}
