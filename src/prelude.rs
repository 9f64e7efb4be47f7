//! What an embedding service imports: `use cronlease::prelude::*;`.

pub use crate::{
    Backoff, CatchUp, ExecutionFilter, JobContext, JobError, JobOutput, JobSpec, MySqlStore,
    OverlapPolicy, PgStore, RemoveMode, Retention, Schedule, Scheduler, Scope, Scopes, SqliteStore,
    Status, Store,
};
