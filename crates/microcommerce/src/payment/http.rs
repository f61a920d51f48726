//! The pay route.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::contracts::{PaymentCompleted, PaymentFailed, PaymentTimedOut};
use crate::http::{Caller, Json, Path};
use crate::ids::{BuyerId, OrderId};
use crate::ordering::checkout::{CheckoutSaga, PAYMENT_DECLINED};
use crate::ordering::db::{find_order, move_status};
use crate::ordering::domain::OrderStatus;
use crate::state::AppState;
use crate::{Error, Result};
use bus::Message;

/// What the simulated provider should answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    /// `true` pays, `false` is declined.
    pub should_succeed: bool,
}

/// The provider's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResult {
    /// Whether the payment went through.
    pub success: bool,
    /// Why not, when it did not.
    pub failure_reason: Option<String>,
    /// The order's status as the payment committed it: `Paid` (or still `StockReserved` after
    /// a refusal), or already `Confirmed` or `Failed` when the saga's next steps committed with
    /// the payment (SQLite). Poll the order only if it is neither.
    pub order_status: OrderStatus,
}

/// Pays (or declines) an order that awaits payment; 409 when it does not (stock not yet
/// reserved, already paid or declined, failed, or the payment window closed).
#[utoipa::path(post, path = "/api/ordering/orders/{id}/pay", tag = "payment",
    params(("id" = OrderId, Path, description = "Order id")), request_body = PaymentRequest,
    responses((status = 200, body = PaymentResult), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    Json(request): Json<PaymentRequest>,
) -> Result<Json<PaymentResult>> {
    let timeout = state.config.payment_timeout;
    let result = state
        .bus
        .transact(move |tx| {
            let payer = (!caller.is_admin).then_some(caller.buyer);
            Box::pin(record_payment(
                tx,
                id,
                payer,
                request.should_succeed,
                timeout,
            ))
        })
        .await?;
    let order_status = crate::ordering::http::status_now(&state, id, result.order_status).await;
    Ok(Json(PaymentResult {
        order_status,
        ..result
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
    let failure_reason = (!succeed).then(|| PAYMENT_DECLINED.to_owned());
    // The answer and the payment timeout exclude each other: the answer counts only if it takes
    // the saga's pending timeout message, so a timeout already being handled (its worker's
    // transaction still open) wins, and one that was taken can no longer fire. A refusal rolls
    // the transaction back, which puts the timeout back.
    let timeout_taken = tx
        .take_scheduled(CheckoutSaga::NAME, id.0, PaymentTimedOut::TYPE)
        .await?;
    // One statement checks that the order is the payer's and that its saga awaits payment
    // (see `ensure_awaiting_payment`), and records the answer; only when it records nothing is
    // it worth finding out why. A saga still behind the reservation has no timeout yet.
    let recorded = sqlx::query(
        "INSERT INTO payments (order_id, succeeded, failure_reason, at) \
         SELECT $1, $2, $3, $4 FROM saga_instances s JOIN orders o ON o.id = s.correlation_id \
         WHERE s.saga = $5 AND s.correlation_id = $1 AND ($7 IS NULL OR o.buyer_id = $7) \
         AND ((s.state = 'StockReserved' AND s.updated_at >= $6 AND $9 = 1) \
              OR (s.state = 'Submitted' AND o.status = $8)) \
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(i64::from(succeed))
    .bind(failure_reason.as_deref())
    .bind(now.0)
    .bind(CheckoutSaga::NAME)
    .bind(now.minus(timeout).0)
    .bind(payer.map(|buyer| buyer.to_string()))
    .bind(OrderStatus::StockReserved.as_str())
    .bind(i64::from(timeout_taken))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if recorded == 0 {
        return Err(why_not_recorded(tx, id, payer, timeout, now).await);
    }
    let order_status = if succeed {
        OrderStatus::Paid
    } else {
        OrderStatus::StockReserved
    };
    if succeed {
        move_status(tx, id, OrderStatus::Paid, None, now).await?;
        tx.publish(&PaymentCompleted { order_id: id }).await?;
    } else {
        let reason = PAYMENT_DECLINED.to_owned();
        tx.publish(&PaymentFailed {
            order_id: id,
            reason,
        })
        .await?;
    }
    tracing::info!(order_id = %id, success = succeed, "payment recorded");
    Ok(PaymentResult {
        success: succeed,
        failure_reason,
        order_status,
    })
}

/// Why [`record_payment`] recorded nothing: the order is not the payer's (or does not exist),
/// it does not await payment, or it was paid already.
async fn why_not_recorded(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    payer: Option<BuyerId>,
    timeout: std::time::Duration,
    now: storage::Timestamp,
) -> Error {
    let order = match find_order(tx, id).await {
        Ok(Some(order)) if payer.is_none_or(|buyer| buyer == order.buyer_id) => order,
        Ok(_) => return Error::NotFound("order"),
        Err(error) => return error.into(),
    };
    if let Err(error) = ensure_awaiting_payment(tx, &order, timeout, now).await {
        return error;
    }
    let paid: std::result::Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT 1 FROM payments WHERE order_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await;
    match paid {
        Ok(Some(_)) => not_awaiting("a payment for this order was already recorded".into()),
        // The saga awaits payment but its timeout was not there to take: it is being handled.
        Ok(None) => not_awaiting("the payment window has closed".into()),
        Err(error) => error.into(),
    }
}

/// The saga is the source of truth: it must await payment, and its payment window (which
/// opened when stock was reserved) must still be open, so that a payment can never race the
/// timeout that releases the stock.
///
/// The order row and the saga take in the reservation as two consumers of the same event, so
/// a buyer may see `StockReserved` a moment before the saga does. Such a payment is accepted:
/// the saga parks it until it has taken in the reservation, and its window has not opened yet.
async fn ensure_awaiting_payment(
    tx: &mut bus::Tx<'_>,
    order: &crate::ordering::db::Order,
    timeout: std::time::Duration,
    now: storage::Timestamp,
) -> Result<()> {
    let saga = sqlx::query(
        "SELECT state, updated_at FROM saga_instances WHERE saga = $1 AND correlation_id = $2",
    )
    .bind(CheckoutSaga::NAME)
    .bind(order.id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(saga) = saga else {
        return Err(not_awaiting(
            "the order's checkout has not started yet".into(),
        ));
    };
    let saga_state: String = saga.try_get("state")?;
    let reservation_in_flight =
        saga_state == "Submitted" && order.status == OrderStatus::StockReserved;
    if reservation_in_flight {
        return Ok(());
    }
    if saga_state != "StockReserved" {
        return Err(not_awaiting(format!(
            "the order is {} and does not await payment",
            order.status.as_str()
        )));
    }
    let reserved_at = storage::Timestamp(saga.try_get("updated_at")?);
    if now > reserved_at.plus(timeout) {
        return Err(not_awaiting("the payment window has closed".into()));
    }
    Ok(())
}

fn not_awaiting(detail: String) -> Error {
    Error::Conflict {
        kind: "not-awaiting-payment",
        detail,
    }
}
