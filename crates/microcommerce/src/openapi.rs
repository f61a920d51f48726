//! The OpenAPI document, generated from the router: every API route is registered with
//! `routes!` on an [`OpenApiRouter`], which documents it from its handler's `#[utoipa::path]`,
//! so a route cannot exist undocumented. The answers every route shares (problems for malformed
//! input, a missing admin token, overload) are added here by rule rather than by hand, so that
//! no handler can forget one.

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::Json;
use crate::state::AppState;

/// `GET /api/openapi.json`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> Json<&'static Value> {
    Json(document())
}

/// Title, description and the schemas no handler names.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "microcommerce",
        description = "Commerce backend whose checkout is a durable saga. Every error is an \
            RFC 9457 problem document (`application/problem+json`)."
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

/// The document as served: the API routes' own descriptions, the shared answers, and the
/// admin bearer scheme. Built once; it is the same for every instance.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let routes = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(crate::app::api_routes());
        let mut doc = serde_json::to_value(routes.into_openapi()).unwrap_or_default();
        complete(&mut doc);
        doc
    })
}

/// The shared answers, by the name operations refer to them with: status, description, and
/// whether a `Retry-After` header comes with it.
const SHARED: [(&str, &str, &str, bool); 8] = [
    (
        "400",
        "BadRequest",
        "Malformed id, query, header or body, or values outside the documented bounds (`errors` names each field)",
        false,
    ),
    ("401", "Unauthorized", "No valid admin bearer token", false),
    (
        "404",
        "NotFound",
        "No such resource (or it is not the caller's)",
        false,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than 64 KiB",
        false,
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not sent as `application/json`",
        false,
    ),
    (
        "422",
        "Unprocessable",
        "Well-formed, but refused in the current state (`errors` names each field)",
        false,
    ),
    (
        "429",
        "TooManyRequests",
        "Too many writes from this client; retry after `Retry-After` seconds",
        true,
    ),
    (
        "503",
        "ServiceUnavailable",
        "Overloaded, timed out or the database is unavailable; retry after `Retry-After` seconds",
        true,
    ),
];

/// Where an answer gives the id another operation takes (OpenAPI links), so that a reader, and
/// schemathesis's stateful phase, can follow a product, a cart line or an order from the answer
/// that made or listed it: (path, method, status, target operation, `path.NAME` or
/// `body.NAME`, the runtime expression that reads the id).
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "/api/catalog/products",
        "post",
        "201",
        "product",
        "path.id",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "post",
        "201",
        "update_product",
        "path.id",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "post",
        "201",
        "change_product_status",
        "path.id",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "post",
        "201",
        "get_stock",
        "path.productId",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "post",
        "201",
        "adjust",
        "path.productId",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "post",
        "201",
        "adjustments",
        "path.productId",
        "$response.body#/id",
    ),
    (
        "/api/catalog/products",
        "get",
        "200",
        "product",
        "path.id",
        "$response.body#/items/0/id",
    ),
    (
        "/api/catalog/products",
        "get",
        "200",
        "add_item",
        "body.productId",
        "$response.body#/items/0/id",
    ),
    (
        "/api/catalog/products",
        "get",
        "200",
        "adjust",
        "path.productId",
        "$response.body#/items/0/id",
    ),
    (
        "/api/cart/items",
        "post",
        "200",
        "change_quantity",
        "path.itemId",
        "$response.body#/itemId",
    ),
    (
        "/api/cart/items",
        "post",
        "200",
        "remove_item",
        "path.itemId",
        "$response.body#/itemId",
    ),
    (
        "/api/ordering/checkout",
        "post",
        "201",
        "get_order",
        "path.id",
        "$response.body#/orderId",
    ),
    (
        "/api/ordering/checkout",
        "post",
        "201",
        "get_checkout",
        "path.id",
        "$response.body#/orderId",
    ),
    (
        "/api/ordering/checkout",
        "post",
        "201",
        "pay",
        "path.id",
        "$response.body#/orderId",
    ),
    (
        "/api/ordering/checkout",
        "post",
        "201",
        "change_order_status",
        "path.id",
        "$response.body#/orderId",
    ),
    (
        "/api/ordering/orders/my",
        "get",
        "200",
        "get_order",
        "path.id",
        "$response.body#/items/0/id",
    ),
    (
        "/api/ordering/orders",
        "get",
        "200",
        "change_order_status",
        "path.id",
        "$response.body#/items/0/id",
    ),
    (
        "/api/messaging/dead-letters",
        "get",
        "200",
        "retry_dead_letter",
        "path.id",
        "$response.body#/items/0/id",
    ),
];

