//! The engine: runs a [`Saga`] as a bus consumer and does everything impure.

use std::collections::HashMap;
use std::sync::Arc;

use bus::{ConsumeError, Consumer, Envelope, Headers, MessageId, Outgoing, Tx};

use sqlx::Row;
use storage::Timestamp;
use uuid::Uuid;

use crate::store::{decode_error, parse_uuid};
use crate::{Events, Rejected, Saga};

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

/// What the engine finds under a correlation id.
pub(crate) enum Found<S> {
    /// The instance.
    Instance(Loaded<S>),
    /// No instance yet; `parked` says whether events arrived before it and wait in
    /// `saga_parked` (they were parked without a flag, as there was no instance to flag).
    Missing { parked: bool },
}

/// A stored instance as the engine needs it.
pub(crate) struct Loaded<S> {
    pub(crate) state: S,
    pub(crate) version: i64,
    pub(crate) finished: bool,
    /// Events may wait in `saga_parked` for this instance.
    pub(crate) has_parked: bool,
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
        Ok(match load::<S>(conn, id).await? {
            Found::Instance(loaded) => Some(loaded.state),
            Found::Missing { .. } => None,
        })
    }

    async fn handle(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let event = S::Event::decode(message)?;
        let id = message.correlation_id;
        let found = match tx.scratch::<ReadAhead<S>>().rows.remove(&id) {
            Some(stored) => decode::<S>(&stored)?,
            None => load::<S>(tx, id).await?,
        };
        match found {
            Found::Missing { parked } if self.saga.is_start(&event) => {
                let (state, sent) = self
                    .saga
                    .initially(&event)
                    .map_err(|rejected| self.rejection_error(message, "Initial", rejected))?;
                self.create(tx, message, state, sent, parked).await
            }
            Found::Missing { .. } => park(tx, S::NAME, message, false).await,
            Found::Instance(loaded) if loaded.finished || self.saga.is_start(&event) => {
                tracing::info!(
                    saga = S::NAME,
                    state = S::state_name(&loaded.state),
                    "event ignored: instance finished or already started"
                );
                count_ignored(tx, S::NAME, id).await
            }
            Found::Instance(loaded) => match self.saga.during(&loaded.state, &event) {
                Ok((next, sent)) => self.advance(tx, message, id, loaded, next, sent).await,
                Err(Rejected::Early) => park(tx, S::NAME, message, !loaded.has_parked).await,
                Err(Rejected::Stale(reason)) => {
                    tracing::info!(saga = S::NAME, %reason, "stale event ignored");
                    count_ignored(tx, S::NAME, id).await
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
        let id = message.correlation_id;
        let now = tx.now().await?;
        let step = Step {
            saga: S::NAME,
            message,
            from: None,
            to: S::state_name(&state),
            version: 1,
            sent: &sent,
        };
        let data = serde_json::to_string(&state)?;
        let completed_at = S::is_final(&state).then_some(now.0);
        if !step.save(tx, now, &data, completed_at).await? {
            return Err(ConsumeError::transient(EngineError::Conflict {
                saga: S::NAME,
                id,
                expected: 0,
            }));
        }
        let loaded = Loaded {
            finished: S::is_final(&state),
            state,
            version: 1,
            has_parked: parked_before_start,
        };
        self.after_transition(tx, id, loaded).await
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
        let now = tx.now().await?;
        let finished = S::is_final(&next);
        let version = from.version + 1;
        let step = Step {
            saga: S::NAME,
            message,
            from: Some(S::state_name(&from.state)),
            to: S::state_name(&next),
            version,
            sent: &sent,
        };
        let data = serde_json::to_string(&next)?;
        if !step.save(tx, now, &data, finished.then_some(now.0)).await? {
            return Err(ConsumeError::transient(EngineError::Conflict {
                saga: S::NAME,
                id,
                expected: from.version,
            }));
        }
        self.after_transition(
            tx,
            id,
            Loaded {
                state: next,
                version,
                finished,
                has_parked: from.has_parked,
            },
        )
        .await
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
        for parked in parked_events(tx, S::NAME, id).await? {
            let event = match S::Event::decode(&parked) {
                Ok(event) => event,
                Err(_) => continue,
            };
            match self.saga.during(&current.state, &event) {
                Ok((next, sent)) => {
                    unpark(tx, S::NAME, id, parked.message_id).await?;
                    tracing::info!(saga = S::NAME, message_id = %parked.message_id,
                        "parked event applied");
                    // The new state re-offers the remaining parked events itself.
                    return Box::pin(self.advance(tx, &parked, id, current, next, sent)).await;
                }
                Err(Rejected::Early) => still_parked = true,
                Err(Rejected::Stale(_)) => {
                    unpark(tx, S::NAME, id, parked.message_id).await?;
                    count_ignored(tx, S::NAME, id).await?;
                }
                Err(Rejected::Invalid(reason)) => {
                    // Hand it back to the bus under a new id: the normal path dead-letters it
                    // with this reason, where an operator sees it.
                    unpark(tx, S::NAME, id, parked.message_id).await?;
                    tracing::warn!(saga = S::NAME, %reason, "parked event is invalid now");
                    let Some(message_type) = Self::static_type(&parked.message_type) else {
                        continue;
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
                }
            }
        }
        if still_parked {
            flag_parked(tx, S::NAME, id).await?;
        }
        Ok(())
    }
}

#[bus::async_trait]
impl<S: Saga> Consumer for Engine<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        S::Event::TYPES.to_vec()
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        self.handle(message, tx).await
    }

    /// The set's plain steps with a few statements (see `sets.rs`).
    async fn consume_all(
        &self,
        messages: &[&Envelope],
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
            let stored = read_stored(tx, S::NAME, chunk).await?;
            tx.scratch::<ReadAhead<S>>().rows.extend(stored);
        }
        Ok(())
    }
}

