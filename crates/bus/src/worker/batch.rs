//! A batch and its fast pass: every consumer runs straight in the batch transaction, which two
//! statements complete. If one fails, the batch rolls back and the careful pass takes over.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tracing::Instrument;

use super::{Outcome, Tally, message_span, panic_text};
use crate::queue::{self, Claimed};
use crate::{Bus, ConsumeError, Envelope, Tx};
use storage::Timestamp;

/// How the fast pass over a batch ended.
enum BatchEnd {
    /// Every message was handled and the batch committed.
    Committed(Tally),
    /// The batch lost a lock race and rolled back; its messages stay queued as they were.
    Contended,
    /// A consumer failed and the batch rolled back: the careful pass records the failure.
    Failed(Failure),
}

/// How running consumers in a transaction ended, before the transaction does.
pub(super) enum Ran {
    /// Every consumer succeeded: the transaction may commit.
    AllDone,
    /// A consumer failed: what ran must be rolled back.
    Failed(Failure),
}

/// A consumer failure in the fast pass.
pub(super) struct Failure {
    /// The message that failed; `None` when a consumer failed to prepare for the batch (the
    /// careful pass then handles every message as usual).
    pub row_id: Option<i64>,
    /// The consumer's error; `None` when no consumer is registered under the row's name (the
    /// careful pass dead-letters it).
    pub error: Option<ConsumeError>,
}

impl Failure {
    /// The message's consumer is not registered.
    fn unregistered(message: &Claimed) -> Self {
        Self {
            row_id: Some(message.row_id),
            error: None,
        }
    }

    /// The consumer lost a lock race: the whole batch steps back.
    fn is_contention(&self) -> bool {
        self.error.as_ref().is_some_and(ConsumeError::is_contention)
    }
}

impl Bus {
    /// Claims up to a batch of due messages and handles them in one transaction: the fast
    /// pass, or, if a consumer fails, the careful pass. Returns how many it claimed.
    pub(super) async fn process_batch(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.begin().await?;
        let now = tx.limit_lock_waits_and_read_clock().await?;
        let claimed = queue::claim(&mut tx, now, self.inner.config.batch_size).await?;
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let tally = match self.fast_pass(tx, &claimed, now).await? {
            BatchEnd::Committed(tally) => tally,
            BatchEnd::Contended => {
                self.step_back().await;
                return Ok(0);
            }
            BatchEnd::Failed(failure) => self.careful_pass(failure, now).await?,
        };
        tally.add_to(&self.inner.counters);
        Ok(claimed.len())
    }

    /// Runs the batch in `tx` and commits it, or rolls it back at the first failure.
    async fn fast_pass(
        &self,
        mut tx: Tx<'_>,
        claimed: &[Claimed],
        now: Timestamp,
    ) -> Result<BatchEnd, sqlx::Error> {
        let mut tally = Tally::default();
        match self.run_batch(&mut tx, claimed, now, &mut tally).await? {
            Ran::AllDone => {
                let committing = Instant::now();
                tx.commit().await?;
                metrics::histogram!("bus_batch_commit_seconds")
                    .record(committing.elapsed().as_secs_f64());
                Ok(BatchEnd::Committed(tally))
            }
            Ran::Failed(failure) => {
                tx.rollback().await?;
                if failure.is_contention() {
                    Ok(BatchEnd::Contended)
                } else {
                    Ok(BatchEnd::Failed(failure))
                }
            }
        }
    }

