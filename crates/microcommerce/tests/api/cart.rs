//! The cart: one per buyer, catalog prices, and clearing after a confirmed checkout.

use std::time::Duration;

use microcommerce_service::contracts::{ClearCart, OrderLine};
use microcommerce_service::ids::{BuyerId, OrderId, ProductId};
use serde_json::json;

use crate::helpers::{Client, Reply, TestApp, eventually, insert_product, product_name, spawn_app};

async fn add(buyer: &Client, product: ProductId, quantity: i64) -> Reply {
    buyer
        .post(
            "/api/cart/items",
            json!({ "productId": product, "quantity": quantity }),
        )
        .await
}

/// Adds `quantity` of `product` and returns the line's id.
async fn added(buyer: &Client, product: ProductId, quantity: i64) -> String {
    let reply = add(buyer, product, quantity).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["itemId"].as_str().unwrap().to_owned()
}

/// The owner of the cart that holds `item`: the buyer behind a client's cookie.
async fn owner_of(app: &TestApp, item: &str) -> BuyerId {
    let id: String = sqlx::query_scalar(
        "SELECT c.buyer_id FROM carts c JOIN cart_items i ON i.cart_id = c.id WHERE i.id = $1",
    )
    .bind(item)
    .fetch_one(app.state.db.reader())
    .await
    .unwrap();
    id.parse().unwrap()
}

/// (product, quantity) of every line of the buyer's cart, oldest first.
async fn lines(buyer: &Client) -> Vec<(ProductId, u64)> {
    let cart = buyer.get("/api/cart").await;
    if cart.status == 204 {
        return Vec::new();
    }
    cart.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["productId"].as_str().unwrap().parse().unwrap(),
                item["quantity"].as_u64().unwrap(),
            )
        })
        .collect()
}

testkit::backend_tests! {
async fn a_cart_holds_at_most_fifty_products(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let mut products = Vec::new();
    for _ in 0..51 {
        products.push(insert_product(&app, 100, 5).await);
    }
    for product in &products[..50] {
        added(&buyer, *product, 1).await;
    }
    let one_more = add(&buyer, products[50], 1).await;
    assert_eq!(one_more.status, 422);
    assert_eq!(one_more.body["type"], "urn:microcommerce:problem:unprocessable");
    assert_eq!(one_more.body["errors"]["productId"][0], "a cart holds at most 50 products");
    added(&buyer, products[0], 1).await;
    assert_eq!(lines(&buyer).await.len(), 50, "a product already held still merges");
}
}

testkit::backend_tests! {
async fn an_empty_cart_is_204_and_counts_zero(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let empty = buyer.get("/api/cart").await;
    assert_eq!(empty.status, 204);
    assert_eq!(empty.body, serde_json::Value::Null);
    assert_eq!(buyer.get("/api/cart/count").await.body, json!(0));
}
}

testkit::backend_tests! {
async fn adding_merges_by_product_caps_at_99_and_prices_from_the_catalog(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let earbuds = insert_product(&app, 7999, 50).await;
    let cable = insert_product(&app, 1499, 50).await;
    let item = added(&buyer, earbuds, 2).await;
    // A client-sent price and name are ignored.
    let again = buyer
        .post(
            "/api/cart/items",
            json!({ "productId": earbuds, "quantity": 3, "unitPrice": 0.01, "productName": "Free" }),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["itemId"], item.as_str(), "same product, same line");
    added(&buyer, cable, 1).await;

    let cart = buyer.get("/api/cart").await;
    assert_eq!(cart.status, 200);
    let cart = cart.body;
    assert!(cart["id"].is_string());
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    let first = &cart["items"][0];
    assert_eq!(first["id"], item.as_str());
    assert_eq!(first["productId"], json!(earbuds));
    assert_eq!(first["productName"], product_name(&app, earbuds).await);
    assert!(first["imageUrl"].is_string());
    assert_eq!(first["quantity"], 5);
    assert_eq!(first["unitPrice"], json!(79.99));
    assert_eq!(first["lineTotal"], json!(399.95));
    assert_eq!(cart["subtotal"], json!(414.94));
    assert_eq!(cart["totalItems"], 6);

    assert_eq!(add(&buyer, earbuds, 99).await.status, 200);
    assert_eq!(lines(&buyer).await, [(earbuds, 99), (cable, 1)], "capped at 99");
    assert_eq!(buyer.get("/api/cart/count").await.body, json!(100));
}
}

testkit::backend_tests! {
async fn the_cart_always_shows_the_catalogs_current_price(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let product = insert_product(&app, 1000, 5).await;
    added(&buyer, product, 3).await;
    app.state.db.execute(sqlx::query("UPDATE products SET price_cents = 1250, name = 'Renamed' WHERE id = $1")
        .bind(product.to_string()))
        .await
        .unwrap();
    let cart = buyer.get("/api/cart").await.body;
    assert_eq!(cart["items"][0]["productName"], "Renamed");
    assert_eq!(cart["items"][0]["unitPrice"], json!(12.5));
    assert_eq!(cart["subtotal"], json!(37.5));
}
}

