//! The catalog's service: what the JSON handlers, the storefront and other modules ask of the
//! catalog. Browsing (categories, products, one product), editing (categories: create and
//! edit; products: create, replace, change status), and the product snapshots carts and orders
//! price themselves from.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::db::{self, ProductSnapshot, ProductStatus, decode_status, parse_id};
use super::input::{CategoryInput, ProductInput, ValidCategory, ValidProduct};
use crate::error::ResultExt;
use crate::http::{Page, PageRequest};
use crate::ids::{CategoryId, ProductId};
use crate::money::Money;
use crate::state::AppState;
use crate::{Error, Result};

/// A category.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryView {
    pub(crate) id: CategoryId,
    pub(crate) name: String,
    pub(crate) description: String,
}

/// A product as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    pub(crate) id: ProductId,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price: Money,
    pub(crate) currency: String,
    pub(crate) image_url: Option<String>,
    pub(crate) category_id: CategoryId,
    pub(crate) category_name: String,
    pub(crate) status: ProductStatus,
}

/// Filters of the product listing; the page is asked for apart ([`crate::http::Paging`]).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Only this category.
    pub(crate) category_id: Option<CategoryId>,
    /// Words in the name or description (case-insensitive).
    pub(crate) search: Option<String>,
    /// Only this status (buyers see Published products whatever they ask).
    pub(crate) status: Option<ProductStatus>,
}

fn category_view(row: &AnyRow) -> Result<CategoryView, sqlx::Error> {
    Ok(CategoryView {
        id: parse_id(row.try_get("id")?)?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
    })
}

/// Every category, by name: the listing the API and the storefront show.
pub async fn list_categories(state: &AppState) -> Result<Vec<CategoryView>> {
    let rows = sqlx::query("SELECT id, name, description FROM categories ORDER BY name")
        .fetch_all(&mut state.read().await?)
        .await?;
    let categories = rows
        .iter()
        .map(category_view)
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(categories)
}

/// Category `id`; not found if there is none.
pub async fn category(state: &AppState, id: CategoryId) -> Result<CategoryView> {
    let row = sqlx::query("SELECT id, name, description FROM categories WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut state.read().await?)
        .await?
        .ok_or(Error::NotFound("category"))?;
    Ok(category_view(&row)?)
}

/// Creates a category from `input`; refused when another has its name, in any case.
pub async fn create_category(state: &AppState, input: CategoryInput) -> Result<CategoryView> {
    let input = ValidCategory::try_from(input)?;
    state
        .write(input, |tx, input| {
            Box::pin(async move {
                let id = CategoryId::new();
                sqlx::query("INSERT INTO categories (id, name, description) VALUES ($1, $2, $3)")
                    .bind(id.to_string())
                    .bind(input.name.as_str())
                    .bind(&input.description)
                    .execute(&mut **tx)
                    .await
                    .on_unique_violation(duplicate(input))?;
                Ok(CategoryView {
                    id,
                    name: input.name.to_string(),
                    description: input.description.clone(),
                })
            })
        })
        .await
}

/// Renames category `id` and replaces its description with `input`'s; not found if there is no
/// such category, refused when another has the name, in any case. Its products follow, since
/// they refer to it by id.
pub async fn update_category(
    state: &AppState,
    id: CategoryId,
    input: CategoryInput,
) -> Result<CategoryView> {
    let input = ValidCategory::try_from(input)?;
    state
        .write(input, move |tx, input| {
            Box::pin(async move {
                let updated =
                    sqlx::query("UPDATE categories SET name = $1, description = $2 WHERE id = $3")
                        .bind(input.name.as_str())
                        .bind(&input.description)
                        .bind(id.to_string())
                        .execute(&mut **tx)
                        .await
                        .on_unique_violation(duplicate(input))?
                        .rows_affected();
                if updated == 0 {
                    return Err(Error::NotFound("category"));
                }
                Ok(CategoryView {
                    id,
                    name: input.name.to_string(),
                    description: input.description.clone(),
                })
            })
        })
        .await
}

/// The conflict of a category whose name another has.
fn duplicate(input: &ValidCategory) -> Error {
    Error::DuplicateCategory(input.name.to_string())
}

const PRODUCT_SELECT: &str = "SELECT p.id, p.sku, p.name, p.description, p.price_cents, \
    p.currency, p.image_url, p.category_id, c.name AS category_name, p.status \
    FROM products p JOIN categories c ON c.id = p.category_id";

fn product_view(row: &AnyRow) -> Result<ProductView, sqlx::Error> {
    Ok(ProductView {
        id: parse_id(row.try_get("id")?)?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price: Money(row.try_get("price_cents")?),
        currency: row.try_get("currency")?,
        image_url: row.try_get("image_url")?,
        category_id: parse_id(row.try_get("category_id")?)?,
        category_name: row.try_get("category_name")?,
        status: decode_status(&row.try_get::<String, _>("status")?)?,
    })
}

/// The conditions of the product listing, over `$1` (category), `$2` (search pattern), `$3`
/// (published only) and `$4` (status).
const LISTING_CONDITIONS: &str = "($1 IS NULL OR p.category_id = $1) \
    AND ($2 IS NULL OR LOWER(p.name) LIKE $2 ESCAPE '\\' OR LOWER(p.description) LIKE $2 ESCAPE '\\') \
    AND ($3 = 0 OR p.status = 'Published') \
    AND ($4 IS NULL OR p.status = $4)";

/// Products matching `filter` (published ones only if `published_only`), by name, on `page`.
pub async fn list_products(
    state: &AppState,
    published_only: bool,
    filter: &ProductFilter,
    page: PageRequest,
) -> Result<Page<ProductView>> {
    // A NUL character matches nothing stored and no text column takes one: left out.
    let search = filter.search.as_deref().map(|s| s.replace('\0', ""));
    let pattern = search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let published_only = i64::from(published_only);
    let category = filter.category_id.map(|c| c.to_string());
    let status = filter.status.map(ProductStatus::as_str);
    let total_count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM products p WHERE {LISTING_CONDITIONS}"
    )))
    .bind(category.clone())
    .bind(pattern.clone())
    .bind(published_only)
    .bind(status)
    .fetch_one(&mut state.read().await?)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE {LISTING_CONDITIONS} ORDER BY p.name, p.id LIMIT $5 OFFSET $6"
    )))
    .bind(category)
    .bind(pattern)
    .bind(published_only)
    .bind(status)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut state.read().await?)
    .await?;
    let items = rows.iter().map(product_view).collect::<Result<_, _>>()?;
    Ok(page.page_of(items, total_count))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn load_product(conn: &mut storage::Conn<'_>, id: ProductId) -> Result<Option<ProductView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE p.id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(product_view).transpose()?)
}

