//! What happens to every request, seen from outside: one access line (target `access`, at info)
//! with the method, route template, status, duration, size, request id and client address;
//! the request's id, taken from `x-request-id` or made, echoed on the answer; and the request
//! counted in the metrics; and, when traces are exported, a span around it that continues the
//! caller's trace. Silence the lines with `--log-level info,access=warn`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

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

/// Whether each request gets a span of its own, continuing the caller's `traceparent`: on
/// when traces are exported (see `docs/operations.md`), the middleware's state.
#[derive(Debug, Clone, Copy)]
pub struct Traced(pub bool);

/// The middleware; it runs inside the one that finds the client's address.
pub async fn observe(
    State(Traced(traced)): State<Traced>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = RequestId::of(&request);
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    // The template is shared (`MatchedPath` holds it behind an `Arc`): no copy per request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let client = client_address(request.extensions());
    let span = if traced {
        request_span(&request, route, &id)
    } else {
        tracing::Span::none()
    };
    let mut response = next.run(request).instrument(span.clone()).await;
    response.headers_mut().insert(REQUEST_ID, id.0.clone());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    super::metrics::record_request(method.as_str(), route, status, elapsed.as_secs_f64());
    let bytes = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    let trace_id = bus::trace::trace_id_of(&span);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    span.in_scope(|| {
        tracing::info!(
            target: "access",
            method = %method,
            route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            bytes,
            request_id = id.0.to_str().unwrap_or_default(),
            client = %client,
            trace_id,
        );
    });
    response
}

/// The span a traced request runs in (named and described as OpenTelemetry's conventions for
/// HTTP servers say), a child of the caller's span when it sent a W3C `traceparent`.
fn request_span(request: &Request, route: &str, id: &RequestId) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = format_args!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id = id.0.to_str().unwrap_or_default(),
    );
    let sent: bus::Headers = bus::trace::CONTEXT_HEADERS
        .iter()
        .filter_map(|&name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    bus::trace::continue_in(&span, &sent);
    span
}
