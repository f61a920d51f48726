//! The stock steps for many orders at once (a worker batch's messages of one kind): a few
//! set-based statements for the whole set instead of a few per order and line, with the
//! outcomes handling each order alone would have. At a network's distance from the database
//! every statement is a round trip. The stock counts themselves change only at the end of the
//! batch ([`write_pending`], one statement), so concurrent batches hold a stock row for the
//! last round trips before their commits rather than for the whole batch.

use std::collections::{BTreeMap, HashSet};

use bus::{ConsumeError, Tx};
use sqlx::Row;
use storage::Timestamp;

use crate::contracts::OrderLine;
use crate::ids::{OrderId, ProductId};

/// An order's lines merged by product, in product-id order (the stable lock order).
pub(super) type Lines = BTreeMap<ProductId, OrderLine>;

/// Merges an order's lines by product; a line of zero units holds nothing (ordering never
/// sends one; the table would refuse it).
pub(super) fn merge_lines(lines: &[OrderLine]) -> Lines {
    let mut merged = Lines::new();
    for line in lines.iter().filter(|line| line.quantity > 0) {
        merged
            .entry(line.product_id)
            .and_modify(|kept| kept.quantity = kept.quantity.saturating_add(line.quantity))
            .or_insert_with(|| line.clone());
    }
    merged
}

/// How one order's reservation came out.
pub(super) enum Reservation {
    /// Every line is reserved now.
    Made,
    /// The order's reservation was recorded by an earlier delivery: its outcome stands.
    Recorded,
    /// This line (the first short one, in product order) could not be reserved; nothing is.
    Short(OrderLine),
}

/// Reserves each order's lines, all or none per order, in the given order: reads free stock
/// and the orders already reserved (one statement), counts in what the batch has changed but
/// not yet written, decides in memory, then writes the reservation rows (one statement). The
/// units taken join the batch's pending stock changes ([`write_pending`]).
pub(super) async fn reserve(
    tx: &mut Tx<'_>,
    orders: &[(OrderId, Lines)],
    now: Timestamp,
) -> Result<Vec<Reservation>, ConsumeError> {
    let (mut free, recorded) = read_free_and_recorded(tx, orders).await?;
    for (product, units) in free.iter_mut() {
        *units += tx.scratch::<PendingStock>().free_change(product);
    }
    let mut outcomes = Vec::with_capacity(orders.len());
    let mut held: Vec<(String, String, i64)> = Vec::new();
    let mut taken: BTreeMap<String, i64> = BTreeMap::new();
    for (order, lines) in orders {
        let order = order.to_string();
        if recorded.contains(&order) {
            outcomes.push(Reservation::Recorded);
            continue;
        }
        let short = lines.values().find(|line| {
            free.get(&line.product_id.to_string()).copied().unwrap_or(0) < i64::from(line.quantity)
        });
        if let Some(short) = short {
            outcomes.push(Reservation::Short(short.clone()));
            continue;
        }
        for line in lines.values() {
            let (product, quantity) = (line.product_id.to_string(), i64::from(line.quantity));
            *free.entry(product.clone()).or_default() -= quantity;
            *taken.entry(product.clone()).or_default() += quantity;
            held.push((order.clone(), product, quantity));
        }
        outcomes.push(Reservation::Made);
    }
    record_held(tx, &held, now).await?;
    let pending = tx.scratch::<PendingStock>();
    for (product, units) in taken {
        pending.change(product, 0, units);
    }
    Ok(outcomes)
}

