//! The `cronlease` command-line tool (feature `cli`): an operator's shell on the database,
//! whether or not the application runs.
//!
//! - `args.rs`: the commands and their options (clap), each with help text and examples.
//! - `context.rs`: the database from `--database-url`, `CRONLEASE_DATABASE_URL` or the settings
//!   file; times typed on the command line; scopes.
//! - `output.rs`: aligned tables for people, one JSON document for scripts (`--json`), colours
//!   only on a terminal and never with `NO_COLOR`, times in the job's time zone and UTC.
//! - `inspect.rs`: the read-only commands (`status`, `jobs`, `runners`, `history`, `show`,
//!   `dead list|show`, `why`, `preview`, `config show`).
//! - `act.rs`: the commands that change something (`migrate`, `dead replay`, `pause`, `resume`,
//!   `prune`) and `config check`.
//! - `partition.rs`: `partition-history [--undo]` (PostgreSQL only).
//! - `manual.rs`: trigger now and backfill (`trigger`, `backfill`, `backfill status|cancel`),
//!   with a progress bar while `--wait`ing.
//!
//! Exit codes: 0 ok; 1 an operational error, said in one sentence on stderr; 2 a usage error;
//! 3 a `status --fail-on` condition holds. A password never appears in any output or error.

mod act;
mod args;
mod context;
mod inspect;
mod manual;
mod output;
mod partition;
mod prune;

use std::process::ExitCode;

use clap::Parser;

use crate::error::Error;
use args::{BackfillAction, Cli, Command, ConfigCommand, DeadCommand};
use context::Context;

/// A failure of a command: what to print and which exit code to return.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An operational error (exit 1), one sentence.
    Error(String),
    /// A usage error found after parsing (exit 2), one sentence.
    Usage(String),
    /// A `status --fail-on` condition holds (exit 3); the table was printed already.
    Unhealthy(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error.to_string())
    }
}

/// What a command returns.
pub(crate) type Outcome = std::result::Result<(), Failure>;

/// Runs the tool with the process's arguments and environment; returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let secrets = context::secrets(&cli);
    let outcome = runtime.block_on(run(cli));
    let scrub = |message: String| {
        secrets
            .iter()
            .fold(message, |m, secret| m.replace(secret.as_str(), "***"))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("error: {}", one_line(&scrub(message)));
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {}", one_line(&scrub(message)));
            ExitCode::from(2)
        }
        Err(Failure::Unhealthy(message)) => {
            eprintln!("unhealthy: {}", one_line(&scrub(message)));
            ExitCode::from(3)
        }
    }
}

/// clap's error as one line (help and version go to stdout with exit 0).
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        _ => {
            // The first paragraph: the message, with the arguments it names on the next lines.
            let text = error.render().to_string();
            let first = text
                .trim_start()
                .split("\n\n")
                .next()
                .unwrap_or("invalid arguments");
            let first = one_line(first.trim_start_matches("error: "));
            eprintln!("error: {first} (see `cronlease --help`)");
            ExitCode::from(2)
        }
    }
}

/// Newlines and repeated spaces folded, so every error is one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn run(cli: Cli) -> Outcome {
    let out = output::Out::new(cli.json);
    // A settings file is checked without connecting.
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        return act::config_check(&out, file);
    }
    // Only `migrate` works on a database without the current schema (or a new SQLite file).
    let need_schema = !matches!(cli.command, Command::Migrate { .. });
    let ctx = Context::open(&cli.global, need_schema).await?;
    match cli.command {
        Command::Migrate { check } => act::migrate(&ctx, &out, check).await,
        Command::Config(ConfigCommand::Check { file }) => act::config_check(&out, &file),
        Command::Config(ConfigCommand::Show) => inspect::config_show(&ctx, &out).await,
        Command::Status { fail_on } => inspect::status(&ctx, &out, &fail_on).await,
        Command::Jobs => inspect::jobs(&ctx, &out).await,
        Command::Runners => inspect::runners(&ctx, &out).await,
        Command::History(filter) => inspect::history(&ctx, &out, &filter, None).await,
        Command::Show { id } => inspect::show(&ctx, &out, id, false).await,
        Command::Dead(DeadCommand::List(filter)) => {
            inspect::history(&ctx, &out, &filter, Some(crate::Status::Dead)).await
        }
        Command::Dead(DeadCommand::Show { id }) => inspect::show(&ctx, &out, id, true).await,
        Command::Dead(DeadCommand::Replay(replay)) => act::replay(&ctx, &out, &replay).await,
        Command::Pause(pause) => act::pause(&ctx, &out, &pause).await,
        Command::Resume { job, scope } => act::resume(&ctx, &out, &job, scope.as_deref()).await,
        Command::Why { job, scope, at } => {
            inspect::why(&ctx, &out, &job, scope.as_deref(), &at).await
        }
        Command::Preview { job, scope, n } => {
            inspect::preview(&ctx, &out, &job, scope.as_deref(), n).await
        }
        Command::Prune { dry_run } => prune::prune(&ctx, &out, dry_run).await,
        Command::PartitionHistory {
            days_back,
            days_ahead,
            undo,
        } => partition::partition_history(&ctx, &out, days_back, days_ahead, undo).await,
        Command::Trigger(trigger) => manual::trigger(&ctx, &out, &trigger).await,
        Command::Backfill(backfill) => match backfill.action {
            None => manual::backfill(&ctx, &out, &backfill.start).await,
            Some(BackfillAction::Status { id, job, active }) => {
                manual::status(&ctx, &out, id, job.as_deref(), active).await
            }
            Some(BackfillAction::Cancel { id }) => manual::cancel(&ctx, &out, id).await,
        },
    }
}
