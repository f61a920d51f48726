//! Reading saga instances back: for the HTTP API, for operators hunting stuck instances, and
//! for tests.

use bus::MessageId;

use super::decode::{decode_error, parse_uuid};
use crate::Saga;

use sqlx::Row;
use sqlx::any::AnyRow;
use storage::Timestamp;
use uuid::Uuid;

/// An instance with its whole history.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The saga's name.
    pub saga: String,
    /// The instance's correlation id (an order id, say).
    pub correlation_id: Uuid,
    /// Name of the current state.
    pub state: String,
    /// The state serialized as JSON, data included.
    pub data: serde_json::Value,
    /// Bumped by every transition; the optimistic-concurrency token.
    pub version: i64,
    /// When the instance was created.
    pub created_at: Timestamp,
    /// When it last changed state.
    pub updated_at: Timestamp,
    /// When it reached a final state, if it has.
    pub completed_at: Option<Timestamp>,
    /// Events that arrived after the instance had moved past them, or finished.
    pub ignored_events: i64,
    /// Every applied event, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Events waiting for a state in which they are valid.
    pub parked: Vec<ParkedEvent>,
}

/// One applied event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Position in the timeline; equals the version the transition produced.
    pub seq: i64,
    /// When it was applied.
    pub at: Timestamp,
    /// The event's message type.
    pub event: String,
    /// The message that carried it.
    pub message_id: MessageId,
    /// The state before (none for the event that created the instance).
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
    /// Types of the messages the transition sent.
    pub messages_sent: Vec<String>,
}

/// An event parked because it arrived before the instance could accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The message that carried it.
    pub message_id: MessageId,
    /// Its message type.
    pub message_type: String,
    /// When it was parked.
    pub parked_at: Timestamp,
}

/// An instance without its history, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The instance's correlation id.
    pub correlation_id: Uuid,
    /// Name of the current state.
    pub state: String,
    /// Optimistic-concurrency token.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it finished, if it has.
    pub completed_at: Option<Timestamp>,
}

/// An instance's state decoded into the saga's own type: what another module gets when it
/// asks a saga where it stands, so that a renamed or added state breaks its build.
#[derive(Debug, Clone, PartialEq)]
pub struct Current<S> {
    /// The state, data included.
    pub state: S,
    /// When the instance last changed state.
    pub updated_at: Timestamp,
}

/// Where a listing stands: just after the instance last updated at `updated_at` with this
/// correlation id, in the listing's order (least recently updated first). Written
/// `updated_at.correlation_id`, so that it can travel in a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The last listed instance's last update.
    pub updated_at: Timestamp,
    /// The last listed instance's correlation id.
    pub correlation_id: Uuid,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.updated_at.0, self.correlation_id)
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a position in a listing");
        let (at, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            updated_at: Timestamp(at.parse().map_err(|_| bad())?),
            correlation_id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Which instances [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances not updated since this instant: the stuck ones.
    pub updated_before: Option<Timestamp>,
    /// Only unfinished instances.
    pub active_only: bool,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Only those after this position: the next page.
    pub after: Option<Position>,
}

/// One instance of `saga` with its timeline and parked events.
pub async fn get(
    readers: &storage::Readers,
    saga: &str,
    id: Uuid,
) -> Result<Option<Instance>, sqlx::Error> {
    let mut conn = readers.acquire().await?;
    get_on(&mut conn, saga, id).await
}

/// The current state of `S`'s instance `id`, typed, read on `conn` (inside a transaction it
/// sees that transaction's writes); `None` before the instance starts.
pub async fn current<S: Saga>(
    conn: &mut storage::Conn<'_>,
    id: Uuid,
) -> Result<Option<Current<S::State>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT data, updated_at FROM saga_instances WHERE saga = $1 AND correlation_id = $2",
    )
    .bind(S::NAME)
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let data: String = row.try_get("data")?;
    Ok(Some(Current {
        state: serde_json::from_str(&data).map_err(|error| sqlx::Error::Decode(error.into()))?,
        updated_at: Timestamp(row.try_get("updated_at")?),
    }))
}

/// [`get`] on a given connection or transaction.
pub async fn get_on(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    id: Uuid,
) -> Result<Option<Instance>, sqlx::Error> {
    let key = id.to_string();
    let Some(row) = sqlx::query(
        "SELECT correlation_id, state, data, version, created_at, updated_at, completed_at, \
         ignored_events FROM saga_instances WHERE saga = $1 AND correlation_id = $2",
    )
    .bind(saga)
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let timeline = sqlx::query(
        "SELECT seq, at, event, message_id, from_state, to_state, messages_sent \
         FROM saga_timeline WHERE saga = $1 AND correlation_id = $2 ORDER BY seq",
    )
    .bind(saga)
    .bind(&key)
    .fetch_all(&mut *conn)
    .await?;
    let parked = sqlx::query(
        "SELECT message_id, message_type, parked_at FROM saga_parked \
         WHERE saga = $1 AND correlation_id = $2 ORDER BY parked_at, message_id",
    )
    .bind(saga)
    .bind(&key)
    .fetch_all(&mut *conn)
    .await?;
    let data: String = row.try_get("data")?;
    let found = summary(&row)?;
    Ok(Some(Instance {
        saga: saga.to_owned(),
        correlation_id: id,
        state: found.state,
        data: serde_json::from_str(&data).map_err(decode_error)?,
        version: found.version,
        created_at: found.created_at,
        updated_at: found.updated_at,
        completed_at: found.completed_at,
        ignored_events: row.try_get("ignored_events")?,
        timeline: timeline
            .iter()
            .map(timeline_entry)
            .collect::<Result<_, _>>()?,
        parked: parked.iter().map(parked_event).collect::<Result<_, _>>()?,
    }))
}

