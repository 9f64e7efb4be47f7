//! The control plane: operators' decisions stored in the database, so every replica obeys them
//! and tools can set them without the application running.
//!
//! - [`Pause`] (`pause.rs`): a paused job, or one paused scope of a job; `PauseSet`, the pauses a
//!   tick obeys.
//! - [`OverlapPolicy`] and [`ClaimGuard`] (`overlap.rs`): what a claim does with a plan whose
//!   scope is still running, and the job's concurrency limit; `decide`, the decision the stores
//!   apply under the job's claim lock.
//!
//! Types and decisions only; the store reads and writes them.

mod overlap;
mod pause;

pub use overlap::{CANCELLED_OVERLAP, ClaimGuard, OverlapPolicy, SKIPPED_OVERLAP};
pub(crate) use overlap::{GuardDecision, GuardRow, Offer, decide};
pub use pause::Pause;
pub(crate) use pause::PauseSet;
