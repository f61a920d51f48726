//! `--stored-orders N`: a database that already holds N finished checkouts, built quickly, to
//! measure the rate as the data grows.
//!
//! A few hundred real checkouts go through the service first (the template); then every row
//! they left is copied under new ids until the database holds N orders. A copy's ids keep the
//! template's length and spread, with the first eight characters replaced by the copy's number
//! (`00000001…`), so copies sort before every real time-ordered id, like older orders, and
//! stay recognisable: the template is whatever is not a copy. A database named by
//! `--database-url` that already holds N orders is used as it is.

use std::time::Instant;

use sqlx::{Column, Row};
use storage::{Backend, Db};

use super::{BenchError, BenchOptions};

/// Most real checkouts the copies are made of: a twentieth of the orders asked for, at least 50.
const TEMPLATE_ORDERS: u64 = 1_000;
/// Orders copied per transaction, so that a fill shows progress and no transaction is huge.
const ORDERS_PER_TRANSACTION: u64 = 50_000;
/// Every real id sorts from here on (time-ordered ids begin with their millisecond clock), and
/// every copy before it: a copy's ids begin with its number in eight hex digits, `0000…` (the
/// counting queries' `LIKE '0000%'`), so at most 65,535 copies. A range that an index on the
/// key can serve, where `NOT LIKE` scans.
const REAL_FROM: &str = "0001";

/// A table with rows per order, and how a copy rewrites them.
struct Copied {
    table: &'static str,
    /// The id that tells template rows (real ids) from copies.
    key: &'static str,
    /// Ids that take the copy's number as their first eight characters.
    renumbered: &'static [&'static str],
    /// Unique codes that take the copy's number as a suffix.
    suffixed: &'static [&'static str],
}

/// Every table a finished checkout leaves rows in. Queue rows are deleted on completion and
/// stock rows are per product, so neither grows with orders.
const COPIED: &[Copied] = &[
    Copied {
        table: "orders",
        key: "id",
        renumbered: &["id", "buyer_id"],
        suffixed: &["order_number"],
    },
    Copied {
        table: "order_items",
        key: "order_id",
        renumbered: &["order_id"],
        suffixed: &[],
    },
    Copied {
        table: "payments",
        key: "order_id",
        renumbered: &["order_id"],
        suffixed: &[],
    },
    Copied {
        table: "stock_reservations",
        key: "order_id",
        renumbered: &["order_id"],
        suffixed: &[],
    },
    Copied {
        table: "carts",
        key: "id",
        renumbered: &["id", "buyer_id"],
        suffixed: &[],
    },
    Copied {
        table: "saga_instances",
        key: "correlation_id",
        renumbered: &["correlation_id"],
        suffixed: &[],
    },
    Copied {
        table: "saga_timeline",
        key: "correlation_id",
        renumbered: &["correlation_id", "message_id"],
        suffixed: &[],
    },
    Copied {
        table: "bus_inbox",
        key: "message_id",
        renumbered: &["message_id"],
        suffixed: &[],
    },
];

/// How many orders the database holds: real ones (the template) and copies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    /// Orders placed through the service.
    pub real: u64,
    /// Copies of them.
    pub copies: u64,
}

impl Stored {
    /// Counts the orders of `db`.
    pub(crate) async fn count(db: &Db) -> Result<Self, BenchError> {
        let (all, copies): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN id LIKE '0000%' THEN 1 ELSE 0 END), 0) \
             FROM orders",
        )
        .fetch_one(db.reader())
        .await?;
        let (all, copies) = (all.max(0) as u64, copies.max(0) as u64);
        Ok(Self {
            real: all - copies,
            copies,
        })
    }

    /// All orders.
    pub(crate) fn total(self) -> u64 {
        self.real + self.copies
    }
}

/// Real checkouts still needed before copying can reach `wanted` orders.
pub(crate) fn template_missing(stored: Stored, wanted: u64) -> u64 {
    if stored.total() >= wanted {
        return 0;
    }
    let template = (wanted / 20).clamp(50, TEMPLATE_ORDERS).min(wanted);
    template.saturating_sub(stored.real)
}

/// Copies the real orders' rows until `db` holds at least `wanted` orders; returns how many
/// orders it holds then.
pub(crate) async fn copy_up_to(
    db: &Db,
    wanted: u64,
    options: &BenchOptions,
) -> Result<u64, BenchError> {
    let stored = Stored::count(db).await?;
    if stored.total() >= wanted {
        return Ok(stored.total());
    }
    if stored.real == 0 {
        return Err(BenchError::Setup(
            "no finished checkout to copy: the template run settled none".into(),
        ));
    }
    let first = next_copy_number(db).await?;
    let copies_needed = (wanted - stored.total()).div_ceil(stored.real);
    let last = first + copies_needed - 1;
    if last > 0xffff {
        return Err(BenchError::Options(format!(
            "--stored-orders {wanted} needs {copies_needed} copies of {} orders; at most 65,535 \
             copies fit",
            stored.real
        )));
    }
    let statements = copy_statements(db).await?;
    let per_transaction = (ORDERS_PER_TRANSACTION / stored.real).max(1);
    let started = Instant::now();
    let mut number = first;
    while number <= last {
        let through = (number + per_transaction - 1).min(last);
        copy_range(db, &statements, number, through).await?;
        if options.progress {
            eprintln!(
                "stored orders: {} of {wanted} ({:.0} s)",
                stored.total() + (through - first + 1) * stored.real,
                started.elapsed().as_secs_f64()
            );
        }
        number = through + 1;
    }
    settle(db).await?;
    Ok(stored.total() + copies_needed * stored.real)
}

