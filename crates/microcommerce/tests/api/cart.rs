//! The cart: one per buyer, catalog prices, and clearing after a confirmed checkout.

use std::time::Duration;

use microcommerce::ids::{BuyerId, OrderId, ProductId};
use microcommerce::ordering::messages::{ClearCart, OrderLine};
use serde_json::json;

use crate::helpers::{Client, TestApp, eventually, spawn_app};

fn seeded(index: u128) -> ProductId {
    ProductId(uuid::Uuid::from_u128(0x5eed_0000_0000 + index))
}

async fn add(buyer: &Client, product: ProductId, quantity: i64) -> crate::helpers::Reply {
    buyer
        .post(
            "/api/cart/items",
            json!({ "productId": product, "quantity": quantity }),
        )
        .await
}

/// The buyer id behind a client's cookie: the owner of the cart it just touched.
async fn buyer_id(app: &TestApp) -> BuyerId {
    let id: String =
        sqlx::query_scalar("SELECT buyer_id FROM carts ORDER BY created_at DESC LIMIT 1")
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
    id.parse().unwrap()
}

testkit::backend_tests! {
async fn an_empty_cart_is_204_and_counts_zero(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    assert_eq!(buyer.get("/api/cart").await.status, 204);
    assert_eq!(buyer.get("/api/cart/count").await.body, json!(0));
}
}

testkit::backend_tests! {
async fn adding_merges_by_product_caps_at_99_and_prices_from_the_catalog(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let first = add(&buyer, seeded(1), 2).await;
    assert_eq!(first.status, 200);
    let item = first.body["itemId"].clone();
    let again = buyer
        .post(
            "/api/cart/items",
            json!({ "productId": seeded(1), "quantity": 3, "unitPrice": 0.01, "productName": "Free" }),
        )
        .await;
    assert_eq!(again.body["itemId"], item, "same product, same line");
    assert_eq!(add(&buyer, seeded(2), 1).await.status, 200);
    let cart = buyer.get("/api/cart").await.body;
    assert_eq!(cart["items"][0]["quantity"], 5);
    assert_eq!(cart["items"][0]["productName"], "Wireless Earbuds");
    assert_eq!(cart["items"][0]["unitPrice"], json!(79.99));
    assert_eq!(cart["items"][0]["lineTotal"], json!(399.95));
    assert_eq!(cart["subtotal"], json!(434.94));
    assert_eq!(cart["totalItems"], 6);
    assert_eq!(add(&buyer, seeded(1), 99).await.status, 200);
    assert_eq!(
        buyer.get("/api/cart").await.body["items"][0]["quantity"],
        99
    );
    assert_eq!(buyer.get("/api/cart/count").await.body, json!(100));
}
}

testkit::backend_tests! {
async fn bad_quantities_and_unknown_products_are_refused(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    for quantity in [0, 100, -3] {
        let reply = add(&buyer, seeded(1), quantity).await;
        assert_eq!(reply.status, 400);
        assert!(reply.body["errors"]["quantity"].is_array());
    }
    let unknown = add(&buyer, ProductId(uuid::Uuid::now_v7()), 1).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type(), "application/problem+json");
    let missing_field = buyer
        .post("/api/cart/items", json!({ "quantity": 1 }))
        .await;
    assert_eq!(missing_field.status, 400);
}
}

testkit::backend_tests! {
async fn lines_change_and_go_but_only_in_my_own_cart(backend) {
    let app = spawn_app(backend).await;
    let me = app.buyer();
    let stranger = app.buyer();
    let item = add(&me, seeded(3), 1).await.body["itemId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/cart/items/{item}");
    assert_eq!(
        stranger.put(&path, json!({ "quantity": 5 })).await.status,
        404
    );
    assert_eq!(stranger.delete(&path).await.status, 404);
    assert_eq!(me.put(&path, json!({ "quantity": 100 })).await.status, 400);
    assert_eq!(me.put(&path, json!({ "quantity": 4 })).await.status, 204);
    assert_eq!(me.get("/api/cart/count").await.body, json!(4));
    assert_eq!(me.delete(&path).await.status, 204);
    assert_eq!(me.delete(&path).await.status, 404);
    assert_eq!(me.get("/api/cart").await.status, 204);
    assert_eq!(
        me.put("/api/cart/items/nope", json!({ "quantity": 1 }))
            .await
            .status,
        400
    );
}
}

testkit::backend_tests! {
async fn clearing_removes_exactly_the_checked_out_quantities(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    add(&buyer, seeded(1), 3).await;
    add(&buyer, seeded(2), 2).await;
    let owner = buyer_id(&app).await;
    // After the checkout the buyer added two more earbuds and a webcam.
    add(&buyer, seeded(1), 2).await;
    add(&buyer, seeded(4), 1).await;
    let line = |product, quantity| OrderLine {
        product_id: product,
        product_name: String::new(),
        quantity,
    };
    let clear = ClearCart {
        order_id: OrderId::new(),
        buyer_id: owner,
        items: vec![line(seeded(1), 3), line(seeded(2), 2)],
    };
    let mut tx = app.state.bus.begin().await.unwrap();
    tx.publish(&clear).await.unwrap();
    tx.commit().await.unwrap();
    let cart = eventually("cart cleared", Duration::from_secs(10), || async {
        let cart = buyer.get("/api/cart").await.body;
        (cart["totalItems"] == 3).then_some(cart)
    })
    .await;
    let lines: Vec<(String, u64)> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["productName"].as_str().unwrap().to_owned(),
                i["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("Wireless Earbuds".to_owned(), 2),
            ("4K Webcam".to_owned(), 1)
        ]
    );
}
}
