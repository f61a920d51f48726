//! The shop's figures: orders and revenue by status, orders placed per minute and today, and
//! why checkouts failed.
//!
//! They are kept, not counted, by triggers (see the `order_tallies` migration) in the
//! transaction of each order placed and each change of an order's status: on SQLite, whose one
//! writer never makes a checkout wait for another's tally row, they update the tallies; on
//! PostgreSQL they leave pending rows, which [`fold_tallies`] folds into the tallies every
//! second. A reader adds the tallies and the pending rows not folded yet; both fold with
//! `Tally::add`, so a figure is exact at any moment and costs the same at a million orders as
//! at ten.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;
use storage::Timestamp;

use super::status::OrderStatus;
use crate::Result;
use crate::money::Money;
use crate::state::AppState;

/// The shop at a glance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Orders per status (every status present, zero included).
    pub counts_by_status: BTreeMap<&'static str, i64>,
    /// All orders.
    pub total_orders: i64,
    /// Sum of confirmed, shipped and delivered orders.
    #[schema(value_type = f64)]
    pub revenue: Money,
    /// Orders placed since midnight UTC.
    pub todays_orders: i64,
}

/// Microseconds in a day.
const DAY: i64 = 86_400_000_000;
/// Pending rows folded per transaction, so that a backlog (a bulk load) is folded in steps
/// that hold the writer briefly.
const FOLD_BATCH: i64 = 20_000;
/// The name failed orders without a reason are tallied under.
const NO_REASON: &str = "";

/// Counts by status, revenue (the orders that count as sold, [`OrderStatus::is_sold`]) and
/// today's orders.
pub async fn dashboard(state: &AppState) -> Result<Dashboard> {
    let midnight = Timestamp(state.db.now().0.div_euclid(DAY) * DAY);
    let tally = read_tally(state, midnight.minute()).await?;
    let mut counts_by_status: BTreeMap<&'static str, i64> = OrderStatus::ALL
        .iter()
        .map(|status| (status.as_str(), 0))
        .collect();
    let mut revenue = 0;
    for (name, (orders, cents)) in &tally.statuses {
        if let Some(status) = OrderStatus::parse(name) {
            counts_by_status.insert(status.as_str(), *orders);
            if status.is_sold() {
                revenue += cents;
            }
        }
    }
    Ok(Dashboard {
        total_orders: counts_by_status.values().sum(),
        counts_by_status,
        revenue: Money(revenue),
        todays_orders: tally.placed.values().sum(),
    })
}

/// Orders in `status` (all orders without one), from the kept figures.
pub(super) async fn orders_in(state: &AppState, status: Option<OrderStatus>) -> Result<i64> {
    let tally = read_tally(state, state.db.now().minute()).await?;
    let counted = |name: &String| status.is_none_or(|status| status.as_str() == name);
    Ok(tally
        .statuses
        .iter()
        .filter(|(name, _)| counted(name))
        .map(|(_, (orders, _))| orders)
        .sum())
}

/// Orders placed in each of the last `minutes` clock minutes up to `now` (the current one
/// included, so far), oldest first: every order is one checkout, so this is the console's
/// checkouts-per-minute chart.
pub async fn orders_per_minute(state: &AppState, now: Timestamp, minutes: u32) -> Result<Vec<i64>> {
    let last = now.minute();
    let first = last - i64::from(minutes) + 1;
    let tally = read_tally(state, first).await?;
    Ok((first..=last)
        .map(|minute| tally.placed.get(&minute).copied().unwrap_or(0))
        .collect())
}

/// Why failed orders failed: each reason with its count, most frequent first.
pub async fn failure_reasons(state: &AppState) -> Result<Vec<(String, i64)>> {
    let tally = read_tally(state, state.db.now().minute()).await?;
    let mut reasons: Vec<(String, i64)> = tally
        .failures
        .into_iter()
        .filter(|(_, count)| *count != 0)
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(reasons
        .into_iter()
        .map(|(reason, count)| match reason.as_str() {
            NO_REASON => ("no reason given".into(), count),
            _ => (reason, count),
        })
        .collect())
}

/// One pending change: `orders` orders worth `cents` left `from_status` (none: they were
/// placed, in `placed_minute`) for `to_status`, their failure reason going from `from_reason`
/// to `to_reason`.
struct Pending {
    placed_minute: Option<i64>,
    from_status: Option<String>,
    to_status: Option<String>,
    from_reason: Option<String>,
    to_reason: Option<String>,
    orders: i64,
    cents: i64,
}

impl Pending {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            placed_minute: row.try_get("placed_minute")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            from_reason: row.try_get("from_reason")?,
            to_reason: row.try_get("to_reason")?,
            orders: row.try_get("orders")?,
            cents: row.try_get("cents")?,
        })
    }
}

/// Figures being added up: orders and cents per status, orders placed per minute, failed
/// orders per reason.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, (i64, i64)>,
    placed: BTreeMap<i64, i64>,
    failures: BTreeMap<String, i64>,
}

impl Tally {
    /// Adds one pending change: its orders leave one status (and reason) for another, and a
    /// placement counts in its minute.
    fn add(&mut self, pending: Pending) {
        if let Some(minute) = pending.placed_minute {
            *self.placed.entry(minute).or_default() += pending.orders;
        }
        if let Some(from) = pending.from_status {
            self.shift(from, pending.from_reason, -pending.orders, -pending.cents);
        }
        if let Some(to) = pending.to_status {
            self.shift(to, pending.to_reason, pending.orders, pending.cents);
        }
    }

