//! `examples/opentelemetry.rs`, compiled in: its subscriber and job, exporting to an in-memory
//! span exporter instead of stdout, produce one `cronlease.execution` span with the attempt's
//! identity as attributes and the handler's log line as a span event.

#[allow(dead_code)]
#[path = "../examples/opentelemetry.rs"]
mod example;

use cronlease::SqliteStore;
use cronlease::telemetry::EXECUTION_SPAN;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[actix::test]
async fn the_example_exports_an_execution_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    example::install_subscriber(&provider);
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    example::run_once(store).await.unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let executions: Vec<_> = spans.iter().filter(|s| s.name == EXECUTION_SPAN).collect();
    assert_eq!(executions.len(), 1, "{spans:#?}");
    let span = executions[0];
    assert_eq!(attribute(span, "job").as_deref(), Some("nightly-report"));
    assert_eq!(attribute(span, "scope_kind").as_deref(), Some("tenant"));
    assert_eq!(attribute(span, "scope_id").as_deref(), Some("acme"));
    let attempt = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "attempt");
    assert_eq!(
        attempt.map(|kv| &kv.value),
        Some(&Value::I64(1)),
        "a number"
    );
    assert_eq!(attribute(span, "outcome").as_deref(), Some("success"));
    let id = attribute(span, "execution_id").expect("an execution id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let plan_time = attribute(span, "plan_time").expect("a plan time");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&plan_time).is_ok(),
        "{plan_time}"
    );
    assert!(attribute(span, "runner").is_some_and(|r| !r.is_empty()));
    let events: Vec<_> = span.events.iter().map(|e| e.name.as_ref()).collect();
    assert!(events.contains(&"report built"), "{events:?}");
    provider.shutdown().unwrap();
}
