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

/// The hoarding limits on, the write rate off.
fn hoarding(per_buyer: u32, per_address: u32) -> impl FnOnce(Config) -> Config {
    with_limits(Limits {
        writes_per_second: None,
        unpaid_per_buyer: NonZeroU32::new(per_buyer),
        unpaid_per_address: NonZeroU32::new(per_address),
        ..Limits::default()
    })
}

/// Places a checkout of one `product` for `buyer`; the reply as it came.
async fn place(buyer: &crate::helpers::Client, product: &str) -> Reply {
    buyer
        .post("/api/ordering/checkout", checkout_request(product, 1))
        .await
}

testkit::backend_tests! {
async fn a_buyer_holding_as_many_unpaid_checkouts_as_allowed_gets_429_until_paying_one(backend) {
    let app = spawn_app_with(backend, hoarding(2, 0)).await;
    let product = stocked_product(&app, "Lamp", 10).await;
    let buyer = known_buyer(&app).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let placed = place(&buyer, &product).await;
        assert_eq!(placed.status, 201, "{:?}", placed.body);
        held.push(placed.body["orderId"].as_str().unwrap().to_owned());
    }
    let refused = place(&buyer, &product).await;
    assert_problem(&refused, 429, "too-many-unpaid-checkouts");
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait <= 15 * 60 + 1, "at most the payment window: {wait}");
    assert_eq!(order_count(&app).await, 2, "the refused checkout placed nothing");
    let other = known_buyer(&app).await;
    assert_eq!(place(&other, &product).await.status, 201, "another buyer is not held back");
    crate::helpers::order_in(&buyer, &held[0], &["StockReserved"]).await;
    let paid = buyer
        .post(&format!("/api/ordering/orders/{}/pay", held[0]), serde_json::json!({ "shouldSucceed": true }))
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    assert_eq!(place(&buyer, &product).await.status, 201, "a paid checkout frees a place");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn many_buyers_behind_one_address_share_its_limit(backend) {
    let app = spawn_app_with(backend, hoarding(0, 3)).await;
    let product = stocked_product(&app, "Rug", 10).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        // A new cookie each time: what a hoarder who drops theirs looks like.
        answers.push(place(&app.buyer(), &product).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|reply| reply.status).collect();
    assert_eq!(statuses, [201, 201, 201, 429]);
    assert_problem(&answers[3], 429, "too-many-unpaid-checkouts");
    assert!(answers[3].body["detail"].as_str().unwrap().contains("client address"));
    app.stop().await;
}
}

