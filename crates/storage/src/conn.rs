//! The connections a [`crate::Db`] hands out: one type for the SQLite writer (driven in place,
//! see [`crate::sqlite`]), PostgreSQL transactions, and readers (SQLite's in place, PostgreSQL's
//! pooled), so that code taking a connection runs the same statements on all of them.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Either, Execute, Executor, SqlStr};
use tokio::sync::OwnedMutexGuard;

use crate::Backend;
use crate::readers::{HeldReader, Taken, first_row, into_stream, not_offered, ready};
use crate::sqlite::{SqliteConn, Step};

/// A database connection: a write transaction's ([`crate::Db::begin`], or the bus's `Tx` around it) or a
/// reader's ([`crate::Db::read`]). Statements run on it as on any sqlx connection:
/// `query.execute(&mut *conn)`.
pub struct Conn<'c> {
    kind: Kind<'c>,
}

enum Kind<'c> {
    /// SQLite's one write connection, in a transaction or one of its savepoints.
    Sqlite(SqliteTx<'c>),
    /// A PostgreSQL transaction or savepoint.
    Sqlx(sqlx::Transaction<'c, Any>),
    /// A pooled connection outside any transaction.
    Reader(PoolConnection<Any>),
    /// One of SQLite's readers, driven in place (see `crate::readers`).
    SqliteReader(HeldReader),
}

impl std::fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Sqlite(tx) if tx.depth == 0 => "sqlite write transaction",
            Kind::Sqlite(_) => "sqlite savepoint",
            Kind::Sqlx(_) => "sqlx transaction",
            Kind::Reader(_) | Kind::SqliteReader(_) => "reader",
        };
        f.debug_struct("Conn").field("kind", &kind).finish()
    }
}

impl Conn<'_> {
    /// The backend behind this connection, for the few statements that differ.
    pub fn backend(&self) -> Backend {
        let name = match &self.kind {
            Kind::Sqlite(_) | Kind::SqliteReader(_) => return Backend::Sqlite,
            Kind::Sqlx(tx) => tx.backend_name(),
            Kind::Reader(conn) => conn.backend_name(),
        };
        if name == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// A connection from a reader pool ([`crate::Db::reader`]), for code that takes a [`Conn`].
impl From<PoolConnection<Any>> for Conn<'static> {
    fn from(conn: PoolConnection<Any>) -> Self {
        Conn {
            kind: Kind::Reader(conn),
        }
    }
}

impl Conn<'static> {
    /// One of SQLite's in-place readers, held until the connection is dropped.
    pub(crate) fn sqlite_reader(held: HeldReader) -> Self {
        Conn {
            kind: Kind::SqliteReader(held),
        }
    }
}

/// A write transaction (or a savepoint of one): a [`Conn`] that commits or rolls back, and
/// rolls back when dropped uncommitted.
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: Conn<'c>,
}

impl<'c> std::ops::Deref for Transaction<'c> {
    type Target = Conn<'c>;

    fn deref(&self) -> &Conn<'c> {
        &self.conn
    }
}

impl<'c> std::ops::DerefMut for Transaction<'c> {
    fn deref_mut(&mut self) -> &mut Conn<'c> {
        &mut self.conn
    }
}

impl Transaction<'static> {
    /// Begins on the SQLite writer held by `guard` (checked to be open).
    pub(crate) fn sqlite(
        mut guard: OwnedMutexGuard<Option<SqliteConn>>,
    ) -> Result<Self, sqlx::Error> {
        let writer = guard.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        if !writer.is_autocommit() {
            // A rollback that failed earlier left a transaction open: end it first.
            writer.control("ROLLBACK")?;
        }
        writer.control("BEGIN IMMEDIATE")?;
        Ok(Self::of(Kind::Sqlite(SqliteTx {
            writer: Held::Owned(guard),
            depth: 0,
            open: true,
        })))
    }

    pub(crate) fn sqlx(tx: sqlx::Transaction<'static, Any>) -> Self {
        Self::of(Kind::Sqlx(tx))
    }
}

impl<'c> Transaction<'c> {
    fn of(kind: Kind<'c>) -> Self {
        Self {
            conn: Conn { kind },
        }
    }

