//! The storage seam: one [`Db`] value chosen at start-up from a URL, so that the bus, the saga
//! engine and the service write portable SQL and never name a backend in their signatures.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyQueryResult};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Execute, Executor};
use tokio::sync::Mutex;

use crate::Timestamp;
use crate::checkpoint::Checkpointer;
use crate::conn::{Conn, Transaction};
use crate::error::DbError;
use crate::lane::WriterLane;
use crate::reach;
use crate::readers::Readers;
use crate::sql::POSTGRES_NOW;
use crate::sqlite::SqliteConn;

/// Which database engine a [`Db`] talks to; the few statements that differ branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, one writer at a time.
    Sqlite,
    /// A server shared by several service instances.
    Postgres,
}

/// How hard SQLite works to keep an acknowledged commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: survives power loss (the default).
    #[default]
    Full,
    /// WAL commits are fsynced only at checkpoints: survives a process crash, but a power loss
    /// may drop the last commits. Faster for small transactions.
    Normal,
}

impl FromStr for Synchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(format!(
                "unknown synchronous mode {other:?}: expected full or normal"
            )),
        }
    }
}

/// Connection settings; `DbOptions::new(url)` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite://path.db` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// SQLite durability of a commit.
    pub synchronous: Synchronous,
    /// SQLite: connections used for reads (writes always go through one). A read holds one
    /// only while SQLite runs it, so about one per thread that reads is enough.
    pub read_connections: u32,
    /// How long a statement waits for a lock before it fails with "database is busy".
    pub busy_timeout: Duration,
    /// How long a caller waits for a free connection before it gets an error.
    pub acquire_timeout: Duration,
    /// PostgreSQL: how long opening waits for the server to answer, at each of the network and
    /// the start-up (TLS, authentication), before it fails naming the server and the cause.
    pub connect_timeout: Duration,
    /// PostgreSQL: connections in the pool shared by reads and requests' writes. The bus
    /// workers have a pool of their own, as large at most, opened as they need them (one per
    /// worker).
    pub max_connections: u32,
    /// PostgreSQL: longest a statement may run before the server cancels it, and longest a
    /// transaction may sit waiting for its client before the server ends the session: an
    /// instance that stops mid-transaction (paused, cut off) releases its locks after it, and
    /// finds on resuming that its transaction was rolled back.
    pub statement_timeout: Duration,
    /// PostgreSQL: schemas searched for unqualified table names. `public` comes first so that
    /// bookkeeping tables (sqlx's migration table) always live there.
    pub search_path: Vec<String>,
    /// Bind the writer lane (the bus workers; on SQLite also the grouped request writes, which
    /// drive the write connection) to one CPU, the last the process may use (see
    /// `docs/architecture.md`). Off, the lane still gets a thread of its own but the system
    /// places it. Linux only; ignored elsewhere.
    pub pin_writer: bool,
    /// SQLite: how often a thread of its own copies the write-ahead log into the database file
    /// (see `checkpoint.rs`), so that the writer never does; zero leaves it to the writer, at
    /// every 10,000 pages of log.
    pub checkpoint_every: Duration,
}

impl DbOptions {
    /// Defaults for `url`: `synchronous=FULL`, a reader per CPU (at least 4), 5 s busy timeout,
    /// 30 s acquire timeout, writer pinned to one CPU (on Linux), a checkpoint every 500 ms;
    /// on PostgreSQL 5 s connect
    /// timeout, 10 connections, 30 s statement timeout, search path `public, messaging`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            synchronous: Synchronous::Full,
            read_connections: std::thread::available_parallelism()
                .map_or(4, |cpus| cpus.get() as u32)
                .max(4),
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_connections: 10,
            statement_timeout: Duration::from_secs(30),
            search_path: vec!["public".into(), "messaging".into()],
            pin_writer: true,
            checkpoint_every: Duration::from_millis(500),
        }
    }
}

/// One crate's schema migrations, a set per backend (`sqlx::migrate!("./migrations/sqlite")`
/// and `…/postgres`), for [`Db::migrate`] to pick from.
#[derive(Debug)]
pub struct Migrations {
    /// The set run on SQLite.
    pub sqlite: sqlx::migrate::Migrator,
    /// The set run on PostgreSQL.
    pub postgres: sqlx::migrate::Migrator,
}

