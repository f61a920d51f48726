//! The demo catalog loaded into an empty database: 8 categories and 50 published products.
//!
//! Ids, SKUs and stock levels are deterministic, so the demo and the docs show the same shop
//! every time. Most products have 20–200 units; the low-stock ones (≤ 10 available) are
//! `MC-ELEC-006` (3), `MC-HOME-006` (7), `MC-TOYS-006` (5) and `MC-SPRT-006` (10), and
//! `MC-BOOK-006` and `MC-BEAU-006` are out of stock (0).

use storage::Db;

use crate::ids::{CategoryId, ProductId};

/// (category name, description, products as (name, price in cents, description)).
type Category = (
    &'static str,
    &'static str,
    [(&'static str, i64, &'static str); 6],
);

const CATEGORIES: [Category; 8] = [
    (
        "Electronics",
        "Gadgets and accessories",
        [
            (
                "Wireless Earbuds",
                7999,
                "Noise-cancelling earbuds with a 24-hour charging case.",
            ),
            (
                "USB-C Charger 65W",
                3499,
                "Compact gallium-nitride charger for laptops and phones.",
            ),
            (
                "Mechanical Keyboard",
                11900,
                "Tenkeyless keyboard with hot-swappable switches.",
            ),
            ("4K Webcam", 8950, "Autofocus webcam with dual microphones."),
            (
                "Portable SSD 1TB",
                9999,
                "Pocket-sized drive, 1,000 MB/s over USB-C.",
            ),
            (
                "Smart Watch",
                19900,
                "Heart-rate, GPS and a week of battery.",
            ),
        ],
    ),
    (
        "Home & Kitchen",
        "Things for the home",
        [
            ("Chef's Knife", 5900, "20 cm forged stainless-steel knife."),
            (
                "Cast Iron Skillet",
                3999,
                "Pre-seasoned 26 cm skillet for stove and oven.",
            ),
            (
                "Pour-Over Coffee Set",
                4450,
                "Glass dripper, carafe and 100 filters.",
            ),
            (
                "Linen Bedding Set",
                12900,
                "Stone-washed linen duvet cover and two pillowcases.",
            ),
            ("Ceramic Mug", 1250, "Hand-glazed 350 ml mug."),
            (
                "Espresso Machine",
                34900,
                "15-bar pump machine with a steam wand.",
            ),
        ],
    ),
    (
        "Books",
        "Reading for every shelf",
        [
            (
                "The Pragmatic Programmer",
                4299,
                "Classic advice for working programmers.",
            ),
            (
                "Designing Data-Intensive Applications",
                4999,
                "Reliable, scalable, maintainable systems.",
            ),
            (
                "The Rust Programming Language",
                3999,
                "The official book, in print.",
            ),
            (
                "A Field Guide to Birds",
                2450,
                "800 species with colour plates.",
            ),
            ("Cooking at Home", 3200, "Weeknight recipes that work."),
            (
                "Atlas of Remote Islands",
                2800,
                "Fifty islands you will never visit.",
            ),
        ],
    ),
    (
        "Clothing",
        "Everyday wear",
        [
            ("Merino T-Shirt", 5500, "Lightweight merino wool tee."),
            (
                "Rain Jacket",
                14900,
                "Waterproof, breathable shell with taped seams.",
            ),
            ("Wool Socks (3 pairs)", 2400, "Cushioned hiking socks."),
            ("Denim Jeans", 7900, "Straight-leg selvedge denim."),
            (
                "Canvas Sneakers",
                6500,
                "Low-top canvas shoes with rubber soles.",
            ),
            ("Knit Beanie", 1999, "Ribbed beanie in recycled yarn."),
        ],
    ),
    (
        "Sports & Outdoors",
        "Gear for getting out",
        [
            (
                "Trail Running Shoes",
                12900,
                "Grippy, cushioned shoes for rough trails.",
            ),
            ("Yoga Mat", 3900, "Non-slip 5 mm mat with a carry strap."),
            ("Insulated Bottle", 2900, "Keeps drinks cold for 24 hours."),
            (
                "Camping Hammock",
                4900,
                "Parachute-nylon hammock with straps.",
            ),
            (
                "Resistance Bands",
                1899,
                "Set of five bands, light to heavy.",
            ),
            ("Headlamp", 3499, "400-lumen rechargeable headlamp."),
        ],
    ),
    (
        "Toys & Games",
        "For play at any age",
        [
            ("Wooden Train Set", 4999, "Forty-piece beech-wood railway."),
            (
                "Strategy Board Game",
                5499,
                "Two to four players, about an hour.",
            ),
            ("1000-Piece Puzzle", 1899, "Mountain lake at dawn."),
            (
                "Building Blocks Bucket",
                2999,
                "Five hundred compatible bricks.",
            ),
            ("Plush Fox", 1599, "Soft toy, 30 cm."),
            (
                "Remote Control Car",
                6999,
                "Off-road car with a rechargeable battery.",
            ),
        ],
    ),
    (
        "Beauty & Health",
        "Care for body and skin",
        [
            (
                "Face Moisturiser",
                2450,
                "Fragrance-free daily moisturiser, 50 ml.",
            ),
            (
                "Electric Toothbrush",
                5999,
                "Sonic toothbrush with two heads.",
            ),
            (
                "Sunscreen SPF 50",
                1650,
                "Broad-spectrum, water-resistant, 100 ml.",
            ),
            ("Shampoo Bar", 1100, "Plastic-free bar for all hair types."),
            ("Massage Gun", 9900, "Percussion massager with four heads."),
            ("Vitamin D3", 1299, "Ninety soft-gel capsules."),
        ],
    ),
    (
        "Office",
        "Supplies for desk work",
        [
            ("Fountain Pen", 3800, "Steel nib, converter included."),
            ("Dotted Notebook", 1650, "A5, 160 pages, lay-flat binding."),
            ("Desk Lamp", 4999, "Dimmable LED lamp with a USB port."),
            ("Monitor Stand", 3499, "Bamboo riser with a drawer."),
            ("Ergonomic Mouse", 4599, "Vertical mouse, wireless."),
            (
                "Noise Machine",
                3999,
                "White-noise machine with twenty sounds.",
            ),
        ],
    ),
];

