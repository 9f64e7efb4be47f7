//! The JSON admin API of `cronlease::web`, over actix-web's test service on every backend: every
//! endpoint and action against a scheduler with real rows, every kind of bad input, the
//! authorization rules, the security headers, and no lease token in any reply.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, test};
use chrono::{DateTime, TimeDelta, Utc};
use common::scheduler;
use cronlease::store::ExecutionFilter;
use cronlease::web::Access;
use cronlease::{JobContext, JobError, JobOutput, JobSpec, Scheduler, Status, Store};
use serde_json::{Value, json};

/// Every route of the API: method and path under `/cronlease/api`.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/jobs"),
    ("get", "/jobs/{name}"),
    ("get", "/jobs/{name}/preview"),
    ("get", "/jobs/{name}/why"),
    ("post", "/jobs/{name}/pause"),
    ("post", "/jobs/{name}/resume"),
    ("post", "/jobs/{name}/trigger"),
    ("post", "/jobs/{name}/backfill"),
    ("get", "/backfills"),
    ("get", "/backfills/{id}"),
    ("post", "/backfills/{id}/cancel"),
    ("get", "/runners"),
    ("get", "/executions"),
    ("get", "/executions/{id}"),
    ("get", "/dead"),
    ("post", "/dead/{id}/replay"),
    ("post", "/dead/replay"),
    ("get", "/openapi.json"),
];

type Reply = (u16, HeaderMap, String);
type Call = Box<dyn Fn(test::TestRequest) -> Pin<Box<dyn Future<Output = Reply>>>>;

/// The API mounted at `/cronlease`, and the store to check replies against.
struct Api {
    call: Call,
    store: Arc<dyn Store>,
}

impl Api {
    /// Mounts the API; with `authorize`, the `x-access` header decides (`act`, `deny`, else
    /// read); without, the default (read-only).
    async fn new(scheduler: &Scheduler, authorize: bool) -> Api {
        let mut scope = cronlease::web::scope("/cronlease", scheduler.clone());
        if authorize {
            scope = scope.authorize(|req| {
                match req.headers().get("x-access").and_then(|v| v.to_str().ok()) {
                    Some("act") => Access::Act,
                    Some("deny") => Access::Deny,
                    _ => Access::Read,
                }
            });
        }
        let app = Rc::new(test::init_service(App::new().service(scope)).await);
        let call: Call = Box::new(move |req| {
            let app = app.clone();
            Box::pin(async move {
                let res = test::call_service(&*app, req.to_request()).await;
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let body = test::read_body(res).await;
                (
                    status,
                    headers,
                    String::from_utf8(body.to_vec()).expect("utf-8 body"),
                )
            })
        });
        Api {
            call,
            store: scheduler.store().clone(),
        }
    }

    /// Sends `req`; checks that the reply is JSON, carries the security headers and no lease
    /// token of any row in the database.
    async fn send(&self, req: test::TestRequest) -> (u16, Value) {
        let (status, headers, body) = (self.call)(req).await;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on a {status} reply"
            );
        }
        assert!(headers.contains_key("content-security-policy"));
        let rows = self
            .store
            .execution_list(&ExecutionFilter {
                limit: 1000,
                ..ExecutionFilter::default()
            })
            .await
            .unwrap();
        for row in &rows {
            assert!(
                !body.contains(&row.lease_token.to_string()),
                "a lease token in a reply: {body}"
            );
        }
        assert!(!body.contains("lease_token"), "{body}");
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, None).await
    }

    async fn get_as(&self, path: &str, access: Option<&str>) -> (u16, Value) {
        let mut req = test::TestRequest::get().uri(&format!("/cronlease/api{path}"));
        if let Some(access) = access {
            req = req.insert_header(("x-access", access));
        }
        self.send(req).await
    }

    /// A POST with a JSON content type, as `access`.
    async fn post_as(&self, path: &str, body: Value, access: Option<&str>) -> (u16, Value) {
        let mut req = test::TestRequest::post()
            .uri(&format!("/cronlease/api{path}"))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_string());
        if let Some(access) = access {
            req = req.insert_header(("x-access", access));
        }
        self.send(req).await
    }

    /// A POST allowed to act.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(path, body, Some("act")).await
    }

    /// A POST allowed to act with a raw body and content type.
    async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let req = test::TestRequest::post()
            .uri(&format!("/cronlease/api{path}"))
            .insert_header((header::CONTENT_TYPE, content_type))
            .insert_header(("x-access", "act"))
            .set_payload(body.to_owned());
        self.send(req).await
    }
}

