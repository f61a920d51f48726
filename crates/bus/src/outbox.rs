//! What a transaction writes to the queue, kept in memory until it commits.
//!
//! Messages and withdrawals of scheduled messages are logged in the order they happen and
//! applied at the outermost commit, with one `DELETE` for every withdrawal and one `INSERT` for
//! every message (each given its rows as one JSON array): a worker batch or a group of requests costs
//! the single writer two round trips for its messages, not one per message. A savepoint marks
//! where its entries begin; rolling it back (or dropping it) cuts the log back to the mark, so
//! its messages and withdrawals vanish with its other writes. Announced changes (see
//! [`crate::Tx::announce_change`]) are logged the same way, so a rolled-back savepoint wakes
//! nobody.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::queue::QueueRow;
use storage::Timestamp;

/// Withdrawals per `DELETE`: bounds the size of the one JSON text bound to it.
const WITHDRAWALS_PER_DELETE: usize = 1_000;

/// One logged write.
enum Entry {
    /// A message for one consumer.
    Row(QueueRow),
    /// `cancel_scheduled`: the messages of `consumer` and `correlation_id` that are due after
    /// `after` and not retries, both those written before in this transaction and those
    /// already committed.
    Withdraw {
        consumer: String,
        correlation_id: Uuid,
        after: Timestamp,
    },
    /// `announce_change`: waiters for this correlation id wake after the commit.
    Changed(Uuid),
}

impl Entry {
    fn withdraws(&self, row: &QueueRow) -> bool {
        match self {
            Entry::Withdraw {
                consumer,
                correlation_id,
                after,
            } => {
                row.consumer == *consumer
                    && row.correlation_id == *correlation_id
                    && row.available_at > *after
            }
            Entry::Row(_) | Entry::Changed(_) => false,
        }
    }
}

/// What applying the log did, for the commit to act on once it has succeeded.
pub(crate) struct Flushed {
    /// Of the messages inserted, the shortest time until one is due (zero when one is due
    /// now); `None` when none was inserted.
    pub soonest_due: Option<std::time::Duration>,
    /// Correlation ids whose waiters should wake.
    pub changed: Vec<Uuid>,
}

/// The log of one transaction, shared by its savepoints.
#[derive(Clone, Default)]
pub(crate) struct Outbox {
    log: Arc<Mutex<Vec<Entry>>>,
}

impl Outbox {
    /// Logs messages to insert at commit.
    pub fn write(&self, rows: impl IntoIterator<Item = QueueRow>) {
        self.lock().extend(rows.into_iter().map(Entry::Row));
    }

    /// Logs a withdrawal (see [`crate::Tx::cancel_scheduled`]).
    pub fn withdraw(&self, consumer: &str, correlation_id: Uuid, after: Timestamp) {
        self.lock().push(Entry::Withdraw {
            consumer: consumer.to_owned(),
            correlation_id,
            after,
        });
    }

    /// Logs an announced change.
    pub fn announce(&self, correlation_id: Uuid) {
        self.lock().push(Entry::Changed(correlation_id));
    }

    /// The distinct (consumer, correlation id) pairs of the messages logged from entry `from`
    /// on that are due by `now` and addressed to a consumer `local` accepts.
    pub fn due_keys(
        &self,
        now: Timestamp,
        from: usize,
        local: impl Fn(&str) -> bool,
    ) -> Vec<(String, Uuid)> {
        let mut keys: Vec<(String, Uuid)> = Vec::new();
        for entry in self.lock().iter().skip(from) {
            if let Entry::Row(row) = entry
                && row.available_at <= now
                && local(&row.consumer)
                && !keys
                    .iter()
                    .any(|(c, id)| *c == row.consumer && *id == row.correlation_id)
            {
                keys.push((row.consumer.clone(), row.correlation_id));
            }
        }
        keys
    }

    /// Takes the messages logged from entry `from` on, due by `now`, whose (consumer,
    /// correlation id) `take` accepts out of the log, in log order, so that the commit does not
    /// queue them: the bus hands them over itself. `from` must not lie before the start of an
    /// open savepoint (marks are positions in the log). A withdrawal never concerns them: it
    /// withdraws only messages due later than its time.
    pub fn take_due(
        &self,
        now: Timestamp,
        from: usize,
        take: impl Fn(&str, Uuid) -> bool,
    ) -> Vec<QueueRow> {
        let mut taken = Vec::new();
        let mut log = self.lock();
        let from = from.min(log.len());
        let kept: Vec<Entry> = log
            .drain(from..)
            .filter_map(|entry| match entry {
                Entry::Row(row)
                    if row.available_at <= now && take(&row.consumer, row.correlation_id) =>
                {
                    taken.push(row);
                    None
                }
                other => Some(other),
            })
            .collect();
        log.extend(kept);
        taken
    }

    /// Where a savepoint starting now begins: a guard that cuts the log back to here unless
    /// it is [kept](Mark::keep).
    pub fn mark(&self) -> Mark {
        Mark {
            outbox: self.clone(),
            at: self.lock().len(),
            kept: false,
        }
    }

    /// Applies the log on `conn` (the outermost commit does, just before committing): the
    /// withdrawals first, so that they cannot touch the rows inserted after them.
    pub async fn flush(&self, conn: &mut storage::Conn<'_>) -> Result<Flushed, sqlx::Error> {
        let log = std::mem::take(&mut *self.lock());
        let mut rows = Vec::new();
        let mut withdrawals = Vec::new();
        let mut changed = Vec::new();
        for entry in log {
            match entry {
                Entry::Row(row) => rows.push(row),
                Entry::Changed(id) => changed.push(id),
                withdrawal => {
                    rows.retain(|row| !withdrawal.withdraws(row));
                    withdrawals.push(withdrawal);
                }
            }
        }
        for chunk in withdrawals.chunks(WITHDRAWALS_PER_DELETE) {
            delete_withdrawn(conn, chunk).await?;
        }
        QueueRow::insert_all(conn, &rows).await?;
        Ok(Flushed {
            soonest_due: rows.iter().map(QueueRow::due_in).min(),
            changed,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Entries are plain data: a panic elsewhere cannot leave the log half-written.
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A savepoint's start in the log; dropping it without [`Mark::keep`] undoes the entries
/// logged since.
pub(crate) struct Mark {
    outbox: Outbox,
    at: usize,
    kept: bool,
}

impl Mark {
    /// The savepoint committed: its entries now belong to the enclosing transaction.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        if !self.kept {
            self.outbox.lock().truncate(self.at);
        }
    }
}

/// One statement for a chunk of withdrawals of already committed messages.
async fn delete_withdrawn(
    conn: &mut storage::Conn<'_>,
    chunk: &[Entry],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "DELETE FROM bus_queue WHERE id IN (SELECT q.id FROM {} \
         JOIN bus_queue q ON q.consumer = j.value ->> 0 AND q.correlation_id = j.value ->> 1 \
         WHERE q.attempts = 0 AND q.available_at > CAST(j.value ->> 2 AS BIGINT))",
        storage::json_rows_to_look_up(conn.backend(), 1)
    );
    let fields: Vec<(&str, String, i64)> = chunk
        .iter()
        .filter_map(|entry| match entry {
            Entry::Withdraw {
                consumer,
                correlation_id,
                after,
            } => Some((consumer.as_str(), correlation_id.to_string(), after.0)),
            Entry::Row(_) | Entry::Changed(_) => None,
        })
        .collect();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(storage::json_param(&fields)?)
        .execute(conn)
        .await?;
    Ok(())
}
