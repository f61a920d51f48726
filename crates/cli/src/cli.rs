//! The command line: `serve`, `migrate` and `bench`, every option also readable from the environment.

use clap::{Args, Parser, Subcommand};

use std::num::NonZeroU32;

use microcommerce_service::config::{
    Config, ForwardedHeader, Limits, TrustedProxies, parse_duration,
};

/// microcommerce: a commerce backend whose checkout is a durable saga.
#[derive(Debug, Parser)]
#[command(name = "microcommerce", version, about, long_about = None)]
pub struct Cli {
    /// Log filter: a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) and
    /// `target=level` pairs, comma-separated (`warn,bus=debug`). Without it `RUST_LOG` applies
    /// (its full syntax); without either `info`, or `warn` for `bench`, whose embedded server
    /// would otherwise log every message.
    #[arg(long, env = "MICROCOMMERCE_LOG", global = true, value_parser = crate::logging::parse_log_level)]
    pub log_level: Option<String>,
    /// Print logs as JSON lines instead of text.
    #[arg(long, env = "MICROCOMMERCE_LOG_JSON", global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the message workers (migrates and seeds first).
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Drive simulated buyers through whole checkouts and report throughput, latency and
    /// whether the stock invariants held.
    Bench(BenchArgs),
}

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A running deployment to drive (e.g. `http://127.0.0.1:8080`); repeat it, or separate
    /// with commas, to spread the buyers over several instances of one deployment. Without it
    /// embedded servers start on a fresh temporary database.
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    /// Admin token of the deployment given by `--url`, to set up stock.
    #[arg(long, env = "MICROCOMMERCE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Database of the embedded server and the baseline [default: a temporary SQLite file].
    #[arg(long)]
    pub database_url: Option<String>,
    /// SQLite durability of the embedded server and the baseline.
    #[arg(long, default_value = "full")]
    pub synchronous: storage::Synchronous,
    /// Bind the writer lane of the embedded server and of the baseline to one CPU (`false`
    /// lets the system place it, to measure what binding gains). Linux only; ignored elsewhere.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub pin_writer: bool,
    /// Embedded servers started on the one `--database-url` (PostgreSQL), buyers spread over
    /// them in turn, as several instances of one deployment.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Round trip added between the embedded servers (and the baseline) and PostgreSQL, half
    /// each way, by a delay line inside the bench (`1ms`, `500us`): a database one network hop
    /// away. Its CPU is reported apart from the service's.
    #[arg(long, value_parser = parse_duration)]
    pub db_latency: Option<std::time::Duration>,
    /// Message workers of the embedded server (as `serve --workers`).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Messages per worker transaction of the embedded server (as `serve --batch-size`).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Hand messages over within worker batches in the embedded server (as `serve
    /// --hand-over`; `false` sends every message through the queue).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub hand_over: bool,
    /// Record metrics in the embedded server (as `serve`; `false` as `serve --no-metrics`), to
    /// measure what they cost.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub metrics: bool,
    /// Concurrent simulated buyers.
    #[arg(long, default_value_t = 64)]
    pub buyers: usize,
    /// How long to run (`10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Checkouts driven this long before the measured run (and the baseline), left out of
    /// every figure: the pools open their connections and prepare their statements first,
    /// which matters with many instances on PostgreSQL (`3s`; `0s` for none).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: std::time::Duration,
    /// Stop after this many checkouts instead of after `--duration`.
    #[arg(long)]
    pub checkouts: Option<u64>,
    /// Before the run, fill the database until it holds this many orders, to measure the rate
    /// as the data grows: real checkouts first (up to 1,000), then copies of their rows under
    /// new ids. A `--database-url` that already holds as many is used as it is, so a database
    /// is filled once.
    #[arg(long, value_name = "ORDERS")]
    pub stored_orders: Option<u64>,
    /// Products per order.
    #[arg(long, default_value_t = 1)]
    pub items: usize,
    /// Every buyer wants the same product, which has only `--hot-stock` units (contention).
    #[arg(long)]
    pub hot_product: bool,
    /// Units of the hot product.
    #[arg(long, default_value_t = 100)]
    pub hot_stock: i64,
    /// Share of payments declined (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    pub decline_ratio: f64,
    /// Seed of the buyers' random choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Drive the saga engine in-process, without HTTP (embedded only).
    #[arg(long)]
    pub engine: bool,
    /// Also measure the ceiling (the same rows by plain SQL transactions, group-committed like
    /// the service's own) and the ratio to it.
    #[arg(long)]
    pub baseline: bool,
    /// After the run, time every operations-console page and admin list on the database as it
    /// stands (with `--stored-orders`, at that size): each asked 7 times by a signed-in
    /// operator, the median and the slowest reported.
    #[arg(long)]
    pub time_console: bool,
    /// Print the report also as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The benchmark these options describe.
    pub fn into_options(self) -> bench::BenchOptions {
        bench::BenchOptions {
            urls: self.url,
            instances: self.instances.max(1),
            db_latency: self.db_latency,
            admin_token: self.admin_token,
            database_url: self.database_url,
            synchronous: self.synchronous,
            pin_writer: self.pin_writer,
            workers: self.workers.max(1),
            batch_size: self.batch_size.max(1),
            hand_over: self.hand_over,
            metrics: self.metrics,
            // Set by the caller once it knows whether traces are exported.
            traces: false,
            buyers: self.buyers.max(1),
            duration: self.duration,
            warmup: self.warmup,
            checkouts: self.checkouts,
            stored_orders: self.stored_orders,
            items: self.items.max(1),
            hot_product: self.hot_product,
            hot_stock: self.hot_stock.max(0),
            decline_ratio: self.decline_ratio.clamp(0.0, 1.0),
            seed: self.seed,
            engine: self.engine,
            baseline: self.baseline,
            progress: !self.json,
            time_console: self.time_console,
        }
    }
}

