//! The retention service: the Pruner actor and its [`Retention`] settings.
//!
//! - [`Retention`]: how long finished and dead executions are kept, how often the service runs,
//!   and how many rows one statement deletes; the defaults sit next to it.
//! - [`PruneReport`]: what one run did.
//! - `Pruner`: the actor. Every `interval` (only when the scheduler ticks by itself; always on
//!   [`Scheduler::prune_now`](crate::Scheduler::prune_now)) it:
//!   1. on a time-partitioned history (PostgreSQL, read from the catalog each run), creates the
//!      day partitions of today and the next [`DEFAULT_PARTITION_DAYS_AHEAD`] days that are
//!      missing, and drops whole each day partition past the longest retention, its keepers
//!      moved to the DEFAULT partition first ([`partition_plan`](crate::partition_plan) decides);
//!      the passes below that use that longest retention then prune the DEFAULT partition only;
//!   2. measures the stale RUNNING rows per job (one grouped count) into the
//!      `cronlease_stale_running_executions` gauge;
//!   3. deletes SUCCESS, SUPERSEDED and SKIPPED rows whose `finished_at` is older than `keep_finished`, in
//!      batches of `batch_size` along the `finished_at` index, until a batch comes back short:
//!      first each job with its own `keep_finished` ([`JobSpec::keep_finished`]) alone, then
//!      every other job with the default ([`finished_passes`] decides);
//!   4. does the same for DEAD rows older than `keep_dead`, measured from their last failure;
//!   5. deletes runners of the job and runner registry not seen for `keep_runners` (gone or
//!      stopped), with their registered jobs;
//!   6. deletes spans of the skipped-plan ledger recorded longer ago than `keep_skips`, in batches.
//!
//! Rows awaiting a replay and the newest row of every `(job, scope)` are never pruned (planning
//! reads it to know which plans were handled). Runs never overlap: a manual run waits for a
//! timed one. A failed run is logged and counted, and the next run tries again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use crate::error::Result;
use crate::partition_plan::{longest_retention, partition_plan};
use crate::spec::JobSpec;
use crate::store::{DEFAULT_PARTITION_DAYS_AHEAD, PartitionKeep, PruneJobs, PruneSet, Store};
use crate::telemetry;

/// The jobs this scheduler runs, by name, as the scheduler handle keeps them up to date.
pub(crate) type JobSpecs = Arc<Mutex<HashMap<String, Arc<JobSpec>>>>;

/// One delete pass over the finished set: the rows of `only` (or of every job but `except`)
/// finished longer than `keep` ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishedPass {
    /// The one job this pass prunes; `None`: every job not in `except`.
    pub(crate) only: Option<String>,
    /// Jobs this pass leaves alone: pruned by their own pass, or kept forever.
    pub(crate) except: Vec<String>,
    /// The age past which rows are deleted.
    pub(crate) keep: Duration,
}

impl FinishedPass {
    /// The jobs the pass deletes rows of.
    pub(crate) fn jobs(&self) -> PruneJobs<'_> {
        match &self.only {
            Some(job) => PruneJobs::Only(job),
            None if self.except.is_empty() => PruneJobs::All,
            None => PruneJobs::Except(&self.except),
        }
    }
}

/// The finished-set passes of one run, given the scheduler-wide `keep_finished` (`None`:
/// forever) and each job's own (`Some(None)`: forever). A job whose own age equals the default
/// is pruned with the rest; any other job with an age gets a pass of its own and is left out of
/// the default pass, as is a job kept forever. With the default forever, only the jobs' own
/// passes run.
pub(crate) fn finished_passes(
    default: Option<Duration>,
    own: &BTreeMap<String, Option<Duration>>,
) -> Vec<FinishedPass> {
    let mut passes = Vec::new();
    let mut except = Vec::new();
    for (job, keep) in own {
        if *keep == default {
            continue;
        }
        except.push(job.clone());
        if let Some(keep) = keep {
            passes.push(FinishedPass {
                only: Some(job.clone()),
                except: Vec::new(),
                keep: *keep,
            });
        }
    }
    if let Some(keep) = default {
        passes.push(FinishedPass {
            only: None,
            except,
            keep,
        });
    }
    passes
}

/// Default age after which SUCCESS and SUPERSEDED rows are pruned: 30 days.
pub const DEFAULT_KEEP_FINISHED: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default age, counted from the last failure, after which DEAD rows are pruned: 7 days.
pub const DEFAULT_KEEP_DEAD: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default time between two runs of the retention service: 5 minutes.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default age, from `last_seen`, after which a runner (gone or stopped) is deleted from the
/// registry with its jobs: 7 days.
pub const DEFAULT_KEEP_RUNNERS: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default number of rows one prune statement deletes: 1000.
pub const DEFAULT_PRUNE_BATCH: usize = 1000;

