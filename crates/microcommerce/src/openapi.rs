//! The API's routes and their OpenAPI document, generated from them: every API route is
//! registered with `routes!` on an [`OpenApiRouter`], which documents it from its handler's
//! `#[utoipa::path]`, so a route cannot exist undocumented. Start-up ([`crate::app`]) serves
//! [`api_routes`]; nothing here looks back at it. The answers every route shares (problems for malformed
//! input, a missing admin token, overload) are added here by rule rather than by hand, so that
//! no handler can forget one.

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::Json;
use crate::state::AppState;
use crate::{cart, catalog, http, inventory, ordering, payment};

/// The API routes, each registered with its description: the OpenAPI document is made from
/// this very router ([`document`]), and it serves the document at `GET /api/openapi.json`.
pub fn api_routes() -> OpenApiRouter<AppState> {
    let ordering = ordering::router().merge(payment::router());
    OpenApiRouter::new()
        .nest("/api/catalog", catalog::router())
        .nest("/api/inventory", inventory::router())
        .nest("/api/cart", cart::router())
        .nest("/api/ordering", ordering)
        .merge(http::router())
        .routes(routes!(openapi_json))
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
            RFC 9457 problem document (`application/problem+json`). A buyer is known by the \
            `buyer_id` cookie (an unguessable UUID, set on the first answer to a client without \
            one): carts and orders belong to it, so a client that drops the cookie is a new buyer. \
            Admin routes need the admin bearer token."
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

/// The document as served: the API routes' own descriptions, the shared answers, and the
/// admin bearer scheme. Built once; it is the same for every instance.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let routes = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(api_routes());
        let mut doc = serde_json::to_value(routes.into_openapi()).unwrap_or_default();
        complete(&mut doc);
        doc
    })
}

/// An answer many operations share, declared once under `components/responses`.
struct Shared {
    /// The HTTP status.
    status: &'static str,
    /// Its name under `components/responses`.
    name: &'static str,
    /// When it is given.
    description: &'static str,
    /// Whether a `Retry-After` header says when to come back.
    retry_after: bool,
}

/// The shared answers; [`shared_statuses`] decides which operations give which.
const SHARED: [Shared; 7] = [
    Shared {
        status: "400",
        name: "BadRequest",
        description: "Malformed id, query, header or body, or values outside the documented \
            bounds (`errors` names each field)",
        retry_after: false,
    },
    Shared {
        status: "401",
        name: "Unauthorized",
        description: "No valid admin bearer token",
        retry_after: false,
    },
    Shared {
        status: "404",
        name: "NotFound",
        description: "No such resource (or it is not the caller's)",
        retry_after: false,
    },
    Shared {
        status: "413",
        name: "PayloadTooLarge",
        description: "The body is larger than 64 KiB",
        retry_after: false,
    },
    Shared {
        status: "415",
        name: "UnsupportedMediaType",
        description: "The body is not sent as `application/json`",
        retry_after: false,
    },
    Shared {
        status: "429",
        name: "TooManyRequests",
        description: "Too many writes from this client (`rate-limited`; requests with the \
            admin token are not limited); retry after `Retry-After` seconds",
        retry_after: true,
    },
    Shared {
        status: "503",
        name: "ServiceUnavailable",
        description: "Retry after `Retry-After` seconds. The problem type says why: \
            `unavailable` (the database is away or busy), `storage-full` (it has no space to \
            write; nothing was written), `timeout` (the request ran past the time limit; a \
            checkout may have been placed: retry it with its `Idempotency-Key`), \
            `too-many-waiting` (too many requests held open with `Prefer: wait`)",
        retry_after: true,
    },
];

/// Where an answer gives the id other operations take (OpenAPI links), so that a reader, and
/// schemathesis's stateful phase, can follow a product, a cart line or an order from the answer
/// that made or listed it: the answer (`method path status`), the expression that reads the id
/// from it, and the operations that take it (`operationId path.NAME` or `operationId body.NAME`).
const LINKS: &[(&str, &str, &[&str])] = &[
    (
        "post /api/catalog/categories 201",
        "$response.body#/id",
        &["category path.id", "update_category path.id"],
    ),
    (
        "get /api/catalog/categories 200",
        "$response.body#/0/id",
        &["category path.id", "update_category path.id"],
    ),
    (
        "post /api/catalog/products 201",
        "$response.body#/id",
        &[
            "product path.id",
            "update_product path.id",
            "change_product_status path.id",
            "get_stock path.productId",
            "adjust path.productId",
            "adjustments path.productId",
        ],
    ),
    (
        "get /api/catalog/products 200",
        "$response.body#/items/0/id",
        &[
            "product path.id",
            "add_item body.productId",
            "adjust path.productId",
        ],
    ),
    (
        "post /api/cart/items 200",
        "$response.body#/itemId",
        &["change_quantity path.itemId", "remove_item path.itemId"],
    ),
    (
        "post /api/ordering/checkout 201",
        "$response.body#/orderId",
        &[
            "get_order path.id",
            "get_checkout path.id",
            "pay path.id",
            "change_order_status path.id",
        ],
    ),
    (
        "get /api/ordering/orders/my 200",
        "$response.body#/items/0/id",
        &["get_order path.id"],
    ),
    (
        "get /api/ordering/orders 200",
        "$response.body#/items/0/id",
        &["change_order_status path.id"],
    ),
    (
        "get /api/messaging/dead-letters 200",
        "$response.body#/items/0/id",
        &["retry_dead_letter path.id"],
    ),
];

/// Adds the shared answers to every operation that can give them, the links between
/// operations, and declares error bodies as the problem documents they are.
fn complete(doc: &mut Value) {
    add_links(doc);
    let components = &mut doc["components"];
    components["securitySchemes"]["admin"] = json!({ "type": "http", "scheme": "bearer" });
    for shared in &SHARED {
        components["responses"][shared.name] = shared_response(shared);
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
            let statuses = shared_statuses(path, method, operation);
            let responses = &mut operation["responses"];
            problems_as_problem_json(responses);
            for shared in SHARED.iter().filter(|s| statuses.contains(&s.status)) {
                if responses.get(shared.status).is_none() {
                    let reference = format!("#/components/responses/{}", shared.name);
                    responses[shared.status] = json!({ "$ref": reference });
                }
            }
        }
    }
}

/// Writes [`LINKS`] into the answers they start from.
fn add_links(doc: &mut Value) {
    for &(answer, expression, targets) in LINKS {
        let mut words = answer.split(' ');
        let (Some(method), Some(path), Some(status)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let path = path.replace('~', "~0").replace('/', "~1");
        let Some(response) = doc.pointer_mut(&format!("/paths/{path}/{method}/responses/{status}"))
        else {
            continue;
        };
        for target in targets {
            let Some((operation, parameter)) = target.split_once(' ') else {
                continue;
            };
            let link = match parameter.split_once('.') {
                Some(("body", field)) => {
                    json!({ "operationId": operation, "requestBody": { field: expression } })
                }
                _ => json!({ "operationId": operation, "parameters": { parameter: expression } }),
            };
            response["links"][operation] = link;
        }
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
fn shared_response(shared: &Shared) -> Value {
    let mut response = json!({
        "description": shared.description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" }
            }
        }
    });
    if shared.retry_after {
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
