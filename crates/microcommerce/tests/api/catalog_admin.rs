//! Categories as admins keep them: created, renamed and described anew, never two with one
//! name (in any case), and a product filed in a new one; and the admin listing of products by
//! status.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// Categories' names, as the public listing gives them.
async fn category_names(app: &TestApp) -> Vec<String> {
    let listed = app.buyer().get("/api/catalog/categories").await;
    assert_eq!(listed.status, 200);
    listed
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|category| category["name"].as_str().expect("a name").to_owned())
        .collect()
}

testkit::backend_tests! {
async fn admins_create_a_category_that_everyone_then_sees_and_can_file_products_in(backend) {
    let app = spawn_app(backend).await;
    let garden = json!({ "name": "  Garden ", "description": "Tools and seeds" });
    let refused = app.buyer().post("/api/catalog/categories", garden.clone()).await;
    assert_eq!(refused.status, 401, "admins only");
    assert_eq!(refused.content_type(), "application/problem+json");

    let created = app.admin().post("/api/catalog/categories", garden).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/catalog/categories/{id}")
    );
    assert_eq!(created.body["name"], "Garden", "kept without the blanks around it");
    assert_eq!(created.body["description"], "Tools and seeds");
    let one = app.buyer().get(&format!("/api/catalog/categories/{id}")).await;
    assert_eq!((one.status, one.body.clone()), (200, created.body.clone()));
    let names = category_names(&app).await;
    assert_eq!(names.len(), 9);
    assert!(names.contains(&"Garden".to_owned()) && names.is_sorted(), "{names:?}");

    let bare = app.admin().post("/api/catalog/categories", json!({ "name": "Tools" })).await;
    assert_eq!((bare.status, bare.body["description"].clone()), (201, json!("")), "no description");

    let product = json!({ "name": "Trowel", "price": 9.5, "categoryId": id });
    let filed = app.admin().post("/api/catalog/products", product).await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    assert_eq!(filed.body["categoryName"], "Garden");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_category_name_taken_in_any_case_is_a_conflict(backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin();
    let first = admin.post("/api/catalog/categories", json!({ "name": "Garden" })).await;
    assert_eq!(first.status, 201);
    for taken in ["Garden", "garden", " GARDEN ", "Electronics"] {
        let again = admin.post("/api/catalog/categories", json!({ "name": taken })).await;
        assert_eq!(again.status, 409, "{taken}: {}", again.body);
        assert_eq!(again.content_type(), "application/problem+json");
        assert_eq!(again.body["type"], "urn:microcommerce:problem:duplicate-category");
        assert!(again.body["detail"].as_str().unwrap().contains(taken.trim()), "{}", again.body);
    }
    let id = first.body["id"].as_str().unwrap();
    let renamed = admin
        .put(&format!("/api/catalog/categories/{id}"), json!({ "name": "Books" }))
        .await;
    assert_eq!(renamed.status, 409, "a rename onto another's name too");
    assert_eq!(category_names(&app).await.len(), 9, "nothing written");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_category_is_renamed_and_its_products_follow(backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin();
    let categories = app.buyer().get("/api/catalog/categories").await.body;
    let books = categories
        .as_array()
        .unwrap()
        .iter()
        .find(|category| category["name"] == "Books")
        .expect("the seed's books")
        .clone();
    let path = format!("/api/catalog/categories/{}", books["id"].as_str().unwrap());
    let change = json!({ "name": "Books & Comics", "description": "Paper and ink" });
    assert_eq!(app.buyer().put(&path, change.clone()).await.status, 401, "admins only");
    let renamed = admin.put(&path, change).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        (renamed.body["id"].clone(), renamed.body["name"].clone(), renamed.body["description"].clone()),
        (books["id"].clone(), json!("Books & Comics"), json!("Paper and ink"))
    );
    let recased = admin.put(&path, json!({ "name": "BOOKS & COMICS" })).await;
    assert_eq!(recased.status, 200, "its own name in another case is no conflict");
    assert_eq!(recased.body["description"], "", "a replacement: no description is none");
    let listed = app
        .buyer()
        .get(&format!("/api/catalog/products?categoryId={}", books["id"].as_str().unwrap()))
        .await;
    let items = listed.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|p| p["categoryName"] == "BOOKS & COMICS"), "{items:?}");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn bad_categories_are_refused_field_by_field_and_unknown_ones_are_not_found(backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin();
    let bad = json!({ "name": "  ", "description": "d".repeat(1001) });
    let refused = admin.post("/api/catalog/categories", bad).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.content_type(), "application/problem+json");
    for field in ["name", "description"] {
        assert!(refused.body["errors"][field].is_array(), "{field}: {}", refused.body);
    }
    let long = admin.post("/api/catalog/categories", json!({ "name": "n".repeat(201) })).await;
    assert_eq!(long.status, 400);
    let nameless = admin.post("/api/catalog/categories", json!({})).await;
    assert_eq!(nameless.status, 400);
    assert!(nameless.body["errors"]["name"].is_array());
    let unreadable = admin.post("/api/catalog/categories", json!({ "name": 7 })).await;
    assert_eq!(unreadable.status, 400);

    let unknown = format!("/api/catalog/categories/{}", uuid::Uuid::now_v7());
    let missing = admin.put(&unknown, json!({ "name": "Nowhere" })).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.content_type(), "application/problem+json");
    assert_eq!(app.buyer().get(&unknown).await.status, 404);
    assert_eq!(admin.put("/api/catalog/categories/7", json!({ "name": "Seven" })).await.status, 400);
    assert_eq!(category_names(&app).await.len(), 8, "nothing written");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn admins_list_products_by_status(backend) {
    let app = spawn_app(backend).await;
    let categories = app.buyer().get("/api/catalog/categories").await.body;
    let category = categories[0]["id"].as_str().unwrap();
    let draft = json!({ "name": "Draft Gnome", "price": 5, "categoryId": category });
    assert_eq!(app.admin().post("/api/catalog/products", draft).await.status, 201);
    let drafts = app.admin().get("/api/catalog/products?status=Draft").await;
    assert_eq!(drafts.body["totalCount"], 1, "{}", drafts.body);
    assert_eq!(drafts.body["items"][0]["name"], "Draft Gnome");
    let published = app.admin().get("/api/catalog/products?status=Published&pageSize=1").await;
    assert_eq!(published.body["totalCount"], 50);
    let to_buyers = app.buyer().get("/api/catalog/products?status=Draft").await;
    assert_eq!(to_buyers.body["totalCount"], 0, "buyers see published products only");
    assert_eq!(app.admin().get("/api/catalog/products?status=Sold").await.status, 400);
    app.stop().await;
}
}
