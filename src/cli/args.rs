//! The commands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

/// Operate cronlease from a shell: inspect and control the jobs recorded in a database, whether
/// or not the application runs.
#[derive(Debug, Parser)]
#[command(
    name = "cronlease",
    version,
    after_help = "Examples:\n  cronlease --database-url postgres://ops@db/app status\n  CRONLEASE_DATABASE_URL=sqlite://cronlease.db cronlease dead list --job nightly-report\n  cronlease --config cronlease.toml why nightly-report --scope tenant:42 --at 2026-11-29T03:00:00Z\n\nExit codes: 0 ok, 1 operational error, 2 usage error, 3 a `status --fail-on` condition holds."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    /// Print one JSON document instead of tables (field names are stable, see docs/cli.md).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the database is.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The database: a SQLite path, `sqlite://…`, `postgres://…` or `mysql://…`. Default: the
    /// settings file's `database_url`.
    #[arg(
        long,
        env = "CRONLEASE_DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub(crate) database_url: Option<String>,
    /// A settings file (TOML, see docs/configuration.md): its `database_url` and retention.
    #[arg(
        long,
        env = "CRONLEASE_CONFIG",
        hide_env_values = true,
        global = true,
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or upgrade the schema.
    #[command(after_help = "Examples:\n  cronlease migrate --check\n  cronlease migrate")]
    Migrate {
        /// Only report the schema's version; exit 1 when a migration is due.
        #[arg(long)]
        check: bool,
    },
    /// One screen: jobs, next plans, last successes, counts, leases, dead letters, runners.
    #[command(
        after_help = "Examples:\n  cronlease status\n  cronlease status --fail-on dead,stale   # exit 3 when either is present (for monitoring)"
    )]
    Status {
        /// Exit 3 when any of these holds: dead, stale, failed, paused, conflict, no-runner.
        #[arg(long, value_delimiter = ',', value_enum)]
        fail_on: Vec<FailOn>,
    },
    /// The registered jobs and their settings, as the runners registered them.
    Jobs,
    /// The runners sharing the database: live, gone or stopped.
    Runners,
    /// Executions, newest plan first, one page at a time.
    #[command(
        after_help = "Examples:\n  cronlease history --job nightly-report --status FAILED --since 24h\n  cronlease history --scope tenant:42 --since 2026-11-28T00:00:00Z --until 2026-11-29T00:00:00Z\n  cronlease history --job nightly-report --after 1764385200000_0193…   # the next page"
    )]
    History(HistoryArgs),
    /// One execution and its whole failure history.
    #[command(after_help = "Example:\n  cronlease show 0193a4e2-5b7c-7d0e-8f00-1234567890ab")]
    Show {
        /// The execution id.
        id: Uuid,
    },
    /// The dead-letter set: list, show, replay.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Pause a job, or one scope of it, on every runner.
    #[command(
        after_help = "Examples:\n  cronlease pause nightly-report --reason \"warehouse maintenance\"\n  cronlease pause nightly-report --scope tenant:42 --reason \"tenant migration\""
    )]
    Pause(PauseArgs),
    /// Lift a pause of a job, or of one scope of it.
    #[command(after_help = "Example:\n  cronlease resume nightly-report --scope tenant:42")]
    Resume {
        /// The job.
        job: String,
        /// The scope as KIND:ID (default: the pause of the whole job).
        #[arg(long, value_name = "KIND:ID")]
        scope: Option<String>,
    },
    /// Run a job now, outside its schedule: the next tick of any runner of the job starts it.
    #[command(
        after_help = "Examples:\n  cronlease trigger nightly-report --scope tenant:42\n  cronlease trigger nightly-report --all-scopes --key deploy-2026-11-30   # a repeat with the same key runs nothing"
    )]
    Trigger(TriggerArgs),
    /// Run every plan of a job's schedule in a past range (`backfill status`, `backfill cancel`
    /// follow one).
    #[command(
        after_help = "Examples:\n  cronlease backfill nightly-report --from 2026-11-23 --to 2026-11-30 --wait\n  cronlease backfill nightly-report --from 7d --to 1d --scope tenant:42 --rerun\n  cronlease backfill status --active\n  cronlease backfill cancel 0193a4e2-5b7c-7d0e-8f00-1234567890ab"
    )]
    Backfill(BackfillCommand),
    /// Why a plan ran or did not (its row, a pause, the skipped-plan ledger, the schedule).
    #[command(
        after_help = "Examples:\n  cronlease why nightly-report --scope tenant:42 --at 2026-11-29T03:00:00Z\n  cronlease why sync --at 2026-11-29T03:00:00+01:00"
    )]
    Why {
        /// The job.
        job: String,
        /// The scope as KIND:ID. Default: the global scope.
        #[arg(long, value_name = "KIND:ID")]
        scope: Option<String>,
        /// The plan time: RFC 3339, or a duration ago (`2h`).
        #[arg(long, value_name = "TIME")]
        at: String,
    },
    /// The next plan times of a job from its registered schedule, in UTC and its time zone.
    #[command(after_help = "Example:\n  cronlease preview nightly-report --scope tenant:42 -n 5")]
    Preview {
        /// The job.
        job: String,
        /// The scope as KIND:ID: its stagger offset is added to the due times.
        #[arg(long, value_name = "KIND:ID")]
        scope: Option<String>,
        /// How many plan times.
        #[arg(short, default_value_t = 10)]
        n: usize,
    },
    /// Delete executions past their retention (the settings file's `[retention]`, else the
    /// defaults) and runners not seen for long.
    #[command(
        after_help = "Examples:\n  cronlease prune --dry-run\n  cronlease --config prod.toml prune"
    )]
    Prune {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a settings file, or show the settings of each registered job.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Convert the execution history into one partition per UTC day (PostgreSQL only), so the
    /// retention service drops a past day whole; `--undo` makes it one plain table again.
    /// Runners wait while the rows are copied.
    #[command(
        after_help = "Examples:\n  cronlease partition-history\n  cronlease partition-history --days-back 7 --days-ahead 14\n  cronlease partition-history --undo"
    )]
    PartitionHistory {
        /// Past days (before today, UTC) that get a partition of their own; older rows go to
        /// the DEFAULT partition.
        #[arg(long, default_value_t = crate::store::DEFAULT_PARTITION_DAYS_BACK)]
        days_back: u32,
        /// Days after today that get a partition.
        #[arg(long, default_value_t = crate::store::DEFAULT_PARTITION_DAYS_AHEAD)]
        days_ahead: u32,
        /// Turn a partitioned history back into one plain table.
        #[arg(long, conflicts_with_all = ["days_back", "days_ahead"])]
        undo: bool,
    },
}

