//! A saga's transitions as data, read off its pure functions, so that documentation, an
//! operations console and tests draw the one declaration instead of copying it.
//!
//! The transitions are found by offering every event to an example of every state: what the
//! saga answers is, by definition, its diagram. Nothing is declared twice, so a new state or
//! event shows up in every picture drawn from here.

use std::fmt::Write as _;

use bus::Delivery;

use crate::{Events, Rejected, Saga};

/// What happens when one event reaches one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The saga moves to `to` and sends these message types (scheduled ones marked).
    Moves {
        /// The state it moves to.
        to: &'static str,
        /// The message types sent, in order.
        sends: Vec<Sent>,
    },
    /// The event is too early: parked until the state changes.
    Parked,
    /// The event is obsolete here: ignored and counted.
    Ignored,
    /// The event is never valid here: dead-lettered.
    Refused,
}

/// One message a transition sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its message type.
    pub message_type: &'static str,
    /// True for a message delivered later (a timeout).
    pub scheduled: bool,
}

/// One cell of the state × event table: `from` is `None` for the start of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The state the event meets, or `None` before the instance exists.
    pub from: Option<&'static str>,
    /// The event's message type.
    pub event: &'static str,
    /// What the saga does with it.
    pub outcome: Outcome,
}

/// The whole table of a saga: every event offered to the start and to every unfinished state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagram {
    /// State names in the order the examples gave them.
    pub states: Vec<&'static str>,
    /// Names of the final states.
    pub finals: Vec<&'static str>,
    /// Every cell, start first, then state by state in event order.
    pub edges: Vec<Edge>,
}

impl Diagram {
    /// Reads the diagram of `saga` by offering each of `events` (one example per variant, in the
    /// order of [`Events::TYPES`]) to the start and to each of `states` (one example per
    /// state). Final states accept nothing, so they are listed but not offered events.
    ///
    /// # Panics
    /// If `events` does not hold exactly one example per declared message type: a broken
    /// declaration, found by the first test that draws it.
    pub fn of<S: Saga>(saga: &S, states: &[S::State], events: &[S::Event]) -> Self {
        let types = <S::Event as Events>::TYPES;
        assert_eq!(
            events.len(),
            types.len(),
            "one example event per message type"
        );
        let mut edges = Vec::new();
        for (event, name) in events.iter().zip(types) {
            if saga.is_start(event) {
                edges.push(edge::<S>(None, name, saga.initially(event)));
            }
        }
        for state in states.iter().filter(|state| !S::is_final(state)) {
            let from = S::state_name(state);
            for (event, name) in events.iter().zip(types) {
                edges.push(edge::<S>(Some(from), name, saga.during(state, event)));
            }
        }
        Self {
            states: states.iter().map(S::state_name).collect(),
            finals: states
                .iter()
                .filter(|state| S::is_final(state))
                .map(S::state_name)
                .collect(),
            edges,
        }
    }

    /// The moves only: `(from, event, to)` for every accepted event.
    pub fn moves(
        &self,
    ) -> impl Iterator<Item = (Option<&'static str>, &'static str, &'static str)> {
        self.edges.iter().filter_map(|edge| match &edge.outcome {
            Outcome::Moves { to, .. } => Some((edge.from, edge.event, *to)),
            _ => None,
        })
    }

    /// The diagram as a Mermaid `stateDiagram-v2`: an arrow per accepted event, labelled with
    /// the event and what it sends (`⏱` marks a scheduled message), and a note per state on the
    /// events it parks until later.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        for edge in &self.edges {
            if let Outcome::Moves { to, sends } = &edge.outcome {
                let from = edge.from.unwrap_or("[*]");
                let _ = writeln!(out, "    {from} --> {to}: {}{}", edge.event, sent(sends));
            }
        }
        for state in &self.states {
            let parked: Vec<&str> = self
                .edges
                .iter()
                .filter(|edge| edge.from == Some(state) && edge.outcome == Outcome::Parked)
                .map(|edge| edge.event)
                .collect();
            if !parked.is_empty() {
                let _ = writeln!(
                    out,
                    "    note right of {state}: parks {} until it moves on",
                    parked.join(", ")
                );
            }
        }
        for state in &self.finals {
            let _ = writeln!(out, "    {state} --> [*]");
        }
        out
    }
}

/// ` / A, B ⏱` for a transition that sends A now and B later; empty when it sends nothing.
fn sent(sends: &[Sent]) -> String {
    if sends.is_empty() {
        return String::new();
    }
    let names: Vec<String> = sends
        .iter()
        .map(|sent| match sent.scheduled {
            true => format!("{} ⏱", sent.message_type),
            false => sent.message_type.to_owned(),
        })
        .collect();
    format!(" / {}", names.join(", "))
}

fn edge<S: Saga>(
    from: Option<&'static str>,
    event: &'static str,
    answer: crate::Transition<S::State>,
) -> Edge {
    let outcome = match answer {
        Ok((to, sends)) => Outcome::Moves {
            to: S::state_name(&to),
            sends: sends
                .iter()
                .map(|message| Sent {
                    message_type: message.message_type,
                    scheduled: !matches!(message.delivery, Delivery::Now),
                })
                .collect(),
        },
        Err(Rejected::Early) => Outcome::Parked,
        Err(Rejected::Stale(_)) => Outcome::Ignored,
        Err(Rejected::Invalid(_)) => Outcome::Refused,
    };
    Edge {
        from,
        event,
        outcome,
    }
}
