//! The engine's statements on parked events: events that arrived before their instance could
//! accept them wait in `saga_parked` and are offered again after each state change.

use bus::{ConsumeError, Envelope, MessageId, Tx};
use uuid::Uuid;

/// Parks `message`; `flag` marks its (existing) instance as having parked events.
pub(crate) async fn park(
    tx: &mut Tx<'_>,
    saga: &str,
    message: &Envelope,
    flag: bool,
) -> Result<(), ConsumeError> {
    sqlx::query(
        "INSERT INTO saga_parked (saga, correlation_id, message_id, message_type, causation_id, \
         headers, payload, created_at, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (saga, correlation_id, message_id) DO NOTHING",
    )
    .bind(saga)
    .bind(message.correlation_id.to_string())
    .bind(message.message_id.to_string())
    .bind(&message.message_type)
    .bind(message.causation_id.map(|id| id.to_string()))
    .bind(serde_json::to_string(&message.headers)?)
    .bind(&message.payload)
    .bind(message.created_at.0)
    .bind(tx.now().await?.0)
    .execute(&mut **tx)
    .await?;
    if flag {
        flag_parked(tx, saga, message.correlation_id).await?;
    }
    Ok(())
}

/// From now on, transitions of this instance look for parked events.
pub(crate) async fn flag_parked(tx: &mut Tx<'_>, saga: &str, id: Uuid) -> Result<(), ConsumeError> {
    sqlx::query("UPDATE saga_instances SET has_parked = 1 WHERE saga = $1 AND correlation_id = $2")
        .bind(saga)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes one event out of the parked ones (applied, ignored or handed back to the bus).
pub(crate) async fn unpark(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
    message_id: MessageId,
) -> Result<(), ConsumeError> {
    sqlx::query(
        "DELETE FROM saga_parked WHERE saga = $1 AND correlation_id = $2 AND message_id = $3",
    )
    .bind(saga)
    .bind(id.to_string())
    .bind(message_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The events parked for instance `id`, in the order they were parked.
pub(crate) async fn parked_events(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
) -> Result<Vec<Envelope>, ConsumeError> {
    let rows = sqlx::query(
        "SELECT message_id, message_type, correlation_id, causation_id, headers, payload, \
         created_at, parked_at AS available_at, CAST(0 AS BIGINT) AS attempts \
         FROM saga_parked WHERE saga = $1 AND correlation_id = $2 ORDER BY parked_at, message_id",
    )
    .bind(saga)
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let events = rows.iter().map(Envelope::from_row);
    Ok(events.collect::<Result<_, _>>()?)
}

/// Drops the events still parked for instance `id` and counts them as ignored on it; returns
/// how many there were.
pub(crate) async fn drop_parked(
    tx: &mut Tx<'_>,
    saga: &str,
    id: Uuid,
) -> Result<u64, ConsumeError> {
    let dropped = sqlx::query("DELETE FROM saga_parked WHERE saga = $1 AND correlation_id = $2")
        .bind(saga)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if dropped == 0 {
        return Ok(0);
    }
    sqlx::query(
        "UPDATE saga_instances SET ignored_events = ignored_events + $1 \
         WHERE saga = $2 AND correlation_id = $3",
    )
    .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
    .bind(saga)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(dropped)
}