/// How long executions are kept, and how the retention service prunes them.
///
/// Default: SUCCESS and SUPERSEDED rows kept 30 days after they finished, DEAD rows 7 days after
/// their last failure, runners 7 days after they were last seen, a run every 5 minutes, 1000
/// rows per statement.
///
/// ```
/// use std::time::Duration;
/// use cronlease::Retention;
///
/// let week = Duration::from_secs(7 * 24 * 3600);
/// let retention = Retention {
///     keep_finished: Some(week),
///     keep_dead: None, // keep dead letters until someone replays or deletes them
///     ..Retention::default()
/// };
/// # let _ = (retention, Retention::disabled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Time between two runs. Runs happen only while the scheduler ticks by itself
    /// ([`SchedulerBuilder::auto_tick`](crate::SchedulerBuilder::auto_tick)); the first comes
    /// one interval after start. Default: 5 min.
    pub interval: Duration,
    /// Age, from `finished_at`, after which SUCCESS, SUPERSEDED and SKIPPED rows are deleted; `None`
    /// keeps them forever. Default: 30 days.
    pub keep_finished: Option<Duration>,
    /// Age, from the last failure (`finished_at`), after which DEAD rows are deleted; `None`
    /// keeps them until replayed. A dead row is never deleted earlier. Default: 7 days.
    pub keep_dead: Option<Duration>,
    /// Most rows one delete statement removes; a run repeats it until a batch comes back short,
    /// so each statement holds its locks briefly. Default: 1000.
    pub batch_size: usize,
    /// Age, from `last_seen`, after which a runner that stopped refreshing (gone) or shut down
    /// (stopped) is deleted from the job and runner registry, with its rows of registered jobs;
    /// `None` keeps them. Default: 7 days.
    pub keep_runners: Option<Duration>,
    /// Age, from `recorded_at`, after which spans of the skipped-plan ledger are deleted; `None`
    /// keeps them. Default: 30 days (as `keep_finished`: `why` about an older plan answers
    /// "before the scope's history" either way).
    pub keep_skips: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            interval: DEFAULT_RETENTION_INTERVAL,
            keep_finished: Some(DEFAULT_KEEP_FINISHED),
            keep_dead: Some(DEFAULT_KEEP_DEAD),
            batch_size: DEFAULT_PRUNE_BATCH,
            keep_runners: Some(DEFAULT_KEEP_RUNNERS),
            keep_skips: Some(DEFAULT_KEEP_FINISHED),
        }
    }
}

impl Retention {
    /// Prunes nothing: every row (and every runner) is kept. The service still runs to measure
    /// stale RUNNING rows.
    pub fn disabled() -> Self {
        Retention {
            keep_finished: None,
            keep_dead: None,
            keep_runners: None,
            keep_skips: None,
            ..Retention::default()
        }
    }

    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.interval.is_zero() {
            return Err("retention interval must be longer than zero".into());
        }
        if self.batch_size == 0 {
            return Err("retention batch_size must be at least 1".into());
        }
        if self.keep_finished.is_some_and(|d| d.is_zero()) {
            return Err(
                "retention keep_finished must be longer than zero (None keeps rows forever)".into(),
            );
        }
        if self.keep_runners.is_some_and(|d| d.is_zero()) {
            return Err(
                "retention keep_runners must be longer than zero (None keeps runners forever)"
                    .into(),
            );
        }
        if self.keep_skips.is_some_and(|d| d.is_zero()) {
            return Err(
                "retention keep_skips must be longer than zero (None keeps the ledger forever)"
                    .into(),
            );
        }
        if self.keep_dead.is_some_and(|d| d.is_zero()) {
            return Err(
                "retention keep_dead must be longer than zero (None keeps rows forever)".into(),
            );
        }
        Ok(())
    }
}

/// What one run of the retention service did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// SUCCESS and SUPERSEDED rows deleted.
    pub finished: u64,
    /// DEAD rows deleted.
    pub dead: u64,
    /// RUNNING rows found with a stale lease (all jobs), before the deletes.
    pub stale_running: u64,
    /// Runners deleted from the registry (with their registered jobs).
    pub runners: u64,
    /// Spans deleted from the skipped-plan ledger.
    pub skips: u64,
    /// Day partitions created (time-partitioned history only).
    pub partitions_created: u64,
    /// Day partitions dropped whole (time-partitioned history only).
    pub partitions_dropped: u64,
    /// Rows deleted with the dropped partitions.
    pub partition_rows: u64,
    /// Rows of the dropped partitions kept (moved to the DEFAULT partition).
    pub partition_kept: u64,
}

/// The retention service.
pub(crate) struct Pruner {
    store: Arc<dyn Store>,
    config: Retention,
    jobs: JobSpecs,
    auto: bool,
    /// Jobs whose stale gauge was last set above zero, so it is set back to zero when they clear.
    stale_jobs: HashSet<String>,
}

