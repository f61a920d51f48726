//! Faults from outside the service, each driven over HTTP: a database out of space, and a
//! message that fails for good until its cause is removed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, checkout_request, eventually, known_buyer, order_count, order_in, spawn_app,
    stocked_product,
};

const WAIT: Duration = Duration::from_secs(30);

/// Runs `sql` on the write connection (on SQLite, the one connection every write uses).
async fn on_writer(app: &TestApp, sql: &str) {
    let mut tx = app.state.bus.begin().await.expect("write transaction");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .expect(sql);
    tx.commit().await.expect("committed");
}

async fn pages_in_use(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT page_count FROM pragma_page_count()")
        .fetch_one(app.state.db.reader())
        .await
        .expect("page count")
}

#[tokio::test]
async fn a_full_database_answers_503_writes_nothing_half_and_resumes_when_space_returns() {
    let app = spawn_app(Backend::Sqlite).await;
    let product = stocked_product(&app, "Tent", 10_000).await;
    let buyer = known_buyer(&app).await;
    // The file may not grow: writes that need a new page fail as on a full disk.
    on_writer(
        &app,
        &format!("PRAGMA max_page_count = {}", pages_in_use(&app).await),
    )
    .await;
    let mut placed = Vec::new();
    let mut refused = None;
    for attempt in 0..500 {
        let keyed = buyer.with_idempotency_key(&format!("full-{attempt}"));
        let reply = keyed
            .post("/api/ordering/checkout", checkout_request(&product, 1))
            .await;
        match reply.status {
            201 => placed.push(reply.body["orderId"].as_str().expect("id").to_owned()),
            _ => {
                refused = Some((keyed, reply));
                break;
            }
        }
    }
    let (keyed, reply) = refused.expect("a checkout refused once the file is full");
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.body["type"], "urn:microcommerce:problem:storage-full");
    assert!(reply.headers.get("retry-after").is_some());
    assert_eq!(
        order_count(&app).await,
        placed.len() as i64,
        "the refused one wrote nothing"
    );
    assert_eq!(
        buyer.get("/api/cart/count").await.status,
        200,
        "reads go on"
    );

    on_writer(&app, "PRAGMA max_page_count = 1073741823").await;
    let retried = keyed
        .post("/api/ordering/checkout", checkout_request(&product, 1))
        .await;
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    placed.push(retried.body["orderId"].as_str().expect("id").to_owned());
    // Every order placed, before, during or after, moves on: no message was lost.
    for order in &placed {
        order_in(&buyer, order, &["StockReserved"]).await;
    }
    let letters = app.admin().get("/api/messaging/dead-letters").await.body;
    assert_eq!(letters["totalCount"], 0, "{letters}");
}

/// Makes every stock reservation fail, as a broken dependency would, until `cure` is run.
pub(crate) async fn poison_reservations(app: &TestApp, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            on_writer(
                app,
                "CREATE TRIGGER poison BEFORE INSERT ON stock_reservations \
                 BEGIN SELECT RAISE(ABORT, 'poison: the warehouse is closed'); END",
            )
            .await
        }
        Backend::Postgres => {
            on_writer(
                app,
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'poison: the warehouse is closed'; END $$",
            )
            .await;
            on_writer(
                app,
                "CREATE TRIGGER poison BEFORE INSERT ON stock_reservations \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            )
            .await
        }
    }
}

/// Undoes [`poison_reservations`]: reservations work again.
pub(crate) async fn cure(app: &TestApp, backend: Backend) {
    match backend {
        Backend::Sqlite => on_writer(app, "DROP TRIGGER poison").await,
        Backend::Postgres => on_writer(app, "DROP TRIGGER poison ON stock_reservations").await,
    }
}

testkit::backend_tests! {
async fn a_poison_message_goes_to_dead_letters_and_completes_when_retried_after_the_fix(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Stove", 10).await;
    let buyer = known_buyer(&app).await;
    let admin = app.admin();
    poison_reservations(&app, backend).await;
    let placed = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    assert_eq!(placed.status, 201);
    let order = placed.body["orderId"].as_str().expect("id").to_owned();

    let letters: Vec<Value> = eventually("the poisoned message dead-lettered", WAIT, || async {
        let page = admin.get("/api/messaging/dead-letters").await.body;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert!(
        letters.iter().all(|letter| letter["error"].as_str().unwrap_or_default().contains("warehouse is closed")),
        "{letters:?}"
    );
    assert_eq!(buyer.get(&format!("/api/ordering/orders/{order}")).await.body["status"], "Submitted");

    cure(&app, backend).await;
    for letter in &letters {
        let id = letter["id"].as_i64().expect("letter id");
        let retried = admin.send("POST", &format!("/api/messaging/dead-letters/{id}/retry"), None).await;
        assert_eq!(retried.status, 204);
    }
    order_in(&buyer, &order, &["StockReserved"]).await;
    let paid = buyer
        .post(&format!("/api/ordering/orders/{order}/pay"), json!({ "shouldSucceed": true }))
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    order_in(&buyer, &order, &["Confirmed"]).await;
    assert_eq!(admin.get("/api/messaging/dead-letters").await.body["totalCount"], 0);
}
}
