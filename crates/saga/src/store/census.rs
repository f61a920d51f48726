//! A saga's instances counted: how many stand in each state now, and which moves they made in
//! a recent window. What an operator's picture of the saga is drawn with.
//!
//! The counts are kept, not counted, by triggers (see the `saga_tallies` migration) in the
//! transaction of each transition and each pruning: on SQLite, whose one writer never makes a
//! checkout wait for another's tally row, they update the tallies; on PostgreSQL they leave
//! pending rows, which [`fold_tallies`] folds into the tallies. [`census`] reads the tallies
//! with the pending rows not folded yet; both fold with `Tally::add`, so a count is the same
//! before and after folding, and reading costs the same at a million instances as at ten.

use std::collections::BTreeMap;

use sqlx::Row;
use storage::Timestamp;

/// How many times instances took one move (from, event, to) in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The state moved from; `None` for the start.
    pub from: Option<String>,
    /// The event's message type.
    pub event: String,
    /// The state moved to.
    pub to: String,
    /// How many times.
    pub count: i64,
}

/// A saga's instances per state now and its moves in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Instances in each state (finished ones until they are pruned), by state name; a state
    /// no instance stands in is absent.
    pub by_state: Vec<(String, i64)>,
    /// The moves taken in the window, each counted.
    pub moves: Vec<Taken>,
}

/// Pending rows folded per transaction, so that a backlog (a bulk load) is folded in steps
/// that hold the writer briefly.
const FOLD_BATCH: i64 = 20_000;

/// One pending change: `n` instances left `from` (none: they started) for `to` (none: they
/// were pruned) by `event` in `minute`.
struct Pending {
    saga: String,
    minute: i64,
    from: Option<String>,
    event: Option<String>,
    to: Option<String>,
    n: i64,
}

impl Pending {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            saga: row.try_get("saga")?,
            minute: row.try_get("minute")?,
            from: row.try_get("from_state")?,
            event: row.try_get("event")?,
            to: row.try_get("to_state")?,
            n: row.try_get("n")?,
        })
    }
}

/// A move's key in the tally: saga, minute, from ('' for the start), event, to.
type MoveKey = (String, i64, String, String, String);

/// Counts being added up: instances per (saga, state), moves per [`MoveKey`].
#[derive(Default)]
struct Tally {
    states: BTreeMap<(String, String), i64>,
    moves: BTreeMap<MoveKey, i64>,
}

impl Tally {
    /// Adds one pending change: its instances leave one state and enter another, and its
    /// move is counted in its minute.
    fn add(&mut self, pending: Pending) {
        self.shift_states(&pending);
        self.count_move(pending);
    }

    /// The change's instances leave its `from` state and enter its `to` state.
    fn shift_states(&mut self, pending: &Pending) {
        let mut shift = |state: &Option<String>, by: i64| {
            if let Some(state) = state {
                *self
                    .states
                    .entry((pending.saga.clone(), state.clone()))
                    .or_default() += by;
            }
        };
        shift(&pending.from, -pending.n);
        shift(&pending.to, pending.n);
    }

    /// The change's move counted in its minute; a pruning is no move.
    fn count_move(&mut self, pending: Pending) {
        if let (Some(event), Some(to)) = (pending.event, pending.to) {
            let from = pending.from.unwrap_or_default();
            let key = (pending.saga, pending.minute, from, event, to);
            *self.moves.entry(key).or_default() += pending.n;
        }
    }

    /// The counts of one saga as a [`Census`], moves added up over their minutes.
    fn into_census(self) -> Census {
        let by_state = self
            .states
            .into_iter()
            .filter(|(_, count)| *count != 0)
            .map(|((_, state), count)| (state, count))
            .collect();
        let mut moves: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        for ((_, _, from, event, to), count) in self.moves {
            *moves.entry((from, event, to)).or_default() += count;
        }
        let moves = moves
            .into_iter()
            .map(|((from, event, to), count)| Taken {
                from: Some(from).filter(|from| !from.is_empty()),
                event,
                to,
                count,
            })
            .collect();
        Census { by_state, moves }
    }
}

