//! The inventory's service: what the JSON handlers, the storefront and other modules ask of
//! the stock. Levels (one, several), adjustments and their history, and the stock item every
//! new product gets. Reserving and releasing belong to the checkout's messages (`consumers`).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::db;
use crate::http::{Page, PageRequest, rfc3339};
use crate::ids::{OrderId, ProductId};
use crate::state::AppState;
use crate::{Error, Result};

/// Available units at or below which a product counts as low on stock.
pub const LOW_STOCK: i64 = 10;

/// Most units one adjustment may add or remove.
const MAX_ADJUSTMENT: u64 = 1_000_000_000;

/// Longest reason an adjustment may give, in characters.
const MAX_REASON: usize = 500;

/// A product's stock level.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub(crate) product_id: ProductId,
    pub(crate) quantity_on_hand: i64,
    pub(crate) reserved_quantity: i64,
    pub(crate) available_quantity: i64,
    pub(crate) is_in_stock: bool,
    pub(crate) is_low_stock: bool,
}

fn stock_view(row: &AnyRow) -> Result<StockView, sqlx::Error> {
    let on_hand: i64 = row.try_get("on_hand")?;
    let reserved: i64 = row.try_get("reserved")?;
    let available = on_hand - reserved;
    Ok(StockView {
        product_id: row
            .try_get::<String, _>("product_id")?
            .parse()
            .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))?,
        quantity_on_hand: on_hand,
        reserved_quantity: reserved,
        available_quantity: available,
        is_in_stock: available > 0,
        is_low_stock: available <= LOW_STOCK,
    })
}

/// `product`'s stock level; not found when it has no stock item.
pub async fn stock_level(state: &AppState, product: ProductId) -> Result<StockView> {
    let row =
        sqlx::query("SELECT product_id, on_hand, reserved FROM stock_items WHERE product_id = $1")
            .bind(product.to_string())
            .fetch_optional(&mut state.read().await?)
            .await?
            .ok_or(Error::NotFound("stock item"))?;
    Ok(stock_view(&row)?)
}

/// Stock levels of `ids`, in that order; unknown ids are left out.
pub async fn stock_levels(state: &AppState, ids: &[ProductId]) -> Result<Vec<StockView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Only numbered placeholders are spliced in; the ids themselves are bound.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT product_id, on_hand, reserved FROM stock_items WHERE product_id IN ({})",
        storage::placeholders(1, ids.len())
    ));
    let rows = ids
        .iter()
        .fold(sqlx::query(sql), |query, id| query.bind(id.to_string()))
        .fetch_all(&mut state.read().await?)
        .await?;
    let mut levels = rows
        .iter()
        .map(stock_view)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // In the order asked for.
    levels.sort_by_key(|level| ids.iter().position(|id| *id == level.product_id));
    Ok(levels)
}

/// Creates the stock item of a new product with `on_hand` units (0 for products created
/// through the API), in the caller's transaction so that a product never lacks one.
pub async fn create_stock_item(
    conn: &mut storage::Conn<'_>,
    product_id: ProductId,
    on_hand: i64,
    now: storage::Timestamp,
) -> Result<(), sqlx::Error> {
    db::create_stock_item(conn, product_id, on_hand, now).await
}

/// A change to the units on hand that passed validation.
struct Change {
    units: i64,
    reason: Option<String>,
}

/// Adds (positive) or removes (negative) `units` on hand of `product` and records `reason`;
/// refused if on hand would drop below zero or below what is reserved. One conditional
/// update, so a concurrent reservation can never be undercut.
pub async fn adjust_stock(
    state: &AppState,
    product: ProductId,
    units: i64,
    reason: Option<String>,
) -> Result<()> {
    if units == 0 || units.unsigned_abs() > MAX_ADJUSTMENT {
        return Err(Error::invalid(
            "adjustment",
            "must be a non-zero number of units",
        ));
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON)
    {
        return Err(Error::invalid("reason", "must be at most 500 characters"));
    }
    if reason.as_deref().is_some_and(crate::domain::has_nul) {
        return Err(Error::invalid("reason", crate::domain::NUL_REFUSED));
    }
    state
        .write(Change { units, reason }, move |tx, change| {
            Box::pin(record_adjustment(tx, product, change))
        })
        .await
}

