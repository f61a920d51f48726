//! The consumer side: what a handler implements and how it reports failure.

use std::error::Error as StdError;

use async_trait::async_trait;

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

/// A message handler with a stable name.
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
