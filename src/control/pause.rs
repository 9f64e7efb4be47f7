//! Pauses: an operator stops a job, or one scope of a job, from starting attempts.
//!
//! A pause is a row in `cronlease_pauses`, read by every tick of the job (in the same statement
//! as the database clock, so obeying pauses costs no statement). While a job or scope is paused:
//! no new plan is claimed and no retry is started for it; leases are still swept, and attempts
//! already running finish. On resume nothing is replayed by the pause itself: the job's catch-up
//! mode decides as after any downtime (LatestOnly runs the newest due plan, EveryPlan the plans
//! of its window), and FAILED plans are retried as they come due.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::scope::Scope;

/// A paused job (`scope: None`) or a paused scope of a job, with who paused it, why and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pause {
    /// The job's name.
    pub job: String,
    /// The paused scope; `None` pauses every scope of the job.
    pub scope: Option<Scope>,
    /// Who paused it (free text: a user, a tool).
    pub paused_by: String,
    /// Why (free text, shown to operators).
    pub reason: String,
    /// When (database clock).
    pub paused_at: DateTime<Utc>,
}

impl Pause {
    /// A pause to store; `paused_at` is replaced by the database clock when it is written.
    pub fn new(
        job: impl Into<String>,
        scope: Option<Scope>,
        paused_by: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Pause {
            job: job.into(),
            scope,
            paused_by: paused_by.into(),
            reason: reason.into(),
            paused_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// The pauses of one job that a tick obeys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PauseSet {
    whole_job: bool,
    scopes: HashSet<Scope>,
}

impl PauseSet {
    /// From the paused scopes of the job read with the clock (`None`: the whole job).
    pub(crate) fn new(paused: impl IntoIterator<Item = Option<Scope>>) -> Self {
        let mut set = PauseSet::default();
        for scope in paused {
            match scope {
                None => set.whole_job = true,
                Some(scope) => {
                    set.scopes.insert(scope);
                }
            }
        }
        set
    }

    /// Whether the whole job is paused.
    pub(crate) fn job_paused(&self) -> bool {
        self.whole_job
    }

    /// Whether `scope` may start attempts (neither it nor its job is paused).
    pub(crate) fn runs(&self, scope: &Scope) -> bool {
        !self.whole_job && (self.scopes.is_empty() || !self.scopes.contains(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_pause_stops_every_scope_and_a_scope_pause_only_its_own() {
        let nothing = PauseSet::new([]);
        assert!(!nothing.job_paused());
        assert!(nothing.runs(&Scope::new("tenant", "1")));

        let one = PauseSet::new([Some(Scope::new("tenant", "1"))]);
        assert!(!one.job_paused());
        assert!(!one.runs(&Scope::new("tenant", "1")));
        assert!(one.runs(&Scope::new("tenant", "2")));

        let all = PauseSet::new([Some(Scope::new("tenant", "1")), None]);
        assert!(all.job_paused());
        assert!(!all.runs(&Scope::new("tenant", "2")));
    }
}
