//! Spawning an app per test, buyers with their own cookie jars, and bounded waiting.

#![allow(dead_code)]

use microcommerce_service::app::App;
use microcommerce_service::config::{Config, Limits};
use microcommerce_service::state::AppState;
use serde_json::Value;
pub use testkit::{Backend, eventually};

/// The admin token every test app uses.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running app on a fresh SQLite database in a temporary directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Direct access to the database and bus, for assertions.
    pub state: AppState,
    /// The limits' state, to wait until a request is held open.
    pub limiter: std::sync::Arc<microcommerce_service::http::Limiter>,
    /// `http://127.0.0.1:PORT` of the metrics' own listener, when the config asks for one.
    pub metrics_base: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// An app with the demo catalog seeded and default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| config).await
}

/// An app whose configuration `adjust` may change first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(Config) -> Config) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = backend.fresh_url(dir.path()).await;
    spawn_instance(url, dir, adjust).await
}

/// Warnings and errors go to the test's captured output, shown when a test fails.
fn init_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .try_init();
    });
}

/// One more instance on the database at `url` (several may share a PostgreSQL database).
pub async fn spawn_instance(
    url: String,
    dir: tempfile::TempDir,
    adjust: impl FnOnce(Config) -> Config,
) -> TestApp {
    init_logs();
    let postgres = url.starts_with("postgres");
    let config = adjust(Config {
        addr: "127.0.0.1:0".into(),
        database_url: url,
        workers: if postgres { 4 } else { 1 },
        admin_token: ADMIN_TOKEN.into(),
        synchronous: storage::Synchronous::Normal,
        // Tests send bursts from one address and leave checkouts unpaid; the limits' own
        // tests turn the rate and the hoarding limits on.
        limits: Limits {
            writes_per_second: None,
            held_per_address: usize::MAX,
            unpaid_per_buyer: None,
            unpaid_per_address: None,
            ..Limits::default()
        },
        ..Config::default()
    });
    let app = App::build(config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let limiter = app.limiter().clone();
    let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let (shutdown, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        state,
        limiter,
        metrics_base,
        shutdown: Some(shutdown),
        server: Some(server),
        _dir: dir,
    }
}

impl TestApp {
    /// A new buyer: a client with its own cookie jar, so it gets its own `buyer_id`.
    pub fn buyer(&self) -> Client {
        Client::at(&self.base)
    }

    /// A client that sends the admin token.
    pub fn admin(&self) -> Client {
        Client {
            token: Some(ADMIN_TOKEN.into()),
            ..self.buyer()
        }
    }

    /// Returns once `count` requests are held open by the server (waiting for a change),
    /// within 20 s: so that a test knows its held request has arrived, without sleeping.
    pub async fn held_requests(&self, count: usize) {
        eventually(
            "requests held open",
            std::time::Duration::from_secs(20),
            || async { (self.limiter.held_now() == count).then_some(()) },
        )
        .await;
    }

    /// Stops the server and its workers gracefully.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }
}

/// An HTTP client bound to one app and one identity.
#[derive(Clone)]
pub struct Client {
    /// The underlying client (with this identity's cookies).
    pub http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// A `Prefer` header sent with every request.
    prefer: Option<String>,
    /// An `Idempotency-Key` header sent with every request.
    idempotency_key: Option<String>,
}

/// A response read whole: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Parsed body.
    pub body: Value,
}

impl Reply {
    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Client {
    /// A new buyer of the app at `base` (`http://127.0.0.1:PORT`), which may run in another
    /// process.
    pub fn at(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("http client"),
            base: base.to_owned(),
            token: None,
            prefer: None,
            idempotency_key: None,
        }
    }

