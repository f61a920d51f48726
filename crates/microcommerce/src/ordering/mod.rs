//! Ordering: orders (snapshotted lines, server-computed totals, statuses) and the checkout saga
//! that drives them. It owns `/api/ordering` except payment, and consumes the saga's outcomes
//! to keep order statuses in step.

pub mod admin;
pub mod checkout;
pub mod consumers;
pub mod db;
pub mod domain;
pub mod http;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post};
use utoipa::OpenApi;

use crate::config::Config;
use crate::state::AppState;

/// Routes under `/api/ordering` (payment adds `/orders/{id}/pay`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout", post(http::checkout))
        .route("/orders", get(admin::all_orders))
        .route("/orders/my", get(http::my_orders))
        .route("/orders/{id}", get(http::get_order))
        .route("/orders/{id}/checkout", get(http::get_checkout))
        .route("/orders/{id}/status", patch(admin::change_status))
        .route("/dashboard", get(admin::dashboard))
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

/// OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(
    http::checkout,
    http::get_order,
    http::get_checkout,
    http::my_orders,
    admin::all_orders,
    admin::dashboard,
    admin::change_status
))]
pub struct OrderingApi;
