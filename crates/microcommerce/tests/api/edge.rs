//! The HTTP edge: bad input never yields a 500, identity cookies, health and OpenAPI.

use serde_json::json;

use crate::helpers::spawn_app;

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

testkit::backend_tests! {
async fn the_openapi_document_describes_the_routes(backend) {
    let app = spawn_app(backend).await;
    let doc = app.buyer().get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/ordering/checkout",
        "/api/ordering/orders/{id}/pay",
        "/api/ordering/orders/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
}
}

testkit::backend_tests! {
async fn the_app_stops_gracefully(backend) {
    let app = spawn_app(backend).await;
    app.stop().await;
}
}
