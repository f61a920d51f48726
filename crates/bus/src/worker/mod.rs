//! Workers: claim due messages, run their consumers, and complete them in one transaction.
//!
//! This module is the loop; a batch and its fast pass are in [`batch`], the careful pass in
//! [`careful`], hand-over in [`hand_over`], and the statements in [`crate::queue`].

mod batch;
mod careful;
mod hand_over;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Bus;
use crate::bus::Counters;
use crate::queue::{self, Claimed};

/// The running worker tasks; dropping it leaves them running, [`Workers::shutdown`] stops them.
pub struct Workers {
    /// Tells every task to stop.
    stop: watch::Sender<bool>,
    /// The worker tasks and, on PostgreSQL, the listener.
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Stops claiming, lets in-flight batches commit, and waits for every worker to exit.
    /// Messages not yet claimed stay queued for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// True while at least one worker task is alive.
    pub fn is_running(&self) -> bool {
        self.tasks.iter().any(|task| !task.is_finished())
    }
}

/// What happened to one claimed message inside a batch.
enum Outcome {
    /// Its consumer succeeded.
    Completed,
    /// Its consumer had already completed it.
    Duplicate,
    /// It failed and will be tried again.
    Retried,
    /// It failed for good.
    DeadLettered,
    /// Lost a lock race: rolled back and left queued as it was, for the next round.
    Contended,
}

/// Tallies of one batch, added to the bus counters and the metrics only once the batch has
/// committed.
#[derive(Default)]
struct Tally {
    /// Of the completed messages, those handed over in the batch (never queued).
    handed_over: u64,
    /// Outcomes by consumer, and how long each consumer took: few consumers share a batch, so
    /// a list is enough.
    by_consumer: Vec<(String, Share)>,
}

/// One consumer's share of a batch.
#[derive(Default)]
struct Share {
    outcomes: Outcomes,
    /// Time spent in the consumer's handling in this batch.
    handling: Duration,
}

/// Messages by outcome.
#[derive(Default, Clone, Copy)]
struct Outcomes {
    /// Its consumer succeeded.
    completed: u64,
    /// Duplicate deliveries skipped.
    duplicates: u64,
    /// Failures scheduled for retry.
    retried: u64,
    /// Moved to the dead letters.
    dead_lettered: u64,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::Contended => {}
        }
    }

    fn plus(self, other: Outcomes) -> Outcomes {
        Outcomes {
            completed: self.completed + other.completed,
            duplicates: self.duplicates + other.duplicates,
            retried: self.retried + other.retried,
            dead_lettered: self.dead_lettered + other.dead_lettered,
        }
    }

    /// The outcomes by their metric label.
    fn labelled(self) -> [(&'static str, u64); 4] {
        [
            ("completed", self.completed),
            ("duplicate", self.duplicates),
            ("retried", self.retried),
            ("dead_lettered", self.dead_lettered),
        ]
    }
}

impl Tally {
    /// Counts one message's outcome for `consumer`.
    fn add(&mut self, consumer: &str, outcome: Outcome) {
        self.of(consumer).outcomes.add(outcome);
    }

    /// Adds `spent` to the time `consumer` took in this batch.
    fn timed(&mut self, consumer: &str, spent: Duration) {
        self.of(consumer).handling += spent;
    }

    fn of(&mut self, consumer: &str) -> &mut Share {
        let at = match self
            .by_consumer
            .iter()
            .position(|(name, _)| name == consumer)
        {
            Some(at) => at,
            None => {
                self.by_consumer
                    .push((consumer.to_owned(), Share::default()));
                self.by_consumer.len() - 1
            }
        };
        &mut self.by_consumer[at].1
    }

    /// Adds a committed batch to the bus counters and the metrics.
    fn add_to(&self, counters: &Counters) {
        let total = self
            .by_consumer
            .iter()
            .fold(Outcomes::default(), |total, (_, share)| {
                total.plus(share.outcomes)
            });
        counters
            .completed
            .fetch_add(total.completed, Ordering::Relaxed);
        counters
            .duplicates
            .fetch_add(total.duplicates, Ordering::Relaxed);
        counters.retried.fetch_add(total.retried, Ordering::Relaxed);
        counters
            .dead_lettered
            .fetch_add(total.dead_lettered, Ordering::Relaxed);
        counters
            .handed_over
            .fetch_add(self.handed_over, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        self.record_metrics(total);
    }

    /// The batch in the metrics: messages by consumer and outcome, handling time by consumer,
    /// the batch's size and what was handed over.
    fn record_metrics(&self, total: Outcomes) {
        let handled: u64 = total.labelled().iter().map(|(_, count)| count).sum();
        metrics::histogram!("bus_batch_messages").record(handled as f64);
        metrics::counter!("bus_handed_over_total").increment(self.handed_over);
        for (consumer, share) in &self.by_consumer {
            for (outcome, count) in share.outcomes.labelled() {
                if count > 0 {
                    metrics::counter!("bus_messages_total", "consumer" => consumer.clone(), "outcome" => outcome)
                        .increment(count);
                }
            }
            if !share.handling.is_zero() {
                metrics::histogram!("bus_handling_seconds", "consumer" => consumer.clone())
                    .record(share.handling.as_secs_f64());
            }
        }
    }
}

/// Shortest sleep of an idle worker that found nothing it could claim.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(5);
/// How often the first worker forgets inbox entries older than the retention.
const INBOX_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Inbox entries forgotten per transaction, so that pruning never holds the writer long.
const INBOX_PRUNE_CHUNK: i64 = 10_000;

impl Bus {
    /// Starts the configured number of worker tasks on the writer lane, a thread of their own
    /// (on SQLite bound to one CPU, see [`DbOptions::pin_writer`](storage::DbOptions)).
    pub fn start(&self) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = (0..self.inner.config.workers.max(1))
            .map(|index| {
                let worker = self.clone().work(index, stopped.clone());
                self.inner.db.spawn_writing(worker)
            })
            .collect();
        // Other instances commit to a shared database: their news arrives by listening.
        if self.inner.db.is_shared() {
            tasks.push(tokio::spawn(self.clone().listen(stopped)));
        }
        Workers { stop, tasks }
    }

