//! Listing orders: a buyer's or everyone's, filtered and paged.

use serde::Serialize;
use sqlx::Row;

use super::db;
use super::status::OrderStatus;
use crate::Result;
use crate::http::{Page, PageRequest, rfc3339};
use crate::ids::{BuyerId, OrderId};
use crate::money::Money;
use crate::state::AppState;

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
    /// When it was placed, as stored: the keyset cursor's position.
    #[serde(skip)]
    pub(crate) placed_at: storage::Timestamp,
}

impl OrderSummary {
    /// The order listed.
    pub fn id(&self) -> OrderId {
        self.id
    }
}

/// The columns an [`OrderSummary`] is read from (orders as `o`).
pub(super) const SUMMARY_COLUMNS: &str = "o.id, o.order_number, o.status, o.total_cents, \
    o.created_at, (SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM order_items i \
    WHERE i.order_id = o.id) AS item_count";

/// An order summary from a row of [`SUMMARY_COLUMNS`].
pub(super) fn summary(row: &sqlx::any::AnyRow) -> Result<OrderSummary, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let placed_at = storage::Timestamp(row.try_get("created_at")?);
    Ok(OrderSummary {
        id: db::parse(row.try_get("id")?)?,
        order_number: row.try_get("order_number")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status}").into()))?,
        total: Money(row.try_get("total_cents")?),
        item_count: row.try_get("item_count")?,
        created_at: rfc3339(placed_at),
        placed_at,
    })
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

/// Orders of one buyer (or of everyone), filtered and paged, newest first. Everyone's orders
/// are counted from the kept figures; the page's columns are read for its own orders only.
/// Skipping to a deep page still walks every order before it: the console and the order
/// search page by cursor instead ([`super::find_orders`]).
pub async fn list_orders(
    state: &AppState,
    buyer: Option<BuyerId>,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<Page<OrderSummary>> {
    let total_count = match buyer {
        Some(buyer) => count_of_buyer(state, buyer, status).await?,
        None => super::figures::orders_in(state, status).await?,
    };
    let buyer = buyer.map(|b| b.to_string());
    let status = status.map(OrderStatus::as_str);
    let given: Vec<&str> = buyer.as_deref().into_iter().chain(status).collect();
    let filter_sql = listing_filter(buyer.is_some(), status.is_some());
    let (limit, offset) = (given.len() + 1, given.len() + 2);
    let mut page_query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM orders o WHERE o.id IN (SELECT o.id FROM orders o \
         WHERE {filter_sql} ORDER BY o.created_at DESC, o.id DESC LIMIT ${limit} OFFSET ${offset}) \
         ORDER BY o.created_at DESC, o.id DESC"
    )));
    for value in &given {
        page_query = page_query.bind(*value);
    }
    let rows = page_query
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut state.read().await?)
        .await?;
    let items = rows
        .iter()
        .map(summary)
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(page.page_of(items, total_count))
}

/// One buyer's orders (in `status` if given), counted through the by-buyer index.
async fn count_of_buyer(
    state: &AppState,
    buyer: BuyerId,
    status: Option<OrderStatus>,
) -> Result<i64> {
    let filter_sql = listing_filter(true, status.is_some());
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM orders o WHERE {filter_sql}"
    )))
    .bind(buyer.to_string());
    let count = match status {
        Some(status) => count.bind(status.as_str()),
        None => count,
    };
    Ok(count.fetch_one(&mut state.read().await?).await?)
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
