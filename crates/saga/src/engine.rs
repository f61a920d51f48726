//! The engine: runs a [`Saga`] as a bus consumer and does everything impure.

use std::collections::HashMap;
use std::sync::Arc;

use bus::{ConsumeError, Consumer, Delivered, Envelope, Handler, Messages, Outgoing, Tx};
use uuid::Uuid;

use crate::store::{self, Found, Loaded, Step, Stored};
use crate::{Rejected, Saga};

/// Failures of the engine itself, as opposed to rejections by the saga.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another transaction changed the instance between load and save; the message is
    /// retried against the new state.
    #[error("saga {saga} instance {id} changed concurrently (expected version {expected})")]
    Conflict {
        /// Saga name.
        saga: &'static str,
        /// Instance id.
        id: Uuid,
        /// Version the transition was computed from.
        expected: i64,
    },
    /// The saga says this event can never apply.
    #[error("saga {saga} rejected {event} in state {state}: {reason}")]
    Invalid {
        /// Saga name.
        saga: &'static str,
        /// Message type of the event.
        event: String,
        /// State it arrived in.
        state: String,
        /// The saga's reason.
        reason: String,
    },
}

/// Runs saga `S` on the bus: register [`Engine::consumer`] with the bus builder.
pub struct Engine<S: Saga> {
    saga: S,
}

impl<S: Saga> Engine<S> {
    /// The saga this engine runs.
    pub(crate) fn saga(&self) -> &S {
        &self.saga
    }

    /// Wraps a saga definition.
    pub fn new(saga: S) -> Self {
        Self { saga }
    }

    /// The engine as a bus consumer named `S::NAME`.
    pub fn consumer(saga: S) -> Arc<dyn Consumer> {
        Arc::new(Self::new(saga))
    }

    /// The typed current state of one instance, if it exists.
    pub async fn state(
        conn: &mut storage::Conn<'_>,
        id: Uuid,
    ) -> Result<Option<S::State>, sqlx::Error> {
        Ok(match store::load::<S>(conn, id).await? {
            Found::Instance(loaded) => Some(loaded.state),
            Found::Missing { .. } => None,
        })
    }

    async fn apply(
        &self,
        event: S::Event,
        message: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError> {
        let id = message.correlation_id;
        let found = match tx.scratch::<ReadAhead<S>>().rows.remove(&id) {
            Some(stored) => store::decode::<S>(&stored)?,
            None => store::load::<S>(tx, id).await?,
        };
        match found {
            Found::Missing { parked } if self.saga.is_start(&event) => {
                let (state, sent) = self
                    .saga
                    .initially(&event)
                    .map_err(|rejected| self.rejection_error(message, "Initial", rejected))?;
                self.create(tx, message, state, sent, parked).await
            }
            Found::Missing { .. } => park::<S>(tx, message, false).await,
            Found::Instance(loaded) if loaded.finished || self.saga.is_start(&event) => {
                tracing::info!(
                    saga = S::NAME,
                    state = S::state_name(&loaded.state),
                    "event ignored: instance finished or already started"
                );
                store::count_ignored(tx, S::NAME, id).await
            }
            Found::Instance(loaded) => match self.saga.during(&loaded.state, &event) {
                Ok((next, sent)) => self.advance(tx, message, id, loaded, next, sent).await,
                Err(Rejected::Early) => park::<S>(tx, message, !loaded.has_parked).await,
                Err(Rejected::Stale(reason)) => {
                    tracing::info!(saga = S::NAME, %reason, "stale event ignored");
                    store::count_ignored(tx, S::NAME, id).await
                }
                Err(rejected) => {
                    Err(self.rejection_error(message, S::state_name(&loaded.state), rejected))
                }
            },
        }
    }

    /// The subscription entry equal to `message_type`, which outlives any one message.
    fn static_type(message_type: &str) -> Option<&'static str> {
        S::Event::TYPES.iter().copied().find(|t| *t == message_type)
    }

