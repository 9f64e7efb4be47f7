//! The control plane: operators' decisions stored in the database, so every replica obeys them
//! and tools can set them without the application running.
//!
//! - [`Pause`] (`pause.rs`): a paused job, or one paused scope of a job; `PauseSet`, the pauses a
//!   tick obeys.
//!
//! Types and decisions only; the store reads and writes them.

mod pause;

pub use pause::Pause;
pub(crate) use pause::PauseSet;
