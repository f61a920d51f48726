//! Waiting for an order to move on: long polls and `Prefer: wait` hold an answer until the
//! order's status changes, woken by the bus's change notices rather than by asking again.

use std::time::Duration;

use super::db;
use super::domain::{Order, OrderItem};
use super::status::OrderStatus;
use super::views::visible_order_with_items;
use crate::Result;
use crate::http::{Caller, PreferWait};
use crate::ids::OrderId;
use crate::state::AppState;

/// How often a held request looks again on its own. Changes wake it (committed here, or on
/// PostgreSQL by any instance, through the bus's listener); this is the safety net for a
/// listener that lost its connection.
const RECHECK: Duration = Duration::from_secs(2);

/// The order (with its lines) once its status is no longer `status`, or as it is when
/// `timeout` has passed or the server begins to shut down.
pub async fn order_after_change(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
    status: OrderStatus,
    timeout: Duration,
) -> Result<(Order, Vec<OrderItem>)> {
    let read = || visible_order_with_items(state, caller, id);
    read_until_moved(state, id, timeout, read, |(order, _)| {
        order.status != status
    })
    .await
}

/// The order's status once it has left `left`, the status a request left it in, if the client
/// prefers to wait for that ([`PreferWait`]); `left` otherwise, or if the wait runs out. The
/// request has committed, so a failed read answers `left` rather than an error that would
/// invite a retry.
pub async fn status_after(
    state: &AppState,
    id: OrderId,
    left: OrderStatus,
    wait: PreferWait,
) -> OrderStatus {
    let Some(timeout) = wait.0 else {
        return left;
    };
    let read = || async {
        let mut conn = state.read().await?;
        Ok(db::find_order(&mut conn, id)
            .await?
            .map_or(left, |order| order.status))
    };
    match read_until_moved(state, id, timeout, read, |status| *status != left).await {
        Ok(status) => status,
        Err(error) => {
            tracing::warn!(order_id = %id, %error,
                "reading the order's status after its commit failed; answering the status it was left in");
            left
        }
    }
}

/// Reads with `read` until `moved` holds for what it read, `timeout` passes or the server
/// begins to shut down, and returns the last read. It watches order `id` before each read, so
/// that a change between the read and the wait is not missed.
async fn read_until_moved<T, Fut>(
    state: &AppState,
    id: OrderId,
    timeout: Duration,
    read: impl Fn() -> Fut,
    moved: impl Fn(&T) -> bool,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let news = state.bus.changed_next(id.0);
        let found = read().await?;
        if moved(&found) || tokio::time::Instant::now() >= deadline {
            return Ok(found);
        }
        let look_again = deadline.min(tokio::time::Instant::now() + RECHECK);
        tokio::select! {
            () = news => {}
            () = tokio::time::sleep_until(look_again) => {}
            () = state.stopping() => return Ok(found),
        }
    }
}
