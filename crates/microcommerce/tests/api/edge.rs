//! The HTTP edge: bad input never yields a 500, identity cookies, health and OpenAPI.

use serde_json::json;

use crate::helpers::{Backend, spawn_app};

testkit::backend_tests! {
async fn malformed_json_is_a_400_problem(backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .buyer()
        .http
        .post(format!("{}/api/ordering/checkout", app.base))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["status"], 400);
    assert_eq!(body["type"], "urn:microcommerce:problem:bad-request");
}
}

testkit::backend_tests! {
async fn a_nul_character_in_a_name_a_form_or_a_search_is_never_a_500(backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin();
    let category = admin.post("/api/catalog/categories", json!({ "name": "Tea\u{0}Cups" })).await;
    assert_eq!(category.status, 400, "{:?}", category.body);
    let search = admin.get("/api/catalog/products?search=a%00b").await;
    assert_eq!(search.status, 200, "a NUL in a search matches nothing more: {:?}", search.body);
    assert_eq!(admin.get("/?q=a%00b").await.status, 200);
    assert_eq!(admin.get("/api/ordering/orders/%00").await.status, 400);
    let form = admin
        .http
        .post(format!("{}/cart/items", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("productId=a%00b&quantity=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);
    let product = crate::helpers::stocked_product(&app, "Kettle", 1).await;
    let free_text = [
        ("/api/catalog/categories".to_owned(), json!({ "name": "Pots", "description": "a\u{0}b" }), "description"),
        (format!("/api/inventory/stock/{product}/adjust"), json!({ "adjustment": 1, "reason": "a\u{0}b" }), "reason"),
        ("/api/catalog/products".to_owned(),
         json!({ "name": "Pan", "price": 1, "categoryId": "00000000-0000-0000-0000-000000000001", "imageUrl": "a\u{0}b" }), "imageUrl"),
    ];
    for (path, body, field) in free_text {
        let answer = admin.post(&path, body).await;
        assert_eq!(answer.status, 400, "{path}: {:?}", answer.body);
        assert!(answer.body.to_string().contains(field), "{path} names {field}: {:?}", answer.body);
    }
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_body_not_sent_as_json_is_a_415_problem(backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .buyer()
        .http
        .post(format!("{}/api/cart/items", app.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 415);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["type"], "urn:microcommerce:problem:unsupported-media-type");
}
}

testkit::backend_tests! {
async fn a_body_over_64_kib_is_a_413_problem(backend) {
    let app = spawn_app(backend).await;
    let huge = json!({ "email": "a".repeat(70 * 1024) });
    let reply = app.buyer().post("/api/ordering/checkout", huge).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.content_type(), "application/problem+json");
}
}

testkit::backend_tests! {
async fn malformed_ids_are_400_and_unknown_routes_404(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let bad_id = buyer.get("/api/ordering/orders/not-a-uuid").await;
    assert_eq!(bad_id.status, 400);
    assert_eq!(bad_id.content_type(), "application/problem+json");
    let unknown_order = buyer
        .get(&format!("/api/ordering/orders/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown_order.status, 404);
    let nowhere = buyer.get("/api/nowhere").await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.content_type(), "application/problem+json");
    let wrong_method = buyer.send("DELETE", "/api/catalog/categories", None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.content_type(), "application/problem+json");
    let bad_page = buyer.get("/api/ordering/orders/my?pageSize=1000").await;
    assert_eq!(bad_page.status, 400);
    let bad_status = buyer.get("/api/ordering/orders/my?status=Lost").await;
    assert_eq!(bad_status.status, 400);
    let bad_retry = app
        .admin()
        .send("POST", "/api/messaging/dead-letters/x/retry", None)
        .await;
    assert_eq!(bad_retry.status, 400);
}
}

testkit::backend_tests! {
async fn a_first_visit_gets_an_http_only_buyer_cookie_that_is_kept(backend) {
    let app = spawn_app(backend).await;
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{}/api/ordering/orders/my", app.base))
        .send()
        .await
        .unwrap();
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("buyer_id="));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(
        !cookie.contains("Secure"),
        "plain-HTTP use must keep working"
    );
    let value = cookie.split(';').next().unwrap().to_owned();
    let again = client
        .get(format!("{}/api/ordering/orders/my", app.base))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert!(again.headers().get("set-cookie").is_none());
}
}

testkit::backend_tests! {
async fn health_reports_live_and_ready(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    assert_eq!(buyer.get("/health/live").await.status, 200);
    let ready = buyer.get("/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, json!({ "database": true, "workers": true }));
}
}

/// The served OpenAPI document is the checked-in `docs/openapi.json`, so that every change to
/// the API's contract shows in review. After a deliberate change, refresh it with
/// `UPDATE_SNAPSHOTS=1 cargo test -p microcommerce-service --test api openapi`.
#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = app.buyer().get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let served = serde_json::to_string_pretty(&doc.body).unwrap() + "\n";
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&file, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        served == checked_in,
        "the served OpenAPI document differs from docs/openapi.json; if the change is meant, \
         refresh it with UPDATE_SNAPSHOTS=1 cargo test -p microcommerce-service --test api openapi"
    );
}

/// Every route of the API is in the document, with the answers it can give: errors as problem
/// documents, the shared 400/401/404/429/503 answers where they apply.
#[tokio::test]
async fn the_openapi_document_describes_every_api_route_and_its_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = app.buyer().get("/api/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/catalog/categories/{id}",
        "/api/ordering/checkout",
        "/api/ordering/orders/{id}/pay",
        "/api/ordering/orders/{id}",
        "/api/inventory/stock/{productId}/adjustments",
        "/api/messaging/dead-letters",
        "/api/messaging/dead-letters/{id}/retry",
        "/health/live",
        "/health/ready",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(
        !has_null(&doc),
        "a null in the document: a rule wrote where nothing was"
    );
    let adjust = &paths["/api/inventory/stock/{productId}/adjust"]["post"]["responses"];
    for status in ["400", "401", "404", "413", "415", "422", "429", "503"] {
        assert!(adjust.get(status).is_some(), "adjust: {status} missing");
    }
    let problem = &doc["components"]["responses"]["BadRequest"]["content"];
    assert_eq!(
        problem["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let unavailable = &doc["components"]["responses"]["ServiceUnavailable"];
    assert!(unavailable["headers"]["Retry-After"].is_object());
    let checkout = &paths["/api/ordering/checkout"]["post"];
    let key = checkout["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key");
    assert!(key.is_some(), "Idempotency-Key not described");
}

/// True if a JSON `null` appears anywhere in `value`.
fn has_null(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().any(has_null),
        serde_json::Value::Object(members) => members.values().any(has_null),
        _ => false,
    }
}

testkit::backend_tests! {
async fn the_app_stops_gracefully(backend) {
    let app = spawn_app(backend).await;
    app.stop().await;
}
}
