//! What the bus records through the `metrics` facade, described once so that a scrape says what
//! each metric means. Outcomes are counted only for committed batches.

/// Describes the bus's metrics to the installed recorder; call once, after installing it.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "bus_messages_total",
        "Messages handled in committed batches, by consumer and outcome (completed, duplicate, retried, dead_lettered)"
    );
    metrics::describe_histogram!(
        "bus_handling_seconds",
        metrics::Unit::Seconds,
        "Time one consumer spent on its messages of one batch"
    );
    metrics::describe_histogram!(
        "bus_batch_messages",
        metrics::Unit::Count,
        "Messages handled per committed batch"
    );
    metrics::describe_histogram!(
        "bus_batch_commit_seconds",
        metrics::Unit::Seconds,
        "Time a worker's batch transaction took to commit"
    );
    metrics::describe_counter!(
        "bus_handed_over_total",
        "Messages handed over to another consumer inside the batch that sent them, never queued"
    );
}
