//! Admin ordering routes: every order, the dashboard, shipping steps.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::http::OrderFilter;
use super::listing::{Dashboard, OrderSummary, list_orders};
use super::progress;
use super::status::OrderStatus;
use crate::Result;
use crate::http::{Admin, Json, Page, Paging, Path, Query};
use crate::ids::OrderId;
use crate::state::AppState;

/// Every order, newest first.
#[utoipa::path(get, path = "/orders", tag = "ordering-admin",
    params(OrderFilter, Paging), security(("admin" = [])),
    responses((status = 200, body = Page<OrderSummary>), (status = 401, body = crate::error::Problem)))]
pub async fn all_orders(
    _: Admin,
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
    Query(paging): Query<Paging>,
) -> Result<Json<Page<OrderSummary>>> {
    list_orders(&state, None, filter.status, paging.request()?)
        .await
        .map(Json)
}

/// Counts by status, revenue and today's orders.
#[utoipa::path(get, path = "/dashboard", tag = "ordering-admin",
    security(("admin" = [])),
    responses((status = 200, body = Dashboard), (status = 401, body = crate::error::Problem)))]
pub async fn dashboard(_: Admin, State(state): State<AppState>) -> Result<Json<Dashboard>> {
    super::listing::dashboard(&state).await.map(Json)
}

/// A new status chosen by an admin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// `Shipped` (from Confirmed) or `Delivered` (from Shipped); any other is refused (422).
    new_status: OrderStatus,
}

/// Moves an order along the shipping steps; every other change belongs to the saga (422).
#[utoipa::path(patch, path = "/orders/{id}/status", tag = "ordering-admin",
    operation_id = "change_order_status",
    params(("id" = OrderId, Path, description = "Order id")), request_body = StatusChange,
    security(("admin" = [])),
    responses((status = 204), (status = 422, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn change_status(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
    Json(change): Json<StatusChange>,
) -> Result<StatusCode> {
    progress::change_status(&state, id, change.new_status).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a checkout that awaits payment: the saga releases the stock and fails the order
/// with the reason "Cancelled by an operator", as its timeout would, a moment after this
/// answer (202). A cancel racing a payment or the timeout: exactly one of them wins; the
/// others are refused.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "ordering-admin",
    operation_id = "cancel_checkout",
    params(("id" = OrderId, Path, description = "Order id")),
    security(("admin" = [])),
    responses((status = 202, description = "The checkout saga will fail the order"),
        (status = 401, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, description = "The checkout does not await payment", body = crate::error::Problem)))]
pub async fn cancel(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
) -> Result<StatusCode> {
    super::cancelling::cancel_checkout(&state, id).await?;
    Ok(StatusCode::ACCEPTED)
}
