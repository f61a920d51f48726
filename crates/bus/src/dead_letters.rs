//! Administration of messages that failed for good: look at them, send them back, or purge.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::queue::QueueRow;
use crate::{Bus, BusError, Envelope, Headers, MessageId};
use storage::Timestamp;

/// A message that exhausted its attempts or failed permanently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id of the dead letter itself (not of the message), for retry.
    pub id: i64,
    /// The message's original id, kept on retry.
    pub message_id: MessageId,
    /// The consumer that failed it.
    pub consumer: String,
    /// Stable message type name.
    pub message_type: String,
    /// Business process it belongs to.
    pub correlation_id: uuid::Uuid,
    /// The message that caused it.
    pub causation_id: Option<MessageId>,
    /// Extra headers.
    pub headers: Headers,
    /// JSON body.
    pub payload: String,
    /// When the message was first written.
    pub created_at: Timestamp,
    /// Attempts made before it was given up.
    pub attempts: u32,
    /// The last error, with its causes.
    pub error: String,
    /// When it was given up.
    pub failed_at: Timestamp,
}

/// Dead letters that failed alike: the same consumer gave them up with the same error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterGroup {
    /// The consumer that gave them up.
    pub consumer: String,
    /// The error they share.
    pub error: String,
    /// How many.
    pub count: u64,
    /// When the first was given up.
    pub first_failed_at: Timestamp,
    /// When the last was given up.
    pub last_failed_at: Timestamp,
    /// The oldest one's id, which names the group in the `*_like` calls.
    pub sample_id: i64,
}

/// A dead letter's own columns, then its message's as [`Envelope::from_row`] reads them.
const COLUMNS: &str = "id, consumer, error, failed_at, message_id, message_type, correlation_id, \
                       causation_id, headers, payload, created_at, attempts, \
                       failed_at AS available_at";