/// `status --fail-on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FailOn {
    /// Any dead letter.
    Dead,
    /// Any RUNNING row whose lease went stale.
    Stale,
    /// Any FAILED row (awaiting a retry).
    Failed,
    /// Any pause in force.
    Paused,
    /// Live runners disagree on a job's spec.
    Conflict,
    /// No live runner.
    NoRunner,
}

impl FailOn {
    /// The name as typed.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FailOn::Dead => "dead",
            FailOn::Stale => "stale",
            FailOn::Failed => "failed",
            FailOn::Paused => "paused",
            FailOn::Conflict => "conflict",
            FailOn::NoRunner => "no-runner",
        }
    }
}

/// Filters of a listing of executions.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Only this job.
    #[arg(long)]
    pub(crate) job: Option<String>,
    /// Only this scope, as KIND:ID.
    #[arg(long, value_name = "KIND:ID")]
    pub(crate) scope: Option<String>,
    /// Only this status: RUNNING, SUCCESS, FAILED, DEAD, SUPERSEDED or SKIPPED.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only plans at or after this time: RFC 3339, or a duration ago (`24h`).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only plans before this time: RFC 3339, or a duration ago.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Most rows.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Continue after this cursor (printed under a full page).
    #[arg(long, value_name = "CURSOR")]
    pub(crate) after: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// Dead executions, newest plan first.
    #[command(after_help = "Example:\n  cronlease dead list --job nightly-report --since 24h")]
    List(HistoryArgs),
    /// One dead execution and its failure history.
    Show {
        /// The execution id.
        id: Uuid,
    },
    /// Replay dead executions: the same rows run again (same id, the handler's idempotency key).
    #[command(
        after_help = "Examples:\n  cronlease dead replay 0193a4e2-5b7c-7d0e-8f00-1234567890ab\n  cronlease dead replay --job nightly-report --since 12h --dry-run\n  cronlease dead replay --job nightly-report --scope tenant:42 --since 12h"
    )]
    Replay(ReplayArgs),
}

