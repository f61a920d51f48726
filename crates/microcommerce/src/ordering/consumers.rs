//! Keeps each order's status in step with its checkout saga.

use bus::{ConsumeError, Delivered, Envelope, Handler, Tx};

use super::db::{move_status, move_statuses};
use super::domain::OrderStatus;
use crate::contracts::{ConfirmOrder, OrderFailed, StockReservationCompleted};
use crate::ids::OrderId;

bus::messages! {
    /// The saga's outcomes that move an order's status.
    pub enum CheckoutOutcome {
        /// Every line is reserved.
        Reserved(StockReservationCompleted),
        /// The order is paid for and confirmed.
        Confirmed(ConfirmOrder),
        /// The checkout failed, for a reason.
        Failed(OrderFailed),
    }
}

/// Applies the saga's outcomes to the order row. Every update is conditional on the statuses
/// that may precede the new one, so a redelivered or out-of-date message changes nothing.
pub struct OrderStatusUpdater;

#[bus::async_trait]
impl Handler for OrderStatusUpdater {
    type Messages = CheckoutOutcome;

    fn name(&self) -> &str {
        "ordering.order-status"
    }

    async fn handle(
        &self,
        outcome: CheckoutOutcome,
        _: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError> {
        let now = tx.now().await?;
        let (order, status, reason) = target(outcome);
        let moved = move_status(tx, order, status, reason.as_deref(), now).await?;
        log_outcome(order, status, moved);
        Ok(())
    }

    /// Every order of the set with one statement.
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, CheckoutOutcome>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let now = tx.now().await?;
        let moves: Vec<_> = messages
            .into_iter()
            .map(|delivered| target(delivered.message))
            .collect();
        let moved = move_statuses(tx, &moves, now).await?;
        for (order, status, _) in &moves {
            log_outcome(*order, *status, moved.contains(order));
        }
        Ok(Vec::new())
    }
}

/// The order an outcome is about, the status it moves the order to, and the failure reason.
fn target(outcome: CheckoutOutcome) -> (OrderId, OrderStatus, Option<String>) {
    match outcome {
        CheckoutOutcome::Reserved(event) => (event.order_id, OrderStatus::StockReserved, None),
        CheckoutOutcome::Confirmed(command) => (command.order_id, OrderStatus::Confirmed, None),
        CheckoutOutcome::Failed(command) => {
            (command.order_id, OrderStatus::Failed, Some(command.reason))
        }
    }
}

fn log_outcome(order: OrderId, status: OrderStatus, moved: bool) {
    if moved {
        tracing::info!(order_id = %order, status = status.as_str(), "order status changed");
    } else {
        tracing::debug!(order_id = %order, status = status.as_str(),
            "order status unchanged: already there or past it");
    }
}
