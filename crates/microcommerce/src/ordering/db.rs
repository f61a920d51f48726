//! Order statements, shared by ordering's service functions and its status consumer.

use sqlx::Row;
use sqlx::any::AnyRow;
use storage::Timestamp;

use super::domain::{Order, OrderItem, ShippingAddress, Totals};
use super::status::OrderStatus;
use crate::contracts::FailureReason;
use crate::ids::{BuyerId, OrderId};
use crate::money::Money;

const ORDER_COLUMNS: &str = "id, order_number, buyer_id, buyer_email, ship_name, ship_email, \
    ship_street, ship_city, ship_state, ship_zip, status, subtotal_cents, shipping_cents, \
    tax_cents, total_cents, failure_reason, created_at, paid_at";

/// One order by id.
pub async fn find_order(
    conn: &mut storage::Conn<'_>,
    id: OrderId,
) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// An `Idempotency-Key` as stored with the order it placed: the key and the fingerprint of the
/// request it came with ([`super::domain::ValidCheckout::fingerprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key as the client sent it.
    pub key: String,
    /// What the request asked for.
    pub fingerprint: String,
}

/// The order a buyer already placed with this idempotency key, if any, with the fingerprint
/// of the request that placed it (none for orders placed before fingerprints were kept).
pub async fn find_by_idempotency_key(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
    key: &str,
) -> Result<Option<(Order, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS}, idempotency_fingerprint FROM orders \
         WHERE buyer_id = $1 AND idempotency_key = $2"
    )))
    .bind(buyer.to_string())
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.as_ref()
        .map(|row| {
            Ok((
                order_from_row(row)?,
                row.try_get("idempotency_fingerprint")?,
            ))
        })
        .transpose()
}

/// One order by id with its lines, in one statement: what a buyer reads most.
pub async fn find_order_with_items(
    conn: &mut storage::Conn<'_>,
    id: OrderId,
) -> Result<Option<(Order, Vec<OrderItem>)>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS}, {ITEM_COLUMNS} FROM orders \
         LEFT JOIN order_items ON order_items.order_id = orders.id \
         WHERE orders.id = $1 ORDER BY order_items.line"
    )))
    .bind(id.to_string())
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let items = rows
        .iter()
        .filter(|row| matches!(row.try_get::<Option<String>, _>("product_id"), Ok(Some(_))))
        .map(item_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Some((order_from_row(first)?, items)))
}

const ITEM_COLUMNS: &str = "product_id, product_name, unit_price_cents, quantity, image_url";

fn item_from_row(row: &AnyRow) -> Result<OrderItem, sqlx::Error> {
    let quantity: i64 = row.try_get("quantity")?;
    Ok(OrderItem {
        product_id: parse(row.try_get("product_id")?)?,
        product_name: row.try_get("product_name")?,
        unit_price: Money(row.try_get("unit_price_cents")?),
        quantity: u32::try_from(quantity).unwrap_or_default(),
        image_url: row.try_get("image_url")?,
    })
}

/// Writes a new order (status Submitted, placed from the client address `placed_from`) and its
/// lines; false (nothing written) if its order
/// number is taken or the buyer's idempotency key is, so that the caller can look which
/// without a savepoint. On PostgreSQL a concurrent insert of the same key makes this one wait
/// for that transaction to end, so a duplicate never fails on the unique index.
pub async fn insert_order(
    conn: &mut storage::Conn<'_>,
    order: &Order,
    items: &[OrderItem],
    idempotency_key: Option<&IdempotencyKey>,
    placed_from: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO orders (id, order_number, buyer_id, buyer_email, ship_name, ship_email, \
         ship_street, ship_city, ship_state, ship_zip, status, subtotal_cents, shipping_cents, \
         tax_cents, total_cents, idempotency_key, idempotency_fingerprint, created_at, \
         updated_at, placed_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $18, $19) ON CONFLICT DO NOTHING",
    )
    .bind(order.id.to_string())
    .bind(&order.order_number)
    .bind(order.buyer_id.to_string())
    .bind(&order.buyer_email)
    .bind(&order.address.name)
    .bind(&order.address.email)
    .bind(&order.address.street)
    .bind(&order.address.city)
    .bind(&order.address.state)
    .bind(&order.address.zip_code)
    .bind(order.status.as_str())
    .bind(order.totals.subtotal.0)
    .bind(order.totals.shipping.0)
    .bind(order.totals.tax.0)
    .bind(order.totals.total.0)
    .bind(idempotency_key.map(|key| key.key.as_str()))
    .bind(idempotency_key.map(|key| key.fingerprint.as_str()))
    .bind(order.created_at.0)
    .bind(placed_from)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    // The lines a hundred per statement: one statement for any ordinary order.
    for (chunk_index, chunk) in items.chunks(ITEMS_PER_INSERT).enumerate() {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO order_items (order_id, line, product_id, product_name, \
             unit_price_cents, quantity, image_url) VALUES {}",
            storage::placeholder_rows(1, chunk.len(), 7)
        )));
        for (offset, item) in chunk.iter().enumerate() {
            let line = chunk_index * ITEMS_PER_INSERT + offset;
            query = query
                .bind(order.id.to_string())
                .bind(i64::try_from(line).unwrap_or_default())
                .bind(item.product_id.to_string())
                .bind(&item.product_name)
                .bind(item.unit_price.0)
                .bind(i64::from(item.quantity))
                .bind(item.image_url.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// Order lines per INSERT statement: seven parameters each.
const ITEMS_PER_INSERT: usize = 100;

/// Moves an order to `to` if its current status allows it; false (and no change) otherwise,
/// which makes every status message idempotent. A move wakes the order's long polls once
/// `tx` commits.
pub async fn move_status(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    to: OrderStatus,
    failure_reason: Option<&str>,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let allowed = quoted_statuses(&to.reachable_from());
    if allowed.is_empty() {
        return Ok(false);
    }
    let paid_at = (to == OrderStatus::Paid).then_some(now.0);
    let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = $1, failure_reason = COALESCE($2, failure_reason), \
         paid_at = COALESCE($3, paid_at), updated_at = $4 \
         WHERE id = $5 AND status IN ({allowed})"
    )))
    .bind(to.as_str())
    .bind(failure_reason)
    .bind(paid_at)
    .bind(now.0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 1 {
        tx.announce_change(id.0);
    }
    Ok(updated == 1)
}