    /// Processes batches until no message is due; returns how many messages were handled.
    /// Tests and tools use it to drive the bus step by step instead of starting workers.
    pub async fn run_pending(&self) -> Result<usize, sqlx::Error> {
        let mut total = 0;
        loop {
            let handled = self.process_batch().await?;
            if handled == 0 {
                return Ok(total);
            }
            total += handled;
        }
    }

    /// Processes one batch (at most `batch_size` due messages, and what they hand over);
    /// returns how many messages it handled. Tests use it to stop between two batches, where
    /// a worker may crash or a request may come in.
    pub async fn run_one_batch(&self) -> Result<usize, sqlx::Error> {
        self.process_batch().await
    }

    /// One worker: batch after batch while messages are due, then sleep until woken, the next
    /// scheduled message or `stop`; after a failed batch, back off exponentially.
    async fn work(self, index: usize, mut stop: watch::Receiver<bool>) {
        tracing::debug!(worker = index, "bus worker started");
        let mut failures = 0u32;
        let mut last_prune = Instant::now();
        while !*stop.borrow() {
            let woken = self.listen_for_commits();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let wait = match self.process_batch().await {
                Ok(0) => {
                    failures = 0;
                    self.idle_wait().await
                }
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(error) => {
                    failures += 1;
                    tracing::error!(worker = index, %error, "bus batch failed; retrying");
                    Duration::from_millis(50u64 << failures.min(7))
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            if index == 0 && last_prune.elapsed() >= INBOX_PRUNE_EVERY {
                last_prune = Instant::now();
                if let Err(error) = self.prune_inbox().await {
                    tracing::warn!(%error, "pruning the inbox failed");
                }
            }
        }
        tracing::debug!(worker = index, "bus worker stopped");
    }

    /// Before a look at the queue: the wake-up of the commits from now on. A wake-up left over
    /// from before (a commit while this worker was busy) is dropped: this look sees what that
    /// commit wrote, and waking on it afterwards only cost an empty claim each time the worker
    /// ran out of work.
    fn listen_for_commits(&self) -> tokio::sync::futures::Notified<'_> {
        // Takes the stored wake-up, if any; a wake-up meant for another worker that lands
        // here in between is passed on by tokio when this one is dropped.
        let _ = self.inner.wake.notified().now_or_never();
        self.inner.wake.notified()
    }

    /// How long an idle worker may sleep: until the next scheduled message, at most the poll
    /// interval (which catches messages committed by other processes).
    async fn idle_wait(&self) -> Duration {
        let poll = self.inner.config.poll_interval;
        match queue::next_available_in(&self.inner.db).await {
            // A message that is due but was not claimable (another instance holds it) must not
            // make an idle worker spin: look again after a short pause at the earliest.
            Ok(Some(micros)) => Duration::from_micros(u64::try_from(micros).unwrap_or(0))
                .clamp(MIN_IDLE_WAIT, poll.max(MIN_IDLE_WAIT)),
            _ => poll,
        }
    }

    /// Forgets the inbox entries older than the retention, a chunk per transaction.
    async fn prune_inbox(&self) -> Result<(), sqlx::Error> {
        let cutoff = self.inner.db.now().minus(self.inner.config.inbox_retention);
        loop {
            let mut tx = self.begin().await?;
            let deleted = queue::prune_inbox(&mut tx, cutoff, INBOX_PRUNE_CHUNK).await?;
            tx.commit().await?;
            if deleted < INBOX_PRUNE_CHUNK as u64 {
                return Ok(());
            }
        }
    }
}

/// The span every log line about one message runs in.
fn message_span(message: &Claimed) -> tracing::Span {
    let span = tracing::info_span!("message",
        otel.name = tracing::field::Empty,
        order_id = %message.envelope.correlation_id,
        message_id = %message.envelope.message_id,
        message_type = %message.envelope.message_type,
        consumer = %message.consumer);
    if crate::trace::is_traced(&message.envelope.headers) {
        // Named for the trace's reader ("consumer MessageType"); untraced, it costs nothing.
        let name = format!("{} {}", message.consumer, message.envelope.message_type);
        span.record("otel.name", name.as_str());
        crate::trace::continue_in(&span, &message.envelope.headers);
    }
    span
}

/// A consumer's panic as the text of a transient error.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    format!("consumer panicked: {detail}")
}