    /// `orders` orders worth `cents` (negative: leaving) in `status`, and among the failed
    /// ones under `reason` when it is Failed.
    fn shift(&mut self, status: String, reason: Option<String>, orders: i64, cents: i64) {
        if status == OrderStatus::Failed.as_str() {
            let reason = reason.unwrap_or_else(|| NO_REASON.into());
            *self.failures.entry(reason).or_default() += orders;
        }
        let (count, sum) = self.statuses.entry(status).or_default();
        *count += orders;
        *sum += cents;
    }
}

/// The figures now, orders placed counted from minute `placed_from` on. One statement, so
/// the tallies and the pending rows are read in one snapshot: a fold committing meanwhile
/// neither hides nor doubles a change.
async fn read_tally(state: &AppState, placed_from: i64) -> Result<Tally> {
    let rows = sqlx::query(
        "SELECT CAST(0 AS BIGINT) AS kind, CAST(NULL AS BIGINT) AS placed_minute, \
         CAST(NULL AS TEXT) AS from_status, status AS to_status, \
         CAST(NULL AS TEXT) AS from_reason, CAST(NULL AS TEXT) AS to_reason, orders, cents \
         FROM order_status_tally \
         UNION ALL SELECT 1, minute, NULL, NULL, NULL, NULL, orders, 0 \
         FROM order_placed_tally WHERE minute >= $1 \
         UNION ALL SELECT 2, NULL, NULL, NULL, NULL, reason, orders, 0 FROM order_failure_tally \
         UNION ALL SELECT 3, placed_minute, from_status, to_status, from_reason, to_reason, \
         orders, cents FROM order_moves_pending",
    )
    .bind(placed_from)
    .fetch_all(&mut state.read().await?)
    .await?;
    let mut tally = Tally::default();
    for row in &rows {
        let kind: i64 = row.try_get("kind")?;
        let mut pending = Pending::from_row(row)?;
        match kind {
            0 => {
                let status = pending.to_status.unwrap_or_default();
                tally
                    .statuses
                    .insert(status, (pending.orders, pending.cents));
            }
            1 => tally.add(pending),
            2 => {
                let reason = pending.to_reason.unwrap_or_default();
                *tally.failures.entry(reason).or_default() += pending.orders;
            }
            _ => {
                pending.placed_minute = pending.placed_minute.filter(|m| *m >= placed_from);
                tally.add(pending);
            }
        }
    }
    Ok(tally)
}

/// Folds every pending change into the tallies, a batch per transaction
/// ([`storage::pending`]); returns how many pending rows were folded.
pub async fn fold_tallies(db: &storage::Db) -> Result<u64, sqlx::Error> {
    let columns = "placed_minute, from_status, to_status, from_reason, to_reason, orders, cents";
    storage::pending::fold_pending(
        db,
        "order_moves_pending",
        columns,
        FOLD_BATCH,
        |tx, rows| {
            Box::pin(async move {
                let mut tally = Tally::default();
                for row in &rows {
                    tally.add(Pending::from_row(row)?);
                }
                write_tally(tx, &tally).await
            })
        },
    )
    .await
}

/// Adds `tally` to the stored tallies, one statement per table. Keys go in sorted order, so
/// two instances folding at once wait for each other instead of deadlocking.
async fn write_tally(tx: &mut storage::Transaction<'_>, tally: &Tally) -> Result<(), sqlx::Error> {
    let statuses: Vec<_> = tally
        .statuses
        .iter()
        .map(|(status, (orders, cents))| (status, orders, cents))
        .collect();
    let upserts = [
        (
            "order_status_tally (status, orders, cents) SELECT j.value ->> 0, \
             CAST(j.value ->> 1 AS BIGINT), CAST(j.value ->> 2 AS BIGINT)",
            "status) DO UPDATE SET orders = order_status_tally.orders + excluded.orders, \
             cents = order_status_tally.cents + excluded.cents",
            storage::json_param(&statuses)?,
            statuses.is_empty(),
        ),
        (
            "order_placed_tally (minute, orders) SELECT CAST(j.value ->> 0 AS BIGINT), \
             CAST(j.value ->> 1 AS BIGINT)",
            "minute) DO UPDATE SET orders = order_placed_tally.orders + excluded.orders",
            storage::json_param(&tally.placed.iter().collect::<Vec<_>>())?,
            tally.placed.is_empty(),
        ),
        (
            "order_failure_tally (reason, orders) SELECT j.value ->> 0, \
             CAST(j.value ->> 1 AS BIGINT)",
            "reason) DO UPDATE SET orders = order_failure_tally.orders + excluded.orders",
            storage::json_param(&tally.failures.iter().collect::<Vec<_>>())?,
            tally.failures.is_empty(),
        ),
    ];
    for (insert, conflict, rows, empty) in upserts {
        if empty {
            continue;
        }
        let sql = format!(
            "INSERT INTO {insert} FROM {} WHERE true ON CONFLICT ({conflict}",
            storage::json_rows(tx.backend(), 1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rows)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
