//! The JSON tables for looking rows up ([`storage::json_rows_to_look_up`],
//! [`storage::json_values_to_look_up`]) on PostgreSQL: they give back what was bound, and a
//! statement driven by a few of their rows looks each one up by its index even in a table full
//! of deleted rows, as the bus's queue is between vacuums; the plain JSON tables would read it
//! whole. Without
//! PostgreSQL a local run prints SKIPPED; CI (`CI` set) fails instead.

use storage::{Backend, Db, DbOptions};
use testkit::postgres;

/// A database whose table `queue` has the statistics of 3,000 rows and the pages of them, of
/// which 60 are left: what the planner sees of a busy queue that has not been vacuumed.
async fn table_of_deleted_rows() -> Option<Db> {
    let server = testkit::required("PostgreSQL (initdb, postgres)", postgres::shared())?;
    let db = Db::connect(&DbOptions::new(server.fresh_database().await))
        .await
        .expect("connects");
    for statement in [
        "CREATE TABLE queue (id BIGINT PRIMARY KEY, consumer TEXT NOT NULL, \
         correlation_id TEXT NOT NULL, payload TEXT NOT NULL) WITH (autovacuum_enabled = false)",
        "CREATE INDEX queue_correlation ON queue (consumer, correlation_id, id)",
        "INSERT INTO queue SELECT g, 'c' || (g % 5), 'k' || g, repeat('x', 200) \
         FROM generate_series(1, 3000) AS g",
        "ANALYZE queue",
        "DELETE FROM queue WHERE id % 50 <> 0",
    ] {
        db.execute(sqlx::query(statement)).await.expect(statement);
    }
    Some(db)
}

/// The plan PostgreSQL makes for `statement` with `json` bound as its `$1`, as text.
async fn plan(db: &Db, statement: &str, json: &str) -> String {
    let lines: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
            .bind(json.to_owned())
            .fetch_all(db.reader())
            .await
            .expect("explains");
    lines.join("\n")
}

/// The hand-over guard's shape: a lookup per row, under an `OR` that keeps it a subquery.
fn guard() -> String {
    format!(
        "SELECT j.value ->> 0 AS consumer, j.value ->> 1 AS correlation_id FROM {} \
         WHERE EXISTS (SELECT 1 FROM queue q WHERE q.consumer = j.value ->> 0 \
         AND q.correlation_id = j.value ->> 1) OR j.key < 0 ORDER BY j.key",
        storage::json_rows_to_look_up(Backend::Postgres, 1)
    )
}

#[tokio::test]
async fn a_few_json_rows_are_looked_up_by_index_in_a_table_of_deleted_rows() {
    let Some(db) = table_of_deleted_rows().await else {
        return;
    };
    let keys = r#"[["c0","k50"],["c1","k51"],["c0","k100"],["c3","k3"]]"#;
    let guard_plan = plan(&db, &guard(), keys).await;
    assert!(guard_plan.contains("queue_correlation"), "{guard_plan}");
    assert!(!guard_plan.contains("Seq Scan on queue"), "{guard_plan}");

    let delete = format!(
        "DELETE FROM queue WHERE id IN (SELECT CAST(j.value AS BIGINT) FROM {})",
        storage::json_values_to_look_up(Backend::Postgres, 1)
    );
    let delete_plan = plan(&db, &delete, "[50, 100, 7]").await;
    assert!(delete_plan.contains("queue_pkey"), "{delete_plan}");
    assert!(!delete_plan.contains("Seq Scan on queue"), "{delete_plan}");
}

#[tokio::test]
async fn json_tables_give_back_the_bound_rows_in_order() {
    let Some(db) = table_of_deleted_rows().await else {
        return;
    };
    let found: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(guard()))
        .bind(r#"[["c0","k100"],["c1","k51"],["c3","k3"],["c0","k50"]]"#)
        .fetch_all(db.reader())
        .await
        .expect("runs");
    let expected = [("c0", "k100"), ("c0", "k50")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(found, expected);

    let delete = format!(
        "DELETE FROM queue WHERE id IN (SELECT CAST(j.value AS BIGINT) FROM {})",
        storage::json_values_to_look_up(Backend::Postgres, 1)
    );
    let deleted = db
        .execute(sqlx::query(sqlx::AssertSqlSafe(delete)).bind("[50, 100, 7]"))
        .await
        .expect("deletes");
    assert_eq!(deleted.rows_affected(), 2);
}
