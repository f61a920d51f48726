//! Workers: claim due messages, run their consumers, and complete them in one transaction.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use crate::bus::QueueRow;
use crate::{Bus, ConsumeError, Envelope, MessageId, Tx};
use storage::Backend;
use storage::Timestamp;
use storage::sql::{POSTGRES_NOW, PerBackend};

/// The running worker tasks; dropping it leaves them running, [`Workers::shutdown`] stops them.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    bus: Bus,
}

impl Workers {
    /// Stops claiming, lets in-flight batches commit, and waits for every worker to exit.
    /// Messages not yet claimed stay queued for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.bus
            .inner
            .running_workers
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// True while at least one worker task is alive.
    pub fn is_running(&self) -> bool {
        self.tasks.iter().any(|task| !task.is_finished())
    }
}

/// A queue row claimed for processing.
struct Claimed {
    row_id: i64,
    consumer: String,
    envelope: Envelope,
    /// The consumer already completed this message id (a duplicate delivery).
    already_done: bool,
}

/// A consumer failure in the fast pass.
struct Failure {
    /// The message that failed; `None` when a consumer failed to prepare for the batch (the
    /// careful pass then handles every message as usual).
    row_id: Option<i64>,
    /// The consumer's error; `None` when no consumer is registered under the row's name (the
    /// careful pass dead-letters it).
    error: Option<ConsumeError>,
}

impl Failure {
    fn unregistered(message: &Claimed) -> Self {
        Self {
            row_id: Some(message.row_id),
            error: None,
        }
    }
}

/// The span every log line about one message runs in.
fn message_span(message: &Claimed) -> tracing::Span {
    tracing::info_span!("message",
        order_id = %message.envelope.correlation_id,
        message_id = %message.envelope.message_id,
        message_type = %message.envelope.message_type,
        consumer = %message.consumer)
}

/// What happened to one claimed message inside a batch.
enum Outcome {
    Completed,
    Duplicate,
    Retried,
    DeadLettered,
    /// Lost a lock race: rolled back and left queued as it was, for the next round.
    Contended,
}

/// Tallies of one batch, added to the bus counters only once the batch has committed.
#[derive(Default)]
struct Tally {
    completed: u64,
    duplicates: u64,
    retried: u64,
    dead_lettered: u64,
    /// Of `completed`, those handed over in the batch (never queued).
    handed_over: u64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::Contended => {}
        }
    }
}