/// One applied transition, written to the outbox and the timeline.
struct Step<'a> {
    saga: &'static str,
    message: &'a Envelope,
    from: Option<&'static str>,
    to: &'static str,
    version: i64,
    sent: &'a [Outgoing],
}

/// Writes the instance (created at version 1, or moved from `version - 1` to `version`) in the
/// same statement as its timeline row, so a step costs one round trip to the database less;
/// PostgreSQL chains them with a CTE, SQLite runs both statements in one command and inserts
/// the timeline row only if the instance was written (`changes()`).
const CREATE_INSTANCE: &str = "INSERT INTO saga_instances (saga, correlation_id, state, data, \
    version, created_at, updated_at, completed_at) VALUES ($1, $2, $8, $10, $3, $4, $4, $11) \
    ON CONFLICT (saga, correlation_id) DO NOTHING";
const ADVANCE_INSTANCE: &str = "UPDATE saga_instances SET state = $8, data = $10, version = $3, \
    updated_at = $4, completed_at = $11 \
    WHERE saga = $1 AND correlation_id = $2 AND version = $3 - 1";
const TIMELINE_COLUMNS: &str = "INSERT INTO saga_timeline (saga, correlation_id, seq, at, event, \
    message_id, from_state, to_state, messages_sent) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9";

impl Step<'_> {
    /// Saves the instance with its new `data` and timeline row, then its outgoing messages;
    /// false (nothing written) if the instance was not at the expected version.
    async fn save(
        &self,
        tx: &mut Tx<'_>,
        now: Timestamp,
        data: &str,
        completed_at: Option<i64>,
    ) -> Result<bool, ConsumeError> {
        let write = if self.from.is_none() {
            CREATE_INSTANCE
        } else {
            ADVANCE_INSTANCE
        };
        let sql = storage::sql::insert_if_written(tx.bus().db().backend(), write, TIMELINE_COLUMNS);
        let types: Vec<&str> = self.sent.iter().map(|m| m.message_type).collect();
        let written = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.saga)
            .bind(self.message.correlation_id.to_string())
            .bind(self.version)
            .bind(now.0)
            .bind(&self.message.message_type)
            .bind(self.message.message_id.to_string())
            .bind(self.from)
            .bind(self.to)
            .bind(serde_json::to_string(&types)?)
            .bind(data)
            .bind(completed_at)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if written == 0 {
            return Ok(false);
        }
        tx.write_all(self.sent).await?;
        Ok(true)
    }
}

/// The instance, or whether events wait for it: one statement either way, so that starting an
/// instance costs no separate look for events parked before it.
async fn load<S: Saga>(
    conn: &mut storage::Conn<'_>,
    id: Uuid,
) -> Result<Found<S::State>, sqlx::Error> {
    let mut stored = read_stored(conn, S::NAME, &[id]).await?;
    decode::<S>(&stored.remove(&id).unwrap_or_default())
}

/// An instance row as read, or its absence and whether events were parked for it.
#[derive(Default)]
pub(crate) struct Stored {
    data: Option<String>,
    version: i64,
    finished: bool,
    has_parked: bool,
}

