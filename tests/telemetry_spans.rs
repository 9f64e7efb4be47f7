//! Every handler future runs inside the `cronlease.execution` span, so the events a handler logs
//! carry its job, scope, plan time, execution id, attempt and runner. A small capturing layer,
//! installed once for the process (handlers run on their own runtime's threads), records each
//! event with the fields of the spans around it.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::SecondsFormat;
use common::scheduler;
use cronlease::telemetry::EXECUTION_SPAN;
use cronlease::{Backoff, JobContext, JobError, JobOutput, JobSpec, Scope};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Field name to value, as text (`Display` for `%` fields, `Debug` otherwise).
#[derive(Debug, Clone, Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// One event with the spans it was recorded in, outermost first.
#[derive(Debug, Clone)]
struct Captured {
    fields: Fields,
    spans: Vec<(String, Fields)>,
}

#[derive(Default)]
struct Log {
    events: Vec<Captured>,
    /// Spans as they were when they closed.
    closed: Vec<(String, Fields)>,
}

struct Capture(Arc<Mutex<Log>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id)
            .expect("a new span")
            .extensions_mut()
            .insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a live span");
        if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| {
                        let fields = span.extensions().get::<Fields>().cloned();
                        (span.name().to_owned(), fields.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .events
            .push(Captured { fields, spans });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).expect("a closing span");
        let fields = span.extensions().get::<Fields>().cloned();
        let closed = (span.name().to_owned(), fields.unwrap_or_default());
        self.0.lock().unwrap().closed.push(closed);
    }
}

/// The process-wide capture (tests of this file run in parallel: each filters by job name).
fn log() -> Arc<Mutex<Log>> {
    static LOG: OnceLock<Arc<Mutex<Log>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Log::default()));
        tracing_subscriber::registry()
            .with(Capture(log.clone()))
            .try_init()
            .expect("no other global subscriber in this test binary");
        log
    })
    .clone()
}

/// The events logged with `message` inside a span of `job` (tests run in parallel).
fn events(message: &str, job: &str) -> Vec<Captured> {
    let log = log();
    let log = log.lock().unwrap();
    log.events
        .iter()
        .filter(|e| e.fields.get("message") == Some(message))
        .filter(|e| e.spans.iter().any(|(_, span)| span.get("job") == Some(job)))
        .cloned()
        .collect()
}

on_every_backend! {
    async fn a_handlers_logs_carry_the_execution_span(db: TestDb) {
        let log = log();
        let job = format!("span-{}", db.backend);
        let scope = Scope::new("tenant", "acme");
        let s = scheduler(db.store.clone())
            .runner_id("span-runner")
            .job(
                JobSpec::builder(job.as_str())
                    .every("1h")
                    .scopes(vec![scope.clone()])
                    .max_attempts(2)
                    .backoff(Backoff::list(["0s"]).unwrap())
                    .handler(|ctx: JobContext| async move {
                        // Logged after an await, on whichever handler thread resumes it.
                        tokio::task::yield_now().await;
                        tracing::info!(rows = 3, "handler ran");
                        if ctx.attempt() == 1 {
                            Err::<JobOutput, _>(JobError::retryable("first attempt fails"))
                        } else {
                            Ok(JobOutput::rows(3))
                        }
                    })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        assert_eq!(s.tick_now().await.unwrap().won, 1);
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        assert_eq!(s.tick_now().await.unwrap().retried, 1);
        assert!(s.wait_idle(Duration::from_secs(10)).await);
        s.shutdown().await;

        let row = common::rows(&*db.store, &job).await.remove(0);
        let plan_time = row.plan_time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let logged = events("handler ran", &job);
        assert_eq!(logged.len(), 2, "{logged:?}");
        for (event, attempt) in logged.iter().zip(["1", "2"]) {
            assert_eq!(event.fields.get("rows"), Some("3"));
            let (name, span) = event.spans.last().expect("the event is inside a span");
            assert_eq!(name, EXECUTION_SPAN);
            assert_eq!(span.get("job"), Some(job.as_str()));
            assert_eq!(span.get("scope_kind"), Some("tenant"));
            assert_eq!(span.get("scope_id"), Some("acme"));
            assert_eq!(span.get("plan_time"), Some(plan_time.as_str()));
            assert_eq!(span.get("execution_id"), Some(row.id.to_string().as_str()));
            assert_eq!(span.get("attempt"), Some(attempt));
            assert_eq!(span.get("runner"), Some("span-runner"));
        }
        // Each attempt's span closes with its outcome.
        let log = log.lock().unwrap();
        let outcomes: Vec<_> = log
            .closed
            .iter()
            .filter(|(name, span)| name == EXECUTION_SPAN && span.get("execution_id") == Some(row.id.to_string().as_str()))
            .map(|(_, span)| (span.get("attempt").unwrap_or("").to_owned(), span.get("outcome").unwrap_or("").to_owned()))
            .collect();
        assert_eq!(outcomes, [("1".to_owned(), "error".to_owned()), ("2".to_owned(), "success".to_owned())]);
    }
}
