//! The consumer side: what a handler implements and how it reports failure.
//!
//! A [`Handler`] declares the messages it handles once (its [`Messages`] type) and receives
//! them decoded; every handler is a [`Consumer`], the envelope-level trait the bus runs, whose
//! subscriptions and decoding follow from that declaration. A consumer that handles messages
//! it does not know the types of (a relay, a test double) implements [`Consumer`] itself.

use std::error::Error as StdError;

use async_trait::async_trait;

use crate::messages::Messages;
use crate::{Envelope, Tx};

/// A boxed error, so consumers can return any error type.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a consumer did not complete a message; decides between retrying and dead-lettering.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Might succeed later (a lock timeout, a lost connection): retried with backoff.
    #[error("transient: {0}")]
    Transient(#[source] BoxError),
    /// Will never succeed (a malformed payload, an event that is never valid): dead-lettered
    /// at once, without using up retries.
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

impl ConsumeError {
    /// A failure worth retrying.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self::Transient(error.into())
    }

    /// A failure no retry can fix.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }

    /// A lost race for rows another transaction changed since this one read them (an
    /// optimistic write that found them changed): the batch runs again, as after a lock
    /// timeout, without using up any message's attempts.
    pub fn lost_race(what: impl Into<String>) -> Self {
        Self::Transient(Box::new(LostRace(what.into())))
    }

    /// True for failures that go straight to the dead letters.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }

    /// True when the database gave up on a lock race (deadlock, serialization failure, lock
    /// timeout) rather than on the message: running it again is the fix, and it must not use
    /// up the message's attempts.
    pub fn is_contention(&self) -> bool {
        let mut source: Option<&(dyn StdError + 'static)> = match self {
            Self::Transient(error) => Some(error.as_ref()),
            Self::Permanent(_) => None,
        };
        while let Some(error) = source {
            if error.is::<LostRace>() {
                return true;
            }
            if let Some(sql) = error.downcast_ref::<sqlx::Error>() {
                return is_contention(sql);
            }
            source = error.source();
        }
        false
    }
}

/// See [`ConsumeError::lost_race`].
#[derive(Debug, thiserror::Error)]
#[error("lost a race for rows: {0}")]
struct LostRace(String);

/// A deadlock or serialization failure, or a lock not granted within the worker's lock timeout.
fn is_contention(error: &sqlx::Error) -> bool {
    matches!(
        storage::ErrorKind::of(error),
        storage::ErrorKind::LostRace | storage::ErrorKind::LockTimeout
    )
}

/// Database errors are retried: a busy lock or a dropped connection heals by itself, and a
/// deterministic failure still ends in the dead letters once the attempts run out.
impl From<sqlx::Error> for ConsumeError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(Box::new(error))
    }
}

/// Publishing from a consumer fails like the database does (transient), except for a send to a
/// consumer that does not exist, which no retry fixes.
impl From<crate::BusError> for ConsumeError {
    fn from(error: crate::BusError) -> Self {
        match error {
            crate::BusError::Sql(_) => Self::Transient(Box::new(error)),
            crate::BusError::UnknownConsumer(_) => Self::Permanent(Box::new(error)),
        }
    }
}

/// A payload that does not decode will not decode next time either.
impl From<serde_json::Error> for ConsumeError {
    fn from(error: serde_json::Error) -> Self {
        Self::Permanent(Box::new(error))
    }
}

