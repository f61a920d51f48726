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
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM bus_dead_letters WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(letter) = row.as_ref().map(decode).transpose()? else {
            return Ok(false);
        };
        let now = self.db().now();
        let queued = QueueRow {
            message_id: letter.message_id,
            consumer: letter.consumer.clone(),
            message_type: letter.message_type.as_str().into(),
            correlation_id: letter.correlation_id,
            causation_id: letter.causation_id,
            headers: crate::message::headers_json(&letter.headers).into(),
            payload: letter.payload.as_str().into(),
            created_at: letter.created_at,
            available_at: now,
        };
        QueueRow::insert_all(&mut tx, std::slice::from_ref(&queued)).await?;
        sqlx::query("DELETE FROM bus_dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.committed(true, Vec::new());
        tracing::info!(dead_letter = id, message_id = %letter.message_id, "dead letter re-queued");
        Ok(true)
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
