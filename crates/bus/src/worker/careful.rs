//! The careful pass: a batch whose fast pass failed runs again, each message in a savepoint of
//! its own, so that only the failing message is retried or dead-lettered.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tracing::Instrument;

use super::batch::Failure;
use super::{Outcome, Tally};
use super::{message_span, panic_text};
use crate::queue::{self, Claimed};
use crate::{Bus, ConsumeError, Tx};
use storage::Timestamp;

impl Bus {
    /// The batch again, each message in its own savepoint, so that failures are recorded one
    /// by one; the message that failed the fast pass has its failure recorded as it was.
    pub(super) async fn careful_pass(
        &self,
        failure: Failure,
        now: Timestamp,
    ) -> Result<Tally, sqlx::Error> {
        let mut tx = self.begin().await?;
        queue::limit_lock_waits(&mut tx).await?;
        let claimed = queue::claim(&mut tx, now, self.inner.config.batch_size).await?;
        let mut tally = Tally::default();
        let mut failure = Some(failure);
        for message in &claimed {
            let span = message_span(message);
            let outcome = match failure.take_if(|f| f.row_id == Some(message.row_id)) {
                Some(Failure {
                    error: Some(error), ..
                }) => {
                    self.record_failure(&mut tx, message, &error, now)
                        .instrument(span)
                        .await?
                }
                _ => {
                    self.process_one(&mut tx, message, now)
                        .instrument(span)
                        .await?
                }
            };
            tally.add(&message.consumer, outcome);
        }
        tx.commit().await?;
        Ok(tally)
    }

    /// Runs one consumer inside a savepoint: its effects and the completion of the message
    /// commit together; a failure undoes its effects and records the attempt instead.
    async fn process_one(
        &self,
        tx: &mut Tx<'_>,
        message: &Claimed,
        now: Timestamp,
    ) -> Result<Outcome, sqlx::Error> {
        let Some(consumer) = self.inner.consumers.get(&message.consumer) else {
            let error = format!("no consumer named {:?} is registered", message.consumer);
            queue::dead_letter(tx, message, message.envelope.attempts, &error, now).await?;
            return Ok(Outcome::DeadLettered);
        };
        let envelope = &message.envelope;
        let mut savepoint = tx.consuming(envelope.message_id).await?;
        if !queue::remember_in_inbox(&mut savepoint, &message.consumer, envelope.message_id, now)
            .await?
        {
            queue::delete_queued(&mut savepoint, message.row_id).await?;
            savepoint.commit().await?;
            tracing::info!("skipped a duplicate delivery");
            return Ok(Outcome::Duplicate);
        }
        let result = AssertUnwindSafe(consumer.consume(envelope, &mut savepoint))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))));
        match result {
            Ok(()) => {
                queue::delete_queued(&mut savepoint, message.row_id).await?;
                savepoint.commit().await?;
                tracing::debug!("message completed");
                Ok(Outcome::Completed)
            }
            Err(error) if error.is_contention() => {
                savepoint.rollback().await?;
                tracing::debug!(%error, "message lost a lock race; it stays queued");
                Ok(Outcome::Contended)
            }
            Err(error) => {
                savepoint.rollback().await?;
                self.record_failure(tx, message, &error, now).await
            }
        }
    }

    /// Schedules a failed message's retry with backoff, or dead-letters it when the error is
    /// permanent or the retry policy allows no further attempt.
    async fn record_failure(
        &self,
        tx: &mut Tx<'_>,
        message: &Claimed,
        error: &ConsumeError,
        now: Timestamp,
    ) -> Result<Outcome, sqlx::Error> {
        let attempts = message.envelope.attempts + 1;
        let text = error_chain(error);
        let retry = &self.inner.config.retry;
        if error.is_permanent() || !retry.allows_another(attempts) {
            tracing::error!(attempts, error = %text, "message dead-lettered");
            queue::dead_letter(tx, message, attempts, &text, now).await?;
            return Ok(Outcome::DeadLettered);
        }
        let delay = retry.delay_after(attempts);
        tracing::warn!(attempts, retry_in_ms = delay.as_millis() as u64, error = %text,
            "message failed; will retry");
        queue::schedule_retry(tx, message.row_id, attempts, now.plus(delay), &text).await?;
        Ok(Outcome::Retried)
    }
}

/// The error and its causes, as one line for the queue and the dead letters.
fn error_chain(error: &ConsumeError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error).and_then(std::error::Error::source);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
