//! The limits against abuse and overload, over HTTP: a client writing too fast gets 429, a
//! request held open too long or one long poll too many gets 503, each a problem with
//! `Retry-After`; nothing a turned-away checkout did is lost.

use std::num::NonZeroU32;
use std::time::Duration;

use futures_util::future::join_all;

use microcommerce_service::config::{Config, Limits};

use crate::helpers::{
    Reply, checkout_request, eventually, known_buyer, order_count, spawn_app_with, stocked_product,
};

fn with_limits(limits: Limits) -> impl FnOnce(Config) -> Config {
    move |config| Config { limits, ..config }
}

fn assert_problem(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(
        reply.body["type"],
        format!("urn:microcommerce:problem:{kind}")
    );
    let retry_after = reply.headers.get("retry-after").expect("Retry-After");
    let seconds: u64 = retry_after
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds");
    assert!(seconds >= 1, "Retry-After {seconds}");
}

testkit::backend_tests! {
async fn a_client_writing_faster_than_its_rate_gets_429_and_may_still_read(backend) {
    let limits = Limits {
        writes_per_second: NonZeroU32::new(1),
        write_burst: NonZeroU32::new(2).unwrap(),
        ..Limits::default()
    };
    let app = spawn_app_with(backend, with_limits(limits)).await;
    let product = stocked_product(&app, "Pen", 100).await;
    let buyer = app.buyer();
    let line = serde_json::json!({ "productId": product, "quantity": 1 });
    let writes = join_all((0..10).map(|_| buyer.post("/api/cart/items", line.clone()))).await;
    let passed = writes.iter().filter(|reply| reply.status == 200).count();
    assert!(passed >= 2, "the burst of two passes: {writes:?}");
    let refused: Vec<_> = writes.iter().filter(|reply| reply.status != 200).collect();
    assert!(!refused.is_empty(), "ten writes at once exceed a burst of two");
    for reply in refused {
        assert_problem(reply, 429, "rate-limited");
    }
    assert_eq!(buyer.get("/api/cart/count").await.status, 200);
}
}

testkit::backend_tests! {
async fn a_request_past_its_time_gets_503_and_its_checkout_is_kept(backend) {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    // No workers: the order never moves on, so a checkout preferring to wait outlasts the limit.
    let app = spawn_app_with(backend, |config| Config { workers: 0, ..with_limits(limits)(config) }).await;
    let product = stocked_product(&app, "Ink", 10).await;
    let buyer = known_buyer(&app).await.with_idempotency_key("slow-one");
    let held = buyer
        .preferring("wait=5")
        .post("/api/ordering/checkout", checkout_request(&product, 1))
        .await;
    assert_problem(&held, 503, "timeout");
    let again = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(order_count(&app).await, 1);
}
}

testkit::backend_tests! {
async fn one_long_poll_beyond_the_cap_gets_503(backend) {
    let limits = Limits {
        long_polls: 1,
        ..Limits::default()
    };
    let app = spawn_app_with(backend, |config| Config { workers: 0, ..with_limits(limits)(config) }).await;
    let product = stocked_product(&app, "Clip", 10).await;
    let buyer = known_buyer(&app).await;
    let waiting = buyer.preferring("wait=30");
    let held = tokio::spawn(async move {
        waiting.post("/api/ordering/checkout", checkout_request(&product, 1)).await
    });
    // Once its order is committed, the checkout is waiting for the order to move on.
    eventually("the checkout is placed and held", Duration::from_secs(20), || async {
        assert!(!held.is_finished(), "the held checkout ended early");
        (order_count(&app).await == 1).then_some(())
    })
    .await;
    let refused = buyer.preferring("wait=1").get("/api/cart/count").await;
    assert_problem(&refused, 503, "too-many-waiting");
    assert_eq!(buyer.get("/api/cart/count").await.status, 200, "a request that does not wait passes");
    held.abort();
}
}
