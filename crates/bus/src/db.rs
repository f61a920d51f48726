//! The storage seam: one [`Db`] value chosen at start-up from a URL, so that the bus, the saga
//! engine and the service write portable SQL and never name a backend in their signatures.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::Timestamp;

/// Which database engine a [`Db`] talks to; the few statements that differ branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, one writer at a time.
    Sqlite,
}

/// How hard SQLite works to keep an acknowledged commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: survives power loss (the default).
    #[default]
    Full,
    /// WAL commits are fsynced only at checkpoints: survives a process crash, but a power loss
    /// may drop the last commits. Several times faster for small transactions.
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
    /// `sqlite://path.db` (created if missing).
    pub url: String,
    /// SQLite durability of a commit.
    pub synchronous: Synchronous,
    /// Connections used for reads; writes always go through one connection on SQLite.
    pub read_connections: u32,
    /// How long a statement waits for a lock before it fails with "database is busy".
    pub busy_timeout: Duration,
    /// How long a caller waits for a free connection before it gets an error.
    pub acquire_timeout: Duration,
}

impl DbOptions {
    /// Defaults for `url`: `synchronous=FULL`, 4 readers, 5 s busy timeout, 30 s acquire timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            synchronous: Synchronous::Full,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors opening or preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no backend this build supports.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH")]
    UnsupportedUrl(String),
    /// The database refused the connection or a statement.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Handle to the application's database: cheap to clone, shared by HTTP handlers and workers.
///
/// On SQLite writes go through a single connection so that writers queue in the pool instead
/// of spinning on the file lock, and every write transaction starts with `BEGIN IMMEDIATE`
/// so a read-then-write transaction can never fail to upgrade its lock.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
    write: AnyPool,
    read: AnyPool,
}

impl Db {
    /// Opens the database named by `options.url`, creating a SQLite file if it is missing.
    pub async fn connect(options: &DbOptions) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(&options.url)?;
        let url = sqlite_url_with_create(&options.url);
        let connect = AnyConnectOptions::from_str(&url)?;
        let pragmas = sqlite_pragmas(options);
        let write = pool_options(1, options, pragmas.clone())
            .connect_with(connect.clone())
            .await?;
        let read = pool_options(options.read_connections.max(1), options, pragmas)
            .connect_with(connect)
            .await?;
        Ok(Self {
            backend,
            write,
            read,
        })
    }

    /// The backend chosen at start-up.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// The pool for reads that need no transaction; they never wait behind the writer.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// The pool that write transactions come from.
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Runs a migration set (one per crate), leaving the other crates' migrations alone.
    pub async fn migrate(&self, mut migrator: sqlx::migrate::Migrator) -> Result<(), DbError> {
        migrator.set_ignore_missing(true);
        migrator.run(&self.write).await?;
        Ok(())
    }

    /// The time by which due messages and deadlines are judged. On SQLite the process clock
    /// is the database host's clock.
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    /// Closes every connection; pending statements finish first.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        Err(DbError::UnsupportedUrl(url.to_owned()))
    }
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
         PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
        options.busy_timeout.as_millis()
    )
}

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
