//! Metrics as operators read them: `GET /metrics` behind the admin token (or on a listener of
//! its own) in Prometheus' text format, which `promtool check metrics` finds nothing to fix in,
//! with route templates and never paths; and a real Prometheus (started by the test) that
//! scrapes a running app and answers queries about its checkouts. The recorder is the
//! process's, shared by every test app, so counts are compared before and after, never
//! exactly. Without promtool or prometheus a local run says SKIPPED; CI fails instead.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use microcommerce_service::config::Config;

use crate::helpers::{
    ADMIN_TOKEN, Client, KillOnDrop, TestApp, checkout_request, eventually, find_program,
    known_buyer, order_in, spawn_app, spawn_app_with, spawn_on_free_port, stocked_product,
};

/// Places one checkout and pays it; its order id once confirmed.
async fn one_paid_checkout(app: &TestApp, buyer: &Client) -> String {
    let product = stocked_product(app, "Metered Lamp", 10).await;
    let placed = buyer
        .post("/api/ordering/checkout", checkout_request(&product, 1))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let order = placed.body["orderId"]
        .as_str()
        .expect("order id")
        .to_owned();
    order_in(buyer, &order, &["StockReserved"]).await;
    let paid = buyer
        .post(
            &format!("/api/ordering/orders/{order}/pay"),
            json!({ "shouldSucceed": true }),
        )
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    order_in(buyer, &order, &["Confirmed"]).await;
    order
}

/// The text of a scrape, as `client` asks for it.
async fn scrape(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.expect("answered");
    let status = reply.status().as_u16();
    let content_type = reply
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, reply.text().await.expect("body"))
}

/// `promtool check metrics` on `text`: what it finds to fix, or `None` (after SKIPPED) without
/// promtool.
fn promtool_findings(text: &str) -> Option<String> {
    let found = find_program("promtool", &["/usr/bin/promtool"])
        .ok_or_else(|| "promtool (apt-get install prometheus)".to_owned());
    let promtool = testkit::required("promtool", found)?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("the scrape is written");
    let output = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(if output.status.success() {
        said
    } else {
        format!("exit {}: {said}", output.status)
    })
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

testkit::backend_tests! {
async fn metrics_are_behind_the_admin_token_in_prometheus_text_with_route_templates(backend) {
    let app = spawn_app(backend).await;
    let buyer = known_buyer(&app).await;
    let order = one_paid_checkout(&app, &buyer).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    assert_eq!(scrape(&http, &url, None).await.0, 401, "no token, no metrics");
    let (status, content_type, text) = scrape(&http, &url, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(!text.contains(&order), "an id is never a label: one series per route");
    let read = ["method=\"GET\"", "route=\"/api/ordering/orders/{id}\"", "status=\"200\""];
    assert!(sample(&text, "http_requests_total", &read).is_some_and(|n| n >= 1.0), "{text}");
    let placed = ["route=\"/api/ordering/checkout\"", "le=\"+Inf\""];
    assert!(sample(&text, "http_request_duration_seconds_bucket", &placed).is_some());
    let saga = ["consumer=\"checkout\"", "outcome=\"completed\""];
    assert!(sample(&text, "bus_messages_total", &saga).is_some_and(|n| n >= 3.0), "{text}");
    assert!(sample(&text, "checkouts", &["state=\"Confirmed\""]).is_some_and(|n| n >= 1.0));
    for name in ["bus_queue_due_messages", "bus_queue_oldest_due_age_seconds", "bus_dead_letters",
                 "bus_batch_messages_bucket", "storage_pool_connections", "process_resident_memory_bytes"] {
        assert!(sample(&text, name, &[]).is_some(), "{name} missing from {text}");
    }
    if let Some(findings) = promtool_findings(&text) {
        assert!(findings.trim().is_empty(), "promtool check metrics: {findings}");
    }
    assert_every_metric_documented(&text);
    app.stop().await;
}
}

/// Every metric a scrape describes (`# HELP`) is in the table of `docs/operations.md`.
fn assert_every_metric_documented(text: &str) {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let undocumented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|help| help.split(' ').next())
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/operations.md: {undocumented:?}"
    );
}

