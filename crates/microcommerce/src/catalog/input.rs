//! A product and a category as an admin writes them, and their parsing: every field is checked
//! and all the broken ones are reported at once.

use serde::Deserialize;

use crate::domain::{BoundedText, NUL_REFUSED, has_nul};
use crate::ids::CategoryId;
use crate::money::Money;
use crate::{Error, Result};

/// A product as an admin writes it (in JSON, or in the console's form).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductInput {
    /// The name buyers see.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub(crate) name: String,
    /// Up to 4000 characters.
    #[serde(default)]
    #[schema(max_length = 4000, pattern = r"^[^\x00]*$")]
    pub(crate) description: String,
    // Price and category are required, but read as `Option`s so that a missing one is
    // reported with the other field errors rather than as an unreadable body.
    /// More than 0, at most 1,000,000.00, in whole cents.
    #[schema(value_type = f64, required = true, exclusive_minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    pub(crate) price: Option<Money>,
    /// An existing category.
    #[schema(value_type = CategoryId, required = true)]
    pub(crate) category_id: Option<CategoryId>,
    /// Picture URL, up to 2048 characters; blank means none.
    #[schema(max_length = 2048, pattern = r"^[^\x00]*$")]
    pub(crate) image_url: Option<String>,
    /// Stock-keeping unit, 1..=64 of `A-Z a-z 0-9 - _`; generated when absent on create,
    /// kept when absent on update.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub(crate) sku: Option<String>,
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
        if has_nul(&input.description) {
            fail("description", NUL_REFUSED);
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
        if input.image_url.as_deref().is_some_and(has_nul) {
            fail("imageUrl", NUL_REFUSED);
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

/// Longest category description accepted, in characters.
const MAX_CATEGORY_DESCRIPTION: usize = 1000;

/// A category as an admin writes it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryInput {
    /// The name buyers see; no two categories share one, in any case.
    #[serde(default)]
    #[schema(value_type = BoundedText, required = true)]
    pub(crate) name: String,
    /// Up to 1000 characters; absent or blank means none.
    #[schema(max_length = 1000, pattern = r"^[^\x00]*$")]
    pub(crate) description: Option<String>,
}

/// A [`CategoryInput`] whose every field passed validation.
pub(super) struct ValidCategory {
    pub(super) name: BoundedText,
    pub(super) description: String,
}

impl TryFrom<CategoryInput> for ValidCategory {
    type Error = Error;

    /// Checks both fields and reports all the broken ones at once.
    fn try_from(input: CategoryInput) -> Result<Self> {
        let mut errors = crate::error::FieldErrors::new();
        let name = <BoundedText>::parse(&input.name)
            .map_err(|_| errors.insert("name".into(), vec![name_refusal()]))
            .ok();
        let description = input.description.unwrap_or_default();
        if description.chars().count() > MAX_CATEGORY_DESCRIPTION {
            errors.insert(
                "description".into(),
                vec![format!(
                    "must be at most {MAX_CATEGORY_DESCRIPTION} characters"
                )],
            );
        }
        if has_nul(&description) {
            errors.insert("description".into(), vec![NUL_REFUSED.into()]);
        }
        match name {
            Some(name) if errors.is_empty() => Ok(Self {
                name,
                description: crate::domain::trimmed(&description).to_owned(),
            }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(name: &str, description: Option<&str>) -> Result<ValidCategory> {
        ValidCategory::try_from(CategoryInput {
            name: name.into(),
            description: description.map(Into::into),
        })
    }

    #[test]
    fn a_category_needs_a_name_and_at_most_a_short_description() {
        let valid = category("  Garden  ", None).expect("valid");
        assert_eq!(
            (valid.name.as_str(), valid.description.as_str()),
            ("Garden", "")
        );
        let Err(Error::Validation(errors)) = category(" ", Some(&"d".repeat(1001))) else {
            panic!("refused");
        };
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["description", "name"],
            "both reported at once"
        );
        assert!(category(&"n".repeat(201), None).is_err());
        assert!(category("Garden", Some(&"d".repeat(1000))).is_ok());
    }
}
