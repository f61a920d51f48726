//! What a failed statement means, decided here once for both backends: callers act on an
//! [`ErrorKind`] (answer 503, run the request again, step a batch back) and never read a
//! SQLSTATE or a SQLite result code themselves.

use std::borrow::Cow;

use rusqlite::ffi;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use crate::sqlite::SqliteFailure;

/// The kind of a database failure, in the terms its callers decide by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A unique or primary-key constraint refused the row: the thing exists already.
    UniqueViolation,
    /// PostgreSQL aborted the transaction because it lost a race with another one (a
    /// serialization failure or a deadlock). Nothing of it committed; running it again is
    /// the fix.
    LostRace,
    /// PostgreSQL: a lock was not granted within the transaction's `lock_timeout`, which the
    /// bus's workers set to step back from a likely deadlock early.
    LockTimeout,
    /// The database is busy: SQLite's file is locked by another connection, or no pooled
    /// connection came free within the acquire timeout.
    Busy,
    /// The database has no room to write (the disk, or SQLite's `max_page_count`). Nothing was
    /// written; writes succeed again once space is freed.
    DiskFull,
    /// The connection failed: the network, a broken exchange with the server, the driver's
    /// worker, or a connection exception reported by PostgreSQL.
    ConnectionLost,
    /// PostgreSQL is shutting down, has crashed or is still starting: a restart under way.
    ServerRestarting,
    /// PostgreSQL ended the transaction because this client kept it waiting past the idle
    /// timeout (it was paused or cut off): nothing of it committed.
    TransactionEndedByServer,
    /// The pools are closed: the database handle is shutting down.
    Closed,
    /// Anything else: another constraint, a malformed statement, a value that does not decode.
    Other,
}

impl ErrorKind {
    /// The kind of `error`, whichever backend (or SQLite connection of this crate) raised it.
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(database) => Self::of_database(database.as_ref()),
            sqlx::Error::PoolTimedOut => Self::Busy,
            sqlx::Error::PoolClosed => Self::Closed,
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
                Self::ConnectionLost
            }
            _ => Self::Other,
        }
    }

    /// A stable snake-case name, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::UniqueViolation => "unique_violation",
            Self::LostRace => "lost_race",
            Self::LockTimeout => "lock_timeout",
            Self::Busy => "busy",
            Self::DiskFull => "disk_full",
            Self::ConnectionLost => "connection_lost",
            Self::ServerRestarting => "server_restarting",
            Self::TransactionEndedByServer => "transaction_ended_by_server",
            Self::Closed => "closed",
            Self::Other => "other",
        }
    }

    /// An error of this kind, for tests outside this crate that check how a kind is handled
    /// without spelling a backend's code.
    #[doc(hidden)]
    pub fn simulated(self) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Simulated(self)))
    }

    fn of_database(error: &dyn DatabaseError) -> Self {
        if let Some(simulated) = error.try_downcast_ref::<Simulated>() {
            return simulated.0;
        }
        if let Some(postgres) = error.try_downcast_ref::<PgDatabaseError>() {
            return postgres_kind(postgres.code());
        }
        if let Some(failure) = error.try_downcast_ref::<SqliteFailure>() {
            return sqlite_kind(failure.code());
        }
        if error.try_downcast_ref::<SqliteError>().is_some() {
            let code = error.code().and_then(|code| code.parse().ok());
            return code.map_or(Self::Other, sqlite_kind);
        }
        Self::Other
    }
}

/// PostgreSQL's SQLSTATE codes (appendix A of its manual) by kind.
fn postgres_kind(sqlstate: &str) -> ErrorKind {
    match sqlstate {
        "23505" => ErrorKind::UniqueViolation,
        // serialization_failure, deadlock_detected
        "40001" | "40P01" => ErrorKind::LostRace,
        // lock_not_available
        "55P03" => ErrorKind::LockTimeout,
        // disk_full
        "53100" => ErrorKind::DiskFull,
        // admin_shutdown, crash_shutdown, cannot_connect_now
        "57P01" | "57P02" | "57P03" => ErrorKind::ServerRestarting,
        // idle_in_transaction_session_timeout
        "25P03" => ErrorKind::TransactionEndedByServer,
        // class 08: connection exception
        code if code.starts_with("08") => ErrorKind::ConnectionLost,
        _ => ErrorKind::Other,
    }
}

/// SQLite's extended result codes by kind.
fn sqlite_kind(code: i32) -> ErrorKind {
    match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            ErrorKind::UniqueViolation
        }
        ffi::SQLITE_FULL => ErrorKind::DiskFull,
        ffi::SQLITE_BUSY
        | ffi::SQLITE_BUSY_RECOVERY
        | ffi::SQLITE_BUSY_SNAPSHOT
        | ffi::SQLITE_LOCKED
        | ffi::SQLITE_LOCKED_SHAREDCACHE => ErrorKind::Busy,
        _ => ErrorKind::Other,
    }
}

/// The database error [`ErrorKind::simulated`] makes: of its kind, and of no backend.
#[derive(Debug)]
struct Simulated(ErrorKind);

impl std::fmt::Display for Simulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated database failure: {:?}", self.0)
    }
}

