//! Orders for operators: find them (status, day placed, order number or email; a page at a
//! time by cursor) and see one whole: lines, totals, payment, reservations, and its checkout —
//! state, version, timeline, the messages waiting for it (the payment deadline with the time
//! left) and the events parked for it. Ship and deliver from there.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use storage::Timestamp;

use super::chrome::{self, Failure, Section, span, time};
use super::{ConsoleResult, Operator};
use crate::http::Caller;
use crate::ids::OrderId;
use crate::ordering::checkout::awaiting_payment;
use crate::ordering::{self, Cursor, Order, OrderItem, OrderSearch, OrderStatus, day_start};
use crate::state::AppState;
use crate::web::layout::{price, totals};
use crate::web::{Form, see_other};
use crate::{Error, inventory, payment};

/// Orders on one page of the list.
const PAGE_SIZE: u32 = 50;

/// The list's filters as the form sends them; blank fields filter nothing.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

impl ListQuery {
    /// The search the form asks for; a status or a day that does not parse is a 400 page.
    fn search(&self) -> Result<OrderSearch, Error> {
        let status = match self.status.trim() {
            "" => None,
            text => Some(OrderStatus::parse(text).ok_or_else(|| {
                Error::BadRequest(format!("there is no order status called {text:?}"))
            })?),
        };
        // A NUL character matches nothing stored and no text column takes one: left out.
        let text = Some(self.q.replace('\0', "").trim().to_owned()).filter(|q| !q.is_empty());
        Ok(OrderSearch {
            status,
            text,
            placed_from: day_start(&self.from, 0)?,
            placed_before: day_start(&self.to, 1)?,
        })
    }

    fn cursor(&self) -> Result<Option<Cursor>, Error> {
        match self.after.trim() {
            "" => Ok(None),
            text => text.parse().map(Some),
        }
    }

