//! The workers' statements on the queue, one small function per job: claim, complete, the
//! inbox, retries, dead letters and the hand-over guard. With `storage`, the only place whose
//! statement text depends on the backend.

use std::sync::{Arc, LazyLock};

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::message::parse_uuid;
use crate::{Envelope, MessageId};
use storage::sql::POSTGRES_NOW;
use storage::{Backend, Conn, Db, Timestamp};

/// A queue row claimed for processing, or a message handed over as if it were one.
pub(crate) struct Claimed {
    /// The queue row's id (0 for a handed-over message, which has none).
    pub row_id: i64,
    /// The consumer the row is queued for.
    pub consumer: String,
    /// The message.
    pub envelope: Envelope,
    /// The consumer already completed this message id (a duplicate delivery).
    pub already_done: bool,
}

/// Longest a worker's transaction waits for one row lock on PostgreSQL before it steps back
/// (see [`crate::ConsumeError::is_contention`]): two batches that lock shared rows in different
/// orders deadlock, and PostgreSQL would only notice after `deadlock_timeout`.
const LOCK_WAIT_LIMIT: &str = "SET LOCAL lock_timeout = '100ms'";

/// [`LOCK_WAIT_LIMIT`] and the database clock in one statement.
static LOCK_WAIT_LIMIT_AND_CLOCK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POSTGRES_NOW} FROM (SELECT set_config('lock_timeout', '100ms', true)) AS limited"
    )
});

/// Bounds the lock waits of a worker's transaction (PostgreSQL; SQLite has one writer).
pub(crate) async fn limit_lock_waits(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    if conn.backend() == Backend::Postgres {
        sqlx::query(LOCK_WAIT_LIMIT).execute(conn).await?;
    }
    Ok(())
}

/// [`limit_lock_waits`], and the transaction's time by the database clock (see
/// [`Db::now_in`]): on PostgreSQL one statement, so a batch pays one round trip for both.
pub(crate) async fn limit_lock_waits_and_read_clock(
    conn: &mut Conn<'_>,
    db: &Db,
) -> Result<Timestamp, sqlx::Error> {
    match conn.backend() {
        Backend::Sqlite => db.now_in(conn).await,
        Backend::Postgres => {
            let sql = sqlx::AssertSqlSafe(LOCK_WAIT_LIMIT_AND_CLOCK.as_str());
            Ok(Timestamp(sqlx::query_scalar(sql).fetch_one(conn).await?))
        }
    }
}

/// Microseconds from now until the earliest queued message is available (negative when it is
/// due already); `None` when the queue is empty.
pub(crate) async fn next_available_in(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    let now = match db.backend() {
        Backend::Sqlite => db.now().0.to_string(),
        Backend::Postgres => POSTGRES_NOW.to_owned(),
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT MIN(available_at) - {now} FROM bus_queue"
    )))
    .fetch_one(db.reader())
    .await
}

/// The inbox check is a scalar subquery on purpose: as `EXISTS`, PostgreSQL's generic plan
/// hashes the whole inbox on every claim, which grows with the inbox.
const CLAIM: &str = "SELECT q.id, q.consumer, q.message_id, q.message_type, q.correlation_id, \
    q.causation_id, q.headers, q.payload, q.created_at, q.available_at, q.attempts, \
    COALESCE((SELECT 1 FROM bus_inbox i WHERE i.consumer = q.consumer \
              AND i.message_id = q.message_id), 0) AS already_done \
    FROM bus_queue q WHERE q.available_at <= $1 ORDER BY q.available_at, q.id LIMIT $2";

/// PostgreSQL: tries the transaction-scoped advisory lock of one (consumer, correlation id),
/// given as SQL expressions; true if this transaction holds it now (it is re-entrant). Claims
/// and hand-overs take the same lock, so no two transactions handle one correlation's
/// messages for one consumer at once.
fn try_correlation_lock(consumer: &str, correlation_id: &str) -> String {
    format!("pg_try_advisory_xact_lock(hashtextextended({consumer} || ':' || {correlation_id}, 0))")
}

