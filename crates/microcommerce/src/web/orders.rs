//! An order's page, which follows its checkout saga live (server-sent events, woken by the same
//! change notices as the API's long polling), the simulated payment, and the buyer's orders.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Chrome, price};
use super::{Form, PageResult, WebError, parse_id, see_other};
use crate::http::Caller;
use crate::ids::OrderId;
use crate::ordering::checkout::{FailureReason, STEPS, step};
use crate::ordering::{
    Order, OrderItem, OrderStatus, list_orders, order_after_change, payment_deadline,
    visible_order_with_items,
};
use crate::state::AppState;

/// How long one wait for a change lasts before the page is sent again (which also corrects
/// the countdown); the keep-alive comments hold the connection meanwhile.
const RESEND_AFTER: Duration = Duration::from_secs(25);

/// `GET /orders/{id}`: where the order stands, its lines and where it ships.
pub(super) async fn page(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult {
    let id: OrderId = parse_id(&id)?;
    let (order, items) = visible_order_with_items(&state, &caller, id).await?;
    let progress = progress(&state, &order).await;
    let chrome = Chrome::of(&state, &caller).await;
    let title = format!("Order {}", order.order_number);
    let main = html! {
        h1 { (title) }
        section #progress .panel aria-live="polite" aria-label="Progress"
            data-events=(format!("/orders/{id}/events")) {
            (progress)
        }
        (order_lines(&order, &items))
        section.panel aria-label="Shipping address" {
            h2 { "Ships to" }
            address {
                (order.address.name) br;
                (order.address.street) br;
                (order.address.zip_code) " " (order.address.city) ", " (order.address.state) br;
                (order.buyer_email)
            }
        }
    };
    Ok(super::page(
        StatusCode::OK,
        layout::page(&title, &chrome, main),
    ))
}

/// The progress panel: the status in words, the steps, and what the buyer can do now.
async fn progress(state: &AppState, order: &Order) -> Markup {
    let left = match order.status.awaits_buyer() {
        true => Some(seconds_to_pay(state, order.id).await),
        false => None,
    };
    html! {
        p #order-status .status data-status=(order.status.as_str())
            data-final=[order.status.is_settled().then_some("true")] {
            strong { (headline(order.status)) }
        }
        @if order.status == OrderStatus::Failed {
            p.reason { (reason_in_words(order.failure_reason.as_ref())) }
            p { a.button.primary href="/cart" { "Back to your cart" } }
        } @else {
            (steps(order.status))
        }
        @if let Some(seconds) = left {
            (payment(order.id, seconds))
        }
        @if order.status == OrderStatus::Confirmed {
            p { "Thank you! We will let you know when it ships. " a href="/orders" { "See all your orders" } }
        }
    }
}

/// Seconds left to pay, by the saga's payment window; the whole window if the saga has not yet
/// taken in the reservation the order already shows.
async fn seconds_to_pay(state: &AppState, id: OrderId) -> u64 {
    let window = state.config.payment_timeout.as_secs();
    match payment_deadline(state, id).await {
        Ok(Some(deadline)) => {
            let micros = deadline.0.saturating_sub(state.db.now().0);
            u64::try_from(micros / 1_000_000).unwrap_or(0)
        }
        _ => window,
    }
}

/// The status line: the checkout's own words while it runs or has just ended, the status's
/// name after it.
fn headline(status: OrderStatus) -> &'static str {
    step(status).map_or(status.as_str(), |step| step.headline)
}

/// Why the checkout failed, for a shopper.
fn reason_in_words(reason: Option<&FailureReason>) -> String {
    match reason {
        Some(FailureReason::OutOfStock { product }) => {
            format!("Out of stock: there are not enough of “{product}” left.")
        }
        Some(FailureReason::PaymentDeclined) => "Your payment was declined.".to_owned(),
        Some(FailureReason::PaymentTimedOut) => "Payment was not received in time.".to_owned(),
        Some(FailureReason::CancelledByOperator) => {
            "The shop cancelled this order before it was paid.".to_owned()
        }
        Some(FailureReason::Other(text)) if !text.is_empty() => text.clone(),
        _ => "The order could not be completed.".to_owned(),
    }
}