    /// The query string of these filters, starting after `cursor`.
    fn href(&self, cursor: Option<Cursor>) -> String {
        let pairs = [
            ("status", self.status.as_str()),
            ("q", self.q.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ];
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", super::url_encoded(value.trim())))
            .collect();
        if let Some(cursor) = cursor {
            query.push(format!("after={cursor}"));
        }
        format!("/admin/orders?{}", query.join("&"))
    }
}

/// `GET /admin/orders`: the list, or the order itself when an order number finds exactly one.
pub(super) async fn list(
    _: Operator,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ConsoleResult {
    let search = query.search()?;
    let batch = ordering::find_orders(&state, &search, query.cursor()?, PAGE_SIZE).await?;
    let by_number = search
        .text
        .as_deref()
        .is_some_and(|text| !text.contains('@'));
    if let ([only], true) = (batch.items.as_slice(), by_number) {
        return Ok(see_other(&format!("/admin/orders/{}", only.id)));
    }
    let body = html! {
        h1 { "Orders" }
        (filters(&query))
        @if batch.items.is_empty() {
            p #no-orders { "No order matches." }
        } @else {
            table #orders {
                thead { tr {
                    th scope="col" { "Order" } th scope="col" { "Status" }
                    th.number scope="col" { "Total" } th.number scope="col" { "Items" }
                    th scope="col" { "Placed" }
                } }
                tbody {
                    @for order in &batch.items {
                        tr {
                            td { a href=(format!("/admin/orders/{}", order.id)) { (order.order_number) } }
                            td { (order.status.as_str()) }
                            td.number { (price(order.total)) }
                            td.number { (order.item_count) }
                            td { (time(order.placed_at)) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if !query.after.trim().is_empty() {
                a href=(query.href(None)) { "First page" }
            }
            @if let Some(next) = batch.next {
                a rel="next" href=(query.href(Some(next))) { "Older orders" }
            }
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page("Orders", Some(Section::Orders), body),
    ))
}

fn filters(query: &ListQuery) -> Markup {
    html! {
        form.filters method="get" action="/admin/orders" role="search" {
            div {
                label for="q" { "Order number or email" }
                input #q type="search" name="q" value=(query.q) placeholder="MC-7Q2XKD or buyer@example.com";
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for status in OrderStatus::ALL {
                        option value=(status.as_str()) selected[query.status == status.as_str()] { (status.as_str()) }
                    }
                }
            }
            div { label for="from" { "Placed from" } input #from type="date" name="from" value=(query.from); }
            div { label for="to" { "Placed to" } input #to type="date" name="to" value=(query.to); }
            button.button type="submit" { "Find" }
        }
    }
}

/// The order id in a page's path; a malformed one is an order that does not exist.
fn order_id(text: &str) -> Result<OrderId, Failure> {
    text.parse().map_err(|_| Error::NotFound("order").into())
}

/// `GET /admin/orders/{id}`: everything about one order and its checkout.
pub(super) async fn page(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = order_id(&id)?;
    let operator = Caller::operator();
    let (order, items) = ordering::visible_order_with_items(&state, &operator, id).await?;
    let checkout = match ordering::checkout_of(&state, &operator, id).await {
        Ok(checkout) => Some(checkout),
        Err(Error::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let deadline = checkout.as_ref().and_then(|checkout| {
        let timeout = state.config.payment_timeout;
        ordering::checkout::payment_window_closes(&checkout.state, checkout.updated_at, timeout)
    });
    let waiting = state.bus.waiting_for(id.0).await?;
    let paid = payment::payment_of(&state, id).await?;
    let reservations = inventory::reservations_of(&state, id).await?;
    let now = state.db.now();
    let body = html! {
        h1 { "Order " (order.order_number) }
        (summary(&order, deadline, now))
        div.columns {
            section.panel { h2 { "Lines" } (lines(&items)) (totals(&order.totals)) }
            section.panel {
                h2 { "Payment" }
                @match &paid {
                    None => p #payment { "No payment recorded." },
                    Some(paid) => p #payment {
                        @if paid.succeeded { "Paid " } @else { "Declined " }
                        "at " (time(paid.at))
                        @if let Some(reason) = &paid.failure_reason { ": " (reason) }
                    },
                }
                h2 { "Reservations" }
                (reserved(&reservations, &items))
            }
        }
        section.panel #checkout {
            h2 { "Checkout" }
            @match &checkout {
                None => p { "No checkout has started for this order yet." },
                Some(checkout) => (checkout_view(checkout)),
            }
            h3 { "Messages waiting for it" }
            (waiting_view(&waiting, now))
        }
    };
    let title = format!("Order {}", order.order_number);
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page(&title, Some(Section::Orders), body),
    ))
}

fn summary(order: &Order, deadline: Option<Timestamp>, now: Timestamp) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd #status { (order.status.as_str()) }
            @if let Some(reason) = &order.failure_reason { dt { "Why" } dd #reason { (reason) } }
            @if let Some(deadline) = deadline {
                dt { "Payment deadline" }
                dd #deadline { (time(deadline)) " (" (left(deadline, now)) ")" }
            }
            dt { "Placed" } dd { (time(order.created_at)) }
            dt { "Buyer" } dd { (order.buyer_email) }
            dt { "Ship to" } dd {
                (order.address.name) ", " (order.address.street) ", " (order.address.city) ", "
                (order.address.state) " " (order.address.zip_code)
            }
        }
        @if order.status == awaiting_payment() {
            p { a.button href=(format!("/admin/orders/{}/cancel", order.id)) { "Cancel checkout…" } }
        }
        @if let Some(next) = ordering::next_move(order.status) {
            form method="post" action=(format!("/admin/orders/{}/status", order.id)) {
                input type="hidden" name="status" value=(next.as_str());
                button.button type="submit" { (action_label(next)) }
            }
        }
    }
}

/// `in 4 min` or `passed 2 min ago`.
fn left(deadline: Timestamp, now: Timestamp) -> String {
    if deadline.0 > now.0 {
        format!("in {}", span(now, deadline))
    } else {
        format!("passed {} ago", span(deadline, now))
    }
}

fn action_label(next: OrderStatus) -> String {
    match next {
        OrderStatus::Shipped => "Mark as shipped".into(),
        OrderStatus::Delivered => "Mark as delivered".into(),
        other => format!("Move to {}", other.as_str()),
    }
}

fn lines(items: &[OrderItem]) -> Markup {
    html! {
        table #lines {
            thead { tr { th scope="col" { "Product" } th.number scope="col" { "Quantity" } th.number scope="col" { "Unit price" } } }
            tbody {
                @for item in items {
                    tr { td { (item.product_name) } td.number { (item.quantity) } td.number { (price(item.unit_price)) } }
                }
            }
        }
    }
}

fn reserved(reservations: &[inventory::ReservationView], items: &[OrderItem]) -> Markup {
    let name = |id| {
        items
            .iter()
            .find(|item| item.product_id == id)
            .map_or_else(|| id.to_string(), |item| item.product_name.clone())
    };
    html! {
        @if reservations.is_empty() {
            p #reservations { "No stock reserved." }
        } @else {
            ul #reservations {
                @for reservation in reservations {
                    li { (reservation.quantity) " × " (name(reservation.product_id)) ": " (reservation.status) }
                }
            }
        }
    }
}

fn checkout_view(checkout: &saga::Instance) -> Markup {
    html! {
        dl.facts {
            dt { "State" } dd #checkout-state { (checkout.state) }
            dt { "Version" } dd { (checkout.version) }
            dt { "Started" } dd { (time(checkout.created_at)) }
            @if let Some(done) = checkout.completed_at { dt { "Finished" } dd { (time(done)) } }
        }
        table #timeline {
            caption { "Timeline" }
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Event" }
                th scope="col" { "Transition" } th scope="col" { "Messages sent" }
            } }
            tbody {
                @for entry in &checkout.timeline {
                    tr {
                        td { (entry.seq) } td { (time(entry.at)) } td { (entry.event) }
                        td { (entry.from_state.as_deref().unwrap_or("(start)")) " → " (entry.to_state) }
                        td { (entry.messages_sent.join(", ")) }
                    }
                }
            }
        }
        @if !checkout.parked.is_empty() {
            h3 { "Events parked until the checkout can take them" }
            ul #parked {
                @for parked in &checkout.parked {
                    li { (parked.message_type) ", parked at " (time(parked.parked_at)) }
                }
            }
        }
    }
}

