//! The two ways to drive real checkouts: the HTTP API, or the saga engine in-process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod in_process;
mod over_http;

use super::{BenchError, BenchOptions, Ending, Outcome, Summary, Tally};
use microcommerce_service::ordering::OrderStatus;
use microcommerce_service::state::AppState;

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
    /// stuck, over the runs `summaries` (the warm-up and the measured run). Returns the
    /// problems found (none means the invariants hold).
    pub async fn check_invariants(
        &self,
        summaries: &[&Summary],
    ) -> Result<Vec<String>, BenchError> {
        let mut problems = Vec::new();
        let stuck: u64 = summaries.iter().map(|summary| summary.stuck).sum();
        if stuck > 0 {
            problems.push(format!("{stuck} orders never settled"));
        }
        let mut bought = BTreeMap::<&str, i64>::new();
        for (product, units) in summaries.iter().flat_map(|summary| &summary.bought) {
            *bought.entry(product.as_str()).or_default() += units;
        }
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

    /// Where this run's CPU counters are read (see [`crate::cpu`]), found once: this process
    /// when the service is embedded, else each `--url` instance's process on this machine (or
    /// its metrics); PostgreSQL's processes when `database_url` is local; and the delay line's
    /// threads when `delay_line` runs one in this process.
    pub fn cpu_meter(&self, database_url: Option<&str>, delay_line: bool) -> CpuMeter {
        let service = if self.inner.embedded.is_empty() {
            self.inner
                .bases
                .iter()
                .map(|base| server_source(base))
                .collect()
        } else {
            vec![CpuSource::ThisProcess]
        };
        CpuMeter {
            service,
            database: database_url.is_some_and(crate::cpu::is_local_postgres),
            delay_line,
        }
    }

    /// The CPU counters now, where `meter` says.
    pub async fn read_cpu(&self, meter: &CpuMeter) -> crate::cpu::CpuReading {
        let delay_line = meter.delay_line.then(crate::latency::cpu_seconds).flatten();
        let mut service = Some(0.0);
        for source in &meter.service {
            let seconds = match source {
                CpuSource::ThisProcess => {
                    crate::cpu::own_cpu_seconds().map(|own| own - delay_line.unwrap_or(0.0))
                }
                CpuSource::Process(pid) => crate::cpu::process_cpu_seconds_of(*pid),
                CpuSource::Metrics(base) => self.inner.scrape_cpu(base).await,
            };
            service = service.zip(seconds).map(|(sum, more)| sum + more);
        }
        let database = meter
            .database
            .then(crate::cpu::postgres_cpu_seconds)
            .flatten();
        crate::cpu::CpuReading {
            service,
            database,
            delay_line,
        }
    }

    /// The first instance's base URL and the admin token: what `--time-console` signs in to.
    pub fn console(&self) -> (&str, &str) {
        (
            self.inner.bases.first().map_or("", String::as_str),
            &self.inner.admin_token,
        )
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

    /// `process_cpu_seconds_total` of the instance at `base`, if its metrics can be read.
    async fn scrape_cpu(&self, base: &str) -> Option<f64> {
        let response = self
            .http
            .get(format!("{base}/metrics"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        crate::cpu::process_cpu_seconds(&response.text().await.ok()?)
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

/// Where a run reads the CPU the service and the database spent, found once before it.
pub struct CpuMeter {
    service: Vec<CpuSource>,
    database: bool,
    /// The delay line runs in this process: its threads are read apart.
    delay_line: bool,
}

/// Where one part of the service's CPU is read.
enum CpuSource {
    /// The bench's own process: the embedded servers, with the buyers.
    ThisProcess,
    /// A server process on this machine.
    Process(u32),
    /// A server elsewhere: its `process_cpu_seconds_total` (whole seconds).
    Metrics(String),
}

/// The server at `base`: its process when it listens on this machine, else its metrics.
fn server_source(base: &str) -> CpuSource {
    let local_port = reqwest::Url::parse(base).ok().and_then(|url| {
        crate::cpu::is_loopback(url.host_str()?)
            .then(|| url.port_or_known_default())
            .flatten()
    });
    match local_port.and_then(crate::cpu::pid_listening_on) {
        Some(pid) => CpuSource::Process(pid),
        None => CpuSource::Metrics(base.to_owned()),
    }
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
