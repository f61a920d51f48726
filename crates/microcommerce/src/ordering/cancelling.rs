//! An operator cancels a checkout that awaits payment and will never be paid. The checkout
//! saga does the work, through an event it handles as it handles its timeout: it releases the
//! stock and fails the order with the reason "Cancelled by an operator". No row is edited here.
//!
//! A cancel and a payment race for one token, the checkout's pending payment timeout
//! ([`bus::Tx::take_scheduled`]): the payment takes it to count, the cancel takes it to be sent,
//! and the timeout itself is the third contender. Exactly one of the three wins.

use bus::Message;
use tracing::Instrument;

use super::checkout::{CheckoutSaga, CheckoutState};
use crate::contracts::{CheckoutCancelled, PaymentTimedOut};
use crate::ids::OrderId;
use crate::state::AppState;
use crate::{Error, NotAwaitingPayment, Result};

/// Cancels the checkout of order `id` if it awaits payment: 404 for no such order, 409 when it
/// does not await payment (not yet, or no longer: paid, timed out, finished). The order shows
/// `Failed` once the saga has handled the cancel, a moment later.
pub async fn cancel_checkout(state: &AppState, id: OrderId) -> Result<()> {
    state
        .write((), move |tx, ()| Box::pin(cancel_in(tx, id)))
        .await
}

async fn cancel_in(tx: &mut bus::Tx<'_>, id: OrderId) -> Result<()> {
    let order = super::db::find_order(tx, id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let timeout = tx
        .take_scheduled(CheckoutSaga::NAME, id.0, PaymentTimedOut::TYPE)
        .await?;
    // The token counts only while the checkout awaits payment: a timeout queued for a finished
    // one (delivered again after it was handled) is no window, and taking it must not answer
    // that the checkout will fail. A refusal rolls back, which puts what was taken back.
    let checkout = saga::current::<CheckoutSaga>(tx, id.0).await?;
    let awaiting = matches!(
        checkout.as_ref().map(|c| &c.state),
        Some(CheckoutState::StockReserved { .. })
    );
    let Some(timeout) = timeout.filter(|_| awaiting) else {
        let why = match checkout.map(|c| c.state) {
            None => NotAwaitingPayment::NotStarted,
            // Awaiting payment, yet the timeout was gone: a payment or the timeout took it.
            Some(CheckoutState::StockReserved { .. }) => NotAwaitingPayment::Settling,
            Some(_) => NotAwaitingPayment::InStatus(order.status.as_str()),
        };
        return Err(Error::NotAwaitingPayment(why));
    };
    // The cancel joins the checkout's trace, as the timeout it stands in for would have.
    tx.publish(&CheckoutCancelled { order_id: id })
        .instrument(bus::trace::joining(&timeout, "operator cancel"))
        .await?;
    tracing::info!(order_id = %id, "checkout cancelled by an operator");
    Ok(())
}