impl std::error::Error for Simulated {}

impl DatabaseError for Simulated {
    fn message(&self) -> &str {
        "simulated database failure"
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.0 {
            ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Db, DbOptions};

    #[test]
    fn failures_without_a_database_answer_are_sorted_by_what_went_wrong() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            ErrorKind::of(&sqlx::Error::Io(io)),
            ErrorKind::ConnectionLost
        );
        assert_eq!(ErrorKind::of(&sqlx::Error::PoolTimedOut), ErrorKind::Busy);
        assert_eq!(ErrorKind::of(&sqlx::Error::PoolClosed), ErrorKind::Closed);
        assert_eq!(ErrorKind::of(&sqlx::Error::RowNotFound), ErrorKind::Other);
    }

    #[test]
    fn a_simulated_error_is_of_its_kind() {
        for kind in [ErrorKind::LostRace, ErrorKind::DiskFull, ErrorKind::Other] {
            assert_eq!(ErrorKind::of(&kind.simulated()), kind);
        }
        let duplicate = ErrorKind::UniqueViolation.simulated();
        assert!(matches!(duplicate, sqlx::Error::Database(ref e) if e.is_unique_violation()));
    }

    #[test]
    fn sqlite_codes_are_sorted_by_kind() {
        assert_eq!(sqlite_kind(13), ErrorKind::DiskFull);
        for busy in [5, 6, 261, 262, 517] {
            assert_eq!(sqlite_kind(busy), ErrorKind::Busy, "{busy}");
        }
        assert_eq!(sqlite_kind(2067), ErrorKind::UniqueViolation);
        assert_eq!(sqlite_kind(1555), ErrorKind::UniqueViolation);
        assert_eq!(sqlite_kind(275), ErrorKind::Other, "a check constraint");
    }

    async fn sqlite_db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}", dir.path().join("kinds.db").display());
        let db = Db::connect(&DbOptions::new(url)).await.expect("opens");
        db.execute(sqlx::query(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))",
        ))
        .await
        .expect("creates");
        db
    }

    /// The write connection reports SQLite's extended result codes as sqlx's SQLite driver
    /// does, and both are sorted alike.
    #[tokio::test]
    async fn the_writer_and_the_readers_report_a_duplicate_alike() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = sqlite_db(&dir).await;
        let insert = |id: i64, n: Option<i64>| {
            sqlx::query("INSERT INTO t (id, n) VALUES ($1, $2)")
                .bind(id)
                .bind(n)
        };
        let mut tx = db.begin().await.expect("begins");
        insert(1, Some(1)).execute(&mut *tx).await.expect("inserts");
        let code = |error: &sqlx::Error| {
            let code = error.as_database_error().and_then(|e| e.code());
            code.map(|code| code.into_owned())
        };
        let duplicate = insert(1, Some(2)).execute(&mut *tx).await.unwrap_err();
        let negative = insert(2, Some(-1)).execute(&mut *tx).await.unwrap_err();
        let null = insert(3, None).execute(&mut *tx).await.unwrap_err();
        assert_eq!(code(&duplicate).as_deref(), Some("1555"), "primary key");
        assert_eq!(code(&negative).as_deref(), Some("275"));
        assert_eq!(code(&null).as_deref(), Some("1299"));
        assert_eq!(ErrorKind::of(&duplicate), ErrorKind::UniqueViolation);
        assert_eq!(ErrorKind::of(&negative), ErrorKind::Other);
        tx.commit().await.expect("commits");

        let mut reader = db.read().await.expect("a reader");
        let again = insert(1, Some(3)).execute(&mut reader).await.unwrap_err();
        assert_eq!(code(&again).as_deref(), Some("1555"), "sqlx's own driver");
        assert_eq!(ErrorKind::of(&again), ErrorKind::UniqueViolation);
        drop(reader);
        db.close().await;
    }

    /// Every SQLSTATE the service acts on, raised by a real server.
    #[tokio::test]
    async fn postgres_errors_are_sorted_by_their_sqlstate() {
        let Some(backend) = testkit::Backend::postgres() else {
            return;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Db::connect(&DbOptions::new(backend.fresh_url(dir.path()).await))
            .await
            .expect("opens");
        assert_eq!(db.backend(), Backend::Postgres);
        let expected = [
            ("23505", ErrorKind::UniqueViolation),
            ("40001", ErrorKind::LostRace),
            ("40P01", ErrorKind::LostRace),
            ("55P03", ErrorKind::LockTimeout),
            ("53100", ErrorKind::DiskFull),
            ("08006", ErrorKind::ConnectionLost),
            ("57P01", ErrorKind::ServerRestarting),
            ("57P03", ErrorKind::ServerRestarting),
            ("25P03", ErrorKind::TransactionEndedByServer),
            ("23503", ErrorKind::Other),
        ];
        for (sqlstate, kind) in expected {
            let raise = format!(
                "DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$"
            );
            let error = db
                .execute(sqlx::query(sqlx::AssertSqlSafe(raise)))
                .await
                .expect_err("raised");
            assert_eq!(ErrorKind::of(&error), kind, "{sqlstate}");
        }
        db.close().await;
    }
}
