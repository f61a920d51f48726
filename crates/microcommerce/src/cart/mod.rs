//! Cart: one cart per buyer, lines merged by product (1..=99 units each). Names and prices
//! always come from the catalog; a confirmed checkout removes exactly what it bought.

pub mod consumers;
pub mod db;
pub mod http;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use utoipa::OpenApi;

use crate::state::AppState;

/// Routes under `/api/cart`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(http::get_cart))
        .route("/items", post(http::add_item))
        .route(
            "/items/{item_id}",
            put(http::change_quantity).delete(http::remove_item),
        )
        .route("/count", get(http::count))
}

/// The cart-clearing consumer.
pub fn consumers() -> Vec<Arc<dyn bus::Consumer>> {
    vec![Arc::new(consumers::ClearCheckedOut)]
}

/// OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(
    http::get_cart,
    http::add_item,
    http::change_quantity,
    http::remove_item,
    http::count
))]
pub struct CartApi;
