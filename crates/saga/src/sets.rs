//! The engine's set path ([`bus::Handler::handle_all`]): a worker batch's plain steps (an
//! instance started by its start event, or moved on by an event its state accepts, with
//! nothing parked) are written with at most three statements for the whole set: new
//! instances, moved instances, timeline. Every other case (parking, ignoring, rejecting,
//! re-offering parked events) is left to the one-by-one path, which knows them all.

use std::collections::HashMap;

use bus::{ConsumeError, Delivered, Envelope, Tx};
use uuid::Uuid;

use crate::Saga;
use crate::engine::{Engine, ReadAhead};
use crate::store::{self, Found, Step, Stored};

impl<S: Saga> Engine<S> {
    /// Writes the plain steps of `messages` together; returns the positions of the others.
    pub(crate) async fn consume_set(
        &self,
        messages: Vec<Delivered<'_, S::Event>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let mut stored = stored_for::<S>(tx, &messages).await?;
        let mut steps = Vec::with_capacity(messages.len());
        let mut left = Vec::new();
        for (index, delivered) in messages.into_iter().enumerate() {
            let id = delivered.envelope.correlation_id;
            let found = stored.remove(&id).unwrap_or_default();
            match self.plain_step(delivered.envelope, delivered.message, &found)? {
                Some(step) => steps.push(step),
                None => {
                    // Its one-by-one handling reads the instance from here, as it would have.
                    tx.scratch::<ReadAhead<S>>().rows.insert(id, found);
                    left.push(index);
                }
            }
        }
        let now = tx.now().await?;
        store::save_all(tx, S::NAME, &steps, now).await?;
        for step in &steps {
            tx.write_all_caused_by(step.message, &step.sent).await?;
            if step.finished {
                tx.cancel_scheduled(S::NAME, step.message.correlation_id)
                    .await?;
            }
        }
        Ok(left)
    }

    /// The step `event` (delivered in `message`) makes from `stored` if it is a plain one;
    /// `None` otherwise.
    fn plain_step<'m>(
        &self,
        message: &'m Envelope,
        event: S::Event,
        stored: &Stored,
    ) -> Result<Option<Step<'m>>, ConsumeError> {
        let found = store::decode::<S>(stored)?;
        let (from, version, transition) = match found {
            Found::Missing { parked: false } if self.saga().is_start(&event) => {
                (None, 1, self.saga().initially(&event))
            }
            Found::Instance(loaded)
                if !loaded.finished && !loaded.has_parked && !self.saga().is_start(&event) =>
            {
                let from = S::state_name(&loaded.state);
                (
                    Some(from),
                    loaded.version + 1,
                    self.saga().during(&loaded.state, &event),
                )
            }
            _ => return Ok(None),
        };
        let Ok((next, sent)) = transition else {
            return Ok(None);
        };
        Ok(Some(Step {
            message,
            from,
            to: S::state_name(&next),
            version,
            data: serde_json::to_string(&next)?,
            finished: S::is_final(&next),
            sent,
        }))
    }
}

/// The stored instances of `messages`: those read ahead for the batch, the rest read now
/// with one statement.
async fn stored_for<S: Saga>(
    tx: &mut Tx<'_>,
    messages: &[Delivered<'_, S::Event>],
) -> Result<HashMap<Uuid, Stored>, sqlx::Error> {
    let mut stored = HashMap::with_capacity(messages.len());
    let mut missing = Vec::new();
    for delivered in messages {
        let id = delivered.envelope.correlation_id;
        match tx.scratch::<ReadAhead<S>>().rows.remove(&id) {
            Some(found) => {
                stored.insert(id, found);
            }
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        stored.extend(store::read_stored(tx, S::NAME, &missing).await?);
    }
    Ok(stored)
}