/// Shortest sleep of an idle worker that found nothing it could claim.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(5);
const INBOX_PRUNE_EVERY: Duration = Duration::from_secs(60);
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
        if self.inner.db.backend() == Backend::Postgres {
            tasks.push(tokio::spawn(self.clone().listen(stopped)));
        }
        self.inner.running_workers.fetch_add(1, Ordering::Relaxed);
        Workers {
            stop,
            tasks,
            bus: self.clone(),
        }
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

    async fn work(self, index: usize, mut stop: watch::Receiver<bool>) {
        tracing::debug!(worker = index, "bus worker started");
        let mut failures = 0u32;
        let mut last_prune = Instant::now();
        while !*stop.borrow() {
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
                _ = self.inner.wake.notified() => {}
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

    /// How long an idle worker may sleep: until the next scheduled message, at most the poll
    /// interval (which catches messages committed by other processes).
    async fn idle_wait(&self) -> Duration {
        let poll = self.inner.config.poll_interval;
        let now = match self.inner.db.backend() {
            Backend::Sqlite => self.inner.db.now().0.to_string(),
            Backend::Postgres => POSTGRES_NOW.to_owned(),
        };
        let next: Result<Option<i64>, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(available_at) - {now} FROM bus_queue"
        )))
        .fetch_one(self.inner.db.reader())
        .await;
        match next {
            // A message that is due but was not claimable (another instance holds it) must not
            // make an idle worker spin: look again after a short pause at the earliest.
            Ok(Some(micros)) => Duration::from_micros(u64::try_from(micros).unwrap_or(0))
                .clamp(MIN_IDLE_WAIT, poll.max(MIN_IDLE_WAIT)),
            _ => poll,
        }
    }

    /// Claims up to a batch of due messages and handles them in one transaction.
    ///
    /// The fast path runs every consumer straight in the batch transaction and completes the
    /// batch with two statements. If any consumer fails, the batch is rolled back and handled
    /// again with a savepoint per message, so that only the failing one is retried.
    async fn process_batch(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.begin().await?;
        limit_lock_waits(&mut tx).await?;
        let now = tx.now().await?;
        let claimed = claim(&mut tx, now, self.inner.config.batch_size).await?;
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let tally = match self.run_batch(&mut tx, &claimed, now).await? {
            Ok(tally) => {
                tx.commit().await?;
                tally
            }
            Err(failure)
                if failure
                    .error
                    .as_ref()
                    .is_some_and(ConsumeError::is_contention) =>
            {
                // Another transaction holds rows this batch needs, perhaps waiting for ours:
                // step back, and let a short random pause break the tie.
                tx.rollback().await?;
                self.inner
                    .counters
                    .contended
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("batch lost a lock race; it runs again");
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=10))).await;
                return Ok(0);
            }
            Err(failure) => {
                tx.rollback().await?;
                self.run_batch_carefully(failure, now).await?
            }
        };
        let counters = &self.inner.counters;
        counters
            .completed
            .fetch_add(tally.completed, Ordering::Relaxed);
        counters
            .duplicates
            .fetch_add(tally.duplicates, Ordering::Relaxed);
        counters.retried.fetch_add(tally.retried, Ordering::Relaxed);
        counters
            .dead_lettered
            .fetch_add(tally.dead_lettered, Ordering::Relaxed);
        counters
            .handed_over
            .fetch_add(tally.handed_over, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        Ok(claimed.len())
    }

    /// Every consumer of the batch in the one transaction, then whatever they handed over;
    /// stops at the first failure and returns it, so that the careful pass records it without
    /// running that consumer again.
    async fn run_batch(
        &self,
        tx: &mut Tx<'_>,
        claimed: &[Claimed],
        now: Timestamp,
    ) -> Result<Result<Tally, Failure>, sqlx::Error> {
        let mut tally = Tally::default();
        if let Err(failure) = self.run_consumers(tx, claimed, &mut tally).await {
            return Ok(Err(failure));
        }
        complete_all(tx, claimed, now).await?;
        if let Err(failure) = self.hand_over(tx, now, &mut tally).await? {
            return Ok(Err(failure));
        }
        Ok(Ok(tally))
    }

    /// Lets the consumers read ahead, then runs each message's consumer in order, in `tx`.
    async fn run_consumers(
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
        for message in messages {
            if message.already_done {
                tracing::info!(message_id = %message.envelope.message_id, "skipped a duplicate delivery");
                tally.add(Outcome::Duplicate);
                continue;
            }
            let Some(consumer) = self.inner.consumers.get(&message.consumer) else {
                return Err(Failure::unregistered(message));
            };
            tx.set_causation(Some(message.envelope.message_id));
            let result = AssertUnwindSafe(consumer.consume(&message.envelope, tx))
                .catch_unwind()
                .instrument(message_span(message))
                .await
                .unwrap_or_else(|panic| Err(ConsumeError::transient(panic_text(&panic))));
            tx.set_causation(None);
            if let Err(error) = result {
                return Err(Failure {
                    row_id: Some(message.row_id),
                    error: Some(error),
                });
            }
            tally.add(Outcome::Completed);
        }
        Ok(())
    }

    /// Handles here, in the batch's transaction, the messages its consumers sent to consumers
    /// of this bus that are due at once, round after round while they send more (see
    /// [`crate::BusConfig::hand_over`]): each round is a hop of a chain of messages that would
    /// otherwise wait for a batch and a commit of its own, and its messages are never queued,
    /// claimed or remembered in the inbox (nothing can deliver them twice). Which messages may
    /// be handed over is [`Bus::take_for_hand_over`]'s to say. A failure here sends the batch
    /// to the careful pass, which hands nothing over: the message is then queued and retried
    /// as usual.
    async fn hand_over(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<Result<(), Failure>, sqlx::Error> {
        if !self.inner.config.hand_over {
            return Ok(Ok(()));
        }
        let first = self.take_for_hand_over(tx, now, 0).await?;
        let outcome = self.hand_over_rounds(tx, now, 0, first, tally).await?;
        if let Err(failure) = &outcome {
            tracing::debug!(error = ?failure.error.as_ref().map(ToString::to_string),
                "a handed-over message failed; the batch runs again through the queue");
        }
        Ok(outcome)
    }

    /// Hand-over for a group of requests' transaction ([`Bus::transact`], SQLite), once its
    /// jobs have run and just before it commits: the messages they sent to consumers of this
    /// bus, due at once, are handled in the same transaction, like a worker batch hands over
    /// (the saga's first steps then commit with the checkout that started them). Only while
    /// this instance's workers run: a bus without workers processes no messages. The consumers
    /// run in a savepoint; if one fails, the savepoint is rolled back and the messages go to
    /// the queue as if nothing had been tried, so no request fails for them. Returns what was
    /// handed over, for the counters once the transaction has committed.
    ///
    /// Not on PostgreSQL: there each request has a transaction of its own, and 64 of them
    /// handing over at once contended for the same stock rows, each holding its row lock
    /// through the rest of the chain and its commit (in-process benchmark, 64 buyers: 621–626
    /// against 686–723 checkouts/s with the single worker handing over).
    pub(crate) async fn hand_over_in_request(&self, tx: &mut Tx<'_>) -> Result<u64, sqlx::Error> {
        if !self.hands_over_in_requests() {
            return Ok(0);
        }
        let now = tx.now().await?;
        let first = match self.take_for_hand_over(tx, now, 0).await {
            Ok(first) if !first.is_empty() => first,
            Ok(_) => return Ok(0),
            Err(error) => {
                // Nothing was taken: the messages are queued by the commit as usual.
                tracing::debug!(%error, "looking for messages to hand over failed");
                return Ok(0);
            }
        };
        // Entries logged from here on belong to the savepoint: later rounds take only those.
        let from = tx.outbox().len();
        let mut savepoint = tx.savepoint().await?;
        let mut tally = Tally::default();
        let outcome = self
            .hand_over_rounds(&mut savepoint, now, from, first.clone(), &mut tally)
            .await;
        let error = match outcome {
            Ok(Ok(())) => {
                savepoint.commit().await?;
                return Ok(tally.handed_over);
            }
            Ok(Err(failure)) => failure.error.as_ref().map(ToString::to_string),
            Err(error) => Some(error.to_string()),
        };
        tracing::debug!(
            ?error,
            "a message handed over in a request failed; it goes through the queue"
        );
        savepoint.rollback().await?;
        tx.outbox().write(first);
        Ok(0)
    }

    /// True if a transaction of [`Bus::transact`] committing now may also commit the steps of
    /// the consumers its messages went to (hand-over in a group of requests): SQLite, hand-over
    /// on, and this instance's workers running. When false, what a request committed is
    /// exactly what it wrote, so it can answer without reading back.
    pub fn hands_over_in_requests(&self) -> bool {
        self.inner.config.hand_over
            && self.inner.db.backend() == Backend::Sqlite
            && self.inner.running_workers.load(Ordering::Relaxed) > 0
    }

    /// Takes out of `tx`'s log, from entry `from` on, the messages due by `now` that may be
    /// handed over: those addressed to a consumer of this bus, unless the queue holds anything
    /// for their consumer and correlation id (so that a correlation's messages keep their
    /// order) or, on PostgreSQL, another transaction holds the (consumer, correlation id)
    /// advisory lock that every claim tries ([`claim`]). On PostgreSQL `tx` now holds the
    /// locks of the messages taken, so no instance handles their correlation until it ends.
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
        let waiting = keys_to_queue(tx, &keys).await?;
        Ok(tx.outbox().take_due(now, from, |consumer, correlation_id| {
            local(consumer)
                && !waiting
                    .iter()
                    .any(|(c, id)| c == consumer && *id == correlation_id)
        }))
    }

    /// Handles `rows` in `tx`, then what they send on, round after round (at most
    /// [`HAND_OVER_ROUNDS`]; a longer chain continues through the queue), taking only what is
    /// logged from entry `from` on; stops at the first failure and returns it.
    async fn hand_over_rounds(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        from: usize,
        mut rows: Vec<QueueRow>,
        tally: &mut Tally,
    ) -> Result<Result<(), Failure>, sqlx::Error> {
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
                return Ok(Err(Failure {
                    row_id: None,
                    ..failure
                }));
            }
            tally.handed_over += messages.len() as u64;
        }
        Ok(Ok(()))
    }

    /// Lets each consumer of the batch read ahead for its messages ([`crate::Consumer::prepare`]).
    async fn prepare_consumers(
        &self,
        tx: &mut Tx<'_>,
        claimed: &[Claimed],
    ) -> Result<(), ConsumeError> {
        let mut by_consumer: Vec<(&str, Vec<&Envelope>)> = Vec::new();
        for message in claimed.iter().filter(|message| !message.already_done) {
            match by_consumer
                .iter_mut()
                .find(|(name, _)| *name == message.consumer)
            {
                Some((_, envelopes)) => envelopes.push(&message.envelope),
                None => by_consumer.push((&message.consumer, vec![&message.envelope])),
            }
        }
        for (name, envelopes) in by_consumer {
            let Some(consumer) = self.inner.consumers.get(name) else {
                continue;
            };
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

    /// The batch again, each message in its own savepoint, so that failures are recorded one
    /// by one; the message that failed the fast pass has its failure recorded as it was.
    async fn run_batch_carefully(
        &self,
        failure: Failure,
        now: Timestamp,
    ) -> Result<Tally, sqlx::Error> {
        let mut tx = self.begin().await?;
        limit_lock_waits(&mut tx).await?;
        let claimed = claim(&mut tx, now, self.inner.config.batch_size).await?;
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
            tally.add(outcome);
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
            dead_letter(tx, message, message.envelope.attempts, &error, now).await?;
            return Ok(Outcome::DeadLettered);
        };
        let envelope = &message.envelope;
        let mut savepoint = tx.consuming(envelope.message_id).await?;
        if !remember_in_inbox(&mut savepoint, &message.consumer, envelope.message_id, now).await? {
            delete_queued(&mut savepoint, message.row_id).await?;
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
                delete_queued(&mut savepoint, message.row_id).await?;
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
            dead_letter(tx, message, attempts, &text, now).await?;
            return Ok(Outcome::DeadLettered);
        }
        let delay = retry.delay_after(attempts);
        tracing::warn!(attempts, retry_in_ms = delay.as_millis() as u64, error = %text,
            "message failed; will retry");
        sqlx::query(
            "UPDATE bus_queue SET attempts = $1, available_at = $2, last_error = $3 WHERE id = $4",
        )
        .bind(i64::from(attempts))
        .bind(now.plus(delay).0)
        .bind(&text)
        .bind(message.row_id)
        .execute(&mut **tx)
        .await?;
        Ok(Outcome::Retried)
    }

    async fn prune_inbox(&self) -> Result<(), sqlx::Error> {
        let cutoff = self
            .inner
            .db
            .now()
            .minus(self.inner.config.inbox_retention)
            .0;
        loop {
            let mut tx = self.begin().await?;
            let deleted = sqlx::query(
                "DELETE FROM bus_inbox WHERE (consumer, message_id) IN \
                 (SELECT consumer, message_id FROM bus_inbox WHERE processed_at < $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(INBOX_PRUNE_CHUNK)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            if deleted < INBOX_PRUNE_CHUNK as u64 {
                return Ok(());
            }
        }
    }
}

