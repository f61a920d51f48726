//! The connections that read outside write transactions.
//!
//! On PostgreSQL they are the shared sqlx pool. On SQLite they are a few connections driven in
//! place, like the writer (`crate::sqlite`): a read runs on the thread of the task that asks,
//! instead of being handed to a connection thread of sqlx's and its rows handed back, a
//! crossing that cost more than SQLite's own work on the small reads of a request (see
//! `docs/benchmarks.md`). A read holds its connection only while SQLite runs it, so a few
//! connections serve every runtime thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyPool, Either, Execute, Executor, SqlStr};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::conn::Conn;
use crate::sqlite::{SqliteConn, Step};

/// Where reads that need no transaction go: [`crate::Db::reader`]. Statements run on it as on
/// an sqlx pool (`query.fetch_one(db.reader())`); [`Readers::acquire`] keeps one connection
/// for several statements.
#[derive(Debug, Clone)]
pub struct Readers {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Pool(AnyPool),
    Sqlite(Arc<SqliteReaders>),
}

/// SQLite's readers: each `None` once closed.
#[derive(Debug)]
pub(crate) struct SqliteReaders {
    conns: Vec<Arc<Mutex<Option<SqliteConn>>>>,
    /// Where the next wait for a busy connection queues, so waits spread over them.
    next: AtomicUsize,
    acquire_timeout: Duration,
}

/// A SQLite reader held by one caller.
pub(crate) type HeldReader = OwnedMutexGuard<Option<SqliteConn>>;

impl Readers {
    pub(crate) fn of_pool(pool: AnyPool) -> Self {
        Self {
            source: Source::Pool(pool),
        }
    }

    pub(crate) fn of_sqlite(conns: Vec<SqliteConn>, acquire_timeout: Duration) -> Self {
        Self {
            source: Source::Sqlite(Arc::new(SqliteReaders {
                conns: conns
                    .into_iter()
                    .map(|conn| Arc::new(Mutex::new(Some(conn))))
                    .collect(),
                next: AtomicUsize::new(0),
                acquire_timeout,
            })),
        }
    }

    /// The sqlx pool behind them (PostgreSQL), for what needs sqlx's own connections.
    pub(crate) fn pool(&self) -> Option<&AnyPool> {
        match &self.source {
            Source::Pool(pool) => Some(pool),
            Source::Sqlite(_) => None,
        }
    }

    /// One connection for several statements (a consistent set of reads on PostgreSQL needs a
    /// transaction all the same). It waits at most the acquire timeout for a free one.
    pub async fn acquire(&self) -> Result<Conn<'static>, sqlx::Error> {
        match &self.source {
            Source::Pool(pool) => Ok(Conn::from(pool.acquire().await?)),
            Source::Sqlite(readers) => Ok(Conn::sqlite_reader(readers.hold().await?)),
        }
    }

    /// How many connections are open.
    pub fn size(&self) -> u32 {
        match &self.source {
            Source::Pool(pool) => pool.size(),
            Source::Sqlite(readers) => readers.conns.len() as u32,
        }
    }

    /// How many open connections nobody holds at this instant.
    pub fn idle(&self) -> usize {
        match &self.source {
            Source::Pool(pool) => pool.num_idle(),
            Source::Sqlite(readers) => readers
                .conns
                .iter()
                .filter(|conn| conn.try_lock().is_ok())
                .count(),
        }
    }

    /// Closes every connection; reads still running finish first.
    pub(crate) async fn close(&self) {
        match &self.source {
            Source::Pool(pool) => pool.close().await,
            Source::Sqlite(readers) => {
                for conn in &readers.conns {
                    conn.lock().await.take();
                }
            }
        }
    }
}

impl SqliteReaders {
    /// A free reader at once if there is one, else the first of one queue to come free.
    async fn hold(&self) -> Result<HeldReader, sqlx::Error> {
        let held = match self.free() {
            Some(held) => held,
            None => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                let waiting = Arc::clone(&self.conns[turn]).lock_owned();
                tokio::time::timeout(self.acquire_timeout, waiting)
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
            }
        };
        if held.is_none() {
            return Err(sqlx::Error::PoolClosed);
        }
        Ok(held)
    }

    fn free(&self) -> Option<HeldReader> {
        self.conns
            .iter()
            .find_map(|conn| Arc::clone(conn).try_lock_owned().ok())
    }

    /// Runs one statement on a reader, in place once one is held.
    async fn run(&self, statement: Taken, first_row_only: bool) -> Result<Vec<Step>, sqlx::Error> {
        let mut held = self.hold().await?;
        statement.run(
            held.as_mut().ok_or(sqlx::Error::PoolClosed)?,
            first_row_only,
        )
    }
}

/// A statement's text and values, taken from sqlx's query so that it can wait for a reader.
pub(crate) struct Taken {
    sql: SqlStr,
    arguments: Option<AnyArguments>,
    persistent: bool,
}

impl Taken {
    pub(crate) fn from<'q>(mut query: impl Execute<'q, Any>) -> Result<Self, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent();
        Ok(Self {
            sql: query.sql(),
            arguments,
            persistent,
        })
    }

    pub(crate) fn run(
        self,
        conn: &mut SqliteConn,
        first_row_only: bool,
    ) -> Result<Vec<Step>, sqlx::Error> {
        conn.run(
            self.sql.as_str(),
            self.arguments,
            self.persistent,
            first_row_only,
        )
    }
}

