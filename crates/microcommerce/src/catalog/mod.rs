//! Catalog: categories and products (price in cents, USD; Draft → Published → Archived).
//! Buyers see published products only; admins create, edit and publish. The catalog is the
//! only source of names and prices for carts and orders.

pub mod db;
pub mod http;
mod seed;

use axum::Router;
use axum::routing::{get, patch};
use utoipa::OpenApi;

use crate::state::AppState;

pub use seed::seed_if_empty;

/// Routes under `/api/catalog`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/categories", get(http::categories))
        .route("/products", get(http::products).post(http::create_product))
        .route(
            "/products/{id}",
            get(http::product).put(http::update_product),
        )
        .route("/products/{id}/status", patch(http::change_status))
}

/// OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(
    http::categories,
    http::products,
    http::product,
    http::create_product,
    http::update_product,
    http::change_status
))]
pub struct CatalogApi;
