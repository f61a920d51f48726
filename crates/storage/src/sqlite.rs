//! SQLite connections driven on the caller's own thread: the one writer, and the readers.
//!
//! sqlx hands each SQLite statement to a connection thread and each result back, which costs
//! more than SQLite's own work on small statements; the single writer runs every write of the
//! process in turn, so that hand-off dominated it, and the readers paid it on every read of a
//! request (see `docs/benchmarks.md`). These connections are plain `rusqlite` connections used
//! by whoever holds their lock: the writer on the writer lane's thread for the bus workers and
//! grouped transactions, a reader on the thread of the task that reads (`crate::readers`).
//! Statements and results keep sqlx's `Any` types, so callers write the same `sqlx::query(…)`
//! for both backends (see [`crate::Conn`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{OpenFlags, Statement};
use sqlx::Either;
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx_core::any::{AnyColumn, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind};
use sqlx_core::ext::ustr::UStr;

/// One step of a statement's output, as sqlx's executors stream it.
pub(crate) type Step = Either<AnyQueryResult, AnyRow>;

/// Prepared statements kept per connection, least recently used dropped first: the bus and
/// the service together use fewer than a hundred distinct write statements and not many more
/// reads (row lists are JSON parameters, so their text does not vary with their length).
const STATEMENT_CACHE: usize = 256;

/// A connection driven in place: the writer or a reader. Not shared: one holder at a time,
/// through its lock in the `Db`.
#[derive(Debug)]
pub(crate) struct SqliteConn {
    conn: rusqlite::Connection,
    /// The output columns of each kept statement that has any, named once.
    columns: HashMap<Box<str>, Columns>,
}

/// A statement's output columns as sqlx's rows name them, shared by every row of every run
/// of the statement: naming them for each run cost an allocation per column and a map.
#[derive(Debug, Clone)]
struct Columns {
    names: Arc<[UStr]>,
    by_name: Arc<sqlx_core::HashMap<UStr, usize>>,
}

impl Columns {
    fn of(statement: &Statement<'_>) -> Self {
        let names: Arc<[UStr]> = statement
            .column_names()
            .into_iter()
            .map(UStr::new)
            .collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        Self {
            names,
            by_name: Arc::new(by_name),
        }
    }
}

impl SqliteConn {
    /// Opens (creating if missing) the database file with the connection settings every
    /// connection of a `Db` gets.
    pub(crate) fn open(
        path: &Path,
        pragmas: &str,
        busy_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(to_sqlx)?;
        conn.busy_timeout(busy_timeout).map_err(to_sqlx)?;
        conn.execute_batch(pragmas).map_err(to_sqlx)?;
        // With STAT4, binding a value the plan may depend on (a `LIKE` pattern) expires the
        // prepared statement and the next run plans it again. The planner's stability guarantee
        // keeps one plan per statement, as a schema without statistics tables gets anyway.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(to_sqlx)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn,
            columns: HashMap::new(),
        })
    }

    /// Copies what it can of the write-ahead log into the database file without waiting for
    /// readers or the writer (a passive checkpoint).
    pub(crate) fn checkpoint(&mut self) -> Result<(), sqlx::Error> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(to_sqlx)
    }

    /// Runs a statement without bound values and without output (transaction control).
    pub(crate) fn control(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.conn.execute_batch(sql).map_err(to_sqlx)
    }

    /// Whether no transaction is open (a failed `COMMIT` may leave one open).
    pub(crate) fn is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
    }

    /// Runs one statement with its bound values; with `first_row_only`, stops at the first row.
    /// `persistent` statements are prepared once and kept; others (text that varies) are not.
    pub(crate) fn run(
        &mut self,
        sql: &str,
        arguments: Option<AnyArguments>,
        persistent: bool,
        first_row_only: bool,
    ) -> Result<Vec<Step>, sqlx::Error> {
        tracing::trace!(target: "bus::sqlite", sql, "statement");
        let values = arguments.map(|a| a.values.0).unwrap_or_default();
        if !sql.contains(';') {
            return self.run_one(sql, &values, persistent, first_row_only);
        }
        let statements = split_statements(sql);
        if statements.len() > 1 && values.is_empty() {
            // A script (schema set-up in tools and tests, perhaps with triggers, whose bodies
            // hold semicolons): SQLite splits it itself; it has no output.
            self.control(sql)?;
            return Ok(vec![Either::Left(AnyQueryResult::default())]);
        }
        // Several statements sharing the bound values (each reads the `$n` it names), as
        // sqlx's SQLite driver runs them: the steps of each, in order.
        let mut steps = Vec::new();
        for statement in statements {
            steps.extend(self.run_one(statement, &values, persistent, first_row_only)?);
        }
        Ok(steps)
    }

    fn run_one(
        &mut self,
        sql: &str,
        values: &[AnyValueKind],
        persistent: bool,
        first_row_only: bool,
    ) -> Result<Vec<Step>, sqlx::Error> {
        let Self { conn, columns } = self;
        let prepared = if persistent {
            conn.prepare_cached(sql).map(Prepared::Cached)
        } else {
            conn.prepare(sql).map(Prepared::Fresh)
        };
        let mut prepared = prepared.map_err(to_sqlx)?;
        let statement = prepared.statement();
        bind(statement, values)?;
        let mut steps = read_rows(statement, first_row_only, |statement| {
            if !persistent {
                return Columns::of(statement);
            }
            // The text names the columns, but a schema change may add some to a `SELECT *`.
            if let Some(known) = columns.get(sql)
                && known.names.len() == statement.column_count()
            {
                return known.clone();
            }
            // Kept statements' texts are few; a text that varies (a list of placeholders)
            // could grow the map, so it starts over past the statement cache's size.
            if columns.len() >= STATEMENT_CACHE {
                columns.clear();
            }
            let named = Columns::of(statement);
            columns.insert(sql.into(), named.clone());
            named
        })?;
        let writes = !statement.readonly();
        steps.push(Either::Left(AnyQueryResult {
            rows_affected: if writes { conn.changes() } else { 0 },
            last_insert_id: writes.then(|| conn.last_insert_rowid()),
        }));
        Ok(steps)
    }
}

