//! `microcommerce bench`: drives simulated buyers through whole checkouts and reports
//! checkouts per second, latency and outcomes, checks the stock invariants, and measures the
//! ceiling: the same rows written by plain SQL transactions, without bus or saga.
//!
//! Three drivers share one loop ([`Driver`]): the real HTTP API (of an embedded server on a
//! fresh temporary database, or of a deployment given by `--url`), the saga engine in-process
//! without HTTP (`--engine`), and the baseline (`--baseline`, run after the main one).
#![warn(missing_docs)]

mod baseline;
mod console_timing;
pub mod cpu;
mod driver;
mod latency;
mod report;
mod stored;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use microcommerce_service::ordering::OrderStatus;
use tokio::sync::Mutex;

pub use console_timing::PageTime;
pub use driver::Driver;
pub use latency::{LatencyError, LatencyProxy};
pub use report::Report;

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Running instances of one deployment to drive, buyers spread over them in turn; none
    /// starts embedded servers.
    pub urls: Vec<String>,
    /// Embedded servers to start on the one database (several need PostgreSQL).
    pub instances: usize,
    /// Round trip added between the embedded servers (and the baseline) and PostgreSQL.
    pub db_latency: Option<Duration>,
    /// Admin token of the deployment (for stock set-up).
    pub admin_token: Option<String>,
    /// Database of the embedded server (and of the baseline); `None` is a temporary SQLite file.
    pub database_url: Option<String>,
    /// SQLite durability of the embedded server and the baseline.
    pub synchronous: storage::Synchronous,
    /// Writer lane bound to one CPU (the service's default).
    pub pin_writer: bool,
    /// Message workers of the embedded server.
    pub workers: usize,
    /// Messages per worker transaction of the embedded server.
    pub batch_size: usize,
    /// Hand-over within worker batches in the embedded server.
    pub hand_over: bool,
    /// Metrics recorded in the embedded server.
    pub metrics: bool,
    /// A span per request in the embedded server (set when the binary exports traces).
    pub traces: bool,
    /// Concurrent simulated buyers.
    pub buyers: usize,
    /// How long to run (unless `checkouts` is given).
    pub duration: Duration,
    /// How long to drive checkouts before the measured run (and before the baseline), left out
    /// of every figure: the pools open their connections and the statements get prepared, so
    /// the run sees a service in steady state. Zero for none.
    pub warmup: Duration,
    /// Stop after this many checkouts instead.
    pub checkouts: Option<u64>,
    /// Before the run, fill the database until it holds this many orders.
    pub stored_orders: Option<u64>,
    /// Products per order.
    pub items: usize,
    /// All buyers want one product with `hot_stock` units, instead of the whole catalog.
    pub hot_product: bool,
    /// Units of the hot product.
    pub hot_stock: i64,
    /// Share of payments declined.
    pub decline_ratio: f64,
    /// Seed of the buyers' random choices.
    pub seed: u64,
    /// Drive the saga engine in-process instead of the HTTP API.
    pub engine: bool,
    /// Also measure the plain-SQL ceiling and the ratio to it.
    pub baseline: bool,
    /// Show a live progress bar on stderr.
    pub progress: bool,
    /// After the run, time every operations-console page and admin list.
    pub time_console: bool,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The embedded server did not start.
    #[error(transparent)]
    Start(#[from] microcommerce_service::app::StartError),
    /// A set-up request failed.
    #[error("set-up failed: {0}")]
    Setup(String),
    /// A database statement failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The delay line in front of the database could not start.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// The options contradict each other.
    #[error("{0}")]
    Options(String),
}

/// How a checkout ended for its buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The checkout settled in this status ([`OrderStatus::is_settled`]).
    Settled(OrderStatus),
    /// It never settled within the bench's patience.
    Stuck,
    /// A request failed.
    Error,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Settled(status) => write!(f, "{status}"),
            Self::Stuck => f.write_str("Stuck"),
            Self::Error => f.write_str("Error"),
        }
    }
}