/// The checkout's progress list, from its declared steps: each step's label, and after a step
/// that awaits the buyer an item for what it awaits, current while the order is there. Once
/// the checkout has settled every item is done.
fn steps(status: OrderStatus) -> Markup {
    let mut items = Vec::new();
    let mut current = None;
    for step in &STEPS {
        if step.status == status && step.awaiting.is_none() {
            current = Some(items.len());
        }
        items.push(step.label);
        if let Some(awaited) = step.awaiting {
            if step.status == status {
                current = Some(items.len());
            }
            items.push(awaited);
        }
    }
    let reached = current
        .filter(|_| status.in_checkout())
        .unwrap_or(items.len());
    html! {
        ol.steps {
            @for (index, name) in items.iter().enumerate() {
                @let state = match index.cmp(&reached) {
                    std::cmp::Ordering::Less => "done",
                    std::cmp::Ordering::Equal => "current",
                    std::cmp::Ordering::Greater => "todo",
                };
                li class=(state) aria-current=[(state == "current").then_some("step")] { (name) }
            }
        }
    }
}

fn payment(id: OrderId, seconds: u64) -> Markup {
    let action = format!("/orders/{id}/pay");
    html! {
        div.pay {
            p {
                "Time left to pay: "
                span.countdown data-seconds-left=(seconds) {
                    (seconds / 60) ":" (format!("{:02}", seconds % 60))
                }
            }
            p.muted { "Payments are simulated: choose how the provider answers." }
            div.buttons {
                form.live method="post" action=(action) {
                    input type="hidden" name="decision" value="pay";
                    button.primary type="submit" { "Pay" }
                }
                form.live method="post" action=(action) {
                    input type="hidden" name="decision" value="decline";
                    button.danger type="submit" { "Decline" }
                }
            }
        }
    }
}

fn order_lines(order: &Order, items: &[OrderItem]) -> Markup {
    html! {
        section.panel aria-label="Lines" {
            h2 { "Items" }
            ul.plain {
                @for item in items {
                    li {
                        (item.quantity) " × " (item.product_name) " "
                        span.muted { (price(item.unit_price * item.quantity)) }
                    }
                }
            }
            (layout::totals(&order.totals))
        }
    }
}

/// `GET /orders/{id}/events`: the progress panel, sent when the page opens the stream and
/// again each time the order moves on, until it settles. Each wait is the API's long poll, woken
/// by the order's change notices; the stream ends when the server begins to shut down, and
/// after the limits' longest stream (the browser opens it again), so that it never holds its
/// place among the requests held open for good.
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let id: OrderId = parse_id(&id)?;
    visible_order_with_items(&state, &caller, id).await?;
    let ends = tokio::time::Instant::now() + state.config.limits.stream_max;
    let start = Some((state, caller, id, None::<OrderStatus>));
    let stream = futures_util::stream::unfold(start, move |step| async move {
        let (state, caller, id, last) = step?;
        let order = tokio::select! {
            biased;
            () = tokio::time::sleep_until(ends) => None,
            order = next_state(&state, &caller, id, last) => order,
        }?;
        let panel = progress(&state, &order).await.into_string();
        let event = Event::default().event("progress").data(panel);
        let next = (!order.status.is_settled()).then_some((state, caller, id, Some(order.status)));
        Some((Ok(event), next))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The order now (`last` is `None`) or once it leaves `last` (or after [`RESEND_AFTER`]);
/// `None` when the stream should end: the server is stopping or the order cannot be read (the
/// browser then reconnects by itself).
async fn next_state(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
    last: Option<OrderStatus>,
) -> Option<Order> {
    let read = async {
        match last {
            None => visible_order_with_items(state, caller, id).await,
            Some(status) => order_after_change(state, caller, id, status, RESEND_AFTER).await,
        }
    };
    tokio::select! {
        biased;
        () = state.stopping() => None,
        found = read => found.ok().map(|(order, _)| order),
    }
}

/// The payment form.
#[derive(Debug, Deserialize)]
pub(super) struct PayForm {
    decision: String,
}

/// `POST /orders/{id}/pay`: records the simulated provider's answer, then shows the order
/// (the page's script posts it in the background and the live panel shows what follows).
pub(super) async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> PageResult {
    let id: OrderId = parse_id(&id)?;
    let succeed = match form.decision.as_str() {
        "pay" => true,
        "decline" => false,
        _ => return Err(crate::Error::invalid("decision", "must be pay or decline").into()),
    };
    let timeout = state.config.payment_timeout;
    let payer = Some(caller.buyer);
    state
        .write((), move |tx, ()| {
            Box::pin(crate::payment::record_payment(
                tx, id, payer, succeed, timeout,
            ))
        })
        .await?;
    Ok(see_other(&format!("/orders/{id}")))
}

/// Orders per page of "my orders".
const ORDERS_PER_PAGE: u32 = 10;

/// `GET /orders`: the buyer's orders, newest first, with status, total and lines.
pub(super) async fn mine(State(state): State<AppState>, caller: Caller, uri: Uri) -> PageResult {
    let page = axum::extract::Query::<MyOrders>::try_from_uri(&uri)
        .ok()
        .and_then(|query| query.0.page?.parse().ok())
        .unwrap_or(1u32)
        .clamp(1, 100_000);
    let paging = crate::http::Paging {
        page: Some(page),
        page_size: Some(ORDERS_PER_PAGE),
    };
    let listed = list_orders(&state, Some(caller.buyer), None, paging.request()?).await?;
    let mut orders = Vec::with_capacity(listed.items.len());
    for summary in &listed.items {
        orders.push(visible_order_with_items(&state, &caller, summary.id).await?);
    }
    let chrome = Chrome::of(&state, &caller).await;
    let pages = u32::try_from(listed.total_count)
        .unwrap_or(u32::MAX)
        .div_ceil(ORDERS_PER_PAGE);
    let main = html! {
        h1 { "My orders" }
        @if orders.is_empty() {
            section.panel { p { "You have no orders yet." } p { a.button href="/" { "Start shopping" } } }
        }
        ol.orders {
            @for (order, items) in &orders { (order_card(order, items)) }
        }
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(format!("/orders?page={}", page - 1)) { "← Newer" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href=(format!("/orders?page={}", page + 1)) { "Older →" } }
            }
        }
    };
    Ok(super::page(
        StatusCode::OK,
        layout::page("My orders", &chrome, main),
    ))
}

