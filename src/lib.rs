//! # cronlease
//!
//! Durable recurring jobs for actix services. Every `(job, scope, plan_time)` is one row in an
//! executions table, and that row is both the distributed lease and the audit record: any number
//! of replicas tick every job, a unique key lets exactly one win each plan, heartbeats keep the
//! winner's lease alive, and a lease whose runner died goes stale and is taken over. Failed
//! attempts are retried with backoff, then dead-lettered. All timing uses the database clock.
//!
//! - Storage: [`SqliteStore`] (embedded default, a file), [`PgStore`] and [`MySqlStore`]
//!   (several replicas; MySQL 8 or MariaDB), behind the [`Store`] trait.
//! - Jobs: [`JobSpec::builder`] with a [`Schedule`] (a fixed cadence or a cron expression in an
//!   IANA time zone), [`Scopes`], a [`CatchUp`] mode, an [`OverlapPolicy`] (default: one run at
//!   a time per scope) and a [`Handler`].
//! - Runtime: [`Scheduler::builder`] starts the actors (Supervisor, Executor, Heartbeat,
//!   RetryPolicy; see `docs/architecture.md`) and returns a [`Scheduler`] handle.
//! - Operations: history ([`Scheduler::executions`], keyset pages), the dead-letter set
//!   ([`Scheduler::dead_executions`], [`Scheduler::replay`]), [`Retention`] of old rows, the
//!   job and runner registry ([`Scheduler::runners`], [`Scheduler::registered_jobs`]), and
//!   metrics through the `metrics` facade ([`telemetry`]; `docs/metrics.md`).
//! - Logs: through [`tracing`](https://docs.rs/tracing); the library is silent until the host
//!   installs a subscriber (e.g. `tracing_subscriber::fmt().with_env_filter("info").init()`).
//!   Every handler runs inside the [`telemetry::EXECUTION_SPAN`] span (job, scope, plan time,
//!   execution id, attempt, runner), so its own log lines carry them; a `tracing-opentelemetry`
//!   layer exports it as an OpenTelemetry span (`docs/observability.md`).
//! - Settings without a code change: [`Config`] from a TOML file and `CRONLEASE_*` variables,
//!   applied with [`SchedulerBuilder::config`] (`docs/configuration.md`).
//! - Feature `cli`: the `cronlease` command-line tool (`docs/cli.md`), which drives all of the
//!   above against the database directly.
//! - Feature `web`: `web::scope` mounts the admin JSON API and HTML dashboard into an
//!   actix-web `App` (`docs/web.md`).
#![deny(missing_docs)]

mod actors;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod control;
mod error;
mod execution;
mod handler;
mod inspect;
mod partition_plan;
mod plan;
pub mod prelude;
mod retry;
mod schedule;
mod scheduler;
mod scope;
mod spec;
pub mod store;
mod takeover;
pub mod telemetry;
#[cfg(feature = "web")]
pub mod web;

pub use actors::retention::{PruneReport, Retention};
pub use config::{
    CONFIG_FILE_VAR, Config, JobOverrides, Keep, RetentionSettings, SchedulerSettings,
};
pub use control::{
    Backfill, BackfillCursor, BackfillOptions, BackfillStatus, CANCELLED_OVERLAP, ClaimGuard,
    GONE_AFTER_INTERVALS, JobDescription, OverlapPolicy, Pause, RegisteredJob, Runner, RunnerState,
    SKIPPED_OVERLAP, SkipReason, SkipSpan, SpecVariant, Trigger, TriggerOptions, TriggerTarget,
    Why,
};
pub use error::{DbErrorKind, Error, Result};
pub use execution::{
    ClaimOutcome, ErrorCode, Execution, FailedAttempt, MAX_ERROR_MSG_BYTES, MAX_RESULT_BYTES,
    Status,
};
pub use handler::{Handler, JobContext, JobError, JobOutput};
pub use plan::{CatchUp, CatchUpPreview};
pub use retry::{Backoff, DbRetry, RetryDecision};
pub use schedule::{CronSchedule, PlannedTime, Schedule, floor_plan, stagger_offset};
pub use scheduler::{RemoveMode, Scheduler, SchedulerBuilder, TickReport};
pub use scope::{ProviderError, Scope, Scopes};
pub use spec::{JobSpec, JobSpecBuilder, PlannerHook};
pub use store::{
    ExecutionCursor, ExecutionFilter, MySqlStore, PgStore, SqliteStore, Store, StoreDeadlines,
    TickClock,
};

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
