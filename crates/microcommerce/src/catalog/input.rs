//! A product as an admin writes it, and its parsing: every field is checked and all the broken
//! ones are reported at once.

use serde::Deserialize;

use crate::domain::BoundedText;
use crate::ids::CategoryId;
use crate::money::Money;
use crate::{Error, Result};

/// A product as an admin writes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductInput {
    /// The name buyers see.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    name: String,
    /// Up to 4000 characters.
    #[serde(default)]
    #[schema(max_length = 4000)]
    description: String,
    // Price and category are required, but read as `Option`s so that a missing one is
    // reported with the other field errors rather than as an unreadable body.
    /// More than 0, at most 1,000,000.00, in whole cents.
    #[schema(value_type = f64, required = true, exclusive_minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    price: Option<Money>,
    /// An existing category.
    #[schema(value_type = CategoryId, required = true)]
    category_id: Option<CategoryId>,
    /// Picture URL, up to 2048 characters; blank means none.
    #[schema(max_length = 2048)]
    image_url: Option<String>,
    /// Stock-keeping unit, 1..=64 of `A-Z a-z 0-9 - _`; generated when absent on create,
    /// kept when absent on update.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    sku: Option<String>,
}

/// A [`ProductInput`] whose every field passed validation.
pub(super) struct ValidProduct {
    pub(super) name: BoundedText,
    pub(super) description: String,
    pub(super) price: Money,
    pub(super) category_id: CategoryId,
    pub(super) image_url: Option<String>,
    pub(super) sku: Option<String>,
}

/// Largest price accepted: 1,000,000.00 in cents.
const MAX_PRICE: Money = Money(100_000_000);

impl TryFrom<ProductInput> for ValidProduct {
    type Error = Error;

    /// Checks every field and reports all the broken ones at once.
    fn try_from(input: ProductInput) -> Result<Self> {
        let mut errors = crate::error::FieldErrors::new();
        let mut fail = |field: &str, message: &str| {
            errors.entry(field.into()).or_default().push(message.into());
        };
        let name = <BoundedText>::parse(&input.name)
            .map_err(|_| fail("name", &name_refusal()))
            .ok();
        if input.description.chars().count() > 4000 {
            fail("description", "must be at most 4000 characters");
        }
        match input.price {
            None => fail("price", "is required"),
            Some(price) if price.0 <= 0 || price > MAX_PRICE => {
                fail("price", "must be more than 0 and at most 1000000.00");
            }
            Some(_) => {}
        }
        if input.category_id.is_none() {
            fail("categoryId", "is required");
        }
        if input
            .image_url
            .as_deref()
            .map_or(0, |url| url.chars().count())
            > 2048
        {
            fail("imageUrl", "must be at most 2048 characters");
        }
        let image_url = input
            .image_url
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty());
        if input.sku.as_deref().is_some_and(|sku| !valid_sku(sku)) {
            fail("sku", "must be 1 to 64 letters, digits, '-' or '_'");
        }
        match (name, input.price, input.category_id) {
            (Some(name), Some(price), Some(category_id)) if errors.is_empty() => Ok(Self {
                name,
                description: input.description,
                price,
                category_id,
                image_url,
                sku: input.sku,
            }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// Why a name was refused, blank or too long alike.
fn name_refusal() -> String {
    let max = <BoundedText>::MAX_CHARS;
    format!("must be 1 to {max} characters, not all blank")
}

fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
