//! The `cronlease` binary run as an operator runs it, against databases prepared by a real
//! scheduler run: human tables (snapshots, times and ids masked), JSON documents (their fields),
//! exit codes, and one clear line for every mistake.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use cronlease::{
    JobError, JobOutput, JobSpec, MySqlStore, PgStore, Scheduler, Scope, SqliteStore, Status, Store,
};
use serde_json::Value;

/// The tool's path, built by cargo for this test.
const BIN: &str = env!("CARGO_BIN_EXE_cronlease");

/// The URL the tool is given for the test's database.
fn url_of(db: &TestDb) -> String {
    match db.backend {
        "postgres" => {
            let (url, schema) = db.pg_schema().unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-c%20search_path%3D{schema}")
        }
        "mysql" => {
            let (url, database) = db.mysql_database().unwrap();
            let (server, _) = url.rsplit_once('/').unwrap();
            format!("{server}/{database}")
        }
        _ => db.sqlite_path.as_ref().unwrap().display().to_string(),
    }
}

/// A store on the test's database with the real clock (the `TestDb`'s own is skewed), as the
/// application would open it.
async fn app_store(db: &TestDb) -> Arc<dyn Store> {
    match db.backend {
        "postgres" => Arc::new(
            PgStore::connect_with(db.pg_options.clone().unwrap())
                .await
                .unwrap(),
        ),
        "mysql" => Arc::new(
            MySqlStore::connect_with(db.mysql_options.clone().unwrap())
                .await
                .unwrap(),
        ),
        _ => Arc::new(
            SqliteStore::open(db.sqlite_path.as_ref().unwrap())
                .await
                .unwrap(),
        ),
    }
}

