//! Ordering: orders (snapshotted lines, server-computed totals, statuses) and the checkout saga
//! that drives them. It owns `/api/ordering` except payment, and consumes the saga's outcomes
//! to keep order statuses in step.
//!
//! The checkout is declared once in [`checkout`]. Other modules, the storefront and the bench
//! use ordering through the service functions re-exported here, by job: placing an order
//! ([`check_out`]), reading one ([`visible_order`], [`checkout_of`], …), waiting for it to move
//! on ([`order_after_change`], [`status_after`]), listing ([`list_orders`]), the shop's figures ([`dashboard`]) and
//! following the checkout ([`tell_payment`]). `http.rs` and `admin.rs` only translate HTTP.

pub mod checkout;
pub mod domain;
pub mod status;

mod admin;
mod cancelling;
mod checkouts;
mod consumers;
mod db;
mod figures;
mod finding;
mod http;
mod listing;
mod placing;
mod progress;
mod views;
mod waiting;

pub use cancelling::cancel_checkout;
pub use checkouts::{
    Census, CheckoutPage, CheckoutQuery, CheckoutSummary, MoveCount, StateCount, Waiting, census,
    list_checkouts,
};
pub use db::insert_order;
pub use domain::{Order, OrderItem, ShippingAddress, Totals, ValidCheckout};
pub use figures::{Dashboard, dashboard, failure_reasons, fold_tallies, orders_per_minute};
pub use finding::{Cursor, OrderBatch, OrderSearch, day_start, find_orders};
pub use listing::{OrderSummary, list_orders};
pub use placing::check_out;
pub use progress::{change_status, move_after_checkout, next_move, tell_payment};
pub use status::OrderStatus;
pub use views::{checkout_of, order, payment_deadline, visible_order, visible_order_with_items};
pub use waiting::{order_after_change, status_after};

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::state::AppState;

/// Routes under `/api/ordering` (payment adds `/orders/{id}/pay`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(http::checkout))
        .routes(routes!(admin::all_orders))
        .routes(routes!(http::my_orders))
        .routes(routes!(http::get_order))
        .routes(routes!(http::get_checkout))
        .routes(routes!(admin::change_status))
        .routes(routes!(admin::cancel))
        .routes(routes!(admin::checkouts))
        .routes(routes!(admin::search_orders))
        .routes(routes!(admin::checkout_census))
        .routes(routes!(admin::dashboard))
}

/// The checkout saga engine and the order-status updater.
pub fn consumers(config: &Config) -> Vec<Arc<dyn bus::Consumer>> {
    vec![
        saga::Engine::consumer(checkout::CheckoutSaga {
            payment_timeout: config.payment_timeout,
        }),
        Arc::new(consumers::OrderStatusUpdater),
    ]
}
