//! The bus handle, its configuration, and the transaction type that publishes.

use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::outbox::{Mark, Outbox};
use crate::queue::QueueRow;
use crate::{BusConfig, Consumer, Delivery, Destination, Headers, Message, MessageId, Outgoing};
use storage::{Db, Timestamp};

/// Errors of the publishing and administration API.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A statement failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// `send` named a consumer that is not registered.
    #[error("no consumer named {0:?} is registered")]
    UnknownConsumer(String),
}

/// Counters since start-up, for health checks, tests and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BusStats {
    /// Messages completed by their consumer.
    pub completed: u64,
    /// Deliveries skipped because the message id was already completed.
    pub duplicates: u64,
    /// Failed attempts that were scheduled for retry.
    pub retried: u64,
    /// Messages moved to the dead letters.
    pub dead_lettered: u64,
    /// Transactions committed by workers.
    pub batches: u64,
    /// Batches rolled back and run again because they lost a lock race (PostgreSQL).
    pub contended: u64,
    /// Jobs run through [`Bus::transact`] in shared transactions (SQLite).
    pub grouped_jobs: u64,
    /// Commits of those shared transactions: jobs per commit is what group commit saved.
    pub group_commits: u64,
    /// Messages handled in the worker batch that sent them, never queued
    /// (see [`BusConfig::hand_over`]); also counted in `completed`.
    pub handed_over: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub completed: AtomicU64,
    pub duplicates: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    pub contended: AtomicU64,
    pub grouped_jobs: AtomicU64,
    pub group_commits: AtomicU64,
    pub handed_over: AtomicU64,
}

pub(crate) struct Inner {
    pub db: Db,
    pub config: BusConfig,
    pub consumers: HashMap<String, Arc<dyn Consumer>>,
    /// Message type → names of the consumers subscribed to it.
    pub routes: HashMap<&'static str, Vec<String>>,
    pub wake: Notify,
    pub counters: Counters,
    pub watchers: crate::watch::Watchers,
    pub group: GroupCommit,
    /// PostgreSQL: the sender of this bus's news to every instance.
    pub notifications: crate::notify::Notifications,
}

/// The queue in front of the group-commit writer (see [`Bus::transact`]), which starts with
/// the first job. Kept here, beside the transaction its jobs run in, so that the writer's file
/// builds on this one and not the other way round.
#[derive(Default)]
pub(crate) struct GroupCommit {
    pub queue: OnceLock<mpsc::UnboundedSender<GroupJob>>,
    /// Jobs queued and not yet taken by the writer.
    pub waiting: std::sync::atomic::AtomicUsize,
}

/// A job queued for group commit.
pub(crate) struct GroupJob {
    /// Runs the job, as often as the writer needs: true if it succeeded.
    pub run: GroupRun,
    /// The outcome of the group's commit.
    pub committed: oneshot::Sender<Result<(), Arc<sqlx::Error>>>,
}

/// A job as the writer runs it. Each run replaces the result its caller receives after the
/// commit.
pub(crate) type GroupRun =
    Box<dyn for<'t, 'c> Fn(&'t mut Tx<'c>) -> TxFuture<'t, bool> + Send + Sync>;

/// A boxed future borrowing the transaction it runs in.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

