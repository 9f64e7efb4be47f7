//! The runtime's view of the store: every call passes through, and its outcome feeds the
//! runner's [`TakeoverGuard`] (transient failures, successes, database clock reads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::control::{
    Backfill, BackfillAdvance, ClaimGuard, JobDescription, Pause, RegisteredJob, Runner, SkipSpan,
    Trigger,
};

use crate::error::Result;
use crate::execution::{Execution, Status};
use crate::scope::Scope;
use crate::store::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, ManualStart,
    MigrationStatus, PruneJobs, PruneSet, Renewal, RetryCandidate, RunnerRegistration, Store,
    SuccessWrite, Swept, TickClock,
};
use crate::takeover::TakeoverGuard;

/// A store that reports every call's outcome to the runner's takeover guard.
pub(crate) struct WatchedStore {
    inner: Arc<dyn Store>,
    guard: Arc<TakeoverGuard>,
}

impl WatchedStore {
    pub(crate) fn new(inner: Arc<dyn Store>, guard: Arc<TakeoverGuard>) -> Self {
        WatchedStore { inner, guard }
    }

    /// Reports a clock read: a success that also tells the database time.
    fn watch_clock(&self, outcome: Result<DateTime<Utc>>) -> Result<DateTime<Utc>> {
        match &outcome {
            Ok(now) => self.guard.clock_read(*now, Instant::now()),
            Err(error) if error.is_transient() => self.guard.failed(Instant::now()),
            Err(_) => {}
        }
        outcome
    }

    fn watch<T>(&self, outcome: Result<T>) -> Result<T> {
        match &outcome {
            Ok(_) => self.guard.succeeded(Instant::now()),
            Err(error) if error.is_transient() => self.guard.failed(Instant::now()),
            Err(_) => {}
        }
        outcome
    }
}

