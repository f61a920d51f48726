//! The two ways to drive real checkouts: the HTTP API, or the saga engine in-process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BenchError, BenchOptions, Ending, Outcome, Summary, Tally};
use microcommerce::app::App;
use microcommerce::config::Config;
use microcommerce::domain::Email;
use microcommerce::ids::{BuyerId, OrderId, ProductId};
use microcommerce::ordering::{Order, OrderStatus, ValidCheckout};
use microcommerce::state::AppState;

/// Longest a buyer waits for one order to settle before calling it stuck.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Pause between two looks at an order.
const POLL: Duration = Duration::from_millis(5);
/// How long the server may hold one long-polling request.
const LONG_POLL_MS: u64 = 5_000;
/// In-process waits look again after this long even without a wake-up.
const LONG_POLL_RECHECK: Duration = Duration::from_millis(200);

/// Drives checkouts against one target; cheap to clone (one per buyer).
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The instances' base URLs; set-up and checks use the first.
    bases: Vec<String>,
    /// Turns of the buyers' checkouts, spread over the instances in order.
    next_instance: AtomicUsize,
    admin_token: String,
    /// The products buyers pick from.
    products: Vec<String>,
    /// Units on hand of each product once set up.
    initial: BTreeMap<String, i64>,
    /// The embedded servers, when no `--url` was given.
    embedded: Vec<Embedded>,
    /// Drive the engine in-process (needs the embedded server's state).
    engine: bool,
}

struct Embedded {
    state: AppState,
    shutdown: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
    /// The temporary folder of a SQLite database, kept by the first server.
    _dir: Option<tempfile::TempDir>,
}

impl Driver {
    /// Starts the embedded server if needed and sets up stock.
    pub async fn prepare(options: &BenchOptions) -> Result<Self, BenchError> {
        let (bases, admin_token, embedded) = if options.urls.is_empty() {
            Embedded::start_all(options).await?
        } else {
            let token = options.admin_token.clone().ok_or_else(|| {
                BenchError::Setup("--url needs MICROCOMMERCE_ADMIN_TOKEN to set up stock".into())
            })?;
            let bases = options
                .urls
                .iter()
                .map(|url| url.trim_end_matches('/').to_owned())
                .collect();
            (bases, token, Vec::new())
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(options.buyers.max(1) * 2)
            .build()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let mut inner = Inner {
            http,
            bases,
            next_instance: AtomicUsize::new(0),
            admin_token,
            products: Vec::new(),
            initial: BTreeMap::new(),
            embedded,
            engine: options.engine,
        };
        inner.set_up_stock(options).await?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// One whole checkout by a new buyer.
    pub async fn checkout(
        &self,
        rng: &mut fastrand::Rng,
        options: &BenchOptions,
        tally: &Tally,
    ) -> Outcome {
        let picks = self.inner.pick(rng, options);
        let decline = rng.f64() < options.decline_ratio;
        if self.inner.engine {
            self.inner.checkout_in_process(&picks, decline, tally).await
        } else {
            self.inner.checkout_over_http(&picks, decline, tally).await
        }
    }

    /// Stock conserved (initial − confirmed units = on hand), nothing left reserved, no order
    /// stuck. Returns the problems found (none means the invariants hold).
    pub async fn check_invariants(&self, summary: &Summary) -> Result<Vec<String>, BenchError> {
        let mut problems = Vec::new();
        if summary.stuck > 0 {
            problems.push(format!("{} orders never settled", summary.stuck));
        }
        let bought = &summary.bought;
        for (product, initial) in &self.inner.initial {
            let stock = self
                .inner
                .admin_get(&format!("/api/inventory/stock/{product}"))
                .await?;
            let on_hand = stock["quantityOnHand"].as_i64().unwrap_or(-1);
            let reserved = stock["reservedQuantity"].as_i64().unwrap_or(-1);
            let expected = initial - bought.get(product.as_str()).copied().unwrap_or(0);
            if on_hand != expected || reserved != 0 {
                problems.push(format!(
                    "product {product}: on hand {on_hand} (expected {expected}), reserved {reserved}"
                ));
            }
        }
        Ok(problems)
    }

    /// The embedded servers' database (none when driving a deployment by `--url`).
    pub fn database(&self) -> Option<storage::Db> {
        self.inner.embedded.first().map(|e| e.state.db.clone())
    }

    /// Sets the stock up again after set-up checkouts (a stored-orders fill) bought some, so
    /// that the invariants count from the run's own start.
    pub async fn restock(&mut self, options: &BenchOptions) -> Result<(), BenchError> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| BenchError::Setup("the driver is still shared by buyers".into()))?;
        inner.initial.clear();
        inner.set_up_stock(options).await
    }

