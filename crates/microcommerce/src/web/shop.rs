//! Browsing: the product listing (categories, search, pages) and a product's page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Chrome, availability, picture, price};
use super::{PageResult, WebError, page, parse_id};
use crate::catalog::{CategoryView, ProductFilter, ProductView};
use crate::http::{Caller, Page, Paging};
use crate::ids::{CategoryId, ProductId};
use crate::inventory::{StockView, stock_levels};
use crate::state::AppState;

/// Products per page of the listing.
const PAGE_SIZE: u32 = 12;

/// The listing's query: all optional, and read leniently (a bad page number is page 1).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Browse {
    category: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

impl Browse {
    fn category(&self) -> Option<CategoryId> {
        self.category.as_deref().and_then(|c| c.parse().ok())
    }

    fn search(&self) -> String {
        self.q.as_deref().unwrap_or_default().trim().to_owned()
    }

    fn page(&self) -> u32 {
        let page = self.page.as_deref().and_then(|p| p.parse().ok());
        page.unwrap_or(1).clamp(1, 100_000)
    }

    /// The listing's address with this filter on page `page`.
    fn href(&self, page: u32) -> String {
        let mut query = vec![format!("page={page}")];
        if let Some(category) = self.category() {
            query.push(format!("category={category}"));
        }
        let search = self.search();
        if !search.is_empty() {
            query.push(format!("q={}", encode(&search)));
        }
        format!("/?{}", query.join("&"))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /`: categories, search and a page of products with their availability.
pub(super) async fn home(State(state): State<AppState>, caller: Caller, uri: Uri) -> PageResult {
    let browse = Query::<Browse>::try_from_uri(&uri)
        .map(|Query(b)| b)
        .unwrap_or_default();
    let categories = crate::catalog::list_categories(&state).await?;
    let filter = ProductFilter {
        category_id: browse.category(),
        search: Some(browse.search()),
        status: None,
    };
    let paging = Paging {
        page: Some(browse.page()),
        page_size: Some(PAGE_SIZE),
    };
    let products = crate::catalog::list_products(&state, true, &filter, paging.request()?).await?;
    let stock = stock_of(&state, &products.items).await?;
    let mut chrome = Chrome::of(&state, &caller).await;
    chrome.search = browse.search();
    let title = heading(&browse, &categories);
    let main = html! {
        (category_nav(&categories, browse.category()))
        h1 { (title) }
        (product_grid(&products, &stock))
        (pager(&browse, &products))
    };
    Ok(page(StatusCode::OK, layout::page(&title, &chrome, main)))
}

/// Stock levels of `products`, by product.
async fn stock_of(
    state: &AppState,
    products: &[ProductView],
) -> crate::Result<HashMap<ProductId, StockView>> {
    let ids: Vec<ProductId> = products.iter().map(|p| p.id).collect();
    let levels = stock_levels(state, &ids).await?;
    Ok(levels.into_iter().map(|s| (s.product_id, s)).collect())
}

fn heading(browse: &Browse, categories: &[CategoryView]) -> String {
    let search = browse.search();
    let category = browse
        .category()
        .and_then(|id| categories.iter().find(|c| c.id == id));
    match (category, search.is_empty()) {
        (Some(c), true) => c.name.clone(),
        (Some(c), false) => format!("“{search}” in {}", c.name),
        (None, false) => format!("Results for “{search}”"),
        (None, true) => "All products".to_owned(),
    }
}

fn category_nav(categories: &[CategoryView], current: Option<CategoryId>) -> Markup {
    html! {
        nav.categories aria-label="Categories" {
            ul {
                li { a href="/" aria-current=[current.is_none().then_some("page")] { "All" } }
                @for category in categories {
                    li {
                        a href=(format!("/?category={}", category.id))
                            aria-current=[(current == Some(category.id)).then_some("page")] {
                            (category.name)
                        }
                    }
                }
            }
        }
    }
}

fn product_grid(products: &Page<ProductView>, stock: &HashMap<ProductId, StockView>) -> Markup {
    html! {
        @if products.items.is_empty() {
            p.panel { "No products match. Try another word or category." }
        } @else {
            p.muted { (products.total_count) " products" }
            ul.grid {
                @for product in &products.items {
                    li.card {
                        a href=(format!("/products/{}", product.id)) {
                            (picture(&product.category_name, 160))
                            span.name { (product.name) }
                        }
                        span.price { (price(product.price)) }
                        (availability(stock.get(&product.id)))
                    }
                }
            }
        }
    }
}

fn pager(browse: &Browse, products: &Page<ProductView>) -> Markup {
    let page = products.page;
    let pages = u32::try_from(products.total_count)
        .unwrap_or(u32::MAX)
        .div_ceil(products.page_size.max(1));
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(browse.href(page - 1)) { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href=(browse.href(page + 1)) { "Next →" } }
            }
        }
    }
}

/// `GET /products/{id}`: picture, price, availability and the add-to-cart form.
pub(super) async fn product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult {
    let id: ProductId = parse_id(&id)?;
    let product = crate::catalog::visible_product(&state, false, id)
        .await
        .map_err(WebError::from)?;
    let levels = stock_levels(&state, &[id]).await?;
    let stock = levels.first();
    let chrome = Chrome::of(&state, &caller).await;
    let main = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Shop" } " › "
            a href=(format!("/?category={}", product.category_id)) { (product.category_name) }
        }
        article.product {
            (picture(&product.category_name, 320))
            div.details {
                h1 { (product.name) }
                p.price.big { (price(product.price)) }
                p { (availability(stock)) }
                p { (product.description) }
                (add_form(&product, stock))
                p.muted { "SKU " (product.sku) }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout::page(&product.name, &chrome, main),
    ))
}

fn add_form(product: &ProductView, stock: Option<&StockView>) -> Markup {
    let available = stock.map_or(0, |s| s.available_quantity);
    html! {
        @if available > 0 {
            form.add method="post" action="/cart/items" {
                input type="hidden" name="productId" value=(product.id);
                label for="quantity" { "Quantity" }
                input #quantity type="number" name="quantity" value="1" min="1" max="99"
                    inputmode="numeric" required;
                button.primary type="submit" { "Add to cart" }
            }
        } @else {
            p { "This product cannot be bought right now." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_links_keep_the_filter_and_encode_the_search() {
        let browse = Browse {
            category: None,
            q: Some(" tea & mugs ".into()),
            page: Some("x".into()),
        };
        assert_eq!(browse.page(), 1);
        assert_eq!(browse.href(2), "/?page=2&q=tea%20%26%20mugs");
    }
}
