//! End-to-end throughput of cronlease on this machine, comparable with other job systems.
//!
//! ```sh
//! cargo run --release --example throughput -- --scopes 10000 --backend sqlite
//! cargo run --release --example throughput -- --scopes 10000 --backend postgres \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! cargo run --release --example throughput -- --scopes 10000 --backend mysql \
//!     --database-url mysql://root@127.0.0.1:3306/test
//! ```
//!
//! Prints `executions/s: X` (no-op handler, one due plan per scope, from the tick until every row
//! is SUCCESS; the median of `--runs` runs on one database, each run a new job, the first one
//! included), start-lag p50/p99 (1 s cadence, handler start minus plan time) and peak RSS with
//! every scope's execution running at once.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

struct Args {
    scopes: usize,
    backend: String,
    database_url: Option<String>,
    lag_seconds: u64,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scopes: 10_000,
        backend: "sqlite".into(),
        database_url: None,
        lag_seconds: 5,
        runs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--scopes" => args.scopes = value()?.parse().map_err(|e| format!("--scopes: {e}"))?,
            "--backend" => args.backend = value()?,
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--database-url" => args.database_url = Some(value()?),
            "--lag-seconds" => {
                args.lag_seconds = value()?
                    .parse()
                    .map_err(|e| format!("--lag-seconds: {e}"))?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: throughput [--scopes N] [--backend sqlite|postgres|mysql] \
                            [--database-url URL] [--lag-seconds S] [--runs R]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if args.scopes == 0 {
        return Err("--scopes must be at least 1".into());
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cronlease=warn".into()),
        )
        .init();
    let dir = tempfile::tempdir().expect("temp dir");
    actix_rt::System::new().block_on(async move {
        let store = match args.backend.as_str() {
            "sqlite" => support::sqlite(dir.path()).await,
            "postgres" => {
                let url = args
                    .database_url
                    .clone()
                    .or_else(|| std::env::var(support::POSTGRES_URL_VAR).ok())
                    .unwrap_or_else(|| {
                        eprintln!("--backend postgres needs --database-url");
                        std::process::exit(2)
                    });
                support::postgres(&url).await
            }
            "mysql" => {
                let url = args
                    .database_url
                    .clone()
                    .or_else(|| std::env::var(support::MYSQL_URL_VAR).ok())
                    .unwrap_or_else(|| {
                        eprintln!("--backend mysql needs --database-url");
                        std::process::exit(2)
                    });
                support::mysql(&url).await
            }
            other => {
                eprintln!("unknown backend `{other}`: use sqlite, postgres or mysql");
                std::process::exit(2)
            }
        };
        println!("backend: {}  scopes: {}", args.backend, args.scopes);
        let mut rates = Vec::with_capacity(args.runs);
        for run in 0..args.runs {
            let job = format!("throughput-{run}");
            let elapsed = support::noop_throughput(store.clone(), args.scopes, &job).await;
            let rate = args.scopes as f64 / elapsed.as_secs_f64();
            println!(
                "run {}: {rate:.0} executions/s  ({} executions in {:.1} ms)",
                run + 1,
                args.scopes,
                elapsed.as_secs_f64() * 1000.0
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "executions/s: {:.0}  (median of {} runs; slowest {:.0}, fastest {:.0})",
            support::percentile(&rates, 50.0),
            rates.len(),
            rates[0],
            rates[rates.len() - 1]
        );
        let lag_scopes = args.scopes.min(1_000);
        let lags =
            support::start_lag(store.clone(), lag_scopes, args.lag_seconds, "start-lag").await;
        println!(
            "start lag ({lag_scopes} scopes, 1s cadence, {} samples): p50 {:.1} ms  p99 {:.1} ms",
            lags.len(),
            support::percentile(&lags, 50.0),
            support::percentile(&lags, 99.0)
        );
        let (running, rss) =
            support::concurrent_memory(store, args.scopes, Duration::from_secs(2), "memory").await;
        println!("peak RSS: {rss:.0} MiB  ({running} executions running at once)");
        support::cleanup().await;
    });
}
