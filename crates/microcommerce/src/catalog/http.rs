//! Catalog routes: browsing for everyone, editing for admins. Each handler turns the request
//! into a call to the catalog's service and its answer into JSON.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::db::ProductStatus;
use super::input::{CategoryInput, ProductInput};
use super::service::{self, CategoryView, ProductFilter, ProductView};
use crate::Result;
use crate::http::{Admin, Caller, Json, Page, Paging, Path, Query};
use crate::ids::{CategoryId, ProductId};
use crate::state::AppState;

/// Every category, by name. Unpaged: a shop has a few dozen at most.
#[utoipa::path(get, path = "/categories", tag = "catalog",
    responses((status = 200, body = Vec<CategoryView>)))]
pub async fn categories(State(state): State<AppState>) -> Result<Json<Vec<CategoryView>>> {
    service::list_categories(&state).await.map(Json)
}

/// One category.
#[utoipa::path(get, path = "/categories/{id}", tag = "catalog",
    params(("id" = CategoryId, Path, description = "Category id")),
    responses((status = 200, body = CategoryView), (status = 404, body = crate::error::Problem)))]
pub async fn category(
    State(state): State<AppState>,
    Path(id): Path<CategoryId>,
) -> Result<Json<CategoryView>> {
    service::category(&state, id).await.map(Json)
}

/// Creates a category.
#[utoipa::path(post, path = "/categories", tag = "catalog", request_body = CategoryInput,
    security(("admin" = [])),
    responses((status = 201, body = CategoryView,
            headers(("Location" = String, description = "The new category"))),
        (status = 409, description = "Another category has this name, in any case",
            body = crate::error::Problem)))]
pub async fn create_category(
    _: Admin,
    State(state): State<AppState>,
    Json(input): Json<CategoryInput>,
) -> Result<Response> {
    let category = service::create_category(&state, input).await?;
    let location = format!("/api/catalog/categories/{}", category.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(category),
    )
        .into_response())
}

/// Renames a category and replaces its description; its products stay in it.
#[utoipa::path(put, path = "/categories/{id}", tag = "catalog",
    params(("id" = CategoryId, Path, description = "Category id")), request_body = CategoryInput,
    security(("admin" = [])),
    responses((status = 200, body = CategoryView),
        (status = 409, description = "Another category has this name, in any case",
            body = crate::error::Problem)))]
pub async fn update_category(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<CategoryId>,
    Json(input): Json<CategoryInput>,
) -> Result<Json<CategoryView>> {
    service::update_category(&state, id, input).await.map(Json)
}

/// Published products (every status for admins), by name, paged.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ProductFilter, Paging),
    responses((status = 200, body = Page<ProductView>), (status = 400, body = crate::error::Problem)))]
pub async fn products(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<ProductFilter>,
    Query(paging): Query<Paging>,
) -> Result<Json<Page<ProductView>>> {
    let page = paging.request()?;
    service::list_products(&state, !caller.is_admin, &filter, page)
        .await
        .map(Json)
}

/// One product; drafts and archived products only for admins.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    params(("id" = ProductId, Path, description = "Product id")),
    responses((status = 200, body = ProductView), (status = 404, body = crate::error::Problem)))]
pub async fn product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ProductId>,
) -> Result<Json<ProductView>> {
    service::visible_product(&state, caller.is_admin, id)
        .await
        .map(Json)
}

/// Creates a product as a Draft, with a stock item of 0 units, in one transaction.
#[utoipa::path(post, path = "/products", tag = "catalog", request_body = ProductInput,
    security(("admin" = [])),
    responses((status = 201, body = ProductView,
            headers(("Location" = String, description = "The new product"))),
        (status = 409, description = "Another product has this SKU", body = crate::error::Problem),
        (status = 422, description = "No such category", body = crate::error::Problem)))]
pub async fn create_product(
    _: Admin,
    State(state): State<AppState>,
    Json(input): Json<ProductInput>,
) -> Result<Response> {
    let product = service::create_product(&state, input).await?;
    let location = format!("/api/catalog/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
}

/// Replaces a product's details (its SKU only when one is given).
#[utoipa::path(put, path = "/products/{id}", tag = "catalog",
    params(("id" = ProductId, Path, description = "Product id")), request_body = ProductInput,
    security(("admin" = [])),
    responses((status = 200, body = ProductView),
        (status = 409, description = "Another product has this SKU", body = crate::error::Problem),
        (status = 422, description = "No such category", body = crate::error::Problem)))]
pub async fn update_product(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(input): Json<ProductInput>,
) -> Result<Json<ProductView>> {
    service::update_product(&state, id, input).await.map(Json)
}

/// A new lifecycle status.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusInput {
    /// Draft, Published or Archived.
    status: ProductStatus,
}

/// Publishes, archives or drafts a product.
#[utoipa::path(patch, path = "/products/{id}/status", tag = "catalog",
    operation_id = "change_product_status",
    params(("id" = ProductId, Path, description = "Product id")), request_body = StatusInput,
    security(("admin" = [])),
    responses((status = 204), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn change_status(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(input): Json<StatusInput>,
) -> Result<StatusCode> {
    service::set_status(&state, id, input.status).await?;
    Ok(StatusCode::NO_CONTENT)
}
