//! Panic storm (SPEC §6, R14, R19): 1,000 executions whose handlers panic. Every one is recorded
//! `handler_panic`, the scheduler keeps ticking and running healthy work, and memory stays flat.
//!
//! Its own test binary with a single test: it replaces the process-wide panic hook (to keep the
//! 1,000 expected panic messages out of the output) and measures the process's memory, which
//! other tests running alongside would disturb. SQLite always, then PostgreSQL and MySQL when
//! configured (the name says `postgres` and `mysql` so that CI's PostgreSQL and MySQL passes,
//! `cargo test -- postgres` and `cargo test -- mysql`, run it).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::chaos::{all_rows, rss_kib};
use common::{Runs, scheduler};
use cronlease::{JobContext, JobOutput, JobSpec, Scope, Scopes, Status};

/// Executions per round; two rounds make the 1,000.
const ROUND: usize = 500;
/// Allowed RSS growth of the second round over the first, in KiB.
///
/// The first round pays for warm-up (pool connections, handler threads' allocator arenas, the
/// panic machinery, prepared statements), so only the second is judged. A leak of what one
/// execution holds (its Executor actor and mailbox, the handler task, the `JobContext`, the panic
/// payload and message, the lease in the Heartbeat, the row decoded for the report) is at least
/// several KiB per execution, so 500 leaked executions would add several MiB. Measured growth of
/// the second round: 0 KiB on PostgreSQL, about 0.5 MiB on SQLite (its library's own memory
/// grows a little with the file even with a small page cache; over eight rounds it stayed under
/// 1 MiB a round). 3 MiB leaves room for that and for allocator noise while still catching a
/// leak of 6 KiB or more per execution.
const MAX_SECOND_ROUND_GROWTH_KIB: u64 = 3 * 1024;

/// Panics raised by handlers, counted by the hook instead of printed.
static HANDLER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn quiet_handler_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("cronlease-handler") {
            HANDLER_PANICS.fetch_add(1, Ordering::SeqCst);
        } else {
            default(info);
        }
    }));
}

#[test]
fn a_thousand_panicking_handlers_are_recorded_and_memory_stays_flat_on_sqlite_postgres_and_mysql() {
    quiet_handler_panics();
    actix_rt::System::new().block_on(async {
        storm(common::sqlite().await).await;
        match common::postgres().await {
            Some(db) => storm(db).await,
            None => eprintln!("postgres: skipped: {} is not set", common::POSTGRES_URL_VAR),
        }
        match common::mysql().await {
            Some(db) => storm(db).await,
            None => eprintln!("mysql: skipped: {} is not set", common::MYSQL_URL_VAR),
        }
    });
}

async fn storm(db: common::TestDb) {
    let round = Arc::new(Mutex::new(String::from("a")));
    let scopes = {
        let round = round.clone();
        Scopes::provider(move || {
            let prefix = round.lock().unwrap().clone();
            async move {
                Ok((0..ROUND)
                    .map(|i| Scope::new("tenant", format!("{prefix}{i}")))
                    .collect())
            }
        })
    };
    let canary_scopes = {
        let round = round.clone();
        Scopes::provider(move || {
            let prefix = round.lock().unwrap().clone();
            async move { Ok(vec![Scope::new("canary", prefix)]) }
        })
    };
    let canary = Runs::default();
    let s = scheduler(store(&db).await)
        .job(
            JobSpec::builder("storm")
                .every("1h")
                .scopes(scopes)
                .max_attempts(1)
                .handler(|ctx: JobContext| async move {
                    if ctx.attempt() > 0 {
                        panic!("storm in {}", ctx.scope().id);
                    }
                    Ok(JobOutput::default())
                })
                .build()
                .unwrap(),
        )
        .job(
            JobSpec::builder("canary")
                .every("1h")
                .scopes(canary_scopes)
                .handler(canary.ok_handler())
                .build()
                .unwrap(),
        )
        .start()
        .await
        .unwrap();

    let panics_before = HANDLER_PANICS.load(Ordering::SeqCst);
    let started = Instant::now();
    let rss_start = rss_kib();
    run_round(&s, 0).await;
    let rss_first = rss_kib();
    *round.lock().unwrap() = "b".into();
    run_round(&s, 1).await;
    let rss_second = rss_kib();

    let rows = all_rows(&*db.store, "storm").await;
    assert_eq!(rows.len(), 2 * ROUND);
    for row in &rows {
        assert_eq!(row.status, Status::Dead, "{row:?}");
        assert_eq!(row.error_code.as_deref(), Some("handler_panic"), "{row:?}");
        assert!(
            row.error_msg
                .as_deref()
                .unwrap_or_default()
                .contains("storm in"),
            "{row:?}"
        );
        assert_eq!(row.failures.len(), 1);
    }
    assert_eq!(
        HANDLER_PANICS.load(Ordering::SeqCst) - panics_before,
        2 * ROUND
    );
    // The scheduler kept ticking and running healthy work between and after the storms.
    assert_eq!(canary.len(), 2, "the canary ran in each round");
    let canaries = all_rows(&*db.store, "canary").await;
    assert!(
        canaries.iter().all(|r| r.status == Status::Success),
        "{canaries:?}"
    );
    let after = s.tick_now().await.expect("ticks after the storm");
    assert_eq!(after.job_errors, 0);
    s.shutdown().await;

    let growth_first = rss_first.saturating_sub(rss_start);
    let growth_second = rss_second.saturating_sub(rss_first);
    println!(
        "panic storm [{}]: {} panicking executions recorded handler_panic in {:.1} s; RSS {} KiB at start, +{} KiB after the first {ROUND}, +{} KiB after the second {ROUND}",
        db.backend,
        2 * ROUND,
        started.elapsed().as_secs_f64(),
        rss_start,
        growth_first,
        growth_second,
    );
    assert!(
        growth_second < MAX_SECOND_ROUND_GROWTH_KIB,
        "RSS grew {growth_second} KiB over the second {ROUND} panics: a leak?"
    );
}

/// The store the storm runs on. SQLite keeps its page cache in this process and fills it as the
/// file grows (up to 2 MiB per connection by default), which would read as growth here: its
/// connections get a 64 KiB cache, so what is measured is the scheduler's own memory.
async fn store(db: &common::TestDb) -> std::sync::Arc<dyn cronlease::Store> {
    match &db.sqlite_path {
        Some(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .pragma("cache_size", "-64");
            let store = cronlease::SqliteStore::connect_with(options).await.unwrap();
            std::sync::Arc::new(store.with_clock_skew(db.base_skew))
        }
        None => db.store.clone(),
    }
}

/// Ticks until every plan of this round's 500 scopes has run and been recorded. Progress is read
/// as counts, so the check itself allocates the same whatever the number of rows.
async fn run_round(s: &cronlease::Scheduler, rounds_done: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = s.tick_now().await.expect("tick");
        assert_eq!(report.job_errors, 0, "{report:?}");
        assert!(
            s.wait_idle(Duration::from_secs(30)).await,
            "executions finish"
        );
        let counts = s.counts(Some("storm")).await.expect("counts");
        let dead = counts
            .iter()
            .find(|(status, _)| *status == Status::Dead)
            .map_or(0, |c| c.1);
        let other = counts
            .iter()
            .filter(|(status, _)| *status != Status::Dead)
            .map(|c| c.1)
            .sum::<i64>();
        assert_eq!(other, 0, "{counts:?}");
        if dead as usize == (rounds_done + 1) * ROUND {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {rounds_done}: {counts:?} after 120 s"
        );
    }
}
