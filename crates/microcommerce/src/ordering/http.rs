//! Buyer-facing ordering routes: checkout, an order, its saga, my orders.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::checkout::{CheckoutSaga, CheckoutState};
use super::db::{self, IdempotencyKey, Order, OrderItem};
use super::domain::{CheckoutRequest, OrderStatus, ShippingAddress, Totals, ValidCheckout};
use crate::catalog::db::{ProductStatus, find_products};
use crate::contracts::{CheckoutStarted, OrderLine};
use crate::http::{Caller, Json, Page, Paging, Path, PreferWait, Query, rfc3339};
use crate::ids::{BuyerId, OrderId, ProductId};
use crate::money::Money;
use crate::state::AppState;
use crate::{Error, Result};

/// The answer to a checkout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutCreated {
    /// The new order.
    pub order_id: OrderId,
    /// Its human-friendly number.
    pub order_number: String,
    /// The order's status: `Submitted`, as the checkout placed it (a repeat with the same
    /// `Idempotency-Key` answers the same). With `Prefer: wait=N` the answer is held until the
    /// saga has moved the order on (`StockReserved` or `Failed`), N seconds at most, and says
    /// where it stands then. The same on every backend.
    pub status: OrderStatus,
}

/// Places an order from the given lines or the buyer's cart and starts its checkout saga. The
/// lines and their catalog snapshot are read first, off the single writer (a checkout takes
/// the cart and the prices as they are when it starts); the order and the CheckoutStarted that
/// starts its saga then commit in one transaction. An `Idempotency-Key` makes a retried
/// request return the same order.
#[utoipa::path(post, path = "/checkout", tag = "ordering",
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY,
            min_length = 1, max_length = 200, pattern = r"^[!-~]([ -~]*[!-~])?$"),
        ("Prefer" = Option<String>, Header, description = PREFER_WAIT)),
    responses((status = 201, description = "The order was placed (or had been, under this key)",
            body = CheckoutCreated,
            headers(("Location" = String, description = "The new order"))),
        (status = 422, description = "The cart is empty, a product is not for sale, or the \
            `Idempotency-Key` was used before with a different request (problem type \
            `urn:microcommerce:problem:idempotency-key-reused`)", body = crate::error::Problem)))]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    wait: PreferWait,
    headers: HeaderMap,
    Json(request): Json<CheckoutRequest>,
) -> Result<Response> {
    let key = idempotency_key(&headers)?;
    let valid = request.validate().map_err(super::domain::refusal)?;
    let placed = check_out(&state, caller.buyer, valid, key).await?;
    // The answer as the checkout placed it, for a repeat under its key as for the first.
    let status = status_after(&state, placed.id, OrderStatus::Submitted, wait).await;
    let mut answer = created(placed.id, placed.order_number, status);
    mark_applied(&mut answer, wait);
    Ok(answer)
}

/// The `Idempotency-Key` header's description in the API document.
const IDEMPOTENCY_KEY: &str = "Makes a retried checkout safe: a repeat of the same request \
    by the same buyer with the same key answers the order the first one placed, without placing \
    another; the same key with a different request is refused (422). 1 to 200 visible ASCII \
    characters (inner spaces allowed).";

/// The `Prefer` header's description in the API document.
pub(crate) const PREFER_WAIT: &str =
    "wait=N: hold the answer until the saga moves the order on, N seconds at most (30)";

/// Tells the client that its `Prefer: wait` was honoured (RFC 7240 `Preference-Applied`).
pub(crate) fn mark_applied(answer: &mut Response, wait: PreferWait) {
    if let Some(applied) = wait.applied().and_then(|text| text.parse().ok()) {
        answer.headers_mut().insert("preference-applied", applied);
    }
}

/// A checkout as the handler runs it, and the in-process benchmark too: an order already
/// placed under `key` is returned as it is (or refused, if the key came with a different
/// request); otherwise the lines and their catalog snapshot are read on a reader connection,
/// then the order is placed in a grouped write transaction.
pub async fn check_out(
    state: &AppState,
    buyer: BuyerId,
    valid: ValidCheckout,
    key: Option<String>,
) -> Result<Order> {
    let key = key.map(|key| IdempotencyKey {
        key,
        fingerprint: valid.fingerprint(),
    });
    let mut reader = state.read().await?;
    if let Some(key) = &key
        && let Some(existing) = db::find_by_idempotency_key(&mut reader, buyer, &key.key).await?
    {
        return replay(existing, key);
    }
    let items = order_items(&mut reader, buyer, &valid).await?;
    drop(reader);
    let order = (valid, items, key);
    state
        .write(order, move |tx, (valid, items, key)| {
            Box::pin(place_order(tx, buyer, valid, items, key.as_ref()))
        })
        .await
}