/// The statements of `sql`, split at the semicolons outside quotes and comments, without
/// empty ones (a trailing `;`).
fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                // A doubled quote inside is an escaped one: the scan just goes on.
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                statements.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    statements.push(&sql[start.min(sql.len())..]);
    statements.retain(|statement| !statement.trim().is_empty());
    statements
}

/// A statement from the cache, or one prepared for this run only.
enum Prepared<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Fresh(Statement<'c>),
}

impl<'c> Prepared<'c> {
    fn statement(&mut self) -> &mut Statement<'c> {
        match self {
            Prepared::Cached(statement) => statement,
            Prepared::Fresh(statement) => statement,
        }
    }
}

/// Binds sqlx's values to the statement's parameters. Parameters are written `$1`, `$2` … as
/// on PostgreSQL; SQLite treats `$1` as a name, so each is looked up by its number, the way
/// sqlx's own SQLite driver does. A parameter without a value is NULL, as there.
fn bind(statement: &mut Statement<'_>, values: &[AnyValueKind]) -> Result<(), sqlx::Error> {
    for index in 1..=statement.parameter_count() {
        let number = match statement.parameter_name(index) {
            Some(name) => name
                .strip_prefix(['$', '?'])
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!("unsupported SQL parameter {name:?}"))
                })?,
            None => index,
        };
        let Some(value) = number.checked_sub(1).and_then(|i| values.get(i)) else {
            continue;
        };
        let bound = match value {
            AnyValueKind::Null(_) => statement.raw_bind_parameter(index, rusqlite::types::Null),
            AnyValueKind::Bool(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::SmallInt(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::Integer(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::BigInt(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::Real(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::Double(v) => statement.raw_bind_parameter(index, *v),
            AnyValueKind::Text(v) => statement.raw_bind_parameter(index, v.as_str()),
            AnyValueKind::TextSlice(v) => statement.raw_bind_parameter(index, &**v),
            AnyValueKind::Blob(v) => statement.raw_bind_parameter(index, v.as_slice()),
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "cannot bind {other:?} to a SQLite statement"
                )));
            }
        };
        bound.map_err(to_sqlx)?;
    }
    Ok(())
}

