//! The commands that change something, and `config check`.

use std::path::Path;

use serde_json::{Value, json};
use uuid::Uuid;

use super::args::{PauseArgs, ReplayArgs};
use super::context::{Context, parse_scope, parse_time, settings};
use super::inspect::execution_json;
use super::output::{Out, rfc3339, utc};
use super::{Failure, Outcome};
use crate::control::Pause;
use crate::execution::Status;
use crate::store::ExecutionFilter;

/// `migrate [--check]`.
pub(crate) async fn migrate(ctx: &Context, out: &Out, check: bool) -> Outcome {
    let before = ctx.store.migration_status().await?;
    if check {
        if out.json {
            out.print_json(&json!({
                "applied": before.applied, "known": before.known, "current": before.is_current(),
            }));
        } else if before.is_current() {
            println!(
                "schema at version {} of {}: up to date",
                before.applied, before.known
            );
        } else if before.applied > before.known {
            println!(
                "schema at version {}, newer than this tool ({}): upgrade the tool",
                before.applied, before.known
            );
        } else {
            println!(
                "schema at version {} of {}: `cronlease migrate` would apply {} migration(s)",
                before.applied,
                before.known,
                before.known - before.applied
            );
        }
        return if before.applied < before.known {
            Err(Failure::Error(format!(
                "the schema needs {} migration(s)",
                before.known - before.applied
            )))
        } else {
            Ok(())
        };
    }
    ctx.store.migrate().await?;
    let after = ctx.store.migration_status().await?;
    if out.json {
        out.print_json(&json!({"applied_before": before.applied, "applied": after.applied, "known": after.known}));
    } else if before.applied == after.applied {
        println!("schema at version {}: nothing to do", after.applied);
    } else {
        println!(
            "schema migrated from version {} to {}",
            before.applied, after.applied
        );
    }
    Ok(())
}

/// `dead replay`: by ids (all must be dead, else nothing is replayed), or by job and filters.
pub(crate) async fn replay(ctx: &Context, out: &Out, args: &ReplayArgs) -> Outcome {
    if args.attempts == 0 {
        return Err(Failure::Usage("--attempts must be at least 1".into()));
    }
    let rows = match &args.job {
        None => {
            let mut rows = Vec::new();
            for id in &args.ids {
                match ctx.store.execution_get(*id).await? {
                    None => return Err(Failure::Error(format!("no execution with id {id}"))),
                    Some(row) if row.status != Status::Dead => {
                        return Err(Failure::Error(format!(
                            "execution {id} is {}, only DEAD executions can be replayed (nothing was replayed)",
                            row.status
                        )));
                    }
                    Some(row) => rows.push(row),
                }
            }
            rows
        }
        Some(job) => {
            ctx.job(job).await?;
            let now = ctx.now().await?;
            ctx.store
                .execution_list(&ExecutionFilter {
                    job: Some(job.clone()),
                    scope: args.scope.as_deref().map(parse_scope).transpose()?,
                    status: Some(Status::Dead),
                    plan_from: args
                        .since
                        .as_deref()
                        .map(|t| parse_time(t, now))
                        .transpose()?,
                    plan_before: args
                        .until
                        .as_deref()
                        .map(|t| parse_time(t, now))
                        .transpose()?,
                    after: None,
                    limit: args.limit.max(1),
                })
                .await?
        }
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let replayed = if args.dry_run || ids.is_empty() {
        Vec::new()
    } else {
        ctx.store.execution_replay(&ids, args.attempts).await?
    };
    let shown = if args.dry_run { &rows } else { &replayed };
    if out.json {
        let list: Vec<Value> = shown.iter().map(|e| execution_json(e, "UTC")).collect();
        out.print_json(&json!({
            "dry_run": args.dry_run,
            "replayed": if args.dry_run { 0 } else { replayed.len() },
            "executions": list,
        }));
    } else {
        let mut table = out.table(&["ID", "JOB", "SCOPE", "PLAN (UTC)", "ATTEMPTS LEFT"]);
        for e in shown {
            let left = if args.dry_run {
                args.attempts
            } else {
                e.max_attempts - e.attempt
            };
            table.add_row(vec![
                e.id.to_string(),
                e.job_name.clone(),
                e.scope.to_string(),
                utc(Some(e.plan_time)),
                left.to_string(),
            ]);
        }
        if !shown.is_empty() {
            out.print_table(&mut table);
        }
        if args.dry_run {
            println!(
                "dry run: {} dead execution(s) would be replayed",
                rows.len()
            );
        } else {
            println!(
                "replayed {} dead execution(s); the next tick of a runner of the job runs them",
                replayed.len()
            );
        }
    }
    if !args.dry_run && replayed.len() < ids.len() {
        return Err(Failure::Error(format!(
            "{} of the executions were no longer DEAD (replayed by someone else a moment ago)",
            ids.len() - replayed.len()
        )));
    }
    Ok(())
}

/// Who an operator is: `cli:$USER`.
pub(crate) fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// `pause`: the job must be registered.
pub(crate) async fn pause(ctx: &Context, out: &Out, args: &PauseArgs) -> Outcome {
    ctx.job(&args.job).await?;
    let scope = args.scope.as_deref().map(parse_scope).transpose()?;
    let by = args.by.clone().unwrap_or_else(operator);
    let pause = ctx
        .store
        .pause_set(&Pause::new(&args.job, scope, by, &args.reason))
        .await?;
    let what = pause
        .scope
        .as_ref()
        .map_or(format!("job {}", pause.job), |s| {
            format!("{} of job {}", s, pause.job)
        });
    if out.json {
        out.print_json(&json!({
            "job": pause.job, "scope": pause.scope.as_ref().map(ToString::to_string),
            "paused_by": pause.paused_by, "reason": pause.reason,
            "paused_at": rfc3339(Some(pause.paused_at)),
        }));
    } else {
        println!(
            "paused {what} at {} by {}{}; every runner obeys from its next tick",
            utc(Some(pause.paused_at)),
            pause.paused_by,
            if pause.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", pause.reason)
            }
        );
    }
    Ok(())
}

/// `resume`: lifting a pause that is not there is an error naming it.
pub(crate) async fn resume(ctx: &Context, out: &Out, job: &str, scope: Option<&str>) -> Outcome {
    ctx.job(job).await?;
    let scope = scope.map(parse_scope).transpose()?;
    let what = scope
        .as_ref()
        .map_or(format!("job {job}"), |s| format!("{s} of job {job}"));
    if !ctx.store.pause_clear(job, scope.as_ref()).await? {
        return Err(Failure::Error(format!(
            "{what} is not paused (see `cronlease status`)"
        )));
    }
    if out.json {
        out.print_json(
            &json!({"job": job, "scope": scope.as_ref().map(ToString::to_string), "resumed": true}),
        );
    } else {
        println!("resumed {what}; the job's catch-up mode decides what runs next");
    }
    Ok(())
}

/// `config check FILE`: reads the file and the environment without connecting.
pub(crate) fn config_check(out: &Out, file: &Path) -> Outcome {
    let config = settings(Some(file))?;
    if out.json {
        out.print_json(&json!({
            "file": file.display().to_string(),
            "valid": true,
            "database_url": config.database_url.as_deref().map(crate::store::redact_url),
            "jobs": config.jobs.keys().collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{}: valid ({} job override(s){})",
            file.display(),
            config.jobs.len(),
            config
                .database_url
                .as_deref()
                .map_or(String::new(), |u| format!(
                    ", database {}",
                    crate::store::redact_url(u)
                ))
        );
    }
    Ok(())
}
