//! The read-only commands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::args::{FailOn, HistoryArgs};
use super::context::{Context, parse_scope, parse_time};
use super::output::{Out, cut, duration, local, local_json, rfc3339, utc};
use super::{Failure, Outcome};
use crate::config::JobOverrides;
use crate::control::{JobDescription, RunnerState, Why};
use crate::execution::{Execution, Status};
use crate::inspect::{PlanTiming, why_plan};
use crate::schedule::{delta, stagger_offset};
use crate::scope::Scope;
use crate::store::{ExecutionCursor, ExecutionFilter};

/// Each registered job's time zone, for showing its times.
async fn zones(ctx: &Context) -> Result<HashMap<String, String>, Failure> {
    Ok(ctx
        .store
        .registered_jobs(None)
        .await?
        .into_iter()
        .map(|job| (job.name, job.spec.time_zone))
        .collect())
}

fn zone_of<'a>(zones: &'a HashMap<String, String>, job: &str) -> &'a str {
    zones.get(job).map_or("UTC", String::as_str)
}

/// An execution as JSON: the row's fields (see docs/cli.md), plus its job's time zone and its
/// plan time there.
pub(crate) fn execution_json(e: &Execution, zone: &str) -> Value {
    let mut value = serde_json::to_value(e).expect("an execution serializes");
    if let Value::Object(map) = &mut value {
        map.insert("scope_text".into(), e.scope.to_string().into());
        map.insert("time_zone".into(), zone.into());
        map.insert(
            "plan_time_local".into(),
            local_json(Some(e.plan_time), zone),
        );
    }
    value
}

