//! The checkout's stock steps: reserve all or nothing, deduct on payment, release on failure.
//!
//! Each is idempotent by the reservation rows' status, on top of the bus inbox: a redelivered
//! message never reserves, deducts or releases twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use bus::{ConsumeError, Consumer, Envelope, Message, Tx};

use sqlx::Row;
use storage::Timestamp;

use crate::contracts::{
    DeductStock, OrderLine, ReleaseStockReservations, ReserveStockForOrder,
    StockReservationCompleted, StockReservationFailed,
};
use crate::ids::{OrderId, ProductId};

/// The three inventory consumers.
pub fn all() -> Vec<Arc<dyn Consumer>> {
    vec![
        Arc::new(ReserveStock),
        Arc::new(DeductReserved),
        Arc::new(ReleaseReserved),
    ]
}

/// Reserves every line of an order in one transaction, or none.
pub struct ReserveStock;

#[bus::async_trait]
impl Consumer for ReserveStock {
    fn name(&self) -> &str {
        "inventory.reserve-stock"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        vec![ReserveStockForOrder::TYPE]
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let command: ReserveStockForOrder = message.decode()?;
        let order_id = command.order_id;
        let now = tx.now().await?;
        let Err(short) = reserve_all(tx, order_id, &command.items, now).await? else {
            tx.publish(&StockReservationCompleted { order_id }).await?;
            return Ok(());
        };
        if has_reservations(tx, order_id).await? {
            // A redelivery (or a resend under a new message id) for an order whose reservation
            // is stored: reservation rows exist only if every line was reserved, so the stored
            // outcome is "completed". Repeat it; never reserve again.
            tracing::info!("reservation already recorded; repeating its outcome");
            tx.publish(&StockReservationCompleted { order_id }).await?;
            return Ok(());
        }
        let reason = format!("Insufficient stock for {}", short.product_name);
        tracing::info!(%reason, "stock reservation failed");
        tx.publish(&StockReservationFailed { order_id, reason })
            .await?;
        Ok(())
    }
}

async fn has_reservations(tx: &mut Tx<'_>, order: OrderId) -> Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stock_reservations WHERE order_id = $1")
            .bind(order.to_string())
            .fetch_one(&mut **tx)
            .await?;
    Ok(count > 0)
}

