//! Payment: the simulated payment provider. A payment is accepted only while its order awaits
//! payment; checking that, recording the result (at most one per order) and publishing it to
//! the checkout saga happen in one transaction.

mod http;
mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use http::PaymentRequest;
pub use service::{PaymentResult, PaymentView, payment_of, record_payment};

/// `POST /orders/{id}/pay`, mounted under `/api/ordering`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(http::pay))
}
