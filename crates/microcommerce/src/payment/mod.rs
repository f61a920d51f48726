//! Payment: the simulated payment provider. A payment is accepted only while its order awaits
//! payment; checking that, recording the result (at most one per order) and publishing it to
//! the checkout saga happen in one transaction.

mod http;

use axum::Router;
use axum::routing::post;
use utoipa::OpenApi;

use crate::state::AppState;

pub use http::{PaymentRequest, PaymentResult, record_payment};

/// `POST /orders/{id}/pay`, mounted under `/api/ordering`.
pub fn router() -> Router<AppState> {
    Router::new().route("/orders/{id}/pay", post(http::pay))
}

/// OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(http::pay))]
pub struct PaymentApi;
