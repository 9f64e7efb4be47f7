//! The control plane: operators' decisions stored in the database, so every replica obeys them
//! and tools can set them without the application running.
//!
//! - [`Pause`] (`pause.rs`): a paused job, or one paused scope of a job; `PauseSet`, the pauses a
//!   tick obeys.
//! - [`SkipSpan`] (`ledger.rs`): the skipped-plan ledger, plans deliberately not run and why;
//!   `SkipCollector`, a tick's catch-up skips grouped into few rows.
//! - [`Why`] (`why.rs`): the answer to "why didn't this plan run?", decided from the facts
//!   (`inspect::why_plan` gathers them from a store).
//! - [`Runner`], [`RegisteredJob`] (`registry.rs`): which runners are alive and which jobs they
//!   run with which spec; a spec that differs between live runners is reported.
//! - [`Trigger`] (`trigger.rs`): a request to run a job now, outside its schedule;
//!   `manual_plan_time`, the plan identity of a manual run.
//! - [`Backfill`] (`backfill.rs`): a request to run a range of past plans; `next_step`, which
//!   plans a tick hands out next.
//! - [`OverlapPolicy`] and [`ClaimGuard`] (`overlap.rs`): what a claim does with a plan whose
//!   scope is still running, and the job's concurrency limit; `decide`, the decision the stores
//!   apply under the job's claim lock.
//!
//! Types and decisions only; the store reads and writes them.

mod backfill;
mod ledger;
mod overlap;
mod pause;
mod registry;
mod trigger;
mod why;

pub use backfill::{Backfill, BackfillAdvance, BackfillCursor, BackfillOptions, BackfillStatus};
pub(crate) use backfill::{next_step, step_budget};
pub(crate) use ledger::{CatchUpSkip, SkipCollector};
pub use ledger::{SkipReason, SkipSpan};
pub use overlap::{CANCELLED_OVERLAP, ClaimGuard, OverlapPolicy, SKIPPED_OVERLAP};
pub(crate) use overlap::{GuardDecision, GuardRow, Offer, decide};
pub use pause::Pause;
pub(crate) use pause::PauseSet;
pub(crate) use registry::{ConflictLog, RegistryRow, registered_jobs};
pub use registry::{
    GONE_AFTER_INTERVALS, JobDescription, RegisteredJob, Runner, RunnerRegistration, RunnerState,
    SpecVariant,
};
pub(crate) use trigger::manual_plan_time;
pub use trigger::{Trigger, TriggerOptions, TriggerTarget};
pub use why::Why;
pub(crate) use why::{PlanFacts, explain};
