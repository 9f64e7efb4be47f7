//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! against a test server on 127.0.0.1 serving a running scheduler with real data (auto ticks,
//! real timers, a dead letter, a hostile scope id). It loads each page, checks what it shows,
//! replays a dead letter and pauses a job by clicking, and saves a screenshot of each page under
//! the target directory (`target/tmp/web-screenshots/`).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `CRONLEASE_CHROMEDRIVER` names another driver). Without them the test says so and passes,
//! except under `CI=true`, where a missing browser fails it (`.ci/run` installs them).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpServer};
use cronlease::prelude::*;
use cronlease::web::Access;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";

/// The chromedriver to use, or `None` (with the reason printed) when there is none.
fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("CRONLEASE_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{} not found: install chromium and chromium-driver to run the real-browser test",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping the real-browser test: {message}");
    None
}

/// A chromedriver child process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_driver(path: PathBuf) -> Driver {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    common::eventually(30, "chromedriver to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    let chromium =
        std::env::var("CRONLEASE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot of {name}");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("save screenshot");
}

/// The page's visible text.
/// Asserts the page holds no `<script>` element: what a hostile value would become if it were
/// rendered as markup.
async fn assert_no_script(client: &Client, why: &str) {
    let scripts = client
        .find_all(Locator::Css("script"))
        .await
        .expect("scripts");
    assert!(scripts.is_empty(), "{why}");
}

async fn text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("body text")
}

/// The test's jobs: `report` succeeds every second for three tenants (one with a hostile id),
/// `export` fails permanently on a plan's first attempt, so its plans land in the dead letters,
/// and `nightly` plans at 03:00 in Berlin (its times are shown in that zone).
fn jobs() -> Vec<JobSpec> {
    let tenants = Scopes::list([
        Scope::new("tenant", "acme"),
        Scope::new("tenant", "globex"),
        Scope::new("tenant", HOSTILE),
    ]);
    vec![
        JobSpec::builder("report")
            .every("1s")
            .scopes(tenants)
            .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
            .build()
            .expect("report"),
        JobSpec::builder("export")
            .every("1h")
            .handler(|ctx: JobContext| async move {
                if ctx.attempt() == 1 {
                    return Err(JobError::permanent(format!(
                        "the target rejected {HOSTILE}"
                    )));
                }
                Ok(JobOutput::rows(1))
            })
            .build()
            .expect("export"),
        JobSpec::builder("nightly")
            .cron("0 3 * * *")
            .time_zone("Europe/Berlin")
            .handler(|_ctx: JobContext| async { Ok(JobOutput::rows(1)) })
            .build()
            .expect("nightly"),
    ]
}