#[test]
fn the_example_alert_rules_pass_promtool() {
    let found = find_program("promtool", &["/usr/bin/promtool"])
        .ok_or_else(|| "promtool (apt-get install prometheus)".to_owned());
    let Some(promtool) = testkit::required("promtool", found) else {
        return;
    };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerts.yml");
    let output = Command::new(promtool)
        .args(["check", "rules", rules])
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn metrics_can_be_served_on_a_listener_of_their_own_and_turned_off() {
    let own = spawn_app_with(crate::helpers::Backend::Sqlite, |config| Config {
        metrics_addr: Some("127.0.0.1:0".into()),
        ..config
    })
    .await;
    let base = own.metrics_base.clone().expect("a metrics listener");
    let http = reqwest::Client::new();
    let (status, _, text) = scrape(&http, &format!("{base}/metrics"), None).await;
    assert_eq!(status, 200, "no token on the metrics' own listener");
    assert!(text.contains("http_requests_total") || text.contains("bus_queue_due_messages"));
    own.stop().await;

    let off = spawn_app_with(crate::helpers::Backend::Sqlite, |config| Config {
        metrics: false,
        ..config
    })
    .await;
    let (status, _, _) = scrape(&http, &format!("{}/metrics", off.base), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 404, "metrics turned off");
    off.stop().await;
}

/// A Prometheus server scraping `app` every second with the admin token; killed when dropped.
struct Prometheus {
    _process: KillOnDrop,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Prometheus scraping `app`, or `None` (after SKIPPED) where it is not installed.
    async fn scraping(app: &TestApp) -> Option<Prometheus> {
        let found = find_program("prometheus", &["/usr/bin/prometheus"])
            .ok_or_else(|| "prometheus (apt-get install prometheus)".to_owned());
        let program = testkit::required("prometheus", found)?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let target = app.base.trim_start_matches("http://");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: microcommerce\n    scrape_interval: 1s\n\
             \x20   authorization:\n      credentials: {ADMIN_TOKEN}\n\
             \x20   static_configs:\n      - targets: ['{target}']\n"
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("config written");
        let (process, port) = spawn_on_free_port("prometheus", |port| {
            Command::new(&program)
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .await;
        Some(Prometheus {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// The value of PromQL `query` now, if it has one.
    async fn value(&self, query: &str) -> Option<f64> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_app_and_answers_for_its_checkouts() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let Some(prometheus) = Prometheus::scraping(&app).await else {
        return;
    };
    let buyer = known_buyer(&app).await;
    one_paid_checkout(&app, &buyer).await;
    let patience = Duration::from_secs(60);
    eventually("Prometheus to scrape the app", patience, || async {
        (prometheus.value("up{job=\"microcommerce\"}").await == Some(1.0)).then_some(())
    })
    .await;
    let placed = "sum(http_requests_total{route=\"/api/ordering/checkout\",status=\"201\"})";
    eventually("the checkout counted", patience, || async {
        prometheus.value(placed).await.filter(|n| *n >= 1.0)
    })
    .await;
    let confirmed = "max(checkouts{state=\"Confirmed\"})";
    eventually("the confirmed checkout in a state", patience, || async {
        prometheus.value(confirmed).await.filter(|n| *n >= 1.0)
    })
    .await;
    let by_path = "count(http_requests_total{route=~\".*[0-9a-f]{8}-.*\"})";
    assert_eq!(
        prometheus.value(by_path).await,
        None,
        "no series names an id"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_request_id_it_was_given_or_a_new_one() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let id_of = |reply: &reqwest::Response| {
        reply
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let url = format!("{}/api/cart/count", app.base);
    let given = http
        .get(&url)
        .header("x-request-id", "edge-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        id_of(&given).as_deref(),
        Some("edge-7f3a"),
        "a proxy's id is kept"
    );
    let made = http.get(&url).send().await.unwrap();
    let made = id_of(&made).expect("an id is made");
    assert!(
        made.len() == 32 && made.chars().all(|c| c.is_ascii_hexdigit()),
        "{made}"
    );
    let unusable = "x".repeat(129);
    let replaced = http
        .get(&url)
        .header("x-request-id", &unusable)
        .send()
        .await
        .unwrap();
    assert_ne!(
        id_of(&replaced).as_deref(),
        Some(unusable.as_str()),
        "too long to log: replaced"
    );
    let missing = http
        .get(format!("{}/api/nowhere", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        id_of(&missing).is_some(),
        "an unknown route's answer has one too"
    );
    app.stop().await;
}