impl Pruner {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        config: Retention,
        jobs: JobSpecs,
        auto: bool,
    ) -> Self {
        Pruner {
            store,
            config,
            jobs,
            auto,
            stale_jobs: HashSet::new(),
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.config.interval, |act, ctx| {
            let run = prune(act.store.clone(), act.config.clone(), act.own_keep());
            ctx.wait(run.into_actor(act).map(|outcome, act, ctx| {
                if let Err(error) = act.record(outcome) {
                    super::note_db_error("retention", &error);
                }
                act.schedule(ctx);
            }));
        });
    }

    /// Each running job's own `keep_finished`, read at the start of a run (jobs come and go).
    fn own_keep(&self) -> BTreeMap<String, Option<Duration>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter()
            .filter_map(|(name, spec)| spec.keep_finished.map(|keep| (name.clone(), keep)))
            .collect()
    }

    /// Sets the stale gauges (zeroing jobs that cleared) and returns the report.
    fn record(
        &mut self,
        outcome: Result<(PruneReport, Vec<(String, i64)>)>,
    ) -> Result<PruneReport> {
        let (report, stale) = outcome?;
        let mut now_stale = HashSet::new();
        for (job, n) in stale {
            telemetry::stale_running(&job, n);
            now_stale.insert(job);
        }
        for cleared in self.stale_jobs.difference(&now_stale) {
            telemetry::stale_running(cleared, 0);
        }
        self.stale_jobs = now_stale;
        Ok(report)
    }
}

/// The retention a dropped day partition's rows are judged by: the same as the batched passes.
pub(crate) fn partition_keep(
    config: &Retention,
    own_keep: &BTreeMap<String, Option<Duration>>,
) -> PartitionKeep {
    PartitionKeep {
        finished: config.keep_finished,
        finished_own: own_keep.iter().map(|(j, k)| (j.clone(), *k)).collect(),
        dead: config.keep_dead,
    }
}

/// Step 1 on a time-partitioned history: creates the partitions ahead, drops the days past
/// retention. Returns the retention up to which the day partitions are dropped whole (`None`:
/// the history is plain, nothing is dropped, or a drop failed), which the batched passes then
/// leave alone.
async fn maintain_partitions(
    store: &dyn Store,
    keep: &PartitionKeep,
    report: &mut PruneReport,
) -> Result<Option<Duration>> {
    let Some(state) = store.history_partitions().await? else {
        return Ok(None);
    };
    let plan = partition_plan(state.now, &state.days, keep, DEFAULT_PARTITION_DAYS_AHEAD);
    if !plan.create.is_empty() {
        report.partitions_created = store.history_partitions_create(&plan.create).await?;
    }
    let mut all_dropped = true;
    for day in plan.drop {
        match store.history_partition_drop(day, keep).await {
            Ok(Some(dropped)) => {
                report.partitions_dropped += 1;
                report.partition_rows += dropped.rows.saturating_sub(dropped.kept);
                report.partition_kept += dropped.kept;
                tracing::info!(
                    %day,
                    deleted = dropped.rows.saturating_sub(dropped.kept),
                    kept = dropped.kept,
                    "dropped a day partition of the execution history past its retention"
                );
            }
            Ok(None) => {}
            // A day that cannot be dropped (its lock not granted in time, a timeout) must not
            // keep its rows past retention: this run's batched passes delete them one by one.
            Err(error) => {
                tracing::warn!(
                    %day,
                    %error,
                    "could not drop a day partition past its retention; pruning its rows one by one this run"
                );
                all_dropped = false;
            }
        }
    }
    Ok(all_dropped.then(|| longest_retention(keep)).flatten())
}

