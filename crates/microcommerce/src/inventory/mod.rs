//! Inventory: a stock item per product (on hand, reserved), its adjustment history, and the
//! reservations the checkout holds. Reserving is all or nothing per order, with conditional
//! updates (one per line for a lone order, one per set for a worker batch's orders, see
//! `sets`); a reservation ends only through the saga (deducted or released). The database enforces
//! `on_hand >= 0` and `0 <= reserved <= on_hand` as well.
//!
//! Other modules and the storefront call the service functions re-exported here; `http` only
//! translates HTTP to them.

pub mod consumers;
mod db;
mod http;
mod service;
mod sets;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use service::{
    AdjustmentView, LOW_STOCK, ReservationView, StockView, adjust_stock, adjustment_history,
    create_stock_item, reservations_of, stock_level, stock_levels,
};

/// Routes under `/api/inventory`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(http::list_stock))
        .routes(routes!(http::get_stock))
        .routes(routes!(http::adjust))
        .routes(routes!(http::adjustments))
}

/// Reserve, deduct and release.
pub fn consumers() -> Vec<Arc<dyn bus::Consumer>> {
    consumers::all()
}
