//! Configuration: one typed value built from flags and `MICROCOMMERCE_*` variables (see `cli`).

use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;
use storage::Synchronous;

/// Everything the service needs to start; `Config::default()` is what `serve` uses when
/// nothing is set.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub addr: String,
    /// `sqlite://PATH` (default `sqlite://microcommerce.db`) or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL connections per instance.
    pub db_pool_size: u32,
    /// PostgreSQL: longest a statement may run, and a transaction may sit waiting for this
    /// instance before the server ends it.
    pub statement_timeout: Duration,
    /// PostgreSQL: longest wait for a new connection (TCP, TLS, log-in) at start-up.
    pub connect_timeout: Duration,
    /// SQLite durability; `Full` keeps acknowledged writes through power loss.
    pub synchronous: Synchronous,
    /// Bind the writer lane (the bus workers; on SQLite the single writer) to one CPU (see
    /// `docs/architecture.md`, "The writer lane and the in-place write connection"). Linux
    /// only; ignored elsewhere.
    pub pin_writer: bool,
    /// Bearer token for admin routes.
    pub admin_token: String,
    /// How long a buyer has to pay once stock is reserved.
    pub payment_timeout: Duration,
    /// How long an unfinished checkout may stand still before the console lists it as stuck.
    pub stuck_after: Duration,
    /// Bus worker tasks; 0 processes no messages (maintenance, or tests that drive the bus
    /// themselves with `bus.run_pending()`).
    pub workers: usize,
    /// Messages per worker transaction.
    pub batch_size: usize,
    /// Hand a message a worker's consumer sends to another consumer over in the same
    /// batch transaction (see `bus::BusConfig::hand_over`).
    pub hand_over: bool,
    /// Mark the buyer cookie `Secure` (only when served over HTTPS).
    pub secure_cookies: bool,
    /// Load the demo catalog into an empty database.
    pub seed: bool,
    /// How long finished checkouts stay as tombstones (their timeline readable, a late duplicate
    /// start ignored) before they are pruned.
    pub saga_retention: Duration,
    /// What one client, or all together, may ask of the service.
    pub limits: Limits,
    /// Reverse proxies whose word on the client's address is taken; none by default.
    pub trusted_proxies: TrustedProxies,
    /// Record metrics and serve them at `GET /metrics` (behind the admin token).
    pub metrics: bool,
    /// Also serve `GET /metrics`, without a token, on this address of its own (a private
    /// network the scraper shares); `None` serves them on the main listener only.
    pub metrics_addr: Option<String>,
    /// A span per request and per message, continuing the W3C trace context a request or
    /// message carries: on when the binary exports traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub traces: bool,
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`, which most proxies add (nginx, haproxy, cloud
    /// load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// Which connections may say who the client is, and in which header (`http::client_address`
/// reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The proxies' addresses or ranges; empty trusts no one, so the peer is the client.
    pub ranges: Vec<IpNet>,
    /// The header they write; the other one is ignored, since a client could write it and
    /// the proxies would pass it on untouched.
    pub header: ForwardedHeader,
}

/// Limits against abuse and overload (`http::limits` enforces them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Writing requests (any method but GET, HEAD and OPTIONS) one client address may send
    /// per second, on average; `None` sets no limit (the benchmark, tests of other things).
    pub writes_per_second: Option<NonZeroU32>,
    /// Writing requests a client may send at once before its rate applies.
    pub write_burst: NonZeroU32,
    /// Longest a request may run before it is answered 503; longer than the longest
    /// `Prefer: wait` (30 s), so that a held request ends by itself first.
    pub request_timeout: Duration,
    /// Requests held open waiting for a change at once, across clients: long polls,
    /// `Prefer: wait` and event streams alike; one more is answered 503.
    pub long_polls: usize,
    /// Of those, how many one client address may hold at once, so that one client cannot
    /// take every place.
    pub held_per_address: usize,
    /// Longest an event stream stays open; the browser then opens it again (and asks for a
    /// place again), so that no stream holds a place forever.
    pub stream_max: Duration,
    /// Checkouts one buyer may hold unpaid at once (placed, stock held, not yet paid or
    /// failed); the next is answered 429, so that no one hoards stock by never paying. `None`
    /// sets no limit.
    pub unpaid_per_buyer: Option<NonZeroU32>,
    /// The same, for every buyer behind one client address together: a new cookie is a new
    /// buyer, so this bounds a hoarder who drops theirs.
    pub unpaid_per_address: Option<NonZeroU32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            writes_per_second: NonZeroU32::new(20),
            write_burst: NonZeroU32::new(40).unwrap_or(NonZeroU32::MIN),
            request_timeout: Duration::from_secs(60),
            long_polls: 512,
            held_per_address: 64,
            stream_max: Duration::from_secs(600),
            unpaid_per_buyer: NonZeroU32::new(3),
            unpaid_per_address: NonZeroU32::new(20),
        }
    }
}

impl Limits {
    /// No limit but the request timeout: for the benchmark, which is its own abuse.
    pub fn off() -> Self {
        Self {
            writes_per_second: None,
            long_polls: usize::MAX,
            held_per_address: usize::MAX,
            unpaid_per_buyer: None,
            unpaid_per_address: None,
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            database_url: "sqlite://microcommerce.db".into(),
            db_pool_size: 10,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            pin_writer: true,
            admin_token: String::new(),
            payment_timeout: Duration::from_secs(15 * 60),
            stuck_after: Duration::from_secs(5 * 60),
            workers: 1,
            batch_size: 64,
            hand_over: true,
            secure_cookies: false,
            seed: true,
            saga_retention: Duration::from_secs(30 * 24 * 3600),
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            metrics: true,
            metrics_addr: None,
            traces: false,
        }
    }
}

/// Secrets stay out of logs and debug output.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &redact_password(&self.database_url))
            .field("db_pool_size", &self.db_pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("synchronous", &self.synchronous)
            .field("pin_writer", &self.pin_writer)
            .field("admin_token", &"<redacted>")
            .field("payment_timeout", &self.payment_timeout)
            .field("stuck_after", &self.stuck_after)
            .field("workers", &self.workers)
            .field("batch_size", &self.batch_size)
            .field("hand_over", &self.hand_over)
            .field("secure_cookies", &self.secure_cookies)
            .field("seed", &self.seed)
            .field("saga_retention", &self.saga_retention)
            .field("limits", &self.limits)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics", &self.metrics)
            .field("metrics_addr", &self.metrics_addr)
            .field("traces", &self.traces)
            .finish()
    }
}

/// The URL with any password replaced, for logs.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `30d`, `500ms` or `250us` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m or 2h"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "ms" => return Ok(Duration::from_millis(number)),
        "us" => return Ok(Duration::from_micros(number)),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use us, ms, s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_password("postgres://shop:s3cret@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(redact_password("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_password("postgres://shop@db/shop"),
            "postgres://shop@db/shop"
        );
    }

    #[test]
    fn durations_accept_the_documented_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("5w").is_err());
    }
}
