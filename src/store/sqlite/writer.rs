//! The writer connection: every write of this process goes through it, one at a time.
//!
//! A file store keeps the connection itself and hands it from one write to the next through a
//! fair async lock. A pool would send it back through a spawned task and a ping to SQLite's
//! worker thread after every statement, and wake the next writer only once those ran: on the
//! actors' thread, behind every task queued meanwhile (the 2,000 Executors a claim has just
//! started). The database then sat idle between a claim and the success write waiting for it.
//! Here the next writer is woken as the last one lets go, before its caller runs on.
//!
//! A store given a pool (`SqliteStore::from_pool`, or an in-memory database, which lives on its
//! one pooled connection) writes through that pool.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use sqlx::{ConnectOptions, Connection, Sqlite};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// How long the kept connection is used without a ping. A pool pings after every statement to
/// find a connection whose worker thread died; this finds it within this time, and the store's
/// callers retry the transient errors meanwhile.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where writes go.
#[derive(Debug)]
pub(super) enum Writer {
    /// A connection this store opened and keeps (file stores).
    Kept {
        options: Box<SqliteConnectOptions>,
        slot: Mutex<Slot>,
    },
    /// A pool this store was given, or its in-memory database's one connection.
    Pool(SqlitePool),
}

/// The kept connection, if open, and when it was last known alive.
#[derive(Debug)]
pub(super) struct Slot {
    conn: Option<SqliteConnection>,
    checked: Instant,
}

/// The writer connection while one write holds it.
pub(super) enum WriterConn<'a> {
    Kept(MappedMutexGuard<'a, SqliteConnection>),
    Pool(PoolConnection<Sqlite>),
}

impl Writer {
    /// Opens the connection a file store keeps.
    pub(super) async fn open(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let conn = options.connect().await?;
        Ok(Writer::Kept {
            options: Box::new(options),
            slot: Mutex::new(Slot {
                conn: Some(conn),
                checked: Instant::now(),
            }),
        })
    }

    /// Waits for the writer connection (writers are served in the order they asked). A kept
    /// connection not pinged for [`CHECK_EVERY`] is pinged first; one whose worker died, or that
    /// could not be opened last time, is opened again.
    pub(super) async fn acquire(&self) -> Result<WriterConn<'_>, sqlx::Error> {
        let (options, slot) = match self {
            Writer::Pool(pool) => return pool.acquire().await.map(WriterConn::Pool),
            Writer::Kept { options, slot } => (options, slot),
        };
        let mut slot = slot.lock().await;
        if slot.checked.elapsed() >= CHECK_EVERY
            && let Some(conn) = slot.conn.as_mut()
        {
            if let Err(error) = conn.ping().await {
                tracing::warn!(%error, "the SQLite writer connection failed its ping; opening it again");
                slot.conn = None;
            }
            slot.checked = Instant::now();
        }
        if slot.conn.is_none() {
            slot.conn = Some(options.connect().await?);
            slot.checked = Instant::now();
        }
        Ok(WriterConn::Kept(MutexGuard::map(slot, |slot| {
            slot.conn.as_mut().expect("opened above")
        })))
    }
}

impl Deref for WriterConn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            WriterConn::Kept(conn) => conn,
            WriterConn::Pool(conn) => conn,
        }
    }
}

impl DerefMut for WriterConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            WriterConn::Kept(conn) => conn,
            WriterConn::Pool(conn) => conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn kept_writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("writer.db"))
            .create_if_missing(true);
        let writer = Writer::open(options).await.expect("open");
        let mut conn = writer.acquire().await.expect("acquire");
        sqlx::raw_sql("CREATE TABLE t (n INTEGER)")
            .execute(&mut *conn)
            .await
            .expect("create");
        drop(conn);
        writer
    }

    async fn count(writer: &Writer) -> i64 {
        let mut conn = writer.acquire().await.expect("acquire");
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .expect("count")
    }

    /// A write given up halfway (its transaction dropped, as when a call passes its deadline)
    /// is rolled back, and the next write has the connection to itself.
    #[actix_rt::test]
    async fn an_abandoned_transaction_is_rolled_back_before_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let writer = kept_writer(&dir).await;
        {
            let mut conn = writer.acquire().await.expect("acquire");
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("begin");
            sqlx::raw_sql("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        let mut conn = writer.acquire().await.expect("acquire");
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        sqlx::raw_sql("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        drop(conn);
        assert_eq!(count(&writer).await, 1, "only the committed row is there");
    }

    /// Writers get the connection in the order they asked for it, one at a time.
    #[actix_rt::test]
    async fn writers_take_turns_in_the_order_they_asked() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Arc::new(kept_writer(&dir).await);
        let first = writer.acquire().await.expect("acquire");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let waiting: Vec<_> = (0..3)
            .map(|i| {
                let (writer, order) = (writer.clone(), order.clone());
                actix_rt::spawn(async move {
                    let _conn = writer.acquire().await.expect("acquire");
                    order.lock().unwrap().push(i);
                    actix_rt::task::yield_now().await;
                })
            })
            .collect();
        // Let each waiter ask in turn while the first holds the connection.
        for _ in 0..3 {
            actix_rt::task::yield_now().await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody writes while it is held"
        );
        drop(first);
        for task in waiting {
            task.await.expect("waiter");
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    }

    /// A connection that is gone (its worker died, or it could not be opened again) is opened
    /// again by the next write.
    #[actix_rt::test]
    async fn a_lost_connection_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let writer = kept_writer(&dir).await;
        let Writer::Kept { slot, .. } = &writer else {
            panic!("a file store keeps its writer");
        };
        let lost = slot.lock().await.conn.take().expect("open");
        lost.close().await.expect("close");
        assert_eq!(
            count(&writer).await,
            0,
            "the table is read through a new connection"
        );
        assert!(slot.lock().await.conn.is_some());
    }
}