/// Instances of `saga` per state now, and the moves they made from the start of `since`'s
/// minute on (moves are counted by whole minutes).
pub async fn census(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    since: Timestamp,
) -> Result<Census, sqlx::Error> {
    let since_minute = since.minute();
    // One statement, so the tallies and the pending rows are read in one snapshot: a fold
    // committing meanwhile neither hides nor doubles a change.
    let rows = sqlx::query(
        "SELECT CAST(0 AS BIGINT) AS kind, saga, CAST(0 AS BIGINT) AS minute, \
         CAST(NULL AS TEXT) AS from_state, CAST(NULL AS TEXT) AS event, state AS to_state, \
         instances AS n FROM saga_state_tally WHERE saga = $1 \
         UNION ALL SELECT 1, saga, minute, from_state, event, to_state, moves \
         FROM saga_move_tally WHERE saga = $1 AND minute >= $2 \
         UNION ALL SELECT 2, saga, minute, from_state, event, to_state, n \
         FROM saga_moves_pending WHERE saga = $1",
    )
    .bind(saga)
    .bind(since_minute)
    .fetch_all(conn)
    .await?;
    let mut tally = Tally::default();
    for row in &rows {
        let kind: i64 = row.try_get("kind")?;
        let pending = Pending::from_row(row)?;
        match kind {
            0 => tally.shift_states(&pending),
            1 => tally.count_move(pending),
            _ => {
                tally.shift_states(&pending);
                if pending.minute >= since_minute {
                    tally.count_move(pending);
                }
            }
        }
    }
    Ok(tally.into_census())
}

/// Folds every pending change into the tallies, a batch per transaction
/// ([`storage::pending`]); returns how many pending rows were folded.
pub async fn fold_tallies(db: &storage::Db) -> Result<u64, sqlx::Error> {
    let columns = "saga, minute, from_state, event, to_state, n";
    storage::pending::fold_pending(db, "saga_moves_pending", columns, FOLD_BATCH, |tx, rows| {
        Box::pin(async move {
            let mut tally = Tally::default();
            for row in &rows {
                tally.add(Pending::from_row(row)?);
            }
            write_tally(tx, &tally).await
        })
    })
    .await
}

/// Adds `tally` to the stored tallies, one statement per table. Keys go in sorted order, so
/// two instances folding at once wait for each other instead of deadlocking.
async fn write_tally(tx: &mut storage::Transaction<'_>, tally: &Tally) -> Result<(), sqlx::Error> {
    let backend = tx.backend();
    if !tally.states.is_empty() {
        let rows: Vec<_> = tally
            .states
            .iter()
            .map(|((saga, state), n)| (saga, state, n))
            .collect();
        let sql = format!(
            "INSERT INTO saga_state_tally (saga, state, instances) SELECT j.value ->> 0, \
             j.value ->> 1, CAST(j.value ->> 2 AS BIGINT) FROM {} WHERE true \
             ON CONFLICT (saga, state) DO UPDATE \
             SET instances = saga_state_tally.instances + excluded.instances",
            storage::json_rows(backend, 1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(storage::json_param(&rows)?)
            .execute(&mut **tx)
            .await?;
    }
    if !tally.moves.is_empty() {
        let rows: Vec<_> = tally
            .moves
            .iter()
            .map(|((saga, minute, from, event, to), n)| (saga, minute, from, event, to, n))
            .collect();
        let sql = format!(
            "INSERT INTO saga_move_tally (saga, minute, from_state, event, to_state, moves) \
             SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, j.value ->> 3, \
             j.value ->> 4, CAST(j.value ->> 5 AS BIGINT) FROM {} \
             WHERE true ON CONFLICT (saga, minute, from_state, event, to_state) DO UPDATE \
             SET moves = saga_move_tally.moves + excluded.moves",
            storage::json_rows(backend, 1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(storage::json_param(&rows)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
