//! Catalog routes: browsing for everyone, editing for admins.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::db::{ProductStatus, decode_status, parse_id};
use crate::error::ResultExt;
use crate::http::{Admin, Caller, Json, Page, Paging, Path, Query};
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

/// Every category, by name. Unpaged: the categories are the fixed set the catalog is seeded
/// with (no route adds one).
#[utoipa::path(get, path = "/categories", tag = "catalog",
    responses((status = 200, body = Vec<CategoryView>)))]
pub async fn categories(State(state): State<AppState>) -> Result<Json<Vec<CategoryView>>> {
    list_categories(&state).await.map(Json)
}

/// Every category, by name: the listing the API and the storefront show.
pub(crate) async fn list_categories(state: &AppState) -> Result<Vec<CategoryView>> {
    let rows = sqlx::query("SELECT id, name, description FROM categories ORDER BY name")
        .fetch_all(&mut state.read().await?)
        .await?;
    let categories = rows
        .iter()
        .map(|row| {
            Ok(CategoryView {
                id: parse_id(row.try_get("id")?)?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(categories)
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

/// Filters of the product listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Only this category.
    pub(crate) category_id: Option<CategoryId>,
    /// Words in the name or description (case-insensitive).
    pub(crate) search: Option<String>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 2147483647)]
    pub(crate) page: Option<u32>,
    /// Page size (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub(crate) page_size: Option<u32>,
}

/// Published products (every status for admins), by name, paged.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ProductFilter),
    responses((status = 200, body = Page<ProductView>), (status = 400, body = crate::error::Problem)))]
pub async fn products(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<ProductFilter>,
) -> Result<Json<Page<ProductView>>> {
    list_products(&state, !caller.is_admin, filter)
        .await
        .map(Json)
}

/// Products matching `filter` (published ones only if `published_only`), by name, paged.
pub(crate) async fn list_products(
    state: &AppState,
    published_only: bool,
    filter: ProductFilter,
) -> Result<Page<ProductView>> {
    let (page, page_size) = Paging {
        page: filter.page,
        page_size: filter.page_size,
    }
    .resolve()?;
    let pattern = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let published_only = i64::from(published_only);
    let category = filter.category_id.map(|c| c.to_string());
    let conditions = "($1 IS NULL OR p.category_id = $1) \
        AND ($2 IS NULL OR LOWER(p.name) LIKE $2 ESCAPE '\\' OR LOWER(p.description) LIKE $2 ESCAPE '\\') \
        AND ($3 = 0 OR p.status = 'Published')";
    let total_count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM products p WHERE {conditions}"
    )))
    .bind(category.clone())
    .bind(pattern.clone())
    .bind(published_only)
    .fetch_one(&mut state.read().await?)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE {conditions} ORDER BY p.name, p.id LIMIT $4 OFFSET $5"
    )))
    .bind(category)
    .bind(pattern)
    .bind(published_only)
    .bind(i64::from(page_size))
    .bind(Paging::offset(page, page_size))
    .fetch_all(&mut state.read().await?)
    .await?;
    let items = rows.iter().map(product_view).collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        total_count,
        page,
        page_size,
    })
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

/// One product; drafts and archived products only for admins.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    params(("id" = ProductId, Path, description = "Product id")),
    responses((status = 200, body = ProductView), (status = 404, body = crate::error::Problem)))]
pub async fn product(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ProductId>,
) -> Result<Json<ProductView>> {
    visible_product(&state, caller.is_admin, id).await.map(Json)
}

/// Product `id` if it is published (or `to_admin`); not found otherwise.
pub(crate) async fn visible_product(
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

/// A product as an admin writes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductInput {
    /// 1..=200 characters, not all blank (surrounding spaces are dropped).
    #[serde(default)]
    #[schema(
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = r"[^\x00-\x20]"
    )]
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
struct ValidProduct {
    name: String,
    description: String,
    price: Money,
    category_id: CategoryId,
    image_url: Option<String>,
    sku: Option<String>,
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
        let name = crate::domain::trimmed(&input.name).to_owned();
        if !(1..=200).contains(&input.name.chars().count()) || crate::domain::is_blank(&name) {
            fail("name", "must be 1 to 200 characters, not all blank");
        }
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
        match (input.price, input.category_id) {
            (Some(price), Some(category_id)) if errors.is_empty() => Ok(Self {
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

fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

/// Creates a product as a Draft, with a stock item of 0 units, in one transaction.
#[utoipa::path(post, path = "/products", tag = "catalog", request_body = ProductInput,
    security(("admin" = [])),
    responses((status = 201, body = ProductView,
            headers(("Location" = String, description = "The new product"))),
        (status = 409, description = "Another product has this SKU", body = crate::error::Problem),
        (status = 422, description = "No such category", body = crate::error::Problem)))]
pub async fn create_product(
    _: Admin,
    State(state): State<AppState>,
    Json(input): Json<ProductInput>,
) -> Result<Response> {
    let input = ValidProduct::try_from(input)?;
    let product = state
        .write(input, |tx, input| Box::pin(insert_product(tx, input)))
        .await?;
    let location = format!("/api/catalog/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
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
    .bind(&input.name)
    .bind(&input.description)
    .bind(input.price.0)
    .bind(&input.image_url)
    .bind(input.category_id.to_string())
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .on_unique_violation(Error::DuplicateSku)?;
    crate::inventory::db::create_stock_item(tx, id, 0, now).await?;
    load_product(tx, id)
        .await?
        .ok_or(Error::NotFound("product"))
}

/// Replaces a product's details (its SKU only when one is given).
#[utoipa::path(put, path = "/products/{id}", tag = "catalog",
    params(("id" = ProductId, Path, description = "Product id")), request_body = ProductInput,
    security(("admin" = [])),
    responses((status = 200, body = ProductView),
        (status = 409, description = "Another product has this SKU", body = crate::error::Problem),
        (status = 422, description = "No such category", body = crate::error::Problem)))]
pub async fn update_product(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(input): Json<ProductInput>,
) -> Result<Json<ProductView>> {
    let input = ValidProduct::try_from(input)?;
    let product = state
        .write(input, move |tx, input| {
            Box::pin(replace_product(tx, id, input))
        })
        .await?;
    Ok(Json(product))
}

/// Replaces product `id`'s details in the caller's transaction.
async fn replace_product(
    tx: &mut bus::Tx<'_>,
    id: ProductId,
    input: &ValidProduct,
) -> Result<ProductView> {
    ensure_category(tx, input.category_id).await?;
    let updated = sqlx::query(
        "UPDATE products SET name = $1, description = $2, price_cents = $3, image_url = $4, \
         category_id = $5, sku = COALESCE($6, sku), updated_at = $7 WHERE id = $8",
    )
    .bind(&input.name)
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

/// A new lifecycle status.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusInput {
    /// Draft, Published or Archived.
    #[schema(value_type = ProductStatus)]
    status: String,
}

/// Publishes, archives or drafts a product.
#[utoipa::path(patch, path = "/products/{id}/status", tag = "catalog",
    operation_id = "change_product_status",
    params(("id" = ProductId, Path, description = "Product id")), request_body = StatusInput,
    security(("admin" = [])),
    responses((status = 204), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn change_status(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(input): Json<StatusInput>,
) -> Result<StatusCode> {
    let status = ProductStatus::parse(&input.status)
        .ok_or_else(|| Error::invalid("status", "must be Draft, Published or Archived"))?;
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
    Ok(StatusCode::NO_CONTENT)
}
