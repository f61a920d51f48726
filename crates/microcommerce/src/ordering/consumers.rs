//! Keeps each order's status in step with its checkout saga, as the checkout declares: the
//! consumer takes the messages the checkout's steps are reached on ([`handled_messages`]) and
//! moves the order to the step each one names ([`status_after`]).

use bus::{ConsumeError, Consumer, Envelope, Tx};
use serde::Deserialize;

use super::checkout::{FailureReason, handled_messages, status_after};
use super::db::{move_status, move_statuses};
use super::status::OrderStatus;
use crate::ids::OrderId;

/// Applies the saga's outcomes to the order row. Every update is conditional on the statuses
/// that may precede the new one, so a redelivered or out-of-date message changes nothing.
pub struct OrderStatusUpdater;

/// What every checkout message that moves an order carries: the order, and the reason when the
/// checkout failed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Moved {
    order_id: OrderId,
    #[serde(default)]
    reason: Option<FailureReason>,
}

#[bus::async_trait]
impl Consumer for OrderStatusUpdater {
    fn name(&self) -> &str {
        "ordering.order-status"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        handled_messages()
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

/// The order a message is about, the status the checkout says it moves the order to, and the
/// failure reason.
fn target(message: &Envelope) -> Result<(OrderId, OrderStatus, Option<String>), ConsumeError> {
    let status = status_after(&message.message_type).ok_or_else(|| {
        let kind = &message.message_type;
        ConsumeError::permanent(format!("{kind} moves no order"))
    })?;
    let moved: Moved = serde_json::from_str(&message.payload)?;
    let reason = moved.reason.map(|reason| reason.to_string());
    Ok((moved.order_id, status, reason))
}

fn log_outcome(order: OrderId, status: OrderStatus, moved: bool) {
    if moved {
        tracing::info!(order_id = %order, status = status.as_str(), "order status changed");
    } else {
        tracing::debug!(order_id = %order, status = status.as_str(),
            "order status unchanged: already there or past it");
    }
}
