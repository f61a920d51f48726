//! Catalog queries shared with other modules.

use std::str::FromStr;

use sqlx::Row;

use crate::ids::{CategoryId, ProductId};
use crate::money::Money;

/// Lifecycle of a product: only Published products can be bought.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum ProductStatus {
    /// Being prepared; invisible to buyers' carts and checkouts.
    Draft,
    /// On sale.
    Published,
    /// No longer sold.
    Archived,
}

impl ProductStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "Draft",
            Self::Published => "Published",
            Self::Archived => "Archived",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Draft" => Some(Self::Draft),
            "Published" => Some(Self::Published),
            "Archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// What other modules need to know of a product: the catalog is the only source of names and
/// prices, whatever a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    /// The product.
    pub id: ProductId,
    /// Its category.
    pub category_id: CategoryId,
    /// Current name.
    pub name: String,
    /// Current unit price.
    pub price: Money,
    /// Picture, if any.
    pub image_url: Option<String>,
    /// Whether it can be bought.
    pub status: ProductStatus,
}

/// The products among `ids` that exist, in no particular order.
pub async fn find_products(
    conn: &mut storage::Conn<'_>,
    ids: &[ProductId],
) -> Result<Vec<ProductSnapshot>, sqlx::Error> {
    let mut found = Vec::with_capacity(ids.len());
    // One statement for a whole order's products (a checkout has at most a few hundred).
    for chunk in ids.chunks(500) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, category_id, name, price_cents, image_url, status FROM products \
             WHERE id IN ({})",
            storage::placeholders(1, chunk.len())
        )));
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.push(snapshot(&row)?);
        }
    }
    Ok(found)
}

fn snapshot(row: &sqlx::any::AnyRow) -> Result<ProductSnapshot, sqlx::Error> {
    Ok(ProductSnapshot {
        id: parse_id(row.try_get("id")?)?,
        category_id: parse_id(row.try_get("category_id")?)?,
        name: row.try_get("name")?,
        price: Money(row.try_get("price_cents")?),
        image_url: row.try_get("image_url")?,
        status: decode_status(&row.try_get::<String, _>("status")?)?,
    })
}

/// A stored id column as its typed id; a malformed one is a decoding error.
pub(crate) fn parse_id<T: FromStr<Err = uuid::Error>>(text: String) -> Result<T, sqlx::Error> {
    text.parse()
        .map_err(|e: uuid::Error| sqlx::Error::Decode(e.into()))
}

/// A stored status; the CHECK constraint makes anything else a broken database.
pub(crate) fn decode_status(text: &str) -> Result<ProductStatus, sqlx::Error> {
    ProductStatus::parse(text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown product status {text}").into()))
}
