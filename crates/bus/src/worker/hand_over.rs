//! Hand-over: the messages a transaction sends to consumers of this bus, due at once, are
//! handled in that same transaction instead of being queued (see
//! [`crate::BusConfig::hand_over`]), in a worker batch.

use super::Tally;
use super::batch::{Failure, Ran};
use crate::queue::QueueRow;
use crate::queue::{self, Claimed};
use crate::{Bus, Envelope, Tx};
use storage::Timestamp;

/// Rounds of hand-over per transaction: a longer chain continues through the queue.
const HAND_OVER_ROUNDS: usize = 8;

impl Bus {
    /// Hand-over in a worker batch, after its messages ran: each round is a hop of a chain of
    /// messages that would otherwise wait for a batch and a commit of its own. Handed-over
    /// messages are never queued or remembered in the inbox: nothing can deliver them twice. A
    /// failure sends the batch to the careful pass, which hands nothing over.
    pub(super) async fn hand_over(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<Ran, sqlx::Error> {
        if !self.inner.config.hand_over {
            return Ok(Ran::AllDone);
        }
        let first = self.take_for_hand_over(tx, now, 0).await?;
        let ran = self.hand_over_rounds(tx, now, 0, first, tally).await?;
        if let Ran::Failed(failure) = &ran {
            tracing::debug!(error = ?failure.error.as_ref().map(ToString::to_string),
                "a handed-over message failed; the batch runs again through the queue");
        }
        Ok(ran)
    }

    /// Takes out of `tx`'s log, from entry `from` on, the messages due by `now` addressed to a
    /// consumer of this bus, unless [`queue::keys_to_queue`] says their correlation must go
    /// through the queue (to keep its order, or because another transaction holds it). On
    /// PostgreSQL `tx` then holds the correlation locks of the messages taken.
    async fn take_for_hand_over(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        from: usize,
    ) -> Result<Vec<QueueRow>, sqlx::Error> {
        let local = |consumer: &str| self.inner.consumers.contains_key(consumer);
        let keys = tx.outbox().due_keys(now, from, local);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let waiting = queue::keys_to_queue(tx, &keys).await?;
        Ok(tx.outbox().take_due(now, from, |consumer, correlation_id| {
            local(consumer)
                && !waiting
                    .iter()
                    .any(|(c, id)| c == consumer && *id == correlation_id)
        }))
    }

    /// Handles `rows` in `tx`, then what they send on, round after round (at most
    /// [`HAND_OVER_ROUNDS`]), taking only what is logged from entry `from` on; stops at the
    /// first failure and returns it.
    async fn hand_over_rounds(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        from: usize,
        mut rows: Vec<QueueRow>,
        tally: &mut Tally,
    ) -> Result<Ran, sqlx::Error> {
        for round in 0..HAND_OVER_ROUNDS {
            if round > 0 {
                rows = self.take_for_hand_over(tx, now, from).await?;
            }
            if rows.is_empty() {
                break;
            }
            let messages = std::mem::take(&mut rows)
                .into_iter()
                .map(handed_over)
                .collect::<Result<Vec<_>, _>>()?;
            if let Err(failure) = self.run_consumers(tx, &messages, tally).await {
                // Not a queue row: the careful pass finds nothing of it to record.
                return Ok(Ran::Failed(Failure {
                    row_id: None,
                    ..failure
                }));
            }
            tally.handed_over += messages.len() as u64;
        }
        Ok(Ran::AllDone)
    }
}

/// A message taken from the transaction's log, as a worker handles it (first delivery).
fn handed_over(row: QueueRow) -> Result<Claimed, sqlx::Error> {
    Ok(Claimed {
        // Not a queue row: it is never completed or deleted.
        row_id: 0,
        envelope: Envelope {
            message_id: row.message_id,
            message_type: row.message_type.to_string(),
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            headers: serde_json::from_str(&row.headers)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            payload: row.payload.to_string(),
            created_at: row.created_at,
            available_at: row.available_at,
            attempts: 0,
        },
        consumer: row.consumer,
        already_done: false,
    })
}