/// Adjusts `product`'s stock by `change` and records why, in the caller's transaction;
/// refused when it would undercut what is held.
async fn record_adjustment(
    tx: &mut bus::Tx<'_>,
    product: ProductId,
    change: &Change,
) -> Result<()> {
    let now = tx.now().await?;
    let after: Option<i64> = sqlx::query_scalar(
        "UPDATE stock_items SET on_hand = on_hand + $1, updated_at = $2 \
         WHERE product_id = $3 AND on_hand + $1 >= reserved AND on_hand + $1 >= 0 \
         RETURNING on_hand",
    )
    .bind(change.units)
    .bind(now.0)
    .bind(product.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(after) = after else {
        return Err(refusal(tx, product, change.units).await);
    };
    sqlx::query(
        "INSERT INTO stock_adjustments (product_id, adjustment, quantity_after, reason, adjusted_by, at) \
         VALUES ($1, $2, $3, $4, 'admin', $5)",
    )
    .bind(product.to_string())
    .bind(change.units)
    .bind(after)
    .bind(change.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()))
    .bind(now.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Why an adjustment was refused: no such item, or it would undercut what is held.
async fn refusal(tx: &mut bus::Tx<'_>, product: ProductId, adjustment: i64) -> Error {
    let row = sqlx::query("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_optional(&mut **tx)
        .await;
    match row {
        Ok(Some(row)) => {
            let on_hand: i64 = row.try_get("on_hand").unwrap_or_default();
            let reserved: i64 = row.try_get("reserved").unwrap_or_default();
            Error::InsufficientStock {
                product,
                adjustment,
                on_hand_after: on_hand + adjustment,
                reserved,
            }
        }
        Ok(None) => Error::NotFound("stock item"),
        Err(error) => error.into(),
    }
}

/// Stock one order holds or held for one product: what the console shows beside an order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    /// The product reserved.
    pub product_id: ProductId,
    /// Units reserved.
    pub quantity: i64,
    /// `Held` while the checkout runs, then `Deducted` (sold) or `Released` (given back).
    pub status: String,
    /// When the stock was reserved.
    pub created_at: storage::Timestamp,
    /// When the reservation ended, if it has.
    pub ended_at: Option<storage::Timestamp>,
}

/// The reservations of order `order`, by product.
pub async fn reservations_of(state: &AppState, order: OrderId) -> Result<Vec<ReservationView>> {
    let rows = sqlx::query(
        "SELECT product_id, quantity, status, created_at, ended_at FROM stock_reservations \
         WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(order.to_string())
    .fetch_all(&mut state.read().await?)
    .await?;
    let view = |row: &AnyRow| -> Result<ReservationView, sqlx::Error> {
        Ok(ReservationView {
            product_id: row
                .try_get::<String, _>("product_id")?
                .parse()
                .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))?,
            quantity: row.try_get("quantity")?,
            status: row.try_get("status")?,
            created_at: storage::Timestamp(row.try_get("created_at")?),
            ended_at: row
                .try_get::<Option<i64>, _>("ended_at")?
                .map(storage::Timestamp),
        })
    };
    Ok(rows.iter().map(view).collect::<Result<_, _>>()?)
}

/// One entry of the adjustment history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentView {
    pub(crate) id: i64,
    pub(crate) adjustment: i64,
    pub(crate) quantity_after: i64,
    pub(crate) reason: Option<String>,
    pub(crate) adjusted_by: String,
    #[schema(format = DateTime)]
    pub(crate) at: String,
}

fn adjustment_view(row: &AnyRow) -> Result<AdjustmentView, sqlx::Error> {
    Ok(AdjustmentView {
        id: row.try_get("id")?,
        adjustment: row.try_get("adjustment")?,
        quantity_after: row.try_get("quantity_after")?,
        reason: row.try_get("reason")?,
        adjusted_by: row.try_get("adjusted_by")?,
        at: rfc3339(storage::Timestamp(row.try_get("at")?)),
    })
}

/// `product`'s adjustments, newest first, on `page`; not found when it has no stock item.
pub async fn adjustment_history(
    state: &AppState,
    product: ProductId,
    page: PageRequest,
) -> Result<Page<AdjustmentView>> {
    let mut conn = state.read().await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_items WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_one(&mut conn)
        .await?;
    if exists == 0 {
        return Err(Error::NotFound("stock item"));
    }
    let total_count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stock_adjustments WHERE product_id = $1")
            .bind(product.to_string())
            .fetch_one(&mut conn)
            .await?;
    let rows = sqlx::query(
        "SELECT id, adjustment, quantity_after, reason, adjusted_by, at FROM stock_adjustments \
         WHERE product_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(product.to_string())
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut conn)
    .await?;
    let history = rows
        .iter()
        .map(adjustment_view)
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(page.page_of(history, total_count))
}