/// The inbox check is a scalar subquery on purpose: as `EXISTS`, PostgreSQL's generic plan
/// hashes the whole inbox on every claim, which grows with the inbox.
const CLAIM: &str = "SELECT q.id, q.consumer, q.message_id, q.message_type, q.correlation_id, \
    q.causation_id, q.headers, q.payload, q.created_at, q.available_at, q.attempts, \
    COALESCE((SELECT 1 FROM bus_inbox i WHERE i.consumer = q.consumer \
              AND i.message_id = q.message_id), 0) AS already_done \
    FROM bus_queue q WHERE q.available_at <= $1 ORDER BY q.available_at, q.id LIMIT $2";

/// Longest a worker's transaction waits for one row lock on PostgreSQL before it steps back
/// (see [`ConsumeError::is_contention`]): two batches that lock shared rows (stock) in
/// different orders deadlock, and PostgreSQL would only notice after `deadlock_timeout` (1 s).
const LOCK_WAIT_LIMIT: &str = "SET LOCAL lock_timeout = '100ms'";

async fn limit_lock_waits(tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
    if tx.bus().db().backend() == Backend::Postgres {
        sqlx::query(LOCK_WAIT_LIMIT).execute(&mut **tx).await?;
    }
    Ok(())
}

/// PostgreSQL: tries the transaction-scoped advisory lock of one (consumer, correlation id),
/// given as SQL expressions; true if this transaction holds it now (it is re-entrant). Claims
/// and hand-overs take the same lock, so no two transactions handle one correlation's
/// messages for one consumer at once.
fn try_correlation_lock(consumer: &str, correlation_id: &str) -> String {
    format!("pg_try_advisory_xact_lock(hashtextextended({consumer} || ':' || {correlation_id}, 0))")
}

