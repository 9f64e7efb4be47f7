//! `cronlease partition-history [--days-back N] [--days-ahead N] [--undo]`: converts the
//! execution history into one partition per UTC day, or back into one plain table. PostgreSQL
//! only; on SQLite and MySQL it is refused with an error that says so.

use serde_json::json;

use super::context::Context;
use super::output::Out;
use super::{Failure, Outcome};
use crate::store::PartitionOptions;

/// `partition-history`.
pub(crate) async fn partition_history(
    ctx: &Context,
    out: &Out,
    days_back: u32,
    days_ahead: u32,
    undo: bool,
) -> Outcome {
    let Some(pg) = &ctx.pg else {
        return Err(Failure::Error(format!(
            "partitioned history needs PostgreSQL; this database is {} (its history stays one table)",
            ctx.store.backend()
        )));
    };
    if undo {
        let rows = pg.unpartition_history().await?;
        if out.json {
            out.print_json(&json!({"partitioned": false, "changed": rows.is_some(), "rows": rows}));
        } else {
            match rows {
                Some(rows) => println!("history is one plain table again: {rows} row(s) copied"),
                None => println!("history is one plain table already: nothing to do"),
            }
        }
        return Ok(());
    }
    let done = pg
        .partition_history(&PartitionOptions {
            days_back,
            days_ahead,
        })
        .await?;
    if out.json {
        out.print_json(&json!({
            "partitioned": true,
            "changed": !done.already_partitioned,
            "rows": done.rows,
            "rows_in_default": done.rows_in_default,
            "days": done.days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        }));
    } else if done.already_partitioned {
        println!("history is partitioned already: nothing to do");
    } else {
        let span = match (done.days.first(), done.days.last()) {
            (Some(first), Some(last)) => format!("{first} to {last}"),
            _ => "none".into(),
        };
        println!(
            "history partitioned by day: {} row(s) copied, {} in DEFAULT (older than {days_back} days); {} day partition(s), {span}",
            done.rows,
            done.rows_in_default,
            done.days.len()
        );
    }
    Ok(())
}
