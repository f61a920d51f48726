//! How the bus's workers are tuned.

use std::time::Duration;

use crate::RetryPolicy;

/// Tuning of the workers; `BusConfig::default()` is what `microcommerce serve` uses.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Concurrent worker tasks. On SQLite the writer is single anyway, so one worker that
    /// batches beats several that queue for the lock.
    pub workers: usize,
    /// Messages claimed and completed per transaction: one commit (one fsync) for all of them.
    pub batch_size: usize,
    /// Backoff and attempt limit for failing messages.
    pub retry: RetryPolicy,
    /// Longest sleep without looking at the queue, for messages written by another process.
    pub poll_interval: Duration,
    /// How long completed message ids are remembered to drop duplicate deliveries.
    pub inbox_retention: Duration,
    /// A message that a worker's consumer sends to another consumer of this bus, due at once,
    /// is handled in the same batch transaction instead of being queued, unless something
    /// older waits for the same consumer and correlation id or (PostgreSQL) another
    /// transaction holds that correlation's lock (see `docs/architecture.md`, "Hand-over").
    /// Each hop of a chain of messages then costs no
    /// batch and commit of its own. Off, every message goes through the queue.
    pub hand_over: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            batch_size: 64,
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(2),
            inbox_retention: Duration::from_secs(24 * 3600),
            hand_over: true,
        }
    }
}