/// Where the data lives.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH` (the file is created if missing; in-memory SQLite is
    /// refused) or `postgres://USER:PASSWORD@HOST:PORT/DB` (several instances may share it).
    #[arg(
        long,
        env = "MICROCOMMERCE_DATABASE_URL",
        default_value = "sqlite://microcommerce.db"
    )]
    pub database_url: String,
    /// SQLite durability: `full` survives power loss, `normal` only process crashes.
    #[arg(long, env = "MICROCOMMERCE_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub synchronous: storage::Synchronous,
    /// Run the writer lane (the bus workers; on SQLite also the grouped request writes) on one
    /// CPU, the last one the process may use (`false` lets the system place it). Linux only;
    /// ignored elsewhere.
    #[arg(long, env = "MICROCOMMERCE_PIN_WRITER", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub pin_writer: bool,
    /// PostgreSQL connections per instance for requests and reads; the bus workers open one
    /// each of their own.
    #[arg(long, env = "MICROCOMMERCE_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,
    /// PostgreSQL: longest a statement may run before the server cancels it, and longest a
    /// transaction may wait for this instance (paused, cut off) before the server ends it and
    /// frees its locks.
    #[arg(long, env = "MICROCOMMERCE_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub statement_timeout: std::time::Duration,
    /// PostgreSQL: how long to wait for the server to answer a new connection (TCP, TLS,
    /// log-in) before start-up fails naming the server and the cause.
    #[arg(long, env = "MICROCOMMERCE_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_timeout)]
    pub connect_timeout: std::time::Duration,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Database options.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "MICROCOMMERCE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Bearer token for admin routes; if unset, one is generated and printed at start-up.
    #[arg(long, env = "MICROCOMMERCE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Time a buyer has to pay once stock is reserved (`90s`, `15m`, `1h`).
    #[arg(long, env = "MICROCOMMERCE_PAYMENT_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub payment_timeout: std::time::Duration,
    /// How long an unfinished checkout may stand still before the operations console lists it
    /// as stuck (`90s`, `5m`, `1h`).
    #[arg(long, env = "MICROCOMMERCE_STUCK_AFTER", default_value = "5m", value_parser = parse_duration)]
    pub stuck_after: std::time::Duration,
    /// Message worker tasks per instance. One worker handling batches is fastest on a small
    /// machine (SQLite has a single writer; on PostgreSQL concurrent batches contend for the
    /// same stock rows); more help only with spare cores.
    #[arg(long, env = "MICROCOMMERCE_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Messages handled per worker transaction (one fsync per batch).
    #[arg(long, env = "MICROCOMMERCE_BATCH_SIZE", default_value_t = 64)]
    pub batch_size: usize,
    /// A message a worker's consumer sends to another consumer, due at once, is handled in the
    /// same batch transaction instead of queued, unless something waits in the queue for that
    /// consumer and order, or another instance is handling that order's messages for it
    /// (`false` sends every message through the queue).
    #[arg(long, env = "MICROCOMMERCE_HAND_OVER", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub hand_over: bool,
    /// Mark the buyer cookie `Secure`; only when clients reach the service over HTTPS.
    #[arg(long, env = "MICROCOMMERCE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Do not load the demo catalog into an empty database.
    #[arg(long, env = "MICROCOMMERCE_NO_SEED")]
    pub no_seed: bool,
    /// How long finished checkouts are kept (timeline readable, late duplicates ignored).
    #[arg(long, env = "MICROCOMMERCE_SAGA_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub saga_retention: std::time::Duration,
    /// Limits against abuse and overload.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Reverse proxies or load balancers whose word on the client's address is taken
    /// (addresses or ranges, `10.0.0.0/8,192.0.2.7`; repeatable). From these alone the client
    /// is read from `--forwarded-header`: the right-most address no trusted proxy vouches for.
    /// The rate and unpaid-checkout limits then apply per client, not per proxy. Headers from
    /// anyone else are ignored.
    #[arg(long = "trusted-proxy", env = "MICROCOMMERCE_TRUSTED_PROXIES", value_delimiter = ',', value_name = "ADDRESS_OR_RANGE", value_parser = microcommerce_service::http::parse_trusted)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header the trusted proxies name the client in: `x-forwarded-for` (nginx, haproxy,
    /// most load balancers) or `forwarded` (RFC 7239). The other is ignored, since a client
    /// could write it and a proxy pass it on.
    #[arg(long, env = "MICROCOMMERCE_FORWARDED_HEADER", default_value = "x-forwarded-for", value_parser = parse_forwarded_header)]
    pub forwarded_header: ForwardedHeader,
    /// Record no metrics: `GET /metrics` answers 404 and nothing is counted.
    #[arg(long, env = "MICROCOMMERCE_NO_METRICS")]
    pub no_metrics: bool,
    /// Also serve `GET /metrics`, without the admin token, on this address of its own (for a
    /// scraper on a private network, `10.0.0.5:9464`); without it the metrics are on the main
    /// listener, behind the admin token.
    #[arg(long, env = "MICROCOMMERCE_METRICS_ADDR", value_name = "ADDRESS")]
    pub metrics_addr: Option<String>,
}

