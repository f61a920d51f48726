//! The catalog's two pages. The list: every product whatever its status, with its price and its
//! stock, found by category, status and words a page at a time, the form for a new product
//! (`product`) and the categories (`categories`). And one product: its details to edit, the
//! buttons that publish, archive or draft it, and its stock (`stock`).
//!
//! Every action is a form post answered with a redirect back to the page it came from; a refusal
//! (a field that breaks the rules, a name taken) is a page that says why, with a way back.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::categories::category_panel;
use super::chrome::{self, Section, page_request, pager};
use super::product::{
    CATALOG, product_form, product_href, product_id, status, status_badge, to_catalog, to_product,
};
use super::{ConsoleResult, Operator, stock, url_encoded};
use crate::Error;
use crate::catalog::{self, CategoryView, ProductFilter, ProductStatus, ProductView};
use crate::ids::ProductId;
use crate::inventory::{self, StockView};
use crate::state::AppState;
use crate::web::layout::price;

/// Products on one page of the list.
const PAGE_SIZE: u32 = 25;

/// The list's filters as the form sends them; blank fields filter nothing.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    category: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

impl ListQuery {
    /// The filter the form asks for; a category or a status that does not parse is a 400 page.
    fn filter(&self) -> Result<ProductFilter, Error> {
        let category_id =
            match self.category.trim() {
                "" => None,
                text => Some(text.parse().map_err(|_| {
                    Error::invalid("category", format!("{text:?} is not a category"))
                })?),
            };
        Ok(ProductFilter {
            category_id,
            search: Some(self.q.trim().to_owned()).filter(|q| !q.is_empty()),
            status: status_filter(&self.status)?,
        })
    }

    /// The query string of these filters, on page `page`.
    fn href(&self, page: u32) -> String {
        let pairs = [
            ("category", self.category.as_str()),
            ("status", self.status.as_str()),
            ("q", self.q.as_str()),
        ];
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", url_encoded(value.trim())))
            .collect();
        if page > 1 {
            query.push(format!("page={page}"));
        }
        format!("{CATALOG}?{}", query.join("&"))
    }
}

/// The status filter: blank is any.
fn status_filter(text: &str) -> Result<Option<ProductStatus>, Error> {
    match text.trim() {
        "" => Ok(None),
        text => status(text).map(Some),
    }
}

/// `GET /admin/catalog`: products with their stock, the new product form, the categories.
pub(super) async fn list(
    _: Operator,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ConsoleResult {
    let filter = query.filter().map_err(to_catalog)?;
    let page = page_request(&query.page, PAGE_SIZE).map_err(to_catalog)?;
    let products = catalog::list_products(&state, false, &filter, page).await?;
    let ids: Vec<ProductId> = products.items.iter().map(|product| product.id).collect();
    let stock = inventory::stock_levels(&state, &ids).await?;
    let categories = catalog::list_categories(&state).await?;
    let body = html! {
        h1 { "Catalog" }
        (filters(&query, &categories))
        section.panel #products aria-labelledby="products-title" {
            h2 #products-title { "Products (" (products.total_count) ")" }
            @if products.items.is_empty() {
                p #no-products { "No product matches." }
            } @else {
                (product_table(&products.items, &stock))
            }
            (pager(&products, |page| query.href(page), "Pages of products"))
        }
        div.columns {
            section.panel #new-product aria-labelledby="new-product-title" {
                h2 #new-product-title { "New product" }
                p.hint { "It starts as a draft with no stock: publish it and add stock from its page." }
                (product_form(&format!("{CATALOG}/products"), None, &categories, "Create product"))
            }
            (category_panel(&categories))
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page("Catalog", Some(Section::Catalog), body),
    ))
}

