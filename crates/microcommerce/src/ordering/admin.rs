//! Admin ordering routes: every order, the dashboard, shipping steps.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::checkouts::{Census, CheckoutPage, CheckoutQuery, census, list_checkouts};
use super::figures::Dashboard;
use super::finding::{Cursor, OrderSearch, day_start, find_orders};
use super::http::{OrderFilter, SagaState};
use super::listing::{OrderSummary, list_orders};
use super::progress;
use super::status::OrderStatus;
use crate::http::{Admin, Json, Page, Paging, Path, Query};
use crate::ids::OrderId;
use crate::state::AppState;
use crate::{Error, Result};

/// Every order, newest first, a page at a time by number.
///
/// A deep page walks every order before it; `GET /api/ordering/orders/search` pages by cursor
/// at the same cost on any page.
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
    super::figures::dashboard(&state).await.map(Json)
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

/// Which checkouts to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CheckoutListing {
    /// Only checkouts in this state of the checkout's declaration.
    #[param(value_type = Option<SagaState>)]
    state: Option<String>,
    /// Only unfinished checkouts that have not moved for the configured `--stuck-after`.
    #[serde(default)]
    stuck: bool,
    /// Where the page starts: the `next` of the page before (empty: the first page).
    #[param(
        pattern = r"^(|[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    after: Option<String>,
    /// Checkouts on the page (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// Checkouts by state or stuck, least recently moved first, each with why it waits; paged by
/// cursor (`next`), so that checkouts moving meanwhile are neither skipped nor repeated.
#[utoipa::path(get, path = "/checkouts", tag = "ordering-admin",
    params(CheckoutListing), security(("admin" = [])),
    responses((status = 200, body = CheckoutPage), (status = 401, body = crate::error::Problem)))]
pub async fn checkouts(
    _: Admin,
    State(state): State<AppState>,
    Query(listing): Query<CheckoutListing>,
) -> Result<Json<CheckoutPage>> {
    let limit = listing.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Error::BadRequest("limit must be between 1 and 100".into()));
    }
    let after = listing
        .after
        .as_deref()
        .filter(|after| !after.is_empty())
        .map(str::parse::<saga::Position>)
        .transpose()
        .map_err(Error::BadRequest)?;
    let query = CheckoutQuery {
        state: listing.state,
        stuck: listing.stuck,
        after,
        limit,
    };
    list_checkouts(&state, &query).await.map(Json)
}

/// The window the census counts moves over.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CensusWindow {
    /// Count the moves of the last this many minutes (default 60).
    #[param(minimum = 1, maximum = 1440)]
    window_minutes: Option<u32>,
}

/// The checkout's states and moves, as declared, with the checkouts in each state now and the
/// moves taken in the window: the numbers the console's diagram shows.
#[utoipa::path(get, path = "/checkouts/census", tag = "ordering-admin",
    params(CensusWindow), security(("admin" = [])),
    responses((status = 200, body = Census), (status = 401, body = crate::error::Problem)))]
pub async fn checkout_census(
    _: Admin,
    State(state): State<AppState>,
    Query(window): Query<CensusWindow>,
) -> Result<Json<Census>> {
    let minutes = window.window_minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(Error::BadRequest(
            "windowMinutes must be between 1 and 1440".into(),
        ));
    }
    let window = std::time::Duration::from_secs(u64::from(minutes) * 60);
    census(&state, window).await.map(Json)
}

/// What an admin searches orders by; every parameter narrows the search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// An order number (`MC-7Q2XKD`, any case, with or without `MC-`) or a buyer's email.
    q: Option<String>,
    /// Only orders in this status.
    status: Option<OrderStatus>,
    /// Only orders placed on or after this day (UTC).
    #[param(value_type = Option<String>, format = Date)]
    placed_from: Option<String>,
    /// Only orders placed on or before this day (UTC).
    #[param(value_type = Option<String>, format = Date)]
    placed_to: Option<String>,
    /// Where the page starts: the `next` of the page before (empty: the first page).
    #[param(
        pattern = r"^(|[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    after: Option<String>,
    /// Orders on the page (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// A page of a search, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    /// The orders.
    items: Vec<OrderSummary>,
    /// Pass as `after` for the next page; absent on the last one.
    next: Option<String>,
}

/// Orders found by number or email, status and days placed, newest first, paged by cursor: a
/// page costs the same at the millionth order as at the first, and orders placed meanwhile
/// neither shift nor repeat what follows.
#[utoipa::path(get, path = "/orders/search", tag = "ordering-admin",
    params(OrderQuery), security(("admin" = [])),
    responses((status = 200, body = OrderPage), (status = 401, body = crate::error::Problem)))]
pub async fn search_orders(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<OrderQuery>,
) -> Result<Json<OrderPage>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Error::BadRequest("limit must be between 1 and 100".into()));
    }
    let after = query
        .after
        .as_deref()
        .filter(|after| !after.is_empty())
        .map(str::parse::<Cursor>)
        .transpose()?;
    let search = OrderSearch {
        status: query.status,
        text: query
            .q
            .map(|q| q.replace('\0', "").trim().to_owned())
            .filter(|q| !q.is_empty()),
        placed_from: day(query.placed_from.as_deref(), 0)?,
        placed_before: day(query.placed_to.as_deref(), 1)?,
    };
    let batch = find_orders(&state, &search, after, limit).await?;
    Ok(Json(OrderPage {
        items: batch.items,
        next: batch.next.map(|next| next.to_string()),
    }))
}

/// A day given as a query parameter, plus `days`: unlike the console's blank field, an empty
/// value is not a day.
fn day(given: Option<&str>, days: i64) -> Result<Option<storage::Timestamp>> {
    match given {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => {
            Err(Error::BadRequest("a day is written as YYYY-MM-DD".into()))
        }
        Some(text) => day_start(text, days),
    }
}
