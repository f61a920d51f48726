//! Buyer-facing ordering routes: checkout, an order, its saga, my orders. Each handler turns
//! HTTP into a call of ordering's service functions and the answer back into HTTP.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use super::checkout::{CheckoutState, diagram};
use super::domain::{CheckoutRequest, ShippingAddress};
use super::listing::{OrderSummary, list_orders};
use super::placing::check_out;
use super::status::OrderStatus;
use super::views::{checkout_of, visible_order_with_items};
use super::waiting::{order_after_change, status_after};
use crate::http::{Caller, Json, Page, Paging, Path, PreferWait, Query, rfc3339};
use crate::ids::{OrderId, ProductId};
use crate::money::Money;
use crate::state::AppState;
use crate::{Error, Result};

/// The answer to a checkout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutCreated {
    /// The new order.
    pub order_id: OrderId,
    /// Its human-friendly number.
    pub order_number: String,
    /// The order's status: `Submitted`, as the checkout placed it (a repeat with the same
    /// `Idempotency-Key` answers the same). With `Prefer: wait=N` the answer is held until the
    /// saga has moved the order on (`StockReserved` or `Failed`), N seconds at most, and says
    /// where it stands then. The same on every backend.
    pub status: OrderStatus,
}

/// Places an order from the given lines or the buyer's cart and starts its checkout saga. The
/// lines and their catalog snapshot are read first, off the single writer (a checkout takes
/// the cart and the prices as they are when it starts); the order and the CheckoutStarted that
/// starts its saga then commit in one transaction. An `Idempotency-Key` makes a retried
/// request return the same order.
#[utoipa::path(post, path = "/checkout", tag = "ordering",
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY,
            min_length = 1, max_length = 200, pattern = r"^[!-~]([ -~]*[!-~])?$"),
        ("Prefer" = Option<String>, Header, description = PreferWait::DESCRIPTION)),
    responses((status = 201, description = "The order was placed (or had been, under this key)",
            body = CheckoutCreated,
            headers(("Location" = String, description = "The new order"))),
        (status = 422, description = "The cart is empty, a product is not for sale, or the \
            `Idempotency-Key` was used before with a different request (problem type \
            `urn:microcommerce:problem:idempotency-key-reused`)", body = crate::error::Problem),
        (status = 429, description = "The buyer, or every buyer behind the client's address \
            together, already holds as many unpaid checkouts as allowed (problem type \
            `urn:microcommerce:problem:too-many-unpaid-checkouts`; `Retry-After` says when the \
            oldest one's payment window closes), or the client writes faster than its rate",
            body = crate::error::Problem,
            headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    wait: PreferWait,
    headers: HeaderMap,
    Json(request): Json<CheckoutRequest>,
) -> Result<Response> {
    let key = idempotency_key(&headers)?;
    let valid = request.validate().map_err(super::domain::refusal)?;
    let placed = check_out(&state, caller.buyer, caller.address, valid, key).await?;
    // The answer as the checkout placed it, for a repeat under its key as for the first.
    let status = status_after(&state, placed.id, OrderStatus::Submitted, wait).await;
    let mut answer = created(placed.id, placed.order_number, status);
    wait.mark_applied(&mut answer);
    Ok(answer)
}

/// The `Idempotency-Key` header's description in the API document.
const IDEMPOTENCY_KEY: &str = "Makes a retried checkout safe: a repeat of the same request \
    by the same buyer with the same key answers the order the first one placed, without placing \
    another; the same key with a different request is refused (422). 1 to 200 visible ASCII \
    characters (inner spaces allowed).";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    // Exactly what the document's pattern allows: visible ASCII, inner spaces.
    let key = value.as_bytes();
    let visible = |b: &u8| (0x21..=0x7e).contains(b);
    let allowed = key.iter().all(|b| *b == b' ' || visible(b));
    let ends_visible = key.first().is_some_and(visible) && key.last().is_some_and(visible);
    match std::str::from_utf8(key) {
        Ok(key) if allowed && ends_visible && key.len() <= 200 => Ok(Some(key.to_owned())),
        _ => Err(Error::invalid(
            "Idempotency-Key",
            "must be 1 to 200 visible ASCII characters",
        )),
    }
}

