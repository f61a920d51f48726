//! Admin ordering routes: every order, the dashboard, shipping steps.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::db;
use super::domain::OrderStatus;
use super::http::{OrderFilter, OrderSummary, list_orders};
use crate::http::{Admin, Json, Page, Path, Query};
use crate::ids::OrderId;
use crate::money::Money;
use crate::state::AppState;
use crate::{Error, Result};

/// Every order, newest first.
#[utoipa::path(get, path = "/orders", tag = "ordering-admin",
    params(OrderFilter), security(("admin" = [])),
    responses((status = 200, body = Page<OrderSummary>), (status = 401, body = crate::error::Problem)))]
pub async fn all_orders(
    _: Admin,
    State(state): State<AppState>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Page<OrderSummary>>> {
    list_orders(&state, None, filter).await.map(Json)
}

/// The shop at a glance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Orders per status (every status present, zero included).
    counts_by_status: BTreeMap<&'static str, i64>,
    /// All orders.
    total_orders: i64,
    /// Sum of confirmed, shipped and delivered orders.
    #[schema(value_type = f64)]
    revenue: Money,
    /// Orders placed since midnight UTC.
    todays_orders: i64,
}

/// Counts by status, revenue and today's orders.
#[utoipa::path(get, path = "/dashboard", tag = "ordering-admin",
    security(("admin" = [])),
    responses((status = 200, body = Dashboard), (status = 401, body = crate::error::Problem)))]
pub async fn dashboard(_: Admin, State(state): State<AppState>) -> Result<Json<Dashboard>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
        .fetch_all(&mut state.read().await?)
        .await?;
    let mut counts_by_status: BTreeMap<&'static str, i64> = OrderStatus::ALL
        .iter()
        .map(|status| (status.as_str(), 0))
        .collect();
    for row in &rows {
        let status: String = row.try_get("status")?;
        if let Some(status) = OrderStatus::parse(&status) {
            counts_by_status.insert(status.as_str(), row.try_get("n")?);
        }
    }
    let revenue: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM orders \
         WHERE status IN ('Confirmed', 'Shipped', 'Delivered')",
    )
    .fetch_one(&mut state.read().await?)
    .await?;
    let now = state.db.now();
    let midnight = now.0 - now.0.rem_euclid(86_400_000_000);
    let todays_orders: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE created_at >= $1")
            .bind(midnight)
            .fetch_one(&mut state.read().await?)
            .await?;
    Ok(Json(Dashboard {
        total_orders: counts_by_status.values().sum(),
        counts_by_status,
        revenue: Money(revenue),
        todays_orders,
    }))
}

/// A new status chosen by an admin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// `Shipped` (from Confirmed) or `Delivered` (from Shipped); any other is refused (422).
    #[schema(value_type = OrderStatus)]
    new_status: String,
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
    let next = OrderStatus::parse(&change.new_status)
        .ok_or_else(|| Error::invalid("newStatus", "unknown order status"))?;
    state
        .write((), move |tx, ()| Box::pin(move_order(tx, id, next)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves order `id` to `next` in the caller's transaction, if an admin may.
async fn move_order(tx: &mut bus::Tx<'_>, id: OrderId, next: OrderStatus) -> Result<()> {
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