#[async_trait]
impl Store for WatchedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn migrate(&self) -> Result<()> {
        let outcome = self.inner.migrate().await;
        self.watch(outcome)
    }

    async fn db_now(&self) -> Result<DateTime<Utc>> {
        let outcome = self.inner.db_now().await;
        self.watch_clock(outcome)
    }

    async fn execution_latest_plans_each(
        &self,
        job: &str,
        each: &mut (dyn for<'s> FnMut(&'s Scope, DateTime<Utc>) + Send),
    ) -> Result<usize> {
        let outcome = self.inner.execution_latest_plans_each(job, each).await;
        self.watch(outcome)
    }

    async fn execution_plans_exist(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
    ) -> Result<Vec<bool>> {
        let outcome = self.inner.execution_plans_exist(job, plans).await;
        self.watch(outcome)
    }

    async fn execution_retry_candidates(
        &self,
        job: &str,
        limit: usize,
    ) -> Result<Vec<RetryCandidate>> {
        let outcome = self.inner.execution_retry_candidates(job, limit).await;
        self.watch(outcome)
    }

    async fn execution_supersede(&self, job: &str) -> Result<Vec<Uuid>> {
        let outcome = self.inner.execution_supersede(job).await;
        self.watch(outcome)
    }

    async fn execution_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        let outcome = self.inner.execution_claim(request).await;
        self.watch(outcome)
    }

    async fn execution_claim_guarded(
        &self,
        request: &ClaimRequest<'_>,
        guard: &ClaimGuard,
    ) -> Result<GuardedClaim> {
        let outcome = self.inner.execution_claim_guarded(request, guard).await;
        self.watch(outcome)
    }

    async fn execution_heartbeat(&self, renewals: &[Renewal]) -> Result<Vec<Uuid>> {
        let outcome = self.inner.execution_heartbeat(renewals).await;
        self.watch(outcome)
    }

    async fn execution_finish_success(&self, writes: &[SuccessWrite]) -> Result<Vec<Uuid>> {
        let outcome = self.inner.execution_finish_success(writes).await;
        self.watch(outcome)
    }

    async fn execution_finish_failure(&self, writes: &[FailureWrite]) -> Result<Vec<Uuid>> {
        let outcome = self.inner.execution_finish_failure(writes).await;
        self.watch(outcome)
    }

    async fn execution_sweep_stale(
        &self,
        job: &str,
        allow_reentry: bool,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Swept>> {
        let outcome = self
            .inner
            .execution_sweep_stale(job, allow_reentry, not_after)
            .await;
        self.watch(outcome)
    }

    async fn execution_get(&self, id: Uuid) -> Result<Option<Execution>> {
        let outcome = self.inner.execution_get(id).await;
        self.watch(outcome)
    }

    async fn execution_list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>> {
        let outcome = self.inner.execution_list(filter).await;
        self.watch(outcome)
    }

    async fn execution_latest_per_scope(
        &self,
        job: &str,
        after: Option<&Scope>,
        limit: usize,
    ) -> Result<Vec<Execution>> {
        let outcome = self
            .inner
            .execution_latest_per_scope(job, after, limit)
            .await;
        self.watch(outcome)
    }

    async fn execution_count_by_status(&self, job: Option<&str>) -> Result<Vec<(Status, i64)>> {
        let outcome = self.inner.execution_count_by_status(job).await;
        self.watch(outcome)
    }

    async fn execution_replay(&self, ids: &[Uuid], extra_attempts: u32) -> Result<Vec<Execution>> {
        let outcome = self.inner.execution_replay(ids, extra_attempts).await;
        self.watch(outcome)
    }

    async fn execution_prune(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let outcome = self
            .inner
            .execution_prune(set, jobs, older_than, limit)
            .await;
        self.watch(outcome)
    }

    async fn execution_prune_default_partition(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let outcome = self
            .inner
            .execution_prune_default_partition(set, jobs, older_than, limit)
            .await;
        self.watch(outcome)
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        let outcome = self.inner.migration_status().await;
        self.watch(outcome)
    }

    async fn execution_count_prunable(
        &self,
        set: PruneSet,
        jobs: PruneJobs<'_>,
        older_than: Duration,
    ) -> Result<u64> {
        let outcome = self
            .inner
            .execution_count_prunable(set, jobs, older_than)
            .await;
        self.watch(outcome)
    }

    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>> {
        let outcome = self.inner.execution_count_stale().await;
        self.watch(outcome)
    }

    async fn execution_count_failing(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let outcome = self.inner.execution_count_failing(since).await;
        self.watch(outcome)
    }

    async fn tick_clock(&self, job: &str) -> Result<TickClock> {
        match self.inner.tick_clock(job).await {
            Ok(clock) => {
                self.watch_clock(Ok(clock.now))?;
                Ok(clock)
            }
            Err(error) => Err(self
                .watch_clock(Err(error))
                .expect_err("an error is reported as it came")),
        }
    }

    async fn pause_set(&self, pause: &Pause) -> Result<Pause> {
        let outcome = self.inner.pause_set(pause).await;
        self.watch(outcome)
    }

    async fn pause_clear(&self, job: &str, scope: Option<&Scope>) -> Result<bool> {
        let outcome = self.inner.pause_clear(job, scope).await;
        self.watch(outcome)
    }

    async fn pause_list(&self, job: Option<&str>) -> Result<Vec<Pause>> {
        let outcome = self.inner.pause_list(job).await;
        self.watch(outcome)
    }

    async fn skip_record(&self, spans: &[SkipSpan]) -> Result<()> {
        let outcome = self.inner.skip_record(spans).await;
        self.watch(outcome)
    }

    async fn skip_find(
        &self,
        job: &str,
        scope: &Scope,
        plan_time: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<Vec<SkipSpan>> {
        let outcome = self.inner.skip_find(job, scope, plan_time, due_at).await;
        self.watch(outcome)
    }

    async fn skip_list(&self, job: Option<&str>, limit: usize) -> Result<Vec<SkipSpan>> {
        let outcome = self.inner.skip_list(job, limit).await;
        self.watch(outcome)
    }

    async fn skip_prune(&self, older_than: Duration, limit: usize) -> Result<u64> {
        let outcome = self.inner.skip_prune(older_than, limit).await;
        self.watch(outcome)
    }

    async fn runner_register(
        &self,
        runner: &RunnerRegistration,
        jobs: &[JobDescription],
    ) -> Result<()> {
        let outcome = self.inner.runner_register(runner, jobs).await;
        self.watch(outcome)
    }

    async fn runner_seen(&self, runner_id: &str) -> Result<bool> {
        let outcome = self.inner.runner_seen(runner_id).await;
        self.watch(outcome)
    }

    async fn runner_stop(&self, runner_id: &str) -> Result<bool> {
        let outcome = self.inner.runner_stop(runner_id).await;
        self.watch(outcome)
    }

    async fn runner_list(&self) -> Result<Vec<Runner>> {
        let outcome = self.inner.runner_list().await;
        self.watch(outcome)
    }

    async fn runner_prune(&self, older_than: Duration) -> Result<u64> {
        let outcome = self.inner.runner_prune(older_than).await;
        self.watch(outcome)
    }

    async fn registered_jobs(&self, job: Option<&str>) -> Result<Vec<RegisteredJob>> {
        let outcome = self.inner.registered_jobs(job).await;
        self.watch(outcome)
    }

    async fn history_partitions(&self) -> Result<Option<crate::store::HistoryPartitions>> {
        let outcome = self.inner.history_partitions().await;
        self.watch(outcome)
    }

    async fn history_partitions_create(&self, days: &[chrono::NaiveDate]) -> Result<u64> {
        let outcome = self.inner.history_partitions_create(days).await;
        self.watch(outcome)
    }

    async fn history_partition_drop(
        &self,
        day: chrono::NaiveDate,
        keep: &crate::store::PartitionKeep,
    ) -> Result<Option<crate::store::PartitionDropped>> {
        let outcome = self.inner.history_partition_drop(day, keep).await;
        self.watch(outcome)
    }

    async fn trigger_create(&self, trigger: &Trigger) -> Result<Trigger> {
        let outcome = self.inner.trigger_create(trigger).await;
        self.watch(outcome)
    }

    async fn trigger_list(&self, job: Option<&str>, pending_only: bool) -> Result<Vec<Trigger>> {
        let outcome = self.inner.trigger_list(job, pending_only).await;
        self.watch(outcome)
    }

    async fn trigger_start(&self, start: &ManualStart<'_>) -> Result<Vec<Claimed>> {
        let outcome = self.inner.trigger_start(start).await;
        self.watch(outcome)
    }

    async fn backfill_create(&self, backfill: &Backfill) -> Result<Backfill> {
        let outcome = self.inner.backfill_create(backfill).await;
        self.watch(outcome)
    }

    async fn backfill_get(&self, id: Uuid) -> Result<Option<Backfill>> {
        let outcome = self.inner.backfill_get(id).await;
        self.watch(outcome)
    }

    async fn backfill_list(&self, job: Option<&str>, active_only: bool) -> Result<Vec<Backfill>> {
        let outcome = self.inner.backfill_list(job, active_only).await;
        self.watch(outcome)
    }

    async fn backfill_cancel(&self, id: Uuid) -> Result<bool> {
        let outcome = self.inner.backfill_cancel(id).await;
        self.watch(outcome)
    }

    async fn backfill_advance(&self, advance: &BackfillAdvance) -> Result<bool> {
        let outcome = self.inner.backfill_advance(advance).await;
        self.watch(outcome)
    }

    async fn execution_rerun(
        &self,
        job: &str,
        plans: &[(Scope, DateTime<Utc>)],
        finished_before: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<u64> {
        let outcome = self
            .inner
            .execution_rerun(job, plans, finished_before, extra_attempts)
            .await;
        self.watch(outcome)
    }
}
