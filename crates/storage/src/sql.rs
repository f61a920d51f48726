//! Small SQL helpers for the few places where statement text depends on the backend or on the
//! number of rows: the only place besides [`crate::Db`] and the bus's queue that names a
//! [`Backend`].

use crate::Backend;

/// The database clock in microseconds since the epoch, on PostgreSQL: every instance judges
/// deadlines by the same clock.
pub const POSTGRES_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)";

/// The elements of the JSON array bound as `$param`, as a table `j`: an element in `j.value`
/// (its fields `j.value ->> 0` …, text on PostgreSQL, so `CAST` numbers), its position in
/// `j.key`. One statement text for any number of rows, binding one parameter, where a list of
/// placeholders makes a new statement per length and binds hundreds.
pub fn json_rows(backend: Backend, param: usize) -> String {
    json_table(backend, param, "json_array_elements")
}

/// Like [`json_rows`] for an array of plain values (ids, numbers): `j.value` is the value
/// itself (as text on PostgreSQL).
pub fn json_values(backend: Backend, param: usize) -> String {
    json_table(backend, param, "json_array_elements_text")
}

/// Like [`json_rows`], for a statement that looks each row up in a table that may hold many
/// deleted rows, as the bus's queue does between vacuums.
///
/// PostgreSQL's planner takes a JSON function for a hundred rows, and for a hundred lookups it
/// prefers reading the whole of a small table, deleted rows and all; here the elements pass
/// through an array, which it takes for ten, so it looks each one up by its index. The detour
/// costs a little in every statement, so the others keep [`json_rows`].
pub fn json_rows_to_look_up(backend: Backend, param: usize) -> String {
    json_table_to_look_up(backend, param, "json_array_elements")
}

/// [`json_rows_to_look_up`] for an array of plain values, as [`json_values`].
pub fn json_values_to_look_up(backend: Backend, param: usize) -> String {
    json_table_to_look_up(backend, param, "json_array_elements_text")
}

/// SQLite's `json_each` serves both shapes; PostgreSQL names a function for each.
fn json_table(backend: Backend, param: usize, postgres_function: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_each(${param}) AS j"),
        Backend::Postgres => {
            format!("{postgres_function}(CAST(${param} AS json)) WITH ORDINALITY AS j(value, key)")
        }
    }
}

/// The JSON table of [`json_rows_to_look_up`]: on PostgreSQL, through an array.
fn json_table_to_look_up(backend: Backend, param: usize, postgres_function: &str) -> String {
    match backend {
        Backend::Sqlite => json_table(backend, param, postgres_function),
        Backend::Postgres => format!(
            "unnest(ARRAY(SELECT {postgres_function}(CAST(${param} AS json)))) \
             WITH ORDINALITY AS j(value, key)"
        ),
    }
}

/// The JSON text to bind for a [`json_rows`] or [`json_values`] table.
pub fn json_param(rows: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Numbered placeholders `$first, $first+1, …` (`count` of them), for an `IN (…)` list whose
/// values are bound: only these numbers are spliced into the SQL, never the values.
pub fn placeholders(first: usize, count: usize) -> String {
    let numbers: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    numbers.join(", ")
}

/// `rows` parenthesised groups of `columns` numbered placeholders from `$first`, for a
/// multi-row `VALUES` list.
///
/// ```
/// assert_eq!(storage::placeholder_rows(2, 2, 2), "($2, $3), ($4, $5)");
/// assert_eq!(storage::placeholders(1, 3), "$1, $2, $3");
/// ```
pub fn placeholder_rows(first: usize, rows: usize, columns: usize) -> String {
    let groups: Vec<String> = (0..rows)
        .map(|row| format!("({})", placeholders(first + row * columns, columns)))
        .collect();
    groups.join(", ")
}

/// `write` followed by `insert`, an `INSERT … SELECT` without a `FROM`, run only when `write`
/// changed a row; the statement's rows affected are `insert`'s. Saves a round trip where a
/// record must follow a conditional write (an optimistic-concurrency update and its log row).
pub fn insert_if_written(backend: Backend, write: &str, insert: &str) -> String {
    match backend {
        Backend::Sqlite => format!("{write}; {insert} WHERE changes() = 1"),
        Backend::Postgres => format!("WITH written AS ({write} RETURNING 1) {insert} FROM written"),
    }
}

/// A `LEFT JOIN` of at most one row of `table` (alias `alias`, columns `columns`) per row on
/// the left, matched by `on`, written so that each is one index lookup. PostgreSQL is told
/// so with a lateral subquery and a limit: left to plan a join over a JSON list whose length
/// it cannot estimate, it may hash the whole table instead.
pub fn left_join_one(
    backend: Backend,
    table: &str,
    alias: &str,
    columns: &str,
    on: &str,
) -> String {
    match backend {
        Backend::Sqlite => format!("LEFT JOIN {table} {alias} ON {on}"),
        Backend::Postgres => format!(
            "LEFT JOIN LATERAL (SELECT {columns} FROM {table} WHERE {on} LIMIT 1) {alias} ON true"
        ),
    }
}