    /// Stops the embedded servers, if any.
    pub async fn finish(&self) {
        for embedded in &self.inner.embedded {
            embedded.stop().await;
        }
    }
}

impl Inner {
    async fn set_up_stock(&mut self, options: &BenchOptions) -> Result<(), BenchError> {
        let page = self.admin_get("/api/catalog/products?pageSize=100").await?;
        let mut products: Vec<String> = page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|p| p["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if products.is_empty() {
            return Err(BenchError::Setup(
                "the catalog has no published products".into(),
            ));
        }
        if options.hot_product {
            products.truncate(1);
        }
        for product in &products {
            let stock = self
                .admin_get(&format!("/api/inventory/stock/{product}"))
                .await?;
            let available = stock["availableQuantity"].as_i64().unwrap_or(0);
            let adjustment = if options.hot_product {
                options.hot_stock - available
            } else {
                1_000_000_000 - available
            };
            if adjustment != 0 {
                let path = format!("/api/inventory/stock/{product}/adjust");
                let body = json!({ "adjustment": adjustment, "reason": "benchmark set-up" });
                let reply = self
                    .admin_send(reqwest::Method::POST, &path, Some(body))
                    .await?;
                if reply.0 != 204 {
                    return Err(BenchError::Setup(format!(
                        "adjusting stock answered {}",
                        reply.0
                    )));
                }
            }
            let stock = self
                .admin_get(&format!("/api/inventory/stock/{product}"))
                .await?;
            self.initial.insert(
                product.clone(),
                stock["quantityOnHand"].as_i64().unwrap_or(0),
            );
        }
        self.products = products;
        Ok(())
    }

    fn pick(&self, rng: &mut fastrand::Rng, options: &BenchOptions) -> Vec<String> {
        let wanted = options.items.clamp(1, self.products.len());
        let mut picked = BTreeSet::new();
        while picked.len() < wanted {
            picked.insert(self.products[rng.usize(..self.products.len())].clone());
        }
        picked.into_iter().collect()
    }

    /// The instance whose turn it is to serve a whole checkout.
    fn take_turn(&self) -> usize {
        self.next_instance.fetch_add(1, Ordering::Relaxed) % self.bases.len().max(1)
    }

    async fn checkout_over_http(&self, picks: &[String], decline: bool, tally: &Tally) -> Outcome {
        let started = Instant::now();
        let buyer = Buyer {
            cookie: format!("buyer_id={}", uuid::Uuid::new_v4()),
            base: &self.bases[self.take_turn()],
        };
        for product in picks {
            let body = json!({ "productId": product, "quantity": 1 });
            let added = self
                .send(
                    &buyer,
                    reqwest::Method::POST,
                    "/api/cart/items",
                    Some(body),
                    tally,
                )
                .await;
            if added.0 != 200 {
                return error_outcome(started, "cart", added.0);
            }
        }
        let body = json!({
            "email": super::BUYER_EMAIL,
            "shippingAddress": super::buyer_address(),
        });
        let placed_at = Instant::now();
        let placed = self
            .send(
                &buyer,
                reqwest::Method::POST,
                "/api/ordering/checkout",
                Some(body),
                tally,
            )
            .await;
        let Some(order) = placed.1["orderId"].as_str().map(String::from) else {
            return error_outcome(started, "checkout", placed.0);
        };
        let path = format!("/api/ordering/orders/{order}");
        let reported = status_in(&placed.1["status"]).unwrap_or(OrderStatus::Submitted);
        let first = self
            .settle_http(&buyer, &path, reported, awaits_buyer_or_settled, tally)
            .await;
        let to_awaiting = micros(placed_at);
        if !awaits_buyer(&first.0) {
            return settled(first, picks, started, Some(to_awaiting), None);
        }
        let paid_at = Instant::now();
        let pay = json!({ "shouldSucceed": !decline });
        let paid = self
            .send(
                &buyer,
                reqwest::Method::POST,
                &format!("{path}/pay"),
                Some(pay),
                tally,
            )
            .await;
        if paid.0 != 200 {
            return error_outcome(started, "pay", paid.0);
        }
        let Some(reported) = status_in(&paid.1["orderStatus"]) else {
            return error_outcome(started, "pay", paid.0);
        };
        let last = self
            .settle_http(&buyer, &path, reported, OrderStatus::is_settled, tally)
            .await;
        settled(
            last,
            picks,
            started,
            Some(to_awaiting),
            Some(micros(paid_at)),
        )
    }

