//! Stock levels, adjustments, and the reservation consumers driven through the bus.
//!
//! The consumer tests run an app without workers and drive the bus with `run_pending`, so each
//! publish is fully handled (by inventory and by the saga) before the next assertion: a test of
//! "never twice" must know that the redelivery has been processed, not merely wait for a state
//! that is already there.

use microcommerce_service::contracts::{
    DeductStock, OrderLine, ReleaseStockReservations, ReserveStockForOrder,
};
use microcommerce_service::ids::{OrderId, ProductId};
use serde_json::{Value, json};

use crate::helpers::{TestApp, insert_product, product_name, spawn_app_with, stock_of};

/// An app whose workers are off, so each test drives the bus with `run_pending`.
async fn quiet_app(backend: crate::helpers::Backend) -> TestApp {
    spawn_app_with(backend, |mut config| {
        config.workers = 0;
        config
    })
    .await
}

async fn line(app: &TestApp, product: ProductId, quantity: u32) -> OrderLine {
    OrderLine {
        product_id: product,
        product_name: product_name(app, product).await,
        quantity,
    }
}

/// Publishes `message` and handles everything it leads to.
async fn publish<M: bus::Message>(app: &TestApp, message: &M) {
    let mut tx = app.state.bus.begin().await.unwrap();
    tx.publish(message).await.unwrap();
    tx.commit().await.unwrap();
    app.state.bus.run_pending().await.unwrap();
}

async fn reserve(app: &TestApp, order: OrderId, items: Vec<OrderLine>) {
    let command = ReserveStockForOrder {
        order_id: order,
        items,
    };
    publish(app, &command).await;
}

/// Payloads of the `message_type` messages published about `order`. Nothing in these tests runs
/// a checkout saga, so the saga parks the inventory's answers; they are read there (or from the
/// queue, or the dead letters, wherever they ended up).
async fn answers(app: &TestApp, message_type: &str, order: OrderId) -> Vec<Value> {
    let mut payloads = Vec::new();
    for table in ["bus_queue", "saga_parked", "bus_dead_letters"] {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT payload FROM {table} WHERE message_type = $1 AND correlation_id = $2 \
             ORDER BY created_at"
        ));
        let found: Vec<String> = sqlx::query_scalar(sql)
            .bind(message_type)
            .bind(order.to_string())
            .fetch_all(app.state.db.reader())
            .await
            .unwrap();
        payloads.extend(found.iter().map(|p| serde_json::from_str(p).unwrap()));
    }
    payloads
}

/// (product, quantity, status) of every reservation row of `order`, by product.
async fn reservations(app: &TestApp, order: OrderId) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "SELECT product_id, quantity, status FROM stock_reservations WHERE order_id = $1 \
         ORDER BY product_id",
    )
    .bind(order.to_string())
    .fetch_all(app.state.db.reader())
    .await
    .unwrap()
}

async fn dead_letters(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM bus_dead_letters")
        .fetch_one(app.state.db.reader())
        .await
        .unwrap()
}

/// Two products with `on_hand` units each, the lower id (the one reserved first) first.
async fn two_products(app: &TestApp, on_hand: i64) -> (ProductId, ProductId) {
    let a = insert_product(app, 1000, on_hand).await;
    let b = insert_product(app, 2000, on_hand).await;
    if a < b { (a, b) } else { (b, a) }
}

testkit::backend_tests! {
async fn stock_levels_show_availability_and_low_stock(backend) {
    let app = quiet_app(backend).await;
    let buyer = app.buyer();
    let low = insert_product(&app, 500, 10).await;
    let plenty = insert_product(&app, 500, 11).await;
    let none = insert_product(&app, 500, 0).await;

    let view = buyer.get(&format!("/api/inventory/stock/{low}")).await;
    assert_eq!(view.status, 200);
    assert_eq!(
        view.body,
        json!({ "productId": low, "quantityOnHand": 10, "reservedQuantity": 0,
                "availableQuantity": 10, "isInStock": true, "isLowStock": true })
    );
    let view = buyer.get(&format!("/api/inventory/stock/{plenty}")).await;
    assert_eq!(view.body["isLowStock"], false);
    let view = buyer.get(&format!("/api/inventory/stock/{none}")).await;
    assert_eq!(view.body["isInStock"], false);
    assert_eq!(view.body["isLowStock"], true);

    // Reserving one unit of eleven leaves ten available: low stock now.
    reserve(&app, OrderId::new(), vec![line(&app, plenty, 1).await]).await;
    let view = buyer.get(&format!("/api/inventory/stock/{plenty}")).await;
    assert_eq!(
        (&view.body["reservedQuantity"], &view.body["availableQuantity"], &view.body["isLowStock"]),
        (&json!(1), &json!(10), &json!(true))
    );

    let unknown = buyer
        .get(&format!("/api/inventory/stock/{}", ProductId::new()))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type(), "application/problem+json");
    assert_eq!(buyer.get("/api/inventory/stock/bad").await.status, 400);
}
}

