//! Trigger now and backfill from the shell: `trigger`, `backfill JOB --from --to [--wait]`,
//! `backfill status`, `backfill cancel`. Each request is a row every runner's tick of the job
//! consults, so the tool only writes and reads it (`docs/operations.md`).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::act::operator;
use super::args::{BackfillStart, TriggerArgs};
use super::context::{Context, parse_scope, parse_time};
use super::output::{Out, rfc3339, utc};
use super::{Failure, Outcome};
use crate::control::{
    Backfill, BackfillOptions, BackfillStatus, Trigger, TriggerOptions, TriggerTarget,
};
use crate::scope::Scope;

/// `trigger JOB [--scope K:ID | --all-scopes] [--key K]`.
pub(crate) async fn trigger(ctx: &Context, out: &Out, args: &TriggerArgs) -> Outcome {
    ctx.job(&args.job).await?;
    let target = match &args.scope {
        Some(scope) => TriggerTarget::Scope(parse_scope(scope)?),
        None => TriggerTarget::AllScopes,
    };
    let options = match &args.key {
        Some(key) => TriggerOptions::idempotent(key),
        None => TriggerOptions::default(),
    }
    .by(args.by.clone().unwrap_or_else(operator));
    let asked = Trigger::new(&args.job, target.into_scope(), options);
    let stored = ctx.store.trigger_create(&asked).await?;
    let repeated = stored.id != asked.id;
    let what = stored
        .scope
        .as_ref()
        .map_or("every scope".to_owned(), |s| format!("scope {s}"));
    if out.json {
        out.print_json(&json!({
            "id": stored.id,
            "job": stored.job,
            "scope": stored.scope.as_ref().map(Scope::to_string),
            "idempotency_key": stored.idempotency_key,
            "requested_by": stored.requested_by,
            "requested_at": rfc3339(Some(stored.requested_at)),
            "started_at": rfc3339(stored.started_at),
            "repeated": repeated,
        }));
    } else if repeated {
        println!(
            "job {} already has a trigger with key `{}`: {} requested at {} ({}); not triggered again",
            stored.job,
            stored.idempotency_key.as_deref().unwrap_or_default(),
            stored.id,
            utc(Some(stored.requested_at)),
            if stored.is_started() {
                "started"
            } else {
                "pending"
            }
        );
    } else {
        println!(
            "triggered job {} for {what}: {} at {}; the next tick of a runner of the job starts it",
            stored.job,
            stored.id,
            utc(Some(stored.requested_at))
        );
    }
    Ok(())
}

/// A backfill as JSON.
fn backfill_json(b: &Backfill) -> Value {
    json!({
        "id": b.id,
        "job": b.job,
        "scopes": b.scopes.as_ref().map(|s| s.iter().map(Scope::to_string).collect::<Vec<_>>()),
        "from": rfc3339(Some(b.from)),
        "to": rfc3339(Some(b.to)),
        "rerun": b.rerun,
        "requested_by": b.requested_by,
        "status": b.status.as_str(),
        "done": b.done,
        "total": b.total,
        "created_at": rfc3339(Some(b.created_at)),
        "updated_at": rfc3339(Some(b.updated_at)),
    })
}

/// `backfill JOB --from T --to T [--scope K:ID]… [--rerun] [--wait]`.
pub(crate) async fn backfill(ctx: &Context, out: &Out, args: &BackfillStart) -> Outcome {
    let (Some(job), Some(from), Some(to)) = (&args.job, &args.from, &args.to) else {
        return Err(Failure::Usage(
            "backfill needs JOB, --from and --to (or `backfill status` / `backfill cancel ID`)"
                .into(),
        ));
    };
    if ctx.job(job).await?.spec.schedule.is_none() {
        return Err(Failure::Error(format!(
            "job `{job}` plans with a planner hook: a backfill needs a schedule to know its plan times"
        )));
    }
    let now = ctx.now().await?;
    let scopes = args
        .scopes
        .iter()
        .map(|s| parse_scope(s))
        .collect::<Result<Vec<_>, _>>()?;
    let options = BackfillOptions {
        scopes: (!scopes.is_empty()).then_some(scopes),
        rerun: args.rerun,
        requested_by: args.by.clone().unwrap_or_else(operator),
    };
    let asked = Backfill::new(job, parse_time(from, now)?, parse_time(to, now)?, options);
    asked.check_range(now).map_err(Failure::Usage)?;
    let stored = ctx.store.backfill_create(&asked).await?;
    if !out.json {
        println!(
            "backfill {} of job {job}: plans from {} to {} (excluded), {}; every runner of the job serves it with its free slots",
            stored.id,
            utc(Some(stored.from)),
            utc(Some(stored.to)),
            stored
                .scopes
                .as_ref()
                .map_or("every scope".to_owned(), |s| format!(
                    "{} scope(s)",
                    s.len()
                )),
        );
    }
    if !args.wait {
        if out.json {
            out.print_json(&backfill_json(&stored));
        }
        return Ok(());
    }
    wait(ctx, out, stored.id).await
}