    /// The order's first status that is `done`, starting from the status an answer
    /// `reported`: a done one needs no waiting (but a failure's reason takes one plain read),
    /// any other is waited out.
    async fn settle_http(
        &self,
        buyer: &Buyer<'_>,
        path: &str,
        reported: OrderStatus,
        done: fn(OrderStatus) -> bool,
        tally: &Tally,
    ) -> (Ending, Option<String>) {
        match reported {
            OrderStatus::Failed => self.wait_http(buyer, path, None, done, tally).await,
            status if done(status) => (Ending::Settled(status), None),
            current => {
                self.wait_http(buyer, path, Some(current), done, tally)
                    .await
            }
        }
    }

    /// Waits for a status that is `done` by long polling: each request is held by the server
    /// until the order leaves `current` (then the status the previous answer showed); without
    /// `current` the first request answers at once.
    async fn wait_http(
        &self,
        buyer: &Buyer<'_>,
        path: &str,
        current: Option<OrderStatus>,
        done: fn(OrderStatus) -> bool,
        tally: &Tally,
    ) -> (Ending, Option<String>) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut seen = current;
        while Instant::now() < deadline {
            let url = match seen {
                Some(status) => format!("{path}?waitWhile={status}&timeoutMs={LONG_POLL_MS}"),
                None => path.to_owned(),
            };
            let (_, order) = self
                .send(buyer, reqwest::Method::GET, &url, None, tally)
                .await;
            let status = status_in(&order["status"]);
            if let Some(status) = status.filter(|status| done(*status)) {
                let reason = order["failureReason"].as_str().map(String::from);
                return (Ending::Settled(status), reason);
            }
            if status.is_none() || seen == status {
                // Held to its timeout, an error, or a server without long polling.
                tokio::time::sleep(POLL).await;
            }
            seen = status;
        }
        (Ending::Stuck, None)
    }

    async fn checkout_in_process(&self, picks: &[String], decline: bool, tally: &Tally) -> Outcome {
        let started = Instant::now();
        let state = &self.embedded[self.take_turn() % self.embedded.len()].state;
        let lines = picks
            .iter()
            .filter_map(|p| p.parse::<ProductId>().ok())
            .map(|p| (p, 1))
            .collect();
        let email = match Email::parse(super::BUYER_EMAIL) {
            Ok(email) => email,
            Err(error) => return error_outcome(started, &format!("checkout: {error}"), 0),
        };
        let valid = ValidCheckout {
            email,
            address: super::buyer_address(),
            lines: Some(lines),
        };
        let order = match place_in_process(state, &valid, tally).await {
            Ok(order) => order,
            Err(error) => return error_outcome(started, &format!("checkout: {error}"), 0),
        };
        let first = wait_in_process(state, order.id, awaits_buyer_or_settled).await;
        let to_awaiting = micros(started);
        if !awaits_buyer(&first.0) {
            return settled(first, picks, started, Some(to_awaiting), None);
        }
        let paid_at = Instant::now();
        if let Err(error) = pay_in_process(state, &order, !decline, tally).await {
            return error_outcome(started, &format!("pay: {error}"), 0);
        }
        let last = wait_in_process(state, order.id, OrderStatus::is_settled).await;
        settled(
            last,
            picks,
            started,
            Some(to_awaiting),
            Some(micros(paid_at)),
        )
    }

    async fn send(
        &self,
        buyer: &Buyer<'_>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        tally: &Tally,
    ) -> (u16, Value) {
        tally.request();
        // A buyer prefers to be answered once the saga has moved on from what its post started
        // (RFC 7240), rather than ask again; routes without anything to wait for ignore it.
        let prefer = (method == reqwest::Method::POST).then_some(("prefer", "wait=10"));
        let mut request = self
            .http
            .request(method, format!("{}{path}", buyer.base))
            .header("cookie", &buyer.cookie);
        if let Some((name, value)) = prefer {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                if status >= 400 {
                    tally.error(status.to_string()).await;
                }
                (status, body)
            }
            Err(error) => {
                tally.error(format!("transport: {error}")).await;
                (0, Value::Null)
            }
        }
    }

    async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), BenchError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.bases[0]))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    async fn admin_get(&self, path: &str) -> Result<Value, BenchError> {
        let (status, body) = self.admin_send(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            return Err(BenchError::Setup(format!(
                "GET {path} answered {status}: {body}"
            )));
        }
        Ok(body)
    }
}

async fn place_in_process(
    state: &AppState,
    valid: &ValidCheckout,
    tally: &Tally,
) -> microcommerce::Result<Order> {
    tally.request();
    let buyer = BuyerId(uuid::Uuid::new_v4());
    microcommerce::ordering::check_out(state, buyer, valid.clone(), None).await
}