pub(crate) fn decode<S: Saga>(stored: &Stored) -> Result<Found<S::State>, sqlx::Error> {
    let Some(data) = &stored.data else {
        return Ok(Found::Missing {
            parked: stored.has_parked,
        });
    };
    Ok(Found::Instance(Loaded {
        state: serde_json::from_str(data).map_err(decode_error)?,
        version: stored.version,
        finished: stored.finished,
        has_parked: stored.has_parked,
    }))
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

fn read_stored_sql(backend: storage::Backend) -> String {
    let instance = storage::sql::left_join_one(
        backend,
        "saga_instances",
        "i",
        "saga, data, version, completed_at, has_parked",
        "saga = $1 AND correlation_id = ids.id",
    );
    format!(
        "SELECT ids.id AS correlation_id, i.data, i.version, i.completed_at, \
         CASE WHEN i.saga IS NOT NULL THEN i.has_parked \
         WHEN EXISTS (SELECT 1 FROM saga_parked p WHERE p.saga = $1 AND p.correlation_id = ids.id) \
         THEN 1 ELSE 0 END AS has_parked \
         FROM (SELECT j.value AS id FROM {}) AS ids {instance}",
        storage::json_values(backend, 2)
    )
}

/// The instances of `saga` under `ids` (every id gets an entry), with one statement; the ids
/// are bound as one JSON array, so the statement is the same for one event's load and for a
/// batch's read-ahead.
pub(crate) async fn read_stored(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Stored>, sqlx::Error> {
    let query = sqlx::query(sqlx::AssertSqlSafe(read_stored_sql(conn.backend())))
        .bind(saga)
        .bind(storage::json_param(&ids)?);
    let mut stored = HashMap::with_capacity(ids.len());
    for row in query.fetch_all(conn).await? {
        let id = parse_uuid(row.try_get("correlation_id")?)?;
        stored.insert(
            id,
            Stored {
                data: row.try_get("data")?,
                version: row
                    .try_get::<Option<i64>, _>("version")?
                    .unwrap_or_default(),
                finished: row.try_get::<Option<i64>, _>("completed_at")?.is_some(),
                has_parked: row.try_get::<i64, _>("has_parked")? != 0,
            },
        );
    }
    Ok(stored)
}

async fn count_ignored(tx: &mut Tx<'_>, saga: &str, id: Uuid) -> Result<(), ConsumeError> {
    sqlx::query(
        "UPDATE saga_instances SET ignored_events = ignored_events + 1 \
         WHERE saga = $1 AND correlation_id = $2",
    )
    .bind(saga)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Events still parked when their instance finishes can never apply: they are as late as an
/// event arriving now, so they are dropped and counted like one rather than left waiting.
async fn drop_parked(tx: &mut Tx<'_>, saga: &str, id: Uuid) -> Result<(), ConsumeError> {
    let dropped = sqlx::query("DELETE FROM saga_parked WHERE saga = $1 AND correlation_id = $2")
        .bind(saga)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if dropped == 0 {
        return Ok(());
    }
    tracing::info!(
        saga,
        dropped,
        "parked events ignored: the instance finished"
    );
    sqlx::query(
        "UPDATE saga_instances SET ignored_events = ignored_events + $1 \
         WHERE saga = $2 AND correlation_id = $3",
    )
    .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
    .bind(saga)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Parks `message`; `flag` marks its (existing) instance as having parked events.
async fn park(
    tx: &mut Tx<'_>,
    saga: &str,
    message: &Envelope,
    flag: bool,
) -> Result<(), ConsumeError> {
    tracing::info!(saga, "event parked until the instance can accept it");
    sqlx::query(
        "INSERT INTO saga_parked (saga, correlation_id, message_id, message_type, causation_id, \
         headers, payload, created_at, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (saga, correlation_id, message_id) DO NOTHING",
    )
    .bind(saga)
    .bind(message.correlation_id.to_string())
    .bind(message.message_id.to_string())
    .bind(&message.message_type)
    .bind(message.causation_id.map(|id| id.to_string()))
    .bind(serde_json::to_string(&message.headers)?)
    .bind(&message.payload)
    .bind(message.created_at.0)
    .bind(tx.now().await?.0)
    .execute(&mut **tx)
    .await?;
    if flag {
        flag_parked(tx, saga, message.correlation_id).await?;
    }
    Ok(())
}

/// From now on, transitions of this instance look for parked events.
async fn flag_parked(tx: &mut Tx<'_>, saga: &str, id: Uuid) -> Result<(), ConsumeError> {
    sqlx::query("UPDATE saga_instances SET has_parked = 1 WHERE saga = $1 AND correlation_id = $2")
        .bind(saga)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn unpark(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
    message_id: MessageId,
) -> Result<(), ConsumeError> {
    sqlx::query(
        "DELETE FROM saga_parked WHERE saga = $1 AND correlation_id = $2 AND message_id = $3",
    )
    .bind(saga)
    .bind(id.to_string())
    .bind(message_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn parked_events(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
) -> Result<Vec<Envelope>, ConsumeError> {
    let rows = sqlx::query(
        "SELECT message_id, message_type, causation_id, headers, payload, created_at, parked_at \
         FROM saga_parked WHERE saga = $1 AND correlation_id = $2 ORDER BY parked_at, message_id",
    )
    .bind(saga)
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let headers: String = row.try_get("headers")?;
        let causation: Option<String> = row.try_get("causation_id")?;
        events.push(Envelope {
            message_id: MessageId(parse_uuid(row.try_get("message_id")?)?),
            message_type: row.try_get("message_type")?,
            correlation_id: id,
            causation_id: causation.map(parse_uuid).transpose()?.map(MessageId),
            headers: serde_json::from_str::<Headers>(&headers)?,
            payload: row.try_get("payload")?,
            created_at: Timestamp(row.try_get("created_at")?),
            available_at: Timestamp(row.try_get("parked_at")?),
            attempts: 0,
        });
    }
    Ok(events)
}
