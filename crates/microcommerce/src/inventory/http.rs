//! Stock routes: levels for everyone, adjustments for admins. Each handler turns the request
//! into a call to the inventory's service and its answer into JSON.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::service::{self, AdjustmentView, StockView};
use crate::http::{Admin, Json, Page, Paging, Path, Query};
use crate::ids::ProductId;
use crate::state::AppState;
use crate::{Error, Result};

/// Most products one stock query may name.
const MAX_IDS: usize = 100;

/// One product's stock level.
#[utoipa::path(get, path = "/stock/{productId}", tag = "inventory",
    params(("productId" = ProductId, Path, description = "Product id")),
    responses((status = 200, body = StockView), (status = 404, body = crate::error::Problem)))]
pub async fn get_stock(
    State(state): State<AppState>,
    Path(product): Path<ProductId>,
) -> Result<Json<StockView>> {
    service::stock_level(&state, product).await.map(Json)
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
    service::stock_levels(&state, &ids).await.map(Json)
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
    #[schema(max_length = 500, pattern = r"^[^\x00]*$")]
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
    service::adjust_stock(&state, product, body.adjustment, body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let page = paging.request()?;
    service::adjustment_history(&state, product, page)
        .await
        .map(Json)
}
