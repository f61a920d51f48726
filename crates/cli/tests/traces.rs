//! Traces as an operator receives them: `serve` exports to an OTLP receiver inside the test
//! (decoded with the OpenTelemetry protocol's own types), and one checkout, started by a
//! request that carries a W3C `traceparent`, arrives as one trace whose spans form one tree
//! from that request to the confirmation, the payment included. The JSON logs of that checkout
//! carry the same trace id from the access line to the last consumer. Without the environment
//! variables (or with the SDK switched off) nothing is sent. On both backends.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

/// The caller's trace and span, as the checkout request names them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Spans received, with the service name of their resource.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver on a free port: its base URL and what it received.
async fn otlp_receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn receive(
    State(received): State<Received>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut received = received.lock().expect("received");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            received.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        Vec::new(), // an empty ExportTraceServiceResponse: everything accepted
    )
}

/// `serve` on `database_url` with `env` added (seeded, without the write rate limit); its base
/// URL and the process.
fn serve(database_url: &str, env: &[(&str, &str)]) -> (String, support::Served) {
    let served = support::serve(&["--rate-limit", "0", "--database-url", database_url], env);
    (format!("http://{}", served.addr), served)
}

/// Stops the server gracefully and returns its JSON log lines, off the test's runtime, which
/// serves the receiver meanwhile (the server sends its last spans as it stops).
async fn stop(served: support::Served) -> Vec<Value> {
    tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("stopped")
}

/// One checkout of a cart of one in-stock product, started with our `traceparent`, paid, and
/// waited for until confirmed; returns the order id.
async fn one_paid_checkout(base: &str) -> String {
    let buyer = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("a client");
    let products: Value = buyer
        .get(format!("{base}/api/catalog/products?pageSize=50"))
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("JSON");
    let items = products["items"].as_array().expect("a page of products");
    let product = items
        .iter()
        .find(|p| p["availableQuantity"].as_i64().unwrap_or(0) > 5)
        .or(items.first())
        .expect("a product")["id"]
        .clone();
    let address = json!({ "name": "Ada Lovelace", "email": "ada@example.com",
        "street": "12 Analytical Row", "city": "London", "state": "LDN", "zipCode": "N1 9GU" });
    let added = buyer
        .post(format!("{base}/api/cart/items"))
        .json(&json!({ "productId": product, "quantity": 1 }))
        .send()
        .await
        .expect("add to cart");
    assert!(added.status().is_success(), "{}", added.status());
    // The cart checked out, so that the confirmation clears it too.
    let placed = buyer
        .post(format!("{base}/api/ordering/checkout"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({ "email": "ada@example.com", "shippingAddress": address }))
        .send()
        .await
        .expect("checkout");
    assert_eq!(placed.status(), 201);
    let order = placed.json::<Value>().await.expect("JSON")["orderId"]
        .as_str()
        .expect("an order id")
        .to_owned();
    let reserved: Value = buyer
        .get(format!(
            "{base}/api/ordering/orders/{order}?waitWhile=Submitted&timeoutMs=20000"
        ))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("JSON");
    assert_eq!(reserved["status"], "StockReserved", "{reserved}");
    let paid = buyer
        .post(format!("{base}/api/ordering/orders/{order}/pay"))
        .header("prefer", "wait=20")
        .json(&json!({ "shouldSucceed": true }))
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), 200);
    let confirmed = buyer
        .get(format!(
            "{base}/api/ordering/orders/{order}?waitWhile=Paid&timeoutMs=20000"
        ))
        .send()
        .await
        .expect("order")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(confirmed["status"], "Confirmed", "{confirmed}");
    order
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of our trace, by span id.
fn spans_of_trace(received: &Received) -> BTreeMap<String, Span> {
    received
        .lock()
        .expect("received")
        .iter()
        .filter(|(_, span)| hex(&span.trace_id) == TRACE_ID)
        .map(|(_, span)| (hex(&span.span_id), span.clone()))
        .collect()
}

/// The tree of `spans` as indented text, children in start order: what the docs show.
fn tree_text(spans: &BTreeMap<String, Span>, root: &str, depth: usize, text: &mut String) {
    let span = &spans[root];
    text.push_str(&format!("{}{}\n", "  ".repeat(depth), span.name));
    let mut children: Vec<&Span> = spans
        .values()
        .filter(|s| hex(&s.parent_span_id) == root)
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    for child in children {
        tree_text(spans, &hex(&child.span_id), depth + 1, text);
    }
}

/// The names of the spans from `id` up to the root.
fn ancestry(spans: &BTreeMap<String, Span>, id: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = spans.get(id);
    while let Some(span) = at {
        names.push(span.name.clone());
        at = spans.get(&hex(&span.parent_span_id));
    }
    names
}

/// The spans a confirmed checkout must have reached, by name.
const LAST_SPANS: [&str; 4] = [
    "payment",
    "inventory.deduct-stock DeductStock",
    "ordering.order-status ConfirmOrder",
    "cart.clear-cart ClearCart",
];