/// Due messages for this transaction to handle, at most `limit`.
///
/// On SQLite the transaction holds the only write lock, so nothing else can claim. On
/// PostgreSQL rows are locked with `FOR UPDATE SKIP LOCKED`, only the oldest due message of each
/// (consumer, correlation id) is eligible, and its advisory lock must be free; rows whose
/// correlation is busy elsewhere are left.
pub(crate) async fn claim(
    conn: &mut Conn<'_>,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(claim_sql(conn.backend())))
        .bind(now.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(conn)
        .await?;
    rows.iter().map(decode_claimed).collect()
}

/// The claim statement for `backend`.
fn claim_sql(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => CLAIM.to_owned(),
        // One statement claims and locks: the advisory lock is tried on each row the inner
        // query returned; a row whose correlation is busy elsewhere stays row-locked by this
        // transaction (so no one else takes it either) and is simply not handled now.
        Backend::Postgres => format!(
            "WITH claimed AS ({}) SELECT * FROM claimed WHERE {} ORDER BY available_at, id",
            CLAIM.replace(
                "ORDER BY",
                "AND NOT EXISTS (SELECT 1 FROM bus_queue p WHERE p.consumer = q.consumer \
                 AND p.correlation_id = q.correlation_id AND p.id < q.id AND p.available_at <= $1) \
                 ORDER BY",
            ) + " FOR UPDATE OF q SKIP LOCKED",
            try_correlation_lock("consumer", "correlation_id")
        ),
    }
}

/// One row of the claim statement.
fn decode_claimed(row: &AnyRow) -> Result<Claimed, sqlx::Error> {
    let already_done: i64 = row.try_get("already_done")?;
    Ok(Claimed {
        already_done: already_done != 0,
        row_id: row.try_get("id")?,
        consumer: row.try_get("consumer")?,
        envelope: Envelope::from_row(row)?,
    })
}

/// Completes a whole batch: deletes its rows and remembers its fresh ids in the inbox.
pub(crate) async fn complete_all(
    conn: &mut Conn<'_>,
    claimed: &[Claimed],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = claimed.iter().map(|message| message.row_id).collect();
    delete_all_queued(conn, &ids).await?;
    let fresh: Vec<(&str, String)> = claimed
        .iter()
        .filter(|message| !message.already_done)
        .map(|message| {
            let id = message.envelope.message_id.to_string();
            (message.consumer.as_str(), id)
        })
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    remember_all_in_inbox(conn, &fresh, now).await
}

