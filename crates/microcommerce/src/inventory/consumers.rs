//! The checkout's stock steps: reserve all or nothing, deduct on payment, release on failure.
//!
//! Each is idempotent by the reservation rows' status, on top of the bus inbox: a redelivered
//! message never reserves, deducts or releases twice.

use std::sync::Arc;

use bus::{ConsumeError, Consumer, Delivered, Envelope, Handler, Message, Tx};

use storage::Timestamp;

use super::sets::{self, Ending, Reservation, StockWrite};

use crate::contracts::{
    DeductStock, FailureReason, OrderLine, ReleaseStockReservations, ReserveStockForOrder,
    StockReservationCompleted, StockReservationFailed,
};
use crate::ids::OrderId;

/// The three inventory consumers.
pub fn all() -> Vec<Arc<dyn Consumer>> {
    vec![
        Arc::new(ReserveStock),
        Arc::new(EndReservations {
            ending: Ending::Deducted,
            order: |command: &DeductStock| command.order_id,
        }),
        Arc::new(EndReservations {
            ending: Ending::Released,
            order: |command: &ReleaseStockReservations| command.order_id,
        }),
    ]
}

/// Reserves every line of an order in one transaction, or none.
pub struct ReserveStock;

#[bus::async_trait]
impl Handler for ReserveStock {
    type Messages = ReserveStockForOrder;

    fn name(&self) -> &str {
        "inventory.reserve-stock"
    }

    async fn handle(
        &self,
        command: ReserveStockForOrder,
        _: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError> {
        let order_id = command.order_id;
        let now = tx.now().await?;
        let Err(short) = reserve_all(tx, order_id, &command.items, now).await? else {
            tx.publish(&StockReservationCompleted { order_id }).await?;
            return Ok(());
        };
        if has_reservations(tx, order_id).await? {
            // A redelivery (or a resend under a new message id) for an order whose reservation
            // is stored: reservation rows exist only if every line was reserved, so the stored
            // outcome is "completed". Repeat it; never reserve again. (A refusal leaves no
            // row: a resend under a new id after a shortage would reserve if stock came back,
            // for an order already failed. Nothing resends so; dead letters keep their id.)
            tracing::info!("reservation already recorded; repeating its outcome");
            tx.publish(&StockReservationCompleted { order_id }).await?;
            return Ok(());
        }
        tx.publish(&failed(order_id, &short)).await?;
        Ok(())
    }

    /// Every order of the set with two statements (see [`sets::reserve`]); the stock counts
    /// change at the end of the batch.
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, ReserveStockForOrder>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let orders: Vec<_> = messages
            .iter()
            .map(|m| (m.message.order_id, sets::merge_lines(&m.message.items)))
            .collect();
        let now = tx.now().await?;
        let outcomes = sets::reserve(tx, &orders, now).await?;
        let messages = messages.iter().map(|m| m.envelope);
        for ((message, (order_id, _)), outcome) in messages.zip(&orders).zip(outcomes) {
            let order_id = *order_id;
            match outcome {
                Reservation::Made | Reservation::Recorded => {
                    tx.publish_caused_by(message, &StockReservationCompleted { order_id })
                        .await?
                }
                Reservation::Short(line) => {
                    tx.publish_caused_by(message, &failed(order_id, &line))
                        .await?
                }
            };
        }
        Ok(Vec::new())
    }

    async fn finish_batch(&self, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        sets::write_pending(tx).await
    }
}

/// The answer to a reservation that `short` made impossible.
fn failed(order_id: OrderId, short: &OrderLine) -> StockReservationFailed {
    let reason = FailureReason::OutOfStock {
        product: short.product_name.clone(),
    };
    tracing::info!(%order_id, %reason, "stock reservation failed");
    StockReservationFailed { order_id, reason }
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
    let merged = sets::merge_lines(lines);
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

/// Ends an order's held reservations one way: deducted once it is paid (`DeductStock`),
/// released (the compensation) once it has failed (`ReleaseStockReservations`). One consumer
/// per way, each with its own name and its own command.
pub struct EndReservations<C> {
    ending: Ending,
    /// The order a command of this consumer names.
    order: fn(&C) -> OrderId,
}

impl<C> EndReservations<C> {
    /// Ends the reservations of `orders`, writing the stock as `write` says.
    async fn end(
        &self,
        tx: &mut Tx<'_>,
        orders: &[OrderId],
        write: StockWrite,
    ) -> Result<(), ConsumeError> {
        let ended = sets::end_reservations(tx, orders, self.ending, write).await?;
        let outcome = match self.ending {
            Ending::Deducted => "reserved stock deducted",
            Ending::Released => "reservations released",
        };
        tracing::info!(orders = orders.len(), lines = ended, "{outcome}");
        Ok(())
    }
}

#[bus::async_trait]
impl<C: Message> Handler for EndReservations<C> {
    type Messages = C;

    fn name(&self) -> &str {
        match self.ending {
            Ending::Deducted => "inventory.deduct-stock",
            Ending::Released => "inventory.release-stock",
        }
    }

    async fn handle(&self, command: C, _: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let order = (self.order)(&command);
        self.end(tx, &[order], StockWrite::Now).await
    }

    /// Every order of the set with one statement; the stock counts change at the end of the
    /// batch.
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, C>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let orders: Vec<_> = messages.iter().map(|m| (self.order)(&m.message)).collect();
        self.end(tx, &orders, StockWrite::AtBatchEnd).await?;
        Ok(Vec::new())
    }

    async fn finish_batch(&self, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        sets::write_pending(tx).await
    }
}
