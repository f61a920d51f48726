//! Recording a payment: the simulated provider's answer is taken only while the checkout
//! awaits payment, recorded at most once per order and told to the checkout, in one
//! transaction.

use bus::Message;
use serde::Serialize;
use storage::Timestamp;
use tracing::Instrument;

use crate::contracts::{FailureReason, PaymentTimedOut};
use crate::ids::{BuyerId, OrderId};
use crate::ordering::checkout::{CheckoutSaga, CheckoutState, awaiting_payment};
use crate::ordering::{OrderStatus, tell_payment};
use crate::{Error, NotAwaitingPayment, Result};

/// The provider's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResult {
    /// Whether the payment went through.
    pub success: bool,
    /// Why not, when it did not.
    pub failure_reason: Option<String>,
    /// The order's status: `Paid`, or `StockReserved` after a refusal, as this payment left
    /// it. With `Prefer: wait=N` the answer is held until the saga confirms or fails the order,
    /// N seconds at most. The same on every backend.
    pub order_status: OrderStatus,
}

/// The payment recorded for an order: what the console shows beside it.
#[derive(Debug)]
pub struct PaymentView {
    /// Whether the provider accepted it.
    pub succeeded: bool,
    /// Why not, when it did not.
    pub failure_reason: Option<String>,
    /// When it was recorded.
    pub at: Timestamp,
}

/// The payment recorded for order `id`, if one was.
pub async fn payment_of(
    state: &crate::state::AppState,
    id: OrderId,
) -> Result<Option<PaymentView>> {
    let row: Option<(i64, Option<String>, i64)> =
        sqlx::query_as("SELECT succeeded, failure_reason, at FROM payments WHERE order_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut state.read().await?)
            .await?;
    Ok(row.map(|(succeeded, failure_reason, at)| PaymentView {
        succeeded: succeeded != 0,
        failure_reason,
        at: Timestamp(at),
    }))
}

/// Records the simulated provider's answer for an order that awaits payment, and publishes it
/// to the saga, in the caller's transaction: at most one payment per order. `payer` is the
/// buyer who must own the order (`None`: anyone may pay, as an admin may); an order that is not
/// theirs is not found. The HTTP handler and the in-process benchmark both use it.
pub async fn record_payment(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    payer: Option<BuyerId>,
    succeed: bool,
    timeout: std::time::Duration,
) -> Result<PaymentResult> {
    let now = tx.now().await?;
    let failure_reason = (!succeed).then(|| FailureReason::PaymentDeclined.to_string());
    // The answer and the payment timeout exclude each other: the answer counts only if it takes
    // the saga's pending timeout message, so a timeout already being handled (its worker's
    // transaction still open) wins, and one that was taken can no longer fire. A refusal rolls
    // the transaction back, which puts the timeout back.
    let taken_timeout = tx
        .take_scheduled(CheckoutSaga::NAME, id.0, PaymentTimedOut::TYPE)
        .await?;
    let gate = Gate::of(saga::current::<CheckoutSaga>(tx, id.0).await?, now, timeout);
    // One statement checks that the order is the payer's (and, while the saga takes in the
    // reservation, that the order shows it) and records the answer; only when it records
    // nothing is it worth finding out why.
    let recorded = sqlx::query(
        "INSERT INTO payments (order_id, succeeded, failure_reason, at) \
         SELECT $1, $2, $3, $4 FROM orders o WHERE o.id = $1 AND ($5 IS NULL OR o.buyer_id = $5) \
         AND ($6 = 1 OR ($7 = 1 AND o.status = $8)) \
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(i64::from(succeed))
    .bind(failure_reason.as_deref())
    .bind(now.0)
    .bind(payer.map(|buyer| buyer.to_string()))
    .bind(i64::from(gate == Gate::Open && taken_timeout.is_some()))
    .bind(i64::from(gate == Gate::IfOrderShowsReservation))
    .bind(awaiting_payment().as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if recorded == 0 {
        return Err(why_not_recorded(tx, id, payer, gate).await);
    }
    // The order shows what the checkout says the answer shows (paid), or stays awaiting payment.
    // Told in the checkout's trace, which the timeout carried: the payment is part of it.
    let joined = taken_timeout
        .as_ref()
        .map_or_else(tracing::Span::none, |headers| {
            bus::trace::joining(headers, "payment")
        });
    let moved = tell_payment(tx, id, succeed).instrument(joined).await?;
    let order_status = moved.unwrap_or_else(awaiting_payment);
    tracing::info!(order_id = %id, success = succeed, "payment recorded");
    Ok(PaymentResult {
        success: succeed,
        failure_reason,
        order_status,
    })
}

/// Whether the checkout saga lets a payment in, by its typed state: the saga is the source of
/// truth, so a payment can never race the timeout that releases the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Stock is reserved and the payment window is open.
    Open,
    /// The saga has not yet taken in the reservation. The order row and the saga take it in as
    /// two consumers of one event, so a buyer may see `StockReserved` a moment before the saga
    /// does: such a payment is accepted, and the saga parks it until it catches up.
    IfOrderShowsReservation,
    /// The checkout has not started yet.
    NotStarted,
    /// Stock was reserved too long ago.
    WindowClosed,
    /// The checkout has finished.
    Finished,
}

impl Gate {
    fn of(
        checkout: Option<saga::Current<CheckoutState>>,
        now: Timestamp,
        timeout: std::time::Duration,
    ) -> Self {
        let Some(checkout) = checkout else {
            return Self::NotStarted;
        };
        match checkout.state {
            CheckoutState::Submitted { .. } => Self::IfOrderShowsReservation,
            CheckoutState::StockReserved { .. } if now > checkout.updated_at.plus(timeout) => {
                Self::WindowClosed
            }
            CheckoutState::StockReserved { .. } => Self::Open,
            CheckoutState::Confirmed | CheckoutState::Failed { .. } => Self::Finished,
        }
    }
}

/// Why [`record_payment`] recorded nothing: the order is not the payer's (or does not exist),
/// it does not await payment, or it was paid already.
async fn why_not_recorded(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    payer: Option<BuyerId>,
    gate: Gate,
) -> Error {
    let order = match crate::ordering::order(tx, id).await {
        Ok(Some(order)) if payer.is_none_or(|buyer| buyer == order.buyer_id) => order,
        Ok(_) => return Error::NotFound("order"),
        Err(error) => return error,
    };
    let in_status = NotAwaitingPayment::InStatus(order.status.as_str());
    let why = match gate {
        Gate::NotStarted => NotAwaitingPayment::NotStarted,
        Gate::WindowClosed => NotAwaitingPayment::WindowClosed,
        Gate::Finished => in_status,
        Gate::IfOrderShowsReservation if order.status != awaiting_payment() => in_status,
        Gate::Open | Gate::IfOrderShowsReservation => match already_paid(tx, id).await {
            Ok(true) => NotAwaitingPayment::AlreadyPaid,
            // The saga awaits payment but its timeout was not there to take: it is being handled.
            Ok(false) => NotAwaitingPayment::WindowClosed,
            Err(error) => return error.into(),
        },
    };
    Error::NotAwaitingPayment(why)
}

async fn already_paid(tx: &mut bus::Tx<'_>, id: OrderId) -> sqlx::Result<bool> {
    let paid: Option<i64> = sqlx::query_scalar("SELECT 1 FROM payments WHERE order_id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(paid.is_some())
}
