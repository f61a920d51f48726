//! What an operator looks at while messages flow: how deep the queue is and how long its oldest
//! due message has waited, and which messages wait for one business process (a scheduled
//! timeout, a delivery in retry).

use storage::Timestamp;

use crate::{Bus, BusError};

/// The queue at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Deliveries due now (waiting for a worker, or failing and retried).
    pub due: u64,
    /// Deliveries scheduled for later (timeouts, retries backing off).
    pub scheduled: u64,
    /// When the oldest due delivery became due: how far the workers are behind.
    pub oldest_due_at: Option<Timestamp>,
}

/// A message of one business process that failed for good, in brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The business process it belongs to.
    pub correlation_id: uuid::Uuid,
    /// The dead letter's id, to look at it or retry it.
    pub id: i64,
    /// The consumer that gave it up.
    pub consumer: String,
    /// Stable message type name.
    pub message_type: String,
    /// The last error.
    pub error: String,
}

/// A delivery waiting in the queue for one business process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The business process it belongs to.
    pub correlation_id: uuid::Uuid,
    /// The consumer it is addressed to.
    pub consumer: String,
    /// Stable message type name.
    pub message_type: String,
    /// When it is (or was) due.
    pub available_at: Timestamp,
    /// Failed attempts so far: more than zero means it is in retry.
    pub attempts: u32,
    /// The last attempt's error, if one failed.
    pub last_error: Option<String>,
}

impl Bus {
    /// The queue's depth now.
    pub async fn queue_depth(&self) -> Result<QueueDepth, BusError> {
        let now = self.db().now();
        let (due, scheduled, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT \
             CAST(COALESCE(SUM(CASE WHEN available_at <= $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN available_at > $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             MIN(CASE WHEN available_at <= $1 THEN available_at END) \
             FROM bus_queue",
        )
        .bind(now.0)
        .fetch_one(self.db().reader())
        .await?;
        Ok(QueueDepth {
            due: u64::try_from(due).unwrap_or_default(),
            scheduled: u64::try_from(scheduled).unwrap_or_default(),
            oldest_due_at: oldest.map(Timestamp),
        })
    }

    /// The deliveries that wait for the process `correlation_id`, soonest first.
    pub async fn waiting_for(&self, correlation_id: uuid::Uuid) -> Result<Vec<Waiting>, BusError> {
        self.waiting_for_each(&[correlation_id]).await
    }

    /// The deliveries that wait for each of `correlation_ids`, soonest first.
    pub async fn waiting_for_each(
        &self,
        correlation_ids: &[uuid::Uuid],
    ) -> Result<Vec<Waiting>, BusError> {
        if correlation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_as::<_, (String, String, String, i64, i64, Option<String>)>(
            sqlx::AssertSqlSafe(format!(
                "SELECT correlation_id, consumer, message_type, available_at, attempts, last_error \
                 FROM bus_queue WHERE correlation_id IN ({}) ORDER BY available_at, id",
                storage::placeholders(1, correlation_ids.len())
            )),
        );
        for id in correlation_ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(self.db().reader()).await?;
        rows.into_iter()
            .map(
                |(correlation, consumer, message_type, at, attempts, last_error)| {
                    Ok(Waiting {
                        correlation_id: parse(&correlation)?,
                        consumer,
                        message_type,
                        available_at: Timestamp(at),
                        attempts: u32::try_from(attempts).unwrap_or_default(),
                        last_error,
                    })
                },
            )
            .collect()
    }

    /// The dead letters of each of `correlation_ids`, oldest first.
    pub async fn dead_letters_of(
        &self,
        correlation_ids: &[uuid::Uuid],
    ) -> Result<Vec<Failed>, BusError> {
        if correlation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_as::<_, (String, i64, String, String, String)>(
            sqlx::AssertSqlSafe(format!(
                "SELECT correlation_id, id, consumer, message_type, error FROM bus_dead_letters \
                 WHERE correlation_id IN ({}) ORDER BY id",
                storage::placeholders(1, correlation_ids.len())
            )),
        );
        for id in correlation_ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(self.db().reader()).await?;
        rows.into_iter()
            .map(|(correlation, id, consumer, message_type, error)| {
                Ok(Failed {
                    correlation_id: parse(&correlation)?,
                    id,
                    consumer,
                    message_type,
                    error,
                })
            })
            .collect()
    }
}

fn parse(correlation_id: &str) -> Result<uuid::Uuid, BusError> {
    correlation_id
        .parse()
        .map_err(|error: uuid::Error| BusError::from(sqlx::Error::Decode(error.into())))
}