testkit::backend_tests! {
async fn bad_quantities_and_unsellable_products_are_refused(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let product = insert_product(&app, 1000, 5).await;
    for quantity in [0, 100, -3] {
        let reply = add(&buyer, product, quantity).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert!(reply.body["errors"]["quantity"].is_array());
    }
    let unknown = add(&buyer, ProductId::new(), 1).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type(), "application/problem+json");

    for status in ["Draft", "Archived"] {
        app.state.db.execute(sqlx::query("UPDATE products SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(product.to_string()))
            .await
            .unwrap();
        assert_eq!(add(&buyer, product, 1).await.status, 404, "{status}");
    }
    for body in [
        json!({ "quantity": 1 }),
        json!({ "productId": "nope", "quantity": 1 }),
        json!({ "productId": product, "quantity": "2" }),
        json!({ "productId": product, "quantity": 1.5 }),
    ] {
        assert_eq!(buyer.post("/api/cart/items", body).await.status, 400);
    }
    assert_eq!(buyer.get("/api/cart").await.status, 204, "nothing was added");
}
}

testkit::backend_tests! {
async fn lines_change_and_go_but_only_in_my_own_cart(backend) {
    let app = spawn_app(backend).await;
    let me = app.buyer();
    let stranger = app.buyer();
    let product = insert_product(&app, 1000, 5).await;
    let item = added(&me, product, 1).await;
    added(&stranger, product, 2).await;
    let path = format!("/api/cart/items/{item}");
    assert_eq!(stranger.put(&path, json!({ "quantity": 5 })).await.status, 404);
    assert_eq!(stranger.delete(&path).await.status, 404);
    assert_eq!(me.get("/api/cart/count").await.body, json!(1), "untouched");

    for quantity in [0, 100] {
        assert_eq!(me.put(&path, json!({ "quantity": quantity })).await.status, 400);
    }
    assert_eq!(me.put(&path, json!({ "quantity": 4 })).await.status, 204);
    assert_eq!(me.get("/api/cart/count").await.body, json!(4));
    assert_eq!(me.delete(&path).await.status, 204);
    assert_eq!(me.delete(&path).await.status, 404);
    assert_eq!(me.put(&path, json!({ "quantity": 1 })).await.status, 404);
    assert_eq!(me.get("/api/cart").await.status, 204, "a cart without items");
    assert_eq!(me.get("/api/cart/count").await.body, json!(0));
    assert_eq!(stranger.get("/api/cart/count").await.body, json!(2));
    let unknown = format!("/api/cart/items/{}", uuid::Uuid::now_v7());
    assert_eq!(me.delete(&unknown).await.status, 404);
    assert_eq!(
        me.put("/api/cart/items/nope", json!({ "quantity": 1 })).await.status,
        400
    );
}
}

testkit::backend_tests! {
async fn clearing_removes_exactly_the_checked_out_quantities(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let other = app.buyer();
    let (earbuds, charger, cable, webcam) = (
        insert_product(&app, 7999, 50).await,
        insert_product(&app, 2999, 50).await,
        insert_product(&app, 999, 50).await,
        insert_product(&app, 5999, 50).await,
    );
    // Checked out: 3 earbuds, 2 chargers, 4 cables.
    let item = added(&buyer, earbuds, 3).await;
    added(&buyer, charger, 2).await;
    let cable_line = added(&buyer, cable, 4).await;
    let owner = owner_of(&app, &item).await;
    // After the checkout began: two more earbuds, a webcam, and fewer cables than bought.
    added(&buyer, earbuds, 2).await;
    added(&buyer, webcam, 1).await;
    let path = format!("/api/cart/items/{cable_line}");
    assert_eq!(buyer.put(&path, json!({ "quantity": 1 })).await.status, 204);
    // Another buyer's cart with the same products is none of this order's business.
    added(&other, earbuds, 3).await;

    let line = |product, quantity| OrderLine {
        product_id: product,
        product_name: String::new(),
        quantity,
    };
    let clear = ClearCart {
        order_id: OrderId::new(),
        buyer_id: owner,
        items: vec![line(earbuds, 3), line(charger, 2), line(cable, 4)],
    };
    let mut tx = app.state.bus.begin().await.unwrap();
    let message = tx.publish(&clear).await.unwrap();
    tx.commit().await.unwrap();
    eventually("the cart cleared", Duration::from_secs(10), || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM bus_inbox WHERE consumer = 'cart.clear-cart' AND message_id = $1",
        )
        .bind(message.to_string())
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
        (done == 1).then_some(())
    })
    .await;

    assert_eq!(lines(&buyer).await, [(earbuds, 2), (webcam, 1)]);
    assert_eq!(lines(&other).await, [(earbuds, 3)]);
}
}