/// Handle to the application's database: cheap to clone, shared by HTTP handlers and workers.
///
/// On SQLite writes go through a single connection, driven in place by whoever holds it (see
/// `sqlite.rs`), so that writers queue for it instead of spinning on the file lock, and every
/// write transaction starts with `BEGIN IMMEDIATE` so a read-then-write transaction can never
/// fail to upgrade its lock. On PostgreSQL one pool serves reads and requests' writes, and the
/// bus workers have one of their own on the writer lane; both at READ COMMITTED.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
    /// Shared, like every field: a `Db` is copied into every request's state.
    url: Arc<str>,
    write: Writer,
    read: Readers,
    /// SQLite: the settings every connection gets, for the one-off sqlx connection that runs
    /// migrations; empty on PostgreSQL.
    sqlite_pragmas: Arc<str>,
    acquire_timeout: Duration,
    /// Where the tasks that write run (the bus workers; on SQLite the group-commit writer too).
    lane: Arc<WriterLane>,
    /// SQLite: the checkpoint thread, if one runs.
    checkpointer: Option<Arc<Checkpointer>>,
}

/// Where write transactions come from.
#[derive(Debug, Clone)]
enum Writer {
    /// SQLite's one write connection; `None` once the `Db` is closed.
    Sqlite(Arc<Mutex<Option<SqliteConn>>>),
    /// PostgreSQL's pools: `shared` with the readers, for requests; `on_lane` for transactions
    /// begun on the writer lane, whose connections the lane's own runtime drives.
    Pool { shared: AnyPool, on_lane: AnyPool },
}