/// Steps the statement to its end (or its first row), converting rows as sqlx's `Any` driver
/// does for SQLite: each value by its stored type (integers as `BigInt`, reals as `Double`).
/// `columns_of` names the output columns, at the first row: only then has SQLite prepared a
/// kept statement again after a schema change (a `SELECT *` may have more columns).
fn read_rows(
    statement: &mut Statement<'_>,
    first_row_only: bool,
    mut columns_of: impl FnMut(&Statement<'_>) -> Columns,
) -> Result<Vec<Step>, sqlx::Error> {
    let mut steps = Vec::new();
    let mut columns = None;
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next().map_err(to_sqlx)? {
        let Columns { names, by_name } = columns.get_or_insert_with(|| columns_of(row.as_ref()));
        let mut row_columns = Vec::with_capacity(names.len());
        let mut values = Vec::with_capacity(names.len());
        for (ordinal, name) in names.iter().enumerate() {
            let kind = value_kind(row.get_ref(ordinal).map_err(to_sqlx)?);
            row_columns.push(AnyColumn {
                ordinal,
                name: name.clone(),
                type_info: AnyTypeInfo {
                    kind: type_kind(&kind),
                },
            });
            values.push(AnyValue { kind });
        }
        steps.push(Either::Right(AnyRow {
            column_names: by_name.clone(),
            columns: row_columns,
            values,
        }));
        if first_row_only {
            break;
        }
    }
    Ok(steps)
}

fn value_kind(value: ValueRef<'_>) -> AnyValueKind {
    match value {
        ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
        ValueRef::Integer(v) => AnyValueKind::BigInt(v),
        ValueRef::Real(v) => AnyValueKind::Double(v),
        ValueRef::Text(v) => AnyValueKind::Text(Arc::new(String::from_utf8_lossy(v).into_owned())),
        ValueRef::Blob(v) => AnyValueKind::Blob(Arc::new(v.to_vec())),
    }
}

fn type_kind(value: &AnyValueKind) -> AnyTypeInfoKind {
    match value {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

/// A failed SQLite call as sqlx reports it, so that callers inspect errors the same way for
/// both backends: `code()` is SQLite's extended result code in decimal (`"5"` busy, `"2067"` a
/// unique constraint), and `kind()` names the constraint violations.
#[derive(Debug)]
pub(crate) struct SqliteFailure {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl SqliteFailure {
    /// SQLite's extended result code.
    pub(crate) fn code(&self) -> i32 {
        self.code
    }
}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
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
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

/// rusqlite's error as sqlx's: failures of SQLite itself become database errors (callers tell
/// busy from constraint by code), misuse becomes a protocol error.
pub(crate) fn to_sqlx(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteFailure {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    #[test]
    fn a_statement_is_planned_once_whatever_values_are_bound() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut conn = open_in(&dir);
        conn.control(
            "CREATE TABLE q (id INTEGER PRIMARY KEY, name TEXT); CREATE INDEX q_name ON q (name)",
        )
        .expect("creates");
        // A `LIKE` pattern is one of the values SQLite would plan again for.
        let sql = "SELECT id FROM q WHERE name LIKE $1";
        for pattern in ["a%", "b%", "c%"] {
            let arguments = AnyArguments {
                values: sqlx_core::any::AnyArgumentBuffer(vec![AnyValueKind::Text(Arc::new(
                    pattern.to_owned(),
                ))]),
            };
            conn.run(sql, Some(arguments), true, false).expect("runs");
        }
        let statement = conn.conn.prepare_cached(sql).expect("cached");
        assert_eq!(
            statement.get_status(StatementStatus::RePrepare),
            0,
            "another bound value did not make SQLite plan the statement again"
        );
    }

    /// A connection to a new database in `dir`.
    fn open_in(dir: &tempfile::TempDir) -> SqliteConn {
        SqliteConn::open(
            &dir.path().join("test.db"),
            "PRAGMA journal_mode = WAL;",
            Duration::from_secs(1),
        )
        .expect("opens")
    }

    /// The names of each row's columns, as `sqlx::Row` sees them.
    fn column_names(steps: &[Step]) -> Vec<Vec<String>> {
        use sqlx::{Column, Row};
        steps
            .iter()
            .filter_map(|step| step.as_ref().right())
            .map(|row| row.columns().iter().map(|c| c.name().to_owned()).collect())
            .collect()
    }

    #[test]
    fn a_kept_statement_names_its_columns_once_and_again_after_the_schema_grows() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut conn = open_in(&dir);
        conn.control("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x')")
            .expect("creates");
        let sql = "SELECT * FROM t";
        let first = conn.run(sql, None, true, false).expect("runs");
        let again = conn.run(sql, None, true, false).expect("runs");
        assert_eq!(column_names(&first), [["a", "b"]]);
        assert_eq!(column_names(&again), [["a", "b"]]);
        let (Some(first), Some(again)) = (first[0].as_ref().right(), again[0].as_ref().right())
        else {
            panic!("rows expected");
        };
        assert!(
            Arc::ptr_eq(&first.column_names, &again.column_names),
            "the second run reused the first's names"
        );
        conn.control("ALTER TABLE t ADD COLUMN c REAL")
            .expect("alters");
        let grown = conn.run(sql, None, true, false).expect("runs");
        assert_eq!(column_names(&grown), [["a", "b", "c"]]);
        let written = conn
            .run("UPDATE t SET c = 1.5", None, true, false)
            .expect("runs");
        assert!(column_names(&written).is_empty(), "a write has no rows");
    }

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(split_statements("SELECT 1;"), ["SELECT 1"]);
        assert_eq!(
            split_statements("INSERT INTO a VALUES ($1); UPDATE b SET x = $1 WHERE changes() = 1"),
            [
                "INSERT INTO a VALUES ($1)",
                " UPDATE b SET x = $1 WHERE changes() = 1"
            ]
        );
        assert_eq!(
            split_statements("SELECT 'a;b', \"c;d\" -- e;f\n; /* g;h */ SELECT 'it''s;'"),
            [
                "SELECT 'a;b', \"c;d\" -- e;f\n",
                " /* g;h */ SELECT 'it''s;'"
            ]
        );
        assert_eq!(
            split_statements("SELECT 1 /* unclosed ;"),
            ["SELECT 1 /* unclosed ;"]
        );
    }
}
