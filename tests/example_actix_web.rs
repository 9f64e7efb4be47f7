//! `examples/actix_web.rs`, compiled in and served on 127.0.0.1 (an ephemeral port): the admin
//! API it mounts and its metrics checked over real HTTP/1.1 (reading without a token, acting with
//! the bearer token), then a graceful stop.

mod common;

#[allow(dead_code)]
#[path = "../examples/actix_web.rs"]
mod app;

use std::net::{SocketAddr, TcpListener};

use cronlease::{Error, Status};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one request with `Connection: close` (and `headers`, each a full line) and returns the
/// status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("receive");
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

async fn json(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> (u16, Value) {
    let (status, body) = http(addr, method, path, headers).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

const JSON: &str = "Content-Type: application/json";
const TOKEN: &str = "Authorization: Bearer s3cret";

on_every_backend! {
    async fn the_admin_api_answers_over_http_and_stops_gracefully(db: TestDb) {
        // Installed on this thread only (the example installs it globally), so the two backends'
        // tests do not mix their numbers: what the actors record shows; what request threads
        // record (the replay counter) does not.
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let scheduler = app::jobs()
            .unwrap()
            .into_iter()
            .fold(common::scheduler(db.store.clone()), |builder, job| builder.job(job))
            .start()
            .await
            .unwrap();
        assert_eq!(scheduler.tick_now().await.unwrap().won, 2);
        scheduler.wait_idle(std::time::Duration::from_secs(10)).await;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = app::server(listener, scheduler.clone(), metrics, Some("s3cret".into())).unwrap();
        let handle = server.handle();
        let serving = actix_rt::spawn(server);

        let (status, jobs) = json(addr, "GET", "/cronlease/api/jobs", &[]).await;
        assert_eq!(status, 200, "{jobs}");
        assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2);
        let (status, all) = json(addr, "GET", "/cronlease/api/executions", &[]).await;
        assert_eq!(status, 200, "{all}");
        assert_eq!(all["executions"].as_array().unwrap().len(), 2);
        let (status, dead) = json(addr, "GET", "/cronlease/api/dead", &[]).await;
        assert_eq!(status, 200);
        let dead = dead["executions"].as_array().unwrap().clone();
        assert_eq!((dead.len(), &dead[0]["job_name"]), (1, &Value::from("export")));
        let id = dead[0]["id"].as_str().unwrap().to_owned();
        let replay = format!("/cronlease/api/dead/{id}/replay");

        // Reading needs no token; acting needs the bearer token and a JSON content type.
        assert_eq!(json(addr, "POST", &replay, &[JSON]).await.0, 403, "no token");
        assert_eq!(json(addr, "POST", &replay, &[JSON, "Authorization: Bearer wrong"]).await.0, 403);
        assert_eq!(json(addr, "POST", &replay, &[TOKEN]).await.0, 415, "not JSON");
        let (status, replayed) = json(addr, "POST", &replay, &[JSON, TOKEN]).await;
        assert_eq!(status, 200, "{replayed}");
        assert_eq!((replayed["id"].as_str(), &replayed["status"]), (Some(id.as_str()), &Value::from("FAILED")));
        assert_eq!(json(addr, "POST", &replay, &[JSON, TOKEN]).await.0, 409, "not dead any more");
        assert_eq!(scheduler.tick_now().await.unwrap().retried, 1);
        scheduler.wait_idle(std::time::Duration::from_secs(10)).await;
        let row = scheduler.execution(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt, row.failures.len()), (Status::Success, 2, 1));

        let (status, text) = http(addr, "GET", "/metrics", &[]).await;
        assert_eq!(status, 200);
        for line in [
            r#"cronlease_claims_total{job="report",outcome="won"} 1"#,
            r#"cronlease_claims_total{job="export",outcome="replayed"} 1"#,
            r#"cronlease_dead_lettered_total{job="export"} 1"#,
            r#"cronlease_executions_total{job="export",outcome="success",code=""} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(text.contains("cronlease_handler_duration_seconds"), "{text}");

        // A graceful stop of the server, then of the scheduler, as the example's main does.
        handle.stop(true).await;
        serving.await.unwrap().unwrap();
        scheduler.shutdown().await;
        assert!(matches!(scheduler.tick_now().await, Err(Error::NotRunning)));
    }
}