/// Product `id` if it is published (or `to_admin`); not found otherwise.
pub async fn visible_product(
    state: &AppState,
    to_admin: bool,
    id: ProductId,
) -> Result<ProductView> {
    let mut conn = state.read().await?;
    match load_product(&mut conn, id).await? {
        Some(p) if to_admin || p.status == ProductStatus::Published => Ok(p),
        _ => Err(Error::NotFound("product")),
    }
}

/// What carts and checkouts know of the products among `ids` that exist, in no particular
/// order: the catalog is their only source of names, prices and pictures. Reads through the
/// caller's connection, so that a checkout prices its order in its own transaction.
pub async fn product_snapshots(
    conn: &mut storage::Conn<'_>,
    ids: &[ProductId],
) -> Result<Vec<ProductSnapshot>, sqlx::Error> {
    db::find_products(conn, ids).await
}

/// Creates a Draft product from `input`, with its stock item of 0 units, in one transaction.
pub async fn create_product(state: &AppState, input: ProductInput) -> Result<ProductView> {
    let input = ValidProduct::try_from(input)?;
    state
        .write(input, |tx, input| Box::pin(insert_product(tx, input)))
        .await
}

/// A new Draft product with a stock item of 0 units, in the caller's transaction.
async fn insert_product(tx: &mut bus::Tx<'_>, input: &ValidProduct) -> Result<ProductView> {
    ensure_category(tx, input.category_id).await?;
    let id = ProductId::new();
    let now = tx.now().await?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_cents, currency, image_url, \
         category_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'USD', $6, $7, 'Draft', $8, $8)",
    )
    .bind(id.to_string())
    .bind(input.sku.clone().unwrap_or_else(generated_sku))
    .bind(input.name.as_str())
    .bind(&input.description)
    .bind(input.price.0)
    .bind(&input.image_url)
    .bind(input.category_id.to_string())
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .on_unique_violation(Error::DuplicateSku)?;
    crate::inventory::create_stock_item(tx, id, 0, now).await?;
    load_product(tx, id)
        .await?
        .ok_or(Error::NotFound("product"))
}

/// `SKU-` and 8 uppercase hex digits, for products created without one.
fn generated_sku() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("SKU-{}", hex[..8].to_uppercase())
}

async fn ensure_category(tx: &mut bus::Tx<'_>, id: CategoryId) -> Result<()> {
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM categories WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    if found == 0 {
        return Err(Error::refused("categoryId", "no such category"));
    }
    Ok(())
}

/// Replaces product `id`'s details with `input` (its SKU only when one is given).
pub async fn update_product(
    state: &AppState,
    id: ProductId,
    input: ProductInput,
) -> Result<ProductView> {
    let input = ValidProduct::try_from(input)?;
    state
        .write(input, move |tx, input| {
            Box::pin(replace_details(tx, id, input))
        })
        .await
}

/// Replaces product `id`'s details in the caller's transaction.
async fn replace_details(
    tx: &mut bus::Tx<'_>,
    id: ProductId,
    input: &ValidProduct,
) -> Result<ProductView> {
    ensure_category(tx, input.category_id).await?;
    let updated = sqlx::query(
        "UPDATE products SET name = $1, description = $2, price_cents = $3, image_url = $4, \
         category_id = $5, sku = COALESCE($6, sku), updated_at = $7 WHERE id = $8",
    )
    .bind(input.name.as_str())
    .bind(&input.description)
    .bind(input.price.0)
    .bind(&input.image_url)
    .bind(input.category_id.to_string())
    .bind(&input.sku)
    .bind(tx.now().await?.0)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .on_unique_violation(Error::DuplicateSku)?
    .rows_affected();
    if updated == 0 {
        return Err(Error::NotFound("product"));
    }
    load_product(tx, id)
        .await?
        .ok_or(Error::NotFound("product"))
}

/// Moves product `id` to `status` (publish, archive or back to draft); not found if there is
/// no such product.
pub async fn set_status(state: &AppState, id: ProductId, status: ProductStatus) -> Result<()> {
    let updated = state
        .write((), move |tx, ()| {
            Box::pin(async move {
                let sql = "UPDATE products SET status = $1, updated_at = $2 WHERE id = $3";
                let now = tx.now().await?;
                let done = sqlx::query(sql)
                    .bind(status.as_str())
                    .bind(now.0)
                    .bind(id.to_string())
                    .execute(&mut **tx)
                    .await?;
                Ok(done.rows_affected())
            })
        })
        .await?;
    if updated == 0 {
        return Err(Error::NotFound("product"));
    }
    Ok(())
}