/// Free units of every product the orders name, and which of the orders hold reservations.
async fn read_free_and_recorded(
    tx: &mut Tx<'_>,
    orders: &[(OrderId, Lines)],
) -> Result<(BTreeMap<String, i64>, HashSet<String>), sqlx::Error> {
    let products: Vec<String> = orders
        .iter()
        .flat_map(|(_, lines)| lines.keys().map(ToString::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let order_ids: Vec<String> = orders.iter().map(|(id, _)| id.to_string()).collect();
    let backend = tx.backend();
    let sql = format!(
        "SELECT 'free' AS kind, product_id AS id, CAST(on_hand - reserved AS BIGINT) AS units \
         FROM stock_items WHERE product_id IN (SELECT j.value FROM {products}) \
         UNION ALL SELECT 'held', order_id, CAST(0 AS BIGINT) FROM stock_reservations \
         WHERE order_id IN (SELECT j.value FROM {orders}) GROUP BY order_id",
        products = storage::json_values(backend, 1),
        orders = storage::json_values(backend, 2),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(storage::json_param(&products)?)
        .bind(storage::json_param(&order_ids)?)
        .fetch_all(&mut **tx)
        .await?;
    let mut free = BTreeMap::new();
    let mut recorded = HashSet::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if row.try_get::<String, _>("kind")? == "free" {
            free.insert(id, row.try_get("units")?);
        } else {
            recorded.insert(id);
        }
    }
    Ok((free, recorded))
}

/// Inserts the reservation rows `(order, product, quantity)`.
async fn record_held(
    tx: &mut Tx<'_>,
    held: &[(String, String, i64)],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    if held.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO stock_reservations (order_id, product_id, quantity, status, created_at) \
         SELECT j.value ->> 0, j.value ->> 1, CAST(j.value ->> 2 AS BIGINT), 'Held', \
         CAST($2 AS BIGINT) FROM {} WHERE true",
        storage::json_rows(tx.backend(), 1)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(storage::json_param(&held)?)
        .bind(now.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stock changes of a batch not yet written: per product, the change of units on hand and
/// of units reserved. Kept in [`Tx::scratch`], so a rolled-back batch forgets them.
#[derive(Default)]
pub(super) struct PendingStock(BTreeMap<String, (i64, i64)>);

impl PendingStock {
    fn change(&mut self, product: String, on_hand: i64, reserved: i64) {
        let entry = self.0.entry(product).or_default();
        entry.0 += on_hand;
        entry.1 += reserved;
    }

    /// Adds `other`'s changes to these.
    fn merge(&mut self, other: PendingStock) {
        for (product, (on_hand, reserved)) in other.0 {
            self.change(product, on_hand, reserved);
        }
    }

    /// How much the pending changes free (positive) or take (negative) of `product`.
    fn free_change(&self, product: &str) -> i64 {
        self.0
            .get(product)
            .map_or(0, |(on_hand, reserved)| on_hand - reserved)
    }
}

/// Writes the batch's pending stock changes (see [`write_changes`]) and forgets them.
pub(super) async fn write_pending(tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
    let pending = std::mem::take(tx.scratch::<PendingStock>());
    write_changes(tx, &pending).await
}

/// Applies `changes` with one statement, in product-id order (the stable lock order), each
/// only if the product keeps `0 <= reserved <= on_hand`: if another transaction took the
/// units since they were read, that is a lost race and the batch runs again.
async fn write_changes(tx: &mut Tx<'_>, changes: &PendingStock) -> Result<(), ConsumeError> {
    let rows: Vec<(&String, i64, i64)> = changes
        .0
        .iter()
        .filter(|(_, change)| **change != (0, 0))
        .map(|(product, (on_hand, reserved))| (product, *on_hand, *reserved))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let now = tx.now().await?;
    let sql = format!(
        "UPDATE stock_items SET on_hand = on_hand + CAST(j.value ->> 1 AS BIGINT), \
         reserved = reserved + CAST(j.value ->> 2 AS BIGINT), updated_at = $2 FROM {} \
         WHERE stock_items.product_id = j.value ->> 0 \
         AND stock_items.reserved + CAST(j.value ->> 2 AS BIGINT) >= 0 \
         AND stock_items.on_hand + CAST(j.value ->> 1 AS BIGINT) \
         >= stock_items.reserved + CAST(j.value ->> 2 AS BIGINT)",
        storage::json_rows(tx.backend(), 1)
    );
    let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(storage::json_param(&rows)?)
        .bind(now.0)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if updated != rows.len() as u64 {
        return Err(ConsumeError::lost_race(
            "stock was taken between reading and reserving it",
        ));
    }
    Ok(())
}

/// When ended reservations move the stock counts.
#[derive(Clone, Copy)]
pub(super) enum StockWrite {
    /// In the same call: a message handled alone.
    Now,
    /// At the end of the worker batch ([`write_pending`]).
    AtBatchEnd,
}

/// How a reservation ends.
#[derive(Clone, Copy)]
pub(super) enum Ending {
    /// Paid: the units leave the warehouse.
    Deducted,
    /// Failed: the units are available again.
    Released,
}

/// Ends every Held reservation of `orders`; rows already ended are left alone, so running it
/// twice changes nothing. Returns how many lines ended now.
///
/// The status flip comes first and claims the rows in one statement (`… WHERE status = 'Held'
/// RETURNING`): only the lines this call actually ended move stock, so even two deliveries
/// racing each other (or a deduct racing a release) can never apply a line twice. The stock
/// then moves in one statement for all products, now or at the end of the batch.
pub(super) async fn end_reservations(
    tx: &mut Tx<'_>,
    orders: &[OrderId],
    ending: Ending,
    write: StockWrite,
) -> Result<usize, ConsumeError> {
    let now = tx.now().await?;
    let status = match ending {
        Ending::Deducted => "Deducted",
        Ending::Released => "Released",
    };
    let order_ids: Vec<String> = orders.iter().map(ToString::to_string).collect();
    let sql = format!(
        "UPDATE stock_reservations SET status = $1, ended_at = $2 \
         WHERE status = 'Held' AND order_id IN (SELECT j.value FROM {}) \
         RETURNING product_id, quantity",
        storage::json_values(tx.backend(), 3)
    );
    let ended = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .bind(now.0)
        .bind(storage::json_param(&order_ids)?)
        .fetch_all(&mut **tx)
        .await?;
    let mut units: BTreeMap<String, i64> = BTreeMap::new();
    for row in &ended {
        *units.entry(row.try_get("product_id")?).or_default() +=
            row.try_get::<i64, _>("quantity")?;
    }
    let mut changes = PendingStock::default();
    for (product, units) in units {
        match ending {
            Ending::Deducted => changes.change(product, -units, -units),
            Ending::Released => changes.change(product, 0, -units),
        }
    }
    match write {
        StockWrite::Now => write_changes(tx, &changes).await?,
        StockWrite::AtBatchEnd => tx.scratch::<PendingStock>().merge(changes),
    }
    Ok(ended.len())
}