impl Bus {
    /// Dead letters, newest first.
    pub async fn dead_letters(&self, limit: u32, offset: u64) -> Result<Vec<DeadLetter>, BusError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM bus_dead_letters ORDER BY id DESC LIMIT $1 OFFSET $2"
        )))
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(self.db().reader())
        .await?;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    /// How many dead letters there are.
    pub async fn dead_letter_count(&self) -> Result<u64, BusError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bus_dead_letters")
            .fetch_one(self.db().reader())
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// One dead letter by its id.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, BusError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM bus_dead_letters WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db().reader())
        .await?;
        Ok(row.as_ref().map(decode).transpose()?)
    }

    /// Puts a dead letter back in its consumer's queue under its original message id, with a
    /// fresh attempt count, and removes it from the dead letters — in one transaction, so it is
    /// neither lost nor duplicated. False if there is no such dead letter.
    pub async fn retry_dead_letter(&self, id: i64) -> Result<bool, BusError> {
        let retried = self.requeue("id = $1", id).await?;
        Ok(retried > 0)
    }

    /// The dead letters grouped by what failed alike (one consumer, one error), most numerous
    /// first: a poison message and its copies show as one line.
    pub async fn dead_letter_groups(&self) -> Result<Vec<DeadLetterGroup>, BusError> {
        let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT consumer, error, COUNT(*), MIN(failed_at), MAX(failed_at), MIN(id) \
             FROM bus_dead_letters GROUP BY consumer, error \
             ORDER BY COUNT(*) DESC, MAX(failed_at) DESC",
        )
        .fetch_all(self.db().reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(consumer, error, count, first, last, sample)| DeadLetterGroup {
                    consumer,
                    error,
                    count: u64::try_from(count).unwrap_or_default(),
                    first_failed_at: Timestamp(first),
                    last_failed_at: Timestamp(last),
                    sample_id: sample,
                },
            )
            .collect())
    }

    /// The dead letters that failed like dead letter `id` (same consumer, same error), oldest
    /// first, at most `limit`; empty when there is no dead letter `id`.
    pub async fn dead_letters_like(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM bus_dead_letters d WHERE {LIKE_ID} ORDER BY id LIMIT $2"
        )))
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(self.db().reader())
        .await?;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    /// How many dead letters failed like dead letter `id` (it included); 0 when there is none.
    pub async fn count_dead_letters_like(&self, id: i64) -> Result<u64, BusError> {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM bus_dead_letters d WHERE {LIKE_ID}"
        )))
        .bind(id)
        .fetch_one(self.db().reader())
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Retries every dead letter that failed like dead letter `id` ([`Bus::retry_dead_letter`]
    /// for each, in one transaction); returns how many.
    pub async fn retry_dead_letters_like(&self, id: i64) -> Result<u64, BusError> {
        self.requeue(LIKE_ID, id).await
    }

    /// Deletes every dead letter that failed like dead letter `id`; returns how many.
    pub async fn purge_dead_letters_like(&self, id: i64) -> Result<u64, BusError> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM bus_dead_letters WHERE id IN \
             (SELECT d.id FROM bus_dead_letters d WHERE {LIKE_ID})"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        tracing::info!(like = id, deleted, "dead letters purged");
        Ok(deleted)
    }

    /// Moves the dead letters chosen by `condition` (on `bus_dead_letters d`, binding `id` as
    /// `$1`) back to their consumers' queues and out of the dead letters, in one transaction;
    /// returns how many.
    async fn requeue(&self, condition: &str, id: i64) -> Result<u64, BusError> {
        let mut tx = self.begin().await?;
        let letters = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM bus_dead_letters d WHERE {condition} ORDER BY id"
        )))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
        if letters.is_empty() {
            return Ok(0);
        }
        let now = self.db().now();
        let queued: Vec<QueueRow> = letters
            .iter()
            .map(|letter| back_in_queue(letter, now))
            .collect();
        QueueRow::insert_all(&mut tx, &queued).await?;
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM bus_dead_letters WHERE id IN ({})",
            storage::placeholders(1, letters.len())
        )));
        for letter in &letters {
            delete = delete.bind(letter.id);
        }
        delete.execute(&mut *tx).await?;
        tx.commit().await?;
        self.committed(Some(std::time::Duration::ZERO), Vec::new());
        for letter in &letters {
            tracing::info!(dead_letter = letter.id, message_id = %letter.message_id, "dead letter re-queued");
        }
        Ok(letters.len() as u64)
    }

    /// Deletes every dead letter; returns how many.
    pub async fn purge_dead_letters(&self) -> Result<u64, BusError> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query("DELETE FROM bus_dead_letters")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Dead letters `d` that failed like the dead letter whose id is `$1`.
const LIKE_ID: &str = "EXISTS (SELECT 1 FROM bus_dead_letters s WHERE s.id = $1 \
                       AND s.consumer = d.consumer AND s.error = d.error)";

/// `letter` as a fresh queue row under its original message id, due `now`.
fn back_in_queue(letter: &DeadLetter, now: Timestamp) -> QueueRow {
    QueueRow {
        message_id: letter.message_id,
        consumer: letter.consumer.clone(),
        message_type: letter.message_type.as_str().into(),
        correlation_id: letter.correlation_id,
        causation_id: letter.causation_id,
        headers: crate::message::headers_json(&letter.headers).into(),
        payload: letter.payload.as_str().into(),
        created_at: letter.created_at,
        available_at: now,
    }
}

fn decode(row: &AnyRow) -> Result<DeadLetter, sqlx::Error> {
    let message = Envelope::from_row(row)?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        message_id: message.message_id,
        consumer: row.try_get("consumer")?,
        message_type: message.message_type,
        correlation_id: message.correlation_id,
        causation_id: message.causation_id,
        headers: message.headers,
        payload: message.payload,
        created_at: message.created_at,
        attempts: message.attempts,
        error: row.try_get("error")?,
        failed_at: Timestamp(row.try_get("failed_at")?),
    })
}
