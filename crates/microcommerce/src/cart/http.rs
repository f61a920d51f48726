//! Cart routes; every one acts on the calling buyer's own cart only.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::catalog::db::{ProductSnapshot, ProductStatus, find_products};
use crate::domain::Quantity;
use crate::http::{Caller, Json, Path};
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

/// The caller's cart; 204 when there is none or it is empty. Names, prices and pictures are the
/// catalog's as of now. Unpaged: a cart holds at most 50 products.
#[utoipa::path(get, path = "/", tag = "cart",
    responses((status = 200, body = CartView), (status = 204)))]
pub async fn get_cart(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    Ok(match cart_of(&state, caller.buyer).await? {
        Some(cart) => Json(cart).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `buyer`'s cart priced from the catalog now; `None` when there is none or it is empty.
pub(crate) async fn cart_of(state: &AppState, buyer: BuyerId) -> Result<Option<CartView>> {
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
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let ids: Vec<ProductId> = lines.iter().map(|(_, product, _)| *product).collect();
    let products: HashMap<ProductId, ProductSnapshot> = find_products(&mut conn, &ids)
        .await?
        .into_iter()
        .map(|product| (product.id, product))
        .collect();
    // A cart line always names a product (a foreign key), so none is left out in practice.
    let items: Vec<CartItemView> = lines
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
    Ok(Some(CartView {
        id: cart_id,
        subtotal: items.iter().map(|item| item.line_total).sum(),
        total_items: items.iter().map(|item| item.quantity).sum(),
        items,
    }))
}

fn parse_id<T: std::str::FromStr<Err = uuid::Error>>(text: String) -> Result<T, sqlx::Error> {
    text.parse()
        .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))
}

/// What to add.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddItem {
    /// A published product.
    product_id: ProductId,
    /// 1..=99; merged with what the cart holds, capped at 99.
    #[schema(minimum = 1, maximum = 99)]
    #[serde(deserialize_with = "crate::http::integer")]
    quantity: i64,
}

/// The line the product ended up on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemAdded {
    item_id: CartItemId,
}

/// Adds a product; a product already in the cart is merged into its line (at most 99).
/// Any name or price in the body is ignored: the catalog decides. A cart holds at most 50
/// products (422 for one more).
#[utoipa::path(post, path = "/items", tag = "cart", request_body = AddItem,
    responses((status = 200, body = ItemAdded),
        (status = 404, description = "No such product for sale", body = crate::error::Problem),
        (status = 422, description = "The cart holds 50 other products already",
            body = crate::error::Problem)))]
pub async fn add_item(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AddItem>,
) -> Result<Json<ItemAdded>> {
    let item_id = add(&state, caller.buyer, body.product_id, body.quantity).await?;
    Ok(Json(ItemAdded { item_id }))
}

/// Adds `units` of `product` to `buyer`'s cart (merged, at most 99); the line it ended up on.
pub(crate) async fn add(
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

/// The body's `quantity` as a [`Quantity`], or the validation problem about it.
fn parse_quantity(units: i64) -> Result<Quantity> {
    Quantity::new(units).map_err(|error| Error::invalid("quantity", error.to_string()))
}

/// A new quantity for a line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeQuantity {
    /// 1..=99.
    #[schema(minimum = 1, maximum = 99)]
    #[serde(deserialize_with = "crate::http::integer")]
    quantity: i64,
}

/// Sets a line's quantity; 404 unless the line is in the caller's cart.
#[utoipa::path(put, path = "/items/{itemId}", tag = "cart",
    params(("itemId" = CartItemId, Path, description = "Cart line id")), request_body = ChangeQuantity,
    responses((status = 204), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn change_quantity(
    State(state): State<AppState>,
    caller: Caller,
    Path(item): Path<CartItemId>,
    Json(body): Json<ChangeQuantity>,
) -> Result<StatusCode> {
    set_quantity(&state, caller.buyer, item, body.quantity).await
}

/// Sets line `item` of `buyer`'s cart to `units`; not found unless the line is theirs.
pub(crate) async fn set_quantity(
    state: &AppState,
    buyer: BuyerId,
    item: CartItemId,
    units: i64,
) -> Result<StatusCode> {
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

/// Removes a line; 404 unless it is in the caller's cart.
#[utoipa::path(delete, path = "/items/{itemId}", tag = "cart",
    params(("itemId" = CartItemId, Path, description = "Cart line id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn remove_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(item): Path<CartItemId>,
) -> Result<StatusCode> {
    remove(&state, caller.buyer, item).await
}

/// Removes line `item` from `buyer`'s cart; not found unless the line is theirs.
pub(crate) async fn remove(
    state: &AppState,
    buyer: BuyerId,
    item: CartItemId,
) -> Result<StatusCode> {
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
/// condition): 204 if it did, 404 if the line is not theirs, in which case nothing was written.
/// `statement` builds it afresh for each run of the grouped transaction.
async fn change_own_line(
    state: &AppState,
    statement: impl Fn() -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>
    + Send
    + Sync
    + 'static,
) -> Result<StatusCode> {
    let rows = state
        .write(statement, |tx, statement| {
            let statement = statement();
            Box::pin(async move { Ok(statement.execute(&mut **tx).await?.rows_affected()) })
        })
        .await?;
    if rows == 0 {
        return Err(Error::NotFound("cart item"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Units in the caller's cart (0 without one).
#[utoipa::path(get, path = "/count", tag = "cart",
    responses((status = 200, body = i64, content_type = "application/json")))]
pub async fn count(State(state): State<AppState>, caller: Caller) -> Result<Json<i64>> {
    units(&state, caller.buyer).await.map(Json)
}

/// Units in `buyer`'s cart (0 without one).
pub(crate) async fn units(state: &AppState, buyer: BuyerId) -> Result<i64> {
    let units: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM cart_items i JOIN carts c ON c.id = i.cart_id \
         WHERE c.buyer_id = $1",
    )
    .bind(buyer.to_string())
    .fetch_one(&mut state.read().await?)
    .await?;
    Ok(units)
}