/// The order a key placed, for a repeat of its request; the key reused for another request is
/// refused (IETF draft "The Idempotency-Key HTTP Header Field": 422).
fn replay((order, fingerprint): (Order, Option<String>), key: &IdempotencyKey) -> Result<Order> {
    match fingerprint {
        Some(stored) if stored != key.fingerprint => Err(Error::IdempotencyKeyReused),
        _ => Ok(order),
    }
}

/// The lines of a checkout (given, or the buyer's cart) with their catalog snapshot; a 422 for
/// an empty cart or a product that is not for sale.
async fn order_items(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
    valid: &ValidCheckout,
) -> Result<Vec<OrderItem>> {
    let lines = match &valid.lines {
        Some(lines) => lines.clone(),
        None => cart_lines(conn, buyer).await?,
    };
    snapshot_lines(conn, &lines).await
}

/// Places an order of `items` in the caller's transaction: the order (Submitted) and the
/// CheckoutStarted that starts its saga commit together. With an idempotency key already used
/// by this buyer it returns that order instead (a retry racing the first request).
async fn place_order(
    tx: &mut bus::Tx<'_>,
    buyer: BuyerId,
    valid: &ValidCheckout,
    items: &[OrderItem],
    key: Option<&IdempotencyKey>,
) -> Result<Order> {
    let from_cart = valid.lines.is_none();
    let order = new_order(valid, buyer, items, tx.now().await?);
    let order = match insert_with_unique_number(tx, buyer, order, items, key).await? {
        Placed::New(order) => order,
        Placed::Before(order) => return Ok(order),
    };
    let started = CheckoutStarted {
        order_id: order.id,
        buyer_id: buyer,
        items: items
            .iter()
            .map(|item| OrderLine {
                product_id: item.product_id,
                product_name: item.product_name.clone(),
                quantity: item.quantity,
            })
            .collect(),
        from_cart,
    };
    tx.publish(&started).await?;
    tracing::info!(order_id = %order.id, order_number = %order.order_number, "checkout started");
    Ok(order)
}

fn created(order_id: OrderId, order_number: String, status: OrderStatus) -> Response {
    let location = format!("/api/ordering/orders/{order_id}");
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CheckoutCreated {
            order_id,
            order_number,
            status,
        }),
    )
        .into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    // Exactly what the document's pattern allows: visible ASCII, inner spaces.
    let key = value.as_bytes();
    let visible = |b: &u8| (0x21..=0x7e).contains(b);
    let allowed = key.iter().all(|b| *b == b' ' || visible(b));
    let ends_visible = key.first().is_some_and(visible) && key.last().is_some_and(visible);
    match std::str::from_utf8(key) {
        Ok(key) if allowed && ends_visible && key.len() <= 200 => Ok(Some(key.to_owned())),
        _ => Err(Error::invalid(
            "Idempotency-Key",
            "must be 1 to 200 visible ASCII characters",
        )),
    }
}

async fn cart_lines(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
) -> Result<BTreeMap<ProductId, u32>> {
    let lines: BTreeMap<_, _> = crate::cart::db::cart_lines(conn, buyer)
        .await?
        .into_iter()
        .collect();
    if lines.is_empty() {
        return Err(Error::refused("items", "the cart is empty"));
    }
    Ok(lines)
}