/// The copy number after the highest one stored (1 for the first fill).
async fn next_copy_number(db: &Db) -> Result<u64, BenchError> {
    let highest: Option<String> =
        sqlx::query_scalar("SELECT MAX(substr(id, 1, 8)) FROM orders WHERE id LIKE '0000%'")
            .fetch_one(db.reader())
            .await?;
    let highest = match highest {
        Some(prefix) => u64::from_str_radix(&prefix, 16)
            .map_err(|_| BenchError::Setup(format!("a copied order id starts with {prefix}")))?,
        None => 0,
    };
    Ok(highest + 1)
}

/// One `INSERT … SELECT` per copied table, reading the copy numbers from a bound JSON array.
/// The template is the outer loop (SQLite keeps a `CROSS JOIN`'s order), read once per
/// statement, not once per copy.
async fn copy_statements(db: &Db) -> Result<Vec<String>, BenchError> {
    let mut statements = Vec::with_capacity(COPIED.len());
    for copied in COPIED {
        let columns = columns_of(db, copied.table).await?;
        statements.push(copy_statement(db.backend(), copied, &columns));
    }
    Ok(statements)
}

/// The column names of `table`, in order.
async fn columns_of(db: &Db, table: &str) -> Result<Vec<String>, BenchError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {table} LIMIT 1"
    )))
    .fetch_optional(db.reader())
    .await?
    .ok_or_else(|| BenchError::Setup(format!("{table} holds no row to copy")))?;
    Ok(row.columns().iter().map(|c| c.name().to_owned()).collect())
}

fn copy_statement(backend: Backend, copied: &Copied, columns: &[String]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|column| copied_value(copied, column))
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) SELECT {values} FROM {table} AS t CROSS JOIN {copies} \
         WHERE t.{key} >= '{REAL_FROM}'",
        table = copied.table,
        columns = columns.join(", "),
        values = values.join(", "),
        copies = storage::json_values(backend, 1),
        key = copied.key,
    )
}

/// The value a copy numbered `j.value` (eight hex digits) gets in `column`.
fn copied_value(copied: &Copied, column: &str) -> String {
    if copied.renumbered.contains(&column) {
        renumbered(&format!("t.{column}"))
    } else if copied.suffixed.contains(&column) {
        format!("t.{column} || substr(j.value, 5)")
    } else {
        format!("t.{column}")
    }
}

fn renumbered(id: &str) -> String {
    format!("j.value || substr({id}, 9)")
}

/// Copies numbered `first..=last`, all tables in one transaction.
async fn copy_range(
    db: &Db,
    statements: &[String],
    first: u64,
    last: u64,
) -> Result<(), BenchError> {
    let numbers: Vec<String> = (first..=last).map(|n| format!("{n:08x}")).collect();
    let numbers = storage::json_param(&numbers)?;
    let mut tx = db.begin().await?;
    for statement in statements {
        // Composed from this file's constants and the tables' own column names.
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .bind(&numbers)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Leaves the database as one that grew over weeks would be before the run: on PostgreSQL
/// vacuumed and analysed, as autovacuum would have; on SQLite with the fill's log written
/// back into the file, as the periodic checkpoints would have (SQLite keeps no statistics
/// unless asked).
async fn settle(db: &Db) -> Result<(), BenchError> {
    let statement = match db.backend() {
        Backend::Postgres => "VACUUM ANALYZE",
        Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    sqlx::query(statement).execute(db.reader()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_renumbers_ids_and_suffixes_codes() {
        let columns = ["correlation_id", "seq", "message_id", "messages_sent"].map(String::from);
        let sql = copy_statement(Backend::Sqlite, &COPIED[6], &columns);
        assert_eq!(
            sql,
            "INSERT INTO saga_timeline (correlation_id, seq, message_id, messages_sent) \
             SELECT j.value || substr(t.correlation_id, 9), t.seq, \
             j.value || substr(t.message_id, 9), t.messages_sent \
             FROM saga_timeline AS t CROSS JOIN json_each($1) AS j \
             WHERE t.correlation_id >= '0001'"
        );
        let orders = copy_statement(Backend::Sqlite, &COPIED[0], &["order_number".into()]);
        assert!(orders.contains("t.order_number || substr(j.value, 5)"));
    }

    #[test]
    fn the_template_is_only_as_big_as_needed() {
        let empty = Stored { real: 0, copies: 0 };
        assert_eq!(template_missing(empty, 10), 10);
        assert_eq!(template_missing(empty, 2_000), 100);
        assert_eq!(template_missing(empty, 1_000_000), TEMPLATE_ORDERS);
        let started = Stored {
            real: 300,
            copies: 0,
        };
        assert_eq!(template_missing(started, 1_000_000), TEMPLATE_ORDERS - 300);
        let full = Stored {
            real: 300,
            copies: 999_700,
        };
        assert_eq!(template_missing(full, 1_000_000), 0);
    }
}
