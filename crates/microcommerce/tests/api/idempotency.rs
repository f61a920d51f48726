//! Checkouts under an `Idempotency-Key` (IETF draft "The Idempotency-Key HTTP Header Field"):
//! duplicates, sent one after another or all at once, answer exactly as the first request did
//! and place one order; the key reused for a different request is refused.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Reply, checkout_request, known_buyer, order_count, order_in, spawn_app, stocked_product,
};

/// Keys raced at once, and duplicates of each sent together.
const KEYS: usize = 8;
const DUPLICATES: usize = 16;

/// Status, `Location` and body: what "the same answer" compares.
fn answer(reply: &Reply) -> (u16, Option<String>, Value) {
    let location = reply
        .headers
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (reply.status, location, reply.body.clone())
}

testkit::backend_tests! {
async fn concurrent_duplicates_of_a_key_place_one_order_and_answer_alike(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Lamp", 1_000).await;
    let buyers = [known_buyer(&app).await, known_buyer(&app).await];
    let sends = (0..KEYS).flat_map(|key| {
        let client = buyers[key % buyers.len()].with_idempotency_key(&format!("race-{key}"));
        let body = checkout_request(&product, 1);
        (0..DUPLICATES).map(move |_| {
            let (client, body) = (client.clone(), body.clone());
            async move { (key, answer(&client.post("/api/ordering/checkout", body).await)) }
        })
    });
    let answers = join_all(sends).await;
    for key in 0..KEYS {
        let of_key: Vec<_> = answers.iter().filter(|(k, _)| *k == key).map(|(_, a)| a).collect();
        assert_eq!(of_key.len(), DUPLICATES);
        assert_eq!(of_key[0].0, 201, "key {key}: {:?}", of_key[0]);
        assert!(of_key.iter().all(|a| *a == of_key[0]), "key {key} answered differently: {of_key:?}");
    }
    let orders: std::collections::BTreeSet<_> =
        answers.iter().map(|(_, a)| a.2["orderId"].to_string()).collect();
    assert_eq!(orders.len(), KEYS);
    assert_eq!(order_count(&app).await, KEYS as i64);
}
}

testkit::backend_tests! {
async fn a_repeat_answers_as_the_first_did_after_the_order_moved_on(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Kettle", 10).await;
    let buyer = known_buyer(&app).await.with_idempotency_key("moved-on");
    let first = answer(&buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await);
    assert_eq!(first.0, 201);
    assert_eq!(first.2["status"], "Submitted");
    let order = first.2["orderId"].as_str().expect("order id").to_owned();
    order_in(&buyer, &order, &["StockReserved", "Failed"]).await;
    let again = answer(&buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await);
    assert_eq!(again, first);
}
}

testkit::backend_tests! {
async fn a_key_reused_for_a_different_request_is_refused(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Mug", 10).await;
    let buyer = known_buyer(&app).await.with_idempotency_key("one-purpose");
    let first = answer(&buyer.post("/api/ordering/checkout", checkout_request(&product, 2)).await);
    assert_eq!(first.0, 201);

    let other = buyer.post("/api/ordering/checkout", checkout_request(&product, 3)).await;
    assert_eq!(other.status, 422, "{:?}", other.body);
    assert_eq!(other.content_type(), "application/problem+json");
    assert_eq!(other.body["type"], "urn:microcommerce:problem:idempotency-key-reused");

    // The same request spelled differently (the line split in two) is still the same request.
    let mut split = checkout_request(&product, 1);
    split["items"] = json!([{ "quantity": 1, "productId": product }, { "productId": product, "quantity": 1 }]);
    let again = answer(&buyer.post("/api/ordering/checkout", split).await);
    assert_eq!(again, first);
    assert_eq!(order_count(&app).await, 1);
}
}