/// The steps of a statement run in place, as the stream sqlx's executors return.
pub(crate) fn into_stream<'e>(
    steps: Result<Vec<Step>, sqlx::Error>,
) -> BoxStream<'e, Result<Step, sqlx::Error>> {
    match steps {
        Ok(steps) => stream::iter(steps.into_iter().map(Ok)).boxed(),
        Err(error) => stream::once(std::future::ready(Err(error))).boxed(),
    }
}

/// The first row among a statement's steps, if any.
pub(crate) fn first_row(
    steps: Result<Vec<Step>, sqlx::Error>,
) -> Result<Option<AnyRow>, sqlx::Error> {
    Ok(steps?.into_iter().find_map(|step| match step {
        Either::Right(row) => Some(row),
        Either::Left(_) => None,
    }))
}

/// A result already known, as the boxed future sqlx's executors return.
pub(crate) fn ready<'e, T: Send + 'e>(value: T) -> BoxFuture<'e, T> {
    std::future::ready(value).boxed()
}

/// SQLite's readers cache their statements themselves; explicit preparation is not offered.
pub(crate) fn not_offered(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "{what} is not offered on SQLite's in-place connections; run the statement instead"
    ))
}

impl<'p> Executor<'p> for &'p Readers {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.source {
            Source::Pool(pool) => pool.fetch_many(query),
            Source::Sqlite(readers) => match Taken::from(query) {
                Ok(statement) => stream::once(readers.run(statement, false))
                    .flat_map(into_stream)
                    .boxed(),
                Err(error) => into_stream(Err(error)),
            },
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.source {
            Source::Pool(pool) => pool.fetch_optional(query),
            Source::Sqlite(readers) => match Taken::from(query) {
                Ok(statement) => readers.run(statement, true).map(first_row).boxed(),
                Err(error) => ready(Err(error)),
            },
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        match &self.source {
            Source::Pool(pool) => pool.prepare_with(sql, parameters),
            Source::Sqlite(_) => ready(Err(not_offered("prepare"))),
        }
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        match &self.source {
            Source::Pool(pool) => pool.describe(sql),
            Source::Sqlite(_) => ready(Err(not_offered("describe"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Db, DbOptions};

    async fn sqlite_with_one_reader(dir: &tempfile::TempDir, acquire: Duration) -> Db {
        let url = format!("sqlite://{}", dir.path().join("readers.db").display());
        let mut options = DbOptions::new(url);
        options.read_connections = 1;
        options.acquire_timeout = acquire;
        Db::connect(&options).await.expect("opens")
    }

    #[tokio::test]
    async fn a_read_waits_for_a_held_reader_and_runs_once_it_is_free() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = sqlite_with_one_reader(&dir, Duration::from_secs(30)).await;
        let held = db.read().await.expect("holds the only reader");
        assert_eq!(db.reader().idle(), 0);
        let reader = db.clone();
        let waiting = tokio::spawn(async move {
            sqlx::query_scalar::<_, i64>("SELECT 7")
                .fetch_one(reader.reader())
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the read waits for the held reader");
        drop(held);
        assert_eq!(waiting.await.expect("joins").expect("reads"), 7);
        assert_eq!(db.reader().idle(), 1);
    }

    #[tokio::test]
    async fn a_read_gives_up_after_the_acquire_timeout_and_fails_once_closed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = sqlite_with_one_reader(&dir, Duration::from_millis(50)).await;
        let held = db.read().await.expect("holds the only reader");
        let timed_out = sqlx::query("SELECT 1").fetch_one(db.reader()).await;
        assert!(matches!(timed_out, Err(sqlx::Error::PoolTimedOut)));
        drop(held);
        db.close().await;
        let closed = sqlx::query("SELECT 1").fetch_one(db.reader()).await;
        assert!(matches!(closed, Err(sqlx::Error::PoolClosed)));
    }

    #[tokio::test]
    async fn rows_read_in_place_decode_as_through_sqlx() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = sqlite_with_one_reader(&dir, Duration::from_secs(30)).await;
        db.execute(sqlx::query(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB)",
        ))
        .await
        .expect("creates");
        db.execute(
            sqlx::query("INSERT INTO t VALUES ($1, $2, $3, $4), (2, NULL, NULL, NULL)")
                .bind(1_i64)
                .bind("pen")
                .bind(1.5_f64)
                .bind(vec![1_u8, 2]),
        )
        .await
        .expect("inserts");
        type Row = (i64, Option<String>, Option<f64>, Option<Vec<u8>>);
        let rows: Vec<Row> =
            sqlx::query_as("SELECT id, name, price, data FROM t WHERE id >= $1 ORDER BY id")
                .bind(1_i64)
                .fetch_all(db.reader())
                .await
                .expect("reads");
        assert_eq!(
            rows,
            [
                (1, Some("pen".into()), Some(1.5), Some(vec![1, 2])),
                (2, None, None, None)
            ]
        );
        let none: Option<(i64,)> = sqlx::query_as("SELECT id FROM t WHERE id = 3")
            .fetch_optional(db.reader())
            .await
            .expect("reads");
        assert_eq!(none, None);
    }
}
