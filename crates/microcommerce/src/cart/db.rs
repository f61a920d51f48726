//! Cart queries shared with other modules.

use sqlx::Row;

use crate::ids::{BuyerId, ProductId};

/// The product and quantity of every line of `buyer`'s cart, oldest line first; empty if the
/// buyer has no cart.
pub async fn cart_lines(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
) -> Result<Vec<(ProductId, u32)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.product_id, i.quantity FROM cart_items i JOIN carts c ON c.id = i.cart_id \
         WHERE c.buyer_id = $1 ORDER BY i.added_at, i.id",
    )
    .bind(buyer.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let product: String = row.try_get("product_id")?;
            let quantity: i64 = row.try_get("quantity")?;
            Ok((
                product
                    .parse()
                    .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))?,
                u32::try_from(quantity).unwrap_or_default(),
            ))
        })
        .collect()
}
