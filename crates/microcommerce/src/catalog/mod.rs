//! Catalog: categories and products (price in cents, USD; Draft → Published → Archived).
//! Buyers see published products only; admins create, edit and publish. The catalog is the
//! only source of names and prices for carts and orders.

pub mod db;
pub mod http;
mod seed;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use seed::seed_if_empty;

/// Routes under `/api/catalog`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(http::categories))
        .routes(routes!(http::products, http::create_product))
        .routes(routes!(http::product, http::update_product))
        .routes(routes!(http::change_status))
}