impl Db {
    /// Opens the database named by `options.url`, creating a SQLite file if it is missing.
    pub async fn connect(options: &DbOptions) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(&options.url)?;
        if backend == Backend::Postgres {
            // The pool would retry a server it cannot reach until its acquire timeout and then
            // say only that it timed out: one direct attempt first names the server and cause.
            reach::check(&options.url, options.connect_timeout).await?;
            let connect = AnyConnectOptions::from_str(&options.url)?;
            let shared = postgres_pool(options).connect_with(connect.clone()).await?;
            // The lane's pool opens its connections from the lane (lazily, as its workers need
            // them), so their sockets belong to the lane's runtime.
            let lane = WriterLane::start(options.pin_writer).await?;
            let lane_options = options.clone();
            let on_lane = lane
                .spawn(async move { postgres_pool(&lane_options).connect_lazy_with(connect) })
                .await
                .map_err(|_| std::io::Error::other("the writer thread ended while starting"))?;
            return Ok(Self {
                backend,
                url: options.url.as_str().into(),
                write: Writer::Pool {
                    shared: shared.clone(),
                    on_lane,
                },
                read: Readers::of_pool(shared),
                sqlite_pragmas: "".into(),
                acquire_timeout: options.acquire_timeout,
                lane: Arc::new(lane),
                checkpointer: None,
            });
        }
        let url = sqlite_url_with_create(&options.url);
        let pragmas = sqlite_pragmas(options);
        let path = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
            .get_filename()
            .to_owned();
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(DbError::InMemory(options.url.clone()));
        }
        let lane = WriterLane::start(options.pin_writer).await?;
        let open = || SqliteConn::open(&path, &pragmas, options.busy_timeout);
        let writer = open()?;
        let readers = (0..options.read_connections.max(1))
            .map(|_| open())
            .collect::<Result<_, _>>()?;
        let checkpointer = if options.checkpoint_every.is_zero() {
            None
        } else {
            Some(Arc::new(Checkpointer::start(
                open()?,
                options.checkpoint_every,
            )?))
        };
        Ok(Self {
            backend,
            url: options.url.as_str().into(),
            write: Writer::Sqlite(Arc::new(Mutex::new(Some(writer)))),
            read: Readers::of_sqlite(readers, options.acquire_timeout),
            sqlite_pragmas: pragmas.into(),
            acquire_timeout: options.acquire_timeout,
            lane: Arc::new(lane),
            checkpointer,
        })
    }

    /// Runs a task that writes in bulk (the bus's workers) on the writer lane, whose thread
    /// drives its connections without queueing behind request tasks (see
    /// `docs/architecture.md`). The task ends with the runtime that spawned it, as that
    /// runtime's own tasks do, so a forgotten worker cannot keep the lane alive.
    pub fn spawn_writing<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (mut alive, spawner_gone) = tokio::sync::oneshot::channel::<()>();
        // Lives as long as the task does, or until its runtime drops it, which drops `alive`.
        tokio::spawn(async move { alive.closed().await });
        self.lane.spawn(async move {
            tokio::select! {
                () = task => {}
                _ = spawner_gone => {}
            }
        })
    }

    /// The backend chosen at start-up.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite). On SQLite it holds the one
    /// write connection until it ends; a caller waits for it at most the acquire timeout. On
    /// PostgreSQL a task on the writer lane gets a connection of the lane's pool, any other
    /// caller one of the shared pool.
    pub async fn begin(&self) -> Result<Transaction<'static>, sqlx::Error> {
        match &self.write {
            Writer::Sqlite(writer) => {
                let guard = tokio::time::timeout(self.acquire_timeout, writer.clone().lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?;
                Transaction::sqlite(guard)
            }
            Writer::Pool { shared, on_lane } => {
                let pool = if WriterLane::is_current() {
                    on_lane
                } else {
                    shared
                };
                Ok(Transaction::sqlx(pool.begin().await?))
            }
        }
    }

    /// Runs one statement in a write transaction of its own (set-up, tools, tests).
    pub async fn execute<'q, E>(&self, query: E) -> Result<AnyQueryResult, sqlx::Error>
    where
        E: 'q + Execute<'q, Any>,
    {
        let mut tx = self.begin().await?;
        let done = (&mut *tx).execute(query).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A reader held for several statements, as a [`Conn`], for code that also runs inside
    /// write transactions; plain reads can use [`Db::reader`] directly.
    pub async fn read(&self) -> Result<Conn<'static>, sqlx::Error> {
        self.read.acquire().await
    }

    /// The readers, for reads that need no transaction; they never wait behind the writer.
    pub fn reader(&self) -> &Readers {
        &self.read
    }

    /// Runs one crate's migrations for the backend in use, leaving the other crates'
    /// migrations alone: each crate keeps a folder per backend and passes both.
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), DbError> {
        let mut migrator = match self.backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator.set_ignore_missing(true);
        match self.read.pool() {
            Some(pool) => migrator.run(pool).await?,
            None => {
                // sqlx's migrator needs an sqlx connection: a one-off one, which takes the
                // file's write lock like any writer would (waiting up to the busy timeout).
                let url = sqlite_url_with_create(&self.url);
                let mut conn = AnyConnection::connect(&url).await?;
                conn.execute(sqlx::AssertSqlSafe(self.sqlite_pragmas.to_string()))
                    .await?;
                let ran = migrator.run(&mut conn).await;
                conn.close().await?;
                ran?
            }
        }
        Ok(())
    }

    /// True when other processes may write to this database too (a server, PostgreSQL): what
    /// one instance commits must then be told to the others.
    pub fn is_shared(&self) -> bool {
        !self.has_single_writer()
    }

    /// True when every write transaction of the process goes through one connection (SQLite):
    /// concurrent writers then gain from sharing a transaction and its commit. A server
    /// (PostgreSQL) groups concurrent commits itself.
    pub fn has_single_writer(&self) -> bool {
        matches!(self.write, Writer::Sqlite(_))
    }

    /// The process clock, for decisions that need no agreement between instances (display,
    /// pruning cut-offs). Deadlines use [`Db::now_in`].
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    /// The time by which due messages and deadlines are judged: on SQLite the process clock
    /// (the one machine's), on PostgreSQL the server's, so that all instances agree.
    pub async fn now_in(&self, conn: &mut Conn<'_>) -> Result<Timestamp, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => Ok(Timestamp::now()),
            Backend::Postgres => {
                let now: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {POSTGRES_NOW}")))
                        .fetch_one(conn)
                        .await?;
                Ok(Timestamp(now))
            }
        }
    }

    /// The URL the database was opened with (PostgreSQL listeners open their own connection).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every connection; pending statements finish first.
    pub async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop();
        }
        match &self.write {
            Writer::Sqlite(writer) => {
                writer.lock().await.take();
            }
            Writer::Pool { on_lane, .. } => on_lane.close().await,
        }
        self.read.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl(without_password(url)))
    }
}

