//! Cart: one cart per buyer, lines merged by product (1..=99 units each). Names and prices
//! always come from the catalog; a confirmed checkout removes exactly what it bought.
//!
//! Other modules and the storefront call the service functions re-exported here; `http` only
//! translates HTTP to them.

pub mod consumers;
mod db;
mod http;
mod service;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use service::{
    CartItemView, CartView, add_item, cart_of, lines_of, remove_item, set_quantity, units,
};

/// Routes under `/api/cart`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(http::get_cart))
        .routes(routes!(http::add_item))
        .routes(routes!(http::change_quantity, http::remove_item))
        .routes(routes!(http::count))
}

/// The cart-clearing consumer.
pub fn consumers() -> Vec<Arc<dyn bus::Consumer>> {
    vec![Arc::new(consumers::ClearCheckedOut)]
}