/// What to replay: ids, or the dead rows of a job matching filters.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Execution ids (or use --job with filters).
    #[arg(required_unless_present = "job", conflicts_with = "job")]
    pub(crate) ids: Vec<Uuid>,
    /// Replay the dead rows of this job.
    #[arg(long)]
    pub(crate) job: Option<String>,
    /// Only this scope, as KIND:ID.
    #[arg(long, value_name = "KIND:ID", requires = "job")]
    pub(crate) scope: Option<String>,
    /// Only plans at or after this time: RFC 3339, or a duration ago.
    #[arg(long, value_name = "TIME", requires = "job")]
    pub(crate) since: Option<String>,
    /// Only plans before this time.
    #[arg(long, value_name = "TIME", requires = "job")]
    pub(crate) until: Option<String>,
    /// Most rows replayed in one go.
    #[arg(long, default_value_t = 1000, requires = "job")]
    pub(crate) limit: usize,
    /// Attempts granted to each replayed row.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_REPLAY_ATTEMPTS)]
    pub(crate) attempts: u32,
    /// Only list what would be replayed.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// A pause to set.
#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    /// The job.
    pub(crate) job: String,
    /// Pause only this scope, as KIND:ID.
    #[arg(long, value_name = "KIND:ID")]
    pub(crate) scope: Option<String>,
    /// Why (shown to other operators).
    #[arg(long, default_value = "")]
    pub(crate) reason: String,
    /// Who. Default: `cli:$USER`.
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a settings file (and the CRONLEASE_* variables) without connecting.
    #[command(after_help = "Example:\n  cronlease config check deploy/prod.toml")]
    Check {
        /// The file.
        file: PathBuf,
    },
    /// The settings of each registered job, and the settings file's overrides of them.
    Show,
}

/// A trigger to request.
#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// The job.
    pub(crate) job: String,
    /// Run only this scope, as KIND:ID.
    #[arg(long, value_name = "KIND:ID", conflicts_with = "all_scopes")]
    pub(crate) scope: Option<String>,
    /// Run every scope the job has (the default without --scope).
    #[arg(long)]
    pub(crate) all_scopes: bool,
    /// An idempotency key: a repeated request with the same key (per job) runs nothing.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Who. Default: `cli:$USER`.
    #[arg(long)]
    pub(crate) by: Option<String>,
}

/// `backfill`: start one, or follow one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct BackfillCommand {
    #[command(subcommand)]
    pub(crate) action: Option<BackfillAction>,
    #[command(flatten)]
    pub(crate) start: BackfillStart,
}

/// A backfill to start.
#[derive(Debug, Args)]
pub(crate) struct BackfillStart {
    /// The job.
    #[arg(required = true)]
    pub(crate) job: Option<String>,
    /// The first plan time included: RFC 3339, a date, or a duration ago (`7d`).
    #[arg(long, value_name = "TIME", required = true)]
    pub(crate) from: Option<String>,
    /// The end of the range, excluded (not in the future).
    #[arg(long, value_name = "TIME", required = true)]
    pub(crate) to: Option<String>,
    /// Only these scopes (repeat the option), as KIND:ID. Default: every scope of the job.
    #[arg(long = "scope", value_name = "KIND:ID")]
    pub(crate) scopes: Vec<String>,
    /// Run again plans that already finished.
    #[arg(long)]
    pub(crate) rerun: bool,
    /// Wait until every plan is handed out, with a progress bar.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Who. Default: `cli:$USER`.
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackfillAction {
    /// One backfill's progress, or the backfills of a job or of every job.
    Status {
        /// The backfill id.
        id: Option<Uuid>,
        /// Only this job's.
        #[arg(long)]
        job: Option<String>,
        /// Only active ones.
        #[arg(long)]
        active: bool,
    },
    /// Cancel an active backfill: no more of its plans are handed out.
    Cancel {
        /// The backfill id.
        id: Uuid,
    },
}