/// `status`: one screen for the whole database.
pub(crate) async fn status(ctx: &Context, out: &Out, fail_on: &[FailOn]) -> Outcome {
    let store = &ctx.store;
    let now = ctx.now().await?;
    let jobs = store.registered_jobs(None).await?;
    let pauses = store.pause_list(None).await?;
    let runners = store.runner_list().await?;
    let counts: HashMap<Status, i64> = store
        .execution_count_by_status(None)
        .await?
        .into_iter()
        .collect();
    let stale: HashMap<String, i64> = store.execution_count_stale().await?.into_iter().collect();
    let running = store
        .execution_list(&ExecutionFilter {
            status: Some(Status::Running),
            limit: 10_000,
            ..ExecutionFilter::default()
        })
        .await?;
    let oldest = running
        .iter()
        .filter(|e| e.started_at.is_some())
        .min_by_key(|e| e.started_at);
    let mut rows = Vec::new();
    for job in &jobs {
        let spec = &job.spec;
        let by_status: HashMap<Status, i64> = store
            .execution_count_by_status(Some(&job.name))
            .await?
            .into_iter()
            .collect();
        let last_success = store
            .execution_list(&ExecutionFilter {
                job: Some(job.name.clone()),
                status: Some(Status::Success),
                limit: 1,
                ..ExecutionFilter::default()
            })
            .await?
            .into_iter()
            .next();
        let next = spec
            .upcoming(now, 1)
            .ok()
            .and_then(|p| p.into_iter().next());
        let job_pauses: Vec<_> = pauses.iter().filter(|p| p.job == job.name).collect();
        rows.push((job, by_status, last_success, next, job_pauses));
    }
    let live = runners
        .iter()
        .filter(|r| r.state == RunnerState::Live)
        .count();
    let gone = runners
        .iter()
        .filter(|r| r.state == RunnerState::Gone)
        .count();
    let stopped = runners
        .iter()
        .filter(|r| r.state == RunnerState::Stopped)
        .count();
    let dead = counts.get(&Status::Dead).copied().unwrap_or(0);
    let failed = counts.get(&Status::Failed).copied().unwrap_or(0);
    let stale_total: i64 = stale.values().sum();
    let conflicts: Vec<&str> = jobs
        .iter()
        .filter(|j| j.conflicting)
        .map(|j| j.name.as_str())
        .collect();
    let mut failing = Vec::new();
    for condition in fail_on {
        let holds = match condition {
            FailOn::Dead => (dead > 0).then(|| format!("{dead} dead letter(s)")),
            FailOn::Stale => (stale_total > 0).then(|| format!("{stale_total} stale lease(s)")),
            FailOn::Failed => (failed > 0).then(|| format!("{failed} failed execution(s)")),
            FailOn::Paused => (!pauses.is_empty()).then(|| format!("{} pause(s)", pauses.len())),
            FailOn::Conflict => (!conflicts.is_empty())
                .then(|| format!("conflicting specs of {}", conflicts.join(", "))),
            FailOn::NoRunner => (live == 0).then(|| "no live runner".to_owned()),
        };
        if let Some(what) = holds {
            failing.push((condition.as_str(), what));
        }
    }
    if out.json {
        let counts_json = |c: &HashMap<Status, i64>| {
            Status::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), json!(c.get(s).copied().unwrap_or(0))))
                .collect::<serde_json::Map<_, _>>()
        };
        let jobs_json: Vec<Value> = rows
            .iter()
            .map(|(job, by_status, last, next, job_pauses)| {
                let zone = job.spec.time_zone.as_str();
                json!({
                    "name": job.name,
                    "schedule": job.spec.schedule,
                    "time_zone": zone,
                    "paused": job_pauses.iter().any(|p| p.scope.is_none()),
                    "paused_scopes": job_pauses.iter().filter_map(|p| p.scope.as_ref().map(Scope::to_string)).collect::<Vec<_>>(),
                    "next_plan_time": rfc3339(next.as_ref().map(|n| n.plan_time)),
                    "next_plan_time_local": local_json(next.as_ref().map(|n| n.plan_time), zone),
                    "last_success_plan_time": rfc3339(last.as_ref().map(|e| e.plan_time)),
                    "last_success_finished_at": rfc3339(last.as_ref().and_then(|e| e.finished_at)),
                    "counts": counts_json(by_status),
                    "stale_leases": stale.get(&job.name).copied().unwrap_or(0),
                    "conflicting": job.conflicting,
                })
            })
            .collect();
        out.print_json(&json!({
            "now": rfc3339(Some(now)),
            "jobs": jobs_json,
            "counts": counts_json(&counts),
            "oldest_running": oldest.map(|e| json!({
                "id": e.id, "job_name": e.job_name, "scope": e.scope.to_string(),
                "plan_time": rfc3339(Some(e.plan_time)), "started_at": rfc3339(e.started_at),
                "runner_id": e.runner_id,
            })),
            "stale_leases": stale_total,
            "dead_letters": dead,
            "runners": {"live": live, "gone": gone, "stopped": stopped},
            "conflicting_jobs": conflicts,
            "failing": failing.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        }));
    } else {
        let mut table = out.table(&[
            "JOB",
            "SCHEDULE",
            "ZONE",
            "PAUSED",
            "NEXT PLAN (LOCAL)",
            "NEXT PLAN (UTC)",
            "LAST SUCCESS (PLAN, UTC)",
            "RUNNING",
            "FAILED",
            "DEAD",
            "STALE",
        ]);
        for (job, by_status, last, next, job_pauses) in &rows {
            let zone = job.spec.time_zone.as_str();
            let paused = if job_pauses.iter().any(|p| p.scope.is_none()) {
                "job".to_owned()
            } else if job_pauses.is_empty() {
                "-".to_owned()
            } else {
                format!("{} scope(s)", job_pauses.len())
            };
            let n = |s| by_status.get(&s).copied().unwrap_or(0);
            let job_stale = stale.get(&job.name).copied().unwrap_or(0);
            table.add_row(vec![
                comfy_table::Cell::new(&job.name),
                comfy_table::Cell::new(job.spec.schedule.as_deref().unwrap_or("planner hook")),
                comfy_table::Cell::new(zone),
                out.alarm(paused, !job_pauses.is_empty()),
                comfy_table::Cell::new(local(next.as_ref().map(|p| p.plan_time), zone)),
                comfy_table::Cell::new(utc(next.as_ref().map(|p| p.plan_time))),
                comfy_table::Cell::new(utc(last.as_ref().map(|e| e.plan_time))),
                comfy_table::Cell::new(n(Status::Running)),
                out.alarm(n(Status::Failed), n(Status::Failed) > 0),
                out.alarm(n(Status::Dead), n(Status::Dead) > 0),
                out.alarm(job_stale, job_stale > 0),
            ]);
        }
        out.print_table(&mut table);
        println!();
        let mut summary = out.table(&["TOTALS", ""]);
        summary.add_row(vec![
            "executions".to_owned(),
            Status::ALL
                .iter()
                .map(|s| format!("{} {}", s, counts.get(s).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        summary.add_row(vec![
            "oldest running lease".to_owned(),
            oldest.map_or("none".into(), |e| {
                format!(
                    "{} {} since {} ({})",
                    e.job_name,
                    e.scope,
                    utc(e.started_at),
                    e.id
                )
            }),
        ]);
        summary.add_row(vec!["stale leases".to_owned(), stale_total.to_string()]);
        summary.add_row(vec!["dead letters".to_owned(), dead.to_string()]);
        summary.add_row(vec![
            "runners".to_owned(),
            format!("{live} live, {gone} gone, {stopped} stopped"),
        ]);
        summary.add_row(vec![
            "conflicting specs".to_owned(),
            if conflicts.is_empty() {
                "none".to_owned()
            } else {
                conflicts.join(", ")
            },
        ]);
        out.print_table(&mut summary);
    }
    if failing.is_empty() {
        Ok(())
    } else {
        let what: Vec<String> = failing.into_iter().map(|(_, w)| w).collect();
        Err(Failure::Unhealthy(what.join("; ")))
    }
}

/// `jobs`: the registry.
pub(crate) async fn jobs(ctx: &Context, out: &Out) -> Outcome {
    let jobs = ctx.store.registered_jobs(None).await?;
    if out.json {
        let list: Vec<Value> = jobs
            .iter()
            .map(|job| {
                let mut value = description_json(&job.spec);
                value["conflicting"] = json!(job.conflicting);
                value["variants"] = job
                    .variants
                    .iter()
                    .map(|v| json!({"spec_hash": v.spec.spec_hash, "runners": v.runners}))
                    .collect();
                value["runners"] = job
                    .runners
                    .iter()
                    .map(|(id, state)| json!({"id": id, "state": state.as_str()}))
                    .collect();
                value
            })
            .collect();
        out.print_json(&json!({ "jobs": list }));
        return Ok(());
    }
    let mut table = out.table(&[
        "JOB",
        "SCHEDULE",
        "ZONE",
        "CATCH-UP",
        "ATTEMPTS",
        "BACKOFF",
        "RUN TIMEOUT",
        "STALE TIMEOUT",
        "LIVE RUNNERS",
        "SPEC",
    ]);
    for job in &jobs {
        let s = &job.spec;
        let live = job
            .runners
            .iter()
            .filter(|(_, st)| *st == RunnerState::Live)
            .count();
        table.add_row(vec![
            comfy_table::Cell::new(&job.name),
            comfy_table::Cell::new(s.schedule.as_deref().unwrap_or("planner hook")),
            comfy_table::Cell::new(&s.time_zone),
            comfy_table::Cell::new(&s.catch_up),
            comfy_table::Cell::new(s.max_attempts),
            comfy_table::Cell::new(&s.backoff),
            comfy_table::Cell::new(duration(s.run_timeout)),
            comfy_table::Cell::new(duration(s.stale_timeout)),
            out.alarm(live, live == 0),
            out.alarm(
                if job.conflicting {
                    format!("CONFLICT ({} variants)", job.variants.len())
                } else {
                    "ok".to_owned()
                },
                job.conflicting,
            ),
        ]);
    }
    out.print_table(&mut table);
    Ok(())
}

/// A job's registered spec as JSON (durations in milliseconds).
fn description_json(s: &JobDescription) -> Value {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    json!({
        "name": s.name,
        "schedule": s.schedule,
        "time_zone": s.time_zone,
        "stagger_ms": ms(s.stagger),
        "schedule_delay_ms": ms(s.schedule_delay),
        "catch_up": s.catch_up,
        "max_attempts": s.max_attempts,
        "backoff": s.backoff,
        "run_timeout_ms": ms(s.run_timeout),
        "stale_timeout_ms": ms(s.stale_timeout),
        "heartbeat_interval_ms": ms(s.heartbeat_interval),
        "spec_hash": s.spec_hash,
    })
}

/// `runners`.
pub(crate) async fn runners(ctx: &Context, out: &Out) -> Outcome {
    let runners = ctx.store.runner_list().await?;
    if out.json {
        let list: Vec<Value> = runners
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "host": r.host, "pid": r.pid, "version": r.version,
                    "state": r.state.as_str(), "started_at": rfc3339(Some(r.started_at)),
                    "last_seen": rfc3339(Some(r.last_seen)), "stopped_at": rfc3339(r.stopped_at),
                    "refresh_interval_ms": r.refresh_interval.as_millis() as u64,
                })
            })
            .collect();
        out.print_json(&json!({ "runners": list }));
        return Ok(());
    }
    let mut table = out.table(&[
        "RUNNER",
        "HOST",
        "PID",
        "VERSION",
        "STATE",
        "STARTED (UTC)",
        "LAST SEEN (UTC)",
    ]);
    for r in &runners {
        table.add_row(vec![
            comfy_table::Cell::new(&r.id),
            comfy_table::Cell::new(&r.host),
            comfy_table::Cell::new(r.pid),
            comfy_table::Cell::new(&r.version),
            out.alarm(r.state.as_str(), r.state == RunnerState::Gone),
            comfy_table::Cell::new(utc(Some(r.started_at))),
            comfy_table::Cell::new(utc(Some(r.last_seen))),
        ]);
    }
    out.print_table(&mut table);
    Ok(())
}

