//! Clears what a confirmed checkout bought from the buyer's cart.

use std::collections::BTreeMap;

use bus::{ConsumeError, Delivered, Envelope, Handler, Tx};

use crate::contracts::ClearCart;

/// Removes exactly the checked-out quantities: a line added (or topped up) after the checkout
/// keeps what was added. Applied once per message: the bus inbox drops a redelivered message id,
/// and the checkout saga sends one ClearCart per order.
pub struct ClearCheckedOut;

#[bus::async_trait]
impl Handler for ClearCheckedOut {
    type Messages = ClearCart;

    fn name(&self) -> &str {
        "cart.clear-cart"
    }

    async fn handle(
        &self,
        command: ClearCart,
        _: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), ConsumeError> {
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

    /// Every cart of the set with two statements. Quantities of one buyer's product are
    /// summed over the set's orders first: removing `a` then `b` units leaves what removing
    /// `a + b` does.
    async fn handle_all(
        &self,
        messages: Vec<Delivered<'_, ClearCart>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, ConsumeError> {
        let mut units: BTreeMap<(String, String), i64> = BTreeMap::new();
        for Delivered {
            message: command, ..
        } in &messages
        {
            for line in &command.items {
                let key = (command.buyer_id.to_string(), line.product_id.to_string());
                *units.entry(key).or_default() += i64::from(line.quantity);
            }
        }
        let rows: Vec<(&str, &str, i64)> = units
            .iter()
            .map(|((buyer, product), quantity)| (buyer.as_str(), product.as_str(), *quantity))
            .collect();
        clear_lines(tx, &rows).await?;
        tracing::info!(
            carts = messages.len(),
            lines = rows.len(),
            "checked-out items cleared from the carts"
        );
        Ok(Vec::new())
    }
}

/// Removes `(buyer, product, units)` from the buyers' carts: a line holding at most that many
/// goes, a larger one keeps the rest.
async fn clear_lines(tx: &mut Tx<'_>, rows: &[(&str, &str, i64)]) -> Result<(), sqlx::Error> {
    let lines = storage::json_rows(tx.backend(), 1);
    let matches = "c.id = cart_items.cart_id AND c.buyer_id = j.value ->> 0 \
                   AND cart_items.product_id = j.value ->> 1";
    let delete = format!(
        "DELETE FROM cart_items WHERE id IN (SELECT cart_items.id FROM cart_items, carts c, {lines} \
         WHERE {matches} AND cart_items.quantity <= CAST(j.value ->> 2 AS BIGINT))"
    );
    let shrink = format!(
        "UPDATE cart_items SET quantity = quantity - CAST(j.value ->> 2 AS BIGINT) \
         FROM carts c, {lines} WHERE {matches} \
         AND cart_items.quantity > CAST(j.value ->> 2 AS BIGINT)"
    );
    let json = storage::json_param(&rows)?;
    for sql in [delete, shrink] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&json)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