/// `url` with any password taken out, fit for an error message.
fn without_password(url: &str) -> String {
    match sqlx_core::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

/// A PostgreSQL connection idle at least this long is pinged before it is handed out; a busy
/// one is not, which saves a round trip per transaction under load. A connection cut while in
/// use fails its request with 503, like any other database outage.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// A PostgreSQL pool of `options.max_connections`, each connection set up with the search path
/// and statement timeout, pinged only after sitting idle.
fn postgres_pool(options: &DbOptions) -> AnyPoolOptions {
    pool_options(
        options.max_connections.max(1),
        options,
        postgres_setup(options),
    )
    .test_before_acquire(false)
    .before_acquire(|conn, meta| {
        Box::pin(async move {
            // A connection in steady use has just proved itself; one that sat idle may have
            // been cut (a database restart) and is checked before it is handed out.
            if meta.idle_for >= PING_WHEN_IDLE_FOR {
                sqlx::Connection::ping(conn).await?;
            }
            Ok(true)
        })
    })
}

fn postgres_setup(options: &DbOptions) -> String {
    let schemas: Vec<String> = options
        .search_path
        .iter()
        .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .cloned()
        .collect();
    let timeout = options.statement_timeout.as_millis();
    format!(
        "SET search_path TO {}; SET statement_timeout = {timeout}; \
         SET idle_in_transaction_session_timeout = {timeout};",
        schemas.join(", "),
    )
}

/// sqlx opens SQLite files read-write but does not create them unless asked to.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn sqlite_pragmas(options: &DbOptions) -> String {
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {WAL_PAGES_BEFORE_CHECKPOINT};",
        options.busy_timeout.as_millis()
    )
}

/// Pages the write-ahead log grows to before a commit copies them into the database file
/// (SQLite's default is 1,000): a backstop, since the checkpoint thread copies the log far more
/// often (see `checkpoint.rs`). A checkpoint writes each page once however often the log holds
/// it, and syncs the file: the hot pages of a busy shop (the tails of the orders, the queue,
/// the timeline, their indexes) are in nearly every commit, so fewer checkpoints write fewer
/// pages. The log file grows to about 40 MB at most.
const WAL_PAGES_BEFORE_CHECKPOINT: u32 = 10_000;

