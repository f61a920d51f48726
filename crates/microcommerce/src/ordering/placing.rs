//! Placing an order: the checkout's lines and their catalog prices read first, then the order
//! and the event that starts its saga written in one transaction; idempotency keys make a
//! retried checkout return the order the first one placed. No one holds more unpaid checkouts
//! than the limits allow ([`crate::config::Limits`]), so stock is not hoarded by never paying.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use super::db::{self, IdempotencyKey};
use super::domain::{Order, OrderItem, Totals, ValidCheckout};
use super::status::OrderStatus;
use crate::catalog::{ProductStatus, product_snapshots};
use crate::contracts::{CheckoutStarted, OrderLine};
use crate::error::{Holder, Limit};
use crate::ids::{BuyerId, OrderId, ProductId};
use crate::state::AppState;
use crate::{Error, Result};

/// A checkout as the API, the storefront and the in-process benchmark run it: an order already
/// placed under `key` is returned as it is (or refused, if the key came with a different
/// request); otherwise the lines and their catalog snapshot are read on a reader connection,
/// then the order is placed in a grouped write transaction.
pub async fn check_out(
    state: &AppState,
    buyer: BuyerId,
    address: IpAddr,
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
    let holders = Holders::of(state, buyer, address);
    let order = (valid, items, key, holders);
    state
        .write(order, move |tx, (valid, items, key, holders)| {
            Box::pin(async move {
                holders.refuse_one_more(tx).await?;
                place_order(tx, buyer, valid, items, key.as_ref(), holders.placed_from()).await
            })
        })
        .await
}

/// Who a new checkout would belong to, with the unpaid checkouts each may hold.
struct Holders {
    buyer: BuyerId,
    /// The client's address, unless it is unknown (in process: no address to count).
    address: Option<IpAddr>,
    per_buyer: Option<NonZeroU32>,
    per_address: Option<NonZeroU32>,
    payment_timeout: std::time::Duration,
}

impl Holders {
    fn of(state: &AppState, buyer: BuyerId, address: IpAddr) -> Self {
        let limits = &state.config.limits;
        Self {
            buyer,
            address: Some(address).filter(|address| !address.is_unspecified()),
            per_buyer: limits.unpaid_per_buyer,
            per_address: limits.unpaid_per_address,
            payment_timeout: state.config.payment_timeout,
        }
    }

    /// The address as the order keeps it.
    fn placed_from(&self) -> Option<String> {
        self.address.map(|address| address.to_string())
    }

    /// Refuses (429) a checkout that would make the buyer, or the buyer's address, hold more
    /// unpaid checkouts than allowed; `Retry-After` says when the oldest one's payment window
    /// closes. Counted in the transaction that places the order: exact on SQLite's one writer;
    /// on PostgreSQL checkouts of one holder placed at the same instant in different
    /// transactions may pass together, at most one per concurrent write transaction.
    async fn refuse_one_more(&self, tx: &mut bus::Tx<'_>) -> Result<()> {
        let buyer = self.buyer.to_string();
        let placed_from = self.placed_from();
        let held = [
            (Holder::Buyer, "buyer_id", Some(buyer), self.per_buyer),
            (
                Holder::Address,
                "placed_from",
                placed_from,
                self.per_address,
            ),
        ];
        for (holder, column, value, limit) in held {
            let (Some(value), Some(limit)) = (value, limit) else {
                continue;
            };
            let (count, oldest) = db::unpaid_held(tx, column, &value).await?;
            if count >= i64::from(limit.get()) {
                let now = tx.now().await?;
                let frees = oldest.map_or(now, |oldest| oldest.plus(self.payment_timeout));
                return Err(Error::Limited(Limit::UnpaidCheckouts {
                    holder,
                    limit: limit.get(),
                    retry_after: now.until(frees).max(ONE_SECOND),
                }));
            }
        }
        Ok(())
    }
}

/// The shortest wait a refused checkout is told: the oldest one's window may close any moment.
const ONE_SECOND: std::time::Duration = std::time::Duration::from_secs(1);

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
    placed_from: Option<String>,
) -> Result<Order> {
    let from_cart = valid.lines.is_none();
    let order = new_order(valid, buyer, items, tx.now().await?);
    let placed = insert_with_unique_number(tx, buyer, order, items, key, placed_from.as_deref());
    let order = match placed.await? {
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

async fn cart_lines(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
) -> Result<BTreeMap<ProductId, u32>> {
    let lines: BTreeMap<_, _> = crate::cart::lines_of(conn, buyer)
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
    let products: BTreeMap<ProductId, _> = product_snapshots(conn, &ids)
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
    placed_from: Option<&str>,
) -> Result<Placed> {
    for _ in 0..5 {
        if db::insert_order(tx, &order, items, key, placed_from).await? {
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
