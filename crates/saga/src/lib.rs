//! A saga engine on top of the [`bus`]: long-running processes written as pure functions.
//!
//! A saga ([`Saga`]) says which events start an instance and how each event moves an instance
//! from one state to the next, returning the messages to send as data; its events are one enum
//! declared with [`events!`], from which the subscriptions and decoding follow. The [`Engine`]
//! runs it as a bus consumer: it correlates an event to its instance, applies the transition,
//! and saves the new state with a version check together with the outgoing messages and a
//! timeline entry, all in the transaction that completes the event. Hence a lost update is
//! impossible and a transition's messages are sent if and only if its state is saved.
//!
//! Semantics follow MassTransit's `Initially`/`During`:
//! - a start event creates the instance exactly once; a duplicate start is a no-op;
//! - an event for a finished instance is ignored and counted, never re-creating it (finished
//!   instances stay as tombstones until [`prune_completed`]);
//! - an event that arrives early ([`Rejected::Early`]) is parked and re-offered after each state
//!   change (one still parked when the instance finishes is ignored and counted); a stale one
//!   ([`Rejected::Stale`], a timeout after the fact) is a counted no-op; one that is never
//!   valid ([`Rejected::Invalid`]) is dead-lettered with its reason;
//! - timeouts are scheduled messages written with the state; reaching a final state withdraws
//!   the instance's pending timeouts.
//!
//! # Example
//!
//! ```
//! use bus::{Bus, Message};
//! use storage::{Db, DbOptions};
//! use saga::{Engine, Rejected, Saga, Transition};
//! use serde::{Deserialize, Serialize};
//! use uuid::Uuid;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct DoorOpened { door: Uuid }
//! impl Message for DoorOpened {
//!     const TYPE: &'static str = "DoorOpened";
//!     fn correlation_id(&self) -> Uuid { self.door }
//! }
//! #[derive(Debug, Serialize, Deserialize)]
//! struct DoorClosed { door: Uuid }
//! impl Message for DoorClosed {
//!     const TYPE: &'static str = "DoorClosed";
//!     fn correlation_id(&self) -> Uuid { self.door }
//! }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! enum Door { Open, Closed }
//!
//! saga::events! {
//!     /// Each variant subscribes the saga to its payload's message type.
//!     #[derive(Debug)]
//!     enum DoorEvent {
//!         Opened(DoorOpened),
//!         Closed(DoorClosed),
//!     }
//! }
//!
//! /// A door that opens once and closes once.
//! struct DoorSaga;
//!
//! impl Saga for DoorSaga {
//!     type State = Door;
//!     type Event = DoorEvent;
//!     const NAME: &'static str = "door";
//!     fn is_start(&self, event: &DoorEvent) -> bool { matches!(event, DoorEvent::Opened(_)) }
//!     fn initially(&self, _: &DoorEvent) -> Transition<Door> { Ok((Door::Open, vec![])) }
//!     fn during(&self, state: &Door, event: &DoorEvent) -> Transition<Door> {
//!         match (state, event) {
//!             (Door::Open, DoorEvent::Closed(_)) => Ok((Door::Closed, vec![])),
//!             _ => Err(Rejected::Invalid("a door closes once".into())),
//!         }
//!     }
//!     fn state_name(state: &Door) -> &'static str {
//!         match state { Door::Open => "Open", Door::Closed => "Closed" }
//!     }
//!     fn is_final(state: &Door) -> bool { matches!(state, Door::Closed) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("example.db").display());
//! let db = Db::connect(&DbOptions::new(url)).await?;
//! Bus::migrate(&db).await?;
//! saga::migrate(&db).await?;
//! let bus = Bus::builder(db.clone()).consumer(Engine::consumer(DoorSaga)).build();
//!
//! let door = Uuid::now_v7();
//! let mut tx = bus.begin().await?;
//! tx.publish(&DoorOpened { door }).await?;
//! tx.publish(&DoorClosed { door }).await?;
//! tx.commit().await?;
//! bus.run_pending().await?;
//!
//! let instance = saga::get(db.reader(), "door", door).await?.expect("created");
//! assert_eq!(instance.state, "Closed");
//! assert_eq!(instance.timeline.len(), 2);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod definition;
mod diagram;
mod engine;
mod sets;
mod store;

/// A saga's events: the bus's [`bus::Messages`], one closed enum of the message types the saga
/// subscribes to, which a delivered message decodes into.
pub use bus::Messages as Events;
/// Declares a saga's event enum: the bus's [`bus::messages!`], under the name a saga's reader
/// looks for.
pub use bus::messages as events;
pub use definition::{Rejected, Saga, Transition};
pub use diagram::{Diagram, Edge, Outcome, Sent};
pub use engine::{Engine, EngineError};
pub use store::{
    Census, Current, Filter, Instance, ParkedEvent, Position, Summary, Taken, TimelineEntry,
    census, current, fold_tallies, get, get_on, list, list_on, prune_completed,
};

/// Creates the saga tables if they are missing.
pub async fn migrate(db: &storage::Db) -> Result<(), storage::DbError> {
    db.migrate(storage::Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    })
    .await
}
