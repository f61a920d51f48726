//! The engine's set path ([`bus::Consumer::consume_all`]): a worker batch's plain steps (an
//! instance started by its start event, or moved on by an event its state accepts, with
//! nothing parked) are written with at most three statements for the whole set: new
//! instances, moved instances, timeline. Every other case (parking, ignoring, rejecting,
//! re-offering parked events) is left to the one-by-one path, which knows them all.

use std::collections::HashMap;

use bus::{ConsumeError, Envelope, Outgoing, Tx};
use storage::Timestamp;
use uuid::Uuid;

use crate::engine::{Engine, Found, ReadAhead, Stored, decode, read_stored};
use crate::{Events, Saga};

/// One plain step, computed in memory and not yet written.
struct PlainStep<'m> {
    message: &'m Envelope,
    /// The state left; `None` when the step creates the instance.
    from: Option<&'static str>,
    to: &'static str,
    version: i64,
    data: String,
    finished: bool,
    sent: Vec<Outgoing>,
}

impl<S: Saga> Engine<S> {
    /// Writes the plain steps of `messages` together; returns the positions of the others.
    pub(crate) async fn consume_set(
        &self,
        messages: &[&Envelope],
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let mut stored = stored_for::<S>(tx, messages).await?;
        let mut steps = Vec::with_capacity(messages.len());
        let mut left = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            let id = message.correlation_id;
            let found = stored.remove(&id).unwrap_or_default();
            match self.plain_step(message, &found)? {
                Some(step) => steps.push(step),
                None => {
                    // Its one-by-one handling reads the instance from here, as it would have.
                    tx.scratch::<ReadAhead<S>>().rows.insert(id, found);
                    left.push(index);
                }
            }
        }
        let now = tx.now().await?;
        write_steps(tx, S::NAME, &steps, now).await?;
        for step in &steps {
            tx.write_all_caused_by(step.message, &step.sent).await?;
            if step.finished {
                tx.cancel_scheduled(S::NAME, step.message.correlation_id)
                    .await?;
            }
        }
        Ok(left)
    }

    /// The step `message` makes from `stored` if it is a plain one; `None` otherwise.
    fn plain_step<'m>(
        &self,
        message: &'m Envelope,
        stored: &Stored,
    ) -> Result<Option<PlainStep<'m>>, ConsumeError> {
        let Ok(event) = S::Event::decode(message) else {
            return Ok(None);
        };
        let found = decode::<S>(stored)?;
        let (from, version, transition) = match found {
            Found::Missing { parked: false } if self.saga().is_start(&event) => {
                (None, 1, self.saga().initially(&event))
            }
            Found::Instance(loaded)
                if !loaded.finished && !loaded.has_parked && !self.saga().is_start(&event) =>
            {
                let from = S::state_name(&loaded.state);
                (
                    Some(from),
                    loaded.version + 1,
                    self.saga().during(&loaded.state, &event),
                )
            }
            _ => return Ok(None),
        };
        let Ok((next, sent)) = transition else {
            return Ok(None);
        };
        Ok(Some(PlainStep {
            message,
            from,
            to: S::state_name(&next),
            version,
            data: serde_json::to_string(&next)?,
            finished: S::is_final(&next),
            sent,
        }))
    }
}

/// The stored instances of `messages`: those read ahead for the batch, the rest read now
/// with one statement.
async fn stored_for<S: Saga>(
    tx: &mut Tx<'_>,
    messages: &[&Envelope],
) -> Result<HashMap<Uuid, Stored>, sqlx::Error> {
    let mut stored = HashMap::with_capacity(messages.len());
    let mut missing = Vec::new();
    for message in messages {
        let id = message.correlation_id;
        match tx.scratch::<ReadAhead<S>>().rows.remove(&id) {
            Some(found) => {
                stored.insert(id, found);
            }
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        stored.extend(read_stored(tx, S::NAME, &missing).await?);
    }
    Ok(stored)
}

/// Creates, moves and logs the instances of `steps`: one statement each for the new ones,
/// the moved ones and the timeline. An instance created or moved by someone else since it
/// was read is a lost race: the batch runs again.
async fn write_steps(
    tx: &mut Tx<'_>,
    saga: &str,
    steps: &[PlainStep<'_>],
    now: Timestamp,
) -> Result<(), ConsumeError> {
    let (created, moved): (Vec<&PlainStep>, Vec<&PlainStep>) =
        steps.iter().partition(|step| step.from.is_none());
    let json = storage::json_rows(tx.backend(), 3);
    let completed = |step: &PlainStep| step.finished.then_some(now.0);
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
    steps: &[PlainStep<'_>],
    now: Timestamp,
) -> Result<(), ConsumeError> {
    if steps.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(steps.len());
    for step in steps {
        let types: Vec<&str> = step.sent.iter().map(|m| m.message_type).collect();
        rows.push((
            step.message.correlation_id,
            step.version,
            &step.message.message_type,
            step.message.message_id.to_string(),
            step.from,
            step.to,
            serde_json::to_string(&types)?,
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
