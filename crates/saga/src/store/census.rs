//! A saga's instances counted: how many stand in each state now, and which moves they made in
//! a recent window. What an operator's picture of the saga is drawn with.

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

/// Instances of `saga` in each state now (finished ones until they are pruned), by state name.
pub async fn count_by_state(
    conn: &mut storage::Conn<'_>,
    saga: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT state, COUNT(*) FROM saga_instances WHERE saga = $1 GROUP BY state")
        .bind(saga)
        .fetch_all(conn)
        .await
}

/// The moves instances of `saga` made since `since`, counted. An instance that moved since then
/// was updated since then, so the instances are found through their (saga, state, updated_at)
/// index, state by state (`states`: every state of the saga), and their timelines by key: the
/// work grows with the window's traffic, not with the instances kept.
pub async fn moves_since(
    conn: &mut storage::Conn<'_>,
    saga: &str,
    states: &[&str],
    since: Timestamp,
) -> Result<Vec<Taken>, sqlx::Error> {
    let mut taken = Vec::new();
    for state in states {
        let rows: Vec<(Option<String>, String, String, i64)> = sqlx::query_as(
            "SELECT t.from_state, t.event, t.to_state, COUNT(*) FROM saga_instances i \
             JOIN saga_timeline t ON t.saga = i.saga AND t.correlation_id = i.correlation_id \
             WHERE i.saga = $1 AND i.state = $2 AND i.updated_at >= $3 AND t.at >= $3 \
             GROUP BY t.from_state, t.event, t.to_state",
        )
        .bind(saga)
        .bind(*state)
        .bind(since.0)
        .fetch_all(&mut *conn)
        .await?;
        for (from, event, to, count) in rows {
            add(
                &mut taken,
                Taken {
                    from,
                    event,
                    to,
                    count,
                },
            );
        }
    }
    Ok(taken)
}

/// Adds `more` to the count of its move, or lists it.
fn add(taken: &mut Vec<Taken>, more: Taken) {
    let same = |t: &&mut Taken| t.from == more.from && t.event == more.event && t.to == more.to;
    match taken.iter_mut().find(same) {
        Some(known) => known.count += more.count,
        None => taken.push(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(from: &str, count: i64) -> Taken {
        Taken {
            from: Some(from.into()),
            event: "E".into(),
            to: "B".into(),
            count,
        }
    }

    #[test]
    fn the_same_move_found_under_two_states_is_counted_once() {
        let mut all = Vec::new();
        add(&mut all, taken("A", 2));
        add(&mut all, taken("A", 3));
        add(&mut all, taken("C", 1));
        assert_eq!(all, [taken("A", 5), taken("C", 1)]);
    }
}
