use std::time::Duration;

use super::*;
use crate::handler::JobOutput;
use crate::plan::CatchUp;
use crate::retry::Backoff;
use crate::spec::JobSpec;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cronlease.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn error(result: Result<Config>) -> String {
    result.expect_err("an error").to_string()
}

const FULL: &str = r#"
database_url = "postgres://app:s3cret@db/app"

[scheduler]
runner_id = "web-1"
tick_interval = "10s"
max_concurrent_executions = 8
shutdown_grace = "20s"
handler_threads = 4
wait_for_database = "2m"
auto_tick = true
replay_attempts = 2
presence_interval = "5s"
db_retry_initial = "1s"
db_retry_max = "30s"
db_retry_give_up_after = "10m"

[retention]
interval = "1m"
keep_finished = "14d"
keep_dead = "forever"
keep_runners = "1d"
batch_size = 500

[jobs.nightly-report]
schedule = "cron 30 2 * * *"
time_zone = "Europe/Berlin"
catch_up = "every_plan"
catch_up_window = "2d"
catch_up_max_plans_per_tick = 3
run_timeout = "5m"
stale_timeout = "10m"
heartbeat_interval = "30s"
max_attempts = 5
backoff = ["1m", "10m"]
allow_stale_reentry = false
overlap = "buffer_one"
max_concurrent = 4
"#;

#[test]
fn a_file_sets_every_section() {
    let (_dir, path) = file(FULL);
    let config = Config::load_with_env(Some(&path), vars(&[])).unwrap();
    assert_eq!(
        config.database_url.as_deref(),
        Some("postgres://app:s3cret@db/app")
    );
    assert_eq!(
        config.scheduler.tick_interval,
        Some(Duration::from_secs(10))
    );
    assert_eq!(config.scheduler.runner_id.as_deref(), Some("web-1"));
    assert_eq!(
        config.scheduler.db_retry_give_up_after,
        Some(Duration::from_secs(600))
    );
    assert_eq!(config.retention.keep_dead, Some(Keep::Forever));
    assert_eq!(
        config.retention.keep_finished,
        Some(Keep::For(Duration::from_secs(14 * 86_400)))
    );
    let job = &config.jobs["nightly-report"];
    assert_eq!(job.max_attempts, Some(5));
    assert_eq!(
        job.backoff,
        Some(vec![Duration::from_secs(60), Duration::from_secs(600)])
    );
    assert_eq!(job.allow_stale_reentry, Some(false));
}

#[test]
fn debug_never_shows_the_password() {
    let config = Config::from_toml(FULL, "x.toml").unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("app:***@db"), "{shown}");
}