/// Names, prices and pictures come from the catalog at this moment, never from the client.
async fn snapshot_lines(
    conn: &mut storage::Conn<'_>,
    lines: &BTreeMap<ProductId, u32>,
) -> Result<Vec<OrderItem>> {
    let ids: Vec<ProductId> = lines.keys().copied().collect();
    let products: BTreeMap<ProductId, _> = find_products(conn, &ids)
        .await?
        .into_iter()
        .filter(|product| product.status == ProductStatus::Published)
        .map(|product| (product.id, product))
        .collect();
    let mut errors = crate::error::FieldErrors::new();
    let mut items = Vec::with_capacity(lines.len());
    for (index, (id, quantity)) in lines.iter().enumerate() {
        match products.get(id) {
            Some(product) => items.push(OrderItem {
                product_id: *id,
                product_name: product.name.clone(),
                unit_price: product.price,
                quantity: *quantity,
                image_url: product.image_url.clone(),
            }),
            None => {
                errors.insert(
                    format!("items[{index}].productId"),
                    vec![format!("product {id} does not exist or is not for sale")],
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(Error::Unprocessable(errors))
    }
}

fn new_order(
    valid: &ValidCheckout,
    buyer: BuyerId,
    items: &[OrderItem],
    now: storage::Timestamp,
) -> Order {
    Order {
        id: OrderId::new(),
        order_number: super::domain::new_order_number(),
        buyer_id: buyer,
        buyer_email: valid.email.to_string(),
        address: valid.address.clone(),
        status: OrderStatus::Submitted,
        totals: Totals::of(items.iter().map(|item| (item.unit_price, item.quantity))),
        failure_reason: None,
        created_at: now,
        paid_at: None,
    }
}

/// Inserts the order, drawing a new number while the random one is taken; the order its
/// idempotency key placed before, if the key is what was taken.
async fn insert_with_unique_number(
    tx: &mut bus::Tx<'_>,
    buyer: BuyerId,
    mut order: Order,
    items: &[OrderItem],
    key: Option<&IdempotencyKey>,
) -> Result<Placed> {
    for _ in 0..5 {
        if db::insert_order(tx, &order, items, key).await? {
            return Ok(Placed::New(order));
        }
        if let Some(key) = key
            && let Some(existing) = db::find_by_idempotency_key(tx, buyer, &key.key).await?
        {
            return replay(existing, key).map(Placed::Before);
        }
        order.order_number = super::domain::new_order_number();
    }
    Err(Error::OrderNumberExhausted)
}

/// What placing an order under a key found: the new order, or the one the key placed before.
enum Placed {
    New(Order),
    Before(Order),
}

/// An order as its buyer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    id: OrderId,
    order_number: String,
    buyer_email: String,
    shipping_address: ShippingAddress,
    status: OrderStatus,
    items: Vec<OrderItemView>,
    #[schema(value_type = f64)]
    subtotal: Money,
    #[schema(value_type = f64)]
    shipping_cost: Money,
    #[schema(value_type = f64)]
    tax: Money,
    #[schema(value_type = f64)]
    total: Money,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    paid_at: Option<String>,
    failure_reason: Option<String>,
}

/// One line of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemView {
    product_id: ProductId,
    product_name: String,
    #[schema(value_type = f64)]
    unit_price: Money,
    quantity: u32,
    #[schema(value_type = f64)]
    line_total: Money,
    image_url: Option<String>,
}

/// The order if `caller` may see it; 404 otherwise, so strangers learn nothing.
pub async fn visible_order(state: &AppState, caller: &Caller, id: OrderId) -> Result<Order> {
    let mut conn = state.read().await?;
    shown_to(caller, db::find_order(&mut conn, id).await?, |order| order)
}

/// The order with its lines if `caller` may see it; 404 otherwise.
pub(crate) async fn visible_order_with_items(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
) -> Result<(Order, Vec<db::OrderItem>)> {
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

/// Long polling: instead of asking again and again whether an order has moved on, a client
/// asks once and the answer is held until it has.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderWait {
    /// Hold the answer while the order still has this status (e.g. `Submitted`), until it
    /// changes or `timeoutMs` passes; the order is returned either way.
    #[param(value_type = Option<OrderStatus>)]
    wait_while: Option<String>,
    /// How long to hold the answer at most, in milliseconds (default 10000).
    #[param(minimum = 0, maximum = 30000)]
    timeout_ms: Option<u64>,
}

const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// How often a held request looks again on its own. Changes wake it (committed here, or on
/// PostgreSQL by any instance, through the bus's listener); this is the safety net for a
/// listener that lost its connection.
const RECHECK: Duration = Duration::from_secs(2);

impl OrderWait {
    /// The status to wait out and for how long, or a 400 for a bad value.
    fn resolve(&self) -> Result<Option<(OrderStatus, Duration)>> {
        let Some(text) = self.wait_while.as_deref() else {
            return Ok(None);
        };
        let status = OrderStatus::parse(text)
            .ok_or_else(|| Error::invalid("waitWhile", "unknown order status"))?;
        let timeout = self.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
        if timeout > LONGEST_WAIT {
            return Err(Error::invalid("timeoutMs", "at most 30000"));
        }
        Ok(Some((status, timeout)))
    }
}

/// The order (with its lines) once its status is no longer `status`, or as it is when
/// `timeout` has passed or the server begins to shut down.
pub(crate) async fn order_after_change(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
    status: OrderStatus,
    timeout: Duration,
) -> Result<(Order, Vec<db::OrderItem>)> {
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
pub(crate) async fn status_after(
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

/// One order, for the buyer who placed it or an admin; with `waitWhile` the answer is held
/// until the order leaves that status (long polling).
#[utoipa::path(get, path = "/orders/{id}", tag = "ordering",
    params(("id" = OrderId, Path, description = "Order id"), OrderWait),
    responses((status = 200, body = OrderView), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
    Query(wait): Query<OrderWait>,
) -> Result<Json<OrderView>> {
    let (order, items) = match wait.resolve()? {
        Some((status, timeout)) => order_after_change(&state, &caller, id, status, timeout).await?,
        None => visible_order_with_items(&state, &caller, id).await?,
    };
    Ok(Json(OrderView {
        id: order.id,
        order_number: order.order_number,
        buyer_email: order.buyer_email,
        shipping_address: order.address,
        status: order.status,
        items: items
            .into_iter()
            .map(|item| OrderItemView {
                line_total: item.unit_price * item.quantity,
                product_id: item.product_id,
                product_name: item.product_name,
                unit_price: item.unit_price,
                quantity: item.quantity,
                image_url: item.image_url,
            })
            .collect(),
        subtotal: order.totals.subtotal,
        shipping_cost: order.totals.shipping,
        tax: order.totals.tax,
        total: order.totals.total,
        created_at: rfc3339(order.created_at),
        paid_at: order.paid_at.map(rfc3339),
        failure_reason: order.failure_reason,
    }))
}

/// The checkout saga of an order, with its timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutView {
    order_id: OrderId,
    #[schema(value_type = SagaState)]
    state: String,
    version: i64,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    failure_reason: Option<String>,
    timeline: Vec<TimelineView>,
}

/// The states of the checkout saga, as its view and timeline name them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
enum SagaState {
    /// Waiting for inventory to reserve every line.
    Submitted,
    /// Stock is held; waiting for the payment or the timeout.
    StockReserved,
    /// Paid: stock deducted, cart cleared.
    Confirmed,
    /// Out of stock, declined or timed out; reservations released.
    Failed,
}

/// One step of a saga's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineView {
    #[schema(format = DateTime)]
    at: String,
    event: String,
    #[schema(value_type = Option<SagaState>)]
    from_state: Option<String>,
    #[schema(value_type = SagaState)]
    to_state: String,
    messages_sent: Vec<String>,
}

/// The saga behind an order: state, version and every step, for the buyer or an admin.
#[utoipa::path(get, path = "/orders/{id}/checkout", tag = "ordering",
    params(("id" = OrderId, Path, description = "Order id")),
    responses((status = 200, body = CheckoutView), (status = 404, body = crate::error::Problem)))]