fn created(order_id: OrderId, order_number: String, status: OrderStatus) -> Response {
    let location = format!("/api/ordering/orders/{order_id}");
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CheckoutCreated {
            order_id,
            order_number,
            status,
        }),
    )
        .into_response()
}

/// An order as its buyer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    id: OrderId,
    order_number: String,
    buyer_email: String,
    shipping_address: ShippingAddress,
    status: OrderStatus,
    items: Vec<OrderItemView>,
    #[schema(value_type = f64)]
    subtotal: Money,
    #[schema(value_type = f64)]
    shipping_cost: Money,
    #[schema(value_type = f64)]
    tax: Money,
    #[schema(value_type = f64)]
    total: Money,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    paid_at: Option<String>,
    failure_reason: Option<String>,
}

/// One line of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemView {
    product_id: ProductId,
    product_name: String,
    #[schema(value_type = f64)]
    unit_price: Money,
    quantity: u32,
    #[schema(value_type = f64)]
    line_total: Money,
    image_url: Option<String>,
}

/// Long polling: instead of asking again and again whether an order has moved on, a client
/// asks once and the answer is held until it has.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderWait {
    /// Hold the answer while the order still has this status (e.g. `Submitted`), until it
    /// changes or `timeoutMs` passes; the order is returned either way.
    #[param(value_type = Option<OrderStatus>)]
    wait_while: Option<String>,
    /// How long to hold the answer at most, in milliseconds (default 10000).
    #[param(minimum = 0, maximum = 30000)]
    timeout_ms: Option<u64>,
}

/// How long a long poll is held when `timeoutMs` is not given.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// The longest long poll.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

impl OrderWait {
    /// The status to wait out and for how long, or a 400 for a bad value.
    fn resolve(&self) -> Result<Option<(OrderStatus, Duration)>> {
        let Some(text) = self.wait_while.as_deref() else {
            return Ok(None);
        };
        let status = OrderStatus::parse(text)
            .ok_or_else(|| Error::invalid("waitWhile", "unknown order status"))?;
        let timeout = self.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
        if timeout > LONGEST_WAIT {
            return Err(Error::invalid("timeoutMs", "at most 30000"));
        }
        Ok(Some((status, timeout)))
    }
}

/// One order, for the buyer who placed it or an admin; with `waitWhile` the answer is held
/// until the order leaves that status (long polling).
#[utoipa::path(get, path = "/orders/{id}", tag = "ordering",
    params(("id" = OrderId, Path, description = "Order id"), OrderWait),
    responses((status = 200, body = OrderView), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    Query(wait): Query<OrderWait>,
) -> Result<Json<OrderView>> {
    let (order, items) = match wait.resolve()? {
        Some((status, timeout)) => order_after_change(&state, &caller, id, status, timeout).await?,
        None => visible_order_with_items(&state, &caller, id).await?,
    };
    Ok(Json(OrderView {
        id: order.id,
        order_number: order.order_number,
        buyer_email: order.buyer_email,
        shipping_address: order.address,
        status: order.status,
        items: items
            .into_iter()
            .map(|item| OrderItemView {
                line_total: item.unit_price * item.quantity,
                product_id: item.product_id,
                product_name: item.product_name,
                unit_price: item.unit_price,
                quantity: item.quantity,
                image_url: item.image_url,
            })
            .collect(),
        subtotal: order.totals.subtotal,
        shipping_cost: order.totals.shipping,
        tax: order.totals.tax,
        total: order.totals.total,
        created_at: rfc3339(order.created_at),
        paid_at: order.paid_at.map(rfc3339),
        failure_reason: order.failure_reason.map(|reason| reason.to_string()),
    }))
}

