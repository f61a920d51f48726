//! Pending rows: changes that many transactions append to a table of their own, for one folder
//! at a time to take and fold elsewhere (the counts the console reads are kept this way). A
//! batch is deleted by the transaction that folds it, so several folders may run at once and
//! each row is folded exactly once.

use std::future::Future;
use std::pin::Pin;

use sqlx::any::AnyRow;

use crate::{Db, Transaction};

/// What folds one batch of taken rows, inside the transaction that took them.
pub type Fold<'t> = Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 't>>;

/// Takes the rows of `table` (whose key is `id`), `batch` at a time oldest first, each batch
/// deleted and handed to `fold` in one transaction; returns how many rows were folded. A
/// reader is asked first, so that with nothing pending no write lock is taken at all.
/// `table` and `columns` are the caller's fixed names, never input.
pub async fn fold_pending<F>(
    db: &Db,
    table: &str,
    columns: &str,
    batch: i64,
    mut fold: F,
) -> Result<u64, sqlx::Error>
where
    F: for<'t> FnMut(&'t mut Transaction<'static>, Vec<AnyRow>) -> Fold<'t>,
{
    let any: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 1) AS any_pending"
    )))
    .fetch_one(db.reader())
    .await?;
    if any == 0 {
        return Ok(0);
    }
    let take = format!(
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT $1) \
         RETURNING {columns}"
    );
    let mut folded = 0;
    loop {
        let mut tx = db.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(take.clone()))
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        let taken = rows.len();
        fold(&mut tx, rows).await?;
        tx.commit().await?;
        folded += taken as u64;
        if (taken as i64) < batch {
            return Ok(folded);
        }
    }
}
