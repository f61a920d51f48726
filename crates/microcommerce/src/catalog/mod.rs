//! Catalog: categories and products (price in cents, USD; Draft → Published → Archived).
//! Buyers see published products only; admins create and edit categories, and create, edit and
//! publish products. The catalog is the only source of names and prices for carts and orders.
//!
//! Other modules and the storefront call the service functions re-exported here; `http` only
//! translates HTTP to them.

mod db;
mod http;
mod input;
mod seed;
mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use db::{ProductSnapshot, ProductStatus};
pub use input::{CategoryInput, ProductInput};
pub use seed::seed_if_empty;
pub use service::{
    CategoryView, ProductFilter, ProductView, category, create_category, create_product,
    list_categories, list_products, product_snapshots, set_status, update_category, update_product,
    visible_product,
};

/// Routes under `/api/catalog`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(http::categories, http::create_category))
        .routes(routes!(http::category, http::update_category))
        .routes(routes!(http::products, http::create_product))
        .routes(routes!(http::product, http::update_product))
        .routes(routes!(http::change_status))
}
