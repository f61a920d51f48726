//! What happens to every request, seen from outside: one access line (target `access`, at info)
//! with the method, route template, status, duration, size, request id and client address;
//! the request's id, taken from `x-request-id` or made, echoed on the answer; and the request
//! counted in the metrics. Silence the lines with `--log-level info,access=warn`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::client_address::client_address;

/// The header a request's id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request: the caller's (a proxy's) if it sent a usable one, else a new one.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The `x-request-id` of `request` when it is 1 to 128 visible ASCII characters (so that it
    /// is safe to log and to echo), else a new random one.
    fn of(request: &Request) -> Self {
        let sent = request.headers().get(&REQUEST_ID).filter(|value| {
            let bytes = value.as_bytes();
            (1..=128).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
        });
        let id = sent.cloned().unwrap_or_else(|| {
            HeaderValue::from_str(&format!("{:032x}", fastrand::u128(..)))
                .expect("hex is a valid header value")
        });
        Self(id)
    }
}

/// The middleware; it runs inside the one that finds the client's address.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::of(&request);
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    // The template is shared (`MatchedPath` holds it behind an `Arc`): no copy per request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let client = client_address(request.extensions());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id.0.clone());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    super::metrics::record_request(method.as_str(), route, status, elapsed.as_secs_f64());
    let bytes = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: "access",
        method = %method,
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1e3,
        bytes,
        request_id = id.0.to_str().unwrap_or_default(),
        client = %client,
    );
    response
}