    fn rejection_error(&self, message: &Envelope, state: &str, rejected: Rejected) -> ConsumeError {
        let reason = match rejected {
            Rejected::Early => "arrived before the instance existed".to_owned(),
            Rejected::Stale(reason) | Rejected::Invalid(reason) => reason,
        };
        ConsumeError::permanent(EngineError::Invalid {
            saga: S::NAME,
            event: message.message_type.clone(),
            state: state.to_owned(),
            reason,
        })
    }

    async fn create(
        &self,
        tx: &mut Tx<'_>,
        message: &Envelope,
        state: S::State,
        sent: Vec<Outgoing>,
        parked_before_start: bool,
    ) -> Result<(), ConsumeError> {
        let step = Step {
            message,
            from: None,
            to: S::state_name(&state),
            version: 1,
            data: serde_json::to_string(&state)?,
            finished: S::is_final(&state),
            sent,
        };
        self.save(tx, &step, 0).await?;
        let loaded = Loaded {
            finished: step.finished,
            state,
            version: 1,
            has_parked: parked_before_start,
        };
        self.after_transition(tx, message.correlation_id, loaded)
            .await
    }

    async fn advance(
        &self,
        tx: &mut Tx<'_>,
        message: &Envelope,
        id: Uuid,
        from: Loaded<S::State>,
        next: S::State,
        sent: Vec<Outgoing>,
    ) -> Result<(), ConsumeError> {
        let step = Step {
            message,
            from: Some(S::state_name(&from.state)),
            to: S::state_name(&next),
            version: from.version + 1,
            data: serde_json::to_string(&next)?,
            finished: S::is_final(&next),
            sent,
        };
        self.save(tx, &step, from.version).await?;
        let current = Loaded {
            state: next,
            version: step.version,
            finished: step.finished,
            has_parked: from.has_parked,
        };
        self.after_transition(tx, id, current).await
    }

    /// Saves `step` with a version check (the instance must still be at `expected`), then
    /// writes the messages it sends.
    async fn save(
        &self,
        tx: &mut Tx<'_>,
        step: &Step<'_>,
        expected: i64,
    ) -> Result<(), ConsumeError> {
        let now = tx.now().await?;
        if !store::save(tx, S::NAME, step, now).await? {
            return Err(ConsumeError::transient(EngineError::Conflict {
                saga: S::NAME,
                id: step.message.correlation_id,
                expected,
            }));
        }
        tx.write_all(&step.sent).await?;
        Ok(())
    }

    /// After a state change: finalize, or re-offer parked events to the new state.
    async fn after_transition(
        &self,
        tx: &mut Tx<'_>,
        id: Uuid,
        current: Loaded<S::State>,
    ) -> Result<(), ConsumeError> {
        if current.finished {
            tx.cancel_scheduled(S::NAME, id).await?;
            if current.has_parked {
                drop_parked(tx, S::NAME, id).await?;
            }
            return Ok(());
        }
        if !current.has_parked {
            return Ok(());
        }
        let mut still_parked = false;
        for parked in store::parked_events(tx, S::NAME, id).await? {
            let event = match S::Event::decode(&parked) {
                Ok(event) => event,
                Err(_) => continue,
            };
            match self.saga.during(&current.state, &event) {
                Ok((next, sent)) => {
                    store::unpark(tx, S::NAME, id, parked.message_id).await?;
                    tracing::info!(saga = S::NAME, message_id = %parked.message_id,
                        "parked event applied");
                    // The new state re-offers the remaining parked events itself.
                    return Box::pin(self.advance(tx, &parked, id, current, next, sent)).await;
                }
                Err(Rejected::Early) => still_parked = true,
                Err(Rejected::Stale(_)) => {
                    store::unpark(tx, S::NAME, id, parked.message_id).await?;
                    store::count_ignored(tx, S::NAME, id).await?;
                }
                Err(Rejected::Invalid(reason)) => {
                    store::unpark(tx, S::NAME, id, parked.message_id).await?;
                    tracing::warn!(saga = S::NAME, %reason, "parked event is invalid now");
                    hand_back::<S>(tx, id, &parked).await?;
                }
            }
        }
        if still_parked {
            store::flag_parked(tx, S::NAME, id).await?;
        }
        Ok(())
    }
}

