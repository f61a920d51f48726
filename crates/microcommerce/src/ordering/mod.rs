//! Ordering: orders, their totals and statuses, and the checkout saga that drives them.

pub mod checkout;
pub mod messages;

use axum::Router;

use crate::app::AppState;
use crate::config::Config;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Consumers of this module: the checkout saga engine and the order-status updaters.
pub fn consumers(config: &Config) -> Vec<std::sync::Arc<dyn bus::Consumer>> {
    vec![saga::Engine::consumer(checkout::CheckoutSaga {
        payment_timeout: config.payment_timeout,
    })]
}