/// One run: the partitions, the stale count, then each set pruned in batches until one comes
/// back short.
async fn prune(
    store: Arc<dyn Store>,
    config: Retention,
    own_keep: BTreeMap<String, Option<Duration>>,
) -> Result<(PruneReport, Vec<(String, i64)>)> {
    let mut report = PruneReport::default();
    let dropped_up_to =
        maintain_partitions(&*store, &partition_keep(&config, &own_keep), &mut report).await?;
    let stale = store.execution_count_stale().await?;
    report.stale_running = stale
        .iter()
        .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
        .sum();
    let finished = finished_passes(config.keep_finished, &own_keep)
        .into_iter()
        .map(|pass| (PruneSet::Finished, pass));
    let dead = config.keep_dead.map(|keep| {
        let pass = FinishedPass {
            only: None,
            except: Vec::new(),
            keep,
        };
        (PruneSet::Dead, pass)
    });
    for (set, pass) in finished.chain(dead) {
        let mut total = 0;
        // Rows this old in day partitions go with their partition: only DEFAULT is pruned here.
        let default_only = dropped_up_to.is_some_and(|longest| pass.keep >= longest);
        loop {
            let deleted = if default_only {
                store
                    .execution_prune_default_partition(
                        set,
                        pass.jobs(),
                        pass.keep,
                        config.batch_size,
                    )
                    .await?
            } else {
                store
                    .execution_prune(set, pass.jobs(), pass.keep, config.batch_size)
                    .await?
            };
            telemetry::pruned(set.as_str(), deleted);
            total += deleted;
            if deleted < config.batch_size as u64 {
                break;
            }
        }
        match set {
            PruneSet::Finished => report.finished += total,
            PruneSet::Dead => report.dead += total,
        }
        if total > 0 {
            tracing::info!(
                set = set.as_str(),
                job = pass.only.as_deref().unwrap_or("*"),
                deleted = total,
                "pruned executions past their retention"
            );
        }
    }
    if let Some(keep) = config.keep_runners {
        report.runners = store.runner_prune(keep).await?;
        if report.runners > 0 {
            tracing::info!(
                runners = report.runners,
                "pruned runners not seen within their retention"
            );
        }
    }
    if let Some(keep) = config.keep_skips {
        loop {
            let deleted = store.skip_prune(keep, config.batch_size).await?;
            report.skips += deleted;
            if deleted < config.batch_size as u64 {
                break;
            }
        }
        if report.skips > 0 {
            tracing::info!(
                spans = report.skips,
                "pruned skipped-plan ledger spans past their retention"
            );
        }
    }
    Ok((report, stale))
}

impl Actor for Pruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.auto {
            self.schedule(ctx);
        }
    }
}

/// Runs the retention service once now (after a run in progress) and reports what it did.
#[derive(Message)]
#[rtype(result = "Result<PruneReport>")]
pub(crate) struct PruneNow;

impl Handler<PruneNow> for Pruner {
    type Result = AtomicResponse<Self, Result<PruneReport>>;

    fn handle(&mut self, _: PruneNow, _: &mut Context<Self>) -> Self::Result {
        let run = prune(self.store.clone(), self.config.clone(), self.own_keep());
        AtomicResponse::new(Box::pin(
            run.into_actor(self)
                .map(|outcome, act, _| act.record(outcome)),
        ))
    }
}

/// Stops the service (after a run in progress).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopPruner;

impl Handler<StopPruner> for Pruner {
    type Result = ();

    fn handle(&mut self, _: StopPruner, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn own(pairs: &[(&str, Option<Duration>)]) -> BTreeMap<String, Option<Duration>> {
        pairs.iter().map(|(j, k)| ((*j).to_owned(), *k)).collect()
    }

    fn only(job: &str, keep: Duration) -> FinishedPass {
        FinishedPass {
            only: Some(job.into()),
            except: Vec::new(),
            keep,
        }
    }

    fn rest(except: &[&str], keep: Duration) -> FinishedPass {
        FinishedPass {
            only: None,
            except: except.iter().map(|j| (*j).to_owned()).collect(),
            keep,
        }
    }

    #[test]
    fn without_overrides_one_pass_prunes_every_job() {
        let passes = finished_passes(Some(30 * DAY), &own(&[]));
        assert_eq!(passes, vec![rest(&[], 30 * DAY)]);
        assert_eq!(passes[0].jobs(), PruneJobs::All);
    }

    #[test]
    fn a_job_with_its_own_age_is_pruned_alone_and_left_out_of_the_default() {
        let passes = finished_passes(Some(30 * DAY), &own(&[("minutely", Some(DAY))]));
        assert_eq!(
            passes,
            vec![only("minutely", DAY), rest(&["minutely"], 30 * DAY)]
        );
        assert_eq!(passes[0].jobs(), PruneJobs::Only("minutely"));
        assert_eq!(
            passes[1].jobs(),
            PruneJobs::Except(&["minutely".to_owned()])
        );
    }

    #[test]
    fn a_job_kept_forever_is_only_left_out() {
        let passes = finished_passes(Some(30 * DAY), &own(&[("audit", None)]));
        assert_eq!(passes, vec![rest(&["audit"], 30 * DAY)]);
    }

    #[test]
    fn an_age_equal_to_the_default_needs_no_pass_of_its_own() {
        let passes = finished_passes(Some(DAY), &own(&[("same", Some(DAY))]));
        assert_eq!(passes, vec![rest(&[], DAY)]);
    }

    #[test]
    fn with_the_default_forever_only_the_jobs_own_ages_prune() {
        let passes = finished_passes(
            None,
            &own(&[
                ("minutely", Some(DAY)),
                ("forever", None),
                ("monthly", Some(90 * DAY)),
            ]),
        );
        assert_eq!(
            passes,
            vec![only("minutely", DAY), only("monthly", 90 * DAY)]
        );
    }
}