/// `x-forwarded-for` or `forwarded`, in any case.
fn parse_forwarded_header(text: &str) -> Result<ForwardedHeader, String> {
    match text.to_ascii_lowercase().as_str() {
        "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
        "forwarded" => Ok(ForwardedHeader::Forwarded),
        _ => Err("must be `x-forwarded-for` or `forwarded`".into()),
    }
}

/// Limits against abuse and overload; each turned-away request gets a problem with
/// `Retry-After`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Writing requests (POST, PUT, PATCH, DELETE) one client address may send per second on
    /// average, beyond which it is answered 429; 0 sets no limit. Requests with the admin token
    /// are not limited. Behind a reverse proxy, name it with `--trusted-proxy` so that each
    /// client has its own rate.
    #[arg(
        long,
        env = "MICROCOMMERCE_RATE_LIMIT",
        default_value_t = 20,
        value_name = "PER_SECOND"
    )]
    pub rate_limit: u32,
    /// Writing requests a client may send at once before `--rate-limit` applies.
    #[arg(long, env = "MICROCOMMERCE_RATE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Longest a request may run before it is answered 503 (`60s`; more than the longest
    /// `Prefer: wait`, 30 s).
    #[arg(long, env = "MICROCOMMERCE_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub request_timeout: std::time::Duration,
    /// Requests held open at once waiting for an order to move on (`Prefer: wait`,
    /// `waitWhile` on an order, the storefront's live order streams), across clients; one more
    /// is answered 503.
    #[arg(long, env = "MICROCOMMERCE_MAX_LONG_POLLS", default_value_t = 512)]
    pub max_long_polls: usize,
    /// Of those, how many one client address may hold at once; one more is answered 503.
    #[arg(long, env = "MICROCOMMERCE_MAX_HELD_PER_ADDRESS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_held_per_address: u32,
    /// Longest a live order stream stays open (`10m`); the browser then opens it again.
    #[arg(long, env = "MICROCOMMERCE_MAX_STREAM", default_value = "10m", value_parser = parse_timeout)]
    pub max_stream: std::time::Duration,
    /// Checkouts one buyer may hold unpaid at once (stock reserved, not yet paid or failed);
    /// the next is answered 429 until one is paid or its payment window closes. 0 sets no
    /// limit.
    #[arg(long, env = "MICROCOMMERCE_MAX_UNPAID_PER_BUYER", default_value_t = 3)]
    pub max_unpaid_per_buyer: u32,
    /// The same for all buyers behind one client address together (a new cookie is a new
    /// buyer). Behind a reverse proxy, name it with `--trusted-proxy`.
    #[arg(
        long,
        env = "MICROCOMMERCE_MAX_UNPAID_PER_ADDRESS",
        default_value_t = 20
    )]
    pub max_unpaid_per_address: u32,
}

