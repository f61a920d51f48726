//! Cart routes; every one acts on the calling buyer's own cart only. Each handler turns the
//! request into a call to the cart's service and its answer into JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::service::{self, CartView};
use crate::Result;
use crate::http::{Caller, Json, Path};
use crate::ids::{CartItemId, ProductId};
use crate::state::AppState;

/// The caller's cart; 204 when there is none or it is empty. Names, prices and pictures are the
/// catalog's as of now. Unpaged: a cart holds at most 50 products.
#[utoipa::path(get, path = "/", tag = "cart",
    responses((status = 200, body = CartView), (status = 204)))]
pub async fn get_cart(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    Ok(match service::cart_of(&state, caller.buyer).await? {
        Some(cart) => Json(cart).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
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
    let item_id = service::add_item(&state, caller.buyer, body.product_id, body.quantity).await?;
    Ok(Json(ItemAdded { item_id }))
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
    service::set_quantity(&state, caller.buyer, item, body.quantity).await?;
    Ok(StatusCode::NO_CONTENT)
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
    service::remove_item(&state, caller.buyer, item).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Units in the caller's cart (0 without one).
#[utoipa::path(get, path = "/count", tag = "cart",
    responses((status = 200, body = i64, content_type = "application/json")))]
pub async fn count(State(state): State<AppState>, caller: Caller) -> Result<Json<i64>> {
    service::units(&state, caller.buyer).await.map(Json)
}