/// One statement deletes the rows `ids`, given as one JSON array, so that the text is the
/// same for every batch size.
async fn delete_all_queued(conn: &mut Conn<'_>, ids: &[i64]) -> Result<(), sqlx::Error> {
    let delete = format!(
        "DELETE FROM bus_queue WHERE id IN (SELECT CAST(j.value AS BIGINT) FROM {})",
        storage::json_values_to_look_up(conn.backend(), 1)
    );
    sqlx::query(sqlx::AssertSqlSafe(delete))
        .bind(storage::json_param(&ids)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// One statement records the (consumer, message id) pairs `fresh` in the inbox.
async fn remember_all_in_inbox(
    conn: &mut Conn<'_>,
    fresh: &[(&str, String)],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let insert = format!(
        "INSERT INTO bus_inbox (consumer, message_id, processed_at) \
         SELECT j.value ->> 0, j.value ->> 1, CAST($2 AS BIGINT) FROM {} WHERE true \
         ON CONFLICT (consumer, message_id) DO NOTHING",
        storage::json_rows(conn.backend(), 1)
    );
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(storage::json_param(&fresh)?)
        .bind(now.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that `consumer` completed `message_id`; false if it already had.
pub(crate) async fn remember_in_inbox(
    conn: &mut Conn<'_>,
    consumer: &str,
    message_id: MessageId,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO bus_inbox (consumer, message_id, processed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, message_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id.to_string())
    .bind(now.0)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Forgets up to `limit` inbox entries processed before `cutoff`; returns how many.
pub(crate) async fn prune_inbox(
    conn: &mut Conn<'_>,
    cutoff: Timestamp,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM bus_inbox WHERE (consumer, message_id) IN \
         (SELECT consumer, message_id FROM bus_inbox WHERE processed_at < $1 LIMIT $2)",
    )
    .bind(cutoff.0)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Deletes one queue row (its message completed or went to the dead letters).
pub(crate) async fn delete_queued(conn: &mut Conn<'_>, row_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bus_queue WHERE id = $1")
        .bind(row_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed attempt and makes the row available again at `at`.
pub(crate) async fn schedule_retry(
    conn: &mut Conn<'_>,
    row_id: i64,
    attempts: u32,
    at: Timestamp,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bus_queue SET attempts = $1, available_at = $2, last_error = $3 WHERE id = $4",
    )
    .bind(i64::from(attempts))
    .bind(at.0)
    .bind(error)
    .bind(row_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a message to the dead letters (replacing an earlier dead letter of it) and out of
/// the queue.
pub(crate) async fn dead_letter(
    conn: &mut Conn<'_>,
    message: &Claimed,
    attempts: u32,
    error: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let envelope = &message.envelope;
    sqlx::query(
        "INSERT INTO bus_dead_letters (message_id, consumer, message_type, correlation_id, \
         causation_id, headers, payload, created_at, attempts, error, failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (message_id, consumer) DO UPDATE SET attempts = excluded.attempts, \
         error = excluded.error, failed_at = excluded.failed_at",
    )
    .bind(envelope.message_id.to_string())
    .bind(&message.consumer)
    .bind(&envelope.message_type)
    .bind(envelope.correlation_id.to_string())
    .bind(envelope.causation_id.map(|id| id.to_string()))
    .bind(crate::message::headers_json(&envelope.headers))
    .bind(&envelope.payload)
    .bind(envelope.created_at.0)
    .bind(i64::from(attempts))
    .bind(error)
    .bind(now.0)
    .execute(&mut *conn)
    .await?;
    delete_queued(conn, message.row_id).await
}

/// The pairs among `keys` whose messages must go through the queue: those with anything in
/// the queue already and, on PostgreSQL, those whose advisory lock another transaction holds.
/// The locks of the others are now this transaction's, so nothing else handles their
/// correlation until it ends.
pub(crate) async fn keys_to_queue(
    conn: &mut Conn<'_>,
    keys: &[(String, Uuid)],
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let pairs: Vec<(&str, String)> = keys
        .iter()
        .map(|(consumer, id)| (consumer.as_str(), id.to_string()))
        .collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(keys_to_queue_sql(conn.backend())))
        .bind(storage::json_param(&pairs)?)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("consumer")?,
                parse_uuid(&row.try_get::<String, _>("correlation_id")?)?,
            ))
        })
        .collect()
}

/// The hand-over guard statement for `backend`.
fn keys_to_queue_sql(backend: Backend) -> String {
    let lock_taken = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => format!(
            " OR NOT {}",
            try_correlation_lock("(j.value ->> 0)", "(j.value ->> 1)")
        ),
    };
    format!(
        "SELECT j.value ->> 0 AS consumer, j.value ->> 1 AS correlation_id FROM {} \
         WHERE EXISTS (SELECT 1 FROM bus_queue q \
         WHERE q.consumer = j.value ->> 0 AND q.correlation_id = j.value ->> 1){lock_taken}",
        storage::json_rows_to_look_up(backend, 1)
    )
}

/// One message as it is queued for one consumer; the text of a message fanned out to several
/// consumers is shared between their rows.
#[derive(Clone)]
pub(crate) struct QueueRow {
    pub message_id: MessageId,
    pub consumer: String,
    pub message_type: Arc<str>,
    pub correlation_id: uuid::Uuid,
    pub causation_id: Option<MessageId>,
    /// The headers as JSON.
    pub headers: Arc<str>,
    pub payload: Arc<str>,
    pub created_at: Timestamp,
    pub available_at: Timestamp,
}

/// Rows per INSERT statement: bounds the size of the one JSON text bound to it.
const ROWS_PER_INSERT: usize = 1_000;

impl QueueRow {
    /// How long after it was written the message is due (zero for one due at once).
    pub fn due_in(&self) -> std::time::Duration {
        let micros = self.available_at.0.saturating_sub(self.created_at.0);
        std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }

    /// Inserts `rows` in their order (their ids keep each correlation's order), a thousand per
    /// statement, passed as one JSON array; a row whose message id its consumer already has
    /// queued is skipped.
    pub async fn insert_all(conn: &mut Conn<'_>, rows: &[QueueRow]) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO bus_queue (message_id, consumer, message_type, correlation_id, \
             causation_id, headers, payload, created_at, available_at) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, \
             j.value ->> 5, j.value ->> 6, CAST(j.value ->> 7 AS BIGINT), \
             CAST(j.value ->> 8 AS BIGINT) FROM {} WHERE true ORDER BY j.key \
             ON CONFLICT (message_id, consumer) DO NOTHING",
            storage::json_rows(conn.backend(), 1)
        );
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let fields: Vec<_> = chunk.iter().map(QueueRow::fields).collect();
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(storage::json_param(&fields)?)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The columns in the order `insert_all` reads them.
    #[allow(clippy::type_complexity)]
    fn fields(
        &self,
    ) -> (
        String,
        &str,
        &str,
        String,
        Option<String>,
        &str,
        &str,
        i64,
        i64,
    ) {
        (
            self.message_id.to_string(),
            self.consumer.as_str(),
            &self.message_type,
            self.correlation_id.to_string(),
            self.causation_id.map(|id| id.to_string()),
            &self.headers,
            &self.payload,
            self.created_at.0,
            self.available_at.0,
        )
    }
}