fn waiting_view(waiting: &[bus::Waiting], now: Timestamp) -> Markup {
    html! {
        @if waiting.is_empty() {
            p #waiting { "None." }
        } @else {
            ul #waiting {
                @for message in waiting {
                    li {
                        (message.message_type) " for " (message.consumer) ", due " (time(message.available_at))
                        " (" (left(message.available_at, now)) ")"
                        @if message.attempts > 0 {
                            ", in retry after " (message.attempts) " failed attempts"
                            @if let Some(error) = &message.last_error { ": " (error) }
                        }
                    }
                }
            }
        }
    }
}

/// The ship or deliver button's form.
#[derive(Deserialize)]
pub(super) struct Move {
    status: String,
}

/// `POST /admin/orders/{id}/status`: ship or deliver, then back to the order.
pub(super) async fn move_on(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(change): Form<Move>,
) -> ConsoleResult {
    let id = order_id(&id)?;
    let next = OrderStatus::parse(&change.status).ok_or_else(|| {
        Error::BadRequest(format!(
            "there is no order status called {:?}",
            change.status
        ))
    })?;
    ordering::change_status(&state, id, next).await?;
    Ok(see_other(&format!("/admin/orders/{id}")))
}

/// `GET /admin/orders/{id}/cancel`: what a cancel does, and the button that does it.
pub(super) async fn confirm_cancel(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = order_id(&id)?;
    let order = ordering::visible_order(&state, &Caller::operator(), id).await?;
    let explanation = html! {
        p { "The checkout stops waiting for the payment: its stock is released and the order fails
             with the reason “Cancelled by an operator”, as if its payment window had closed.
             A payment that arrives first wins instead." }
    };
    Ok(chrome::confirmation(
        &format!("Cancel checkout {}?", order.order_number),
        Section::Orders,
        explanation,
        &format!("/admin/orders/{id}/cancel"),
        "Cancel the checkout",
        &format!("/admin/orders/{id}"),
    ))
}

/// `POST /admin/orders/{id}/cancel`: the cancel sent to the checkout, back to the order.
pub(super) async fn cancel(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id = order_id(&id)?;
    ordering::cancel_checkout(&state, id).await?;
    Ok(see_other(&format!("/admin/orders/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_links_keep_the_filters() {
        let query = ListQuery {
            status: "Failed".into(),
            q: "a@b.test".into(),
            ..ListQuery::default()
        };
        assert_eq!(query.href(None), "/admin/orders?status=Failed&q=a%40b.test");
    }

    #[test]
    fn an_unknown_status_is_a_clear_refusal() {
        let query = ListQuery {
            status: "Lost".into(),
            ..ListQuery::default()
        };
        assert!(matches!(query.search(), Err(Error::BadRequest(_))));
    }
}
