//! The runtime's view of the store: every call passes through, and its outcome feeds the
//! runner's [`TakeoverGuard`] (transient failures, successes, database clock reads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::control::{ClaimGuard, Pause};
use crate::error::Result;
use crate::execution::{Execution, Status};
use crate::scope::Scope;
use crate::store::{
    ClaimRequest, Claimed, ExecutionFilter, FailureWrite, GuardedClaim, PruneSet, Renewal,
    RetryCandidate, Store, SuccessWrite, Swept,
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

    async fn execution_latest_plans(&self, job: &str) -> Result<Vec<(Scope, DateTime<Utc>)>> {
        let outcome = self.inner.execution_latest_plans(job).await;
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
        older_than: Duration,
        limit: usize,
    ) -> Result<u64> {
        let outcome = self.inner.execution_prune(set, older_than, limit).await;
        self.watch(outcome)
    }

    async fn execution_count_stale(&self) -> Result<Vec<(String, i64)>> {
        let outcome = self.inner.execution_count_stale().await;
        self.watch(outcome)
    }

    async fn tick_clock(&self, job: &str) -> Result<(DateTime<Utc>, Vec<Option<Scope>>)> {
        let (now, paused) = match self.inner.tick_clock(job).await {
            Ok((now, paused)) => (Ok(now), paused),
            Err(error) => (Err(error), Vec::new()),
        };
        self.watch_clock(now).map(|now| (now, paused))
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
}
