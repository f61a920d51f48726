//! The pay route: HTTP in, [`record_payment`] and the wait for the saga, HTTP out.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::service::{PaymentResult, record_payment};
use crate::Result;
use crate::http::{Caller, Json, Path, PreferWait};
use crate::ids::OrderId;
use crate::ordering::status_after;
use crate::state::AppState;

/// What the simulated provider should answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    /// `true` pays, `false` is declined.
    pub should_succeed: bool,
}

/// Pays (or declines) an order that awaits payment; 409 when it does not (stock not yet
/// reserved, already paid or declined, failed, or the payment window closed).
#[utoipa::path(post, path = "/orders/{id}/pay", tag = "payment",
    params(("id" = OrderId, Path, description = "Order id"),
        ("Prefer" = Option<String>, Header, description = PreferWait::DESCRIPTION)),
    request_body = PaymentRequest,
    responses((status = 200, body = PaymentResult), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    wait: PreferWait,
    Json(request): Json<PaymentRequest>,
) -> Result<Response> {
    let timeout = state.config.payment_timeout;
    let payer = (!caller.is_admin).then_some(caller.buyer);
    let succeed = request.should_succeed;
    let result = state
        .write((), move |tx, ()| {
            Box::pin(record_payment(tx, id, payer, succeed, timeout))
        })
        .await?;
    let order_status = status_after(&state, id, result.order_status, wait).await;
    let mut answer = Json(PaymentResult {
        order_status,
        ..result
    })
    .into_response();
    wait.mark_applied(&mut answer);
    Ok(answer)
}
