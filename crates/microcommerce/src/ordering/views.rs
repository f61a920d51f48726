//! Reading orders as their buyers (or an admin) may see them, and the checkout behind one.

use saga::Saga;

use super::checkout::{CheckoutSaga, payment_window_closes};
use super::db;
use super::domain::{Order, OrderItem};
use crate::http::Caller;
use crate::ids::OrderId;
use crate::state::AppState;
use crate::{Error, Result};

/// The order if `caller` may see it; 404 otherwise, so strangers learn nothing.
pub async fn visible_order(state: &AppState, caller: &Caller, id: OrderId) -> Result<Order> {
    let mut conn = state.read().await?;
    shown_to(caller, db::find_order(&mut conn, id).await?, |order| order)
}

/// The order with its lines if `caller` may see it; 404 otherwise.
pub async fn visible_order_with_items(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
) -> Result<(Order, Vec<OrderItem>)> {
    let mut conn = state.read().await?;
    shown_to(
        caller,
        db::find_order_with_items(&mut conn, id).await?,
        |(order, _)| order,
    )
}

/// What was found under an order id, if it exists and `caller` may see the order in it.
fn shown_to<T>(caller: &Caller, found: Option<T>, order: impl Fn(&T) -> &Order) -> Result<T> {
    found
        .filter(|found| caller.may_access(order(found).buyer_id))
        .ok_or(Error::NotFound("order"))
}

/// When the payment window of order `id` closes, while its checkout saga awaits payment.
pub async fn payment_deadline(state: &AppState, id: OrderId) -> Result<Option<storage::Timestamp>> {
    let mut conn = state.read().await?;
    let current = saga::current::<CheckoutSaga>(&mut conn, id.0).await?;
    Ok(current.and_then(|c| {
        let name = CheckoutSaga::state_name(&c.state);
        payment_window_closes(name, c.updated_at, state.config.payment_timeout)
    }))
}

/// The checkout saga of order `id` with its timeline, if `caller` may see the order.
pub async fn checkout_of(state: &AppState, caller: &Caller, id: OrderId) -> Result<saga::Instance> {
    visible_order(state, caller, id).await?;
    saga::get_on(&mut state.read().await?, CheckoutSaga::NAME, id.0)
        .await?
        .ok_or(Error::NotFound("checkout"))
}

/// Order `id` as stored, read in the caller's transaction or connection.
pub async fn order(conn: &mut storage::Conn<'_>, id: OrderId) -> Result<Option<Order>> {
    Ok(db::find_order(conn, id).await?)
}