/// The filter `args` describe (`status` forced when given).
async fn filter(
    ctx: &Context,
    args: &HistoryArgs,
    forced: Option<Status>,
) -> Result<ExecutionFilter, Failure> {
    let status = match (&args.status, forced) {
        (_, Some(forced)) => Some(forced),
        (Some(text), None) => Some(text.to_ascii_uppercase().parse::<Status>().map_err(|_| {
            Failure::Usage(format!(
                "status `{text}` is not one of RUNNING, SUCCESS, FAILED, DEAD, SUPERSEDED, SKIPPED"
            ))
        })?),
        (None, None) => None,
    };
    let needs_now = args.since.is_some() || args.until.is_some();
    let now = if needs_now {
        ctx.now().await?
    } else {
        Utc::now()
    };
    Ok(ExecutionFilter {
        job: args.job.clone(),
        scope: args.scope.as_deref().map(parse_scope).transpose()?,
        status,
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
        after: args
            .after
            .as_deref()
            .map(|c| c.parse::<ExecutionCursor>().map_err(Failure::Usage))
            .transpose()?,
        limit: args.limit.max(1),
    })
}

/// `history` and `dead list`: one page of executions.
pub(crate) async fn history(
    ctx: &Context,
    out: &Out,
    args: &HistoryArgs,
    forced: Option<Status>,
) -> Outcome {
    let filter = filter(ctx, args, forced).await?;
    let rows = ctx.store.execution_list(&filter).await?;
    let zones = zones(ctx).await?;
    let next = filter
        .next_page(&rows)
        .and_then(|f| f.after)
        .map(|c| c.to_string());
    if out.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|e| execution_json(e, zone_of(&zones, &e.job_name)))
            .collect();
        out.print_json(&json!({ "executions": list, "next_after": next }));
        return Ok(());
    }
    let mut table = out.table(&[
        "ID",
        "JOB",
        "SCOPE",
        "PLAN (LOCAL)",
        "PLAN (UTC)",
        "STATUS",
        "RUN",
        "ATTEMPT",
        "DURATION",
        "ERROR",
    ]);
    for e in &rows {
        let zone = zone_of(&zones, &e.job_name);
        table.add_row(vec![
            comfy_table::Cell::new(e.id),
            comfy_table::Cell::new(&e.job_name),
            comfy_table::Cell::new(&e.scope),
            comfy_table::Cell::new(local(Some(e.plan_time), zone)),
            comfy_table::Cell::new(utc(Some(e.plan_time))),
            out.status(e.status),
            comfy_table::Cell::new(if e.trigger_id.is_some() {
                "manual"
            } else {
                "scheduled"
            }),
            comfy_table::Cell::new(format!("{}/{}", e.attempt, e.max_attempts)),
            comfy_table::Cell::new(e.duration_ms.map_or("-".into(), |ms| format!("{ms} ms"))),
            comfy_table::Cell::new(match (&e.error_code, &e.error_msg) {
                (Some(code), Some(msg)) => cut(&format!("{code}: {msg}"), 60),
                (Some(code), None) => code.clone(),
                _ => "-".into(),
            }),
        ]);
    }
    if rows.is_empty() {
        println!("no executions match");
    } else {
        out.print_table(&mut table);
    }
    if let Some(next) = next {
        println!("\nmore: add --after {next}");
    }
    Ok(())
}

