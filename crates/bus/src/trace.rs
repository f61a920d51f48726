//! Trace context across messages: a message carries the W3C trace context of the span that
//! wrote it (headers `traceparent` and `tracestate`), and each consumer handles it in a span
//! whose parent that is. One business process (a checkout) is then one trace, from the request
//! that started it through every consumer, on every instance that shares the database.
//!
//! It costs a header lookup per message and a look at the current span per write unless an
//! OpenTelemetry layer is installed and a propagator set (the binary does both when it
//! exports traces): without them no message carries a trace context.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Headers;

/// The header that names a message's parent span (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// The W3C trace context of `span`, as the headers a message written inside it carries; empty
/// when nothing traces it.
pub fn context_of(span: &tracing::Span) -> Headers {
    let mut headers = Headers::new();
    if let Some(context) = traced(span) {
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut Carrier(&mut headers));
        });
    }
    headers
}

/// The id of the trace `span` belongs to (32 hex digits), when something traces it.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    traced(span).map(|context| context.span().span_context().trace_id().to_string())
}

/// The OpenTelemetry context of `span`, when something traces it.
fn traced(span: &tracing::Span) -> Option<opentelemetry::Context> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    context.span().span_context().is_valid().then_some(context)
}

/// The headers of the W3C trace context, to pick out of a request's.
pub const CONTEXT_HEADERS: [&str; 2] = [TRACEPARENT, "tracestate"];

/// True when `headers` carry a trace context, so that handling their message is worth a span
/// of its own even where a batch handles many at once.
pub fn is_traced(headers: &Headers) -> bool {
    headers.contains_key(TRACEPARENT)
}

/// Makes `span` a child of the span `headers` name, when they name one. Call it before the
/// span is first entered: a started span keeps its parent.
pub fn continue_in(span: &tracing::Span, headers: &Headers) {
    if !is_traced(headers) {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Reader(headers))
    });
    // Without an OpenTelemetry layer there is nothing to continue: not an error.
    let _ = span.set_parent(parent);
}

/// A span in the trace `headers` name (those of a scheduled message a request took back, such
/// as a checkout's payment timeout), linked to the current span (the request): what is sent
/// inside it joins the process's trace, and the request's trace points at it. A span that
/// does nothing when `headers` name no trace.
pub fn joining(headers: &Headers, name: &'static str) -> tracing::Span {
    if !is_traced(headers) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("joins", otel.name = name);
    continue_in(&span, headers);
    let current = tracing::Span::current().context();
    span.add_link(current.span().span_context().clone());
    span
}

/// Adds the trace context `trace` to `headers` unless they already name a parent (a message
/// moved on as it was, such as a parked event handed back, keeps its own).
pub(crate) fn add_to(headers: &Headers, trace: &Headers) -> Option<Headers> {
    if trace.is_empty() || is_traced(headers) {
        return None;
    }
    let mut carried = headers.clone();
    carried.extend(trace.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(carried)
}

/// Headers as the propagator writes them.
struct Carrier<'h>(&'h mut Headers);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Headers as the propagator reads them.
struct Reader<'h>(&'h Headers);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_that_names_its_parent_keeps_it() {
        let trace = Headers::from([(TRACEPARENT.to_owned(), "00-new".to_owned())]);
        let own = Headers::from([(TRACEPARENT.to_owned(), "00-own".to_owned())]);
        assert_eq!(add_to(&own, &trace), None);
        assert_eq!(add_to(&Headers::new(), &Headers::new()), None);
        let plain = Headers::from([("tenant".to_owned(), "a".to_owned())]);
        let carried = add_to(&plain, &trace).expect("a trace to add");
        assert_eq!(carried.get(TRACEPARENT).map(String::as_str), Some("00-new"));
        assert_eq!(carried.get("tenant").map(String::as_str), Some("a"));
    }

    #[test]
    fn nothing_is_carried_without_a_tracer() {
        let span = tracing::info_span!("untraced");
        assert!(context_of(&span).is_empty());
        assert!(!is_traced(&Headers::new()));
    }
}