    /// A new buyer of the app at `base` whose connections come from `source`, one of the
    /// loopback addresses (127.0.0.0/8), so that tests can be several clients on one machine.
    pub fn at_from(base: &str, source: std::net::IpAddr) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .local_address(source)
                .build()
                .expect("http client"),
            ..Client::at(base)
        }
    }

    /// The same identity (its cookies and token) talking to the app at `base`: another
    /// instance on the same database, or the one that replaced a stopped instance.
    pub fn at_instance(&self, base: &str) -> Client {
        Client {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// A new buyer of the same app.
    pub fn another_buyer(&self) -> Client {
        Client::at(&self.base)
    }

    /// `http://127.0.0.1:PORT` of the app this client talks to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same identity, sending `Prefer: preference` with every request.
    pub fn preferring(&self, preference: &str) -> Client {
        Client {
            prefer: Some(preference.to_owned()),
            ..self.clone()
        }
    }

    /// The same identity, sending `Idempotency-Key: key` with every request.
    pub fn with_idempotency_key(&self, key: &str) -> Client {
        Client {
            idempotency_key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(prefer) = &self.prefer {
            request = request.header("prefer", prefer);
        }
        if let Some(key) = &self.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }
}

/// A published product with `on_hand` units, created through the admin API.
pub async fn stocked_product(app: &TestApp, name: &str, on_hand: i64) -> String {
    let admin = app.admin();
    let category = admin.get("/api/catalog/categories").await.body[0]["id"].clone();
    let created = admin
        .post(
            "/api/catalog/products",
            serde_json::json!({ "name": name, "description": "", "price": 10, "categoryId": category }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("product id").to_owned();
    let path = format!("/api/catalog/products/{id}");
    let published = admin
        .patch(
            &format!("{path}/status"),
            serde_json::json!({ "status": "Published" }),
        )
        .await;
    assert_eq!(published.status, 204);
    let adjusted = admin
        .post(
            &format!("/api/inventory/stock/{id}/adjust"),
            serde_json::json!({ "adjustment": on_hand, "reason": "test stock" }),
        )
        .await;
    assert_eq!(adjusted.status, 204);
    id
}

/// A Published product priced `price_cents` with `on_hand` units, written straight into the
/// database (with its own category), so that a test needs neither the demo seed nor the catalog
/// API. Its name is `Product <last 8 hex digits of its id>` (the random end of a v7 uuid, so
/// names differ within a test); [`product_name`] reads it back.
pub async fn insert_product(
    app: &TestApp,
    price_cents: i64,
    on_hand: i64,
) -> microcommerce_service::ids::ProductId {
    let product = microcommerce_service::ids::ProductId::new();
    let category = microcommerce_service::ids::CategoryId::new();
    let id = product.to_string();
    let tag = &id[id.len() - 8..];
    let mut tx = app.state.bus.begin().await.expect("begin");
    let now = tx.now().await.expect("database time");
    sqlx::query("INSERT INTO categories (id, name, description) VALUES ($1, $2, '')")
        .bind(category.to_string())
        .bind(format!("Category {product}"))
        .execute(&mut *tx)
        .await
        .expect("category inserted");
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_cents, currency, image_url, \
         category_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, '', $4, 'USD', $5, $6, 'Published', $7, $7)",
    )
    .bind(product.to_string())
    .bind(format!("TEST-{product}"))
    .bind(format!("Product {tag}"))
    .bind(price_cents)
    .bind(format!("https://img.test/{tag}.png"))
    .bind(category.to_string())
    .bind(now.0)
    .execute(&mut *tx)
    .await
    .expect("product inserted");
    microcommerce_service::inventory::create_stock_item(&mut tx, product, on_hand, now)
        .await
        .expect("stock item created");
    tx.commit().await.expect("commit");
    product
}

/// The catalog name of `product`.
pub async fn product_name(app: &TestApp, product: microcommerce_service::ids::ProductId) -> String {
    sqlx::query_scalar("SELECT name FROM products WHERE id = $1")
        .bind(product.to_string())
        .fetch_one(app.state.db.reader())
        .await
        .expect("product exists")
}

/// Units (on hand, reserved) of `product`'s stock item.
pub async fn stock_of(app: &TestApp, product: microcommerce_service::ids::ProductId) -> (i64, i64) {
    use sqlx::Row;
    let row = sqlx::query("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_one(app.state.db.reader())
        .await
        .expect("stock item exists");
    (row.get("on_hand"), row.get("reserved"))
}

/// A checkout of `quantity` units of `product`, to a valid address.
pub fn checkout_request(product: &str, quantity: u32) -> Value {
    checkout_request_with(vec![
        serde_json::json!({ "productId": product, "quantity": quantity }),
    ])
}

/// A checkout of `items` (`{ "productId": …, "quantity": … }` each), to a valid address.
pub fn checkout_request_with(items: Vec<Value>) -> Value {
    serde_json::json!({
        "email": "ada@example.com",
        "shippingAddress": { "name": "Ada Lovelace", "email": "ada@example.com",
            "street": "12 Analytical Row", "city": "London", "state": "LDN", "zipCode": "N1 9GU" },
        "items": items
    })
}

/// A buyer whose identity cookie is set, so that concurrent requests share it.
pub async fn known_buyer(app: &TestApp) -> Client {
    let buyer = app.buyer();
    assert_eq!(buyer.get("/api/cart/count").await.status, 200);
    buyer
}

/// Orders in the database.
pub async fn order_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(app.state.db.reader())
        .await
        .expect("orders counted")
}

/// Waits (up to 30 s) until the order's status is one of `statuses`; returns the order.
pub async fn order_in(buyer: &Client, order: &str, statuses: &[&str]) -> Value {
    let limit = std::time::Duration::from_secs(30);
    eventually(&format!("order in {statuses:?}"), limit, || async {
        let reply = buyer.get(&format!("/api/ordering/orders/{order}")).await;
        let status = reply.body["status"].as_str().unwrap_or_default().to_owned();
        statuses.contains(&status.as_str()).then_some(reply.body)
    })
    .await
}

/// The first of `candidates` that exists, or `name` found on the `PATH`.
pub fn find_program(name: &str, candidates: &[&str]) -> Option<std::path::PathBuf> {
    let listed = candidates.iter().map(std::path::PathBuf::from);
    let on_path: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    listed.chain(on_path).find(|path| path.is_file())
}

/// A server `spawn` starts on the port it is given, and that port, once the server accepts
/// connections there. A free port can only be found by binding it and letting go, so another
/// process may take it first: then the server exits, and it is started again on another port
/// (five tries, each bounded).
pub async fn spawn_on_free_port(
    what: &str,
    mut spawn: impl FnMut(u16) -> std::io::Result<std::process::Child>,
) -> (KillOnDrop, u16) {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut child = spawn(port).unwrap_or_else(|error| panic!("{what} starts: {error}"));
        if accepts_on(&mut child, port).await {
            return (KillOnDrop(child), port);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start on any of five free ports");
}

/// Whether `child` accepts connections on `port` before it exits (within 30 s).
async fn accepts_on(child: &mut std::process::Child, port: u16) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child.try_wait().ok().flatten().is_none();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Microseconds in a day, as the database's clock counts them.
const DAY_MICROS: i64 = 86_400_000_000;

/// Today, as the number of days since 1970 in UTC on the app's clock.
fn utc_day(app: &TestApp) -> i64 {
    app.state.db.now().0.div_euclid(DAY_MICROS)
}

/// What `read` returns, read again if UTC midnight passed while it ran: figures "of today"
/// read on both sides of midnight do not agree, and midnight does not pass twice in a test.
pub async fn within_one_day<T, Fut>(app: &TestApp, read: impl Fn() -> Fut) -> T
where
    Fut: std::future::Future<Output = T>,
{
    loop {
        let day = utc_day(app);
        let value = read().await;
        if utc_day(app) == day {
            return value;
        }
    }
}

/// Orders placed since midnight UTC, counted row by row.
pub async fn orders_placed_today(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE created_at >= $1")
        .bind(utc_day(app) * DAY_MICROS)
        .fetch_one(app.state.db.reader())
        .await
        .expect("orders counted")
}

/// A child process of a test (a server it started), killed when the test ends, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