fn pool_options(size: u32, options: &DbOptions, pragmas: String) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _meta| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn an_unsupported_url_is_shown_without_its_password() {
        let error = backend_of("mysql://shop:hunter2@db/shop")
            .expect_err("no MySQL backend")
            .to_string();
        assert!(error.contains("\"mysql://shop@db/shop\""), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}

/// The tests check where the writer lane runs through CPU affinity, which only Linux exposes.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::thread::sched_getaffinity;

    /// The names of this process's threads.
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("threads listed")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .collect()
    }

    /// Checks that `db`'s lane is bound to one CPU and that a write transaction spawned there
    /// runs on it; false (nothing checked) when the process may use only one CPU.
    async fn writes_run_on_a_bound_lane(db: &Db) -> bool {
        let allowed = sched_getaffinity(None).expect("affinity readable");
        let Some(cpu) = db.lane.cpu() else {
            assert!(allowed.count() < 2, "with several CPUs the lane is bound");
            return false;
        };
        let writer = db.clone();
        let (seen, heard) = tokio::sync::oneshot::channel();
        db.spawn_writing(async move {
            let mut tx = writer.begin().await.expect("begins");
            let one: i64 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut *tx)
                .await
                .expect("runs");
            tx.commit().await.expect("commits");
            let thread = std::thread::current().name().map(str::to_owned);
            let _ = seen.send((thread, sched_getaffinity(None).expect("affinity"), one));
        });
        let (thread, affinity, one) = heard.await.expect("the lane runs the task");
        assert_eq!(one, 1);
        assert_eq!(thread.as_deref(), Some("bus-writer"));
        assert_eq!(affinity.count(), 1, "the lane is bound to one CPU");
        assert!(affinity.is_set(cpu));
        true
    }

    #[tokio::test]
    async fn writes_run_on_the_lanes_thread_and_reads_on_the_callers() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("lane.db").display());
        let db = Db::connect(&DbOptions::new(url)).await.expect("opens");
        if !writes_run_on_a_bound_lane(&db).await {
            return;
        }
        let allowed = sched_getaffinity(None).expect("affinity readable");
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(db.reader())
            .await
            .expect("reads");
        assert_eq!(one, 1);
        let names = thread_names();
        assert!(
            !names.iter().any(|name| name.starts_with("sqlx-sqlite")),
            "reads run in place, with no connection thread to hand them to: {names:?}"
        );
        assert_eq!(
            sched_getaffinity(None).expect("affinity").count(),
            allowed.count(),
            "the reading thread stays free"
        );
        db.close().await;
    }

    #[tokio::test]
    async fn every_sqlite_connection_is_durable_and_checkpoints_every_ten_thousand_pages() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("pragmas.db").display());
        let db = Db::connect(&DbOptions::new(url)).await.expect("opens");
        let mut reader = db.read().await.expect("a reader");
        let read = settings(&mut reader).await;
        drop(reader);
        let mut tx = db.begin().await.expect("begins");
        let written = settings(&mut tx).await;
        tx.rollback().await.expect("rolls back");
        // 2 is FULL.
        assert_eq!(read, (2, 10_000), "a reader");
        assert_eq!(written, (2, 10_000), "the writer");
        db.close().await;
    }

    #[tokio::test]
    async fn the_checkpoint_thread_copies_the_log_into_the_database_file() {
        let file_after_writing = |every: Duration, wait: Duration| async move {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("checkpoint.db");
            let mut options = DbOptions::new(format!("sqlite://{}", path.display()));
            options.checkpoint_every = every;
            let db = Db::connect(&options).await.expect("opens");
            db.execute(sqlx::query("CREATE TABLE blobs (body BLOB)"))
                .await
                .expect("creates");
            // About 500 pages: far below the writer's own checkpoint at 10,000.
            db.execute(sqlx::query("INSERT INTO blobs SELECT randomblob(2000000)"))
                .await
                .expect("writes");
            let deadline = std::time::Instant::now() + wait;
            let mut size = 0;
            while std::time::Instant::now() < deadline {
                size = std::fs::metadata(&path).expect("the file").len();
                if size >= 2_000_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            db.close().await;
            size
        };
        let with = file_after_writing(Duration::from_millis(50), Duration::from_secs(10)).await;
        assert!(with >= 2_000_000, "the thread copied the log into the file");
        // Without the thread nothing copies 500 pages until the last connection closes.
        let without = file_after_writing(Duration::ZERO, Duration::from_secs(1)).await;
        assert!(
            without < 2_000_000,
            "the database file grew to {without} bytes"
        );
    }

    /// The connection's `synchronous` and `wal_autocheckpoint`.
    async fn settings(conn: &mut Conn<'_>) -> (i64, i64) {
        let synchronous = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("reads");
        let pages = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *conn)
            .await
            .expect("reads");
        (synchronous, pages)
    }

    /// PostgreSQL workers' lane is bound to one CPU too; the caller's thread stays free.
    #[tokio::test]
    async fn postgres_lane_transactions_run_on_a_bound_thread() {
        let Some(backend) = testkit::Backend::postgres() else {
            return;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Db::connect(&DbOptions::new(backend.fresh_url(dir.path()).await))
            .await
            .expect("opens");
        let allowed = sched_getaffinity(None).expect("affinity readable");
        writes_run_on_a_bound_lane(&db).await;
        assert_eq!(
            sched_getaffinity(None).expect("affinity").count(),
            allowed.count()
        );
        db.close().await;
    }
}
