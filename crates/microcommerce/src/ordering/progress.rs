//! How an order follows its checkout: each checkout message moves the order to the status the
//! checkout's declaration gives it ([`super::checkout::status_after`]), whether the message is
//! handled by ordering's status consumer or told in the transaction that sends it.

use bus::Message;

use super::checkout::{FailureReason, status_after};
use super::db;
use super::status::OrderStatus;
use crate::contracts::{PaymentCompleted, PaymentFailed};
use crate::ids::OrderId;
use crate::state::AppState;
use crate::{Error, Result};

/// Tells the checkout of order `id` that its payment came back, in the transaction that records
/// the payment: the saga hears it as an event, and the order shows at once what the
/// declaration says the answer shows, so the buyer who paid sees it paid. Returns the status
/// the order moved to, if it moved.
pub async fn tell_payment(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    paid: bool,
) -> Result<Option<OrderStatus>> {
    let message_type = if paid {
        tx.publish(&PaymentCompleted { order_id: id }).await?;
        PaymentCompleted::TYPE
    } else {
        let reason = FailureReason::PaymentDeclined;
        tx.publish(&PaymentFailed {
            order_id: id,
            reason,
        })
        .await?;
        PaymentFailed::TYPE
    };
    let Some(status) = status_after(message_type) else {
        return Ok(None);
    };
    let now = tx.now().await?;
    let moved = db::move_status(tx, id, status, None, now).await?;
    Ok(moved.then_some(status))
}

/// Moves order `id` to `next` along its life after the checkout ([`super::checkout::AFTER_CHECKOUT`]),
/// in the caller's transaction: 404 for no such order, 422 for a move the table does not allow.
/// Conditional on the status it checked, so a concurrent change is not overwritten.
pub async fn move_after_checkout(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    next: OrderStatus,
) -> Result<()> {
    let order = db::find_order(tx, id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if !order.status.admin_may_move_to(next) {
        return Err(Error::InvalidTransition {
            from: order.status.as_str(),
            to: next.as_str(),
        });
    }
    let now = tx.now().await?;
    db::set_status_from(tx, id, order.status, next, now).await?;
    Ok(())
}

/// Moves order `id` to `next` after its checkout ([`move_after_checkout`]) in a transaction of
/// its own: what the admin API and the console's ship and deliver buttons do.
pub async fn change_status(state: &AppState, id: OrderId, next: OrderStatus) -> Result<()> {
    state
        .write((), move |tx, ()| {
            Box::pin(move_after_checkout(tx, id, next))
        })
        .await
}

/// The move an admin may make next from `status`, if there is one (ship, then deliver).
pub fn next_move(status: OrderStatus) -> Option<OrderStatus> {
    super::checkout::AFTER_CHECKOUT
        .iter()
        .find(|(from, _)| *from == status)
        .map(|(_, to)| *to)
}
