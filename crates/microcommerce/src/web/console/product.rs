//! A product's form and its actions: created (from the catalog's page), its details replaced,
//! published, archived or sent back to draft; and what the catalog's pages share to name a
//! product and lead a refusal back to the page it came from.

use axum::extract::{Path, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::chrome::{Failure, Section};
use super::{ConsoleResult, Operator};
use crate::Error;
use crate::catalog::{self, CategoryView, ProductInput, ProductStatus, ProductView};
use crate::ids::{CategoryId, ProductId};
use crate::money::Money;
use crate::state::AppState;
use crate::web::{Form, see_other};

/// The catalog's page.
pub(super) const CATALOG: &str = "/admin/catalog";

/// Leads a failure back to the catalog.
pub(super) fn to_catalog(error: Error) -> Failure {
    Failure::from(error).back_to(Section::Catalog, CATALOG.to_owned(), "Back to the catalog")
}

/// Leads a failure back to product `id`'s page.
pub(super) fn to_product(id: ProductId) -> impl FnOnce(Error) -> Failure {
    move |error| {
        Failure::from(error).back_to(Section::Catalog, product_href(id), "Back to the product")
    }
}

/// Product `id`'s page.
pub(super) fn product_href(id: ProductId) -> String {
    format!("{CATALOG}/products/{id}")
}

/// The product id in a page's path; a malformed one is a product that does not exist.
pub(super) fn product_id(text: &str) -> Result<ProductId, Failure> {
    text.parse()
        .map_err(|_| to_catalog(Error::NotFound("product")))
}

/// A product status as a form sends it.
pub(super) fn status(text: &str) -> Result<ProductStatus, Error> {
    let text = text.trim();
    ProductStatus::parse(text).ok_or_else(|| {
        Error::invalid(
            "status",
            format!("there is no product status called {text:?}"),
        )
    })
}

/// A status, coloured by what it means for shoppers.
pub(super) fn status_badge(status: ProductStatus) -> Markup {
    let class = match status {
        ProductStatus::Draft => "status draft",
        ProductStatus::Published => "status published",
        ProductStatus::Archived => "status archived",
    };
    html! { span class=(class) { (status.as_str()) } }
}

/// The product form, empty for a new product or filled with `product`'s details, posting to
/// `action`. Field ids are unique on the page whichever form it is.
pub(super) fn product_form(
    action: &str,
    product: Option<&ProductView>,
    categories: &[CategoryView],
    submit: &str,
) -> Markup {
    let value = |field: fn(&ProductView) -> String| product.map(field).unwrap_or_default();
    let chosen = product.map(|product| product.category_id);
    html! {
        form.product-form method="post" action=(action) {
            div.field {
                label for="product-name" { "Product name" }
                input #product-name name="name" required maxlength="200" value=(value(|p| p.name.clone()));
            }
            div.field {
                label for="product-description" { "Product description" }
                textarea #product-description name="description" rows="3" maxlength="4000" {
                    (value(|p| p.description.clone()))
                }
            }
            div.field {
                label for="product-price" { "Price (USD)" }
                input #product-price name="price" required inputmode="decimal" placeholder="12.99"
                    value=(value(|p| p.price.to_string()));
            }
            div.field {
                label for="product-category" { "Category" }
                select #product-category name="category" required {
                    @for category in categories {
                        option value=(category.id.to_string()) selected[chosen == Some(category.id)] { (category.name) }
                    }
                }
            }
            div.field {
                label for="product-image" { "Picture URL" }
                input #product-image name="image_url" inputmode="url" maxlength="2048"
                    value=(value(|p| p.image_url.clone().unwrap_or_default()));
            }
            div.field {
                label for="product-sku" { "SKU" }
                input #product-sku name="sku" maxlength="64" pattern="[A-Za-z0-9_\\-]{1,64}"
                    aria-describedby="product-sku-hint" value=(value(|p| p.sku.clone()));
                p.hint #product-sku-hint {
                    @if product.is_some() { "Letters, digits, - and _; blank keeps it." }
                    @else { "Letters, digits, - and _; blank makes one up." }
                }
            }
            button.primary type="submit" { (submit) }
        }
    }
}

/// The product form's fields, as text: a price that is not an amount is refused here with
/// the other checks left to the catalog.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ProductForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    image_url: String,
    #[serde(default)]
    sku: String,
}

impl ProductForm {
    /// The product as the catalog takes it; a blank price or category is left for the catalog
    /// to report as required.
    fn input(self) -> Result<ProductInput, Error> {
        let price = match self.price.trim() {
            "" => None,
            text => Some(
                Money::parse_decimal(text.trim_start_matches('$')).ok_or_else(|| {
                    Error::invalid(
                        "price",
                        format!("must be an amount in dollars like 12.99, not {text:?}"),
                    )
                })?,
            ),
        };
        let category_id =
            match self.category.trim() {
                "" => None,
                text => Some(text.parse::<CategoryId>().map_err(|_| {
                    Error::refused("category", format!("{text:?} is not a category"))
                })?),
            };
        let sku = Some(self.sku.trim().to_owned()).filter(|sku| !sku.is_empty());
        Ok(ProductInput {
            name: self.name,
            description: self.description,
            price,
            category_id,
            image_url: Some(self.image_url),
            sku,
        })
    }
}

/// `POST /admin/catalog/products`: a new draft, then its page.
pub(super) async fn create_product(
    _: Operator,
    State(state): State<AppState>,
    Form(form): Form<ProductForm>,
) -> ConsoleResult {
    let input = form.input().map_err(to_catalog)?;
    let product = catalog::create_product(&state, input)
        .await
        .map_err(to_catalog)?;
    Ok(see_other(&product_href(product.id)))
}

/// `POST /admin/catalog/products/{id}`: the details replaced, back to the product.
pub(super) async fn update_product(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ProductForm>,
) -> ConsoleResult {
    let id = product_id(&id)?;
    let input = form.input().map_err(to_product(id))?;
    catalog::update_product(&state, id, input)
        .await
        .map_err(to_product(id))?;
    Ok(see_other(&product_href(id)))
}

/// The status buttons' form.
#[derive(Debug, Deserialize)]
pub(super) struct StatusForm {
    #[serde(default)]
    status: String,
}

/// `POST /admin/catalog/products/{id}/status`: published, archived or drafted, back to the
/// product.
pub(super) async fn change_status(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> ConsoleResult {
    let id = product_id(&id)?;
    let to = status(&form.status).map_err(to_product(id))?;
    catalog::set_status(&state, id, to)
        .await
        .map_err(to_product(id))?;
    Ok(see_other(&product_href(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_that_is_not_an_amount_is_refused_by_its_field() {
        let form = |price: &str| ProductForm {
            price: price.into(),
            ..ProductForm::default()
        };
        let Err(Error::Validation(errors)) = form("twelve").input() else {
            panic!("refused");
        };
        assert!(errors.contains_key("price"));
        assert_eq!(form("$12.5").input().unwrap().price, Some(Money(1250)));
        assert_eq!(
            form(" ").input().unwrap().price,
            None,
            "left to the catalog"
        );
    }

    #[test]
    fn a_status_is_one_of_the_three() {
        assert!(matches!(status("Sold"), Err(Error::Validation(_))));
        assert!(status("").is_err());
        assert_eq!(status(" Published ").unwrap(), ProductStatus::Published);
    }
}
