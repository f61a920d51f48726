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