/// The unpaid checkouts (see [`super::checkout::unpaid`]) one holder has: how many, and when
/// the oldest was placed. `holder_column` is `buyer_id` or `placed_from`, each served by a
/// partial index of the unpaid orders whose condition is this statement's.
pub async fn unpaid_held(
    conn: &mut storage::Conn<'_>,
    holder_column: &'static str,
    holder: &str,
) -> Result<(i64, Option<Timestamp>), sqlx::Error> {
    let unpaid = quoted_statuses(&super::checkout::unpaid());
    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*), MIN(created_at) FROM orders \
         WHERE {holder_column} = $1 AND status IN ({unpaid})"
    )))
    .bind(holder)
    .fetch_one(conn)
    .await?;
    Ok((count, oldest.map(Timestamp)))
}

/// The statuses as SQL string literals, `'Submitted', 'Paid'`: only these fixed names are
/// spliced into SQL.
fn quoted_statuses(statuses: &[OrderStatus]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    quoted.join(", ")
}

/// [`move_status`] for many orders in one statement, each order at most once: `(order, new
/// status, failure reason)`. Returns the orders that moved, whose long polls wake once `tx`
/// commits.
pub async fn move_statuses(
    tx: &mut bus::Tx<'_>,
    moves: &[(OrderId, OrderStatus, Option<String>)],
    now: Timestamp,
) -> Result<Vec<OrderId>, sqlx::Error> {
    let mut targets: Vec<OrderStatus> = moves.iter().map(|(_, to, _)| *to).collect();
    targets.sort_by_key(|status| status.as_str());
    targets.dedup();
    let allowed: Vec<String> = targets
        .iter()
        .filter(|to| !to.reachable_from().is_empty())
        .map(|to| {
            format!(
                "WHEN '{}' THEN orders.status IN ({})",
                to.as_str(),
                quoted_statuses(&to.reachable_from())
            )
        })
        .collect();
    let sql = format!(
        "UPDATE orders SET status = j.value ->> 1, \
         failure_reason = COALESCE(j.value ->> 2, failure_reason), \
         paid_at = CASE WHEN j.value ->> 1 = '{}' THEN $2 ELSE paid_at END, updated_at = $2 \
         FROM {} WHERE orders.id = j.value ->> 0 \
         AND (CASE j.value ->> 1 {} ELSE false END) RETURNING orders.id",
        OrderStatus::Paid.as_str(),
        storage::json_rows(tx.backend(), 1),
        allowed.join(" ")
    );
    let rows: Vec<(String, &str, Option<&str>)> = moves
        .iter()
        .map(|(id, to, reason)| (id.to_string(), to.as_str(), reason.as_deref()))
        .collect();
    let moved = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(storage::json_param(&rows)?)
        .bind(now.0)
        .fetch_all(&mut **tx)
        .await?;
    let mut ids = Vec::with_capacity(moved.len());
    for row in moved {
        let id: String = row.try_get("id")?;
        let id: OrderId = id.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        tx.announce_change(id.0);
        ids.push(id);
    }
    Ok(ids)
}

/// Sets a status chosen by an admin after the caller checked the transition; conditional on
/// the status it was checked against, so a concurrent change is not overwritten.
pub async fn set_status_from(
    tx: &mut bus::Tx<'_>,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(to.as_str())
            .bind(now.0)
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if updated == 1 {
        tx.announce_change(id.0);
    }
    Ok(updated == 1)
}

fn order_from_row(row: &AnyRow) -> Result<Order, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Order {
        id: parse(row.try_get("id")?)?,
        order_number: row.try_get("order_number")?,
        buyer_id: parse(row.try_get("buyer_id")?)?,
        buyer_email: row.try_get("buyer_email")?,
        address: ShippingAddress {
            name: row.try_get("ship_name")?,
            email: row.try_get("ship_email")?,
            street: row.try_get("ship_street")?,
            city: row.try_get("ship_city")?,
            state: row.try_get("ship_state")?,
            zip_code: row.try_get("ship_zip")?,
        },
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status}").into()))?,
        totals: Totals {
            subtotal: Money(row.try_get("subtotal_cents")?),
            shipping: Money(row.try_get("shipping_cents")?),
            tax: Money(row.try_get("tax_cents")?),
            total: Money(row.try_get("total_cents")?),
        },
        failure_reason: row
            .try_get::<Option<String>, _>("failure_reason")?
            .map(FailureReason::from),
        created_at: Timestamp(row.try_get("created_at")?),
        paid_at: row.try_get::<Option<i64>, _>("paid_at")?.map(Timestamp),
    })
}

/// Parses a stored id column.
pub fn parse<T: std::str::FromStr<Err = uuid::Error>>(text: String) -> Result<T, sqlx::Error> {
    text.parse()
        .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))
}