/// Instances of `saga` matching `filter`, least recently updated first (the correlation id
/// breaking ties), so that a listing pages by [`Position`] without skipping or repeating.
pub async fn list(
    readers: &storage::Readers,
    saga: &str,
    filter: &Filter,
) -> Result<Vec<Summary>, sqlx::Error> {
    let mut conn = readers.acquire().await?;
    list_on(&mut conn, saga, filter).await
}

/// [`list`] on a given connection.
pub async fn list_on(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    filter: &Filter,
) -> Result<Vec<Summary>, sqlx::Error> {
    let (conditions, values) = conditions(filter);
    let limit_at = values.len() + 2;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT correlation_id, state, version, created_at, updated_at, completed_at \
         FROM saga_instances WHERE saga = $1{conditions} \
         ORDER BY updated_at, correlation_id LIMIT ${limit_at}"
    )))
    .bind(saga);
    for value in values {
        query = match value {
            Bound::Text(text) => query.bind(text),
            Bound::Number(number) => query.bind(number),
        };
    }
    let rows = query
        .bind(i64::from(filter.limit.unwrap_or(100)))
        .fetch_all(conn)
        .await?;
    rows.iter().map(summary).collect()
}

/// A value bound to a listing's statement.
enum Bound {
    Text(String),
    Number(i64),
}

/// The listing's conditions after the saga's (`$1`), naming only what the filter gives, so that
/// the (saga, state, updated_at) index serves them.
fn conditions(filter: &Filter) -> (String, Vec<Bound>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    let mut push = |condition: &str, value: Option<Bound>| {
        if let Some(value) = value {
            values.push(value);
        }
        let at = values.len() + 1;
        sql.push_str(" AND ");
        sql.push_str(
            &condition
                .replace('?', &format!("${at}"))
                .replace('^', &format!("${}", at - 1)),
        );
    };
    if let Some(state) = &filter.state {
        push("state = ?", Some(Bound::Text(state.clone())));
    }
    if let Some(before) = filter.updated_before {
        push("updated_at < ?", Some(Bound::Number(before.0)));
    }
    if filter.active_only {
        push("completed_at IS NULL", None);
    }
    if let Some(after) = filter.after {
        push("updated_at >= ?", Some(Bound::Number(after.updated_at.0)));
        let id = Bound::Text(after.correlation_id.to_string());
        push("(updated_at > ^ OR correlation_id > ?)", Some(id));
    }
    (sql, values)
}

fn summary(row: &AnyRow) -> Result<Summary, sqlx::Error> {
    Ok(Summary {
        correlation_id: parse_uuid(row.try_get("correlation_id")?)?,
        state: row.try_get("state")?,
        version: row.try_get("version")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(Timestamp),
    })
}

/// Deletes finished instances of `saga` completed before `before`, with their timelines and
/// parked events, and its moves counted before then; returns how many instances. Until then they are tombstones that stop a late
/// duplicate start from creating the instance again.
pub async fn prune_completed(
    bus: &bus::Bus,
    saga: &str,
    before: Timestamp,
) -> Result<u64, sqlx::Error> {
    let mut tx = bus.begin().await?;
    for table in ["saga_timeline", "saga_parked"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE saga = $1 AND correlation_id IN \
             (SELECT correlation_id FROM saga_instances WHERE saga = $1 \
              AND completed_at IS NOT NULL AND completed_at < $2)"
        )))
        .bind(saga)
        .bind(before.0)
        .execute(&mut *tx)
        .await?;
    }
    let deleted = sqlx::query(
        "DELETE FROM saga_instances WHERE saga = $1 AND completed_at IS NOT NULL \
         AND completed_at < $2",
    )
    .bind(saga)
    .bind(before.0)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM saga_move_tally WHERE saga = $1 AND minute < $2")
        .bind(saga)
        .bind(before.minute())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

fn timeline_entry(row: &AnyRow) -> Result<TimelineEntry, sqlx::Error> {
    let sent: String = row.try_get("messages_sent")?;
    Ok(TimelineEntry {
        seq: row.try_get("seq")?,
        at: Timestamp(row.try_get("at")?),
        event: row.try_get("event")?,
        message_id: MessageId(parse_uuid(row.try_get("message_id")?)?),
        from_state: row.try_get("from_state")?,
        to_state: row.try_get("to_state")?,
        messages_sent: serde_json::from_str(&sent).map_err(decode_error)?,
    })
}

fn parked_event(row: &AnyRow) -> Result<ParkedEvent, sqlx::Error> {
    Ok(ParkedEvent {
        message_id: MessageId(parse_uuid(row.try_get("message_id")?)?),
        message_type: row.try_get("message_type")?,
        parked_at: Timestamp(row.try_get("parked_at")?),
    })
}
