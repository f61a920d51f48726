//! The write connection as sqlx callers see it: on SQLite it is the bus's own, driven in place
//! (`crates/bus/src/sqlite.rs`), and must behave as sqlx's SQLite driver did; on PostgreSQL it
//! is an sqlx transaction. Binding, output, errors, scripts and transactions.

use sqlx::Row;
use sqlx::error::ErrorKind;

use crate::helpers::*;

/// Creates `t` for the tests below.
async fn create_table(t: &TestDb) {
    t.db.execute(sqlx::query(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, n BIGINT NOT NULL CHECK (n >= 0), label TEXT)",
    ))
    .await
    .unwrap();
}

/// The ids in `t`, in order.
async fn ids(t: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM t ORDER BY id")
        .fetch_all(t.db.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn values_bind_by_number_and_come_back_as_stored() {
    let t = test_db(Backend::Sqlite).await;
    t.db.execute(sqlx::query(
        "CREATE TABLE kinds (i INTEGER, r REAL, s TEXT, b BLOB, missing INTEGER, flag INTEGER)",
    ))
    .await
    .unwrap();
    let mut tx = t.db.begin().await.unwrap();
    // The numbers, not the order of appearance, pick the values.
    sqlx::query("INSERT INTO kinds VALUES ($3, $2, $1, $4, $5, $6)")
        .bind("text")
        .bind(2.5f64)
        .bind(-7i64)
        .bind(vec![0u8, 1, 255])
        .bind(None::<i64>)
        .bind(true)
        .execute(&mut *tx)
        .await
        .unwrap();
    let row = sqlx::query("SELECT i, r, s, b, missing, flag FROM kinds")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("i"), -7);
    assert_eq!(row.get::<f64, _>("r"), 2.5);
    assert_eq!(row.get::<String, _>("s"), "text");
    assert_eq!(row.get::<Vec<u8>, _>("b"), [0, 1, 255]);
    assert_eq!(row.get::<Option<i64>, _>("missing"), None);
    assert_eq!(
        row.get::<i64, _>("flag"),
        1,
        "a bool is stored as SQLite stores it"
    );
    tx.commit().await.unwrap();
}

testkit::backend_tests! {
async fn writes_count_their_rows_and_a_single_row_read_takes_the_first(backend) {
    let t = test_db(backend).await;
    create_table(&t).await;
    let mut tx = t.db.begin().await.unwrap();
    for id in 1..=3i64 {
        sqlx::query("INSERT INTO t (id, n) VALUES ($1, $2)")
            .bind(id)
            .bind(id * 10)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let updated = sqlx::query("UPDATE t SET n = n + 1 WHERE id >= $1")
        .bind(2i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 2);
    let first: Option<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY id DESC")
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert_eq!(first, Some(31));
    let none: Option<i64> = sqlx::query_scalar("SELECT n FROM t WHERE id = 99")
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert_eq!(none, None);
    let missing = sqlx::query_scalar::<_, i64>("SELECT n FROM t WHERE id = 99")
        .fetch_one(&mut *tx)
        .await;
    assert!(matches!(missing, Err(sqlx::Error::RowNotFound)), "{missing:?}");
    let returned: Vec<i64> = sqlx::query_scalar("DELETE FROM t WHERE id <= $1 RETURNING id")
        .bind(2i64)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(returned.len(), 2);
    tx.commit().await.unwrap();
    assert_eq!(ids(&t).await, [3]);
}
}

testkit::backend_tests! {
async fn constraint_failures_are_database_errors_of_their_kind(backend) {
    let t = test_db(backend).await;
    create_table(&t).await;
    let mut tx = t.db.begin().await.unwrap();
    let insert = |id: i64, n: Option<i64>| {
        sqlx::query("INSERT INTO t (id, n) VALUES ($1, $2)").bind(id).bind(n)
    };
    insert(1, Some(1)).execute(&mut *tx).await.unwrap();
    let kind = |error: sqlx::Error| match &error {
        sqlx::Error::Database(database) => (database.kind(), storage::ErrorKind::of(&error)),
        other => panic!("not a database error: {other:?}"),
    };
    let mut savepoint = tx.savepoint().await.unwrap();
    let duplicate = kind(insert(1, Some(2)).execute(&mut *savepoint).await.unwrap_err());
    savepoint.rollback().await.unwrap();
    let mut savepoint = tx.savepoint().await.unwrap();
    let negative = kind(insert(2, Some(-1)).execute(&mut *savepoint).await.unwrap_err());
    savepoint.rollback().await.unwrap();
    let mut savepoint = tx.savepoint().await.unwrap();
    let null = kind(insert(3, None).execute(&mut *savepoint).await.unwrap_err());
    savepoint.rollback().await.unwrap();
    assert_eq!(duplicate.0, ErrorKind::UniqueViolation);
    assert_eq!(negative.0, ErrorKind::CheckViolation);
    assert_eq!(null.0, ErrorKind::NotNullViolation);
    assert_eq!(duplicate.1, storage::ErrorKind::UniqueViolation);
    assert_eq!(negative.1, storage::ErrorKind::Other);
    tx.commit().await.unwrap();
    assert_eq!(ids(&t).await, [1], "the transaction goes on after a failed statement");
}
}

testkit::backend_tests! {
async fn savepoints_undo_alone_and_a_dropped_transaction_undoes_everything(backend) {
    let t = test_db(backend).await;
    create_table(&t).await;
    let insert = |id: i64| sqlx::query("INSERT INTO t (id, n) VALUES ($1, 0)").bind(id);
    let mut tx = t.db.begin().await.unwrap();
    insert(1).execute(&mut *tx).await.unwrap();
    let mut undone = tx.savepoint().await.unwrap();
    insert(2).execute(&mut *undone).await.unwrap();
    let mut nested = undone.savepoint().await.unwrap();
    insert(3).execute(&mut *nested).await.unwrap();
    nested.commit().await.unwrap();
    undone.rollback().await.unwrap();
    let mut kept = tx.savepoint().await.unwrap();
    insert(4).execute(&mut *kept).await.unwrap();
    kept.commit().await.unwrap();
    {
        let mut dropped = tx.savepoint().await.unwrap();
        insert(5).execute(&mut *dropped).await.unwrap();
    }
    insert(6).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&t).await, [1, 4, 6]);

    {
        let mut abandoned = t.db.begin().await.unwrap();
        insert(7).execute(&mut *abandoned).await.unwrap();
    }
    let mut next = t.db.begin().await.unwrap();
    insert(8).execute(&mut *next).await.unwrap();
    next.commit().await.unwrap();
    assert_eq!(ids(&t).await, [1, 4, 6, 8], "the dropped transaction left nothing");
}
}

