//! Clears what a confirmed checkout bought from the buyer's cart.

use bus::{ConsumeError, Consumer, Envelope, Message, Tx};

use crate::contracts::ClearCart;

/// Removes exactly the checked-out quantities: a line added (or topped up) after the checkout
/// keeps what was added. Applied once per message: the bus inbox drops a redelivered message id,
/// and the checkout saga sends one ClearCart per order.
pub struct ClearCheckedOut;

#[bus::async_trait]
impl Consumer for ClearCheckedOut {
    fn name(&self) -> &str {
        "cart.clear-cart"
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        vec![ClearCart::TYPE]
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let command: ClearCart = message.decode()?;
        let buyer = command.buyer_id.to_string();
        for line in &command.items {
            let product = line.product_id.to_string();
            let quantity = i64::from(line.quantity);
            // Most carts hold exactly what was checked out: the line goes, and that is all.
            let removed = sqlx::query(
                "DELETE FROM cart_items WHERE product_id = $1 AND quantity <= $2 \
                 AND cart_id IN (SELECT id FROM carts WHERE buyer_id = $3)",
            )
            .bind(&product)
            .bind(quantity)
            .bind(&buyer)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if removed > 0 {
                continue;
            }
            sqlx::query(
                "UPDATE cart_items SET quantity = quantity - $2 WHERE product_id = $1 \
                 AND quantity > $2 AND cart_id IN (SELECT id FROM carts WHERE buyer_id = $3)",
            )
            .bind(&product)
            .bind(quantity)
            .bind(&buyer)
            .execute(&mut **tx)
            .await?;
        }
        tracing::info!(
            lines = command.items.len(),
            "checked-out items cleared from the cart"
        );
        Ok(())
    }
}
