//! The checkouts as operators see them: how many stand in each state of the checkout's
//! declaration now and which moves they made lately (the console draws the diagram with these
//! numbers), and the checkouts themselves, by state or stuck, least recently moved first, each
//! with why it waits: its payment, a message in retry, or a dead letter.

use std::time::Duration;

use serde::Serialize;
use storage::Timestamp;

use super::checkout::{CheckoutSaga, diagram, payment_window_closes};
use crate::http::rfc3339;
use crate::ids::OrderId;
use crate::state::AppState;
use crate::{Error, Result};

/// Checkouts in one state now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateCount {
    /// The state's name (an order status).
    pub state: &'static str,
    /// True for a state a checkout ends in; those are kept until they are pruned.
    pub is_final: bool,
    /// Checkouts in it.
    pub count: i64,
}

/// How often one move of the declaration was taken in the window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveCount {
    /// The state moved from; absent for the start.
    pub from: Option<&'static str>,
    /// The event that moved it.
    pub event: &'static str,
    /// The state moved to.
    pub to: &'static str,
    /// Times taken in the window.
    pub count: i64,
}

/// The checkout's diagram with its numbers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Census {
    /// Every state of the declaration, in its order.
    pub states: Vec<StateCount>,
    /// Every move of the declaration, in its order.
    pub moves: Vec<MoveCount>,
    /// The window the moves were counted over, in seconds up to now; moves are counted by
    /// whole minutes, from the start of the minute the window begins in.
    pub window_seconds: u64,
}

/// Checkouts per state now, and the moves taken in the last `window`.
pub async fn census(state: &AppState, window: Duration) -> Result<Census> {
    let drawn = diagram();
    let mut conn = state.read().await?;
    let since = Timestamp(state.db.now().0 - micros(window));
    let counted = saga::census(&mut conn, CheckoutSaga::NAME, since).await?;
    let (counts, taken) = (counted.by_state, counted.moves);
    let states = drawn
        .states
        .iter()
        .map(|name| StateCount {
            state: name,
            is_final: drawn.finals.contains(name),
            count: counts
                .iter()
                .find(|(s, _)| s == name)
                .map_or(0, |(_, n)| *n),
        })
        .collect();
    let moves = drawn
        .moves()
        .map(|(from, event, to)| MoveCount {
            from,
            event,
            to,
            count: taken
                .iter()
                .find(|t| t.from.as_deref() == from && t.event == event && t.to == to)
                .map_or(0, |t| t.count),
        })
        .collect();
    Ok(Census {
        states,
        moves,
        window_seconds: window.as_secs(),
    })
}

fn micros(span: Duration) -> i64 {
    i64::try_from(span.as_micros()).unwrap_or(i64::MAX)
}

/// Which checkouts to list.
#[derive(Debug, Clone, Default)]
pub struct CheckoutQuery {
    /// Only those in this state (a name of the declaration).
    pub state: Option<String>,
    /// Only unfinished ones that have not moved for the configured `stuck_after`.
    pub stuck: bool,
    /// The next page: after this position.
    pub after: Option<saga::Position>,
    /// At most this many.
    pub limit: u32,
}

/// Why a checkout has not moved on.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Waiting {
    /// A message for it failed for good: it will not move until the dead letter is retried.
    #[serde(rename_all = "camelCase")]
    DeadLetter {
        /// The dead letter's id.
        id: i64,
        /// The message's type.
        message_type: String,
        /// The consumer that gave it up.
        consumer: String,
        /// Its last error.
        error: String,
    },
    /// A message for it keeps failing and is retried.
    #[serde(rename_all = "camelCase")]
    Retrying {
        /// The message's type.
        message_type: String,
        /// Failed attempts so far.
        attempts: u32,
        /// The last error.
        error: Option<String>,
    },
    /// It awaits the buyer's payment until the deadline.
    #[serde(rename_all = "camelCase")]
    Payment {
        /// When the payment window closes.
        #[schema(format = DateTime)]
        deadline: String,
    },
    /// A message for it is queued for its consumer.
    #[serde(rename_all = "camelCase")]
    Queued {
        /// The message's type.
        message_type: String,
    },
    /// It has finished.
    Finished,
    /// Nothing is known to be on its way: look at its timeline.
    Unknown,
}

/// One checkout in a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSummary {
    /// Its order.
    pub order_id: OrderId,
    /// Its state.
    pub state: String,
    /// Its version (transitions taken).
    pub version: i64,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it last moved.
    #[schema(format = DateTime)]
    pub moved_at: String,
    /// Why it waits.
    pub waiting: Waiting,
    /// When it last moved, as stored: what the operator's page shows ages from.
    #[serde(skip)]
    pub last_moved: Timestamp,
}

