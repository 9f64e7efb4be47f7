//! The HTML dashboard of `cronlease::web`, over actix-web's test service on every backend: every
//! page against a scheduler with real rows, every action through its form, the CSRF and
//! authorization rules, escaping of hostile strings, and the 404 and 400 pages.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, test};
use common::scheduler;
use cronlease::store::ExecutionFilter;
use cronlease::web::Access;
use cronlease::{
    BackfillStatus, JobContext, JobError, JobOutput, JobSpec, Scheduler, Scope, Status,
};

/// The hostile scope id: it must show as text, never as markup.
const HOSTILE_SCOPE: &str = "<script>alert(1)</script>";

/// The hostile error message of the `export` job.
const HOSTILE_ERROR: &str = "<b>rejected</b> & <img src=x onerror=alert(2)>";

type Reply = (u16, HeaderMap, String);
type Call = Box<dyn Fn(test::TestRequest) -> Pin<Box<dyn Future<Output = Reply>>>>;

/// The dashboard mounted at `/cronlease`; the `x-access` header decides (`act`, `deny`, else
/// read) when mounted with a hook.
struct Pages {
    call: Call,
}

impl Pages {
    async fn new(scheduler: &Scheduler, authorize: bool) -> Pages {
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
                let body = String::from_utf8(body.to_vec()).expect("utf-8 body");
                (status, headers, body)
            })
        });
        Pages { call }
    }

    /// A GET as `access`; every page is HTML with the security headers.
    async fn get_as(&self, path: &str, access: &str) -> Reply {
        let req = test::TestRequest::get()
            .uri(&format!("/cronlease{path}"))
            .insert_header(("x-access", access));
        let reply = (self.call)(req).await;
        let content_type = reply
            .1
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("text/html; charset=utf-8"), "{path}");
        assert!(reply.1.contains_key("content-security-policy"), "{path}");
        assert!(
            reply.2.starts_with("<!DOCTYPE html>"),
            "{path}: {}",
            reply.2
        );
        reply
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.get_as(path, "act").await;
        (status, body)
    }

    /// The CSRF token of a page load: the cookie set on the first visit, which every form of
    /// the page repeats in its hidden field.
    async fn token(&self, path: &str) -> String {
        let (status, headers, body) = self.get_as(path, "act").await;
        assert_eq!(status, 200, "{body}");
        let cookie = headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a CSRF cookie on the first visit");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(cookie.contains("Path=/cronlease"), "{cookie}");
        let token = cookie
            .strip_prefix("cronlease_csrf=")
            .and_then(|rest| rest.split(';').next())
            .expect("the cookie's value")
            .to_owned();
        let _ = body;
        token
    }

    /// A form POST as `access`, with `cookie` as the CSRF cookie and `form` as the body.
    async fn post_as(&self, path: &str, access: &str, cookie: Option<&str>, form: &str) -> Reply {
        let mut req = test::TestRequest::post()
            .uri(&format!("/cronlease{path}"))
            .insert_header(("x-access", access))
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(form.to_owned());
        if let Some(cookie) = cookie {
            req = req.insert_header((header::COOKIE, format!("cronlease_csrf={cookie}")));
        }
        (self.call)(req).await
    }

    /// A form POST allowed to act with a valid token: returns where the 303 goes.
    async fn submit(&self, token: &str, path: &str, fields: &str) -> String {
        let form = format!("csrf={token}&{fields}");
        let (status, headers, body) = self.post_as(path, "act", Some(token), &form).await;
        assert_eq!(status, 303, "{path}: {body}");
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a Location");
        assert!(location.starts_with("/cronlease/"), "{location}");
        assert!(location.contains("notice="), "{location}");
        location.strip_prefix("/cronlease").unwrap().to_owned()
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `report` succeeds for three scopes (one of them hostile) every minute; `export` fails
/// permanently with a hostile message for three tenants, so each lands in the dead letters;
/// `nightly` is a cron job read in Paris time.
fn jobs() -> Vec<JobSpec> {
    let mut report_scopes = common::tenants(2);
    report_scopes.push(Scope::new("tenant", HOSTILE_SCOPE));
    let report = JobSpec::builder("report")
        .every("1m")
        .scopes(report_scopes)
        .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
        .build()
        .unwrap();
    let export = JobSpec::builder("export")
        .every("1m")
        .scopes(common::tenants(3))
        .handler(|ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                return Err(JobError::permanent(HOSTILE_ERROR));
            }
            Ok(JobOutput::rows(1))
        })
        .build()
        .unwrap();
    let nightly = JobSpec::builder("nightly")
        .cron("0 3 * * *")
        .time_zone("Europe/Paris")
        .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
        .build()
        .unwrap();
    vec![report, export, nightly]
}