/// Parks `message` until its instance can accept it; `flag` marks the (existing) instance as
/// having parked events.
async fn park<S: Saga>(
    tx: &mut Tx<'_>,
    message: &Envelope,
    flag: bool,
) -> Result<(), ConsumeError> {
    tracing::info!(
        saga = S::NAME,
        "event parked until the instance can accept it"
    );
    store::park(tx, S::NAME, message, flag).await
}

/// Events still parked when their instance finishes can never apply: they are as late as an
/// event arriving now, so they are dropped and counted like one rather than left waiting.
async fn drop_parked(tx: &mut Tx<'_>, saga: &str, id: Uuid) -> Result<(), ConsumeError> {
    let dropped = store::drop_parked(tx, saga, id).await?;
    if dropped > 0 {
        tracing::info!(
            saga,
            dropped,
            "parked events ignored: the instance finished"
        );
    }
    Ok(())
}

/// A parked event that became invalid goes back to the bus under a new id: the normal path
/// dead-letters it with its reason, where an operator sees it.
async fn hand_back<S: Saga>(
    tx: &mut Tx<'_>,
    id: Uuid,
    parked: &Envelope,
) -> Result<(), ConsumeError> {
    let Some(message_type) = Engine::<S>::static_type(&parked.message_type) else {
        return Ok(());
    };
    let outgoing = Outgoing {
        message_type,
        correlation_id: id,
        payload: parked.payload.clone(),
        headers: parked.headers.clone(),
        destination: bus::Destination::Consumer(S::NAME.to_owned()),
        delivery: bus::Delivery::Now,
    };
    tx.write(&outgoing).await?;
    Ok(())
}

/// The engine as the bus runs it: a handler of the saga's events, under the saga's name.
#[bus::async_trait]
impl<S: Saga> Handler for Engine<S> {
    type Messages = S::Event;

    fn name(&self) -> &str {
        S::NAME
    }

    async fn handle(
        &self,
        event: S::Event,
        message: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError> {
        self.apply(event, message, tx).await
    }

    /// The set's plain steps with a few statements (see `sets.rs`).
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, S::Event>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        if messages.len() < 2 {
            // One step alone: its own path writes instance and timeline in one statement.
            return Ok((0..messages.len()).collect());
        }
        self.consume_set(messages, tx).await
    }

    /// Reads the batch's instances with one statement instead of one per event.
    async fn prepare(&self, messages: &[&Envelope], tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let mut ids: Vec<Uuid> = messages.iter().map(|m| m.correlation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            // One instance: its own load is the same one statement.
            return Ok(());
        }
        for chunk in ids.chunks(READ_AHEAD_CHUNK) {
            let stored = store::read_stored(tx, S::NAME, chunk).await?;
            tx.scratch::<ReadAhead<S>>().rows.extend(stored);
        }
        Ok(())
    }
}

/// Instances of one batch read ahead by [`Engine`]'s `prepare`, in the batch's transaction.
/// Each is used by the first load of its id and then forgotten: the engine writes an instance
/// only after loading it, so an entry is never used once its row may have changed.
pub(crate) struct ReadAhead<S> {
    pub(crate) rows: HashMap<Uuid, Stored>,
    saga: std::marker::PhantomData<fn() -> S>,
}

impl<S> Default for ReadAhead<S> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            saga: std::marker::PhantomData,
        }
    }
}

/// Instances read ahead per statement.
const READ_AHEAD_CHUNK: usize = 500;