/// A message handler with a stable name, at the level of envelopes: what the bus runs. Most
/// consumers implement [`Handler`] instead, which declares its messages once and gets them
/// decoded; implement this one to handle types that are not known in advance.
///
/// `consume` runs inside the transaction that also marks the message done: every write it
/// makes through `tx`, and every message it publishes there, commits if and only if the message
/// is completed. A handler whose effects live in this database is therefore applied exactly
/// once, however often the message is redelivered.
#[async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// Stable name: queue rows are addressed to it, so renaming orphans pending messages.
    fn name(&self) -> &str;

    /// Message types this consumer receives when they are published.
    fn subscriptions(&self) -> Vec<&'static str>;

    /// Handles one message. Messages it publishes through `tx` carry this message as their
    /// cause.
    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError>;

    /// Reads ahead, in the batch's transaction, what handling `messages` one by one would read
    /// with one statement each, and keeps it in [`Tx::scratch`]. Called again before each round
    /// handed over (see [`crate::BusConfig::hand_over`]), so what it keeps replaces what it
    /// kept before; never called for messages handled one at a time, so `consume` must not
    /// depend on it. Does nothing by default.
    async fn prepare(&self, messages: &[&Envelope], tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let _ = (messages, tx);
        Ok(())
    }

    /// Handles several messages together, where a few set-based statements do the work of a
    /// few per message: at a network's distance from the database every statement is a round
    /// trip. Called in a worker batch's fast pass (for one message or more) with messages of
    /// distinct correlation ids, in the order they were claimed; what it sends names its cause with [`Tx::publish_caused_by`] or
    /// [`Tx::write_all_caused_by`]. Its effects must be those of `consume` on each message in
    /// turn: after a failure the batch rolls back and `consume` handles each message alone.
    ///
    /// Returns the positions in `messages` of those it left alone (the uncommon cases, say),
    /// which the bus then hands to `consume` one by one. By default it leaves them all.
    async fn consume_all(
        &self,
        messages: &[&Envelope],
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let _ = tx;
        Ok((0..messages.len()).collect())
    }

    /// Writes what [`Consumer::consume_all`] kept back for the end of the batch, just before
    /// its commit: changes to rows that other transactions change too (stock counts, say),
    /// which are then locked only from here to the commit instead of through the whole batch.
    /// Called once per batch whose fast pass reached its end; a failure (a lost race) rolls
    /// the batch back. Does nothing by default.
    async fn finish_batch(&self, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let _ = tx;
        Ok(())
    }
}

/// A message delivered to a [`Handler`]'s set path: the message decoded, and the envelope it
/// came in (its correlation id, and its id to name as the cause of what is sent in answer).
#[derive(Debug)]
pub struct Delivered<'e, M> {
    /// The envelope as the bus delivered it.
    pub envelope: &'e Envelope,
    /// Its payload, decoded.
    pub message: M,
}

/// A consumer that declares the messages it handles once, as [`Handler::Messages`]: it
/// subscribes to their types and receives them decoded. Registered with the bus like any
/// [`Consumer`] (every handler is one), and with the same guarantees: `handle` runs inside the
/// transaction that completes the message.
///
/// A message whose payload does not decode as declared fails permanently (it goes to the dead
/// letters at once).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// What it handles: one [`crate::Message`] type, or an enum of several declared with
    /// [`messages!`](crate::messages).
    type Messages: Messages;

    /// Stable name: queue rows are addressed to it, so renaming orphans pending messages.
    fn name(&self) -> &str;

    /// Handles one message, delivered in `envelope`. Messages it publishes through `tx` carry
    /// it as their cause.
    async fn handle(
        &self,
        message: Self::Messages,
        envelope: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError>;

    /// See [`Consumer::prepare`]: reads ahead for a batch; needs no decoded message.
    async fn prepare(&self, messages: &[&Envelope], tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let _ = (messages, tx);
        Ok(())
    }

    /// See [`Consumer::consume_all`]: handles a set of messages together and returns the
    /// positions of those it left for [`Handler::handle`]. By default it leaves them all.
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, Self::Messages>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let _ = tx;
        Ok((0..messages.len()).collect())
    }

    /// See [`Consumer::finish_batch`]. Does nothing by default.
    async fn finish_batch(&self, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let _ = tx;
        Ok(())
    }
}

/// A handler as the bus runs it: subscribed to its declared types, each envelope decoded
/// before it is handed over.
#[async_trait]
impl<H: Handler> Consumer for H {
    fn name(&self) -> &str {
        Handler::name(self)
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        H::Messages::TYPES.to_vec()
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let decoded = H::Messages::decode(message)?;
        self.handle(decoded, message, tx).await
    }

    async fn prepare(&self, messages: &[&Envelope], tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        Handler::prepare(self, messages, tx).await
    }

    /// A set with a message that does not decode fails as a whole: the batch then handles each
    /// message alone, and that one goes to the dead letters.
    async fn consume_all(
        &self,
        messages: &[&Envelope],
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let mut decoded = Vec::with_capacity(messages.len());
        for &envelope in messages {
            let message = H::Messages::decode(envelope)?;
            decoded.push(Delivered { envelope, message });
        }
        self.handle_all(decoded, tx).await
    }

    async fn finish_batch(&self, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        Handler::finish_batch(self, tx).await
    }
}
