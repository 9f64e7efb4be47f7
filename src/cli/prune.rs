//! `cronlease prune [--dry-run]`: deletes what the retention service would, once, from the
//! command line: finished and dead executions past their retention, and runners not seen for
//! long.
//!
//! Jobs keep their finished rows for their own time when one is set: `[jobs.NAME]
//! keep_finished` in the settings file, else what the job's runners registered
//! (`JobSpecBuilder::keep_finished` in code shows in the registry), else `[retention]
//! keep_finished`, else the default. So the tool never deletes rows a job's runners keep.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::context::Context;
use super::output::{Out, duration};
use super::{Failure, Outcome};
use crate::actors::retention::finished_passes;
use crate::config::JobOverrides;
use crate::control::RegisteredJob;
use crate::store::{PruneJobs, PruneSet, Store};

/// `prune [--dry-run]`.
pub(crate) async fn prune(ctx: &Context, out: &Out, dry_run: bool) -> Outcome {
    let retention = ctx.config.retention(crate::Retention::default());
    retention.validate().map_err(Failure::Usage)?;
    let store = &*ctx.store;
    let registered = store.registered_jobs(None).await?;
    let own = own_retention(retention.keep_finished, &registered, &ctx.config.jobs);
    let passes = finished_passes(retention.keep_finished, &own);

    let mut finished = Vec::new();
    for pass in &passes {
        let n = delete(
            store,
            PruneSet::Finished,
            pass.jobs(),
            pass.keep,
            dry_run,
            &retention,
        )
        .await?;
        finished.push((pass, n));
    }
    let dead = match retention.keep_dead {
        None => None,
        Some(keep) => Some((
            keep,
            delete(
                store,
                PruneSet::Dead,
                PruneJobs::All,
                keep,
                dry_run,
                &retention,
            )
            .await?,
        )),
    };
    let kept_forever: Vec<&String> = own
        .iter()
        .filter(|(_, keep)| keep.is_none() && retention.keep_finished.is_some())
        .map(|(job, _)| job)
        .collect();
    let runners = match retention.keep_runners {
        None => None,
        Some(keep) if dry_run => {
            let now = ctx.now().await?;
            let n = store
                .runner_list()
                .await?
                .iter()
                .filter(|r| now - r.last_seen > crate::schedule::delta(keep))
                .count() as u64;
            Some((keep, n))
        }
        Some(keep) => Some((keep, store.runner_prune(keep).await?)),
    };

    let default_pass = finished.iter().find(|(pass, _)| pass.only.is_none());
    if out.json {
        let jobs: Vec<_> = finished
            .iter()
            .filter_map(|(pass, n)| {
                let job = pass.only.as_ref()?;
                Some(json!({"job": job, "keep_ms": pass.keep.as_millis() as u64, "rows": n}))
            })
            .chain(
                kept_forever
                    .iter()
                    .map(|job| json!({"job": job, "keep_ms": null, "rows": 0})),
            )
            .collect();
        out.print_json(&json!({
            "dry_run": dry_run,
            "finished": {
                "keep_ms": default_pass.map(|(pass, _)| pass.keep.as_millis() as u64),
                "rows": default_pass.map_or(0, |(_, n)| *n),
            },
            "jobs": jobs,
            "dead": {
                "keep_ms": dead.map(|(k, _)| k.as_millis() as u64),
                "rows": dead.map_or(0, |(_, n)| n),
            },
            "runners": {
                "keep_ms": runners.map(|(k, _)| k.as_millis() as u64),
                "runners": runners.map_or(0, |(_, n)| n),
            },
        }));
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    match default_pass {
        None => println!("finished executions: kept forever"),
        Some((pass, n)) => {
            let others = if own.is_empty() { "" } else { " (other jobs)" };
            println!(
                "finished executions{others} older than {}: {verb} {n}",
                duration(pass.keep)
            )
        }
    }
    for (pass, n) in &finished {
        if let Some(job) = &pass.only {
            println!(
                "finished executions of job {job} older than {}: {verb} {n}",
                duration(pass.keep)
            );
        }
    }
    for job in kept_forever {
        println!("finished executions of job {job}: kept forever");
    }
    match dead {
        None => println!("dead executions: kept forever"),
        Some((keep, n)) => println!("dead executions older than {}: {verb} {n}", duration(keep)),
    }
    match runners {
        None => println!("runners: kept forever"),
        Some((keep, n)) => println!("runners not seen for {}: {verb} {n}", duration(keep)),
    }
    Ok(())
}

/// Deletes (or, in a dry run, counts) the rows of `set` and `jobs` older than `keep`, in the
/// retention's batches.
async fn delete(
    store: &dyn Store,
    set: PruneSet,
    jobs: PruneJobs<'_>,
    keep: Duration,
    dry_run: bool,
    retention: &crate::Retention,
) -> Result<u64, Failure> {
    if dry_run {
        return Ok(store.execution_count_prunable(set, jobs, keep).await?);
    }
    let mut total = 0;
    loop {
        let n = store
            .execution_prune(set, jobs, keep, retention.batch_size)
            .await?;
        total += n;
        if n < retention.batch_size as u64 {
            return Ok(total);
        }
    }
}

/// Each job's own retention of finished rows (`None`: forever), for the jobs that have one:
/// the settings file's `[jobs.NAME] keep_finished` when given; else what its runners
/// registered, the longest when they disagree (a runner on the default keeps `default`), so the
/// tool never deletes what one of them keeps.
fn own_retention(
    default: Option<Duration>,
    registered: &[RegisteredJob],
    file: &BTreeMap<String, JobOverrides>,
) -> BTreeMap<String, Option<Duration>> {
    let mut own = BTreeMap::new();
    for job in registered {
        let keeps: Vec<Option<Option<Duration>>> = std::iter::once(&job.spec)
            .chain(job.variants.iter().map(|v| &v.spec))
            .map(|spec| spec.keep_finished())
            .collect();
        if keeps.iter().all(Option::is_none) {
            continue;
        }
        // The longest keep, forever (`None`) above any age.
        let keep = keeps
            .into_iter()
            .map(|keep| keep.unwrap_or(default))
            .max_by_key(|keep| keep.map_or(Duration::MAX, |age| age))
            .unwrap_or(default);
        own.insert(job.name.clone(), keep);
    }
    for (job, overrides) in file {
        if let Some(keep) = overrides.keep_finished {
            own.insert(job.clone(), keep.as_option());
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::retention::FinishedPass;
    use crate::control::{JobDescription, RunnerState, SpecVariant};
    use crate::{JobContext, JobOutput, JobSpec};

    const DAY: Duration = Duration::from_secs(86_400);

    fn described(name: &str, keep: Option<Option<Duration>>) -> JobDescription {
        let mut spec = JobSpec::builder(name).every("1m");
        spec = match keep {
            None => spec,
            Some(Some(age)) => spec.keep_finished(age),
            Some(None) => spec.keep_finished_forever(),
        };
        JobDescription::of(
            &spec
                .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(0)) })
                .build()
                .unwrap(),
        )
    }

    fn registered(name: &str, keeps: &[Option<Option<Duration>>]) -> RegisteredJob {
        let variants: Vec<SpecVariant> = keeps
            .iter()
            .enumerate()
            .map(|(i, keep)| SpecVariant {
                spec: described(name, *keep),
                runners: vec![format!("r{i}")],
            })
            .collect();
        RegisteredJob {
            name: name.into(),
            spec: variants[0].spec.clone(),
            conflicting: variants.len() > 1,
            runners: (0..keeps.len())
                .map(|i| (format!("r{i}"), RunnerState::Live))
                .collect(),
            variants,
        }
    }

    fn file(job: &str, toml_value: &str) -> BTreeMap<String, JobOverrides> {
        let text = format!("[jobs.{job}]\nkeep_finished = \"{toml_value}\"\n");
        crate::config::Config::from_toml(&text, "x.toml")
            .unwrap()
            .jobs
    }

    #[test]
    fn registered_retention_counts_and_the_file_overrides_it() {
        let default = Some(30 * DAY);
        let jobs = [
            registered("minutely", &[Some(Some(DAY))]),
            registered("audit", &[Some(None)]),
            registered("plain", &[None]),
        ];
        let own = own_retention(default, &jobs, &BTreeMap::new());
        assert_eq!(
            own,
            BTreeMap::from([("audit".into(), None), ("minutely".into(), Some(DAY))])
        );
        // The file says otherwise for minutely: it wins.
        let own = own_retention(default, &jobs, &file("minutely", "2d"));
        assert_eq!(own["minutely"], Some(2 * DAY));
        let own = own_retention(default, &jobs, &file("plain", "forever"));
        assert_eq!(own["plain"], None);
    }

    #[test]
    fn runners_that_disagree_keep_the_longest() {
        let default = Some(30 * DAY);
        // One runner keeps a day, one the default: the default's 30 days.
        let one_default = [registered("job", &[Some(Some(DAY)), None])];
        assert_eq!(
            own_retention(default, &one_default, &BTreeMap::new())["job"],
            default
        );
        // One keeps forever: forever.
        let one_forever = [registered("job", &[Some(Some(DAY)), Some(None)])];
        assert_eq!(
            own_retention(default, &one_forever, &BTreeMap::new())["job"],
            None
        );
        let two_ages = [registered("job", &[Some(Some(DAY)), Some(Some(2 * DAY))])];
        assert_eq!(
            own_retention(default, &two_ages, &BTreeMap::new())["job"],
            Some(2 * DAY)
        );
    }

    #[test]
    fn the_passes_prune_each_job_for_its_own_time() {
        let default = Some(30 * DAY);
        let jobs = [
            registered("minutely", &[Some(Some(DAY))]),
            registered("audit", &[Some(None)]),
        ];
        let passes = finished_passes(default, &own_retention(default, &jobs, &BTreeMap::new()));
        assert_eq!(
            passes[0],
            FinishedPass {
                only: Some("minutely".into()),
                except: Vec::new(),
                keep: DAY,
            }
        );
        assert_eq!(
            passes[1].jobs(),
            PruneJobs::Except(&["audit".to_owned(), "minutely".to_owned()])
        );
    }
}
