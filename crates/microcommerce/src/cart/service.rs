//! The cart's service: what the JSON handlers, the storefront and the checkout ask of a
//! buyer's cart. Reading it priced from the catalog, adding, changing and removing lines, and
//! counting units. Every function acts on the given buyer's own cart only.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::db;
use crate::catalog::{ProductSnapshot, ProductStatus};
use crate::domain::Quantity;
use crate::ids::{BuyerId, CartItemId, ProductId};
use crate::money::Money;
use crate::state::AppState;
use crate::{Error, Result};

/// Most products one cart holds: as many lines as one checkout takes, which also bounds the
/// cart's listing.
const MAX_LINES: i64 = 50;

/// The buyer's cart, priced from the catalog now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartView {
    pub(crate) id: String,
    pub(crate) items: Vec<CartItemView>,
    pub(crate) subtotal: Money,
    pub(crate) total_items: i64,
}

/// One line of the cart.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartItemView {
    pub(crate) id: CartItemId,
    pub(crate) product_id: ProductId,
    pub(crate) product_name: String,
    pub(crate) unit_price: Money,
    pub(crate) image_url: Option<String>,
    pub(crate) quantity: i64,
    pub(crate) line_total: Money,
}

/// A stored line before pricing: its id, product and units.
type StoredLine = (CartItemId, ProductId, u32);