impl Ending {
    /// True when the checkout sold what it ordered.
    pub fn sold(self) -> bool {
        matches!(self, Self::Settled(status) if status.is_sold())
    }
}

/// One finished checkout as a buyer saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Ending,
    /// Why it failed.
    pub reason: Option<String>,
    /// Units bought per product (empty unless confirmed).
    pub bought: Vec<(String, i64)>,
    /// Checkout until awaiting payment (or failed), microseconds.
    pub to_awaiting: Option<u64>,
    /// Payment until confirmed (or failed), microseconds.
    pub to_settled: Option<u64>,
    /// The whole checkout, microseconds.
    pub whole: u64,
}

/// What the finished checkouts add up to, kept as running totals (histograms, counts, units
/// per product) so that the client's memory stays flat however long the run.
pub struct Summary {
    /// Checkouts that ended, however.
    pub finished: u64,
    /// Checkouts that settled (Confirmed or Failed).
    pub completed: u64,
    /// Checkouts that never settled.
    pub stuck: u64,
    /// Counts by final status and failure reason.
    pub by_outcome: BTreeMap<String, u64>,
    /// Units bought per product by confirmed checkouts, for the stock invariant.
    pub bought: BTreeMap<String, i64>,
    /// Whole settled checkouts, microseconds.
    pub whole: Histogram<u64>,
    /// Checkout until awaiting payment (or failed), microseconds.
    pub to_awaiting: Histogram<u64>,
    /// Payment until settled, microseconds.
    pub to_settled: Histogram<u64>,
}

impl Summary {
    fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Self {
            finished: 0,
            completed: 0,
            stuck: 0,
            by_outcome: BTreeMap::new(),
            bought: BTreeMap::new(),
            whole: histogram(),
            to_awaiting: histogram(),
            to_settled: histogram(),
        }
    }

    fn add(&mut self, outcome: Outcome) {
        self.finished += 1;
        if matches!(outcome.status, Ending::Settled(_)) {
            self.completed += 1;
            let _ = self.whole.record(outcome.whole.max(1));
        }
        if outcome.status == Ending::Stuck {
            self.stuck += 1;
        }
        for (micros, histogram) in [
            (outcome.to_awaiting, &mut self.to_awaiting),
            (outcome.to_settled, &mut self.to_settled),
        ] {
            if let Some(micros) = micros {
                let _ = histogram.record(micros.max(1));
            }
        }
        for (product, units) in outcome.bought {
            *self.bought.entry(product).or_default() += units;
        }
        let key = match outcome.reason {
            Some(reason) if !outcome.status.sold() => format!("{}: {reason}", outcome.status),
            _ => outcome.status.to_string(),
        };
        *self.by_outcome.entry(key).or_default() += 1;
    }
}

/// What the buyers share while running.
pub struct Tally {
    pub(crate) summary: Mutex<Summary>,
    pub(crate) requests: AtomicU64,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) started: AtomicU64,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            summary: Mutex::new(Summary::new()),
            requests: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            started: AtomicU64::new(0),
        })
    }

    /// Counts one request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an unexpected answer (an HTTP status, or a transport error).
    pub async fn error(&self, what: impl Into<String>) {
        *self.errors.lock().await.entry(what.into()).or_default() += 1;
    }
}

/// Runs the benchmark described by `options` and returns its report.
pub async fn run(options: &BenchOptions) -> Result<Report, BenchError> {
    check(options)?;
    let (proxy, through_proxy) = behind_latency(options)?;
    // The database as given, not the latency proxy in front of it: is it this machine's?
    let database_url = options.database_url.clone();
    let options = through_proxy.as_ref().unwrap_or(options);
    let mut driver = Driver::prepare(options).await?;
    let stored = match options.stored_orders {
        Some(wanted) => Some(fill_stored(&mut driver, options, wanted).await?),
        None => None,
    };
    let warmed = warm_up(options, Target::Checkouts(driver.clone())).await;
    let meter = driver.cpu_meter(database_url.as_deref(), proxy.is_some());
    let cpu_before = driver.read_cpu(&meter).await;
    let measured = drive(options, Target::Checkouts(driver.clone()), "checkouts").await;
    let cpu = cpu_before.per_checkout(driver.read_cpu(&meter).await, measured.summary.completed);
    let console = if options.time_console {
        let (base, token) = driver.console();
        Some(console_timing::time_console(base, token).await?)
    } else {
        None
    };
    let runs: Vec<&Summary> = warmed
        .iter()
        .map(|warm| &warm.summary)
        .chain([&measured.summary])
        .collect();
    let invariants = driver.check_invariants(&runs).await?;
    let baseline = if options.baseline {
        let plain = Target::Baseline(baseline::Baseline::prepare(options).await?);
        warm_up(options, plain.clone()).await;
        Some(drive(options, plain, "baseline").await)
    } else {
        None
    };
    driver.finish().await;
    Ok(Report::new(options, measured, invariants, baseline)
        .with_stored(stored)
        .with_console(console)
        .with_cpu(cpu))
}

