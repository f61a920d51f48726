//! The cart page and its forms: add, change a quantity, remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Chrome, picture, price};
use super::{Form, PageResult, parse_id, see_other};
use crate::cart::{CartItemView, CartView, cart_of};
use crate::http::Caller;
use crate::ids::{CartItemId, ProductId};
use crate::state::AppState;

/// `GET /cart`: the lines with their forms, the totals and the way to checkout.
pub(super) async fn page(State(state): State<AppState>, caller: Caller) -> PageResult {
    let cart = cart_of(&state, caller.buyer).await?;
    let categories = match &cart {
        Some(cart) => categories_of(&state, &cart.items).await?,
        None => Vec::new(),
    };
    let chrome = Chrome::of(&state, &caller).await;
    let main = html! {
        h1 { "Your cart" }
        @match &cart {
            None => section.panel {
                p { "Your cart is empty." }
                p { a.button href="/" { "Start shopping" } }
            },
            Some(cart) => (cart_table(cart, &categories)),
        }
    };
    Ok(super::page(
        StatusCode::OK,
        layout::page("Your cart", &chrome, main),
    ))
}

/// The category name of each line's product, for its picture (line order).
async fn categories_of(state: &AppState, items: &[CartItemView]) -> crate::Result<Vec<String>> {
    let ids: Vec<ProductId> = items.iter().map(|item| item.product_id).collect();
    let products = crate::catalog::product_snapshots(&mut state.read().await?, &ids).await?;
    let categories = crate::catalog::list_categories(state).await?;
    let name_of = |id: ProductId| {
        let product = products.iter().find(|p| p.id == id)?;
        let category = categories.iter().find(|c| c.id == product.category_id)?;
        Some(category.name.clone())
    };
    Ok(ids
        .into_iter()
        .map(|id| name_of(id).unwrap_or_default())
        .collect())
}

fn cart_table(cart: &CartView, categories: &[String]) -> Markup {
    html! {
        ul.lines {
            @for (item, category) in cart.items.iter().zip(categories) {
                (cart_line(item, category))
            }
        }
        section.summary aria-label="Totals" {
            (layout::totals(&layout::cart_totals(cart)))
            p.actions {
                a href="/" { "Continue shopping" }
                a.button.primary href="/checkout" { "Checkout" }
            }
        }
    }
}

fn cart_line(item: &CartItemView, category: &str) -> Markup {
    let field = format!("qty-{}", item.id);
    html! {
        li.line {
            (picture(category, 64))
            div.what {
                a.name href=(format!("/products/{}", item.product_id)) { (item.product_name) }
                span.muted { (price(item.unit_price)) " each" }
            }
            form.qty method="post" action=(format!("/cart/items/{}", item.id)) {
                label for=(field) { "Quantity" span.visually-hidden { " of " (item.product_name) } }
                input id=(field) type="number" name="quantity" value=(item.quantity) min="1"
                    max="99" inputmode="numeric" required;
                button type="submit" { "Update" }
            }
            form.remove method="post" action=(format!("/cart/items/{}/remove", item.id)) {
                button type="submit" aria-label=(format!("Remove {}", item.product_name)) {
                    "Remove"
                }
            }
            span.line-total { (price(item.line_total)) }
        }
    }
}

/// The add-to-cart form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AddForm {
    product_id: String,
    quantity: String,
}

/// `POST /cart/items`: adds the product, then shows the cart.
pub(super) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Form(form): Form<AddForm>,
) -> PageResult {
    let product: ProductId = parse_id(&form.product_id)?;
    let units = quantity(&form.quantity);
    crate::cart::add_item(&state, caller.buyer, product, units).await?;
    Ok(see_other("/cart"))
}

/// A quantity field's number; anything else is 0, which the cart refuses with its message.
fn quantity(text: &str) -> i64 {
    text.trim().parse().unwrap_or(0)
}

/// The change-quantity form.
#[derive(Debug, Deserialize)]
pub(super) struct QuantityForm {
    quantity: String,
}

/// `POST /cart/items/{id}`: sets the line's quantity.
pub(super) async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<QuantityForm>,
) -> PageResult {
    let item: CartItemId = parse_id(&id)?;
    let units = quantity(&form.quantity);
    crate::cart::set_quantity(&state, caller.buyer, item, units).await?;
    Ok(see_other("/cart"))
}

/// `POST /cart/items/{id}/remove`: removes the line.
pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult {
    let item: CartItemId = parse_id(&id)?;
    crate::cart::remove_item(&state, caller.buyer, item).await?;
    Ok(see_other("/cart"))
}