/// `buyer`'s cart priced from the catalog now; `None` when there is none or it is empty.
pub async fn cart_of(state: &AppState, buyer: BuyerId) -> Result<Option<CartView>> {
    let mut conn = state.read().await?;
    let rows = sqlx::query(
        "SELECT c.id AS cart_id, i.id, i.product_id, i.quantity \
         FROM carts c JOIN cart_items i ON i.cart_id = c.id \
         WHERE c.buyer_id = $1 ORDER BY i.added_at, i.id",
    )
    .bind(buyer.to_string())
    .fetch_all(&mut conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let cart_id: String = first.try_get("cart_id")?;
    let lines = rows
        .iter()
        .map(|row| {
            let quantity: i64 = row.try_get("quantity")?;
            Ok((
                parse_id::<CartItemId>(row.try_get("id")?)?,
                parse_id::<ProductId>(row.try_get("product_id")?)?,
                u32::try_from(quantity).unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<StoredLine>, sqlx::Error>>()?;
    let items = priced(&mut conn, lines).await?;
    Ok(Some(CartView {
        id: cart_id,
        subtotal: items.iter().map(|item| item.line_total).sum(),
        total_items: items.iter().map(|item| item.quantity).sum(),
        items,
    }))
}

/// `lines` with the catalog's current names, prices and pictures, in the same order.
async fn priced(conn: &mut storage::Conn<'_>, lines: Vec<StoredLine>) -> Result<Vec<CartItemView>> {
    let ids: Vec<ProductId> = lines.iter().map(|(_, product, _)| *product).collect();
    let products: HashMap<ProductId, ProductSnapshot> =
        crate::catalog::product_snapshots(conn, &ids)
            .await?
            .into_iter()
            .map(|product| (product.id, product))
            .collect();
    // A cart line always names a product (a foreign key), so none is left out in practice.
    let items = lines
        .into_iter()
        .filter_map(|(id, product_id, quantity)| {
            let product = products.get(&product_id)?;
            Some(CartItemView {
                id,
                product_id,
                product_name: product.name.clone(),
                unit_price: product.price,
                image_url: product.image_url.clone(),
                quantity: i64::from(quantity),
                line_total: product.price * quantity,
            })
        })
        .collect();
    Ok(items)
}

fn parse_id<T: std::str::FromStr<Err = uuid::Error>>(text: String) -> Result<T, sqlx::Error> {
    text.parse()
        .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))
}

/// The product and units of every line of `buyer`'s cart, oldest line first; empty if the
/// buyer has no cart. What a checkout of the cart orders, read through the caller's
/// connection so that it belongs to the checkout's transaction.
pub async fn lines_of(
    conn: &mut storage::Conn<'_>,
    buyer: BuyerId,
) -> Result<Vec<(ProductId, u32)>, sqlx::Error> {
    db::cart_lines(conn, buyer).await
}

/// Adds `units` of `product` to `buyer`'s cart (merged, at most 99); the line it ended up on.
/// Refused unless the product is for sale, and when the cart holds 50 other products already.
pub async fn add_item(
    state: &AppState,
    buyer: BuyerId,
    product: ProductId,
    units: i64,
) -> Result<CartItemId> {
    let line = (product, parse_quantity(units)?);
    state
        .write(line, move |tx, &(product, quantity)| {
            Box::pin(add_to_cart(tx, buyer, product, quantity))
        })
        .await
}

/// Merges `quantity` of `product` into the buyer's cart (created on first use) in the
/// caller's transaction. The cart is created or touched only if the product is for sale, in
/// the same statement, so that a 404 writes nothing.
async fn add_to_cart(
    tx: &mut bus::Tx<'_>,
    buyer: BuyerId,
    product: ProductId,
    quantity: Quantity,
) -> Result<CartItemId> {
    let now = tx.now().await?;
    let cart_id = uuid::Uuid::now_v7().to_string();
    let touched = sqlx::query(
        "INSERT INTO carts (id, buyer_id, created_at, updated_at) SELECT $1, $2, $3, $3 \
         WHERE EXISTS (SELECT 1 FROM products WHERE id = $4 AND status = $5) \
         ON CONFLICT (buyer_id) DO UPDATE SET updated_at = excluded.updated_at",
    )
    .bind(&cart_id)
    .bind(buyer.to_string())
    .bind(now.0)
    .bind(product.to_string())
    .bind(ProductStatus::Published.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if touched == 0 {
        return Err(Error::NotFound("product"));
    }
    ensure_room(tx, buyer, product).await?;
    let item_id: String = sqlx::query_scalar(
        "INSERT INTO cart_items (id, cart_id, product_id, quantity, added_at) \
         SELECT $1, c.id, $2, $3, $4 FROM carts c WHERE c.buyer_id = $5 \
         ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = CASE \
           WHEN cart_items.quantity + excluded.quantity > $6 THEN $6 \
           ELSE cart_items.quantity + excluded.quantity END \
         RETURNING id",
    )
    .bind(CartItemId::new().to_string())
    .bind(product.to_string())
    .bind(i64::from(quantity))
    .bind(now.0)
    .bind(buyer.to_string())
    .bind(i64::from(Quantity::MAX))
    .fetch_one(&mut **tx)
    .await?;
    Ok(parse_id(item_id)?)
}

/// Refuses a product that would be the buyer's 51st.
async fn ensure_room(tx: &mut bus::Tx<'_>, buyer: BuyerId, product: ProductId) -> Result<()> {
    let other_lines: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cart_items i JOIN carts c ON c.id = i.cart_id \
         WHERE c.buyer_id = $1 AND i.product_id <> $2",
    )
    .bind(buyer.to_string())
    .bind(product.to_string())
    .fetch_one(&mut **tx)
    .await?;
    if other_lines >= MAX_LINES {
        return Err(Error::refused(
            "productId",
            format!("a cart holds at most {MAX_LINES} products"),
        ));
    }
    Ok(())
}

/// `units` as a [`Quantity`], or the validation problem about it.
fn parse_quantity(units: i64) -> Result<Quantity> {
    Quantity::new(units).map_err(|error| Error::invalid("quantity", error.to_string()))
}

/// Sets line `item` of `buyer`'s cart to `units`; not found unless the line is theirs.
pub async fn set_quantity(
    state: &AppState,
    buyer: BuyerId,
    item: CartItemId,
    units: i64,
) -> Result<()> {
    let quantity = i64::from(parse_quantity(units)?);
    change_own_line(state, move || {
        sqlx::query(
            "UPDATE cart_items SET quantity = $1 WHERE id = $2 \
             AND cart_id IN (SELECT id FROM carts WHERE buyer_id = $3)",
        )
        .bind(quantity)
        .bind(item.to_string())
        .bind(buyer.to_string())
    })
    .await
}

/// Removes line `item` from `buyer`'s cart; not found unless the line is theirs.
pub async fn remove_item(state: &AppState, buyer: BuyerId, item: CartItemId) -> Result<()> {
    change_own_line(state, move || {
        sqlx::query(
            "DELETE FROM cart_items WHERE id = $1 \
             AND cart_id IN (SELECT id FROM carts WHERE buyer_id = $2)",
        )
        .bind(item.to_string())
        .bind(buyer.to_string())
    })
    .await
}

/// Runs a statement that changes one line of the caller's cart (it must name the buyer in its
/// condition): not found if the line is not theirs, in which case nothing was written.
/// `statement` builds it afresh for each run of the grouped transaction.
async fn change_own_line(
    state: &AppState,
    statement: impl Fn() -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>
    + Send
    + Sync
    + 'static,
) -> Result<()> {
    let rows = state
        .write(statement, |tx, statement| {
            let statement = statement();
            Box::pin(async move { Ok(statement.execute(&mut **tx).await?.rows_affected()) })
        })
        .await?;
    if rows == 0 {
        return Err(Error::NotFound("cart item"));
    }
    Ok(())
}

/// Units in `buyer`'s cart (0 without one).
pub async fn units(state: &AppState, buyer: BuyerId) -> Result<i64> {
    let units: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM cart_items i JOIN carts c ON c.id = i.cart_id \
         WHERE c.buyer_id = $1",
    )
    .bind(buyer.to_string())
    .fetch_one(&mut state.read().await?)
    .await?;
    Ok(units)
}