/// Handle to the bus: cheap to clone, shared by everything that publishes or administers.
#[derive(Clone)]
pub struct Bus {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field(
                "consumers",
                &self.inner.consumers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Collects consumers before the bus starts: the topology is fixed once built.
pub struct BusBuilder {
    db: Db,
    config: BusConfig,
    consumers: Vec<Arc<dyn Consumer>>,
}

impl BusBuilder {
    /// Replaces the default configuration.
    pub fn config(mut self, config: BusConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers a consumer and its subscriptions.
    pub fn consumer(mut self, consumer: Arc<dyn Consumer>) -> Self {
        self.consumers.push(consumer);
        self
    }

    /// Freezes the topology. Two consumers with one name are a programming error.
    pub fn build(self) -> Bus {
        let mut consumers = HashMap::new();
        let mut routes: HashMap<&'static str, Vec<String>> = HashMap::new();
        for consumer in self.consumers {
            let name = consumer.name().to_owned();
            for message_type in consumer.subscriptions() {
                routes.entry(message_type).or_default().push(name.clone());
            }
            let previous = consumers.insert(name.clone(), consumer);
            assert!(previous.is_none(), "consumer {name:?} registered twice");
        }
        Bus {
            inner: Arc::new(Inner {
                db: self.db,
                config: self.config,
                consumers,
                routes,
                wake: Notify::new(),
                counters: Counters::default(),
                watchers: Default::default(),
                group: Default::default(),
                notifications: Default::default(),
            }),
        }
    }
}

impl Bus {
    /// Starts describing a bus on `db`.
    pub fn builder(db: Db) -> BusBuilder {
        BusBuilder {
            db,
            config: BusConfig::default(),
            consumers: Vec::new(),
        }
    }

    /// Creates the bus tables if they are missing.
    pub async fn migrate(db: &Db) -> Result<(), storage::DbError> {
        db.migrate(storage::Migrations {
            sqlite: sqlx::migrate!("./migrations/sqlite"),
            postgres: sqlx::migrate!("./migrations/postgres"),
        })
        .await
    }

    /// The database the bus lives in.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Begins a write transaction that can publish: its messages commit or roll back with
    /// the caller's own writes, and the workers are woken once it commits.
    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(Tx {
            inner: self.inner.db.begin().await?,
            bus: self.clone(),
            causation: None,
            now: None,
            outbox: Outbox::default(),
            savepoint: None,
            scratch: HashMap::new(),
            message_spans: Vec::new(),
        })
    }

    /// Counters since start-up.
    pub fn stats(&self) -> BusStats {
        let c = &self.inner.counters;
        BusStats {
            completed: c.completed.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            contended: c.contended.load(Ordering::Relaxed),
            grouped_jobs: c.grouped_jobs.load(Ordering::Relaxed),
            group_commits: c.group_commits.load(Ordering::Relaxed),
            handed_over: c.handed_over.load(Ordering::Relaxed),
        }
    }

    /// Write transactions queued for the group-commit writer (SQLite) and not yet taken up by
    /// it: how far requests' writes are behind the single writer. Always 0 on PostgreSQL.
    pub fn writer_queue(&self) -> usize {
        self.inner.group.waiting.load(Ordering::Relaxed)
    }

    /// Names of the consumers subscribed to `message_type`.
    pub fn subscribers(&self, message_type: &str) -> &[String] {
        self.inner
            .routes
            .get(message_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Completes when a transaction that [announced a change](Tx::announce_change) of
    /// `correlation_id` next commits, so that a caller can wait for news (an order's next
    /// status) instead of polling. On PostgreSQL, changes committed by other instances arrive
    /// through `LISTEN` while this instance's workers run; wait with a timeout all the same
    /// and look again (a listener can lose its connection).
    pub fn changed_next(
        &self,
        correlation_id: uuid::Uuid,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let signal = self.inner.watchers.watch(correlation_id);
        async move {
            // A dropped sender (the bus is gone) also ends the wait: the caller looks again.
            let _ = signal.await;
        }
    }

    /// The consumers an outgoing message is queued for.
    fn destinations<'b>(&'b self, outgoing: &'b Outgoing) -> Result<&'b [String], BusError> {
        match &outgoing.destination {
            Destination::Subscribers => Ok(self.subscribers(outgoing.message_type)),
            Destination::Consumer(name) if self.inner.consumers.contains_key(name) => {
                Ok(std::slice::from_ref(name))
            }
            Destination::Consumer(name) => Err(BusError::UnknownConsumer(name.clone())),
        }
    }

    pub(crate) fn wake_workers(&self) {
        self.inner.wake.notify_one();
    }

    /// After a commit that queued messages due within `soonest_due` or announced changes:
    /// wakes the workers and the waiters of those changes, here and, on PostgreSQL, in every
    /// instance.
    ///
    /// Workers are woken only for a message due within a poll interval: an idle worker never
    /// sleeps longer than that, and when it wakes it looks for the earliest message and sleeps
    /// until then. So a message scheduled for later (a checkout's payment timeout, every
    /// checkout) wakes nobody, where each used to cost every instance's workers an empty claim
    /// and, on PostgreSQL, a notification.
    pub(crate) fn committed(&self, soonest_due: Option<Duration>, changed: Vec<uuid::Uuid>) {
        let wake = soonest_due.is_some_and(|due| due <= self.inner.config.poll_interval);
        if self.inner.db.is_shared() && (wake || !changed.is_empty()) {
            self.tell_instances(wake, &changed);
        }
        if wake {
            self.wake_workers();
        }
        if !changed.is_empty() {
            self.inner.watchers.notify(changed);
        }
    }
}

/// A write transaction that can also publish messages (the transactional outbox).
///
/// It dereferences to the connection, so the caller's own statements run on it
/// (`query.execute(&mut *tx)`). Nothing is delivered unless [`Tx::commit`] succeeds; the
/// messages are inserted into `bus_queue` by that commit, so the transaction's own statements
/// do not see them in the table.
pub struct Tx<'c> {
    inner: storage::Transaction<'c>,
    bus: Bus,
    /// The message being consumed, recorded as the cause of everything published here.
    causation: Option<MessageId>,
    /// The database time of this transaction, read once.
    now: Option<Timestamp>,
    /// Messages, withdrawals and announced changes written here, applied at the outermost commit (see
    /// [`crate::outbox`]); shared with savepoints.
    outbox: Outbox,
    /// For a savepoint, where its outbox entries begin.
    savepoint: Option<Mark>,
    /// See [`Tx::scratch`].
    scratch: HashMap<std::any::TypeId, Box<dyn std::any::Any + Send>>,
    /// The spans of the traced messages a consumer handles together
    /// ([`crate::Consumer::consume_all`]): what it sends in answer to one continues that one's
    /// trace.
    message_spans: Vec<(MessageId, tracing::Span)>,
}

impl<'c> Deref for Tx<'c> {
    type Target = storage::Conn<'c>;

    fn deref(&self) -> &storage::Conn<'c> {
        &self.inner
    }
}

impl<'c> DerefMut for Tx<'c> {
    fn deref_mut(&mut self) -> &mut storage::Conn<'c> {
        &mut self.inner
    }
}

impl Tx<'_> {
    /// Commits; on success wakes the workers if messages were written, and the waiters of
    /// the changes announced. On PostgreSQL every instance's are told, once the commit has
    /// succeeded (see `notify.rs` for why not by the transaction itself).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Some(mark) = self.savepoint.take() {
            // A savepoint: its messages stay in the log, for the outermost commit.
            self.inner.commit().await?;
            mark.keep();
            return Ok(());
        }
        let crate::outbox::Flushed {
            soonest_due,
            changed,
        } = self.outbox.flush(&mut self.inner).await?;
        self.inner.commit().await?;
        self.bus.committed(soonest_due, changed);
        Ok(())
    }

    /// Wakes whoever waits in [`Bus::changed_next`] for `correlation_id` once this transaction
    /// commits (nobody, if it or the savepoint announcing it rolls back): call it where a
    /// change that clients wait for is written, such as an order's new status.
    pub fn announce_change(&mut self, correlation_id: uuid::Uuid) {
        self.outbox.announce(correlation_id);
    }

    /// Rolls back every write and every message of this transaction.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// A savepoint inside this transaction: its writes can be undone alone.
    pub async fn savepoint(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        Ok(Tx {
            inner: self.inner.savepoint().await?,
            bus: self.bus.clone(),
            causation: self.causation,
            now: self.now,
            savepoint: Some(self.outbox.mark()),
            outbox: self.outbox.clone(),
            scratch: HashMap::new(),
            message_spans: Vec::new(),
        })
    }

    /// The transaction's log of messages, for the worker's hand-over.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Marks everything published from now on as caused by `cause` (the message a worker is
    /// handling in this transaction), or by nothing.
    pub(crate) fn set_causation(&mut self, cause: Option<MessageId>) {
        self.causation = cause;
    }

    /// Keeps the spans of the messages a consumer is about to handle together, until
    /// [`Tx::take_message_spans`].
    pub(crate) fn keep_message_spans(&mut self, spans: Vec<(MessageId, tracing::Span)>) {
        self.message_spans = spans;
    }

    /// Gives back the spans kept by [`Tx::keep_message_spans`].
    pub(crate) fn take_message_spans(&mut self) -> Vec<(MessageId, tracing::Span)> {
        std::mem::take(&mut self.message_spans)
    }

    /// The trace context messages written now carry: that of the message they answer when a
    /// consumer handles several together, else that of the current span.
    fn trace_context(&self) -> Headers {
        let cause_span = self.causation.and_then(|cause| {
            self.message_spans
                .iter()
                .find(|(id, _)| *id == cause)
                .map(|(_, span)| span)
        });
        match cause_span {
            Some(span) => crate::trace::context_of(span),
            None => crate::trace::context_of(&tracing::Span::current()),
        }
    }

    pub(crate) async fn consuming(&mut self, cause: MessageId) -> Result<Tx<'_>, sqlx::Error> {
        let mut savepoint = self.savepoint().await?;
        savepoint.causation = Some(cause);
        Ok(savepoint)
    }

    /// Space for consumers to keep what they read ahead in [`crate::Consumer::prepare`], one
    /// value per type, gone with this transaction (a savepoint starts with its own, empty).
    /// What is kept here is only as current as this transaction keeps it: whoever stores a
    /// row must stop using it once the row may have changed.
    pub fn scratch<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.scratch
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("scratch entries are keyed by their type")
    }

    /// The bus this transaction publishes to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The time of this transaction by the database's clock (read once, then reused), by which
    /// scheduled messages and deadlines are judged on every backend and instance alike.
    pub async fn now(&mut self) -> Result<Timestamp, sqlx::Error> {
        if let Some(now) = self.now {
            return Ok(now);
        }
        let now = self.bus.inner.db.now_in(&mut self.inner).await?;
        self.now = Some(now);
        Ok(now)
    }

    /// A worker batch's start: bounds the transaction's lock waits and reads its clock (see
    /// [`queue::limit_lock_waits_and_read_clock`]), which [`Tx::now`] then returns.
    pub(crate) async fn limit_lock_waits_and_read_clock(
        &mut self,
    ) -> Result<Timestamp, sqlx::Error> {
        let now =
            crate::queue::limit_lock_waits_and_read_clock(&mut self.inner, &self.bus.inner.db)
                .await?;
        self.now = Some(now);
        Ok(now)
    }

    /// Publishes `message` to every consumer subscribed to its type; returns its id.
    pub async fn publish<M: Message>(&mut self, message: &M) -> Result<MessageId, BusError> {
        self.write(&Outgoing::publish(message)).await
    }

    /// Publishes `message` as caused by `cause`, for a consumer that handles several messages
    /// at once ([`crate::Consumer::consume_all`]) and answers each.
    pub async fn publish_caused_by<M: Message>(
        &mut self,
        cause: &crate::Envelope,
        message: &M,
    ) -> Result<MessageId, BusError> {
        let ids = self
            .write_all_caused_by(cause, &[Outgoing::publish(message)])
            .await?;
        Ok(ids[0])
    }

    /// Writes `outgoing` under fresh ids as caused by `cause` (see [`Tx::publish_caused_by`]).
    pub async fn write_all_caused_by(
        &mut self,
        cause: &crate::Envelope,
        outgoing: &[Outgoing],
    ) -> Result<Vec<MessageId>, BusError> {
        let outer = self.causation.replace(cause.message_id);
        let written = self.write_all(outgoing).await;
        self.causation = outer;
        written
    }

    /// Sends `message` to the single consumer named `consumer`.
    pub async fn send<M: Message>(
        &mut self,
        consumer: &str,
        message: &M,
    ) -> Result<MessageId, BusError> {
        self.write(&Outgoing::send(consumer, message)).await
    }

    /// Publishes `message` for delivery at `at`.
    pub async fn schedule<M: Message>(
        &mut self,
        at: Timestamp,
        message: &M,
    ) -> Result<MessageId, BusError> {
        self.write(&Outgoing::publish(message).at(at)).await
    }

    /// Withdraws the not-yet-due scheduled messages of one correlation id addressed to
    /// `consumer` (a saga's timeouts once it has finished); retries of failed messages stay.
    /// It takes effect when this transaction commits, on the messages committed before and on
    /// those written before it in this transaction; a savepoint rolled back takes its
    /// withdrawals with it.
    pub async fn cancel_scheduled(
        &mut self,
        consumer: &str,
        correlation_id: uuid::Uuid,
    ) -> Result<(), BusError> {
        let now = self.now().await?;
        self.outbox.withdraw(consumer, correlation_id, now);
        Ok(())
    }

    /// Takes back, now, the committed messages of type `message_type` that wait for `consumer`
    /// under `correlation_id` (a pending timeout), and tells whether there were any by
    /// returning the headers of one: a token a request and the consumer race for, with one
    /// winner (a payment that takes its timeout can never be overtaken by it). The headers
    /// carry the trace of the process that scheduled it, for the taker to join
    /// ([`crate::trace::joining`]). A worker handling the message holds it, so this waits for
    /// that worker; a rollback puts the messages back.
    pub async fn take_scheduled(
        &mut self,
        consumer: &str,
        correlation_id: uuid::Uuid,
        message_type: &str,
    ) -> Result<Option<Headers>, BusError> {
        let taken: Vec<String> = sqlx::query_scalar(
            "DELETE FROM bus_queue WHERE consumer = $1 AND correlation_id = $2 \
             AND message_type = $3 RETURNING headers",
        )
        .bind(consumer)
        .bind(correlation_id.to_string())
        .bind(message_type)
        .fetch_all(&mut *self.inner)
        .await?;
        // Headers that do not parse (written by hand, say) still make a token.
        Ok(taken
            .first()
            .map(|headers| serde_json::from_str(headers).unwrap_or_default()))
    }

    /// Writes an outgoing message under a fresh id.
    pub async fn write(&mut self, outgoing: &Outgoing) -> Result<MessageId, BusError> {
        let id = MessageId::new();
        self.write_with_id(id, outgoing).await?;
        Ok(id)
    }

    /// Writes several outgoing messages under fresh ids with one statement: a saga step that
    /// sends three messages costs one round trip to the database, not three.
    pub async fn write_all(&mut self, outgoing: &[Outgoing]) -> Result<Vec<MessageId>, BusError> {
        let messages: Vec<(MessageId, &Outgoing)> = outgoing
            .iter()
            .map(|message| (MessageId::new(), message))
            .collect();
        self.write_messages(&messages).await?;
        Ok(messages.into_iter().map(|(id, _)| id).collect())
    }

    /// Writes an outgoing message under a given id. Writing the same id twice for the same
    /// consumer is a no-op while the first is queued, and the consumer skips it afterwards:
    /// this is how a producer that may repeat itself (an HTTP retry) stays idempotent.
    pub async fn write_with_id(
        &mut self,
        id: MessageId,
        outgoing: &Outgoing,
    ) -> Result<(), BusError> {
        self.write_messages(&[(id, outgoing)]).await
    }

    /// One queue row per (message, destination consumer), kept until the commit.
    async fn write_messages(
        &mut self,
        messages: &[(MessageId, &Outgoing)],
    ) -> Result<(), BusError> {
        let now = self.now().await?;
        let bus = self.bus.clone();
        let trace = self.trace_context();
        for (id, outgoing) in messages {
            let consumers = bus.destinations(outgoing)?;
            if consumers.is_empty() {
                tracing::warn!(message_type = outgoing.message_type, message_id = %id,
                    "published a message no consumer subscribes to");
            }
            let carried = crate::trace::add_to(&outgoing.headers, &trace);
            let headers = carried.as_ref().unwrap_or(&outgoing.headers);
            let headers: Arc<str> = crate::message::headers_json(headers).into();
            let payload: Arc<str> = outgoing.payload.as_str().into();
            let message_type: Arc<str> = outgoing.message_type.into();
            let available_at = match outgoing.delivery {
                Delivery::Now => now,
                Delivery::After(delay) => now.plus(delay),
                Delivery::At(at) => at,
            };
            self.outbox.write(consumers.iter().map(|consumer| QueueRow {
                message_id: *id,
                consumer: consumer.clone(),
                message_type: Arc::clone(&message_type),
                correlation_id: outgoing.correlation_id,
                causation_id: self.causation,
                headers: Arc::clone(&headers),
                payload: Arc::clone(&payload),
                created_at: now,
                available_at,
            }));
        }
        Ok(())
    }
}
