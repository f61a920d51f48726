//! Keeps each order's status in step with its checkout saga.

use bus::{ConsumeError, Consumer, Envelope, Message, Tx};

use super::db::{move_status, move_statuses};
use super::status::OrderStatus;
use crate::contracts::{ConfirmOrder, OrderFailed, StockReservationCompleted};
use crate::ids::OrderId;

/// Applies the saga's outcomes to the order row. Every update is conditional on the statuses
/// that may precede the new one, so a redelivered or out-of-date message changes nothing.
pub struct OrderStatusUpdater;

#[bus::async_trait]
impl Consumer for OrderStatusUpdater {
    fn name(&self) -> &str {
        "ordering.order-status"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        vec![
            StockReservationCompleted::TYPE,
            ConfirmOrder::TYPE,
            OrderFailed::TYPE,
        ]
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let now = tx.now().await?;
        let (order, status, reason) = target(message)?;
        let moved = move_status(tx, order, status, reason.as_deref(), now).await?;
        log_outcome(order, status, moved);
        Ok(())
    }

    /// Every order of the set with one statement.
    async fn consume_all(
        &self,
        messages: &[&Envelope],
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let now = tx.now().await?;
        let moves = messages
            .iter()
            .map(|message| target(message))
            .collect::<Result<Vec<_>, _>>()?;
        let moved = move_statuses(tx, &moves, now).await?;
        for (order, status, _) in &moves {
            log_outcome(*order, *status, moved.contains(order));
        }
        Ok(Vec::new())
    }
}

/// The order a message is about, the status it moves the order to, and the failure reason.
fn target(message: &Envelope) -> Result<(OrderId, OrderStatus, Option<String>), ConsumeError> {
    Ok(match message.message_type.as_str() {
        StockReservationCompleted::TYPE => {
            let event: StockReservationCompleted = message.decode()?;
            (event.order_id, OrderStatus::StockReserved, None)
        }
        ConfirmOrder::TYPE => {
            let command: ConfirmOrder = message.decode()?;
            (command.order_id, OrderStatus::Confirmed, None)
        }
        OrderFailed::TYPE => {
            let command: OrderFailed = message.decode()?;
            (
                command.order_id,
                OrderStatus::Failed,
                Some(command.reason.to_string()),
            )
        }
        other => {
            return Err(ConsumeError::permanent(format!(
                "order-status does not handle {other}"
            )));
        }
    })
}

fn log_outcome(order: OrderId, status: OrderStatus, moved: bool) {
    if moved {
        tracing::info!(order_id = %order, status = status.as_str(), "order status changed");
    } else {
        tracing::debug!(order_id = %order, status = status.as_str(),
            "order status unchanged: already there or past it");
    }
}