/// With a `warmup`, drives `target` that long and returns what that did (its purchases count
/// for the invariants, nothing else does); without one, `None`.
async fn warm_up(options: &BenchOptions, target: Target) -> Option<Measured> {
    if options.warmup.is_zero() {
        return None;
    }
    let warm = BenchOptions {
        duration: options.warmup,
        checkouts: None,
        ..options.clone()
    };
    Some(drive(&warm, target, "warm-up").await)
}

/// Brings the database to at least `wanted` orders before the run (real checkouts as a
/// template, then copies of their rows) and sets the stock up again; returns the orders held.
async fn fill_stored(
    driver: &mut Driver,
    options: &BenchOptions,
    wanted: u64,
) -> Result<u64, BenchError> {
    let db = driver
        .database()
        .ok_or_else(|| BenchError::Options(STORED_NEEDS_EMBEDDED.into()))?;
    let missing = stored::template_missing(stored::Stored::count(&db).await?, wanted);
    if missing > 0 {
        let template = BenchOptions {
            checkouts: Some(missing),
            ..options.clone()
        };
        let run = drive(&template, Target::Checkouts(driver.clone()), "template").await;
        if run.summary.completed == 0 {
            return Err(BenchError::Setup(format!(
                "the template checkouts settled none: {:?}",
                run.errors
            )));
        }
    }
    let held = stored::copy_up_to(&db, wanted, options).await?;
    driver.restock(options).await?;
    Ok(held)
}

/// Why `--stored-orders` cannot go with `--url`.
const STORED_NEEDS_EMBEDDED: &str =
    "--stored-orders fills the embedded servers' database; drop --url";

/// Refuses combinations of options that cannot mean anything.
fn check(options: &BenchOptions) -> Result<(), BenchError> {
    let postgres = options
        .database_url
        .as_deref()
        .is_some_and(|url| url.starts_with("postgres"));
    let refuse = |why: &str| Err(BenchError::Options(why.to_owned()));
    if !options.urls.is_empty() && (options.instances > 1 || options.db_latency.is_some()) {
        return refuse(
            "--instances and --db-latency shape embedded servers; a deployment given by --url \
             has its own",
        );
    }
    if options.instances > 1 && !postgres {
        return refuse(
            "--instances above 1 needs a PostgreSQL --database-url: SQLite has one writer",
        );
    }
    if options.db_latency.is_some() && !postgres {
        return refuse("--db-latency needs a PostgreSQL --database-url");
    }
    if options.stored_orders.is_some() && !options.urls.is_empty() {
        return refuse(STORED_NEEDS_EMBEDDED);
    }
    if options.engine && !options.urls.is_empty() {
        return refuse("--engine drives an embedded server; drop --url");
    }
    Ok(())
}

/// With `--db-latency`, a delay line in front of the database and the options that reach the
/// database through it, so that the embedded servers and the baseline pay the same distance.
fn behind_latency(
    options: &BenchOptions,
) -> Result<(Option<LatencyProxy>, Option<BenchOptions>), BenchError> {
    let (Some(round_trip), Some(url)) = (options.db_latency, &options.database_url) else {
        return Ok((None, None));
    };
    let (proxy, through) = LatencyProxy::start(url, round_trip)?;
    let options = BenchOptions {
        database_url: Some(through),
        ..options.clone()
    };
    Ok((Some(proxy), Some(options)))
}