/// The application: `report` (daily, succeeds) and `sync` (yearly at 03:00 Berlin time on
/// January 1st, two tenants; tenant 2's upstream refuses for good, so it is dead-lettered).
/// One tick runs both; the scheduler stays up (live in the registry) until dropped.
async fn prepare(db: &TestDb) -> (Scheduler, Arc<dyn Store>) {
    let store = app_store(db).await;
    let scheduler = Scheduler::builder_shared(store.clone())
        .runner_id("runner-1")
        .auto_tick(false)
        .presence_interval(Duration::from_secs(3600))
        .job(
            JobSpec::builder("report")
                .every("1d")
                .handler(|_ctx| async { Ok(JobOutput::rows(3)) })
                .build()
                .unwrap(),
        )
        .job(
            JobSpec::builder("sync")
                .cron("0 3 1 1 *")
                .time_zone("Europe/Berlin")
                .scopes([Scope::new("tenant", "1"), Scope::new("tenant", "2")])
                .stagger("10m")
                .max_attempts(2)
                .handler(|ctx: cronlease::JobContext| async move {
                    if ctx.scope().id == "2" {
                        Err(JobError::permanent("upstream refused: account closed"))
                    } else {
                        Ok(JobOutput::rows(7))
                    }
                })
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    scheduler.tick_now().await.unwrap();
    assert!(scheduler.wait_idle(Duration::from_secs(20)).await);
    (scheduler, store)
}

/// What a run of the tool gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the tool with `args` and a clean environment (no settings variables).
fn cronlease(url: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command
        .env_remove("CRONLEASE_DATABASE_URL")
        .env_remove("CRONLEASE_CONFIG")
        .env("NO_COLOR", "1");
    if let Some(url) = url {
        command.arg("--database-url").arg(url);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.args(args).output().expect("run cronlease");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The output with what changes from run to run masked: times, ids, cursors, durations,
/// runner hosts and pids; runs of spaces become two (masking changes column widths).
fn masked(text: &str) -> String {
    let rules = [
        (r"\d{13}_[0-9a-f-]{36}", "<cursor>"),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<id>",
        ),
        (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z]{3,4}", "<time>"),
        (r"\d+ ms", "<n> ms"),
        (r" {2,}", "  "),
    ];
    let mut text = text.to_owned();
    for (pattern, with) in rules {
        text = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Compares with `tests/snapshots/cli/<name>.txt`; `UPDATE_SNAPSHOTS=1` writes it instead.
fn assert_snapshot(name: &str, output: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/cli")
        .join(format!("{name}.txt"));
    let actual = masked(output);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to write it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "snapshot {name} differs; output:\n{output}"
    );
}

/// The keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(items: &[&'static str]) -> BTreeSet<&'static str> {
    items.iter().copied().collect()
}

/// The documented fields of an execution in JSON.
const EXECUTION_FIELDS: &[&str] = &[
    "id",
    "job_name",
    "scope",
    "scope_text",
    "plan_time",
    "plan_time_local",
    "time_zone",
    "status",
    "attempt",
    "max_attempts",
    "next_retry_at",
    "runner_id",
    "lease_token",
    "claim_outcome",
    "heartbeat_at",
    "stale_after",
    "started_at",
    "finished_at",
    "created_at",
    "updated_at",
    "duration_ms",
    "rows_affected",
    "result",
    "error_code",
    "error_msg",
    "failures",
    "replayed_at",
    "trigger_id",
];

async fn dead_row(store: &dyn Store) -> cronlease::Execution {
    let dead = common::rows(store, "sync")
        .await
        .into_iter()
        .filter(|r| r.status == Status::Dead)
        .collect::<Vec<_>>();
    assert_eq!(dead.len(), 1, "{dead:?}");
    dead.into_iter().next().unwrap()
}

on_every_backend! {
    async fn status_jobs_and_runners_describe_the_database(db: TestDb) {
        let (scheduler, _store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());

        let status = cronlease(url, &["status"]).ok();
        assert!(!status.stdout.contains('\u{1b}'), "no colours when not on a terminal");
        assert_snapshot("status", &status.stdout);
        let json = cronlease(url, &["status", "--json"]).ok().json();
        assert_eq!(keys(&json), set(&["now", "jobs", "counts", "oldest_running", "stale_leases", "dead_letters", "runners", "conflicting_jobs", "failing"]));
        assert_eq!(json["dead_letters"], 1);
        assert_eq!(json["counts"]["SUCCESS"], 2);
        assert_eq!(json["runners"]["live"], 1);
        let sync = &json["jobs"][1];
        assert_eq!(keys(sync), set(&["name", "schedule", "time_zone", "paused", "paused_scopes", "next_plan_time", "next_plan_time_local", "last_success_plan_time", "last_success_finished_at", "counts", "stale_leases", "conflicting"]));
        assert_eq!(sync["name"], "sync");
        assert_eq!(sync["time_zone"], "Europe/Berlin");
        assert!(sync["next_plan_time"].as_str().unwrap().ends_with("-01-01T02:00:00.000Z"), "{sync}");
        assert!(sync["next_plan_time_local"].as_str().unwrap().ends_with("-01-01T03:00:00.000+01:00"), "{sync}");

        // Monitoring: exit 3 and one line naming what holds; 0 when nothing does.
        let unhealthy = cronlease(url, &["status", "--fail-on", "dead,stale"]);
        assert_eq!(unhealthy.code, 3, "{}", unhealthy.stderr);
        assert_eq!(unhealthy.stderr, "unhealthy: 1 dead letter(s)\n");
        cronlease(url, &["status", "--fail-on", "stale,conflict,paused,no-runner"]).ok();

        let jobs = cronlease(url, &["jobs"]).ok();
        assert_snapshot("jobs", &jobs.stdout);
        let json = cronlease(url, &["jobs", "--json"]).ok().json();
        let sync = &json["jobs"][1];
        assert_eq!(keys(sync), set(&["name", "schedule", "time_zone", "stagger_ms", "schedule_delay_ms", "catch_up", "max_attempts", "backoff", "run_timeout_ms", "stale_timeout_ms", "heartbeat_interval_ms", "spec_hash", "conflicting", "variants", "runners"]));
        assert_eq!(sync["schedule"], "cron 0 3 1 1 *");
        assert_eq!(sync["stagger_ms"], 600_000);
        assert_eq!(sync["runners"][0]["id"], "runner-1");

        let runners = cronlease(url, &["runners", "--json"]).ok().json();
        let runner = &runners["runners"][0];
        assert_eq!(keys(runner), set(&["id", "host", "pid", "version", "state", "started_at", "last_seen", "stopped_at", "refresh_interval_ms"]));
        assert_eq!(runner["state"], "live");
        scheduler.shutdown().await;
        let runners = cronlease(url, &["runners"]).ok();
        assert!(runners.stdout.contains("runner-1") && runners.stdout.contains("stopped"), "{}", runners.stdout);
        let no_runner = cronlease(url, &["status", "--fail-on", "no-runner"]);
        assert_eq!((no_runner.code, no_runner.stderr.as_str()), (3, "unhealthy: no live runner\n"));
    }
}

on_every_backend! {
    async fn history_pages_and_show_tell_why_a_job_failed(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let history = cronlease(url, &["history", "--job", "sync"]).ok();
        assert_snapshot("history_sync", &history.stdout);
        // Keyset pages: one row each, the cursor under a full page, no row twice.
        let first = cronlease(url, &["history", "--json", "--limit", "2"]).ok().json();
        assert_eq!(keys(&first), set(&["executions", "next_after"]));
        assert_eq!(keys(&first["executions"][0]), EXECUTION_FIELDS.iter().copied().collect());
        let after = first["next_after"].as_str().unwrap().to_owned();
        let second = cronlease(url, &["history", "--json", "--limit", "2", "--after", &after]).ok().json();
        assert_eq!(second["executions"].as_array().unwrap().len(), 1);
        assert!(second["next_after"].is_null());
        let ids: BTreeSet<String> = first["executions"].as_array().unwrap().iter().chain(second["executions"].as_array().unwrap()).map(|e| e["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), 3);
        // Filters: status, scope, a time range that holds nothing.
        let failed = cronlease(url, &["history", "--json", "--status", "dead"]).ok().json();
        assert_eq!(failed["executions"].as_array().unwrap().len(), 1);
        let tenant = cronlease(url, &["history", "--json", "--scope", "tenant:1"]).ok().json();
        assert_eq!(tenant["executions"][0]["scope_text"], "tenant:1");
        assert_eq!(tenant["executions"][0]["plan_time_local"].as_str().unwrap().get(4..), Some("-01-01T03:00:00.000+01:00"));
        let none = cronlease(url, &["history", "--since", "1h", "--until", "30m"]).ok();
        assert_eq!(none.stdout, "no executions match\n");

        let dead = dead_row(&*store).await;
        let show = cronlease(url, &["show", &dead.id.to_string()]).ok();
        assert_snapshot("show_dead", &show.stdout);
        let json = cronlease(url, &["show", "--json", &dead.id.to_string()]).ok().json();
        assert_eq!(json["failures"][0]["code"], "permanent");
        assert_eq!(json["failures"][0]["message"], "upstream refused: account closed");
        assert_eq!(json["status"], "DEAD");
        let missing = cronlease(url, &["show", "0193a4e2-5b7c-7d0e-8f00-1234567890ab"]);
        assert_eq!((missing.code, missing.stderr.as_str()), (1, "error: no execution with id 0193a4e2-5b7c-7d0e-8f00-1234567890ab\n"));
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn dead_letters_are_listed_and_replayed_by_id_or_by_job(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let dead = dead_row(&*store).await;
        let id = dead.id.to_string();
        let list = cronlease(url, &["dead", "list", "--json"]).ok().json();
        assert_eq!(list["executions"].as_array().unwrap().len(), 1);
        assert_eq!(list["executions"][0]["id"], id.as_str());
        cronlease(url, &["dead", "show", &id]).ok();
        let success = common::rows(&*store, "report").await.remove(0).id.to_string();
        let not_dead = cronlease(url, &["dead", "show", &success]);
        assert_eq!(not_dead.code, 1);
        assert_eq!(not_dead.stderr, format!("error: execution {success} is SUCCESS, not DEAD (see `cronlease show {success}`)\n"));

        // Replaying what is not there names it and replays nothing.
        let unknown = "0193a4e2-5b7c-7d0e-8f00-1234567890ab";
        let refused = cronlease(url, &["dead", "replay", &id, unknown]);
        assert_eq!((refused.code, refused.stderr.as_str()), (1, "error: no execution with id 0193a4e2-5b7c-7d0e-8f00-1234567890ab\n"));
        assert_eq!(store.execution_get(dead.id).await.unwrap().unwrap().status, Status::Dead);
        let refused = cronlease(url, &["dead", "replay", "--job", "nope"]);
        assert_eq!(refused.stderr, "error: no job named `nope` is registered in this database (see `cronlease jobs`)\n");

        let dry = cronlease(url, &["dead", "replay", "--job", "sync", "--since", "800d", "--dry-run"]).ok();
        assert!(dry.stdout.contains("dry run: 1 dead execution(s) would be replayed"), "{}", dry.stdout);
        assert_eq!(store.execution_get(dead.id).await.unwrap().unwrap().status, Status::Dead);
        let nothing = cronlease(url, &["dead", "replay", "--job", "sync", "--scope", "tenant:1"]).ok();
        assert!(nothing.stdout.contains("replayed 0 dead execution(s)"), "{}", nothing.stdout);

        let replayed = cronlease(url, &["dead", "replay", "--json", &id]).ok().json();
        assert_eq!(replayed["replayed"], 1);
        let row = store.execution_get(dead.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.max_attempts), (Status::Failed, row.attempt + 1));
        assert!(row.replayed_at.is_some());
        // The running application picks the replay up: same row, runs again (and fails again).
        scheduler.tick_now().await.unwrap();
        assert!(scheduler.wait_idle(Duration::from_secs(20)).await);
        let row = store.execution_get(dead.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.failures.len()), (Status::Dead, 2));
        let again = cronlease(url, &["dead", "replay", "--job", "sync"]).ok();
        assert!(again.stdout.contains("replayed 1 dead execution(s)"), "{}", again.stdout);
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn a_tenant_is_paused_and_resumed_from_the_shell(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let paused = cronlease(url, &["pause", "sync", "--scope", "tenant:1", "--reason", "tenant migration", "--by", "alice"]).ok();
        assert!(paused.stdout.starts_with("paused tenant:1 of job sync at "), "{}", paused.stdout);
        let pauses = store.pause_list(Some("sync")).await.unwrap();
        assert_eq!(pauses.len(), 1);
        assert_eq!((pauses[0].scope.clone(), pauses[0].paused_by.as_str(), pauses[0].reason.as_str()), (Some(Scope::new("tenant", "1")), "alice", "tenant migration"));
        let status = cronlease(url, &["status", "--json"]).ok().json();
        assert_eq!(status["jobs"][1]["paused_scopes"][0], "tenant:1");
        let unhealthy = cronlease(url, &["status", "--fail-on", "paused"]);
        assert_eq!((unhealthy.code, unhealthy.stderr.as_str()), (3, "unhealthy: 1 pause(s)\n"));

        let whole = cronlease(url, &["pause", "--json", "report"]).ok().json();
        assert_eq!(keys(&whole), set(&["job", "scope", "paused_by", "reason", "paused_at"]));
        assert!(whole["paused_by"].as_str().unwrap().starts_with("cli:"));
        cronlease(url, &["resume", "report"]).ok();
        cronlease(url, &["resume", "sync", "--scope", "tenant:1"]).ok();
        assert!(store.pause_list(None).await.unwrap().is_empty());
        let again = cronlease(url, &["resume", "sync", "--scope", "tenant:1"]);
        assert_eq!((again.code, again.stderr.as_str()), (1, "error: tenant:1 of job sync is not paused (see `cronlease status`)\n"));
        let unknown = cronlease(url, &["pause", "nightly"]);
        assert_eq!((unknown.code, unknown.stderr.as_str()), (1, "error: no job named `nightly` is registered in this database (see `cronlease jobs`)\n"));
        let bad_scope = cronlease(url, &["pause", "sync", "--scope", "tenant"]);
        assert_eq!(bad_scope.code, 2);
        assert_eq!(bad_scope.stderr, "error: scope `tenant` is not KIND:ID: write e.g. --scope tenant:42 (or `global`)\n");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn why_and_preview_answer_from_the_registered_schedule(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        // The application stops: the tool answers from the registry alone.
        scheduler.shutdown().await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let dead = dead_row(&*store).await;
        let at = dead.plan_time.to_rfc3339();
        let ran = cronlease(url, &["why", "sync", "--scope", "tenant:2", "--at", &at]).ok();
        assert!(ran.stdout.contains(&format!("it has its execution row {}: DEAD (attempt 1/2)", dead.id)), "{}", ran.stdout);
        let json = cronlease(url, &["why", "--json", "sync", "--scope", "tenant:2", "--at", &at]).ok().json();
        assert_eq!(keys(&json), set(&["job", "scope", "plan_time", "plan_time_local", "answer", "description", "detail"]));
        assert_eq!(json["answer"], "ran");
        assert_eq!(json["detail"]["id"], dead.id.to_string());
        let off = (dead.plan_time + chrono::TimeDelta::hours(1)).to_rfc3339();
        let json = cronlease(url, &["why", "--json", "sync", "--scope", "tenant:2", "--at", &off]).ok().json();
        assert_eq!(json["answer"], "not_a_plan_time");
        assert_eq!(json["detail"]["previous"], cronlease_rfc3339(dead.plan_time));
        let next_year = (dead.plan_time + chrono::TimeDelta::days(366)).to_rfc3339();
        let pending = cronlease(url, &["why", "--json", "sync", "--scope", "tenant:2", "--at", &next_year]).ok().json();
        assert!(matches!(pending["answer"].as_str(), Some("not_due_yet" | "not_a_plan_time")), "{pending}");

        let preview = cronlease(url, &["preview", "sync", "--scope", "tenant:1", "-n", "3"]).ok();
        assert_snapshot("preview_sync", &preview.stdout);
        let json = cronlease(url, &["preview", "--json", "sync", "--scope", "tenant:1", "-n", "3"]).ok().json();
        assert_eq!(keys(&json), set(&["job", "schedule", "time_zone", "scope", "stagger_offset_ms", "plans"]));
        let plans = json["plans"].as_array().unwrap();
        assert_eq!(plans.len(), 3);
        let offset = json["stagger_offset_ms"].as_i64().unwrap();
        assert!((0..600_000).contains(&offset));
        for plan in plans {
            assert!(plan["plan_time"].as_str().unwrap().ends_with("-01-01T02:00:00.000Z"), "{plan}");
            assert!(plan["plan_time_local"].as_str().unwrap().ends_with("-01-01T03:00:00.000+01:00"), "{plan}");
            let plan_time: chrono::DateTime<chrono::Utc> = plan["plan_time"].as_str().unwrap().parse().unwrap();
            let due: chrono::DateTime<chrono::Utc> = plan["due_at"].as_str().unwrap().parse().unwrap();
            assert_eq!((due - plan_time).num_milliseconds(), offset, "due after the scope's stagger offset");
        }
        let report = cronlease(url, &["preview", "--json", "report", "-n", "2"]).ok().json();
        assert_eq!(report["plans"][0]["plan_time"].as_str().unwrap().get(10..), Some("T00:00:00.000Z"));
        let bad = cronlease(url, &["why", "sync", "--at", "yesterday"]);
        assert_eq!(bad.code, 2);
        assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    }
}

/// A time as the tool writes it in JSON.
fn cronlease_rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

on_every_backend! {
    async fn prune_migrate_and_config_show_report_what_they_would_do(db: TestDb) {
        let (scheduler, _store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let check = cronlease(url, &["migrate", "--check", "--json"]).ok().json();
        assert_eq!(check["current"], true);
        cronlease(url, &["migrate"]).ok();
        let dry = cronlease(url, &["prune", "--dry-run", "--json"]).ok().json();
        assert_eq!(dry["dry_run"], true);
        assert_eq!(dry["finished"]["rows"], 0, "nothing is 30 days old");
        assert_eq!(dry["dead"]["keep_ms"], 7 * 24 * 3600 * 1000);
        let pruned = cronlease(url, &["prune"]).ok();
        assert!(pruned.stdout.contains("finished executions older than 30d: deleted 0"), "{}", pruned.stdout);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prod.toml");
        std::fs::write(&file, "[retention]\nkeep_dead = \"forever\"\n\n[jobs.sync]\nmax_attempts = 5\ncatch_up = \"every_plan\"\n").unwrap();
        let file = file.display().to_string();
        let kept = cronlease(url, &["--config", &file, "prune", "--dry-run"]).ok();
        assert!(kept.stdout.contains("dead executions: kept forever"), "{}", kept.stdout);
        let shown = cronlease(url, &["--config", &file, "config", "show"]).ok();
        assert_snapshot("config_show", &shown.stdout);
        let json = cronlease(url, &["--config", &file, "config", "show", "--json"]).ok().json();
        assert_eq!(json["jobs"][1]["settings_file"]["max_attempts"], "5");
        assert_eq!(json["jobs"][1]["registered"]["max_attempts"], 2);
        scheduler.shutdown().await;
    }
}

/// A path that does not exist (for URLs that must fail).
fn nowhere() -> PathBuf {
    std::env::temp_dir()
        .join(format!("cronlease-nowhere-{}", uuid::Uuid::new_v4()))
        .join("x.db")
}

#[test]
fn bad_urls_give_one_clear_line_and_never_the_password() {
    let refused = cronlease(
        Some("postgres://ops:s3cret-pw@127.0.0.1:1/app"),
        &["status"],
    );
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with("error: ") && refused.stderr.contains("127.0.0.1:1"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("s3cret") && !refused.stdout.contains("s3cret"));
    let mysql = cronlease(Some("mysql://root:s3cret-pw@127.0.0.1:1/app"), &["jobs"]);
    assert_eq!(mysql.code, 1);
    assert!(
        !mysql.stderr.contains("s3cret") && mysql.stderr.lines().count() == 1,
        "{}",
        mysql.stderr
    );
    let scheme = cronlease(Some("ftp://host/x"), &["jobs"]);
    assert_eq!(
        (scheme.code, scheme.stderr.as_str()),
        (
            2,
            "error: unsupported database scheme `ftp:`: use a SQLite path, sqlite://, postgres:// or mysql://\n"
        )
    );
    let missing = nowhere();
    let file = cronlease(Some(missing.to_str().unwrap()), &["status"]);
    assert_eq!(file.code, 1);
    assert_eq!(
        file.stderr,
        format!(
            "error: no SQLite database at `{}`: check the path (`cronlease migrate` creates one)\n",
            missing.display()
        )
    );
    assert!(!missing.exists(), "a read never creates a database");
    let none = cronlease(None, &["status"]);
    assert_eq!(none.code, 2);
    assert!(
        none.stderr
            .starts_with("error: no database: give --database-url"),
        "{}",
        none.stderr
    );
}

#[test]
fn an_empty_database_asks_for_a_migration_and_migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let check = cronlease(Some(&url), &["migrate", "--check"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stdout.starts_with("schema at version 0 of "),
        "{}",
        check.stdout
    );
    cronlease(Some(&url), &["migrate"]).ok();
    let empty = cronlease(Some(&url), &["jobs", "--json"]).ok().json();
    assert_eq!(empty["jobs"], Value::Array(vec![]));
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    let unmigrated = cronlease(Some(other.to_str().unwrap()), &["status"]);
    assert_eq!(
        (unmigrated.code, unmigrated.stderr.as_str()),
        (
            1,
            "error: the database has no cronlease schema: check the URL, or run `cronlease migrate`\n"
        )
    );
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    for args in [
        &["history", "--limit", "many"][..],
        &["show", "not-an-id"],
        &["status", "--fail-on", "tired"],
        &["dead", "replay"],
        &["frobnicate"],
    ] {
        let run = cronlease(Some("x.db"), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    let help = cronlease(None, &["dead", "replay", "--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Examples:") && help.stdout.contains("--dry-run"),
        "{}",
        help.stdout
    );
}

#[test]
fn config_check_validates_a_file_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "database_url = \"postgres://ops:s3cret@db.invalid/app\"\n[scheduler]\ntick_interval = \"10s\"\n[jobs.sync]\nmax_attempts = 4\n").unwrap();
    let ok = cronlease(None, &["config", "check", good.to_str().unwrap()]).ok();
    assert_eq!(
        ok.stdout,
        format!(
            "{}: valid (1 job override(s), database postgres://ops:***@db.invalid/app)\n",
            good.display()
        )
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[scheduler]\ntick_interval = \"10s\"\nretries = 3\n").unwrap();
    let run = cronlease(None, &["config", "check", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("error: {}:3: ", bad.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retries") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    let value = dir.path().join("value.toml");
    std::fs::write(&value, "[retention]\nkeep_dead = \"a week\"\n").unwrap();
    let run = cronlease(None, &["config", "check", value.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(":2: retention.keep_dead: invalid duration `a week`"),
        "{}",
        run.stderr
    );
    let env = Command::new(BIN)
        .env_remove("CRONLEASE_DATABASE_URL")
        .env("CRONLEASE_SCHEDULER__TICK_INTERVAL", "often")
        .args(["config", "check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(1));
    let stderr = String::from_utf8(env.stderr).unwrap();
    assert!(
        stderr.contains("CRONLEASE_SCHEDULER__TICK_INTERVAL (scheduler.tick_interval)"),
        "{stderr}"
    );
}

/// Runs the tool on a pseudo-terminal (util-linux `script`, part of every Debian install), with
/// `NO_COLOR` set to `no_color`.
fn on_a_terminal(url: &str, no_color: &str) -> String {
    let command = format!("{BIN} --database-url {url} status");
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", no_color)
        .env_remove("CRONLEASE_DATABASE_URL")
        .env_remove("CRONLEASE_CONFIG")
        .output()
        .expect("run script");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("c.db").display().to_string();
    cronlease(Some(&url), &["migrate"]).ok();
    assert!(
        on_a_terminal(&url, "").contains("\u{1b}["),
        "bold headers on a terminal"
    );
    assert!(
        !on_a_terminal(&url, "1").contains("\u{1b}["),
        "NO_COLOR wins"
    );
    let piped = Command::new(BIN)
        .args(["--database-url", &url, "status"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8(piped.stdout).unwrap().contains('\u{1b}'),
        "none into a pipe"
    );
}

/// [`cronlease`] off the actix thread, so the application's scheduler keeps ticking meanwhile.
async fn cronlease_beside(url: &str, args: &[&str]) -> Run {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cronlease(Some(&url), &args)
    })
    .await
    .unwrap()
}

on_every_backend! {
    async fn a_trigger_from_the_shell_runs_once_on_the_next_tick(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        let url = url_of(&db);
        let url = Some(url.as_str());
        let first = cronlease(url, &["trigger", "--json", "sync", "--scope", "tenant:1", "--key", "retry-1", "--by", "alice"]).ok().json();
        assert_eq!(keys(&first), set(&["id", "job", "scope", "idempotency_key", "requested_by", "requested_at", "started_at", "repeated"]));
        assert_eq!((first["repeated"].as_bool(), first["scope"].as_str()), (Some(false), Some("tenant:1")));
        let again = cronlease(url, &["trigger", "sync", "--scope", "tenant:1", "--key", "retry-1"]).ok();
        assert!(again.stdout.starts_with("job sync already has a trigger with key `retry-1`"), "{}", again.stdout);
        assert_eq!(store.trigger_list(Some("sync"), true).await.unwrap().len(), 1, "a repeat stores nothing");
        let unknown = cronlease(url, &["trigger", "nightly"]);
        assert_eq!((unknown.code, unknown.stderr.as_str()), (1, "error: no job named `nightly` is registered in this database (see `cronlease jobs`)\n"));
        let both = cronlease(url, &["trigger", "sync", "--scope", "tenant:1", "--all-scopes"]);
        assert_eq!(both.code, 2);
        assert_eq!(both.stderr.lines().count(), 1, "{}", both.stderr);

        scheduler.tick_now().await.unwrap();
        assert!(scheduler.wait_idle(Duration::from_secs(20)).await);
        let manual: Vec<_> = common::rows(&*store, "sync").await.into_iter().filter(|r| r.trigger_id.is_some()).collect();
        assert_eq!(manual.len(), 1);
        assert_eq!(manual[0].trigger_id.unwrap().to_string(), first["id"].as_str().unwrap());
        assert_eq!((manual[0].scope.id.as_str(), manual[0].status), ("1", Status::Success));
        let history = cronlease(url, &["history", "--json", "--job", "sync", "--scope", "tenant:1"]).ok().json();
        assert_eq!(history["executions"][0]["trigger_id"], first["id"]);
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn a_backfill_is_followed_to_its_end_and_cannot_be_cancelled_after(db: TestDb) {
        let store = app_store(&db).await;
        // A user's scheduler: automatic ticks, a short interval.
        let scheduler = Scheduler::builder_shared(store.clone())
            .runner_id("runner-1")
            .tick_interval(Duration::from_secs(1))
            .job(
                JobSpec::builder("report")
                    .every("1d")
                    .handler(|_ctx| async { Ok(JobOutput::rows(3)) })
                    .build()
                    .unwrap(),
            )
            .job(
                JobSpec::builder("hooked")
                    .planner(|_, _, _| Ok(vec![]))
                    .handler(|_ctx| async { Ok(JobOutput::rows(0)) })
                    .build()
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();
        let url = url_of(&db);
        let midnight = store.db_now().await.unwrap().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let from = (midnight - chrono::TimeDelta::days(3)).to_rfc3339();
        let to = midnight.to_rfc3339();
        let bad = cronlease(Some(&url), &["backfill", "report", "--from", &to, "--to", &from]);
        assert_eq!(bad.code, 2);
        assert!(bad.stderr.contains("must be before to"), "{}", bad.stderr);
        let hooked = cronlease(Some(&url), &["backfill", "hooked", "--from", &from, "--to", &to]);
        assert_eq!((hooked.code, hooked.stderr.as_str()), (1, "error: job `hooked` plans with a planner hook: a backfill needs a schedule to know its plan times\n"));
        let missing = cronlease(Some(&url), &["backfill", "report", "--from", &from]);
        assert_eq!(missing.code, 2);
        assert!(missing.stderr.contains("--to <TIME>"), "{}", missing.stderr);

        let done = cronlease_beside(&url, &["backfill", "--json", "report", "--from", &from, "--to", &to, "--wait"]).await.ok().json();
        assert_eq!(keys(&done), set(&["id", "job", "scopes", "from", "to", "rerun", "requested_by", "status", "done", "total", "created_at", "updated_at"]));
        assert_eq!((done["status"].as_str(), done["done"].as_u64(), done["total"].as_u64()), (Some("DONE"), Some(3), Some(3)));
        let id = done["id"].as_str().unwrap().to_owned();
        assert!(scheduler.wait_idle(Duration::from_secs(20)).await);
        let plans: BTreeSet<_> = common::rows(&*store, "report").await.into_iter().map(|r| r.plan_time).collect();
        for day in 1..=3 {
            assert!(plans.contains(&(midnight - chrono::TimeDelta::days(day))), "day -{day} ran: {plans:?}");
        }
        let status = cronlease(Some(&url), &["backfill", "status", &id]).ok();
        assert!(status.stdout.contains("DONE") && status.stdout.contains("3/3"), "{}", status.stdout);
        let listed = cronlease(Some(&url), &["backfill", "status", "--json", "--active"]).ok().json();
        assert_eq!(listed["backfills"], Value::Array(vec![]));
        let cancel = cronlease(Some(&url), &["backfill", "cancel", &id]);
        assert_eq!((cancel.code, cancel.stderr.clone()), (1, format!("error: backfill {id} is DONE, not active: nothing to cancel\n")));

        // A backfill cancelled while the tool waits: the wait ends with exit 1.
        let pending = cronlease(Some(&url), &["backfill", "--json", "report", "--from", &from, "--to", &to, "--rerun", "--scope", "global"]).ok().json();
        let pending_id = pending["id"].as_str().unwrap().to_owned();
        let cancelled = cronlease(Some(&url), &["backfill", "cancel", &pending_id]);
        if cancelled.code == 0 {
            let waited = cronlease(Some(&url), &["backfill", "status", "--json", &pending_id]).ok().json();
            assert_eq!(waited["backfills"][0]["status"], "CANCELLED");
        } else {
            // A tick served it first: it was done before the cancel.
            assert!(cancelled.stderr.contains("is DONE, not active"), "{}", cancelled.stderr);
        }
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn prune_keeps_finished_rows_for_each_jobs_own_retention(db: TestDb) {
        // Runners registered `audit` (kept forever) and `minutely` (kept a day); `plain` keeps
        // the default 30 days. The tool prunes each for its own time, as the runners would.
        let store = app_store(&db).await;
        let spec = |name: &str| {
            JobSpec::builder(name)
                .every("1h")
                .handler(|_ctx| async { Ok(JobOutput::rows(0)) })
        };
        let scheduler = Scheduler::builder_shared(store.clone())
            .runner_id("runner-1")
            .auto_tick(false)
            .presence_interval(Duration::from_secs(3600))
            .job(spec("audit").keep_finished_forever().build().unwrap())
            .job(spec("minutely").keep_finished(Duration::from_secs(24 * 3600)).build().unwrap())
            .job(spec("plain").build().unwrap())
            .start()
            .await
            .unwrap();
        // Per job: a SUCCESS row finished 40 days ago, one 2 days ago, and the scope's newest
        // (never pruned: planning reads it).
        let ago = |days: i64| db.skewed(-db.base_skew - chrono::TimeDelta::days(days));
        let mut ids = std::collections::BTreeMap::new();
        for job in ["audit", "minutely", "plain"] {
            for (hour, store) in [(0, ago(40)), (1, ago(2)), (2, store.clone())] {
                let plan_time = chrono::DateTime::from_timestamp(3600 * (1 + hour), 0).unwrap();
                let claimed = store
                    .execution_claim(&cronlease::store::ClaimRequest {
                        job,
                        max_attempts: 1,
                        runner_id: "seed",
                        stale_timeout: Duration::from_secs(60),
                        allow_stale_reentry: false,
                        steal_not_after: None,
                        plans: vec![cronlease::store::PlanClaim::new(Scope::global(), plan_time)],
                    })
                    .await
                    .unwrap();
                store
                    .execution_finish_success(&[cronlease::store::SuccessWrite {
                        lease: claimed[0].lease,
                        duration_ms: 1,
                        rows_affected: 0,
                        result: "{}".into(),
                    }])
                    .await
                    .unwrap();
                ids.insert((job, hour), claimed[0].lease.id);
            }
        }
        let url = url_of(&db);
        let url = Some(url.as_str());

        let dry = cronlease(url, &["prune", "--dry-run", "--json"]).ok().json();
        assert_eq!(dry["finished"]["keep_ms"], 30 * 24 * 3600 * 1000_i64);
        assert_eq!(dry["finished"]["rows"], 1, "plain's row of 40 days ago: {dry}");
        let jobs: BTreeSet<String> = dry["jobs"].as_array().unwrap().iter().map(|j| j.to_string()).collect();
        let expected: BTreeSet<String> = [
            serde_json::json!({"job": "minutely", "keep_ms": 24 * 3600 * 1000_i64, "rows": 2}),
            serde_json::json!({"job": "audit", "keep_ms": null, "rows": 0}),
        ]
        .iter()
        .map(|j| j.to_string())
        .collect();
        assert_eq!(jobs, expected);
        // The settings file overrides the registry: a day for audit too.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prod.toml");
        std::fs::write(&file, "[jobs.audit]\nkeep_finished = \"1d\"\n").unwrap();
        let file = file.display().to_string();
        let overridden = cronlease(url, &["--config", &file, "prune", "--dry-run"]).ok();
        assert!(
            overridden.stdout.contains("finished executions of job audit older than 1d: would delete 2"),
            "{}",
            overridden.stdout
        );

        let pruned = cronlease(url, &["prune"]).ok();
        assert!(pruned.stdout.contains("finished executions of job audit: kept forever"), "{}", pruned.stdout);
        assert!(
            pruned.stdout.contains("finished executions of job minutely older than 1d: deleted 2"),
            "{}",
            pruned.stdout
        );
        let exists = |job: &'static str, hour: i64| {
            let store = store.clone();
            let id = ids[&(job, hour)];
            async move { store.execution_get(id).await.unwrap().is_some() }
        };
        for hour in 0..3 {
            assert!(exists("audit", hour).await, "audit keeps every row");
        }
        assert!(!exists("minutely", 0).await && !exists("minutely", 1).await);
        assert!(!exists("plain", 0).await, "past 30 days");
        assert!(exists("plain", 1).await, "2 days old: within 30 days");
        assert!(exists("minutely", 2).await && exists("plain", 2).await, "each scope's newest stays");
        scheduler.shutdown().await;
    }
}

on_every_backend! {
    async fn partition_history_converts_a_postgres_history_once_and_back_and_is_refused_elsewhere(db: TestDb) {
        let (scheduler, store) = prepare(&db).await;
        let before = common::rows(&*store, "report").await.len() + common::rows(&*store, "sync").await.len();
        let url = url_of(&db);
        let url = Some(url.as_str());
        if db.backend != "postgres" {
            let refused = cronlease(url, &["partition-history"]);
            assert_eq!(refused.code, 1, "{}", refused.stderr);
            assert!(refused.stderr.contains("needs PostgreSQL"), "{}", refused.stderr);
            scheduler.shutdown().await;
            return;
        }
        let done = cronlease(url, &["partition-history", "--json"]).ok().json();
        assert_eq!((done["partitioned"].as_bool(), done["changed"].as_bool()), (Some(true), Some(true)));
        assert_eq!(done["rows"], before as u64);
        // sync's plan (January 1st) is older than 31 days: DEFAULT, and the days start 31 back.
        assert_eq!(done["rows_in_default"], 2);
        assert_eq!(done["days"].as_array().unwrap().len(), 31 + 1 + 7);
        assert!(store.history_partitions().await.unwrap().is_some());
        let again = cronlease(url, &["partition-history"]).ok();
        assert!(again.stdout.contains("partitioned already: nothing to do"), "{}", again.stdout);
        let back = cronlease(url, &["partition-history", "--undo"]).ok();
        assert!(back.stdout.contains(&format!("{before} row(s) copied")), "{}", back.stdout);
        assert!(store.history_partitions().await.unwrap().is_none());
        assert_eq!(common::rows(&*store, "report").await.len() + common::rows(&*store, "sync").await.len(), before);
        scheduler.shutdown().await;
    }
}