impl LimitArgs {
    /// The limits these options describe.
    pub fn into_limits(self) -> Limits {
        Limits {
            writes_per_second: NonZeroU32::new(self.rate_limit),
            write_burst: NonZeroU32::new(self.rate_burst).unwrap_or(NonZeroU32::MIN),
            request_timeout: self.request_timeout,
            long_polls: self.max_long_polls,
            held_per_address: self.max_held_per_address as usize,
            stream_max: self.max_stream,
            unpaid_per_buyer: NonZeroU32::new(self.max_unpaid_per_buyer),
            unpaid_per_address: NonZeroU32::new(self.max_unpaid_per_address),
        }
    }
}

/// A duration above zero: a zero time limit would turn every request away.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        std::time::Duration::ZERO => Err("must be longer than zero".into()),
        timeout => Ok(timeout),
    }
}

impl ServeArgs {
    /// The configuration these options describe; generates an admin token if none was given
    /// (the caller prints it).
    pub fn into_config(self) -> (Config, Option<String>) {
        let generated = self
            .admin_token
            .is_none()
            .then(|| uuid::Uuid::new_v4().simple().to_string());
        let config = Config {
            addr: self.addr,
            workers: self.workers.max(1),
            database_url: self.database.database_url,
            db_pool_size: self.database.db_pool_size.max(1),
            statement_timeout: self.database.statement_timeout,
            connect_timeout: self.database.connect_timeout,
            synchronous: self.database.synchronous,
            pin_writer: self.database.pin_writer,
            admin_token: self
                .admin_token
                .or_else(|| generated.clone())
                .unwrap_or_default(),
            payment_timeout: self.payment_timeout,
            stuck_after: self.stuck_after,
            batch_size: self.batch_size.max(1),
            hand_over: self.hand_over,
            secure_cookies: self.secure_cookies,
            seed: !self.no_seed,
            saga_retention: self.saga_retention,
            limits: self.limits.into_limits(),
            trusted_proxies: TrustedProxies {
                ranges: self.trusted_proxies,
                header: self.forwarded_header,
            },
            metrics: !self.no_metrics,
            metrics_addr: self.metrics_addr,
            // Set by the caller once it knows whether traces are exported.
            traces: false,
        };
        (config, generated)
    }
}