#[tokio::test]
async fn several_statements_in_one_query_share_its_values_and_run_in_order() {
    let t = test_db(Backend::Sqlite).await;
    create_table(&t).await;
    let mut tx = t.db.begin().await.unwrap();
    let done = sqlx::query(
        "INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING; \
         UPDATE t SET label = $3 WHERE id = $1 AND changes() = 1;",
    )
    .bind(1i64)
    .bind(5i64)
    .bind("first; not a separator")
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 2, "one row inserted, then labelled");
    tx.commit().await.unwrap();
    let label: String = sqlx::query_scalar("SELECT label FROM t WHERE id = 1")
        .fetch_one(t.db.reader())
        .await
        .unwrap();
    assert_eq!(label, "first; not a separator");
}

#[tokio::test]
async fn a_script_without_values_runs_whole_even_with_semicolons_inside_statements() {
    let t = test_db(Backend::Sqlite).await;
    create_table(&t).await;
    t.db.execute(sqlx::query(
        "CREATE TABLE audit (id BIGINT); \
         CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN \
           INSERT INTO audit (id) VALUES (new.id); \
           INSERT INTO audit (id) VALUES (-new.id); \
         END;",
    ))
    .await
    .unwrap();
    t.db.execute(sqlx::query("INSERT INTO t (id, n) VALUES (4, 0)"))
        .await
        .unwrap();
    let audit: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit ORDER BY id")
        .fetch_all(t.db.reader())
        .await
        .unwrap();
    assert_eq!(audit, [-4, 4]);
}

testkit::backend_tests! {
async fn a_closed_database_refuses_new_write_transactions(backend) {
    let t = test_db(backend).await;
    t.db.close().await;
    let refused = t.db.begin().await.unwrap_err();
    assert!(matches!(refused, sqlx::Error::PoolClosed), "{refused:?}");
}
}

#[tokio::test]
async fn waiting_for_the_write_connection_ends_at_the_acquire_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options =
        storage::DbOptions::new(format!("sqlite://{}", dir.path().join("busy.db").display()));
    options.acquire_timeout = std::time::Duration::from_millis(50);
    let db = storage::Db::connect(&options).await.unwrap();
    let holder = db.begin().await.unwrap();
    let waited = db.begin().await.unwrap_err();
    assert!(matches!(waited, sqlx::Error::PoolTimedOut), "{waited:?}");
    holder.commit().await.unwrap();
    db.begin().await.unwrap().commit().await.unwrap();
}