    /// Every consumer of the batch in the one transaction, then whatever they handed over;
    /// stops at the first failure and returns it, so that the careful pass records it without
    /// running that consumer again.
    async fn run_batch(
        &self,
        tx: &mut Tx<'_>,
        claimed: &[Claimed],
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<Ran, sqlx::Error> {
        if let Err(failure) = self.run_consumers(tx, claimed, tally).await {
            return Ok(Ran::Failed(failure));
        }
        queue::complete_all(tx, claimed, now).await?;
        match self.hand_over(tx, now, tally).await? {
            Ran::AllDone => Ok(self.finish_consumers(tx).await),
            failed => Ok(failed),
        }
    }

    /// Lets every consumer write what it kept back for the end of the batch
    /// ([`crate::Consumer::finish_batch`]), just before the commit.
    async fn finish_consumers(&self, tx: &mut Tx<'_>) -> Ran {
        for consumer in self.inner.consumers.values() {
            let finished = AssertUnwindSafe(consumer.finish_batch(tx))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))));
            if let Err(error) = finished {
                return Ran::Failed(Failure {
                    row_id: None,
                    error: Some(error),
                });
            }
        }
        Ran::AllDone
    }

    /// After a lost lock race: another transaction holds rows this batch needs, perhaps
    /// waiting for ours, so a short random pause breaks the tie.
    async fn step_back(&self) {
        self.inner
            .counters
            .contended
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("batch lost a lock race; it runs again");
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=10))).await;
    }

    /// Lets the consumers read ahead, then runs the messages' consumers in `tx`: level by
    /// level (see [`levels`]), and within a level each consumer once for all its messages
    /// where it can ([`crate::Consumer::consume_all`]), else message by message.
    pub(super) async fn run_consumers(
        &self,
        tx: &mut Tx<'_>,
        messages: &[Claimed],
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        if let Err(error) = self.prepare_consumers(tx, messages).await {
            return Err(Failure {
                row_id: None,
                error: Some(error),
            });
        }
        for level in levels(messages) {
            for (_, group) in by_consumer(&level) {
                self.run_group(tx, &group, tally).await?;
            }
        }
        Ok(())
    }

    /// One consumer's messages of one level: together if the consumer can, else one by one.
    async fn run_group(
        &self,
        tx: &mut Tx<'_>,
        group: &[&Claimed],
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let fresh: Vec<&Claimed> = group.iter().copied().filter(|m| !m.already_done).collect();
        for duplicate in group.iter().filter(|m| m.already_done) {
            tracing::info!(message_id = %duplicate.envelope.message_id, "skipped a duplicate delivery");
            tally.add(&duplicate.consumer, Outcome::Duplicate);
        }
        let Some(first) = fresh.first() else {
            return Ok(());
        };
        let started = Instant::now();
        let Some(consumer) = self.inner.consumers.get(&first.consumer) else {
            return Err(Failure::unregistered(first));
        };
        let (left, mut spans): (Vec<&Claimed>, _) = if fresh.len() > 1 {
            let (left, spans) = self.consume_together(consumer.as_ref(), tx, &fresh).await?;
            let left = left
                .into_iter()
                .filter_map(|index| fresh.get(index).copied())
                .collect();
            (left, spans)
        } else {
            (fresh.clone(), Vec::new())
        };
        for _ in left.len()..fresh.len() {
            tally.add(&first.consumer, Outcome::Completed);
        }
        for message in left {
            // A message left alone goes on in the span it already has, if it has one.
            let id = message.envelope.message_id;
            let span = match spans.iter().position(|(of, _)| *of == id) {
                Some(at) => spans.swap_remove(at).1,
                None => message_span(message),
            };
            self.run_one(consumer.as_ref(), tx, message, span).await?;
            tally.add(&first.consumer, Outcome::Completed);
        }
        tally.timed(&first.consumer, started.elapsed());
        Ok(())
    }

    /// Offers `messages` to the consumer's [`crate::Consumer::consume_all`]; returns the
    /// positions of those it left for one-by-one handling, and the spans of the traced
    /// messages (which end when dropped). A failure names no message: the careful pass runs
    /// each alone.
    async fn consume_together(
        &self,
        consumer: &dyn crate::Consumer,
        tx: &mut Tx<'_>,
        messages: &[&Claimed],
    ) -> Result<(Vec<usize>, Vec<(crate::MessageId, tracing::Span)>), Failure> {
        let envelopes: Vec<&Envelope> = messages.iter().map(|m| &m.envelope).collect();
        // At debug: a span of the set would be a trace of its own, one per batch.
        let span = tracing::debug_span!(
            "messages",
            consumer = consumer.name(),
            count = messages.len()
        );
        // Each traced message still gets a span of its own, lasting as long as the set's
        // handling, and what is sent in answer to it continues its trace.
        tx.keep_message_spans(
            messages
                .iter()
                .filter(|m| crate::trace::is_traced(&m.envelope.headers))
                .map(|m| (m.envelope.message_id, message_span(m)))
                .collect(),
        );
        let handled = AssertUnwindSafe(consumer.consume_all(&envelopes, tx))
            .catch_unwind()
            .instrument(span)
            .await;
        let spans = tx.take_message_spans();
        let left = handled
            .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))))
            .map_err(|error| Failure {
                row_id: None,
                error: Some(error),
            })?;
        Ok((left, spans))
    }

    /// One message's consumer, in `span`, its publications caused by the message.
    async fn run_one(
        &self,
        consumer: &dyn crate::Consumer,
        tx: &mut Tx<'_>,
        message: &Claimed,
        span: tracing::Span,
    ) -> Result<(), Failure> {
        tx.set_causation(Some(message.envelope.message_id));
        let result = AssertUnwindSafe(consumer.consume(&message.envelope, tx))
            .catch_unwind()
            .instrument(span)
            .await
            .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))));
        tx.set_causation(None);
        result.map_err(|error| Failure {
            row_id: Some(message.row_id),
            error: Some(error),
        })
    }

    /// Lets each consumer of the batch read ahead for its messages ([`crate::Consumer::prepare`]).
    async fn prepare_consumers(
        &self,
        tx: &mut Tx<'_>,
        claimed: &[Claimed],
    ) -> Result<(), ConsumeError> {
        let fresh: Vec<&Claimed> = claimed.iter().filter(|m| !m.already_done).collect();
        for (name, messages) in by_consumer(&fresh) {
            let Some(consumer) = self.inner.consumers.get(name) else {
                continue;
            };
            let envelopes: Vec<&Envelope> = messages.iter().map(|m| &m.envelope).collect();
            let prepared = AssertUnwindSafe(consumer.prepare(&envelopes, tx))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))));
            if let Err(error) = prepared {
                if !error.is_contention() {
                    tracing::warn!(consumer = name, %error,
                        "reading ahead for a batch failed; its messages are handled one by one");
                }
                return Err(error);
            }
        }
        Ok(())
    }
}

