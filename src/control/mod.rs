//! The control plane: operators' decisions stored in the database, so every replica obeys them
//! and tools can set them without the application running.
//!
//! - [`Pause`] (`pause.rs`): a paused job, or one paused scope of a job; `PauseSet`, the pauses a
//!   tick obeys.
//! - [`Runner`], [`RegisteredJob`] (`registry.rs`): which runners are alive and which jobs they
//!   run with which spec; a spec that differs between live runners is reported.
//!
//! Types and decisions only; the store reads and writes them.

mod pause;
mod registry;

pub use pause::Pause;
pub(crate) use pause::PauseSet;
pub(crate) use registry::{ConflictLog, RegistryRow, registered_jobs};
pub use registry::{
    GONE_AFTER_INTERVALS, JobDescription, RegisteredJob, Runner, RunnerRegistration, RunnerState,
    SpecVariant,
};
