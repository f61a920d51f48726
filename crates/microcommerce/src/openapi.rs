//! The OpenAPI document, generated from the handlers' and types' annotations.

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use crate::http::Json;
use crate::state::AppState;

/// `GET /api/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The API description served at `/api/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "microcommerce",
        description = "Commerce backend whose checkout is a durable saga."
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

/// The document as served: every module's paths merged, and the admin bearer scheme.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::ordering::OrderingApi::openapi());
    doc.merge(crate::payment::PaymentApi::openapi());
    doc.merge(crate::inventory::InventoryApi::openapi());
    doc.merge(crate::cart::CartApi::openapi());
    doc.merge(crate::catalog::CatalogApi::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "admin",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}
