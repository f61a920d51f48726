//! Which log filter applies, and setting up the subscriber: `--log-level` (or
//! `MICROCOMMERCE_LOG`) first, then `RUST_LOG`, then the command's default. A filter that does
//! not parse is an error, never quietly replaced.

use std::ops::Not;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// Level names a bare `--log-level` directive may use.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `--log-level` value: every comma-separated directive is a level or
/// `target=level` (a bare word would otherwise silently mean "that target, everything").
pub fn parse_log_level(value: &str) -> Result<String, String> {
    for directive in value.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` is neither a level ({}) nor `target=level`",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

/// The filter to log with: the option if given, else `RUST_LOG` if set, else `default`.
pub fn choose_filter(
    option: Option<&str>,
    rust_log: Option<&str>,
    default: &str,
) -> Result<EnvFilter, String> {
    match (option, rust_log) {
        (Some(option), _) => EnvFilter::try_new(option).map_err(|e| e.to_string()),
        (None, Some(rust_log)) if !rust_log.trim().is_empty() => EnvFilter::try_new(rust_log)
            .map_err(|error| format!("RUST_LOG={rust_log:?} does not parse: {error}")),
        _ => Ok(EnvFilter::new(default)),
    }
}

/// Logs to standard error with `filter`, as text or JSON lines; with `traces`, also sends
/// every span at info or above to the tracer (whatever the log filter), and JSON lines written
/// inside a traced span carry its `trace_id` and `span_id`.
pub fn init(filter: EnvFilter, json: bool, traces: Option<&SdkTracerProvider>) {
    let text = json.not().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter.clone())
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds(tracing_subscriber::fmt::format().json()))
            .with_writer(std::io::stderr)
            .with_filter(filter)
    });
    let otel = traces.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("microcommerce"))
            .with_filter(LevelFilter::INFO)
    });
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(text)
            .with(json)
            .with(otel),
    );
    let _ = DISPATCH.set(dispatch.clone());
    let _ = tracing::dispatcher::set_global_default(dispatch);
}

/// The process's subscriber, for the JSON lines to find a span's trace ids by (the formatter
/// runs inside the subscriber, where the current dispatcher cannot be asked).
static DISPATCH: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();

/// A JSON line formatter that puts the ids of the innermost traced span around the event first
/// on the line: `{"trace_id":…,"span_id":…, …}`.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx
            .event_scope()
            .and_then(|mut scope| scope.find_map(|span| trace_ids(&span.id())));
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

/// The trace and span ids of span `id`, when the tracer traces it.
fn trace_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    let context = tracing_opentelemetry::get_otel_context(id, DISPATCH.get()?)?;
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_is_levels_or_target_level_pairs() {
        for good in [
            "info",
            "DEBUG",
            "warn,bus=debug",
            "microcommerce=debug,bus=info",
        ] {
            assert_eq!(parse_log_level(good).as_deref(), Ok(good));
        }
        for bad in ["verbose", "info,loud", "bus=loud"] {
            assert!(parse_log_level(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_option_wins_then_rust_log_then_the_default() {
        let shown = |f: Result<EnvFilter, String>| f.unwrap().to_string();
        assert_eq!(
            shown(choose_filter(Some("debug"), Some("warn"), "info")),
            "debug"
        );
        assert_eq!(
            shown(choose_filter(None, Some("bus=trace"), "info")),
            "bus=trace"
        );
        assert_eq!(shown(choose_filter(None, Some(" "), "info")), "info");
        assert_eq!(shown(choose_filter(None, None, "warn")), "warn");
        assert!(choose_filter(None, Some("bus=loud"), "info").is_err());
    }
}
