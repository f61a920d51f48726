//! Metrics in Prometheus' text format, what operators already scrape: `GET /metrics` behind the
//! admin token (and, with `--metrics-addr`, on a listener of its own). Counters and histograms
//! are recorded where things happen, through the `metrics` facade (the bus records its own);
//! what is a state rather than an event (the queue, checkouts by state, the
//! pools, the process) is read when scraped. The names and what each means are in
//! `docs/operations.md`.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Admin;
use crate::Error;
use crate::error::Problem;
use crate::state::AppState;

/// Upper bounds of the latency histograms, in seconds: from a fast read to a long poll.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the batch-size histogram, in messages.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's metrics recorder, once; `None` when another recorder is installed
/// already (a host program's own). Every app of the process shares it.
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("_messages".into()),
                        BATCH_BUCKETS,
                    )
                })
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            bus::describe_metrics();
            process_collector();
            Some(recorder)
        })
        .as_ref()
}

/// Says what each of the service's own metrics means, for the scrape's `# HELP` lines.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its answer, by method and route template"
    );
    describe_counter!(
        "http_requests_refused_total",
        "Requests refused by a limit, by reason (rate-limited, too-many-waiting, timeout, too-many-unpaid-checkouts)"
    );
    describe_gauge!(
        "http_requests_held_open",
        "Requests held open now: long polls, Prefer: wait and event streams"
    );
    describe_counter!(
        "storage_errors_total",
        "Database errors that reached an answer, by kind (busy, lost_race, connection_lost, ...)"
    );
    describe_gauge!(
        "storage_pool_connections",
        "Reader connections open now (SQLite: its in-place readers; PostgreSQL: the shared pool)"
    );
    describe_gauge!(
        "storage_pool_connections_idle",
        "Of those, idle now (on SQLite: not running a read at this instant)"
    );
    describe_gauge!(
        "sqlite_writer_queue",
        "Requests' write transactions waiting for SQLite's single writer now (0 on PostgreSQL)"
    );
    describe_gauge!(
        "bus_queue_due_messages",
        "Deliveries due now: waiting for a worker or retried"
    );
    describe_gauge!(
        "bus_queue_scheduled_messages",
        "Deliveries scheduled for later: timeouts, retries backing off"
    );
    describe_gauge!(
        "bus_queue_oldest_due_age_seconds",
        Unit::Seconds,
        "How long the oldest due delivery has waited: how far the workers are behind"
    );
    describe_gauge!(
        "bus_dead_letters",
        "Messages that failed for good and wait for an operator"
    );
    describe_gauge!(
        "checkouts",
        "Checkouts in each state now (every instance reports the same: use max)"
    );
    describe_gauge!(
        "checkout_moves_last_hour",
        "Checkout transitions taken in the last hour, by from-state, event and to-state (every instance reports the same: use max)"
    );
}

/// Every few seconds, folds the histograms' recent samples into their buckets, until `stop`:
/// a recorder without a listener of its own keeps every sample until then, and nobody may
/// scrape for a long time.
pub async fn keep_up(mut stop: tokio::sync::watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let Some(recorder) = recorder() else { return };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => recorder.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// The installed recorder's handle, if metrics are on.
fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER.get().and_then(Option::as_ref)
}

/// `GET /metrics`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Every metric now, in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The metrics, in Prometheus' text format 0.0.4", body = String,
            content_type = "text/plain"),
        (status = 401, description = "Admin token or console session missing or wrong", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "Metrics are off (`--no-metrics`)", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn scrape(_: Admin, State(state): State<AppState>) -> Result<Response, Error> {
    render(&state).await
}

/// The text of a scrape: the states read now, then every metric.
pub async fn render(state: &AppState) -> Result<Response, Error> {
    let Some(recorder) = recorder().filter(|_| state.config.metrics) else {
        return Err(Error::NotFound("route"));
    };
    record_states(state).await;
    let body = recorder.render();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// What is a state rather than an event, read at scrape time.
async fn record_states(state: &AppState) {
    if let Ok(depth) = state.bus.queue_depth().await {
        metrics::gauge!("bus_queue_due_messages").set(depth.due as f64);
        metrics::gauge!("bus_queue_scheduled_messages").set(depth.scheduled as f64);
        let behind = depth.oldest_due_at.map_or(0.0, |due| {
            state.db.now().0.saturating_sub(due.0) as f64 / 1e6
        });
        metrics::gauge!("bus_queue_oldest_due_age_seconds").set(behind.max(0.0));
    }
    if let Ok(dead) = state.bus.dead_letter_count().await {
        metrics::gauge!("bus_dead_letters").set(dead as f64);
    }
    if let Ok(census) = crate::ordering::census(state, MOVES_WINDOW).await {
        for counted in census.states {
            metrics::gauge!("checkouts", "state" => counted.state).set(counted.count as f64);
        }
        for moved in census.moves {
            let from = moved.from.unwrap_or("(start)");
            metrics::gauge!("checkout_moves_last_hour", "from" => from, "event" => moved.event, "to" => moved.to)
                .set(moved.count as f64);
        }
    }
    let readers = state.db.reader();
    metrics::gauge!("sqlite_writer_queue").set(state.bus.writer_queue() as f64);
    metrics::gauge!("storage_pool_connections").set(f64::from(readers.size()));
    metrics::gauge!("storage_pool_connections_idle").set(readers.idle() as f64);
    process_collector().collect();
}

/// The window of the checkout moves counted at scrape time.
const MOVES_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// The usual process metrics (CPU seconds, resident memory, open files, threads), described once.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

/// Counts one answered request by method, route template and status, and its duration. The
/// template, never the path: one series per route, whatever ids are asked for.
pub fn record_request(method: &str, route: &str, status: u16, seconds: f64) {
    if recorder().is_none() {
        return;
    }
    let (method, route) = (method.to_owned(), route.to_owned());
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(seconds);
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
}
