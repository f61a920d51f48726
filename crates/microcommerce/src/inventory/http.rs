//! Stock routes: levels for everyone, adjustments for admins.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::http::{Admin, Json, Page, Paging, Path, Query, rfc3339};
use crate::ids::ProductId;
use crate::state::AppState;
use crate::{Error, Result};

/// Available units at or below which a product counts as low on stock.
pub const LOW_STOCK: i64 = 10;
/// Most products one stock query may name.
const MAX_IDS: usize = 100;

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

/// One product's stock level.
#[utoipa::path(get, path = "/stock/{productId}", tag = "inventory",
    params(("productId" = ProductId, Path, description = "Product id")),
    responses((status = 200, body = StockView), (status = 404, body = crate::error::Problem)))]
pub async fn get_stock(
    State(state): State<AppState>,
    Path(product): Path<ProductId>,
) -> Result<Json<StockView>> {
    let row =
        sqlx::query("SELECT product_id, on_hand, reserved FROM stock_items WHERE product_id = $1")
            .bind(product.to_string())
            .fetch_optional(&mut state.read().await?)
            .await?
            .ok_or(Error::NotFound("stock item"))?;
    Ok(Json(stock_view(&row)?))
}

/// Which products to report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct StockQuery {
    /// Comma-separated product ids (1 to 100).
    #[param(
        required = true,
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$"
    )]
    product_ids: Option<String>,
}

/// Stock levels of several products; unknown ids are left out.
#[utoipa::path(get, path = "/stock", tag = "inventory", params(StockQuery),
    responses((status = 200, body = Vec<StockView>), (status = 400, body = crate::error::Problem)))]
pub async fn list_stock(
    State(state): State<AppState>,
    Query(query): Query<StockQuery>,
) -> Result<Json<Vec<StockView>>> {
    let ids = parse_ids(query.product_ids.as_deref().unwrap_or_default())?;
    stock_levels(&state, &ids).await.map(Json)
}

/// Stock levels of `ids`, in that order; unknown ids are left out.
pub(crate) async fn stock_levels(state: &AppState, ids: &[ProductId]) -> Result<Vec<StockView>> {
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

fn parse_ids(text: &str) -> Result<Vec<ProductId>> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() || parts.len() > MAX_IDS {
        return Err(Error::invalid(
            "productIds",
            "give 1 to 100 comma-separated product ids",
        ));
    }
    let mut ids: Vec<ProductId> = Vec::with_capacity(parts.len());
    for part in parts {
        let id = part
            .parse()
            .map_err(|_| Error::invalid("productIds", format!("{part:?} is not a product id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A change to the units on hand.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    /// Units to add (positive) or remove (negative); never zero, at most 1,000,000,000 either way.
    #[schema(schema_with = adjustment_schema)]
    #[serde(deserialize_with = "crate::http::integer")]
    adjustment: i64,
    /// Why, for the history (at most 500 characters).
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// A non-zero count of units within a billion either way.
fn adjustment_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let range = |min: i64, max: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(min))
            .maximum(Some(max))
    };
    Schema::OneOf(
        OneOfBuilder::new()
            .item(range(1, 1_000_000_000))
            .item(range(-1_000_000_000, -1))
            .build(),
    )
}

/// Adds or removes units on hand; 422 if on hand would drop below zero or below what is
/// reserved. One conditional update, so a concurrent reservation can never be undercut.
#[utoipa::path(post, path = "/stock/{productId}/adjust", tag = "inventory",
    params(("productId" = ProductId, Path, description = "Product id")), request_body = Adjustment,
    security(("admin" = [])),
    responses((status = 204), (status = 422, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn adjust(
    _: Admin,
    State(state): State<AppState>,
    Path(product): Path<ProductId>,
    Json(body): Json<Adjustment>,
) -> Result<StatusCode> {
    if body.adjustment == 0 || body.adjustment.unsigned_abs() > 1_000_000_000 {
        return Err(Error::invalid(
            "adjustment",
            "must be a non-zero number of units",
        ));
    }
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(Error::invalid("reason", "must be at most 500 characters"));
    }
    state
        .write(body, move |tx, body| {
            Box::pin(record_adjustment(tx, product, body))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adjusts `product`'s stock by `body` and records why, in the caller's transaction; refused
/// when it would undercut what is held.
async fn record_adjustment(
    tx: &mut bus::Tx<'_>,
    product: ProductId,
    body: &Adjustment,
) -> Result<()> {
    let now = tx.now().await?;
    let after: Option<i64> = sqlx::query_scalar(
        "UPDATE stock_items SET on_hand = on_hand + $1, updated_at = $2 \
         WHERE product_id = $3 AND on_hand + $1 >= reserved AND on_hand + $1 >= 0 \
         RETURNING on_hand",
    )
    .bind(body.adjustment)
    .bind(now.0)
    .bind(product.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(after) = after else {
        return Err(refusal(tx, product, body.adjustment).await);
    };
    sqlx::query(
        "INSERT INTO stock_adjustments (product_id, adjustment, quantity_after, reason, adjusted_by, at) \
         VALUES ($1, $2, $3, $4, 'admin', $5)",
    )
    .bind(product.to_string())
    .bind(body.adjustment)
    .bind(after)
    .bind(body.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()))
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

/// One entry of the adjustment history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentView {
    id: i64,
    adjustment: i64,
    quantity_after: i64,
    reason: Option<String>,
    adjusted_by: String,
    #[schema(format = DateTime)]
    at: String,
}

/// A product's adjustments, newest first, paged.
#[utoipa::path(get, path = "/stock/{productId}/adjustments", tag = "inventory",
    params(("productId" = ProductId, Path, description = "Product id"), Paging),
    security(("admin" = [])),
    responses((status = 200, body = Page<AdjustmentView>), (status = 404, body = crate::error::Problem)))]
pub async fn adjustments(
    _: Admin,
    State(state): State<AppState>,
    Path(product): Path<ProductId>,
    Query(paging): Query<Paging>,
) -> Result<Json<Page<AdjustmentView>>> {
    let (page, page_size) = paging.resolve()?;
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
    .bind(i64::from(page_size))
    .bind(Paging::offset(page, page_size))
    .fetch_all(&mut conn)
    .await?;
    let history = rows
        .iter()
        .map(|row| {
            Ok(AdjustmentView {
                id: row.try_get("id")?,
                adjustment: row.try_get("adjustment")?,
                quantity_after: row.try_get("quantity_after")?,
                reason: row.try_get("reason")?,
                adjusted_by: row.try_get("adjusted_by")?,
                at: rfc3339(storage::Timestamp(row.try_get("at")?)),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(Page {
        items: history,
        total_count,
        page,
        page_size,
    }))
}