/// Reserves lines merged by product, in product-id order (a stable lock order). The first line
/// that cannot be reserved, short or already reserved by an earlier delivery, undoes the lines
/// before it and is returned. A single line needs no savepoint for that, which saves two
/// statements on the single writer for the most common order.
async fn reserve_all(
    tx: &mut Tx<'_>,
    order: OrderId,
    lines: &[OrderLine],
    now: Timestamp,
) -> Result<Result<(), OrderLine>, sqlx::Error> {
    let mut merged: BTreeMap<ProductId, OrderLine> = BTreeMap::new();
    // A line of zero units holds nothing (ordering never sends one; the table would refuse it).
    for line in lines.iter().filter(|line| line.quantity > 0) {
        merged
            .entry(line.product_id)
            .and_modify(|kept| kept.quantity = kept.quantity.saturating_add(line.quantity))
            .or_insert_with(|| line.clone());
    }
    if merged.len() <= 1 {
        return reserve_lines(tx, order, merged.values(), now).await;
    }
    let mut savepoint = tx.savepoint().await?;
    let reserved = reserve_lines(&mut savepoint, order, merged.values(), now).await?;
    if reserved.is_ok() {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(reserved)
}

/// Reserves `lines` one by one until one cannot be, which it returns (the earlier lines stay
/// reserved: the caller undoes them; the returned line itself leaves nothing behind).
///
/// A line is two statements: the reservation row is inserted only if the product has the
/// units free and the order holds no row for it yet, then the stock row takes the units if
/// they are still free (on PostgreSQL another transaction may have taken them in between, and
/// the row is removed again).
async fn reserve_lines(
    tx: &mut Tx<'_>,
    order: OrderId,
    lines: impl Iterator<Item = &OrderLine>,
    now: Timestamp,
) -> Result<Result<(), OrderLine>, sqlx::Error> {
    for line in lines {
        let recorded = sqlx::query(
            "INSERT INTO stock_reservations (order_id, product_id, quantity, status, created_at) \
             SELECT $1, product_id, $3, 'Held', $4 FROM stock_items \
             WHERE product_id = $2 AND on_hand - reserved >= $3 \
             ON CONFLICT (order_id, product_id) DO NOTHING",
        )
        .bind(order.to_string())
        .bind(line.product_id.to_string())
        .bind(i64::from(line.quantity))
        .bind(now.0)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if recorded != 1 {
            return Ok(Err(line.clone()));
        }
        let reserved = sqlx::query(
            "UPDATE stock_items SET reserved = reserved + $1, updated_at = $2 \
             WHERE product_id = $3 AND on_hand - reserved >= $1",
        )
        .bind(i64::from(line.quantity))
        .bind(now.0)
        .bind(line.product_id.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if reserved != 1 {
            sqlx::query("DELETE FROM stock_reservations WHERE order_id = $1 AND product_id = $2")
                .bind(order.to_string())
                .bind(line.product_id.to_string())
                .execute(&mut **tx)
                .await?;
            return Ok(Err(line.clone()));
        }
    }
    Ok(Ok(()))
}

/// Turns an order's held reservations into permanent deductions.
pub struct DeductReserved;

#[bus::async_trait]
impl Consumer for DeductReserved {
    fn name(&self) -> &str {
        "inventory.deduct-stock"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        vec![DeductStock::TYPE]
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let command: DeductStock = message.decode()?;
        let ended = end_reservations(tx, command.order_id, Ending::Deducted).await?;
        tracing::info!(lines = ended, "reserved stock deducted");
        Ok(())
    }
}

/// Gives an order's held reservations back (compensation).
pub struct ReleaseReserved;

#[bus::async_trait]
impl Consumer for ReleaseReserved {
    fn name(&self) -> &str {
        "inventory.release-stock"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        vec![ReleaseStockReservations::TYPE]
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let command: ReleaseStockReservations = message.decode()?;
        let ended = end_reservations(tx, command.order_id, Ending::Released).await?;
        tracing::info!(lines = ended, "reservations released");
        Ok(())
    }
}

/// How a reservation ends.
#[derive(Clone, Copy)]
enum Ending {
    /// Paid: the units leave the warehouse.
    Deducted,
    /// Failed: the units are available again.
    Released,
}

/// Ends every Held reservation of `order`; rows already ended are left alone, so running it
/// twice changes nothing. Returns how many lines ended now.
///
/// The status flip comes first and claims the rows in one statement (`… WHERE status = 'Held'
/// RETURNING`): only the lines this call actually ended move stock, so even two deliveries racing
/// each other (or a deduct racing a release) can never apply a line twice.
async fn end_reservations(
    tx: &mut Tx<'_>,
    order: OrderId,
    ending: Ending,
) -> Result<usize, sqlx::Error> {
    let now = tx.now().await?;
    let (stock_update, status) = match ending {
        Ending::Deducted => (
            "UPDATE stock_items SET on_hand = on_hand - $1, reserved = reserved - $1, \
             updated_at = $2 WHERE product_id = $3",
            "Deducted",
        ),
        Ending::Released => (
            "UPDATE stock_items SET reserved = reserved - $1, updated_at = $2 WHERE product_id = $3",
            "Released",
        ),
    };
    let ended = sqlx::query(
        "UPDATE stock_reservations SET status = $1, ended_at = $2 \
         WHERE order_id = $3 AND status = 'Held' RETURNING product_id, quantity",
    )
    .bind(status)
    .bind(now.0)
    .bind(order.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let mut lines = ended
        .iter()
        .map(|row| Ok((row.try_get("product_id")?, row.try_get("quantity")?)))
        .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
    // Stock rows in product-id order, the same lock order as reserving.
    lines.sort();
    for (product, quantity) in &lines {
        sqlx::query(stock_update)
            .bind(quantity)
            .bind(now.0)
            .bind(product)
            .execute(&mut **tx)
            .await?;
    }
    Ok(lines.len())
}