/// Adds the shared answers to every operation that can give them, the links between
/// operations, and declares error bodies as the problem documents they are.
fn complete(doc: &mut Value) {
    add_links(doc);
    let components = &mut doc["components"];
    components["securitySchemes"]["admin"] = json!({ "type": "http", "scheme": "bearer" });
    for (_, name, description, retry_after) in SHARED {
        components["responses"][name] = shared_response(description, retry_after);
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(parameters) = operation.get_mut("parameters") {
                never_null(parameters);
            }
            let shared = shared_statuses(path, method, operation);
            let responses = &mut operation["responses"];
            problems_as_problem_json(responses);
            for status in shared {
                if responses.get(status).is_none() {
                    let (_, name, _, _) = SHARED
                        .iter()
                        .find(|(s, ..)| *s == status)
                        .unwrap_or(&SHARED[0]);
                    responses[status] = json!({ "$ref": format!("#/components/responses/{name}") });
                }
            }
        }
    }
}

/// Writes [`LINKS`] into the answers they start from.
fn add_links(doc: &mut Value) {
    for &(path, method, status, target, parameter, expression) in LINKS {
        let path = path.replace('~', "~0").replace('/', "~1");
        let answer = format!("/paths/{path}/{method}/responses/{status}");
        let Some(response) = doc.pointer_mut(&answer) else {
            continue;
        };
        let link = match parameter.split_once('.') {
            Some(("body", field)) => {
                json!({ "operationId": target, "requestBody": { field: expression } })
            }
            _ => json!({ "operationId": target, "parameters": { parameter: expression } }),
        };
        response["links"][target] = link;
    }
}

/// Which shared answers an operation can give, from its shape: parameters or a body can be
/// malformed, a path names something that may not exist, a body can be too large or not JSON,
/// an admin route needs the token, writes are rate-limited, and any route may be overloaded.
fn shared_statuses(path: &str, method: &str, operation: &Value) -> Vec<&'static str> {
    let parameters = operation["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has_body = operation.get("requestBody").is_some();
    let in_path = parameters.iter().any(|p| p["in"] == "path");
    let admin = operation["security"]
        .as_array()
        .is_some_and(|schemes| schemes.iter().any(|s| s.get("admin").is_some()));
    let writes = matches!(method, "post" | "put" | "patch" | "delete") && path.starts_with("/api/");
    let mut statuses = Vec::new();
    statuses.extend((!parameters.is_empty() || has_body).then_some("400"));
    statuses.extend(admin.then_some("401"));
    statuses.extend(in_path.then_some("404"));
    if has_body {
        statuses.extend(["413", "415"]);
    }
    statuses.extend(writes.then_some("429"));
    statuses.push("503");
    statuses
}

/// A header or query parameter is absent or has a value; it is never JSON `null`, which an
/// `Option` field would otherwise declare.
fn never_null(parameters: &mut Value) {
    for parameter in parameters.as_array_mut().into_iter().flatten() {
        let Some(types) = parameter.pointer_mut("/schema/type") else {
            continue;
        };
        if let Some(list) = types.as_array_mut() {
            list.retain(|kind| kind != "null");
            if let [only] = list.as_slice() {
                *types = only.clone();
            }
        }
    }
}

/// An error answer documented with the Problem schema is sent as `application/problem+json`.
fn problems_as_problem_json(responses: &mut Value) {
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    for response in responses.values_mut() {
        let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        let is_problem = content
            .get("application/json")
            .is_some_and(|json| json["schema"]["$ref"] == "#/components/schemas/Problem");
        if is_problem && let Some(body) = content.remove("application/json") {
            content.insert("application/problem+json".into(), body);
        }
    }
}

/// A shared answer: a problem document, with `Retry-After` when the client should come back.
fn shared_response(description: &str, retry_after: bool) -> Value {
    let mut response = json!({
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" }
            }
        }
    });
    if retry_after {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "required": true,
                "schema": { "type": "integer", "minimum": 0 }
            }
        });
    }
    response
}