testkit::backend_tests! {
async fn the_storefront_explains_a_hoarding_refusal_in_words(backend) {
    let app = spawn_app_with(backend, hoarding(1, 0)).await;
    let product = stocked_product(&app, "Vase", 10).await;
    let buyer = known_buyer(&app).await;
    assert_eq!(place(&buyer, &product).await.status, 201);
    let post = |path: &str, form: String| {
        buyer.http.post(format!("{}{path}", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    post("/cart/items", format!("productId={product}&quantity=1")).await.unwrap();
    let form = "email=ada%40example.com&name=Ada&street=1+Loop&city=London&state=LDN&zipCode=N1&key=k9";
    let refused = post("/checkout", form.to_owned()).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let page = refused.text().await.unwrap();
    assert!(page.contains("You already have 1 order waiting for payment"), "{page}");
    assert!(!page.contains("Please correct the marked fields"), "no field is wrong");
    app.stop().await;
}
}

/// Limits with `cap` places for requests held open, `per_address` of them for one address,
/// and streams that last at most `stream_max`.
fn held(cap: usize, per_address: usize, stream_max: Duration) -> impl FnOnce(Config) -> Config {
    with_limits(Limits {
        writes_per_second: None,
        long_polls: cap,
        held_per_address: per_address,
        stream_max,
        unpaid_per_buyer: None,
        unpaid_per_address: None,
        ..Limits::default()
    })
}

/// A buyer with an order awaiting payment; the buyer and the order's id.
async fn awaiting_payment(app: &crate::helpers::TestApp) -> (crate::helpers::Client, String) {
    let product = stocked_product(app, "Jug", 10).await;
    let buyer = known_buyer(app).await;
    let placed = place(&buyer, &product).await;
    let order = placed.body["orderId"].as_str().unwrap().to_owned();
    crate::helpers::order_in(&buyer, &order, &["StockReserved"]).await;
    (buyer, order)
}

/// Opens the order's live stream; the response, its body not read.
async fn open_stream(
    app: &crate::helpers::TestApp,
    buyer: &crate::helpers::Client,
    order: &str,
) -> reqwest::Response {
    buyer
        .http
        .get(format!("{}/orders/{order}/events", app.base))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
}

/// Returns once a stream of the order is let through again (within 10 s): a place was given
/// back.
async fn a_place_frees_up(
    app: &crate::helpers::TestApp,
    buyer: &crate::helpers::Client,
    order: &str,
) {
    eventually("a place given back", Duration::from_secs(10), || async {
        let stream = open_stream(app, buyer, order).await;
        (stream.status() == 200).then_some(())
    })
    .await;
}

/// A 503 problem for a request held open one too many.
async fn assert_no_place(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:microcommerce:problem:too-many-waiting");
}

testkit::backend_tests! {
async fn event_streams_and_long_polls_share_one_cap_and_a_settled_order_gives_places_back(backend) {
    let app = spawn_app_with(backend, held(2, 100, Duration::from_secs(600))).await;
    let (buyer, order) = awaiting_payment(&app).await;
    let first = open_stream(&app, &buyer, &order).await;
    let second = open_stream(&app, &buyer, &order).await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    assert_no_place(open_stream(&app, &buyer, &order).await).await;
    let poll = buyer.get(&format!("/api/ordering/orders/{order}?waitWhile=StockReserved&timeoutMs=100")).await;
    assert_problem(&poll, 503, "too-many-waiting");
    let paid = buyer
        .post(&format!("/api/ordering/orders/{order}/pay"), serde_json::json!({ "shouldSucceed": true }))
        .await;
    assert_eq!(paid.status, 200);
    // The order settles, so both streams end and give their places back.
    for stream in [first, second] {
        let events = stream.text().await.unwrap();
        assert!(events.contains("event: progress"), "{events}");
    }
    a_place_frees_up(&app, &buyer, &order).await;
    app.stop().await;
}
}

testkit::backend_tests! {
async fn one_address_holds_only_its_share_and_a_stream_ends_at_its_longest(backend) {
    let app = spawn_app_with(backend, held(100, 1, Duration::from_secs(1))).await;
    let (buyer, order) = awaiting_payment(&app).await;
    let stream = open_stream(&app, &buyer, &order).await;
    assert_eq!(stream.status(), 200);
    assert_no_place(open_stream(&app, &buyer, &order).await).await;
    // The order is still unpaid: the stream ends only because it reached its longest.
    let events = tokio::time::timeout(Duration::from_secs(20), stream.text())
        .await
        .expect("the stream ends by itself")
        .unwrap();
    assert!(events.contains("event: progress"), "{events}");
    a_place_frees_up(&app, &buyer, &order).await;
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_stopping_server_ends_its_streams_and_never_waits_for_them(backend) {
    let app = spawn_app_with(backend, held(100, 100, Duration::from_secs(600))).await;
    let (buyer, order) = awaiting_payment(&app).await;
    let mut stream = open_stream(&app, &buyer, &order).await;
    assert_eq!(stream.status(), 200);
    // The first event says the stream is running; the order is unpaid and the stream may last
    // ten minutes, so only the stop can end it.
    let first = stream.chunk().await.unwrap().expect("a first event");
    assert!(String::from_utf8_lossy(&first).contains("event: progress"));
    let rest = tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("the stop does not wait for the stream");
    tokio::time::timeout(Duration::from_secs(15), rest)
        .await
        .expect("the stream ended with the server")
        .unwrap();
}
}
