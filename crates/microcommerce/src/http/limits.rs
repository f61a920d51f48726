//! Limits that keep one client, or a crowd, from taking the service down: a rate per client
//! address on writing requests (429), a cap on requests held open (503) — long polls,
//! `Prefer: wait` and event streams alike, each client address to a share of it — and a time
//! limit on every request (503). All answer problems with `Retry-After`; handlers know nothing
//! of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::PreferWait;
use super::auth::has_admin_token;
use super::client_address::client_address;
use crate::config::Limits;
use crate::error::{Error, Limit};

type WriteRate = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// The limits' state, shared by every request of one router.
pub struct Limiter {
    limits: Limits,
    /// Requests with the admin token are not rate-limited: operators are not the abuse.
    admin_token: String,
    writes: Option<WriteRate>,
    /// Places for requests held open, across clients.
    held: Arc<Semaphore>,
    /// Places each client address holds now; an address without any is not kept.
    held_by: Mutex<HashMap<IpAddr, usize>>,
    /// Writing requests seen, to forget idle clients now and then.
    checked: AtomicU32,
}

/// Every this many writing requests, clients whose rate has recovered are forgotten, so that
/// the table of clients does not grow with every address ever seen.
const FORGET_EVERY: u32 = 4096;

impl Limiter {
    /// The state for `limits`, exempting requests that carry `admin_token` from the rate.
    pub fn new(limits: Limits, admin_token: &str) -> Arc<Self> {
        let writes = limits.writes_per_second.map(|rate| {
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(limits.write_burst))
        });
        Arc::new(Self {
            limits,
            admin_token: admin_token.to_owned(),
            writes,
            held: Arc::new(Semaphore::new(
                limits.long_polls.min(Semaphore::MAX_PERMITS),
            )),
            held_by: Mutex::new(HashMap::new()),
            checked: AtomicU32::new(0),
        })
    }

    /// Lets a writing request from `client` through, or says when to come back.
    fn admit_write(&self, client: IpAddr) -> Result<(), Limit> {
        let Some(writes) = &self.writes else {
            return Ok(());
        };
        if self.checked.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            writes.retain_recent();
            writes.shrink_to_fit();
        }
        writes.check_key(&client).map_err(|not_until| Limit::Rate {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }
}

/// A place held by one request held open: given back, to the cap and to its client's share,
/// when dropped (the long poll answered, the event stream ended or cut).
pub(crate) struct HeldPlace {
    limiter: Arc<Limiter>,
    client: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for HeldPlace {
    fn drop(&mut self) {
        metrics::gauge!("http_requests_held_open").decrement(1.0);
        let mut held_by = self.limiter.held_by.lock().expect("held places lock");
        if let Some(count) = held_by.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held_by.remove(&self.client);
            }
        }
    }
}

impl Limiter {
    /// Requests held open now (long polls, `Prefer: wait`, event streams): what an operator
    /// graphs against the cap, and what a test waits for to know a request is being held.
    pub fn held_now(&self) -> usize {
        self.held_by
            .lock()
            .expect("held places lock")
            .values()
            .sum()
    }

    /// A place for a request `client` holds open, if the cap and the client's share allow.
    fn hold(self: &Arc<Self>, client: IpAddr) -> Result<HeldPlace, Limit> {
        let permit = Arc::clone(&self.held)
            .try_acquire_owned()
            .map_err(|_| Limit::HeldOpen)?;
        let mut held_by = self.held_by.lock().expect("held places lock");
        if held_by.get(&client).copied().unwrap_or(0) >= self.limits.held_per_address {
            return Err(Limit::HeldOpen);
        }
        *held_by.entry(client).or_default() += 1;
        metrics::gauge!("http_requests_held_open").increment(1.0);
        Ok(HeldPlace {
            limiter: Arc::clone(self),
            client,
            _permit: permit,
        })
    }
}

/// The middleware: the rate (for writes without the admin token), then a place for a request
/// held open (a long poll asks before it runs; an event stream once its answer says it is one,
/// and keeps the place until the stream ends), then the time limit around the rest.
pub async fn enforce_limits(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_address(request.extensions());
    if is_writing(request.method())
        && !has_admin_token(request.headers(), &limiter.admin_token)
        && let Err(limit) = limiter.admit_write(client)
    {
        return Error::Limited(limit).into_response();
    }
    let _held = if is_long_poll(&request) {
        match limiter.hold(client) {
            Ok(place) => Some(place),
            Err(limit) => return Error::Limited(limit).into_response(),
        }
    } else {
        None
    };
    let response =
        match tokio::time::timeout(limiter.limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(timeout = ?limiter.limits.request_timeout, "a request timed out");
                return Error::Limited(Limit::Timeout).into_response();
            }
        };
    if !is_event_stream(&response) {
        return response;
    }
    match limiter.hold(client) {
        Ok(place) => keep_while_streaming(response, place),
        Err(limit) => Error::Limited(limit).into_response(),
    }
}

/// An answer that streams events (`text/event-stream`): held open until the stream ends.
fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

/// The response with `place` kept until its body has been sent or dropped.
fn keep_while_streaming(response: Response, place: HeldPlace) -> Response {
    use futures_util::StreamExt;
    response.map(|body| {
        let stream = body.into_data_stream().map(move |chunk| {
            let _kept = &place;
            chunk
        });
        axum::body::Body::from_stream(stream)
    })
}

/// A request that may be held open waiting for a change: `Prefer: wait`, or an order read
/// with `waitWhile`.
fn is_long_poll(request: &Request) -> bool {
    let query = request.uri().query().unwrap_or_default();
    PreferWait::of(request.headers()).0.is_some()
        || query.split('&').any(|pair| pair.starts_with("waitWhile="))
}

fn is_writing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    /// A write burst of one: the second write within a second is refused.
    fn one_write_per_second() -> Limits {
        Limits {
            writes_per_second: NonZeroU32::new(1),
            write_burst: NonZeroU32::MIN,
            ..Limits::default()
        }
    }

    #[test]
    fn each_client_has_its_own_rate() {
        let limiter = Limiter::new(one_write_per_second(), "secret");
        let (one, two) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(limiter.admit_write(one), Ok(()));
        let Err(Limit::Rate { retry_after }) = limiter.admit_write(one) else {
            panic!("a second write within the second must wait");
        };
        assert!(retry_after <= std::time::Duration::from_secs(1));
        assert_eq!(limiter.admit_write(two), Ok(()));
    }

    #[test]
    fn no_rate_lets_every_write_through() {
        let limiter = Limiter::new(Limits::off(), "secret");
        let client = IpAddr::from([10, 0, 0, 1]);
        assert!((0..1000).all(|_| limiter.admit_write(client).is_ok()));
    }
}