/// The checkout saga of an order, with its timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutView {
    order_id: OrderId,
    #[schema(value_type = SagaState)]
    state: String,
    version: i64,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    failure_reason: Option<String>,
    timeline: Vec<TimelineView>,
    /// Events that came before the checkout could take them, waiting for it to move on.
    parked: Vec<ParkedView>,
    /// For admins: the messages queued for this checkout (its payment timeout, say, or a
    /// delivery in retry). Absent for buyers.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<Vec<WaitingView>>,
}

/// An event parked for a checkout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParkedView {
    /// Its message type.
    message_type: String,
    /// When it was parked.
    #[schema(format = DateTime)]
    parked_at: String,
}

/// A message queued for a checkout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitingView {
    /// The consumer it is addressed to.
    consumer: String,
    /// Its message type.
    message_type: String,
    /// When it is due (for a scheduled timeout, when the window closes).
    #[schema(format = DateTime)]
    due_at: String,
    /// Failed attempts so far; more than zero means it is in retry.
    attempts: u32,
    /// The last attempt's error.
    last_error: Option<String>,
}

/// The states of the checkout saga, as its view and timeline name them: the names come from
/// the checkout's declaration, so the document lists exactly the states the saga has.
pub(super) struct SagaState;

impl utoipa::PartialSchema for SagaState {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(diagram().states.clone()))
            .description(Some(
                "The states of the checkout saga, as its view and timeline name them.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for SagaState {}

/// One step of a saga's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineView {
    #[schema(format = DateTime)]
    at: String,
    event: String,
    #[schema(value_type = Option<SagaState>)]
    from_state: Option<String>,
    #[schema(value_type = SagaState)]
    to_state: String,
    messages_sent: Vec<String>,
}

/// The saga behind an order: state, version and every step, for the buyer or an admin.
#[utoipa::path(get, path = "/orders/{id}/checkout", tag = "ordering",
    params(("id" = OrderId, Path, description = "Order id")),
    responses((status = 200, body = CheckoutView), (status = 404, body = crate::error::Problem)))]
pub async fn get_checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<Json<CheckoutView>> {
    let instance = checkout_of(&state, &caller, id).await?;
    let waiting = if caller.is_admin {
        let queued = state.bus.waiting_for(id.0).await?;
        Some(
            queued
                .into_iter()
                .map(|message| WaitingView {
                    consumer: message.consumer,
                    message_type: message.message_type,
                    due_at: rfc3339(message.available_at),
                    attempts: message.attempts,
                    last_error: message.last_error,
                })
                .collect(),
        )
    } else {
        None
    };
    let failure_reason = match serde_json::from_value::<CheckoutState>(instance.data) {
        Ok(CheckoutState::Failed { reason }) => Some(reason.to_string()),
        _ => None,
    };
    Ok(Json(CheckoutView {
        order_id: id,
        state: instance.state,
        version: instance.version,
        started_at: rfc3339(instance.created_at),
        updated_at: rfc3339(instance.updated_at),
        failure_reason,
        timeline: instance
            .timeline
            .into_iter()
            .map(|step| TimelineView {
                at: rfc3339(step.at),
                event: step.event,
                from_state: step.from_state,
                to_state: step.to_state,
                messages_sent: step.messages_sent,
            })
            .collect(),
        parked: instance
            .parked
            .into_iter()
            .map(|parked| ParkedView {
                message_type: parked.message_type,
                parked_at: rfc3339(parked.parked_at),
            })
            .collect(),
        waiting,
    }))
}

/// Filters of order listings (paged by [`Paging`]).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub(super) status: Option<OrderStatus>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders/my", tag = "ordering",
    params(OrderFilter, Paging),
    responses((status = 200, body = Page<OrderSummary>), (status = 400, body = crate::error::Problem)))]
pub async fn my_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<OrderFilter>,
    Query(paging): Query<Paging>,
) -> Result<Json<Page<OrderSummary>>> {
    list_orders(&state, Some(caller.buyer), filter.status, paging.request()?)
        .await
        .map(Json)
}
