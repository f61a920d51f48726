//! Inventory statements shared with other modules.

use crate::ids::ProductId;

/// The statement behind [`super::service::create_stock_item`].
pub async fn create_stock_item(
    conn: &mut storage::Conn<'_>,
    product_id: ProductId,
    on_hand: i64,
    now: storage::Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stock_items (product_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, $3)",
    )
    .bind(product_id.to_string())
    .bind(on_hand)
    .bind(now.0)
    .execute(conn)
    .await?;
    Ok(())
}
