//! The engine's statements on instances and their timeline: loading an instance (or a batch's
//! instances at once), and writing a transition, one at a time or a set of them together.

use std::collections::HashMap;

use bus::{ConsumeError, Envelope, Outgoing, Tx};
use sqlx::Row;
use storage::Timestamp;
use uuid::Uuid;

use super::decode::{decode_error, parse_uuid};
use crate::Saga;

/// What the engine finds under a correlation id.
pub(crate) enum Found<S> {
    /// The instance.
    Instance(Loaded<S>),
    /// No instance yet; `parked` says whether events arrived before it and wait in
    /// `saga_parked` (they were parked without a flag, as there was no instance to flag).
    Missing { parked: bool },
}

/// A stored instance as the engine needs it.
pub(crate) struct Loaded<S> {
    pub(crate) state: S,
    pub(crate) version: i64,
    pub(crate) finished: bool,
    /// Events may wait in `saga_parked` for this instance.
    pub(crate) has_parked: bool,
}

/// An instance row as read, or its absence and whether events were parked for it.
#[derive(Default)]
pub(crate) struct Stored {
    data: Option<String>,
    version: i64,
    finished: bool,
    has_parked: bool,
}

/// One transition as it is written: the instance's new state, its timeline row and the
/// messages it sends.
pub(crate) struct Step<'m> {
    /// The event that made it.
    pub(crate) message: &'m Envelope,
    /// The state left; `None` when the step creates the instance.
    pub(crate) from: Option<&'static str>,
    pub(crate) to: &'static str,
    /// The version it makes (1 for a new instance).
    pub(crate) version: i64,
    /// The new state, serialized.
    pub(crate) data: String,
    /// The new state is final.
    pub(crate) finished: bool,
    pub(crate) sent: Vec<Outgoing>,
}

impl Step<'_> {
    /// The types of the messages it sends, as the timeline keeps them.
    fn sent_types(&self) -> Result<String, serde_json::Error> {
        let types: Vec<&str> = self.sent.iter().map(|m| m.message_type).collect();
        serde_json::to_string(&types)
    }
}

/// The instance, or whether events wait for it: one statement either way, so that starting an
/// instance costs no separate look for events parked before it.
pub(crate) async fn load<S: Saga>(
    conn: &mut storage::Conn<'_>,
    id: Uuid,
) -> Result<Found<S::State>, sqlx::Error> {
    let mut stored = read_stored(conn, S::NAME, &[id]).await?;
    decode::<S>(&stored.remove(&id).unwrap_or_default())
}

/// The instance `stored` holds, its state decoded.
pub(crate) fn decode<S: Saga>(stored: &Stored) -> Result<Found<S::State>, sqlx::Error> {
    let Some(data) = &stored.data else {
        return Ok(Found::Missing {
            parked: stored.has_parked,
        });
    };
    Ok(Found::Instance(Loaded {
        state: serde_json::from_str(data).map_err(decode_error)?,
        version: stored.version,
        finished: stored.finished,
        has_parked: stored.has_parked,
    }))
}

fn read_stored_sql(backend: storage::Backend) -> String {
    let instance = storage::sql::left_join_one(
        backend,
        "saga_instances",
        "i",
        "saga, data, version, completed_at, has_parked",
        "saga = $1 AND correlation_id = ids.id",
    );
    format!(
        "SELECT ids.id AS correlation_id, i.data, i.version, i.completed_at, \
         CASE WHEN i.saga IS NOT NULL THEN i.has_parked \
         WHEN EXISTS (SELECT 1 FROM saga_parked p WHERE p.saga = $1 AND p.correlation_id = ids.id) \
         THEN 1 ELSE 0 END AS has_parked \
         FROM (SELECT j.value AS id FROM {}) AS ids {instance}",
        storage::json_values(backend, 2)
    )
}