/// `report` succeeds for two tenants every minute; `export` fails permanently on a plan's first
/// attempt, so it lands in the dead-letter set.
fn jobs() -> Vec<JobSpec> {
    let report = JobSpec::builder("report")
        .every("1m")
        .scopes(common::tenants(2))
        .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
        .build()
        .unwrap();
    let export = JobSpec::builder("export")
        .every("1m")
        .handler(|ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                return Err(JobError::permanent("the export target rejected the file"));
            }
            Ok(JobOutput::rows(1))
        })
        .build()
        .unwrap();
    vec![report, export]
}

/// A scheduler with one tick run: two SUCCESS rows of `report`, one DEAD row of `export`.
async fn started(db: &common::TestDb) -> Scheduler {
    let scheduler = jobs()
        .into_iter()
        .fold(
            scheduler(db.store.clone()).runner_id("web-runner"),
            |b, job| b.job(job),
        )
        .start()
        .await
        .unwrap();
    assert_eq!(scheduler.tick_now().await.unwrap().won, 3);
    assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
    scheduler
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

fn ids(page: &Value) -> Vec<String> {
    page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

on_every_backend! {
    async fn every_read_endpoint_answers_with_the_rows_web_api(db: TestDb) {
        let scheduler = started(&db).await;
        let api = Api::new(&scheduler, false).await;

        let (status, jobs) = api.get("/jobs").await;
        assert_eq!(status, 200, "{jobs}");
        let names: Vec<&str> = jobs["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["export", "report"]);
        let (status, report) = api.get("/jobs/report").await;
        assert_eq!(status, 200, "{report}");
        let summary = &report["job"];
        assert_eq!(summary["schedule"], "every 1m");
        assert_eq!(summary["counts"]["SUCCESS"], 2);
        assert_eq!(summary["counts"]["DEAD"], 0);
        assert_eq!((summary["paused"].as_bool(), summary["paused_scopes"].as_u64()), (Some(false), Some(0)));
        assert_eq!(summary["failures_24h"], 0);
        assert_eq!(summary["runs_here"], true);
        assert_eq!(summary["runners"], json!([{ "id": "web-runner", "state": "live" }]));
        assert!(summary["last_success_at"].is_string(), "{summary}");
        let (_, export) = api.get("/jobs/export").await;
        assert_eq!((export["job"]["counts"]["DEAD"].as_i64(), export["job"]["failures_24h"].as_u64()), (Some(1), Some(1)));
        assert!(export["job"]["last_success_at"].is_null());

        // The preview starts after the database clock's now, at the summary's next plan.
        let (status, preview) = api.get("/jobs/report/preview?scope=tenant:0&n=3").await;
        assert_eq!(status, 200, "{preview}");
        let plans = preview["plans"].as_array().unwrap();
        assert_eq!(plans.len(), 3);
        assert_eq!(plans[0]["plan_time"], summary["next_plan"]);
        assert!(time(&plans[0]["plan_time"]) > time(&preview["now"]));
        assert_eq!(time(&plans[1]["plan_time"]) - time(&plans[0]["plan_time"]), TimeDelta::minutes(1));
        assert_eq!(api.get("/jobs/report/preview").await.1["plans"].as_array().unwrap().len(), 5);

        // Why: the plan that ran, and the next one, not due yet.
        let ran = scheduler.executions(&ExecutionFilter { job: Some("report".into()), ..ExecutionFilter::default() }).await.unwrap();
        let plan_time = ran[0].plan_time.to_rfc3339();
        let scope = ran[0].scope.to_string();
        let (status, why) = api.get(&format!("/jobs/report/why?scope={scope}&plan_time={}", urlencode(&plan_time))).await;
        assert_eq!(status, 200, "{why}");
        assert_eq!(why["answer"], "ran");
        assert_eq!(why["execution"]["id"], ran[0].id.to_string());
        let next = plans[0]["plan_time"].as_str().unwrap();
        let (_, why) = api.get(&format!("/jobs/report/why?scope=tenant:0&plan_time={}", urlencode(next))).await;
        assert_eq!(why["answer"], "not_due_yet", "{why}");
        assert!(why["description"].as_str().unwrap().starts_with("not due yet"));

        let (status, runners) = api.get("/runners").await;
        assert_eq!(status, 200);
        assert_eq!(runners["runners"][0]["id"], "web-runner");
        assert_eq!(runners["runners"][0]["state"], "live");

        // Keyset pages of one row walk the whole newest-first listing.
        let (status, all) = api.get("/executions").await;
        assert_eq!(status, 200, "{all}");
        assert_eq!(all["next"], Value::Null);
        let all_ids = ids(&all);
        assert_eq!(all_ids.len(), 3);
        let mut walked = Vec::new();
        let mut path = "/executions?limit=1".to_owned();
        loop {
            let (status, page) = api.get(&path).await;
            assert_eq!(status, 200, "{page}");
            walked.extend(ids(&page));
            match page["next"].as_str() {
                Some(next) => path = format!("/executions?limit=1&after={next}"),
                None => break,
            }
        }
        assert_eq!(walked, all_ids, "one page of one row for each row, then an empty last page");
        let (_, filtered) = api.get("/executions?job=report&scope=tenant:1&status=SUCCESS").await;
        assert_eq!(filtered["executions"].as_array().unwrap().len(), 1);
        assert_eq!(filtered["executions"][0]["scope_text"], "tenant:1");
        let (_, split) = api.get("/executions?scope_kind=tenant&scope_id=0").await;
        assert_eq!(split["executions"].as_array().unwrap().len(), 1);
        let (_, none) = api.get(&format!("/executions?before={}", urlencode(&plan_time))).await;
        assert!(none["executions"].as_array().unwrap().is_empty(), "{none}");
        let (_, from) = api.get(&format!("/executions?from={}", urlencode(&plan_time))).await;
        assert_eq!(from["executions"].as_array().unwrap().len(), 3);

        // The dead-letter set and one row with its failure history.
        let (status, dead) = api.get("/dead").await;
        assert_eq!(status, 200);
        let dead_id = ids(&dead).pop().expect("one dead row");
        assert_eq!(dead["executions"][0]["job_name"], "export");
        let (status, row) = api.get(&format!("/executions/{dead_id}")).await;
        assert_eq!(status, 200, "{row}");
        assert_eq!(row["status"], "DEAD");
        assert_eq!(row["failures"][0]["code"], "permanent");
        assert_eq!(row["failures"][0]["message"], "the export target rejected the file");
        let (_, dead_report) = api.get("/dead?job=report").await;
        assert!(dead_report["executions"].as_array().unwrap().is_empty());

        let (status, backfills) = api.get("/backfills").await;
        assert_eq!((status, backfills), (200, json!({ "backfills": [] })));
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn every_action_changes_the_scheduler_web_api(db: TestDb) {
        let scheduler = started(&db).await;
        let api = Api::new(&scheduler, true).await;

        // Pause one scope, then the whole job; resume both.
        let (status, pause) = api.post("/jobs/report/pause", json!({ "scope": "tenant:0", "reason": "migration", "by": "alice" })).await;
        assert_eq!(status, 200, "{pause}");
        assert_eq!((pause["scope"].as_str(), pause["reason"].as_str(), pause["paused_by"].as_str()), (Some("tenant:0"), Some("migration"), Some("alice")));
        assert_eq!(api.get("/jobs/report").await.1["job"]["paused_scopes"], 1);
        let (status, whole) = api.post_raw("/jobs/report/pause", "application/json", "").await;
        assert_eq!(status, 200, "an empty body pauses the whole job: {whole}");
        assert_eq!((whole["scope"].clone(), whole["paused_by"].clone()), (Value::Null, json!("web")));
        let (_, report) = api.get("/jobs/report").await;
        assert_eq!(report["job"]["paused"], true);
        assert_eq!(report["pauses"].as_array().unwrap().len(), 2);
        assert_eq!(scheduler.pauses(Some("report")).await.unwrap().len(), 2);
        assert_eq!(api.post("/jobs/report/resume", json!({})).await, (200, json!({ "resumed": true })));
        assert_eq!(api.post("/jobs/report/resume", json!({})).await, (200, json!({ "resumed": false })));
        assert_eq!(api.post("/jobs/report/resume", json!({ "scope": "tenant:0" })).await, (200, json!({ "resumed": true })));
        assert!(scheduler.pauses(Some("report")).await.unwrap().is_empty());

        // A trigger with an idempotency key runs once, however often it is asked.
        let (status, trigger) = api.post("/jobs/report/trigger", json!({ "scope": "tenant:1", "idempotency_key": "ticket-1" })).await;
        assert_eq!(status, 202, "{trigger}");
        let (_, again) = api.post("/jobs/report/trigger", json!({ "scope": "tenant:1", "idempotency_key": "ticket-1" })).await;
        assert_eq!(again["id"], trigger["id"]);
        scheduler.tick_now().await.unwrap();
        assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
        let (_, manual) = api.get("/executions?job=report&scope=tenant:1").await;
        let manual: Vec<&Value> = manual["executions"].as_array().unwrap().iter().filter(|e| e["trigger_id"] == trigger["id"]).collect();
        assert_eq!(manual.len(), 1);
        assert_eq!(manual[0]["status"], "SUCCESS");

        // A backfill of a few past minutes, listed, read and cancelled.
        let now = time(&api.get("/jobs/report/preview").await.1["now"]);
        let (from, to) = (now - TimeDelta::minutes(10), now - TimeDelta::minutes(5));
        let (status, backfill) = api.post("/jobs/report/backfill", json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "scope": "tenant:0" })).await;
        assert_eq!(status, 202, "{backfill}");
        assert_eq!((backfill["status"].as_str(), backfill["scopes"].clone()), (Some("ACTIVE"), json!(["tenant:0"])));
        let id = backfill["id"].as_str().unwrap().to_owned();
        let (_, listed) = api.get("/backfills?job=report").await;
        assert_eq!(listed["backfills"][0]["id"], id.as_str());
        assert!(api.get("/backfills?job=export").await.1["backfills"].as_array().unwrap().is_empty());
        let (status, read) = api.get(&format!("/backfills/{id}")).await;
        assert_eq!((status, read["from"].clone()), (200, backfill["from"].clone()));
        let (status, cancelled) = api.post(&format!("/backfills/{id}/cancel"), json!({})).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!((cancelled["cancelled"].as_bool(), cancelled["backfill"]["status"].as_str()), (Some(true), Some("CANCELLED")));
        assert_eq!(api.post(&format!("/backfills/{id}/cancel"), json!({})).await.1["cancelled"], false);
        // A backfill that runs: every plan of the range for both tenants.
        let (status, run) = api.post("/jobs/report/backfill", json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() })).await;
        assert_eq!(status, 202, "{run}");
        let path = format!("/backfills/{}", run["id"].as_str().unwrap());
        let mut progress = Value::Null;
        // Each tick hands out a step of the backfill with its free slots.
        for _ in 0..20 {
            scheduler.tick_now().await.unwrap();
            assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
            progress = api.get(&path).await.1;
            if progress["status"] != "ACTIVE" {
                break;
            }
        }
        assert_eq!((progress["status"].as_str(), progress["done"].as_u64(), progress["total"].as_u64()), (Some("DONE"), Some(10), Some(10)), "{progress}");

        // Replay the dead row; then a second dead row replayed by filter.
        let dead_id = ids(&api.get("/dead").await.1).pop().unwrap();
        let (status, replayed) = api.post(&format!("/dead/{dead_id}/replay"), json!({})).await;
        assert_eq!(status, 200, "{replayed}");
        assert_eq!((replayed["id"].as_str(), replayed["status"].as_str()), (Some(dead_id.as_str()), Some("FAILED")));
        let (status, again) = api.post(&format!("/dead/{dead_id}/replay"), json!({})).await;
        assert_eq!((status, again["parameter"].as_str()), (409, Some("id")), "{again}");
        scheduler.tick_now().await.unwrap();
        assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
        let row = scheduler.execution(dead_id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempt, row.failures.len()), (Status::Success, 2, 1));
        let (status, _) = api.post("/jobs/export/trigger", json!({})).await;
        assert_eq!(status, 202);
        scheduler.tick_now().await.unwrap();
        assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
        let dead_again = scheduler.dead_executions(&ExecutionFilter::default()).await.unwrap();
        assert_eq!(dead_again.len(), 1, "the triggered export died on its first attempt");
        let (_, none) = api.post("/dead/replay", json!({ "job": "report" })).await;
        assert_eq!(none, json!({ "replayed": [] }));
        let (status, bulk) = api.post("/dead/replay", json!({ "job": "export", "scope": "global", "limit": 10 })).await;
        assert_eq!(status, 200, "{bulk}");
        assert_eq!(bulk["replayed"][0]["id"], dead_again[0].id.to_string());
        assert!(scheduler.dead_executions(&ExecutionFilter::default()).await.unwrap().is_empty());
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn bad_input_is_a_json_4xx_naming_the_parameter_web_api(db: TestDb) {
        let scheduler = started(&db).await;
        let api = Api::new(&scheduler, true).await;
        let success = scheduler
            .executions(&ExecutionFilter { status: Some(Status::Success), ..ExecutionFilter::default() })
            .await
            .unwrap()[0]
            .id;
        let unknown = uuid::Uuid::now_v7();
        let gets: &[(&str, u16, &str)] = &[
            ("/executions/not-a-uuid", 400, "id"),
            (&format!("/executions/{unknown}"), 404, "id"),
            ("/executions?after=garbage", 400, "after"),
            ("/executions?limit=0", 400, "limit"),
            ("/executions?limit=1001", 400, "limit"),
            ("/executions?limit=ten", 400, "limit"),
            ("/dead?limit=-1", 400, "limit"),
            ("/executions?status=dead", 400, "status"),
            ("/executions?from=yesterday", 400, "from"),
            ("/dead?before=2026-13-01T00:00:00Z", 400, "before"),
            ("/executions?scope=tenant", 400, "scope"),
            ("/executions?scope=tenant:", 400, "scope"),
            ("/executions?scope_kind=tenant", 400, "scope_id"),
            ("/executions?stauts=DEAD", 400, "stauts"),
            ("/executions?limit=1&limit=2", 400, "limit"),
            ("/jobs/nope", 404, "name"),
            ("/jobs/nope/preview", 404, "name"),
            ("/jobs/report/preview?n=0", 400, "n"),
            ("/jobs/report/preview?scope=x", 400, "scope"),
            ("/jobs/report/why", 400, "plan_time"),
            ("/jobs/report/why?plan_time=noon", 400, "plan_time"),
            ("/jobs/nope/why?plan_time=2026-11-29T03:00:00Z", 404, "name"),
            ("/backfills/bad", 400, "id"),
            (&format!("/backfills/{unknown}"), 404, "id"),
        ];
        for (path, status, parameter) in gets {
            let (got, body) = api.get(path).await;
            assert_eq!((got, body["parameter"].as_str()), (*status, Some(*parameter)), "GET {path}: {body}");
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        }
        let posts: &[(&str, Value, u16, &str)] = &[
            ("/dead/bad/replay", json!({}), 400, "id"),
            (&format!("/dead/{unknown}/replay"), json!({}), 404, "id"),
            (&format!("/dead/{success}/replay"), json!({}), 409, "id"),
            ("/jobs/nope/pause", json!({}), 404, "name"),
            ("/jobs/nope/resume", json!({}), 404, "name"),
            ("/jobs/nope/trigger", json!({}), 404, "name"),
            ("/jobs/report/pause", json!({ "scope": "x" }), 400, "scope"),
            ("/jobs/report/pause", json!({ "until": "2026-12-01T00:00:00Z" }), 400, "until"),
            ("/jobs/report/pause", json!({ "reason": 5 }), 400, "body"),
            ("/jobs/report/trigger", json!({ "scope": "tenant:" }), 400, "scope"),
            ("/jobs/report/backfill", json!({}), 400, "from"),
            ("/jobs/report/backfill", json!({ "from": "x", "to": "2026-11-29T00:00:00Z" }), 400, "from"),
            ("/jobs/report/backfill", json!({ "from": "2026-11-29T00:00:00Z", "to": "2026-11-28T00:00:00Z" }), 400, "to"),
            ("/jobs/nope/backfill", json!({ "from": "2026-11-28T00:00:00Z", "to": "2026-11-29T00:00:00Z" }), 404, "name"),
            ("/backfills/bad/cancel", json!({}), 400, "id"),
            (&format!("/backfills/{unknown}/cancel"), json!({}), 404, "id"),
            ("/dead/replay", json!({ "limit": 0 }), 400, "limit"),
            ("/dead/replay", json!({ "status": "gone" }), 400, "status"),
        ];
        for (path, body, status, parameter) in posts {
            let (got, reply) = api.post(path, body.clone()).await;
            assert_eq!((got, reply["parameter"].as_str()), (*status, Some(*parameter)), "POST {path} {body}: {reply}");
        }
        let (status, reply) = api.post_raw("/jobs/report/pause", "application/json", "{not json").await;
        assert_eq!((status, reply["parameter"].as_str()), (400, Some("body")), "{reply}");
        // Not JSON: a cross-site form cannot send this API an action.
        for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let (status, reply) = api.post_raw("/jobs/report/pause", content_type, "{}").await;
            assert_eq!((status, reply["parameter"].as_str()), (415, Some("Content-Type")), "{content_type}: {reply}");
        }
        let (status, reply) = api.post_raw("/jobs/report/pause", "application/json; charset=utf-8", "{}").await;
        assert_eq!(status, 200, "{reply}");
        let (status, reply) = api.get("/no-such-endpoint").await;
        assert_eq!(status, 404, "{reply}");
        let (status, reply) = api.get(&format!("/dead/{unknown}/replay")).await;
        assert_eq!((status, reply["parameter"].as_str()), (405, Some("method")), "{reply}");
        let (status, reply) = api.post("/jobs", json!({})).await;
        assert_eq!((status, reply["error"].as_str()), (405, Some("this endpoint answers GET only")), "{reply}");
        assert!(scheduler.pauses(None).await.unwrap().len() == 1, "only the well-formed pause was stored");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn the_embedders_decision_guards_every_endpoint_web_api(db: TestDb) {
        let scheduler = started(&db).await;
        let dead = scheduler.dead_executions(&ExecutionFilter::default()).await.unwrap()[0].id;
        // No hook: reading only.
        let default = Api::new(&scheduler, false).await;
        assert_eq!(default.get("/jobs").await.0, 200);
        assert_eq!(default.get("/openapi.json").await.0, 200);
        for path in ["/jobs/report/pause", "/jobs/report/trigger", "/dead/replay", &format!("/dead/{dead}/replay"), "/dead/bad/replay"] {
            let (status, reply) = default.post_as(path, json!({}), Some("act")).await;
            assert_eq!(status, 403, "without a hook {path} must be refused: {reply}");
        }
        // Deny: nothing, not even a malformed request's 400.
        let api = Api::new(&scheduler, true).await;
        for (method, path) in ROUTES {
            let path = path.replace("{name}", "report").replace("{id}", &dead.to_string());
            let (status, reply) = if *method == "get" {
                api.get_as(&path, Some("deny")).await
            } else {
                api.post_as(&path, json!({}), Some("deny")).await
            };
            assert_eq!(status, 403, "{method} {path}: {reply}");
        }
        assert_eq!(api.get_as("/executions/bad", Some("deny")).await.0, 403);
        // Read: GETs, no POST.
        assert_eq!(api.get_as("/runners", None).await.0, 200);
        assert_eq!(api.post_as(&format!("/dead/{dead}/replay"), json!({}), None).await.0, 403);
        assert_eq!(api.post_as("/jobs/report/pause", json!({}), None).await.0, 403);
        assert!(scheduler.pauses(None).await.unwrap().is_empty());
        assert_eq!(scheduler.dead_executions(&ExecutionFilter::default()).await.unwrap().len(), 1);
        // Act: POSTs too.
        assert_eq!(api.post_as(&format!("/dead/{dead}/replay"), json!({}), Some("act")).await.0, 200);
        assert_eq!(api.post_as("/jobs/report/pause", json!({}), Some("act")).await.0, 200);
        assert_eq!(scheduler.pauses(None).await.unwrap().len(), 1);
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn the_openapi_document_lists_every_route_web_api(db: TestDb) {
        let scheduler = started(&db).await;
        let api = Api::new(&scheduler, false).await;
        let (status, doc) = api.get("/openapi.json").await;
        assert_eq!(status, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "/cronlease/api");
        let mut listed: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        listed.sort();
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        routes.sort();
        assert_eq!(listed, routes);
        // Every listed route is registered: none answers the API's 404 for an unknown endpoint.
        let unknown = uuid::Uuid::now_v7();
        for (method, path) in ROUTES {
            let path = path.replace("{name}", "report").replace("{id}", &unknown.to_string());
            let (status, reply) = if *method == "get" { api.get(&path).await } else { api.post_as(&path, json!({}), None).await };
            assert!(!reply["error"].as_str().unwrap_or("").starts_with("no such endpoint"), "{method} {path}: {status} {reply}");
        }
        let pause = &doc["paths"]["/jobs/{name}/pause"]["post"];
        assert!(pause["requestBody"]["content"]["application/json"]["schema"]["properties"]["reason"].is_object());
        assert!(pause["responses"]["415"].is_object() && pause["responses"]["403"].is_object());
        let list = &doc["paths"]["/executions"]["get"]["parameters"];
        assert!(list.as_array().unwrap().iter().any(|p| p["name"] == "after"));
        scheduler.shutdown().await;
    }
}

/// Percent-encodes the `+` and `:` of an RFC 3339 time for a query string.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
