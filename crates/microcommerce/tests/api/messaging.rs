//! Dead-letter administration over HTTP.

use std::time::Duration;

use microcommerce_service::contracts::StockReservationFailed;
use microcommerce_service::ids::OrderId;
use serde_json::json;

use crate::helpers::{eventually, spawn_app};

testkit::backend_tests! {
async fn admins_list_retry_and_purge_dead_letters(backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin();
    // A message the checkout saga cannot decode fails permanently.
    let mut tx = app.state.bus.begin().await.unwrap();
    let mut outgoing = bus::Outgoing::send(
        "checkout",
        &StockReservationFailed {
            order_id: OrderId::new(),
            reason: microcommerce_service::contracts::FailureReason::PaymentDeclined,
        },
    );
    outgoing.payload = "{\"not\": \"a stock reservation\"}".into();
    tx.write(&outgoing).await.unwrap();
    tx.commit().await.unwrap();
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let page = admin.get("/api/messaging/dead-letters").await.body;
        page["items"][0]["id"].is_i64().then_some(page)
    })
    .await;
    let letter = &letters["items"][0];
    assert_eq!(letter["consumer"], "checkout");
    assert_eq!(letter["messageType"], "StockReservationFailed");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["payload"], json!({ "not": "a stock reservation" }));
    assert!(letter["error"].as_str().unwrap().contains("permanent"));

    let id = letter["id"].as_i64().unwrap();
    let retried = admin
        .send(
            "POST",
            &format!("/api/messaging/dead-letters/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status, 204);
    let missing = admin
        .send(
            "POST",
            &format!("/api/messaging/dead-letters/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    // Still undecodable, so it comes back as a new dead letter with the same message id.
    let again = eventually(
        "the retried message to fail again",
        Duration::from_secs(10),
        || async {
            let page = admin.get("/api/messaging/dead-letters").await.body;
            let new_id = page["items"][0]["id"].as_i64();
            (new_id.is_some() && new_id != Some(id)).then_some(page)
        },
    )
    .await;
    assert_eq!(again["items"][0]["messageId"], letter["messageId"]);
    let purged = admin.delete("/api/messaging/dead-letters").await;
    assert_eq!(purged.body, json!({ "purged": 1 }));
    assert_eq!(
        admin.get("/api/messaging/dead-letters").await.body["totalCount"],
        0
    );
}
}
