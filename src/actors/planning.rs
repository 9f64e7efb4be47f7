//! The user's planning code, run at arm's length: the scope provider and the planner hook.
//!
//! Both are called every tick, so a bug in either must cost only its own job that tick. Each
//! runs on the handler runtime, never on the arbiter that drives the actors and the database:
//! - a panic is caught (the task harness for the provider, `catch_unwind` per scope for the
//!   hook) and becomes a [`PlanningError`];
//! - a call that does not return within the job's `planning_timeout` is abandoned (a blocking
//!   hook keeps its thread until it returns, but nothing waits for it);
//! - a hook error or panic for one scope skips only that scope.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::handler_runtime::HandlerRuntime;
use crate::scope::{Scope, Scopes};
use crate::spec::PlannerHook;

/// Why a job could not be planned this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanningError {
    /// The provider or hook returned an error.
    Failed(String),
    /// It panicked.
    Panicked(String),
    /// It did not return within the planning timeout.
    TimedOut(Duration),
}

/// Whose code failed: the label prefix of `cronlease_tick_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanningCode {
    ScopeProvider,
    PlannerHook,
}

impl PlanningError {
    /// How it failed: `error`, `panic` or `timeout` (the `reason` of
    /// `cronlease_scope_provider_failures_total`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PlanningError::Failed(_) => "error",
            PlanningError::Panicked(_) => "panic",
            PlanningError::TimedOut(_) => "timeout",
        }
    }

    /// The `reason` label of `cronlease_tick_errors_total`, e.g. `scope_provider_panic`.
    pub(crate) fn reason(&self, code: PlanningCode) -> &'static str {
        use PlanningCode::*;
        use PlanningError::*;
        match (code, self) {
            (ScopeProvider, Failed(_)) => "scope_provider_error",
            (ScopeProvider, Panicked(_)) => "scope_provider_panic",
            (ScopeProvider, TimedOut(_)) => "scope_provider_timeout",
            (PlannerHook, Failed(_)) => "planner_hook_error",
            (PlannerHook, Panicked(_)) => "planner_hook_panic",
            (PlannerHook, TimedOut(_)) => "planner_hook_timeout",
        }
    }
}

impl std::fmt::Display for PlanningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanningError::Failed(message) => f.write_str(message),
            PlanningError::Panicked(message) => write!(f, "panicked: {message}"),
            PlanningError::TimedOut(limit) => write!(
                f,
                "did not return within planning_timeout ({})",
                humantime::format_duration(*limit)
            ),
        }
    }
}

/// The job's current scopes. A fixed list is returned as it is; a provider runs on the
/// handler runtime, bounded by `timeout`, its panics caught.
pub(crate) async fn resolve_scopes(
    scopes: &Scopes,
    handlers: &HandlerRuntime,
    timeout: Duration,
) -> Result<Arc<[Scope]>, PlanningError> {
    let provider = match scopes {
        Scopes::Static(list) => return Ok(list.clone()),
        Scopes::Provider(_) => scopes.clone(),
    };
    // Called inside the task, so a panic while building the future is caught too.
    let task = handlers.spawn(async move { provider.resolve().await });
    let abort = task.abort_handle();
    match actix_rt::time::timeout(timeout, task).await {
        Ok(Ok(Ok(scopes))) => Ok(scopes),
        Ok(Ok(Err(error))) => Err(PlanningError::Failed(error.to_string())),
        Ok(Err(join_error)) if join_error.is_panic() => {
            Err(PlanningError::Panicked(panic_text(join_error.into_panic())))
        }
        Ok(Err(_)) => Err(PlanningError::Failed(
            "the scope provider's task was dropped".into(),
        )),
        Err(_) => {
            abort.abort();
            Err(PlanningError::TimedOut(timeout))
        }
    }
}

/// What the planner hook said for one scope: its plan times, or why it was skipped.
pub(crate) type HookAnswer = (Scope, Result<Vec<DateTime<Utc>>, PlanningError>);

/// Calls the planner hook for every `(scope, newest known plan)` on a blocking thread of the
/// handler runtime, each call guarded against panics; the whole pass is bounded by `timeout`.
pub(crate) async fn run_hook(
    hook: &PlannerHook,
    handlers: &HandlerRuntime,
    timeout: Duration,
    db_now: DateTime<Utc>,
    inputs: Vec<(Scope, Option<DateTime<Utc>>)>,
) -> Result<Vec<HookAnswer>, PlanningError> {
    let hook = hook.clone();
    let task = handlers.spawn_blocking(move || {
        inputs
            .into_iter()
            .map(|(scope, known)| {
                let answer = match catch_unwind(AssertUnwindSafe(|| hook(&scope, db_now, known))) {
                    Ok(Ok(plans)) => Ok(plans),
                    Ok(Err(error)) => Err(PlanningError::Failed(error.to_string())),
                    Err(payload) => Err(PlanningError::Panicked(panic_text(payload))),
                };
                (scope, answer)
            })
            .collect::<Vec<_>>()
    });
    match actix_rt::time::timeout(timeout, task).await {
        Ok(Ok(answers)) => Ok(answers),
        Ok(Err(join_error)) => Err(PlanningError::Failed(format!(
            "the planner hook's task failed: {join_error}"
        ))),
        Err(_) => Err(PlanningError::TimedOut(timeout)),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handlers() -> HandlerRuntime {
        HandlerRuntime::new(1).unwrap()
    }

    #[actix_rt::test]
    async fn a_panicking_provider_is_an_error_not_a_crash() {
        let scopes = Scopes::provider(|| async { panic!("tenant table missing") });
        let error = resolve_scopes(&scopes, &handlers(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            PlanningError::Panicked("tenant table missing".into())
        );
    }

    #[actix_rt::test]
    async fn a_hanging_provider_times_out() {
        let scopes = Scopes::provider(|| async {
            std::future::pending::<()>().await;
            Ok(vec![])
        });
        let limit = Duration::from_millis(50);
        let error = resolve_scopes(&scopes, &handlers(), limit)
            .await
            .unwrap_err();
        assert_eq!(error, PlanningError::TimedOut(limit));
        assert_eq!(
            error.reason(PlanningCode::ScopeProvider),
            "scope_provider_timeout"
        );
    }

    #[actix_rt::test]
    async fn a_hook_panic_skips_only_its_scope() {
        let hook: PlannerHook = Arc::new(|scope: &Scope, now, _| {
            if scope.id == "bad" {
                panic!("bad scope");
            }
            Ok(vec![now])
        });
        let now = Utc::now();
        let answers = run_hook(
            &hook,
            &handlers(),
            Duration::from_secs(5),
            now,
            vec![
                (Scope::new("t", "bad"), None),
                (Scope::new("t", "ok"), None),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            answers[0].1,
            Err(PlanningError::Panicked("bad scope".into()))
        );
        assert_eq!(answers[1].1, Ok(vec![now]));
    }

    #[actix_rt::test]
    async fn a_blocking_hook_times_out() {
        let hook: PlannerHook = Arc::new(|_: &Scope, _, _| {
            std::thread::sleep(Duration::from_millis(500));
            Ok(vec![])
        });
        let limit = Duration::from_millis(50);
        let error = run_hook(
            &hook,
            &handlers(),
            limit,
            Utc::now(),
            vec![(Scope::global(), None)],
        )
        .await
        .unwrap_err();
        assert_eq!(error, PlanningError::TimedOut(limit));
    }
}