pub async fn get_checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<Json<CheckoutView>> {
    visible_order(&state, &caller, id).await?;
    let instance = saga::get_on(&mut state.read().await?, CheckoutSaga::NAME, id.0)
        .await?
        .ok_or(Error::NotFound("checkout"))?;
    let failure_reason = match serde_json::from_value::<CheckoutState>(instance.data) {
        Ok(CheckoutState::Failed { reason }) => Some(reason),
        _ => None,
    };
    Ok(Json(CheckoutView {
        order_id: id,
        state: instance.state,
        version: instance.version,
        started_at: rfc3339(instance.created_at),
        updated_at: rfc3339(instance.updated_at),
        failure_reason,
        timeline: instance
            .timeline
            .into_iter()
            .map(|step| TimelineView {
                at: rfc3339(step.at),
                event: step.event,
                from_state: step.from_state,
                to_state: step.to_state,
                messages_sent: step.messages_sent,
            })
            .collect(),
    }))
}

/// When the payment window of order `id` closes, while its checkout saga awaits payment.
pub(crate) async fn payment_deadline(
    state: &AppState,
    id: OrderId,
) -> Result<Option<storage::Timestamp>> {
    let mut conn = state.read().await?;
    let current = saga::current::<CheckoutSaga>(&mut conn, id.0).await?;
    Ok(current
        .filter(|c| matches!(c.state, CheckoutState::StockReserved { .. }))
        .map(|c| c.updated_at.plus(state.config.payment_timeout)))
}