/// `messages` by consumer, consumers in order of first appearance, each's in claim order.
fn by_consumer<'a>(messages: &[&'a Claimed]) -> Vec<(&'a str, Vec<&'a Claimed>)> {
    let mut by_consumer: Vec<(&str, Vec<&Claimed>)> = Vec::new();
    for &message in messages {
        match by_consumer
            .iter_mut()
            .find(|(name, _)| *name == message.consumer)
        {
            Some((_, group)) => group.push(message),
            None => by_consumer.push((&message.consumer, vec![message])),
        }
    }
    by_consumer
}

/// The batch in levels: a message's level is the number of messages of its correlation id
/// before it, so each level holds at most one message per correlation and every correlation's
/// messages keep their order from level to level. Within a level the consumers may run in any
/// order, and each on all its messages at once: they concern different orders.
fn levels(messages: &[Claimed]) -> Vec<Vec<&Claimed>> {
    let mut seen: std::collections::HashMap<uuid::Uuid, usize> = std::collections::HashMap::new();
    let mut levels: Vec<Vec<&Claimed>> = Vec::new();
    for message in messages {
        let level = seen.entry(message.envelope.correlation_id).or_insert(0);
        if *level == levels.len() {
            levels.push(Vec::new());
        }
        levels[*level].push(message);
        *level += 1;
    }
    levels
}