async fn pay_in_process(
    state: &AppState,
    order: &Order,
    succeed: bool,
    tally: &Tally,
) -> microcommerce::Result<()> {
    tally.request();
    let (order, timeout) = (order.id, state.config.payment_timeout);
    state
        .bus
        .transact(move |tx| {
            Box::pin(async move {
                microcommerce::payment::record_payment(tx, order, None, succeed, timeout).await?;
                Ok(())
            })
        })
        .await
}

async fn wait_in_process(
    state: &AppState,
    order: OrderId,
    done: fn(OrderStatus) -> bool,
) -> (Ending, Option<String>) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while Instant::now() < deadline {
        // Woken when the order's status changes, as the HTTP API's long polling is.
        let news = state.bus.changed_next(order.0);
        if let Ok(mut conn) = state.db.read().await
            && let Ok(Some(found)) = microcommerce::ordering::order(&mut conn, order).await
            && done(found.status)
        {
            let reason = found.failure_reason.map(|reason| reason.to_string());
            return (Ending::Settled(found.status), reason);
        }
        let _ = tokio::time::timeout(LONG_POLL_RECHECK, news).await;
    }
    (Ending::Stuck, None)
}

/// The first stop of a checkout: the order awaits its buyer's payment, or has already settled
/// (failed for want of stock).
fn awaits_buyer_or_settled(status: OrderStatus) -> bool {
    status.awaits_buyer() || status.is_settled()
}

/// True when the checkout reached the point where its buyer pays.
fn awaits_buyer(ending: &Ending) -> bool {
    matches!(ending, Ending::Settled(status) if status.awaits_buyer())
}

/// An order status as the API wrote it.
fn status_in(value: &Value) -> Option<OrderStatus> {
    serde_json::from_value(value.clone()).ok()
}

fn settled(
    (status, reason): (Ending, Option<String>),
    picks: &[String],
    started: Instant,
    to_awaiting: Option<u64>,
    to_settled: Option<u64>,
) -> Outcome {
    let bought = if status.sold() {
        picks.iter().map(|p| (p.clone(), 1)).collect()
    } else {
        Vec::new()
    };
    Outcome {
        status,
        reason,
        bought,
        to_awaiting,
        to_settled,
        whole: micros(started),
    }
}

fn error_outcome(started: Instant, step: &str, status: u16) -> Outcome {
    Outcome {
        status: Ending::Error,
        reason: Some(format!("{step} answered {status}")),
        bought: Vec::new(),
        to_awaiting: None,
        to_settled: None,
        whole: micros(started),
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// One buyer's checkout: its cookie and the instance that serves it.
struct Buyer<'a> {
    cookie: String,
    base: &'a str,
}

impl Embedded {
    /// Starts `options.instances` servers on one database; returns their base URLs, their
    /// admin token and the servers.
    async fn start_all(
        options: &BenchOptions,
    ) -> Result<(Vec<String>, String, Vec<Embedded>), BenchError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
        let (mut bases, mut servers) = (Vec::new(), Vec::new());
        for _ in 0..options.instances.max(1) {
            let (base, server) = Self::start(options, &database_url, &token).await?;
            bases.push(base);
            servers.push(server);
        }
        if let Some(first) = servers.first_mut() {
            first._dir = Some(dir);
        }
        Ok((bases, token, servers))
    }

    /// One server on `database_url`; returns its base URL and itself.
    async fn start(
        options: &BenchOptions,
        database_url: &str,
        token: &str,
    ) -> Result<(String, Embedded), BenchError> {
        let postgres = database_url.starts_with("postgres");
        let config = Config {
            addr: "127.0.0.1:0".into(),
            database_url: database_url.to_owned(),
            synchronous: options.synchronous,
            pin_writer: options.pin_writer,
            workers: options.workers,
            batch_size: options.batch_size,
            hand_over: options.hand_over,
            admin_token: token.to_owned(),
            db_pool_size: if postgres { 20 } else { 10 },
            limits: microcommerce::config::Limits::off(),
            ..Config::default()
        };
        let app = App::build(config).await?;
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let embedded = Embedded {
            state,
            shutdown: std::sync::Mutex::new(Some(shutdown)),
            server: std::sync::Mutex::new(Some(server)),
            _dir: None,
        };
        Ok((base, embedded))
    }

    async fn stop(&self) {
        if let Some(shutdown) = self.shutdown.lock().expect("lock").take() {
            let _ = shutdown.send(());
        }
        let server = self.server.lock().expect("lock").take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}
