//! Finding orders for an operator: by status, by the day they were placed, by order number or
//! the buyer's email, newest first, a page at a time by a cursor. A cursor names the last order
//! shown, so a page costs the same at the millionth order as at the first, and orders placed
//! while an operator pages neither shift nor repeat what follows.

use std::fmt;
use std::str::FromStr;

use storage::Timestamp;

use super::listing::{OrderSummary, SUMMARY_COLUMNS, summary};
use super::status::OrderStatus;
use crate::Result;
use crate::ids::OrderId;
use crate::state::AppState;

/// What an operator looks for. Every field narrows the search; none given lists every order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSearch {
    /// Orders in this status only.
    pub status: Option<OrderStatus>,
    /// An order number (`MC-7Q2XKD`, or without its `MC-`) or a buyer's email, exactly.
    pub text: Option<String>,
    /// Orders placed at or after this time.
    pub placed_from: Option<Timestamp>,
    /// Orders placed before this time.
    pub placed_before: Option<Timestamp>,
}

/// Where the next page starts: just after the order placed at `created_at` with id `id`, in
/// the listing's order (newest first, the id breaking ties). Written as `created_at.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    created_at: i64,
    id: OrderId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at, self.id)
    }
}

impl FromStr for Cursor {
    type Err = crate::Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || crate::Error::BadRequest("the cursor is not one this service gave".into());
        let (created_at, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            created_at: created_at.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of a search, and the cursor of the next page when there is one.
#[derive(Debug)]
pub struct OrderBatch {
    /// The orders, newest first.
    pub items: Vec<OrderSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A value bound to the search's statement.
enum Bound {
    Text(String),
    Number(i64),
}

/// The search's conditions and their values, numbered in binding order, naming only what is
/// given so that an index serves each: the number's unique index, the email's, the status's
/// (status, created_at), or the placing time's.
fn conditions(search: &OrderSearch, after: Option<Cursor>) -> (String, Vec<Bound>) {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    // `?` stands for the value pushed with the condition, `^` for the one pushed before it.
    let mut push = |condition: &str, value: Bound| {
        values.push(value);
        let (this, previous) = (values.len(), values.len() - 1);
        let condition = condition.replace('?', &format!("${this}"));
        sql.push(condition.replace('^', &format!("${previous}")));
    };
    if let Some(status) = search.status {
        push("o.status = ?", Bound::Text(status.as_str().into()));
    }
    match search.text.as_deref().map(str::trim) {
        Some(email) if email.contains('@') => push("o.buyer_email = ?", Bound::Text(email.into())),
        Some(number) if !number.is_empty() => {
            push("o.order_number = ?", Bound::Text(order_number(number)))
        }
        _ => {}
    }
    if let Some(from) = search.placed_from {
        push("o.created_at >= ?", Bound::Number(from.0));
    }
    if let Some(before) = search.placed_before {
        push("o.created_at < ?", Bound::Number(before.0));
    }
    if let Some(after) = after {
        push("o.created_at <= ?", Bound::Number(after.created_at));
        push(
            "(o.created_at < ^ OR o.id < ?)",
            Bound::Text(after.id.to_string()),
        );
    }
    let sql = if sql.is_empty() {
        "1 = 1".to_owned()
    } else {
        sql.join(" AND ")
    };
    (sql, values)
}

/// Midnight UTC at the start of `date` (`YYYY-MM-DD`) plus `days`; none for a blank field.
pub fn day_start(date: &str, days: i64) -> Result<Option<Timestamp>> {
    let date = date.trim();
    if date.is_empty() {
        return Ok(None);
    }
    let bad = || crate::Error::BadRequest(format!("{date:?} is not a day written as YYYY-MM-DD"));
    let mut parts = date.splitn(3, '-').map(str::parse::<i32>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok());
    let day = u8::try_from(day)
        .ok()
        .zip(month)
        .and_then(|(day, month)| time::Date::from_calendar_date(year, month, day).ok())
        .ok_or_else(bad)?;
    let seconds = day.midnight().assume_utc().unix_timestamp() + days * 86_400;
    Ok(Some(Timestamp(seconds * 1_000_000)))
}

/// `mc-7q2xkd` or `7q2xkd` as stored: `MC-7Q2XKD`.
fn order_number(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("MC-") {
        upper
    } else {
        format!("MC-{upper}")
    }
}

/// Up to `limit` orders that match `search`, newest first, starting after `after`.
pub async fn find_orders(
    state: &AppState,
    search: &OrderSearch,
    after: Option<Cursor>,
    limit: u32,
) -> Result<OrderBatch> {
    let (filter, values) = conditions(search, after);
    let limit_at = values.len() + 1;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM orders o WHERE {filter} \
         ORDER BY o.created_at DESC, o.id DESC LIMIT ${limit_at}"
    )));
    for value in values {
        query = match value {
            Bound::Text(text) => query.bind(text),
            Bound::Number(number) => query.bind(number),
        };
    }
    let rows = query
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut state.read().await?)
        .await?;
    let mut items = rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|last| Cursor {
            created_at: last.placed_at.0,
            id: last.id,
        })
    } else {
        None
    };
    Ok(OrderBatch { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_names_only_what_is_given_numbered_in_binding_order() {
        assert_eq!(conditions(&OrderSearch::default(), None).0, "1 = 1");
        let search = OrderSearch {
            status: Some(OrderStatus::Failed),
            text: Some(" a@b.test ".into()),
            ..OrderSearch::default()
        };
        assert_eq!(
            conditions(&search, None).0,
            "o.status = $1 AND o.buyer_email = $2"
        );
        let after = Cursor {
            created_at: 7,
            id: OrderId(uuid::Uuid::nil()),
        };
        let by_number = OrderSearch {
            text: Some("7q2xkd".into()),
            ..OrderSearch::default()
        };
        assert_eq!(
            conditions(&by_number, Some(after)).0,
            "o.order_number = $1 AND o.created_at <= $2 AND (o.created_at < $2 OR o.id < $3)"
        );
    }

    #[test]
    fn a_day_covers_the_whole_day_in_utc() {
        let from = day_start("2026-12-07", 0).expect("a day").expect("given");
        let to = day_start("2026-12-07", 1).expect("a day").expect("given");
        assert_eq!(to.0 - from.0, 86_400_000_000);
        assert_eq!(from.0, 1_796_601_600_000_000);
        assert_eq!(day_start(" ", 0).expect("blank"), None);
        assert!(day_start("07/12/2026", 0).is_err());
        assert!(day_start("2026-02-30", 0).is_err());
    }

    #[test]
    fn order_numbers_are_found_with_or_without_their_prefix_in_any_case() {
        assert_eq!(order_number("mc-7q2xkd"), "MC-7Q2XKD");
        assert_eq!(order_number("7Q2XKD"), "MC-7Q2XKD");
    }

    #[test]
    fn a_cursor_reads_back_as_written_and_refuses_anything_else() {
        let cursor = Cursor {
            created_at: 1_765_000_000_000_000,
            id: OrderId(uuid::Uuid::new_v4()),
        };
        assert_eq!(cursor.to_string().parse::<Cursor>().ok(), Some(cursor));
        for bad in ["", "12", "x.y", "12.not-a-uuid"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