    /// Makes the writes durable (a savepoint's: part of the enclosing transaction).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.conn.kind {
            Kind::Sqlite(mut tx) => tx.commit(),
            Kind::Sqlx(tx) => tx.commit().await,
            Kind::Reader(_) | Kind::SqliteReader(_) => Ok(()),
        }
    }

    /// Undoes the writes (a savepoint's only).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.conn.kind {
            Kind::Sqlite(mut tx) => tx.rollback(),
            Kind::Sqlx(tx) => tx.rollback().await,
            Kind::Reader(_) | Kind::SqliteReader(_) => Ok(()),
        }
    }

    /// A savepoint: writes that can be undone without undoing the rest of this transaction.
    pub async fn savepoint(&mut self) -> Result<Transaction<'_>, sqlx::Error> {
        let kind = match &mut self.conn.kind {
            Kind::Sqlite(tx) => Kind::Sqlite(tx.savepoint()?),
            Kind::Sqlx(tx) => Kind::Sqlx(sqlx::Connection::begin(&mut **tx).await?),
            Kind::Reader(_) | Kind::SqliteReader(_) => {
                return Err(sqlx::Error::Protocol(
                    "a savepoint needs a transaction".into(),
                ));
            }
        };
        Ok(Transaction::of(kind))
    }
}

/// SQLite's writer in a transaction (`depth` 0) or in its `depth`-th nested savepoint.
struct SqliteTx<'c> {
    writer: Held<'c>,
    depth: usize,
    /// Not yet committed or rolled back: dropping it rolls back.
    open: bool,
}

/// The transaction owns the writer's lock; its savepoints borrow the writer from it.
enum Held<'c> {
    Owned(OwnedMutexGuard<Option<SqliteConn>>),
    Borrowed(&'c mut SqliteConn),
}

impl SqliteTx<'_> {
    fn writer(&mut self) -> &mut SqliteConn {
        match &mut self.writer {
            Held::Owned(guard) => guard
                .as_mut()
                .expect("the writer is checked to be open when the transaction begins"),
            Held::Borrowed(writer) => writer,
        }
    }

    fn savepoint(&mut self) -> Result<SqliteTx<'_>, sqlx::Error> {
        let depth = self.depth + 1;
        let writer = self.writer();
        writer.control(&format!("SAVEPOINT bus_{depth}"))?;
        Ok(SqliteTx {
            writer: Held::Borrowed(writer),
            depth,
            open: true,
        })
    }

    /// `COMMIT` the transaction or `RELEASE` the savepoint.
    fn commit(&mut self) -> Result<(), sqlx::Error> {
        let sql = match self.depth {
            0 => "COMMIT".to_owned(),
            depth => format!("RELEASE bus_{depth}"),
        };
        self.writer().control(&sql)?;
        self.open = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), sqlx::Error> {
        let depth = self.depth;
        let writer = self.writer();
        if depth == 0 {
            // SQLite may already have ended it (some errors roll back by themselves).
            if !writer.is_autocommit() {
                writer.control("ROLLBACK")?;
            }
        } else {
            writer.control(&format!("ROLLBACK TO bus_{depth}; RELEASE bus_{depth}"))?;
        }
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(error) = self.rollback()
        {
            // The next transaction ends what is left open before it begins.
            tracing::error!(%error, "rolling back a SQLite write transaction failed");
        }
    }
}

impl<'t, 'c: 't> Executor<'t> for &'t mut Conn<'c> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlx(tx) => (&mut **tx).fetch_many(query),
            Kind::Reader(conn) => (&mut **conn).fetch_many(query),
            Kind::Sqlite(tx) => into_stream(in_place(Some(tx.writer()), query, false)),
            Kind::SqliteReader(held) => into_stream(in_place(held.as_mut(), query, false)),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlx(tx) => (&mut **tx).fetch_optional(query),
            Kind::Reader(conn) => (&mut **conn).fetch_optional(query),
            Kind::Sqlite(tx) => ready(first_row(in_place(Some(tx.writer()), query, true))),
            Kind::SqliteReader(held) => ready(first_row(in_place(held.as_mut(), query, true))),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        't: 'e,
    {
        match &mut self.kind {
            Kind::Sqlx(tx) => (&mut **tx).prepare_with(sql, parameters),
            Kind::Reader(conn) => (&mut **conn).prepare_with(sql, parameters),
            Kind::Sqlite(_) | Kind::SqliteReader(_) => ready(Err(not_offered("prepare"))),
        }
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        't: 'e,
    {
        match &mut self.kind {
            Kind::Sqlx(tx) => (&mut **tx).describe(sql),
            Kind::Reader(conn) => (&mut **conn).describe(sql),
            Kind::Sqlite(_) | Kind::SqliteReader(_) => ready(Err(not_offered("describe"))),
        }
    }
}

/// Runs a statement on an in-place SQLite connection (`None`: closed).
fn in_place<'q>(
    conn: Option<&mut SqliteConn>,
    query: impl Execute<'q, Any>,
    first_row_only: bool,
) -> Result<Vec<Step>, sqlx::Error> {
    let conn = conn.ok_or(sqlx::Error::PoolClosed)?;
    Taken::from(query)?.run(conn, first_row_only)
}