/// Due messages for this transaction to handle.
///
/// On SQLite the transaction holds the database's only write lock, so nothing else can claim.
/// On PostgreSQL rows are locked with `FOR UPDATE SKIP LOCKED`, so no two instances take one
/// message; only the oldest due message of each (consumer, correlation id) is eligible, so
/// they are handled in order; and a transaction-scoped advisory lock per (consumer,
/// correlation id) keeps two messages of one correlation from being handled at once anywhere,
/// even when a lower id committed late. Rows whose correlation is busy elsewhere are left.
async fn claim(tx: &mut Tx<'_>, now: Timestamp, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
    static SQL: PerBackend = PerBackend::new();
    let sql = SQL.get(tx.bus().db().backend(), claim_sql);
    let rows = sqlx::query(sql)
        .bind(now.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(decode_claimed).collect()
}

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

fn decode_claimed(row: &AnyRow) -> Result<Claimed, sqlx::Error> {
    let causation: Option<String> = row.try_get("causation_id")?;
    let headers: String = row.try_get("headers")?;
    let attempts: i64 = row.try_get("attempts")?;
    let already_done: i64 = row.try_get("already_done")?;
    Ok(Claimed {
        already_done: already_done != 0,
        row_id: row.try_get("id")?,
        consumer: row.try_get("consumer")?,
        envelope: Envelope {
            message_id: MessageId(parse_uuid(&row.try_get::<String, _>("message_id")?)?),
            message_type: row.try_get("message_type")?,
            correlation_id: parse_uuid(&row.try_get::<String, _>("correlation_id")?)?,
            causation_id: causation
                .as_deref()
                .map(parse_uuid)
                .transpose()?
                .map(MessageId),
            headers: serde_json::from_str(&headers).map_err(|e| sqlx::Error::Decode(e.into()))?,
            payload: row.try_get("payload")?,
            created_at: Timestamp(row.try_get("created_at")?),
            available_at: Timestamp(row.try_get("available_at")?),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        },
    })
}

pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// Completes a whole batch: one statement deletes its rows, one records its ids in the inbox
/// (each given its rows as one JSON array, so the text is the same for every batch size).
/// Rounds of hand-over per batch: a longer chain continues through the queue.
const HAND_OVER_ROUNDS: usize = 8;

/// The pairs among `keys` whose messages must go through the queue: those with anything in
/// the queue already and, on PostgreSQL, those whose advisory lock another transaction holds.
/// The locks of the others are now this transaction's (it may already hold some: the claim's
/// lock is re-entrant), so nothing else handles their correlation until it ends.
async fn keys_to_queue(
    conn: &mut storage::Conn<'_>,
    keys: &[(String, Uuid)],
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let pairs: Vec<(&str, String)> = keys
        .iter()
        .map(|(consumer, id)| (consumer.as_str(), id.to_string()))
        .collect();
    static SQL: PerBackend = PerBackend::new();
    let rows = sqlx::query(SQL.get(conn.backend(), keys_to_queue_sql))
        .bind(storage::json_param(&pairs)?)
        .fetch_all(&mut *conn)
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
        storage::json_rows(backend, 1)
    )
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

async fn complete_all(
    conn: &mut storage::Conn<'_>,
    claimed: &[Claimed],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let backend = conn.backend();
    let delete = format!(
        "DELETE FROM bus_queue WHERE id IN (SELECT CAST(j.value AS BIGINT) FROM {})",
        storage::json_values(backend, 1)
    );
    let ids: Vec<i64> = claimed.iter().map(|message| message.row_id).collect();
    sqlx::query(sqlx::AssertSqlSafe(delete))
        .bind(storage::json_param(&ids)?)
        .execute(&mut *conn)
        .await?;
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
    let insert = format!(
        "INSERT INTO bus_inbox (consumer, message_id, processed_at) \
         SELECT j.value ->> 0, j.value ->> 1, CAST($2 AS BIGINT) FROM {} WHERE true \
         ON CONFLICT (consumer, message_id) DO NOTHING",
        storage::json_rows(backend, 1)
    );
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(storage::json_param(&fresh)?)
        .bind(now.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that `consumer` completed `message_id`; false if it already had.
async fn remember_in_inbox(
    conn: &mut storage::Conn<'_>,
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

async fn delete_queued(conn: &mut storage::Conn<'_>, row_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bus_queue WHERE id = $1")
        .bind(row_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn dead_letter(
    conn: &mut storage::Conn<'_>,
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

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    format!("consumer panicked: {detail}")
}