/// An order in a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    pub(crate) id: OrderId,
    pub(crate) order_number: String,
    pub(crate) status: OrderStatus,
    #[schema(value_type = f64)]
    pub(crate) total: Money,
    pub(crate) item_count: i64,
    #[schema(format = DateTime)]
    pub(crate) created_at: String,
}

/// Filters of order listings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    pub(crate) status: Option<String>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 2147483647)]
    pub(crate) page: Option<u32>,
    /// Page size (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub(crate) page_size: Option<u32>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders/my", tag = "ordering",
    params(OrderFilter),
    responses((status = 200, body = Page<OrderSummary>), (status = 400, body = crate::error::Problem)))]
pub async fn my_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Page<OrderSummary>>> {
    list_orders(&state, Some(caller.buyer), filter)
        .await
        .map(Json)
}

/// The conditions of an order listing, naming only the filters given (bound in that order, the
/// buyer first) so that an index serves them: `($1 IS NULL OR …)` would scan every order.
fn listing_filter(by_buyer: bool, by_status: bool) -> String {
    let mut conditions = Vec::new();
    if by_buyer {
        conditions.push(format!("o.buyer_id = ${}", conditions.len() + 1));
    }
    if by_status {
        conditions.push(format!("o.status = ${}", conditions.len() + 1));
    }
    if conditions.is_empty() {
        return "1 = 1".into();
    }
    conditions.join(" AND ")
}

/// Orders of one buyer (or of everyone), filtered and paged, newest first.
pub async fn list_orders(
    state: &AppState,
    buyer: Option<BuyerId>,
    filter: OrderFilter,
) -> Result<Page<OrderSummary>> {
    let (page, page_size) = Paging {
        page: filter.page,
        page_size: filter.page_size,
    }
    .resolve()?;
    let status = filter
        .status
        .as_deref()
        .map(|text| {
            OrderStatus::parse(text).ok_or_else(|| Error::invalid("status", "unknown order status"))
        })
        .transpose()?;
    let buyer = buyer.map(|b| b.to_string());
    let status = status.map(OrderStatus::as_str);
    let given: Vec<&str> = buyer.as_deref().into_iter().chain(status).collect();
    let filter_sql = listing_filter(buyer.is_some(), status.is_some());
    let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM orders o WHERE {filter_sql}"
    )));
    for value in &given {
        count = count.bind(*value);
    }
    let total_count: i64 = count.fetch_one(&mut state.read().await?).await?;
    let (limit, offset) = (given.len() + 1, given.len() + 2);
    let mut page_query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.id, o.order_number, o.status, o.total_cents, o.created_at, \
         (SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM order_items i WHERE i.order_id = o.id) AS item_count \
         FROM orders o WHERE {filter_sql} ORDER BY o.created_at DESC, o.id DESC LIMIT ${limit} OFFSET ${offset}"
    )));
    for value in &given {
        page_query = page_query.bind(*value);
    }
    let rows = page_query
        .bind(i64::from(page_size))
        .bind(Paging::offset(page, page_size))
        .fetch_all(&mut state.read().await?)
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            use sqlx::Row;
            let status: String = row.try_get("status")?;
            Ok(OrderSummary {
                id: db::parse(row.try_get("id")?)?,
                order_number: row.try_get("order_number")?,
                status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Submitted),
                total: Money(row.try_get("total_cents")?),
                item_count: row.try_get("item_count")?,
                created_at: rfc3339(storage::Timestamp(row.try_get("created_at")?)),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Page {
        items,
        total_count,
        page,
        page_size,
    })
}

#[cfg(test)]
mod tests {
    use super::listing_filter;

    #[test]
    fn a_listing_names_only_the_filters_given_numbered_in_binding_order() {
        assert_eq!(listing_filter(false, false), "1 = 1");
        assert_eq!(listing_filter(true, false), "o.buyer_id = $1");
        assert_eq!(listing_filter(false, true), "o.status = $1");
        assert_eq!(
            listing_filter(true, true),
            "o.buyer_id = $1 AND o.status = $2"
        );
    }
}
