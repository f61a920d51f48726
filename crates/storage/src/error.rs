//! The errors of opening a database: what an operator reads when the service cannot start.
//!
//! They live below both the opening (`db.rs`) and the first contact with PostgreSQL
//! (`reach.rs`), which build them, so that neither file imports the other for them.

use std::time::Duration;

/// Errors opening or preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no backend this build supports (the URL is shown without its password).
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A SQLite database in memory: each connection would get a database of its own, so the
    /// writer's rows would never reach the readers.
    #[error(
        "SQLite database URL {0:?} is in memory: the writer and the readers need one file; \
         use sqlite://PATH (a temporary directory for throwaway data)"
    )]
    InMemory(String),
    /// The first connection to PostgreSQL failed: where, and why (never the URL's password).
    #[error("cannot connect to PostgreSQL at {server}: {cause}")]
    Connect {
        /// `host:port` (or the Unix socket's folder) the URL names.
        server: String,
        /// What went wrong: the network, TLS, the server's answer, or no answer in time.
        cause: ConnectCause,
    },
    /// The database refused the connection or a statement.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The writer's thread could not be started.
    #[error("cannot start the database writer thread: {0}")]
    WriterThread(#[from] std::io::Error),
}

/// Why the first connection to PostgreSQL failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCause {
    /// Nothing answered in time: a firewall dropping packets, a wrong address, a stalled server.
    #[error("no answer within {}", seconds(*.0))]
    TimedOut(Duration),
    /// The network refused or lost the connection (`connection refused`: nothing listens there).
    #[error("{0}")]
    Network(String),
    /// TLS could not be set up as the URL's `sslmode` asks (no TLS on the server, a
    /// certificate that does not verify, a certificate file that cannot be read).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The server answered but would not let us in (authentication, a missing database).
    #[error("the server refused: {0}")]
    Refused(String),
    /// Something answered, but not in PostgreSQL's protocol (a wrong port, a proxy).
    #[error("what answered does not speak PostgreSQL's protocol: {0}")]
    NotPostgres(String),
    /// The URL's settings cannot be used as given.
    #[error("invalid connection settings: {0}")]
    Settings(String),
}

fn seconds(limit: Duration) -> String {
    format!("{} s", limit.as_secs_f64())
}