/// A page of checkouts, and where the next one starts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutPage {
    /// The checkouts, least recently moved first.
    pub items: Vec<CheckoutSummary>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

/// The checkouts `query` asks for, each with why it waits. An unknown state is a 400.
pub async fn list_checkouts(state: &AppState, query: &CheckoutQuery) -> Result<CheckoutPage> {
    if let Some(name) = &query.state
        && !diagram().states.contains(&name.as_str())
    {
        return Err(Error::BadRequest(format!(
            "the checkout has no state called {name:?}"
        )));
    }
    let now = state.db.now();
    let filter = saga::Filter {
        state: query.state.clone(),
        updated_before: query
            .stuck
            .then(|| Timestamp(now.0 - micros(state.config.stuck_after))),
        active_only: query.stuck,
        limit: Some(query.limit.saturating_add(1)),
        after: query.after,
    };
    let mut found = find(state, filter).await?;
    let next = (found.len() > query.limit as usize).then(|| {
        found.truncate(query.limit as usize);
        found.last().map(|last| saga::Position {
            updated_at: last.updated_at,
            correlation_id: last.correlation_id,
        })
    });
    let ids: Vec<uuid::Uuid> = found.iter().map(|s| s.correlation_id).collect();
    let queued = state.bus.waiting_for_each(&ids).await?;
    let dead = state.bus.dead_letters_of(&ids).await?;
    let timeout = state.config.payment_timeout;
    let items = found
        .into_iter()
        .map(|summary| {
            let id = summary.correlation_id;
            let waiting = why_waiting(&summary, timeout, &queued, &dead);
            CheckoutSummary {
                order_id: OrderId(id),
                state: summary.state,
                version: summary.version,
                started_at: rfc3339(summary.created_at),
                moved_at: rfc3339(summary.updated_at),
                waiting,
                last_moved: summary.updated_at,
            }
        })
        .collect();
    Ok(CheckoutPage {
        items,
        next: next.flatten().map(|position| position.to_string()),
    })
}

/// The checkouts `filter` names. Without a state it asks state by state for the unfinished ones
/// (the stuck list), each through the (saga, state, updated_at) index, and merges them in the
/// listing's order: one question over every state would walk the finished ones too, which are
/// nearly all of them.
async fn find(state: &AppState, filter: saga::Filter) -> Result<Vec<saga::Summary>> {
    let mut conn = state.read().await?;
    if filter.state.is_some() || !filter.active_only {
        return Ok(saga::list_on(&mut conn, CheckoutSaga::NAME, &filter).await?);
    }
    let drawn = diagram();
    let mut found = Vec::new();
    for name in drawn
        .states
        .iter()
        .filter(|name| !drawn.finals.contains(name))
    {
        let one = saga::Filter {
            state: Some((*name).to_owned()),
            ..filter.clone()
        };
        found.extend(saga::list_on(&mut conn, CheckoutSaga::NAME, &one).await?);
    }
    found.sort_by_key(|summary| (summary.updated_at, summary.correlation_id));
    found.truncate(filter.limit.unwrap_or(100) as usize);
    Ok(found)
}

/// The most telling reason first: a dead letter, then a retry, then the payment, then a queued
/// message.
fn why_waiting(
    summary: &saga::Summary,
    payment_timeout: Duration,
    queued: &[bus::Waiting],
    dead: &[bus::Failed],
) -> Waiting {
    let id = summary.correlation_id;
    if let Some(failed) = dead.iter().find(|d| d.correlation_id == id) {
        return Waiting::DeadLetter {
            id: failed.id,
            message_type: failed.message_type.clone(),
            consumer: failed.consumer.clone(),
            error: failed.error.clone(),
        };
    }
    let mine = || queued.iter().filter(|w| w.correlation_id == id);
    if let Some(retry) = mine().find(|w| w.attempts > 0) {
        return Waiting::Retrying {
            message_type: retry.message_type.clone(),
            attempts: retry.attempts,
            error: retry.last_error.clone(),
        };
    }
    if summary.completed_at.is_some() {
        return Waiting::Finished;
    }
    if let Some(deadline) =
        payment_window_closes(&summary.state, summary.updated_at, payment_timeout)
    {
        return Waiting::Payment {
            deadline: rfc3339(deadline),
        };
    }
    match mine().next() {
        Some(queued) => Waiting::Queued {
            message_type: queued.message_type.clone(),
        },
        None => Waiting::Unknown,
    }
}
