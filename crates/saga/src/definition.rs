//! What a saga is: pure functions over plain enums, with no database in sight.

use std::fmt::Debug;

use bus::Outgoing;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Events;

/// The result of offering an event to a saga: the next state and the messages to send.
pub type Transition<S> = Result<(S, Vec<Outgoing>), Rejected>;

/// Why a saga did not accept an event in its current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Valid in a later state (a payment result before the stock reservation is recorded):
    /// the engine parks it and offers it again after every state change.
    Early,
    /// Made obsolete by what already happened (a timeout after the payment arrived): a no-op,
    /// counted on the instance.
    Stale(String),
    /// Never valid in this saga: dead-lettered with this reason for a person to look at.
    Invalid(String),
}

/// A saga definition: which events start an instance and how each event moves it on.
///
/// Every method is pure; the engine ([`crate::Engine`]) loads and saves instances, checks
/// versions, writes outgoing messages and timeouts, and keeps the timeline.
pub trait Saga: Send + Sync + 'static {
    /// The instance's state, data included. Serialized to JSON in the instance row.
    type State: Serialize + DeserializeOwned + Debug + Clone + Send + Sync;
    /// Everything the saga reacts to, declared with [`events!`](crate::events); the engine
    /// subscribes to its message types and decodes deliveries with it.
    type Event: Events + Debug;

    /// Stable name: the consumer name on the bus and the key of stored instances.
    const NAME: &'static str;

    /// True for events that create an instance (`Initially` in MassTransit terms).
    fn is_start(&self, event: &Self::Event) -> bool;

    /// The first state of an instance created by a start event.
    fn initially(&self, event: &Self::Event) -> Transition<Self::State>;

    /// The next state of an existing, unfinished instance (`During`).
    fn during(&self, state: &Self::State, event: &Self::Event) -> Transition<Self::State>;

    /// Short stable name of a state, stored for queries (`Submitted`, `Confirmed`, …).
    fn state_name(state: &Self::State) -> &'static str;

    /// True for terminal states: the instance is finalized and later events are ignored.
    fn is_final(state: &Self::State) -> bool;
}