/// Follows a backfill until every plan is handed out, with a progress bar on a terminal.
async fn wait(ctx: &Context, out: &Out, id: Uuid) -> Outcome {
    let bar = indicatif::ProgressBar::new(0);
    if out.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} plans handed out ({elapsed})",
        )
        .expect("a valid template"),
    );
    loop {
        let b =
            ctx.store.backfill_get(id).await?.ok_or_else(|| {
                Failure::Error(format!("backfill {id} disappeared while waiting"))
            })?;
        bar.set_length(b.total.unwrap_or(0));
        bar.set_position(b.done);
        match b.status {
            BackfillStatus::Active => tokio::time::sleep(Duration::from_millis(500)).await,
            BackfillStatus::Done => {
                bar.finish();
                if out.json {
                    out.print_json(&backfill_json(&b));
                } else {
                    println!("backfill {id} done: {} plan(s) handed out", b.done);
                }
                return Ok(());
            }
            BackfillStatus::Cancelled => {
                bar.abandon();
                if out.json {
                    out.print_json(&backfill_json(&b));
                }
                return Err(Failure::Error(format!(
                    "backfill {id} was cancelled after {} plan(s)",
                    b.done
                )));
            }
        }
    }
}

/// `backfill status [ID] [--job J] [--active]`.
pub(crate) async fn status(
    ctx: &Context,
    out: &Out,
    id: Option<Uuid>,
    job: Option<&str>,
    active: bool,
) -> Outcome {
    let list = match id {
        Some(id) => vec![
            ctx.store
                .backfill_get(id)
                .await?
                .ok_or_else(|| Failure::Error(format!("no backfill with id {id}")))?,
        ],
        None => ctx.store.backfill_list(job, active).await?,
    };
    if out.json {
        let list: Vec<Value> = list.iter().map(backfill_json).collect();
        out.print_json(&json!({ "backfills": list }));
        return Ok(());
    }
    if list.is_empty() {
        println!("no backfills");
        return Ok(());
    }
    let mut table = out.table(&[
        "BACKFILL",
        "JOB",
        "FROM (UTC)",
        "TO (UTC)",
        "SCOPES",
        "STATUS",
        "PROGRESS",
        "BY",
    ]);
    for b in &list {
        table.add_row(vec![
            b.id.to_string(),
            b.job.clone(),
            utc(Some(b.from)),
            utc(Some(b.to)),
            b.scopes.as_ref().map_or("all".to_owned(), |s| {
                s.iter().map(Scope::to_string).collect::<Vec<_>>().join(",")
            }),
            b.status.as_str().to_owned(),
            format!(
                "{}/{}",
                b.done,
                b.total.map_or("?".to_owned(), |t| t.to_string())
            ),
            b.requested_by.clone(),
        ]);
    }
    out.print_table(&mut table);
    Ok(())
}

/// `backfill cancel ID`.
pub(crate) async fn cancel(ctx: &Context, out: &Out, id: Uuid) -> Outcome {
    let Some(b) = ctx.store.backfill_get(id).await? else {
        return Err(Failure::Error(format!("no backfill with id {id}")));
    };
    if !ctx.store.backfill_cancel(id).await? {
        return Err(Failure::Error(format!(
            "backfill {id} is {}, not active: nothing to cancel",
            b.status.as_str()
        )));
    }
    if out.json {
        out.print_json(&json!({"id": id, "cancelled": true, "done": b.done}));
    } else {
        println!(
            "cancelled backfill {id} of job {}; attempts already started finish",
            b.job
        );
    }
    Ok(())
}
