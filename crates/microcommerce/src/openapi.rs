//! The OpenAPI document, generated from the handlers' and types' annotations.

use utoipa::OpenApi;

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

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
