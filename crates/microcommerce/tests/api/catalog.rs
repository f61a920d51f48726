//! Catalog browsing and administration, and the demo seed.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

async fn first_category(app: &crate::helpers::TestApp) -> String {
    app.buyer().get("/api/catalog/categories").await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// (on hand, reserved) of a product's stock item, read from the database so that these tests
/// do not depend on the inventory API.
async fn stock_row(app: &crate::helpers::TestApp, product: &str) -> Option<(i64, i64)> {
    use sqlx::Row;
    sqlx::query("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
        .bind(product)
        .fetch_optional(app.state.db.reader())
        .await
        .expect("stock query")
        .map(|row| (row.get("on_hand"), row.get("reserved")))
}

fn new_product(category: &str) -> Value {
    json!({ "name": "Garden Gnome", "description": "Guards the tulips.", "price": 24.5,
            "categoryId": category })
}

testkit::backend_tests! {
async fn the_seed_has_eight_categories_and_fifty_published_products(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let categories = buyer.get("/api/catalog/categories").await.body;
    assert_eq!(categories.as_array().unwrap().len(), 8);
    let page = buyer.get("/api/catalog/products?pageSize=100").await.body;
    assert_eq!(page["totalCount"], 50);
    let items = page["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|p| p["status"] == "Published" && p["currency"] == "USD")
    );
    let names: Vec<&str> = items.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.is_sorted(), "sorted by name: {names:?}");
    let category_names: Vec<&str> = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(category_names.is_sorted(), "{category_names:?}");

    // The stock levels the seed's notes promise: every product has a stock item, a few are low
    // and two are out of stock.
    let mut levels = std::collections::BTreeMap::new();
    for product in items {
        let (on_hand, reserved) = stock_row(&app, product["id"].as_str().unwrap())
            .await
            .expect("every seeded product has a stock item");
        assert_eq!(reserved, 0);
        levels.insert(product["sku"].as_str().unwrap().to_owned(), on_hand);
    }
    let low: Vec<(&str, i64)> = levels
        .iter()
        .filter(|(_, on_hand)| **on_hand <= 10)
        .map(|(sku, on_hand)| (sku.as_str(), *on_hand))
        .collect();
    assert_eq!(
        low,
        [
            ("MC-BEAU-006", 0),
            ("MC-BOOK-006", 0),
            ("MC-ELEC-006", 3),
            ("MC-HOME-006", 7),
            ("MC-SPRT-006", 10),
            ("MC-TOYS-006", 5),
        ]
    );
    assert!(levels.values().all(|on_hand| *on_hand <= 200));
    let seeded = page["items"][0]["id"].clone();
    microcommerce_service::catalog::seed_if_empty(&app.state.db)
        .await
        .expect("seeding again is a no-op");
    let again = buyer.get("/api/catalog/products?pageSize=100").await.body;
    assert_eq!(
        (again["totalCount"].clone(), again["items"][0]["id"].clone()),
        (json!(50), seeded)
    );
}
}

testkit::backend_tests! {
async fn products_page_filter_and_search(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let page = buyer
        .get("/api/catalog/products?page=2&pageSize=20")
        .await
        .body;
    assert_eq!(
        (
            page["page"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(2), 20)
    );
    let last = buyer
        .get("/api/catalog/products?page=3&pageSize=20")
        .await
        .body;
    assert_eq!(last["items"].as_array().unwrap().len(), 10);
    let category = first_category(&app).await;
    let in_category = buyer
        .get(&format!("/api/catalog/products?categoryId={category}"))
        .await
        .body;
    let items = in_category["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|p| p["categoryId"] == category.as_str()));
    let found = buyer
        .get("/api/catalog/products?search=ESPRESSO")
        .await
        .body;
    assert_eq!(found["totalCount"], 1);
    assert_eq!(found["items"][0]["name"], "Espresso Machine");
    let literal = buyer.get("/api/catalog/products?search=100%25").await.body;
    assert_eq!(literal["totalCount"], 0, "% is matched literally");
    assert_eq!(
        buyer.get("/api/catalog/products?pageSize=101").await.status,
        400
    );
    assert_eq!(buyer.get("/api/catalog/products?page=0").await.status, 400);
    let too_large = buyer.get("/api/catalog/products?pageSize=101").await;
    assert_eq!(too_large.content_type(), "application/problem+json");
    assert!(too_large.body["errors"]["pageSize"].is_array());
    let far = buyer
        .get("/api/catalog/products?page=2147483647&pageSize=100")
        .await;
    assert_eq!((far.status, far.body["items"].clone()), (200, json!([])));
    let past = buyer.get("/api/catalog/products?page=2147483648").await;
    assert_eq!(past.status, 400, "the document's int32 ends there");
    let underscore = buyer.get("/api/catalog/products?search=_").await.body;
    assert_eq!(underscore["totalCount"], 0, "_ is matched literally");
    let in_description = buyer.get("/api/catalog/products?search=colour").await.body;
    assert_eq!(in_description["totalCount"], 2, "{in_description}");
    assert_eq!(
        buyer
            .get("/api/catalog/products?categoryId=nope")
            .await
            .status,
        400
    );
}
}

testkit::backend_tests! {
async fn a_product_by_id_or_a_404_or_a_400(backend) {
    let app = spawn_app(backend).await;
    let buyer = app.buyer();
    let listed = buyer.get("/api/catalog/products?pageSize=1").await.body["items"][0].clone();
    let id = listed["id"].as_str().unwrap();
    let one = buyer.get(&format!("/api/catalog/products/{id}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, listed);
    let unknown = buyer
        .get(&format!("/api/catalog/products/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type(), "application/problem+json");
    assert_eq!(buyer.get("/api/catalog/products/123").await.status, 400);
}
}

testkit::backend_tests! {
async fn admins_create_drafts_with_empty_stock_that_buyers_cannot_see(backend) {
    let app = spawn_app(backend).await;
    let category = first_category(&app).await;
    let created = app
        .admin()
        .post("/api/catalog/products", new_product(&category))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/catalog/products/{id}")
    );
    assert_eq!(created.body["status"], "Draft");
    assert_eq!(created.body["price"], json!(24.50));
    assert!(created.body["sku"].as_str().unwrap().starts_with("SKU-"));
    assert_eq!(stock_row(&app, &id).await, Some((0, 0)));

    let path = format!("/api/catalog/products/{id}");
    assert_eq!(app.buyer().get(&path).await.status, 404);
    assert_eq!(app.admin().get(&path).await.status, 200);
    assert_eq!(
        app.buyer()
            .get("/api/catalog/products?pageSize=100")
            .await
            .body["totalCount"],
        50
    );
    assert_eq!(
        app.admin()
            .get("/api/catalog/products?pageSize=100")
            .await
            .body["totalCount"],
        51
    );

    let published = app
        .admin()
        .patch(&format!("{path}/status"), json!({ "status": "Published" }))
        .await;
    assert_eq!(published.status, 204);
    assert_eq!(app.buyer().get(&path).await.body["status"], "Published");
    let archived = app
        .admin()
        .patch(&format!("{path}/status"), json!({ "status": "Archived" }))
        .await;
    assert_eq!(archived.status, 204);
    assert_eq!(app.buyer().get(&path).await.status, 404);
    assert_eq!(app.admin().get(&path).await.body["status"], "Archived");
    let bad = app
        .admin()
        .patch(&format!("{path}/status"), json!({ "status": "Sold" }))
        .await;
    assert_eq!(bad.status, 400);
}
}

testkit::backend_tests! {
async fn editing_the_catalog_needs_the_admin_token(backend) {
    let app = spawn_app(backend).await;
    let category = first_category(&app).await;
    let buyer = app.buyer();
    let id = uuid::Uuid::now_v7();
    assert_eq!(
        buyer
            .post("/api/catalog/products", new_product(&category))
            .await
            .status,
        401
    );
    assert_eq!(
        buyer
            .put(
                &format!("/api/catalog/products/{id}"),
                new_product(&category)
            )
            .await
            .status,
        401
    );
    let status = json!({ "status": "Archived" });
    assert_eq!(
        buyer
            .patch(&format!("/api/catalog/products/{id}/status"), status)
            .await
            .status,
        401
    );
}
}

testkit::backend_tests! {
async fn invalid_products_are_rejected_field_by_field(backend) {
    let app = spawn_app(backend).await;
    let bad = json!({ "name": " ", "description": "x", "price": 0, "categoryId": uuid::Uuid::now_v7(),
                      "sku": "no spaces allowed" });
    let reply = app.admin().post("/api/catalog/products", bad).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.content_type(), "application/problem+json");
    let errors = reply.body["errors"].as_object().unwrap();
    for field in ["name", "price", "sku"] {
        assert!(errors.contains_key(field), "{field}: {errors:?}");
    }
    let category = first_category(&app).await;
    let mut unknown_category = new_product(&category);
    unknown_category["categoryId"] = json!(uuid::Uuid::now_v7());
    let reply = app
        .admin()
        .post("/api/catalog/products", unknown_category)
        .await;
    assert!(reply.body["errors"]["categoryId"].is_array());
    let missing = app
        .admin()
        .post("/api/catalog/products", json!({ "name": "Nameless price" }))
        .await;
    assert_eq!(missing.status, 400);
    for field in ["price", "categoryId"] {
        assert!(missing.body["errors"][field].is_array(), "{field}: {}", missing.body);
    }
    let mut too_long = new_product(&category);
    too_long["description"] = json!("d".repeat(4001));
    too_long["imageUrl"] = json!(format!("https://img.test/{}", "i".repeat(2048)));
    too_long["price"] = json!(1_000_000.01);
    too_long["name"] = json!("n".repeat(201));
    let reply = app.admin().post("/api/catalog/products", too_long).await;
    let errors = reply.body["errors"].as_object().unwrap();
    for field in ["name", "description", "imageUrl", "price"] {
        assert!(errors.contains_key(field), "{field}: {errors:?}");
    }
    let mut largest = new_product(&category);
    largest["price"] = json!(1_000_000);
    largest["name"] = json!("  Gold Gnome  ");
    largest["sku"] = json!("GOLD_gnome-1");
    let created = app.admin().post("/api/catalog/products", largest).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        (&created.body["name"], &created.body["price"]),
        (&json!("Gold Gnome"), &json!(1_000_000.00))
    );
    let mut fraction = new_product(&category);
    fraction["price"] = json!(1.999);
    assert_eq!(
        app.admin()
            .post("/api/catalog/products", fraction)
            .await
            .status,
        400
    );
}
}

testkit::backend_tests! {
async fn a_duplicate_sku_is_a_conflict_and_updates_keep_the_sku(backend) {
    let app = spawn_app(backend).await;
    let category = first_category(&app).await;
    let mut product = new_product(&category);
    product["sku"] = json!("GNOME-1");
    let first = app
        .admin()
        .post("/api/catalog/products", product.clone())
        .await;
    assert_eq!(first.status, 201);
    let again = app.admin().post("/api/catalog/products", product).await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.body["type"],
        "urn:microcommerce:problem:duplicate-sku"
    );

    let id = first.body["id"].as_str().unwrap();
    let mut change = new_product(&category);
    change["name"] = json!("Garden Gnome XL");
    change["price"] = json!(30);
    let updated = app
        .admin()
        .put(&format!("/api/catalog/products/{id}"), change)
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["name"], "Garden Gnome XL");
    assert_eq!(updated.body["price"], json!(30.00));
    assert_eq!(updated.body["sku"], "GNOME-1");
    let missing = app
        .admin()
        .put(
            &format!("/api/catalog/products/{}", uuid::Uuid::now_v7()),
            new_product(&category),
        )
        .await;
    assert_eq!(missing.status, 404);
}
}

testkit::backend_tests! {
async fn instances_starting_together_seed_the_catalog_once(backend) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = microcommerce_service::config::Config {
        database_url: backend.fresh_url(dir.path()).await,
        synchronous: storage::Synchronous::Normal,
        ..Default::default()
    };
    let db = microcommerce_service::app::prepare_database(&config)
        .await
        .expect("database prepared");
    let seeds = (0..4).map(|_| microcommerce_service::catalog::seed_if_empty(&db));
    for seeded in futures_util::future::join_all(seeds).await {
        seeded.expect("every instance starts");
    }
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(db.reader())
        .await
        .expect("count");
    assert_eq!(products, 50);
    db.close().await;
}
}