/// `show` and `dead show`: one row and its failure history.
pub(crate) async fn show(ctx: &Context, out: &Out, id: Uuid, dead_only: bool) -> Outcome {
    let e = ctx
        .store
        .execution_get(id)
        .await?
        .ok_or_else(|| Failure::Error(format!("no execution with id {id}")))?;
    if dead_only && e.status != Status::Dead {
        return Err(Failure::Error(format!(
            "execution {id} is {}, not DEAD (see `cronlease show {id}`)",
            e.status
        )));
    }
    let zones = zones(ctx).await?;
    let zone = zone_of(&zones, &e.job_name);
    if out.json {
        out.print_json(&execution_json(&e, zone));
        return Ok(());
    }
    let mut table = out.table(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| {
        table.add_row(vec![k.to_owned(), v]);
    };
    row("id", e.id.to_string());
    row("job", e.job_name.clone());
    row("scope", e.scope.to_string());
    row(
        "plan time",
        format!(
            "{} ({})",
            utc(Some(e.plan_time)),
            local(Some(e.plan_time), zone)
        ),
    );
    row("status", e.status.to_string());
    row("attempt", format!("{} of {}", e.attempt, e.max_attempts));
    row("claim", e.claim_outcome.as_str().to_owned());
    row("runner", e.runner_id.clone());
    row("started", utc(e.started_at));
    row("finished", utc(e.finished_at));
    row("heartbeat", utc(e.heartbeat_at));
    row("stale after", utc(e.stale_after));
    row("next retry", utc(e.next_retry_at));
    row("replayed", utc(e.replayed_at));
    row(
        "duration",
        e.duration_ms.map_or("-".into(), |ms| format!("{ms} ms")),
    );
    row(
        "rows affected",
        e.rows_affected.map_or("-".into(), |n| n.to_string()),
    );
    row("result", cut(&e.result.to_string(), 200));
    row(
        "error",
        match (&e.error_code, &e.error_msg) {
            (Some(code), Some(msg)) => format!("{code}: {}", cut(msg, 200)),
            (Some(code), None) => code.clone(),
            _ => "-".into(),
        },
    );
    out.print_table(&mut table);
    println!();
    if e.failures.is_empty() {
        println!("no failed attempts");
    } else {
        let mut failures = out.table(&[
            "ATTEMPT",
            "CODE",
            "STARTED (UTC)",
            "FINISHED (UTC)",
            "MESSAGE",
        ]);
        for f in &e.failures {
            failures.add_row(vec![
                f.attempt.to_string(),
                f.code.clone(),
                utc(f.started_at),
                utc(f.finished_at),
                cut(&f.message, 120),
            ]);
        }
        out.print_table(&mut failures);
    }
    Ok(())
}

/// `why`: the ledger's answer for one plan, from the registered schedule.
pub(crate) async fn why(
    ctx: &Context,
    out: &Out,
    job: &str,
    scope: Option<&str>,
    at: &str,
) -> Outcome {
    let registered = ctx.job(job).await?;
    let scope = scope
        .map(parse_scope)
        .transpose()?
        .unwrap_or_else(Scope::global);
    let plan_time = parse_time(at, ctx.now().await?)?;
    let spec = &registered.spec;
    let timing = PlanTiming {
        schedule: spec.schedule().transpose()?,
        stagger: spec.stagger,
        schedule_delay: spec.schedule_delay,
    };
    let answer = why_plan(&*ctx.store, job, &timing, &scope, plan_time).await?;
    let zone = spec.time_zone.as_str();
    if out.json {
        let (kind, detail) = why_json(&answer, zone);
        out.print_json(&json!({
            "job": job,
            "scope": scope.to_string(),
            "plan_time": rfc3339(Some(plan_time)),
            "plan_time_local": local_json(Some(plan_time), zone),
            "answer": kind,
            "description": answer.describe(),
            "detail": detail,
        }));
        return Ok(());
    }
    println!(
        "{job} {scope} at {} ({}):\n  {}",
        utc(Some(plan_time)),
        local(Some(plan_time), zone),
        answer.describe()
    );
    Ok(())
}

/// The answer's kind and its facts, for JSON.
fn why_json(answer: &Why, zone: &str) -> (&'static str, Value) {
    match answer {
        Why::Ran(row) => ("ran", execution_json(row, zone)),
        Why::Paused(p) => (
            "paused",
            json!({"paused_by": p.paused_by, "reason": p.reason, "paused_at": rfc3339(Some(p.paused_at)),
                   "scope": p.scope.as_ref().map(Scope::to_string)}),
        ),
        Why::Skipped(s) => (
            "skipped",
            json!({"reason": s.reason.to_string(), "from": rfc3339(Some(s.from)), "to": rfc3339(Some(s.to)),
                   "plans": s.plans, "detail": s.detail, "scope": s.scope.as_ref().map(Scope::to_string)}),
        ),
        Why::NotDueYet { due_at } => ("not_due_yet", json!({"due_at": rfc3339(Some(*due_at))})),
        Why::Pending { due_at } => ("pending", json!({"due_at": rfc3339(Some(*due_at))})),
        Why::NotAPlanTime { previous, next } => (
            "not_a_plan_time",
            json!({"previous": rfc3339(*previous), "next": rfc3339(*next)}),
        ),
        Why::BeforeHistory => ("before_history", Value::Null),
        Why::Unknown => ("unknown", Value::Null),
    }
}

/// `preview`: the next plan times from the registered schedule.
pub(crate) async fn preview(
    ctx: &Context,
    out: &Out,
    job: &str,
    scope: Option<&str>,
    n: usize,
) -> Outcome {
    let registered = ctx.job(job).await?;
    let spec = &registered.spec;
    if spec.schedule.is_none() {
        return Err(Failure::Error(format!(
            "job `{job}` plans with a planner hook: it has no schedule to preview"
        )));
    }
    let scope = scope.map(parse_scope).transpose()?;
    let offset = match &scope {
        Some(scope) if !spec.stagger.is_zero() => stagger_offset(job, scope, spec.stagger),
        _ => std::time::Duration::ZERO,
    };
    let now = ctx.now().await?;
    let plans = spec.upcoming(now, n)?;
    let zone = spec.time_zone.as_str();
    let due = |t: DateTime<Utc>| t + delta(offset);
    if out.json {
        let list: Vec<Value> = plans
            .iter()
            .map(|p| {
                json!({
                    "plan_time": rfc3339(Some(p.plan_time)),
                    "plan_time_local": local_json(Some(p.plan_time), zone),
                    "due_at": rfc3339(Some(due(p.due_at))),
                })
            })
            .collect();
        out.print_json(&json!({
            "job": job,
            "schedule": spec.schedule,
            "time_zone": zone,
            "scope": scope.as_ref().map(Scope::to_string),
            "stagger_offset_ms": offset.as_millis() as u64,
            "plans": list,
        }));
        return Ok(());
    }
    println!(
        "{job}: {} ({zone}){}",
        spec.schedule.as_deref().unwrap_or_default(),
        scope.as_ref().map_or(String::new(), |s| format!(
            ", scope {s} due {} after its plan",
            duration(offset + spec.schedule_delay)
        ))
    );
    let mut table = out.table(&["#", "PLAN (LOCAL)", "PLAN (UTC)", "DUE (UTC)"]);
    for (i, p) in plans.iter().enumerate() {
        table.add_row(vec![
            (i + 1).to_string(),
            local(Some(p.plan_time), zone),
            utc(Some(p.plan_time)),
            utc(Some(due(p.due_at))),
        ]);
    }
    out.print_table(&mut table);
    Ok(())
}

/// The settings an overrides section sets, as `(key, value)` text.
fn override_pairs(o: &JobOverrides) -> Vec<(&'static str, String)> {
    let d = |v: Option<std::time::Duration>| v.map(duration);
    let list: Vec<(&'static str, Option<String>)> = vec![
        ("schedule", o.schedule.clone()),
        ("time_zone", o.time_zone.clone()),
        ("stagger", d(o.stagger)),
        ("schedule_delay", d(o.schedule_delay)),
        ("catch_up", o.catch_up.clone()),
        ("catch_up_window", d(o.catch_up_window)),
        (
            "catch_up_max_plans_per_tick",
            o.catch_up_max_plans_per_tick.map(|n| n.to_string()),
        ),
        ("max_attempts", o.max_attempts.map(|n| n.to_string())),
        (
            "backoff",
            o.backoff
                .as_ref()
                .map(|l| l.iter().map(|x| duration(*x)).collect::<Vec<_>>().join(",")),
        ),
        ("backoff_base", d(o.backoff_base)),
        ("backoff_factor", o.backoff_factor.map(|f| f.to_string())),
        ("backoff_cap", d(o.backoff_cap)),
        ("run_timeout", d(o.run_timeout)),
        ("stale_timeout", d(o.stale_timeout)),
        ("heartbeat_interval", d(o.heartbeat_interval)),
        (
            "allow_stale_reentry",
            o.allow_stale_reentry.map(|b| b.to_string()),
        ),
        (
            "supersede_failed",
            o.supersede_failed.map(|b| b.to_string()),
        ),
        ("overlap", o.overlap.clone()),
        ("max_concurrent", o.max_concurrent.map(|n| n.to_string())),
        (
            "keep_finished",
            o.keep_finished.map(|k| match k.as_option() {
                Some(age) => duration(age),
                None => "forever".into(),
            }),
        ),
    ];
    list.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// `config show`: each registered job's settings, and the settings file's overrides of them.
pub(crate) async fn config_show(ctx: &Context, out: &Out) -> Outcome {
    let jobs = ctx.store.registered_jobs(None).await?;
    let none = JobOverrides::default();
    if out.json {
        let list: Vec<Value> = jobs
            .iter()
            .map(|job| {
                let overrides = ctx.config.jobs.get(&job.name).unwrap_or(&none);
                json!({
                    "name": job.name,
                    "registered": description_json(&job.spec),
                    "settings_file": override_pairs(overrides).into_iter().collect::<HashMap<_, _>>(),
                })
            })
            .collect();
        out.print_json(&json!({ "jobs": list }));
        return Ok(());
    }
    let mut table = out.table(&["JOB", "SETTING", "REGISTERED", "SETTINGS FILE"]);
    for job in &jobs {
        let s = &job.spec;
        let overrides: HashMap<&str, String> =
            override_pairs(ctx.config.jobs.get(&job.name).unwrap_or(&none))
                .into_iter()
                .collect();
        let registered: Vec<(&str, String)> = vec![
            (
                "schedule",
                s.schedule.clone().unwrap_or_else(|| "planner hook".into()),
            ),
            ("time_zone", s.time_zone.clone()),
            ("stagger", duration(s.stagger)),
            ("schedule_delay", duration(s.schedule_delay)),
            ("catch_up", s.catch_up.clone()),
            ("max_attempts", s.max_attempts.to_string()),
            ("backoff", s.backoff.clone()),
            ("run_timeout", duration(s.run_timeout)),
            ("stale_timeout", duration(s.stale_timeout)),
            ("heartbeat_interval", duration(s.heartbeat_interval)),
        ];
        for (i, (key, value)) in registered.iter().enumerate() {
            let file = overrides.get(key).cloned().unwrap_or_else(|| "-".into());
            table.add_row(vec![
                if i == 0 {
                    job.name.clone()
                } else {
                    String::new()
                },
                key.to_string(),
                value.clone(),
                file,
            ]);
        }
        let mut extra: Vec<_> = overrides
            .iter()
            .filter(|(k, _)| !registered.iter().any(|(r, _)| r == *k))
            .collect();
        extra.sort();
        for (key, value) in extra {
            table.add_row(vec![
                String::new(),
                key.to_string(),
                "-".into(),
                value.clone(),
            ]);
        }
    }
    out.print_table(&mut table);
    Ok(())
}