/// The query of "my orders".
#[derive(Debug, Deserialize)]
struct MyOrders {
    page: Option<String>,
}

fn order_card(order: &Order, items: &[OrderItem]) -> Markup {
    let placed = crate::http::rfc3339(order.created_at);
    let placed = placed.get(..16).unwrap_or(&placed).replace('T', " ");
    html! {
        li.panel.order {
            div.order-head {
                a.name href=(format!("/orders/{}", order.id)) { "Order " (order.order_number) }
                span class=(format!("badge {}", order.status.as_str().to_lowercase())) {
                    (order.status.as_str())
                }
            }
            p.muted { "Placed " (placed) " UTC · total " strong { (price(order.totals.total)) } }
            ul.plain {
                @for item in items { li { (item.quantity) " × " (item.product_name) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_read_as_sentences() {
        let short = FailureReason::OutOfStock {
            product: "Mug".into(),
        };
        assert_eq!(
            reason_in_words(Some(&short)),
            "Out of stock: there are not enough of “Mug” left."
        );
        assert_eq!(
            reason_in_words(Some(&FailureReason::PaymentDeclined)),
            "Your payment was declined."
        );
        assert_eq!(
            reason_in_words(Some(&FailureReason::PaymentTimedOut)),
            "Payment was not received in time."
        );
        assert_eq!(
            reason_in_words(Some(&FailureReason::CancelledByOperator)),
            "The shop cancelled this order before it was paid."
        );
        assert_eq!(reason_in_words(None), "The order could not be completed.");
    }

    /// The progress list's items and which one is current, as classes.
    fn progress_of(status: OrderStatus) -> String {
        steps(status).into_string()
    }

    #[test]
    fn the_progress_list_marks_where_the_checkout_stands() {
        let reserved = progress_of(OrderStatus::StockReserved);
        assert!(
            reserved.contains(r#"<li class="done">Stock reserved</li>"#),
            "{reserved}"
        );
        assert!(
            reserved.contains(r#"<li class="current" aria-current="step">Awaiting payment</li>"#),
            "{reserved}"
        );
        let paid = progress_of(OrderStatus::Paid);
        assert!(
            paid.contains(r#"<li class="current" aria-current="step">Paid</li>"#),
            "{paid}"
        );
        let confirmed = progress_of(OrderStatus::Confirmed);
        assert!(
            !confirmed.contains("current") && !confirmed.contains("todo"),
            "{confirmed}"
        );
        let submitted = progress_of(OrderStatus::Submitted);
        assert!(
            submitted.starts_with(r#"<ol class="steps"><li class="current""#),
            "{submitted}"
        );
    }
}