#[actix::test]
async fn the_dashboard_works_in_a_real_browser_sqlite() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let db = common::sqlite().await;
    let scheduler = jobs()
        .into_iter()
        .fold(
            Scheduler::builder_shared(db.store.clone()).tick_interval(Duration::from_millis(200)),
            |builder, job| builder.job(job),
        )
        .start()
        .await
        .expect("start the scheduler");
    let dead = common::eventually(30, "a dead letter of export", || {
        let scheduler = scheduler.clone();
        async move {
            let dead = scheduler
                .dead_executions(&ExecutionFilter::default())
                .await
                .ok()?;
            dead.into_iter().next()
        }
    })
    .await;
    common::eventually(30, "every report tenant to succeed once", || {
        let scheduler = scheduler.clone();
        async move {
            let rows = scheduler
                .executions(&ExecutionFilter {
                    job: Some("report".into()),
                    status: Some(Status::Success),
                    ..Default::default()
                })
                .await
                .ok()?;
            let ids: std::collections::BTreeSet<_> =
                rows.iter().map(|r| r.scope.id.clone()).collect();
            (ids.len() == 3).then_some(())
        }
    })
    .await;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/cronlease", listener.local_addr().expect("addr"));
    let served = scheduler.clone();
    let server = HttpServer::new(move || {
        App::new()
            .service(cronlease::web::scope("/cronlease", served.clone()).authorize(|_| Access::Act))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    let server_handle = server.handle();
    actix_rt::spawn(server);

    let driver = start_driver(driver_path).await;
    let client = browser(&driver).await;

    // Overview: every job, the hostile scope nowhere executed as markup.
    client.goto(&format!("{base}/")).await.expect("overview");
    let jobs_table = client
        .find(Locator::Css("table#jobs"))
        .await
        .expect("jobs table");
    let jobs_text = jobs_table.text().await.expect("jobs text");
    for job in ["report", "export", "nightly"] {
        assert!(
            jobs_text.contains(job),
            "the overview lists {job}: {jobs_text}"
        );
    }
    let nightly = client
        .find(Locator::Css("table#jobs tr[data-job=nightly]"))
        .await
        .expect("nightly's row")
        .text()
        .await
        .expect("nightly's text");
    assert!(
        nightly.contains("Europe/Berlin") && nightly.contains("03:00:00"),
        "nightly's next plan is shown in its own time zone: {nightly}"
    );
    screenshot(&client, "overview").await;

    // Job page: its scopes with their last run, the hostile id shown as text.
    client
        .goto(&format!("{base}/jobs/report"))
        .await
        .expect("job page");
    let page = text(&client).await;
    for tenant in ["acme", "globex", HOSTILE] {
        assert!(
            page.contains(tenant),
            "the job page lists tenant {tenant}: {page}"
        );
    }
    assert_no_script(&client, "a hostile scope id stays text, never markup").await;
    screenshot(&client, "job").await;

    // Executions with a filter.
    client
        .goto(&format!("{base}/executions?job=report&status=SUCCESS"))
        .await
        .expect("executions");
    let rows = client
        .find_all(Locator::Css("table#executions tbody tr"))
        .await
        .expect("execution rows");
    assert!(
        !rows.is_empty(),
        "the executions page lists report's successes"
    );
    screenshot(&client, "executions").await;

    // One execution with its failure history.
    client
        .goto(&format!("{base}/executions/{}", dead.id))
        .await
        .expect("execution page");
    let page = text(&client).await;
    assert!(
        page.contains(&format!("the target rejected {HOSTILE}")),
        "{page}"
    );
    assert_no_script(&client, "a hostile error message stays text, never markup").await;
    screenshot(&client, "execution").await;

    // Dead letters: replay the export plan by clicking its button.
    client
        .goto(&format!("{base}/dead"))
        .await
        .expect("dead letters");
    screenshot(&client, "dead").await;
    client
        .find(Locator::Css("button[data-action=replay]"))
        .await
        .expect("a replay button")
        .click()
        .await
        .expect("click replay");
    common::eventually(30, "the replayed plan to leave the dead letters", || {
        let scheduler = scheduler.clone();
        async move {
            let row = scheduler.execution(dead.id).await.ok()??;
            (row.status != Status::Dead).then_some(())
        }
    })
    .await;

    // Pause the report job by clicking.
    client
        .goto(&format!("{base}/jobs/report"))
        .await
        .expect("job page");
    client
        .find(Locator::Css("form#pause-job button[type=submit]"))
        .await
        .expect("the pause button")
        .click()
        .await
        .expect("click pause");
    // The click returns once the form is submitted, not always once its answer has loaded.
    common::eventually(30, "clicking pause to pause the job", || {
        let scheduler = scheduler.clone();
        async move {
            let pauses = scheduler.pauses(Some("report")).await.ok()?;
            (!pauses.is_empty()).then_some(())
        }
    })
    .await;
    common::eventually(30, "the page to show the pause", || async {
        text(&client)
            .await
            .to_lowercase()
            .contains("paused")
            .then_some(())
    })
    .await;
    screenshot(&client, "job-paused").await;

    // A phone-sized window.
    client.set_window_size(390, 844).await.expect("phone size");
    client.goto(&format!("{base}/")).await.expect("overview");
    screenshot(&client, "overview-phone").await;

    client.close().await.expect("close the browser");
    server_handle.stop(true).await;
    scheduler.shutdown().await;
}