/// The raw results of one driven run.
pub struct Measured {
    /// What the checkouts added up to.
    pub summary: Summary,
    /// Requests made (HTTP) or transactions (in-process).
    pub requests: u64,
    /// Unexpected answers by kind.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// What a run drives: real checkouts, or the plain-SQL ceiling.
#[derive(Clone)]
enum Target {
    Checkouts(Driver),
    Baseline(baseline::Baseline),
}

impl Target {
    async fn checkout(
        &self,
        rng: &mut fastrand::Rng,
        options: &BenchOptions,
        tally: &Tally,
    ) -> Outcome {
        match self {
            Target::Checkouts(driver) => driver.checkout(rng, options, tally).await,
            Target::Baseline(plain) => plain.checkout(rng, options, tally).await,
        }
    }
}

/// Runs `options.buyers` buyers against `target` until the count or the deadline.
async fn drive(options: &BenchOptions, target: Target, label: &str) -> Measured {
    let tally = Tally::new();
    let started = Instant::now();
    let deadline = started + options.duration;
    let progress = progress_bar(options, label, tally.clone());
    let buyers = (0..options.buyers).map(|n| {
        let (target, tally) = (target.clone(), tally.clone());
        let options = options.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(options.seed.wrapping_add(n as u64));
            while keep_going(&options, &tally, deadline) {
                let outcome = target.checkout(&mut rng, &options, &tally).await;
                tally.summary.lock().await.add(outcome);
            }
        })
    });
    futures_util::future::join_all(buyers).await;
    let elapsed = started.elapsed();
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    collect(tally, elapsed).await
}

/// Claims the next checkout, if the run has not reached its count or its deadline.
fn keep_going(options: &BenchOptions, tally: &Tally, deadline: Instant) -> bool {
    match options.checkouts {
        Some(limit) => tally.started.fetch_add(1, Ordering::Relaxed) < limit,
        None => Instant::now() < deadline,
    }
}

async fn collect(tally: Arc<Tally>, elapsed: Duration) -> Measured {
    Measured {
        summary: std::mem::replace(&mut *tally.summary.lock().await, Summary::new()),
        requests: tally.requests.load(Ordering::Relaxed),
        errors: std::mem::take(&mut *tally.errors.lock().await),
        elapsed,
    }
}

type Progress = (indicatif::ProgressBar, tokio::task::JoinHandle<()>);

fn progress_bar(options: &BenchOptions, label: &str, tally: Arc<Tally>) -> Option<Progress> {
    if !options.progress {
        return None;
    }
    let bar = match options.checkouts {
        Some(count) => indicatif::ProgressBar::new(count),
        None => indicatif::ProgressBar::new(options.duration.as_secs()),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    let started = Instant::now();
    let by_count = options.checkouts.is_some();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let done = tally.summary.lock().await.finished;
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_position(if by_count {
                    done
                } else {
                    started.elapsed().as_secs()
                });
                bar.set_message(format!("{done} checkouts, {rate:.0}/s"));
            }
        })
    };
    Some((bar, ticker))
}

/// The email every simulated buyer checks out with.
pub(crate) const BUYER_EMAIL: &str = "bench@example.com";

/// The address every simulated buyer ships to.
pub(crate) fn buyer_address() -> microcommerce_service::ordering::domain::ShippingAddress {
    microcommerce_service::ordering::domain::ShippingAddress {
        name: "Bench".into(),
        email: BUYER_EMAIL.into(),
        street: "1 Load Lane".into(),
        city: "Loadville".into(),
        state: "LD".into(),
        zip_code: "00000".into(),
    }
}

/// Percentiles of latencies recorded in microseconds, in milliseconds.
pub fn percentiles(histogram: &Histogram<u64>) -> Option<[f64; 4]> {
    if histogram.is_empty() {
        return None;
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Some([
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.95)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    ])
}

/// Peak resident memory of this process, in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