testkit::backend_tests! {
async fn one_checkout_is_one_trace_from_the_request_to_the_confirmation(backend) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = backend.fresh_url(dir.path()).await;
    let (endpoint, received) = otlp_receiver().await;
    let (base, server) = serve(&url, &[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "shop-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let order = one_paid_checkout(&base).await;
    let spans = testkit::eventually("the checkout's spans", Duration::from_secs(30), || {
        let spans = spans_of_trace(&received);
        let names: Vec<&str> = spans.values().map(|s| s.name.as_str()).collect();
        let all = LAST_SPANS.iter().all(|n| names.contains(n));
        async move { all.then_some(spans) }
    })
    .await;
    let logs = stop(server).await;

    // One root: the checkout request, a child of the caller's span.
    let roots: Vec<&Span> = spans
        .values()
        .filter(|s| !spans.contains_key(&hex(&s.parent_span_id)))
        .collect();
    assert_eq!(roots.len(), 1, "one tree: {:?}", roots.iter().map(|s| &s.name).collect::<Vec<_>>());
    let root = roots[0];
    assert_eq!(root.name, "POST /api/ordering/checkout");
    assert_eq!(hex(&root.parent_span_id), CALLER_SPAN, "the caller's traceparent is honoured");
    let mut text = String::new();
    tree_text(&spans, &hex(&root.span_id), 0, &mut text);
    eprintln!("the trace of one checkout ({backend:?}):\n{text}");

    // The saga's and every consumer's handling, each message a span of its own, under the
    // message that caused it; the payment joins from the saga step that scheduled its timeout.
    for name in [
        "checkout CheckoutStarted",
        "inventory.reserve-stock ReserveStockForOrder",
        "checkout StockReservationCompleted",
        "checkout PaymentCompleted",
    ] {
        assert!(spans.values().any(|s| s.name == name), "no span {name}:\n{text}");
    }
    let payment = spans.values().find(|s| s.name == "payment").expect("payment");
    let path = ancestry(&spans, &hex(&payment.span_id));
    assert_eq!(path.get(1).map(String::as_str), Some("checkout StockReservationCompleted"), "{text}");
    assert_eq!(path.last().map(String::as_str), Some("POST /api/ordering/checkout"));
    let confirmation = spans.values()
        .find(|s| s.name == "ordering.order-status ConfirmOrder")
        .expect("confirmation");
    let path = ancestry(&spans, &hex(&confirmation.span_id));
    assert!(path.contains(&"payment".to_owned()), "the confirmation follows the payment: {path:?}");

    // The payment request is a trace of its own, which the payment span links to.
    let all: Vec<Span> = received.lock().expect("received").iter().map(|(_, s)| s.clone()).collect();
    let pay_request = all.iter()
        .find(|s| s.name == "POST /api/ordering/orders/{id}/pay")
        .expect("the payment request's span");
    assert!(payment.links.iter().any(|l| l.span_id == pay_request.span_id
        && l.trace_id == pay_request.trace_id), "the payment links to its request");
    assert!(received.lock().expect("received").iter()
        .all(|(service, _)| service.contains("shop-under-test")), "OTEL_SERVICE_NAME is used");

    // The JSON logs: the access line of the checkout and the last consumer's lines carry the
    // trace id, and every line in the trace names a span of it.
    let in_trace: Vec<&Value> = logs.iter().filter(|l| l["trace_id"] == TRACE_ID).collect();
    assert!(in_trace.iter().any(|l| l["target"] == "access"
        && l["fields"]["route"] == "/api/ordering/checkout"
        && l["fields"]["trace_id"] == TRACE_ID), "the access line: {in_trace:?}");
    assert!(in_trace.iter().any(|l| l["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("cleared from the cart"))), "the last consumer: {in_trace:?}");
    let span_ids: HashMap<String, &Span> = spans.iter().map(|(k, v)| (k.clone(), v)).collect();
    for line in &in_trace {
        let id = line["span_id"].as_str().expect("a span id");
        assert!(span_ids.contains_key(id), "a span of the trace: {line}");
    }
    assert!(!order.is_empty());
}

async fn with_the_sdk_switched_off_nothing_is_sent_and_logs_carry_no_trace(backend) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = backend.fresh_url(dir.path()).await;
    let (endpoint, received) = otlp_receiver().await;
    // The endpoint is named but the SDK switched off, as the specification allows.
    let (base, server) = serve(&url, &[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    one_paid_checkout(&base).await;
    let logs = stop(server).await;
    assert!(received.lock().expect("received").is_empty(), "nothing was sent");
    assert!(logs.iter().any(|l| l["target"] == "access"), "logs were written");
    assert!(logs.iter().all(|l| l.get("trace_id").is_none()
        && l["fields"].get("trace_id").is_none()), "no trace ids without traces");
}
}
