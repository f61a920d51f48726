//! What travels on the bus: typed messages going out, envelopes coming in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use storage::Timestamp;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// Identity of one message; a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub Uuid);

impl MessageId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Free-form string headers carried with a message (trace ids, tenant, …).
pub type Headers = BTreeMap<String, String>;

/// Headers as they are stored: a JSON object.
pub(crate) fn headers_json(headers: &Headers) -> String {
    serde_json::to_string(headers).expect("string maps serialize")
}

/// A message type that can travel on the bus.
///
/// `TYPE` is the stable name stored with every row and used for subscriptions: renaming the
/// Rust type must not orphan messages already in the queue.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable wire name of this message type.
    const TYPE: &'static str;

    /// The business process this message belongs to (an order id, say). Messages with the same
    /// correlation id are never processed concurrently by one consumer.
    fn correlation_id(&self) -> Uuid;
}

/// Where an outgoing message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Every consumer subscribed to the message type (fan-out).
    Subscribers,
    /// Exactly one consumer, by name, whether or not it subscribes to the type.
    Consumer(String),
}

/// When an outgoing message becomes deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// As soon as the sending transaction commits.
    Now,
    /// After this long, counted from the moment it is written.
    After(Duration),
    /// At this instant.
    At(Timestamp),
}

/// A message described as data, to be written to the outbox later.
///
/// Sagas return these from pure transitions; the engine writes them in the transaction that
/// saves the new state. The message id is assigned when it is written, so two `Outgoing`
/// values built from the same message compare equal in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Stable type name ([`Message::TYPE`]).
    pub message_type: &'static str,
    /// Correlation id of the message.
    pub correlation_id: Uuid,
    /// JSON body.
    pub payload: String,
    /// Extra headers.
    pub headers: Headers,
    /// Fan-out or point-to-point.
    pub destination: Destination,
    /// Immediate or scheduled.
    pub delivery: Delivery,
}

impl Outgoing {
    /// `message` to every subscriber of its type.
    pub fn publish<M: Message>(message: &M) -> Self {
        Self {
            message_type: M::TYPE,
            correlation_id: message.correlation_id(),
            payload: serde_json::to_string(message).expect("message types serialize to JSON"),
            headers: Headers::new(),
            destination: Destination::Subscribers,
            delivery: Delivery::Now,
        }
    }

    /// `message` to the one consumer named `consumer`.
    pub fn send<M: Message>(consumer: &str, message: &M) -> Self {
        Self {
            destination: Destination::Consumer(consumer.to_owned()),
            ..Self::publish(message)
        }
    }

    /// The same message, delivered only after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Self {
            delivery: Delivery::After(delay),
            ..self
        }
    }

    /// The same message, delivered at `at`.
    pub fn at(self, at: Timestamp) -> Self {
        Self {
            delivery: Delivery::At(at),
            ..self
        }
    }

    /// Decodes the payload back into `M`, if this is an `M`; for assertions in tests.
    pub fn decode<M: Message>(&self) -> Option<M> {
        (self.message_type == M::TYPE)
            .then(|| serde_json::from_str(&self.payload).ok())
            .flatten()
    }
}

/// A message as delivered to a consumer, with everything the bus knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique id; the same id delivered twice to one consumer is processed once.
    pub message_id: MessageId,
    /// Stable type name.
    pub message_type: String,
    /// Business process the message belongs to.
    pub correlation_id: Uuid,
    /// The message whose handling produced this one, if any.
    pub causation_id: Option<MessageId>,
    /// Extra headers.
    pub headers: Headers,
    /// JSON body.
    pub payload: String,
    /// When it was first written.
    pub created_at: Timestamp,
    /// When it became (or becomes) deliverable.
    pub available_at: Timestamp,
    /// Failed attempts so far (0 on first delivery).
    pub attempts: u32,
}

impl Envelope {
    /// Decodes the payload as `M`.
    pub fn decode<M: Message>(&self) -> Result<M, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// True if this envelope carries an `M`.
    pub fn is<M: Message>(&self) -> bool {
        self.message_type == M::TYPE
    }

    /// The message stored in `row`, read from the columns named after the fields
    /// (`message_id`, `message_type`, `correlation_id`, `causation_id`, `headers`, `payload`,
    /// `created_at`, `available_at`, `attempts`): the one place a stored message is read back,
    /// whether from the queue, the dead letters or a saga's parked events. A table that keeps
    /// a field under another name selects it under the field's (`failed_at AS available_at`).
    pub fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let causation: Option<String> = row.try_get("causation_id")?;
        let headers: String = row.try_get("headers")?;
        let attempts: i64 = row.try_get("attempts")?;
        Ok(Self {
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
        })
    }
}

/// A UUID column read back as text.
pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}