fn filters(query: &ListQuery, categories: &[CategoryView]) -> Markup {
    html! {
        form.filters method="get" action=(CATALOG) role="search" {
            div {
                label for="q" { "Name or description" }
                input #q type="search" name="q" value=(query.q);
            }
            div {
                label for="filter-category" { "In category" }
                select #filter-category name="category" {
                    option value="" { "Any" }
                    @for category in categories {
                        @let id = category.id.to_string();
                        option value=(id) selected[query.category == id] { (category.name) }
                    }
                }
            }
            div {
                label for="filter-status" { "Status" }
                select #filter-status name="status" {
                    option value="" { "Any" }
                    @for status in [ProductStatus::Draft, ProductStatus::Published, ProductStatus::Archived] {
                        option value=(status.as_str()) selected[query.status == status.as_str()] { (status.as_str()) }
                    }
                }
            }
            button.button type="submit" { "Filter" }
        }
    }
}

fn product_table(products: &[ProductView], stock: &[StockView]) -> Markup {
    html! {
        table #product-list {
            thead { tr {
                th scope="col" { "Product" } th scope="col" { "SKU" } th scope="col" { "Category" }
                th scope="col" { "Status" } th.number scope="col" { "Price" }
                th.number scope="col" { "On hand" } th.number scope="col" { "Reserved" }
                th.number scope="col" { "Available" }
            } }
            tbody {
                @for product in products {
                    @let level = stock.iter().find(|level| level.product_id == product.id);
                    tr {
                        td { a href=(product_href(product.id)) { (product.name) } }
                        td { (product.sku) }
                        td { (product.category_name) }
                        td { (status_badge(product.status)) }
                        td.number { (price(product.price)) }
                        @match level {
                            Some(level) => {
                                td.number { (level.quantity_on_hand) }
                                td.number { (level.reserved_quantity) }
                                td.number { (level.available_quantity) }
                            }
                            None => { td.number { "–" } td.number { "–" } td.number { "–" } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /admin/catalog/products/{id}` (`?page=` pages the stock's history).
pub(super) async fn product(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(history): Query<stock::HistoryQuery>,
) -> ConsoleResult {
    let id = product_id(&id)?;
    let product = catalog::visible_product(&state, true, id)
        .await
        .map_err(to_catalog)?;
    let categories = catalog::list_categories(&state).await?;
    let stock = stock::panel(&state, id, &history)
        .await
        .map_err(to_product(id))?;
    let body = html! {
        p.crumbs { a href=(CATALOG) { "Catalog" } " › " (product.category_name) }
        h1 { (product.name) }
        dl.facts {
            dt { "Status" } dd #status { (status_badge(product.status)) }
            dt { "SKU" } dd { (product.sku) }
            dt { "Price" } dd #price { (price(product.price)) }
            dt { "Category" } dd { (product.category_name) }
        }
        (status_buttons(&product))
        div.columns {
            section.panel #details aria-labelledby="details-title" {
                h2 #details-title { "Details" }
                (product_form(&product_href(id), Some(&product), &categories, "Save changes"))
            }
            (stock)
        }
    };
    Ok(crate::web::page(
        StatusCode::OK,
        chrome::page(&product.name, Some(Section::Catalog), body),
    ))
}

/// A button per status the product can move to.
fn status_buttons(product: &ProductView) -> Markup {
    let moves = [
        (ProductStatus::Published, "Publish"),
        (ProductStatus::Archived, "Archive"),
        (ProductStatus::Draft, "Back to draft"),
    ];
    let action = format!("{}/status", product_href(product.id));
    html! {
        div.buttons #status-actions {
            @for (status, label) in moves.into_iter().filter(|(to, _)| *to != product.status) {
                form.inline method="post" action=(action) {
                    input type="hidden" name="status" value=(status.as_str());
                    button.primary[status == ProductStatus::Published] type="submit" { (label) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_links_keep_the_filters() {
        let query = ListQuery {
            status: "Draft".into(),
            q: "red mug".into(),
            ..ListQuery::default()
        };
        assert_eq!(query.href(1), "/admin/catalog?status=Draft&q=red%20mug");
        assert_eq!(
            query.href(3),
            "/admin/catalog?status=Draft&q=red%20mug&page=3"
        );
    }

    #[test]
    fn an_unknown_status_is_a_clear_refusal() {
        assert!(matches!(status_filter("Sold"), Err(Error::Validation(_))));
        assert_eq!(status_filter(" ").unwrap(), None);
    }
}
