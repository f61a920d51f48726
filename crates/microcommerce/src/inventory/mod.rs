//! Inventory: a stock item per product (on hand, reserved), its adjustment history, and the
//! reservations the checkout holds. Reserving is all or nothing per order, with conditional
//! updates (one per line for a lone order, one per set for a worker batch's orders, see
//! `sets`); a reservation ends only through the saga (deducted or released). The database enforces
//! `on_hand >= 0` and `0 <= reserved <= on_hand` as well.

pub mod consumers;
pub mod db;
pub mod http;
mod sets;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::state::AppState;

/// Routes under `/api/inventory`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/stock", get(http::list_stock))
        .route("/stock/{product_id}", get(http::get_stock))
        .route("/stock/{product_id}/adjust", post(http::adjust))
        .route("/stock/{product_id}/adjustments", get(http::adjustments))
}

/// Reserve, deduct and release.
pub fn consumers() -> Vec<Arc<dyn bus::Consumer>> {
    consumers::all()
}

/// OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(http::get_stock, http::list_stock, http::adjust, http::adjustments))]
pub struct InventoryApi;