/// The instances of `saga` under `ids` (every id gets an entry), with one statement; the ids
/// are bound as one JSON array, so the statement is the same for one event's load and for a
/// batch's read-ahead.
pub(crate) async fn read_stored(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Stored>, sqlx::Error> {
    let query = sqlx::query(sqlx::AssertSqlSafe(read_stored_sql(conn.backend())))
        .bind(saga)
        .bind(storage::json_param(&ids)?);
    let mut stored = HashMap::with_capacity(ids.len());
    for row in query.fetch_all(conn).await? {
        let id = parse_uuid(row.try_get("correlation_id")?)?;
        stored.insert(
            id,
            Stored {
                data: row.try_get("data")?,
                version: row
                    .try_get::<Option<i64>, _>("version")?
                    .unwrap_or_default(),
                finished: row.try_get::<Option<i64>, _>("completed_at")?.is_some(),
                has_parked: row.try_get::<i64, _>("has_parked")? != 0,
            },
        );
    }
    Ok(stored)
}

/// Writes the instance (created at version 1, or moved from `version - 1` to `version`) in the
/// same statement as its timeline row, so a step costs one round trip to the database less;
/// PostgreSQL chains them with a CTE, SQLite runs both statements in one command and inserts
/// the timeline row only if the instance was written (`changes()`).
const CREATE_INSTANCE: &str = "INSERT INTO saga_instances (saga, correlation_id, state, data, \
    version, created_at, updated_at, completed_at) VALUES ($1, $2, $8, $10, $3, $4, $4, $11) \
    ON CONFLICT (saga, correlation_id) DO NOTHING";
const ADVANCE_INSTANCE: &str = "UPDATE saga_instances SET state = $8, data = $10, version = $3, \
    updated_at = $4, completed_at = $11 \
    WHERE saga = $1 AND correlation_id = $2 AND version = $3 - 1";
const TIMELINE_COLUMNS: &str = "INSERT INTO saga_timeline (saga, correlation_id, seq, at, event, \
    message_id, from_state, to_state, messages_sent) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9";

/// Saves `step`'s instance with its timeline row; false (nothing written) if the instance was
/// not at the version the step was computed from.
pub(crate) async fn save(
    tx: &mut Tx<'_>,
    saga: &str,
    step: &Step<'_>,
    now: Timestamp,
) -> Result<bool, ConsumeError> {
    let write = if step.from.is_none() {
        CREATE_INSTANCE
    } else {
        ADVANCE_INSTANCE
    };
    let sql = storage::sql::insert_if_written(tx.backend(), write, TIMELINE_COLUMNS);
    let written = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(saga)
        .bind(step.message.correlation_id.to_string())
        .bind(step.version)
        .bind(now.0)
        .bind(&step.message.message_type)
        .bind(step.message.message_id.to_string())
        .bind(step.from)
        .bind(step.to)
        .bind(step.sent_types()?)
        .bind(&step.data)
        .bind(step.finished.then_some(now.0))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(written != 0)
}

/// Creates, moves and logs the instances of `steps`: one statement each for the new ones,
/// the moved ones and the timeline. An instance created or moved by someone else since it
/// was read is a lost race: the batch runs again.
pub(crate) async fn save_all(
    tx: &mut Tx<'_>,
    saga: &str,
    steps: &[Step<'_>],
    now: Timestamp,
) -> Result<(), ConsumeError> {
    let (created, moved): (Vec<&Step>, Vec<&Step>) =
        steps.iter().partition(|step| step.from.is_none());
    let json = storage::json_rows(tx.backend(), 3);
    let completed = |step: &Step| step.finished.then_some(now.0);
    if !created.is_empty() {
        let rows: Vec<_> = created
            .iter()
            .map(|s| (s.message.correlation_id, s.to, &s.data, completed(s)))
            .collect();
        let sql = format!(
            "INSERT INTO saga_instances (saga, correlation_id, state, data, version, created_at, \
             updated_at, completed_at) SELECT $1, j.value ->> 0, j.value ->> 1, j.value ->> 2, \
             1, $2, $2, CAST(j.value ->> 3 AS BIGINT) FROM {json} WHERE true \
             ON CONFLICT (saga, correlation_id) DO NOTHING"
        );
        expect_rows(tx, &sql, saga, now, &rows, "a new instance exists already").await?;
    }
    if !moved.is_empty() {
        // The saga's name comes with each row, not from `$1`: matched on the whole primary
        // key from the list, every instance is one index lookup. Given the name as a constant,
        // SQLite scans every instance of the saga through the by-state index instead.
        let rows: Vec<_> = moved
            .iter()
            .map(|s| {
                (
                    s.message.correlation_id,
                    s.to,
                    &s.data,
                    s.version,
                    completed(s),
                    saga,
                )
            })
            .collect();
        let sql = format!(
            "UPDATE saga_instances SET state = j.value ->> 1, data = j.value ->> 2, \
             version = CAST(j.value ->> 3 AS BIGINT), updated_at = $2, \
             completed_at = CAST(j.value ->> 4 AS BIGINT) FROM {json} \
             WHERE saga_instances.saga = j.value ->> 5 \
             AND saga_instances.correlation_id = j.value ->> 0 \
             AND saga_instances.version = CAST(j.value ->> 3 AS BIGINT) - 1 AND j.value ->> 5 = $1"
        );
        expect_rows(
            tx,
            &sql,
            saga,
            now,
            &rows,
            "an instance moved since it was read",
        )
        .await?;
    }
    log_steps(tx, saga, steps, now).await
}

/// Runs `sql` on `rows` and fails with a lost race unless it wrote every row.
async fn expect_rows(
    tx: &mut Tx<'_>,
    sql: &str,
    saga: &str,
    now: Timestamp,
    rows: &[impl serde::Serialize],
    race: &str,
) -> Result<(), ConsumeError> {
    let written = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(saga)
        .bind(now.0)
        .bind(storage::json_param(&rows)?)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if written != rows.len() as u64 {
        return Err(ConsumeError::lost_race(format!("saga {saga}: {race}")));
    }
    Ok(())
}

/// The timeline rows of `steps`, one statement.
async fn log_steps(
    tx: &mut Tx<'_>,
    saga: &str,
    steps: &[Step<'_>],
    now: Timestamp,
) -> Result<(), ConsumeError> {
    if steps.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(steps.len());
    for step in steps {
        rows.push((
            step.message.correlation_id,
            step.version,
            &step.message.message_type,
            step.message.message_id.to_string(),
            step.from,
            step.to,
            step.sent_types()?,
        ));
    }
    let sql = format!(
        "INSERT INTO saga_timeline (saga, correlation_id, seq, at, event, message_id, \
         from_state, to_state, messages_sent) SELECT $1, j.value ->> 0, \
         CAST(j.value ->> 1 AS BIGINT), $2, j.value ->> 2, j.value ->> 3, j.value ->> 4, \
         j.value ->> 5, j.value ->> 6 FROM {} WHERE true",
        storage::json_rows(tx.backend(), 3)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(saga)
        .bind(now.0)
        .bind(storage::json_param(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Counts an event the instance ignored (it came after the instance finished, or was stale).
pub(crate) async fn count_ignored(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
) -> Result<(), ConsumeError> {
    sqlx::query(
        "UPDATE saga_instances SET ignored_events = ignored_events + 1 \
         WHERE saga = $1 AND correlation_id = $2",
    )
    .bind(saga)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