#[test]
fn the_environment_wins_over_the_file() {
    let (_dir, path) = file(FULL);
    let config = Config::load_with_env(
        Some(&path),
        vars(&[
            ("CRONLEASE_DATABASE_URL", "sqlite://other.db"),
            ("CRONLEASE_SCHEDULER__TICK_INTERVAL", "3s"),
            ("CRONLEASE_RETENTION__BATCH_SIZE", "50"),
            ("CRONLEASE_JOBS__NIGHTLY_REPORT__MAX_ATTEMPTS", "9"),
            ("CRONLEASE_JOBS__NIGHTLY_REPORT__BACKOFF", r#"["5s"]"#),
            ("CRONLEASE_TEST_POSTGRES_URL", "ignored"),
            ("CRONLEASE_CONFIG", "ignored"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(config.database_url.as_deref(), Some("sqlite://other.db"));
    assert_eq!(config.scheduler.tick_interval, Some(Duration::from_secs(3)));
    assert_eq!(
        config.scheduler.max_concurrent_executions,
        Some(8),
        "the file's other keys stay"
    );
    assert_eq!(config.retention.batch_size, Some(50));
    let job = &config.jobs["nightly-report"];
    assert_eq!(job.max_attempts, Some(9));
    assert_eq!(job.backoff, Some(vec![Duration::from_secs(5)]));
    assert_eq!(job.run_timeout, Some(Duration::from_secs(300)));
}

#[test]
fn the_environment_alone_is_enough() {
    let config = Config::load_with_env(
        None,
        vars(&[
            ("CRONLEASE_SCHEDULER__AUTO_TICK", "false"),
            ("CRONLEASE_JOBS__SYNC__RUN_TIMEOUT", "1m"),
        ]),
    )
    .unwrap();
    assert_eq!(config.scheduler.auto_tick, Some(false));
    assert_eq!(
        config.jobs["sync"].run_timeout,
        Some(Duration::from_secs(60))
    );
}

#[test]
fn an_unknown_key_names_the_key_the_file_and_the_line() {
    let message = error(Config::from_toml(
        "[scheduler]\ntick_intervall = \"5s\"\n",
        "prod.toml",
    ));
    assert!(message.starts_with("prod.toml:2: "), "{message}");
    assert!(message.contains("tick_intervall"), "{message}");
    let message = error(Config::from_toml("colour = true\n", "prod.toml"));
    assert!(
        message.contains("prod.toml:1") && message.contains("colour"),
        "{message}"
    );
    let message = error(Config::from_toml("[jobs.a]\nretries = 3\n", "prod.toml"));
    assert!(
        message.contains("prod.toml:2") && message.contains("retries"),
        "{message}"
    );
}

#[test]
fn a_bad_value_names_the_key_the_file_and_the_line() {
    let message = error(Config::from_toml(
        "[scheduler]\nhandler_threads = 2\ntick_interval = \"soon\"\n",
        "prod.toml",
    ));
    assert!(
        message.starts_with("prod.toml:3: scheduler.tick_interval: "),
        "{message}"
    );
    assert!(message.contains("invalid duration `soon`"), "{message}");
    let message = error(Config::from_toml(
        "[retention]\nkeep_dead = \"later\"\n",
        "p.toml",
    ));
    assert!(
        message.contains("retention.keep_dead") && message.contains("forever"),
        "{message}"
    );
    let message = error(Config::from_toml(
        "[scheduler]\nmax_concurrent_executions = \"8\"\n",
        "p.toml",
    ));
    assert!(
        message.contains("p.toml:2: scheduler.max_concurrent_executions"),
        "{message}"
    );
    let message = error(Config::from_toml("[scheduler\n", "p.toml"));
    assert!(message.starts_with("p.toml:1: "), "{message}");
}

#[test]
fn a_missing_file_is_named() {
    let message = error(Config::load_with_env(
        Some("/nonexistent/c.toml".as_ref()),
        vars(&[]),
    ));
    assert!(
        message.contains("cannot read the settings file /nonexistent/c.toml"),
        "{message}"
    );
}

#[test]
fn a_bad_variable_is_named() {
    let message = error(Config::load_with_env(
        None,
        vars(&[("CRONLEASE_TICK_INTERVAL", "5s")]),
    ));
    assert!(
        message.contains("CRONLEASE_TICK_INTERVAL") && message.contains("unknown field"),
        "{message}"
    );
    let message = error(Config::load_with_env(
        None,
        vars(&[("CRONLEASE_SCHEDULER__SHUTDOWN_GRACE", "a while")]),
    ));
    assert!(
        message.contains("CRONLEASE_SCHEDULER__SHUTDOWN_GRACE (scheduler.shutdown_grace)")
            && message.contains("invalid duration"),
        "{message}"
    );
    let message = error(Config::load_with_env(
        None,
        vars(&[("CRONLEASE_SCHEDULER__HANDLER_THREADS", "many")]),
    ));
    assert!(
        message.contains("CRONLEASE_SCHEDULER__HANDLER_THREADS"),
        "{message}"
    );
    let message = error(Config::load_with_env(
        None,
        vars(&[("CRONLEASE_JOBS__A", "1")]),
    ));
    assert!(message.contains("CRONLEASE_JOBS__A"), "{message}");
}

fn spec() -> JobSpec {
    JobSpec::builder("nightly-report")
        .cron("0 3 * * *")
        .handler(|_ctx| async { Ok(JobOutput::rows(0)) })
        .build()
        .unwrap()
}

#[test]
fn job_overrides_replace_the_codes_settings() {
    let config = Config::from_toml(FULL, "x.toml").unwrap();
    let spec = config.jobs["nightly-report"].apply(&spec()).unwrap();
    assert_eq!(spec.schedule().unwrap().to_text(), "cron 30 2 * * *");
    assert_eq!(spec.schedule().unwrap().time_zone(), "Europe/Berlin");
    assert_eq!(
        spec.catch_up(),
        CatchUp::EveryPlan {
            window: Duration::from_secs(2 * 86_400),
            max_plans_per_tick: 3
        }
    );
    assert_eq!(spec.max_attempts(), 5);
    assert_eq!(spec.run_timeout(), Duration::from_secs(300));
    assert_eq!(spec.stale_timeout(), Duration::from_secs(600));
    assert!(!spec.allows_stale_reentry());
    assert_eq!(spec.overlap(), crate::OverlapPolicy::BufferOne);
    assert_eq!(spec.max_concurrent(), Some(4));
    assert_eq!(
        spec.backoff,
        Backoff::List(vec![Duration::from_secs(60), Duration::from_secs(600)])
    );
}

#[test]
fn a_time_zone_alone_moves_the_codes_cron_schedule() {
    let overrides = JobOverrides {
        time_zone: Some("Asia/Tokyo".into()),
        ..Default::default()
    };
    let spec = overrides.apply(&spec()).unwrap();
    assert_eq!(spec.schedule().unwrap().to_text(), "cron 0 3 * * *");
    assert_eq!(spec.schedule().unwrap().time_zone(), "Asia/Tokyo");
}

#[test]
fn a_job_keeps_its_finished_rows_for_its_own_time_or_forever() {
    let day =
        Config::from_toml("[jobs.nightly-report]\nkeep_finished = \"1d\"\n", "x.toml").unwrap();
    let spec_day = day.jobs["nightly-report"].apply(&spec()).unwrap();
    assert_eq!(
        spec_day.keep_finished(),
        Some(Some(Duration::from_secs(86_400)))
    );
    let forever = Config::from_toml(
        "[jobs.nightly-report]\nkeep_finished = \"forever\"\n",
        "x.toml",
    )
    .unwrap();
    let spec_forever = forever.jobs["nightly-report"].apply(&spec()).unwrap();
    assert_eq!(spec_forever.keep_finished(), Some(None));
    assert_eq!(
        spec().keep_finished(),
        None,
        "unset: the scheduler's retention"
    );
}

#[test]
fn invalid_overrides_name_the_job_and_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "run_timeout = \"10m\"\nstale_timeout = \"5m\"",
            "stale_timeout (5m) must be longer than run_timeout (10m)",
        ),
        ("max_attempts = 0", "max_attempts must be at least 1"),
        (
            "schedule = \"hourly\"",
            "schedule: `hourly` is not a stored schedule",
        ),
        ("catch_up = \"all\"", "catch_up `all` is not a mode"),
        ("catch_up_window = \"1h\"", "need catch_up = \"every_plan\""),
        (
            "backoff_base = \"1s\"",
            "needs all of backoff_base, backoff_factor and backoff_cap",
        ),
        ("backoff = []", "backoff list must have at least one delay"),
        (
            "schedule = \"every 5m\"\ntime_zone = \"Europe/Paris\"",
            "applies to cron schedules",
        ),
        ("time_zone = \"Mars/Olympus\"", "Mars/Olympus"),
        ("overlap = \"queue\"", "overlap `queue` is not a policy"),
        ("max_concurrent = 0", "max_concurrent"),
        (
            "keep_finished = \"0s\"",
            "keep_finished must be longer than zero",
        ),
    ];
    for (text, expected) in cases {
        let config =
            Config::from_toml(&format!("[jobs.nightly-report]\n{text}\n"), "x.toml").unwrap();
        let message = config.jobs["nightly-report"]
            .apply(&spec())
            .unwrap_err()
            .to_string();
        assert!(message.contains("nightly-report"), "{text}: {message}");
        assert!(message.contains(expected), "{text}: {message}");
    }
}

#[test]
fn scheduler_and_retention_values_are_laid_over_the_codes() {
    let config = Config::from_toml(FULL, "x.toml").unwrap();
    let retention = config.retention(crate::Retention::default());
    assert_eq!(retention.keep_dead, None);
    assert_eq!(
        retention.keep_finished,
        Some(Duration::from_secs(14 * 86_400))
    );
    assert_eq!(retention.batch_size, 500);
    let retry = config.db_retry(crate::DbRetry::default());
    assert_eq!(retry.initial, Duration::from_secs(1));
    assert_eq!(retry.max, Duration::from_secs(30));
    let empty = Config::default();
    assert_eq!(
        empty.retention(crate::Retention::default()),
        crate::Retention::default()
    );
}

#[test]
fn the_documented_example_file_is_valid() {
    let doc = include_str!("../../docs/configuration.md");
    let example = doc
        .split("```toml")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/configuration.md has a toml example");
    let config = Config::from_toml(example, "docs/configuration.md").unwrap();
    assert_eq!(config.jobs.len(), 2);
    let nightly = config.jobs["nightly-report"].apply(&spec()).unwrap();
    assert_eq!(nightly.max_attempts(), 5);
    let sync = JobSpec::builder("sync-invoices")
        .every("15m")
        .handler(|_ctx| async { Ok(JobOutput::rows(0)) })
        .build()
        .unwrap();
    let sync = config.jobs["sync-invoices"].apply(&sync).unwrap();
    assert_eq!(sync.max_attempts(), 8);
    assert_eq!(
        sync.keep_finished(),
        Some(Some(Duration::from_secs(86_400)))
    );
    assert!(matches!(sync.backoff, Backoff::Exponential { .. }));
}