testkit::backend_tests! {
async fn several_stock_levels_at_once_leave_unknown_ids_out(backend) {
    let app = quiet_app(backend).await;
    let buyer = app.buyer();
    let (a, b) = two_products(&app, 4).await;
    let ghost = ProductId::new();
    let levels = buyer
        .get(&format!("/api/inventory/stock?productIds={b},{ghost},{a}"))
        .await;
    assert_eq!(levels.status, 200);
    let ids: Vec<&str> = levels
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|level| level["productId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.to_string(), a.to_string()], "known ones, in the order asked");

    for bad in ["", "?productIds=", "?productIds=,", &format!("?productIds={a},nope")] {
        let reply = buyer.get(&format!("/api/inventory/stock{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.body["errors"]["productIds"].is_array(), "{bad}");
    }
    let too_many: Vec<String> = (0..101).map(|_| ProductId::new().to_string()).collect();
    let reply = buyer
        .get(&format!("/api/inventory/stock?productIds={}", too_many.join(",")))
        .await;
    assert_eq!(reply.status, 400);
}
}

testkit::backend_tests! {
async fn admins_adjust_stock_with_a_history_but_never_below_what_is_reserved(backend) {
    let app = quiet_app(backend).await;
    let product = insert_product(&app, 1999, 3).await;
    let admin = app.admin();
    let path = format!("/api/inventory/stock/{product}/adjust");
    let added = admin
        .post(&path, json!({ "adjustment": 7, "reason": "delivery" }))
        .await;
    assert_eq!(added.status, 204);
    assert_eq!(stock_of(&app, product).await, (10, 0));

    reserve(&app, OrderId::new(), vec![line(&app, product, 6).await]).await;
    assert_eq!(stock_of(&app, product).await, (10, 6));
    let too_much = admin.post(&path, json!({ "adjustment": -5 })).await;
    assert_eq!(too_much.status, 422);
    assert_eq!(too_much.content_type(), "application/problem+json");
    assert_eq!(
        too_much.body["type"],
        "urn:microcommerce:problem:insufficient-stock"
    );
    let detail = too_much.body["detail"].as_str().unwrap();
    assert!(detail.contains("5 on hand") && detail.contains("6 reserved"), "{detail}");
    assert_eq!(stock_of(&app, product).await, (10, 6), "a refusal changes nothing");
    assert_eq!(
        admin
            .post(&path, json!({ "adjustment": -4, "reason": "breakage" }))
            .await
            .status,
        204
    );
    assert_eq!(stock_of(&app, product).await, (6, 6));

    assert_eq!(admin.post(&path, json!({ "adjustment": 0 })).await.status, 400);
    assert_eq!(admin.post(&path, json!({ "adjustment": 1.5 })).await.status, 400);
    assert_eq!(app.buyer().post(&path, json!({ "adjustment": 1 })).await.status, 401);
    let unknown = format!("/api/inventory/stock/{}/adjust", ProductId::new());
    assert_eq!(admin.post(&unknown, json!({ "adjustment": 1 })).await.status, 404);

    let history_path = format!("/api/inventory/stock/{product}/adjustments");
    assert_eq!(app.buyer().get(&history_path).await.status, 401);
    let history = admin.get(&history_path).await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["totalCount"], 2);
    let entries = history.body["items"].as_array().unwrap();
    let seen: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (e["adjustment"].as_i64().unwrap(), e["quantityAfter"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen, [(-4, 6), (7, 10)], "newest first; the refused one is not recorded");
    assert_eq!(entries[0]["reason"], "breakage");
    assert_eq!(entries[0]["adjustedBy"], "admin");
    assert!(entries[0]["id"].is_i64());
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'));
    let unknown = format!("/api/inventory/stock/{}/adjustments", ProductId::new());
    assert_eq!(admin.get(&unknown).await.status, 404);
}
}

testkit::backend_tests! {
async fn the_adjustment_history_is_paged_newest_first(backend) {
    let app = quiet_app(backend).await;
    let (product, _) = two_products(&app, 0).await;
    let admin = app.admin();
    let path = format!("/api/inventory/stock/{product}/adjust");
    for units in 1..=5 {
        let adjusted = admin.post(&path, json!({ "adjustment": units })).await;
        assert_eq!(adjusted.status, 204);
    }
    let history = format!("/api/inventory/stock/{product}/adjustments");
    let page = async |number: u32| {
        admin
            .get(&format!("{history}?page={number}&pageSize=2"))
            .await
    };
    let adjustments = |body: &serde_json::Value| -> Vec<i64> {
        body["items"].as_array().unwrap().iter().map(|e| e["adjustment"].as_i64().unwrap()).collect()
    };
    let first = page(1).await;
    assert_eq!(first.status, 200);
    assert_eq!(adjustments(&first.body), [5, 4]);
    assert_eq!(first.body["totalCount"], 5);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["pageSize"], 2);
    assert_eq!(adjustments(&page(3).await.body), [1]);
    assert_eq!(adjustments(&page(2_147_483_647).await.body), Vec::<i64>::new());
    let default = admin.get(&history).await;
    assert_eq!(default.body["pageSize"], 20);
    assert_eq!(adjustments(&default.body), [5, 4, 3, 2, 1]);
    for bad in ["page=0", "pageSize=0", "pageSize=101", "page=x"] {
        let reply = admin.get(&format!("{history}?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.content_type(), "application/problem+json");
    }
}
}

testkit::backend_tests! {
async fn a_reservation_is_all_or_nothing(backend) {
    let app = quiet_app(backend).await;
    let (first, second) = two_products(&app, 5).await;
    let order = OrderId::new();
    // The first line fits and is reserved before the second turns out short.
    reserve(&app, order, vec![line(&app, second, 6).await, line(&app, first, 2).await]).await;

    assert_eq!(stock_of(&app, first).await, (5, 0), "the first line was rolled back");
    assert_eq!(stock_of(&app, second).await, (5, 0));
    assert!(reservations(&app, order).await.is_empty());
    let failed = answers(&app, "StockReservationFailed", order).await;
    assert_eq!(failed.len(), 1);
    let reason = format!("Insufficient stock for {}", product_name(&app, second).await);
    assert_eq!(failed[0]["reason"], reason);
    assert!(answers(&app, "StockReservationCompleted", order).await.is_empty());
}
}

testkit::backend_tests! {
async fn a_reservation_holds_every_line_merged_by_product(backend) {
    let app = quiet_app(backend).await;
    let (a, b) = two_products(&app, 5).await;
    let order = OrderId::new();
    let items = vec![
        line(&app, b, 1).await,
        line(&app, a, 2).await,
        line(&app, a, 2).await,
    ];
    reserve(&app, order, items).await;
    assert_eq!(stock_of(&app, a).await, (5, 4));
    assert_eq!(stock_of(&app, b).await, (5, 1));
    let held = reservations(&app, order).await;
    let expected = [
        (a.to_string(), 4, "Held".to_owned()),
        (b.to_string(), 1, "Held".to_owned()),
    ];
    assert_eq!(held, expected);
    assert_eq!(answers(&app, "StockReservationCompleted", order).await.len(), 1);

    // Merged, two lines of 3 are 6, more than the 5 on hand of a fresh product.
    let c = insert_product(&app, 100, 5).await;
    let short = OrderId::new();
    reserve(&app, short, vec![line(&app, c, 3).await, line(&app, c, 3).await]).await;
    assert_eq!(stock_of(&app, c).await, (5, 0));
    assert_eq!(answers(&app, "StockReservationFailed", short).await.len(), 1);
}
}

testkit::backend_tests! {
async fn an_unknown_product_is_insufficient_stock(backend) {
    let app = quiet_app(backend).await;
    let real = insert_product(&app, 100, 5).await;
    let order = OrderId::new();
    let ghost = OrderLine {
        product_id: ProductId::new(),
        product_name: "Ghost Gadget".into(),
        quantity: 1,
    };
    reserve(&app, order, vec![line(&app, real, 1).await, ghost]).await;
    assert_eq!(stock_of(&app, real).await, (5, 0));
    assert!(reservations(&app, order).await.is_empty());
    let failed = answers(&app, "StockReservationFailed", order).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "Insufficient stock for Ghost Gadget");
    assert_eq!(dead_letters(&app).await, 0, "a business failure, not an error");
}
}

testkit::backend_tests! {
async fn a_redelivered_reservation_is_never_held_twice(backend) {
    let app = quiet_app(backend).await;
    let product = insert_product(&app, 100, 8).await;
    let order = OrderId::new();
    let items = vec![line(&app, product, 5).await];
    // Three deliveries under three message ids: the bus inbox cannot tell them apart, the
    // reservation rows can. Stock for a second 5 exists, so only idempotency stops it.
    for _ in 0..3 {
        reserve(&app, order, items.clone()).await;
    }
    assert_eq!(stock_of(&app, product).await, (8, 5));
    assert_eq!(reservations(&app, order).await.len(), 1);
    let completed = answers(&app, "StockReservationCompleted", order).await;
    assert_eq!(completed.len(), 3, "every delivery repeats the stored outcome");
    assert!(answers(&app, "StockReservationFailed", order).await.is_empty());
}
}

testkit::backend_tests! {
async fn deducting_and_releasing_apply_once_and_never_go_negative(backend) {
    let app = quiet_app(backend).await;
    let product = insert_product(&app, 100, 8).await;
    let paid = OrderId::new();
    reserve(&app, paid, vec![line(&app, product, 5).await]).await;
    for _ in 0..3 {
        publish(&app, &DeductStock { order_id: paid }).await;
    }
    assert_eq!(stock_of(&app, product).await, (3, 0));
    // A late release of a paid order finds nothing held.
    publish(&app, &ReleaseStockReservations { order_id: paid }).await;
    assert_eq!(stock_of(&app, product).await, (3, 0));
    let rows = reservations(&app, paid).await;
    assert_eq!(rows[0].2, "Deducted");

    let failed = OrderId::new();
    reserve(&app, failed, vec![line(&app, product, 2).await]).await;
    assert_eq!(stock_of(&app, product).await, (3, 2));
    for _ in 0..3 {
        publish(&app, &ReleaseStockReservations { order_id: failed }).await;
    }
    // A late deduction of a released order finds nothing held either.
    publish(&app, &DeductStock { order_id: failed }).await;
    assert_eq!(stock_of(&app, product).await, (3, 0));
    assert_eq!(reservations(&app, failed).await[0].2, "Released");

    // Orders that never held anything: no-ops, not errors.
    publish(&app, &DeductStock { order_id: OrderId::new() }).await;
    publish(&app, &ReleaseStockReservations { order_id: OrderId::new() }).await;
    assert_eq!(stock_of(&app, product).await, (3, 0));
    assert_eq!(dead_letters(&app).await, 0);
    let ended: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT ended_at FROM stock_reservations ORDER BY order_id")
            .fetch_all(app.state.db.reader())
            .await
            .unwrap();
    assert!(ended.iter().all(Option::is_some));
}
}

testkit::backend_tests! {
async fn a_release_gives_every_line_back(backend) {
    let app = quiet_app(backend).await;
    let (a, b) = two_products(&app, 6).await;
    let order = OrderId::new();
    reserve(&app, order, vec![line(&app, a, 1).await, line(&app, b, 2).await]).await;
    assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((6, 1), (6, 2)));
    publish(&app, &ReleaseStockReservations { order_id: order }).await;
    assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((6, 0), (6, 0)));
    // Released units can be reserved by the next order.
    let next = OrderId::new();
    reserve(&app, next, vec![line(&app, b, 6).await]).await;
    assert_eq!(stock_of(&app, b).await, (6, 6));
}
}