/// A scheduler after one tick: three SUCCESS rows of `report`, three DEAD rows of `export`,
/// one row of `nightly`.
async fn started(db: &common::TestDb) -> Scheduler {
    let scheduler = jobs()
        .into_iter()
        .fold(
            scheduler(db.store.clone()).runner_id("pages-runner"),
            |b, job| b.job(job),
        )
        .start()
        .await
        .unwrap();
    scheduler.tick_now().await.unwrap();
    assert!(scheduler.wait_idle(Duration::from_secs(10)).await);
    scheduler
}

async fn dead(scheduler: &Scheduler) -> Vec<cronlease::Execution> {
    scheduler
        .dead_executions(&ExecutionFilter::default())
        .await
        .unwrap()
}

/// Where the first `<form>` (or `<button formaction>`) tag of `body` holding `marker` sends its
/// data, under the mount path: the tests submit what the page offers, not a path of their own.
fn target(body: &str, marker: &str) -> String {
    let tags = regex::Regex::new(r"<(form|button) [^>]*>").unwrap();
    let action = regex::Regex::new(r#" (?:form)?action="/cronlease([^"]+)""#).unwrap();
    let tag = tags
        .find_iter(body)
        .map(|m| m.as_str())
        .find(|tag| tag.contains(marker) && action.is_match(tag))
        .unwrap_or_else(|| panic!("no form or button with {marker}: {body}"));
    action.captures(tag).unwrap()[1].replace("&amp;", "&")
}

/// The `href` of the first link of `body` holding `marker`, under the mount path.
fn target_link(body: &str, marker: &str) -> String {
    let tags = regex::Regex::new(r"<a [^>]*>").unwrap();
    let href = regex::Regex::new(r#" href="/cronlease([^"]+)""#).unwrap();
    let tag = tags
        .find_iter(body)
        .map(|m| m.as_str())
        .find(|tag| tag.contains(marker))
        .unwrap_or_else(|| panic!("no link with {marker}: {body}"));
    href.captures(tag).unwrap()[1].replace("&amp;", "&")
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

on_every_backend! {
    async fn every_page_renders_its_rows_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;

        let (status, overview) = pages.get("/").await;
        assert_eq!(status, 200, "{overview}");
        assert!(overview.contains(r#"<table id="jobs">"#));
        assert!(overview.contains(r#"data-job="report" data-health="healthy""#), "{overview}");
        assert!(overview.contains(r#"data-job="export" data-health="failing""#), "{overview}");
        assert!(overview.contains(r#"data-failures="3""#), "{overview}");
        assert!(overview.contains(r#"<table id="stale">"#) && overview.contains(r#"id="no-stale""#));
        assert!(overview.contains(r#"data-runner="pages-runner""#), "{overview}");
        assert!(overview.contains(r#"name="viewport""#));
        assert_eq!(pages.get("").await.0, 200, "the mount path without a slash is the overview too");
        // The cron job's next plan is shown in Paris time, with UTC in the title.
        let paris = regex::Regex::new(r#"title="\d{4}-\d\d-\d\dT0[12]:00:00Z">\d{4}-\d\d-\d\d 03:00:00 CET<"#).unwrap();
        assert!(paris.is_match(&overview), "{overview}");

        let (status, report) = pages.get("/jobs/report").await;
        assert_eq!(status, 200, "{report}");
        assert!(report.contains(r#"<table id="scopes">"#));
        for id in ["0", "1"] {
            assert!(report.contains(&format!(r#"data-scope-kind="tenant" data-scope-id="{id}" data-status="SUCCESS""#)), "{report}");
        }
        assert_eq!(count(&report, "<li><time"), 5, "five next plans: {report}");
        for form in [r#"id="pause-job""#, r#"id="trigger-job""#, r#"id="backfill""#, r#"data-action="pause-scope""#] {
            assert!(report.contains(form), "{form} on the job page of an operator");
        }

        let (status, all) = pages.get("/executions").await;
        assert_eq!(status, 200);
        assert!(all.contains(r#"<table id="executions">"#));
        assert_eq!(count(&all, "<tr data-execution="), 7, "{all}");
        let (_, dead_only) = pages.get("/executions?job=export&status=dead").await;
        assert_eq!(count(&dead_only, r#"data-status="DEAD" data-job="export""#), 3, "{dead_only}");
        let (_, one_scope) = pages.get("/executions?scope_kind=tenant&scope_id=1").await;
        assert_eq!(count(&one_scope, "<tr data-execution="), 2, "report and export of tenant/1");
        // The keyset cursor of the newest row leads to the rows after it.
        let rows = scheduler.executions(&ExecutionFilter::default()).await.unwrap();
        let cursor = cronlease::store::ExecutionCursor::of(&rows[0]);
        let (status, after) = pages.get(&format!("/executions?after={cursor}")).await;
        assert_eq!(status, 200);
        assert_eq!(count(&after, "<tr data-execution="), 6);
        assert!(!after.contains(&format!(r#"data-execution="{}""#, rows[0].id)));

        let dead_rows = dead(&scheduler).await;
        let (status, one) = pages.get(&format!("/executions/{}", dead_rows[0].id)).await;
        assert_eq!(status, 200, "{one}");
        assert!(one.contains(r#"<table id="failures">"#));
        assert!(one.contains(r#"<tr data-attempt="1" data-code="permanent">"#), "{one}");
        assert!(one.contains(r#"id="replay-execution""#));
        let history = target_link(&one, r#"id="scope-history""#);
        let (status, scope_rows) = pages.get(&history).await;
        assert_eq!(status, 200, "{history}");
        assert_eq!(count(&scope_rows, "<tr data-execution="), 1, "the one run of that scope: {scope_rows}");

        let (status, dead_page) = pages.get("/dead").await;
        assert_eq!(status, 200);
        assert!(dead_page.contains(r#"<table id="dead">"#));
        assert_eq!(count(&dead_page, r#"data-action="replay" data-execution="#), 3);
        assert!(dead_page.contains(r#"id="replay-selected""#) && dead_page.contains(r#"id="replay-matching""#));
        let (_, none) = pages.get("/dead?job=report").await;
        assert!(none.contains(r#"id="empty""#));
        scheduler.shutdown().await;
    }
}

/// The `href` of the page's `a#next-page`, under the mount path, unescaped.
fn next_page(body: &str) -> Option<String> {
    let link = regex::Regex::new(r#"<a id="next-page" href="/cronlease([^"]+)""#).unwrap();
    link.captures(body).map(|c| c[1].replace("&amp;", "&"))
}

on_every_backend! {
    async fn keyset_pages_walk_every_row_and_every_scope_once_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;
        let rows = scheduler.executions(&ExecutionFilter::default()).await.unwrap();
        let row_id = regex::Regex::new(r#"<tr data-execution="([0-9a-f-]+)""#).unwrap();
        let mut walked = Vec::new();
        let mut path = Some("/executions?limit=2".to_owned());
        while let Some(current) = path {
            let (status, body) = pages.get(&current).await;
            assert_eq!(status, 200, "{current}: {body}");
            let ids: Vec<String> = row_id.captures_iter(&body).map(|c| c[1].to_owned()).collect();
            assert!(ids.len() <= 2, "{current}");
            walked.extend(ids);
            path = next_page(&body);
            assert!(walked.len() <= rows.len(), "the walk ends");
        }
        let expected: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(walked, expected, "newest plan first, each row once");

        // The job page's scopes, one scope a page, by the set-based latest-per-scope read.
        let scope_row = regex::Regex::new(r#"data-scope-kind="tenant" data-scope-id="([^"]+)""#).unwrap();
        let mut scopes = Vec::new();
        let mut path = Some("/jobs/report?limit=1".to_owned());
        while let Some(current) = path {
            let (status, body) = pages.get(&current).await;
            assert_eq!(status, 200, "{current}: {body}");
            scopes.extend(scope_row.captures_iter(&body).map(|c| c[1].to_owned()));
            path = next_page(&body);
            assert!(scopes.len() <= 4, "the walk ends");
        }
        scopes.sort();
        assert_eq!(scopes, ["&lt;script&gt;alert(1)&lt;/script&gt;", "0", "1"]);
        let (status, body) = pages.get("/executions?limit=0").await;
        assert_eq!(status, 400);
        assert!(body.contains("`limit`"), "{body}");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn the_overview_lists_stale_leases_as_the_retention_gauge_counts_them_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        // A lease of `report` whose owner never renews it: RUNNING, stale a minute after its claim.
        let now = db.store.db_now().await.unwrap();
        let plan = cronlease::store::PlanClaim::new(Scope::new("tenant", "9"), now - chrono::TimeDelta::hours(2));
        let request = cronlease::store::ClaimRequest {
            job: "report",
            max_attempts: 3,
            runner_id: "vanished-runner",
            stale_timeout: Duration::from_secs(60),
            allow_stale_reentry: true,
            steal_not_after: None,
            plans: vec![plan],
        };
        assert_eq!(db.store.execution_claim(&request).await.unwrap().len(), 1);
        let (_, fresh) = Pages::new(&scheduler, true).await.get("/").await;
        assert!(fresh.contains(r#"id="no-stale""#), "the lease is still live: {fresh}");

        // An hour later by the database clock the lease is stale.
        let later = scheduler_on(db.skewed(chrono::TimeDelta::hours(1))).await;
        let (status, overview) = Pages::new(&later, true).await.get("/").await;
        assert_eq!(status, 200, "{overview}");
        assert!(overview.contains(r#"<tr data-job="report"><td><a href="/cronlease/executions?job=report&amp;status=RUNNING">report</a></td><td data-stale="1">"#), "{overview}");
        assert!(!overview.contains(r#"id="no-stale""#));
        later.shutdown().await;
        scheduler.shutdown().await;
    }
}

/// A scheduler without jobs on `store`: a dashboard for a database other runners work on.
async fn scheduler_on(store: std::sync::Arc<dyn cronlease::Store>) -> Scheduler {
    scheduler(store)
        .runner_id("dashboard-runner")
        .start()
        .await
        .unwrap()
}

on_every_backend! {
    async fn hostile_scope_ids_and_error_messages_render_as_text_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;
        let dead_rows = dead(&scheduler).await;
        let escaped_scope = "&lt;script&gt;alert(1)&lt;/script&gt;";
        let escaped_error = "&lt;b&gt;rejected&lt;/b&gt; &amp; &lt;img src=x onerror=alert(2)&gt;";
        let hostile_row = scheduler
            .executions(&ExecutionFilter { scope: Some(Scope::new("tenant", HOSTILE_SCOPE)), ..ExecutionFilter::default() })
            .await
            .unwrap()
            .pop()
            .expect("the hostile scope ran");
        let scope_query = format!("/executions?scope_kind=tenant&scope_id={}", urlencode(HOSTILE_SCOPE));
        let row_page = format!("/executions/{}", hostile_row.id);
        let dead_page = format!("/executions/{}", dead_rows[0].id);
        for path in ["/jobs/report", "/executions", scope_query.as_str(), row_page.as_str()] {
            let (status, body) = pages.get(path).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert!(body.contains(escaped_scope), "{path}: {body}");
            assert!(!body.contains(HOSTILE_SCOPE), "{path} carries the scope id as markup");
            assert!(!body.contains("<script"), "{path}");
        }
        for path in ["/dead", dead_page.as_str()] {
            let (_, body) = pages.get(path).await;
            assert!(body.contains(escaped_error), "{path}: {body}");
            assert!(!body.contains("<b>rejected") && !body.contains("<img"), "{path}");
        }
        // A notice in the query string is shown as text too.
        let (_, noticed) = pages.get(&format!("/?notice={}", urlencode("<script>x</script>"))).await;
        assert!(noticed.contains(r#"id="notice""#) && noticed.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!noticed.contains("<script"));
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn every_action_works_through_its_form_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;
        let token = pages.token("/jobs/report").await;
        let (_, headers, page) = (pages.call)(
            test::TestRequest::get()
                .uri("/cronlease/jobs/report")
                .insert_header(("x-access", "act"))
                .insert_header((header::COOKIE, format!("cronlease_csrf={token}"))),
        )
        .await;
        assert!(headers.get(header::SET_COOKIE).is_none(), "a valid cookie is kept, not replaced");
        assert!(page.contains(&format!(r#"name="csrf" value="{token}""#)), "forms repeat the cookie's token");

        // Pause and resume the job.
        let pause_job = target(&page, r#"id="pause-job""#);
        assert_eq!(pause_job, "/jobs/report/pause");
        let back = pages.submit(&token, &pause_job, "reason=migration+window").await;
        assert!(back.starts_with("/jobs/report?notice="), "{back}");
        let pauses = scheduler.pauses(Some("report")).await.unwrap();
        assert_eq!((pauses.len(), pauses[0].scope.clone(), pauses[0].reason.as_str()), (1, None, "migration window"));
        let (_, paused) = pages.get(&back).await;
        assert!(paused.contains(r#"id="notice""#) && paused.contains("Paused job report."), "{paused}");
        assert!(paused.contains(r#"id="resume-job""#) && !paused.contains(r#"id="pause-job""#));
        pages.submit(&token, &target(&paused, r#"id="resume-job""#), "").await;
        assert!(scheduler.pauses(Some("report")).await.unwrap().is_empty());

        // Pause and resume one scope, the hostile one.
        let hostile = format!("scope_kind=tenant&scope_id={}", urlencode(HOSTILE_SCOPE));
        let (_, page) = pages.get("/jobs/report").await;
        pages.submit(&token, &target(&page, r#"data-action="pause-scope""#), &hostile).await;
        let pauses = scheduler.pauses(Some("report")).await.unwrap();
        assert_eq!(pauses[0].scope, Some(Scope::new("tenant", HOSTILE_SCOPE)));
        let (_, page) = pages.get("/jobs/report").await;
        assert!(page.contains(r#"data-action="resume-scope""#), "{page}");
        pages.submit(&token, &target(&page, r#"data-action="resume-scope""#), &hostile).await;
        assert!(scheduler.pauses(Some("report")).await.unwrap().is_empty());

        // Trigger one scope, sending the same form twice (its idempotency key is the same).
        let (_, page) = pages.get("/jobs/report").await;
        let key = regex::Regex::new(r#"data-action="trigger-scope"><input type="hidden" name="csrf" value="[0-9a-f]+"><input type="hidden" name="key" value="([0-9a-f-]+)""#)
            .unwrap()
            .captures(&page)
            .map(|c| c[1].to_owned())
            .expect("a trigger form with its key");
        for _ in 0..2 {
            pages.submit(&token, &target(&page, r#"data-action="trigger-scope""#), &format!("key={key}&scope_kind=tenant&scope_id=1")).await;
        }
        let triggers = scheduler.triggers(Some("report")).await.unwrap();
        assert_eq!(triggers.len(), 1);
        assert_eq!(triggers[0].scope, Some(Scope::new("tenant", "1")));
        assert_eq!(triggers[0].requested_by, "dashboard");

        // Start a backfill over the last hour (UTC times), then cancel it.
        let now = db.store.db_now().await.unwrap();
        let from = (now - chrono::TimeDelta::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to = (now - chrono::TimeDelta::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        pages.submit(&token, &target(&page, r#"id="backfill""#), &format!("from={}&to={}&rerun=yes", urlencode(&from), urlencode(&to))).await;
        let backfills = scheduler.backfills(Some("report")).await.unwrap();
        assert_eq!(backfills.len(), 1);
        assert!(backfills[0].rerun);
        assert_eq!(backfills[0].status, BackfillStatus::Active);
        let (_, page) = pages.get("/jobs/report").await;
        assert!(page.contains(&format!(r#"data-backfill="{}" data-status="ACTIVE""#, backfills[0].id)), "{page}");
        assert!(page.contains(r#"data-action="cancel-backfill""#));
        let cancel = target(&page, r#"data-action="cancel-backfill""#);
        assert_eq!(cancel, format!("/backfills/{}/cancel", backfills[0].id));
        let back = pages.submit(&token, &cancel, "job=report").await;
        assert!(back.starts_with("/jobs/report?"), "{back}");
        let cancelled = scheduler.backfill_status(backfills[0].id).await.unwrap().unwrap();
        assert_eq!(cancelled.status, BackfillStatus::Cancelled);

        // Replay one dead row, then the selected one, then all that match.
        let dead_rows = dead(&scheduler).await;
        assert_eq!(dead_rows.len(), 3);
        let (_, page) = pages.get("/dead?job=export").await;
        let replay_one = target(&page, &format!(r#"data-execution="{}""#, dead_rows[0].id));
        let back = pages.submit(&token, &replay_one, "back=job%3Dexport").await;
        assert_eq!(back.split('&').next().unwrap(), "/dead?job=export", "{back}");
        let status_of = |id| {
            let scheduler = scheduler.clone();
            async move { scheduler.execution(id).await.unwrap().unwrap().status }
        };
        assert_eq!(status_of(dead_rows[0].id).await, Status::Failed);
        let (_, page) = pages.get("/dead").await;
        let selected = target(&page, r#"id="replay-selected""#);
        let back = pages.submit(&token, &selected, &format!("back=&id={}", dead_rows[1].id)).await;
        assert!(back.starts_with("/dead?notice="), "an unfiltered listing goes back to itself: {back}");
        assert_eq!(status_of(dead_rows[1].id).await, Status::Failed);
        assert_eq!(status_of(dead_rows[2].id).await, Status::Dead, "only the selected row");
        let (status, _, body) = pages.post_as("/dead/replay-matching", "act", Some(&token), &format!("csrf={token}&job=export&confirm=")).await;
        assert_eq!(status, 400, "replaying every match needs the confirmation");
        assert!(body.contains("`confirm`"), "{body}");
        let (_, page) = pages.get("/dead?job=export").await;
        let matching = target(&page, r#"id="replay-matching""#);
        assert!(page.contains(r#"<input type="hidden" name="job" value="export">"#), "the form carries the filter");
        let back = pages.submit(&token, &matching, "job=export&confirm=replay").await;
        assert!(back.starts_with("/dead?job=export&notice="), "{back}");
        assert_eq!(status_of(dead_rows[2].id).await, Status::Failed);
        assert!(dead(&scheduler).await.is_empty());
        let (_, page) = pages.get(&back).await;
        assert!(page.contains("Replayed 1 dead executions matching the filter."), "{page}");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn a_post_without_the_matching_csrf_token_is_forbidden_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;
        let token = pages.token("/jobs/report").await;
        let other = "0".repeat(64);
        for (cookie, form, why) in [
            (None, format!("csrf={token}"), "no cookie"),
            (Some(token.as_str()), String::new(), "no field"),
            (Some(token.as_str()), format!("csrf={other}"), "a different field"),
            (Some(other.as_str()), format!("csrf={token}"), "a different cookie"),
        ] {
            let (status, _, body) = pages.post_as("/jobs/report/pause", "act", cookie, &form).await;
            assert_eq!(status, 403, "{why}: {body}");
            assert!(body.contains(r#"id="problem""#), "a readable page: {body}");
        }
        // The right token from another site's page is refused; from this site it passes.
        let foreign = test::TestRequest::post()
            .uri("/cronlease/jobs/report/pause")
            .insert_header(("x-access", "act"))
            .insert_header((header::HOST, "ops.example"))
            .insert_header((header::ORIGIN, "https://evil.example"))
            .insert_header((header::COOKIE, format!("cronlease_csrf={token}")))
            .set_payload(format!("csrf={token}"));
        let (status, _, body) = (pages.call)(foreign).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("another site"), "{body}");
        assert!(scheduler.pauses(None).await.unwrap().is_empty(), "nothing was paused");
        let own = test::TestRequest::post()
            .uri("/cronlease/jobs/report/pause")
            .insert_header(("x-access", "act"))
            .insert_header((header::HOST, "ops.example"))
            .insert_header((header::ORIGIN, "https://ops.example"))
            .insert_header((header::COOKIE, format!("cronlease_csrf={token}")))
            .set_payload(format!("csrf={token}"));
        assert_eq!((pages.call)(own).await.0, 303);
        assert_eq!(scheduler.pauses(None).await.unwrap().len(), 1);
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn read_access_shows_no_forms_and_deny_shows_nothing_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let dead_id = dead(&scheduler).await[0].id;
        // Without a hook every request reads and none acts.
        let pages = Pages::new(&scheduler, false).await;
        let execution = format!("/executions/{dead_id}");
        for path in ["/", "/jobs/report", "/executions", execution.as_str(), "/dead"] {
            let (status, _, body) = pages.get_as(path, "act").await;
            assert_eq!(status, 200, "{path}");
            assert!(!body.contains(r#"method="post""#), "{path} shows an action form to a reader: {body}");
            assert!(!body.contains("data-action=\"replay\""), "{path}");
        }
        let token = pages.token("/dead").await;
        let (status, _, body) = pages.post_as(&format!("/dead/{dead_id}/replay"), "act", Some(&token), &format!("csrf={token}")).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("read-only"), "{body}");
        assert_eq!(scheduler.execution(dead_id).await.unwrap().unwrap().status, Status::Dead);

        // With the hook: Read sees no forms either, Deny sees nothing.
        let pages = Pages::new(&scheduler, true).await;
        let (_, _, body) = pages.get_as("/jobs/report", "read").await;
        assert!(!body.contains(r#"method="post""#), "{body}");
        for path in ["/", "/jobs/report", "/dead"] {
            let (status, _, body) = pages.get_as(path, "deny").await;
            assert_eq!(status, 403, "{path}");
            assert!(!body.contains("report\""), "{path} shows nothing: {body}");
        }
        let (status, _, _) = pages.post_as("/jobs/report/pause", "deny", Some(&token), &format!("csrf={token}")).await;
        assert_eq!(status, 403);
        let (status, _, _) = pages.post_as("/jobs/report/pause", "read", Some(&token), &format!("csrf={token}")).await;
        assert_eq!(status, 403);
        assert!(scheduler.pauses(None).await.unwrap().is_empty());
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn unknown_rows_are_404_pages_and_malformed_input_400_pages_naming_it_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let pages = Pages::new(&scheduler, true).await;
        let unknown = format!("/executions/{}", uuid::Uuid::now_v7());
        for path in ["/jobs/no-such-job", unknown.as_str(), "/no-such-page"] {
            let (status, body) = pages.get(path).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert!(body.contains(r#"id="problem""#), "{body}");
        }
        for (path, parameter) in [
            ("/executions/not-an-id", "`id`"),
            ("/executions?status=BOGUS", "`status`"),
            ("/executions?from=yesterday", "`from`"),
            ("/dead?before=soon", "`before`"),
            ("/executions?after=zzz", "`after`"),
            ("/executions?scope_kind=tenant", "`scope_id`"),
            ("/jobs/report?after_kind=tenant", "`after_id`"),
        ] {
            let (status, body) = pages.get(path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains(parameter), "{path} names {parameter}: {body}");
        }
        let token = pages.token("/").await;
        let (status, _, body) = pages.post_as("/jobs/no-such-job/pause", "act", Some(&token), &format!("csrf={token}")).await;
        assert_eq!(status, 404, "{body}");
        let (status, _, body) = pages.post_as("/jobs/report/backfill", "act", Some(&token), &format!("csrf={token}&from=2026-01-01T00:00")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("`to`"), "{body}");
        let (status, _, body) = pages.post_as("/dead/replay", "act", Some(&token), &format!("csrf={token}&id=nope")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("`id`"), "{body}");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn mounted_at_the_root_links_and_cookies_start_at_slash_web_pages(db: TestDb) {
        let scheduler = started(&db).await;
        let app = test::init_service(App::new().service(cronlease::web::scope("/", scheduler.clone()))).await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res.status().as_u16(), 200);
        let cookie = res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        assert!(cookie.contains("Path=/"), "{cookie}");
        let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        assert!(body.contains(r#"<a href="/jobs/report">report</a>"#), "{body}");
        assert!(body.contains(r#"<a id="nav-dead" href="/dead">"#), "{body}");
        let res = test::call_service(&app, test::TestRequest::get().uri("/jobs/report").to_request()).await;
        assert_eq!(res.status().as_u16(), 200);
        scheduler.shutdown().await;
    }
}