/// Two products beyond the 48 above, so that the catalog has 50.
const EXTRA: [(usize, &str, i64, &str); 2] = [
    (
        0,
        "Bluetooth Speaker",
        5900,
        "Waterproof speaker with 12 hours of play.",
    ),
    (
        7,
        "Sticky Notes (12 pads)",
        999,
        "Assorted colours, 76 x 76 mm.",
    ),
];

const SKU_PREFIXES: [&str; 8] = [
    "ELEC", "HOME", "BOOK", "CLTH", "SPRT", "TOYS", "BEAU", "OFFC",
];

/// Units on hand of the `index`-th product (1-based) of category `category`.
fn stock_level(category: usize, index: usize) -> i64 {
    match (SKU_PREFIXES[category], index) {
        ("BOOK" | "BEAU", 6) => 0,
        ("ELEC", 6) => 3,
        ("HOME", 6) => 7,
        ("TOYS", 6) => 5,
        ("SPRT", 6) => 10,
        _ => 20 + ((category * 37 + index * 53) % 181) as i64,
    }
}

/// Loads the demo catalog if there are no products yet; one transaction, so a crash leaves
/// either the whole catalog or none. Several instances starting together on one PostgreSQL
/// database may all find it empty: the losers' inserts collide with the winner's ids, and
/// finding the catalog there afterwards counts as success.
pub async fn seed_if_empty(db: &Db) -> Result<(), sqlx::Error> {
    match insert_if_empty(db).await {
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            if count_products(db.reader()).await? > 0 {
                Ok(())
            } else {
                Err(sqlx::Error::Database(error))
            }
        }
        other => other,
    }
}

async fn count_products<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(executor)
        .await
}

async fn insert_if_empty(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    if count_products(&mut *tx).await? > 0 {
        return tx.rollback().await;
    }
    let now = db.now();
    for (c, (name, description, items)) in CATEGORIES.iter().enumerate() {
        let category = CategoryId(uuid::Uuid::from_u128(0x5eed_c000 + c as u128));
        sqlx::query("INSERT INTO categories (id, name, description) VALUES ($1, $2, $3)")
            .bind(category.to_string())
            .bind(*name)
            .bind(*description)
            .execute(&mut *tx)
            .await?;
        let extra = EXTRA
            .iter()
            .filter(|(of, ..)| *of == c)
            .map(|(_, n, p, d)| (*n, *p, *d));
        for (i, (product, price, text)) in items.iter().copied().chain(extra).enumerate() {
            let index = i + 1;
            let id = ProductId(uuid::Uuid::from_u128(
                0x5eed_0000_0000 + (c * 100 + index) as u128,
            ));
            sqlx::query(
                "INSERT INTO products (id, sku, name, description, price_cents, currency, \
                 image_url, category_id, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'USD', $6, $7, 'Published', $8, $8)",
            )
            .bind(id.to_string())
            .bind(format!("MC-{}-{index:03}", SKU_PREFIXES[c]))
            .bind(product)
            .bind(text)
            .bind(price)
            .bind(format!(
                "https://images.microcommerce.example/products/{id}.jpg"
            ))
            .bind(category.to_string())
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
            crate::inventory::create_stock_item(&mut tx, id, stock_level(c, index), now).await?;
        }
    }
    tx.commit().await?;
    tracing::info!("seeded the demo catalog");
    Ok(())
}
