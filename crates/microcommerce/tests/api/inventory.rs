//! Stock levels, adjustments, and the reservation consumers driven through the bus.

use microcommerce::ids::{OrderId, ProductId};
use microcommerce::ordering::messages::{
    DeductStock, OrderLine, ReleaseStockReservations, ReserveStockForOrder,
};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{TestApp, spawn_app_with};

/// An app whose workers are off, so each test drives the bus with `run_pending`.
async fn quiet_app(backend: crate::helpers::Backend) -> TestApp {
    spawn_app_with(backend, |mut config| {
        config.workers = 0;
        config
    })
    .await
}

async fn stock(app: &TestApp, product: ProductId) -> (i64, i64) {
    let row = sqlx::query("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
    (row.get("on_hand"), row.get("reserved"))
}

/// A seeded product by its SKU number within Electronics (1-based).
fn electronics(index: u128) -> ProductId {
    ProductId(uuid::Uuid::from_u128(0x5eed_0000_0000 + index))
}

fn line(product: ProductId, name: &str, quantity: u32) -> OrderLine {
    OrderLine {
        product_id: product,
        product_name: name.into(),
        quantity,
    }
}

async fn publish<M: bus::Message>(app: &TestApp, message: &M) {
    let mut tx = app.state.bus.begin().await.unwrap();
    tx.publish(message).await.unwrap();
    tx.commit().await.unwrap();
    app.state.bus.run_pending().await.unwrap();
}

testkit::backend_tests! {
async fn stock_levels_show_availability_and_low_stock(backend) {
    let app = quiet_app(backend).await;
    let buyer = app.buyer();
    let watch = buyer
        .get(&format!("/api/inventory/stock/{}", electronics(6)))
        .await;
    assert_eq!(watch.status, 200);
    assert_eq!(
        watch.body,
        json!({ "productId": electronics(6), "quantityOnHand": 3, "reservedQuantity": 0,
                "availableQuantity": 3, "isInStock": true, "isLowStock": true })
    );
    let unknown = buyer
        .get(&format!("/api/inventory/stock/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(buyer.get("/api/inventory/stock/bad").await.status, 400);
    assert_eq!(buyer.get("/api/inventory/stock").await.status, 400);
    assert_eq!(
        buyer
            .get("/api/inventory/stock?productIds=a,b")
            .await
            .status,
        400
    );
}
}

testkit::backend_tests! {
async fn admins_adjust_stock_with_a_history_but_never_below_what_is_reserved(backend) {
    let app = quiet_app(backend).await;
    let product = electronics(6);
    let admin = app.admin();
    let path = format!("/api/inventory/stock/{product}/adjust");
    let added = admin
        .post(&path, json!({ "adjustment": 7, "reason": "delivery" }))
        .await;
    assert_eq!(added.status, 204);
    assert_eq!(stock(&app, product).await, (10, 0));

    let order = OrderId::new();
    let items = vec![line(product, "Smart Watch", 6)];
    publish(
        &app,
        &ReserveStockForOrder {
            order_id: order,
            items,
        },
    )
    .await;
    assert_eq!(stock(&app, product).await, (10, 6));
    let too_much = admin.post(&path, json!({ "adjustment": -5 })).await;
    assert_eq!(too_much.status, 422);
    assert_eq!(
        too_much.body["type"],
        "urn:microcommerce:problem:insufficient-stock"
    );
    assert_eq!(
        admin
            .post(&path, json!({ "adjustment": -4, "reason": "breakage" }))
            .await
            .status,
        204
    );
    assert_eq!(stock(&app, product).await, (6, 6));
    assert_eq!(
        admin.post(&path, json!({ "adjustment": 0 })).await.status,
        400
    );
    assert_eq!(
        app.buyer()
            .post(&path, json!({ "adjustment": 1 }))
            .await
            .status,
        401
    );
    let unknown = format!("/api/inventory/stock/{}/adjust", uuid::Uuid::now_v7());
    assert_eq!(
        admin
            .post(&unknown, json!({ "adjustment": 1 }))
            .await
            .status,
        404
    );

    let history = admin
        .get(&format!("/api/inventory/stock/{product}/adjustments"))
        .await;
    let entries = history.body.as_array().unwrap();
    let seen: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["adjustment"].as_i64().unwrap(),
                e["quantityAfter"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [(-4, 6), (7, 10)]);
    assert_eq!(entries[0]["reason"], "breakage");
    assert_eq!(entries[0]["adjustedBy"], "admin");
}
}

testkit::backend_tests! {
async fn a_reservation_is_all_or_nothing(backend) {
    let app = quiet_app(backend).await;
    let (earbuds, watch) = (electronics(1), electronics(6));
    let before = stock(&app, earbuds).await;
    let order = OrderId::new();
    let items = vec![
        line(earbuds, "Wireless Earbuds", 2),
        line(watch, "Smart Watch", 4),
    ];
    publish(
        &app,
        &ReserveStockForOrder {
            order_id: order,
            items,
        },
    )
    .await;
    assert_eq!(
        stock(&app, earbuds).await,
        before,
        "the first line was rolled back"
    );
    assert_eq!(stock(&app, watch).await, (3, 0));
    let reservations: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stock_reservations WHERE order_id = $1")
            .bind(order.to_string())
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
    assert_eq!(reservations, 0);
    let failed: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM bus_queue WHERE message_type = 'StockReservationFailed'",
    )
    .fetch_all(app.state.db.reader())
    .await
    .unwrap();
    // The saga has no instance for this order, so it parked the answer; read it there.
    let parked: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM saga_parked WHERE message_type = 'StockReservationFailed'",
    )
    .fetch_all(app.state.db.reader())
    .await
    .unwrap();
    let all: Vec<String> = failed.into_iter().chain(parked).collect();
    assert_eq!(all.len(), 1);
    assert!(
        all[0].contains("Insufficient stock for Smart Watch"),
        "{}",
        all[0]
    );
}
}

testkit::backend_tests! {
async fn redelivered_commands_never_reserve_deduct_or_release_twice(backend) {
    let app = quiet_app(backend).await;
    let product = electronics(2);
    let (on_hand, _) = stock(&app, product).await;
    let order = OrderId::new();
    let reserve = ReserveStockForOrder {
        order_id: order,
        items: vec![line(product, "USB-C Charger 65W", 5)],
    };
    for _ in 0..3 {
        publish(&app, &reserve).await;
    }
    assert_eq!(stock(&app, product).await, (on_hand, 5));
    for _ in 0..3 {
        publish(&app, &DeductStock { order_id: order }).await;
        publish(&app, &ReleaseStockReservations { order_id: order }).await;
    }
    assert_eq!(stock(&app, product).await, (on_hand - 5, 0));
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM stock_reservations WHERE order_id = $1")
            .bind(order.to_string())
            .fetch_all(app.state.db.reader())
            .await
            .unwrap();
    assert_eq!(statuses, ["Deducted"]);
}
}

testkit::backend_tests! {
async fn a_release_gives_every_line_back(backend) {
    let app = quiet_app(backend).await;
    let (a, b) = (electronics(3), electronics(4));
    let (before_a, before_b) = (stock(&app, a).await, stock(&app, b).await);
    let order = OrderId::new();
    let items = vec![line(a, "Mechanical Keyboard", 1), line(b, "4K Webcam", 2)];
    publish(
        &app,
        &ReserveStockForOrder {
            order_id: order,
            items,
        },
    )
    .await;
    assert_eq!(stock(&app, b).await, (before_b.0, 2));
    publish(&app, &ReleaseStockReservations { order_id: order }).await;
    assert_eq!(
        (stock(&app, a).await, stock(&app, b).await),
        (before_a, before_b)
    );
}
}
