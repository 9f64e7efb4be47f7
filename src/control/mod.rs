//! The control plane: operators' decisions stored in the database, so every replica obeys them
//! and tools can set them without the application running.
//!
//! - [`Pause`] (`pause.rs`): a paused job, or one paused scope of a job; `PauseSet`, the pauses a
//!   tick obeys.
//! - [`Trigger`] (`trigger.rs`): a request to run a job now, outside its schedule;
//!   `manual_plan_time`, the plan identity of a manual run.
//! - [`Backfill`] (`backfill.rs`): a request to run a range of past plans; `next_step`, which
//!   plans a tick hands out next.
//!
//! Types and decisions only; the store reads and writes them.

mod backfill;
mod pause;
mod trigger;

pub use backfill::{Backfill, BackfillAdvance, BackfillCursor, BackfillOptions, BackfillStatus};
pub(crate) use backfill::{next_step, step_budget};
pub use pause::Pause;
pub(crate) use pause::PauseSet;
pub(crate) use trigger::manual_plan_time;
pub use trigger::{Trigger, TriggerOptions, TriggerTarget};
