//! The operations console over plain HTTP: signing in and out, who may open what (a buyer's
//! cookie opens nothing; a console session opens the admin API too, but never for an action sent
//! from another site), finding an order by its number and seeing its checkout, and keyset paging
//! that neither skips nor repeats an order while new ones arrive; cancelling a checkout that
//! awaits payment, through the API and the console, and racing a payment; the catalog and its
//! stock kept through the console's forms, and its refusals shown as pages that say why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use microcommerce_service::config::Config;
use microcommerce_service::ids::ProductId;
use microcommerce_service::ordering::{self, OrderSearch};
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Client, TestApp, checkout_request, eventually, order_in, orders_placed_today,
    spawn_app, spawn_app_with, stock_of, stocked_product, within_one_day,
};

/// A browser-like client: its own cookie jar, redirects not followed (so each answer is seen).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn get(client: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("answered")
}

/// Posts a form from this site's own pages, as a browser does.
async fn post_form(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{}{path}", app.base))
        .header("origin", &app.base)
        .form(form)
        .send()
        .await
        .expect("answered")
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// A client signed in to the console.
async fn operator(app: &TestApp) -> reqwest::Client {
    let client = browser();
    let signed_in = post_form(
        &client,
        app,
        "/admin/sign-in",
        &[("token", ADMIN_TOKEN), ("next", "/admin")],
    )
    .await;
    assert_eq!(signed_in.status(), 303);
    client
}

testkit::backend_tests! {
async fn the_console_sends_strangers_and_buyers_to_sign_in_and_its_cookie_is_strict(backend) {
    let app = spawn_app(backend).await;
    let buyer = browser();
    assert_eq!(get(&buyer, &app, "/").await.status(), 200, "the buyer has a cookie now");
    let asked = get(&buyer, &app, "/admin/orders?status=Failed").await;
    assert_eq!(asked.status(), 303);
    assert_eq!(location(&asked), "/admin/sign-in?next=/admin/orders%3Fstatus%3DFailed");
    let api = get(&buyer, &app, "/api/ordering/dashboard").await;
    assert_eq!(api.status(), 401, "a buyer's cookie opens no admin route");
    let form = get(&buyer, &app, &location(&asked)).await;
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("Admin token"));

    let signed_in = post_form(&buyer, &app, "/admin/sign-in", &[("token", ADMIN_TOKEN), ("next", "/admin/orders?status=Failed")]).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/admin/orders?status=Failed", "back to the page asked for");
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["mc_console=", "HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie never carries the token");
    assert_eq!(get(&buyer, &app, "/admin").await.status(), 200);
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_wrong_token_is_refused_slowly_and_an_open_redirect_is_not_followed(backend) {
    let app = spawn_app(backend).await;
    let client = browser();
    let started = Instant::now();
    let wrong = post_form(&client, &app, "/admin/sign-in", &[("token", "guess"), ("next", "/admin")]).await;
    assert_eq!(wrong.status(), 401);
    assert!(started.elapsed() >= Duration::from_secs(1), "a wrong token waits its delay");
    let cookies: Vec<_> = wrong.headers().get_all("set-cookie").iter().collect();
    assert!(cookies.iter().all(|c| !c.to_str().unwrap().contains("mc_console")), "{cookies:?}");
    assert!(wrong.text().await.unwrap().contains("not the admin token"));
    let started = Instant::now();
    let api = app.buyer().http.get(format!("{}/api/ordering/dashboard", app.base))
        .bearer_auth("guess").send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert!(started.elapsed() >= Duration::from_secs(1), "so does a wrong bearer token");

    let elsewhere = post_form(&client, &app, "/admin/sign-in", &[("token", ADMIN_TOKEN), ("next", "https://evil.example/admin")]).await;
    assert_eq!(location(&elsewhere), "/admin");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_session_opens_the_admin_api_but_never_for_an_action_from_another_site(backend) {
    let app = spawn_app(backend).await;
    let operator = operator(&app).await;
    let api = get(&operator, &app, "/api/ordering/dashboard").await;
    assert_eq!(api.status(), 200, "the session stands for the bearer token");
    let product = stocked_product(&app, "Lamp", 3).await;
    let order = app.admin().post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    let order = order.body["orderId"].as_str().unwrap().to_owned();
    let cross_site = operator
        .patch(format!("{}/api/ordering/orders/{order}/status", app.base))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "newStatus": "Shipped" }))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let problem: serde_json::Value = cross_site.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("cross-site"), "{problem}");
    let form = operator
        .post(format!("{}/admin/orders/{order}/status", app.base))
        .header("origin", "https://evil.example")
        .form(&[("status", "Shipped")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403, "the console's forms refuse other sites too");

    let signed_out = post_form(&operator, &app, "/admin/sign-out", &[]).await;
    assert_eq!(signed_out.status(), 303);
    assert_eq!(get(&operator, &app, "/admin").await.status(), 303, "signed out");
    assert_eq!(get(&operator, &app, "/api/ordering/dashboard").await.status(), 401);
    app.stop().await;
}
}

testkit::backend_tests! {
async fn an_operator_finds_an_order_by_its_number_sees_its_checkout_and_ships_it(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Kettle", 4).await;
    let buyer = app.buyer();
    let placed = buyer.post("/api/ordering/checkout", checkout_request(&product, 2)).await;
    assert_eq!(placed.status, 201);
    let order = placed.body["orderId"].as_str().unwrap().to_owned();
    let view = order_in(&buyer, &order, &["StockReserved"]).await;
    let number = view["orderNumber"].as_str().unwrap().to_owned();
    let operator = operator(&app).await;

    let found = get(&operator, &app, &format!("/admin/orders?q={}", number.to_lowercase())).await;
    assert_eq!(found.status(), 303, "one order found by its number opens it");
    assert_eq!(location(&found), format!("/admin/orders/{order}"));
    let page = get(&operator, &app, &location(&found)).await.text().await.unwrap();
    for shown in [number.as_str(), "Payment deadline", "PaymentTimedOut", "CheckoutStarted",
                  "StockReserved", "2 × Kettle: Held", "No payment recorded."] {
        assert!(page.contains(shown), "{shown} on the order's page");
    }

    let paid = buyer.post(&format!("/api/ordering/orders/{order}/pay"), json!({ "shouldSucceed": true })).await;
    assert_eq!(paid.status, 200);
    order_in(&buyer, &order, &["Confirmed"]).await;
    let page = get(&operator, &app, &format!("/admin/orders/{order}")).await.text().await.unwrap();
    assert!(page.contains("Mark as shipped") && page.contains("Deducted"), "{page}");
    let shipped = post_form(&operator, &app, &format!("/admin/orders/{order}/status"), &[("status", "Shipped")]).await;
    assert_eq!(shipped.status(), 303);
    order_in(&buyer, &order, &["Shipped"]).await;

    let listed = get(&operator, &app, "/admin/orders?status=Shipped").await.text().await.unwrap();
    assert!(listed.contains(&number));
    let none = get(&operator, &app, "/admin/orders?status=Failed").await.text().await.unwrap();
    assert!(none.contains("No order matches."));
    let bad = get(&operator, &app, "/admin/orders?status=Lost").await;
    assert_eq!(bad.status(), 400, "an unknown status is a clear refusal, not a 500");
    let unknown = get(&operator, &app, &format!("/admin/orders/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}
}

testkit::backend_tests! {
async fn the_dashboard_shows_the_shop_and_the_machinery(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Clock", 1).await;
    let buyer = app.buyer();
    let first = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    order_in(&buyer, first.body["orderId"].as_str().unwrap(), &["StockReserved"]).await;
    let second = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    order_in(&buyer, second.body["orderId"].as_str().unwrap(), &["Failed"]).await;
    let page = get(&operator(&app).await, &app, "/admin").await.text().await.unwrap();
    assert!(page.contains("2 checkouts in the last hour"), "the chart counts them");
    assert!(page.contains("Insufficient stock for Clock"), "the failure's reason");
    assert!(page.contains("Scheduled messages") && page.contains("Dead letters"));
    assert!(!page.contains("<script>") && !page.contains(" style="), "no inline script or style");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn keyset_paging_neither_skips_nor_repeats_an_order_while_new_ones_arrive(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Pen", 1000).await;
    let buyer = app.buyer();
    let place = || async {
        let placed = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
        assert_eq!(placed.status, 201);
        placed.body["orderId"].as_str().unwrap().to_owned()
    };
    let mut before = Vec::new();
    for _ in 0..7 {
        before.push(place().await);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let batch = ordering::find_orders(&app.state, &OrderSearch::default(), after, 3).await.unwrap();
        assert!(batch.items.len() <= 3);
        seen.extend(batch.items.iter().map(|order| order.id().to_string()));
        place().await;
        match batch.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    before.reverse();
    assert_eq!(seen, before, "every order once, newest first, none of those placed meanwhile");
    app.stop().await;
}
}

/// A product with `on_hand` units and an order of `quantity` of it that awaits payment.
async fn awaiting_payment(
    app: &TestApp,
    on_hand: i64,
    quantity: u32,
) -> (Client, String, ProductId) {
    let product = stocked_product(app, "Teapot", on_hand).await;
    let buyer = app.buyer();
    let placed = buyer
        .post(
            "/api/ordering/checkout",
            checkout_request(&product, quantity),
        )
        .await;
    assert_eq!(placed.status, 201);
    let order = placed.body["orderId"].as_str().unwrap().to_owned();
    order_in(&buyer, &order, &["StockReserved"]).await;
    (buyer, order, product.parse().unwrap())
}

testkit::backend_tests! {
async fn a_cancelled_checkout_fails_its_order_and_gives_its_stock_back(backend) {
    let app = spawn_app(backend).await;
    let (buyer, order, product) = awaiting_payment(&app, 5, 2).await;
    assert_eq!(stock_of(&app, product).await, (5, 2));
    let cancel = format!("/api/ordering/orders/{order}/cancel");
    assert_eq!(app.buyer().post(&cancel, json!({})).await.status, 401, "admins only");
    let unknown = format!("/api/ordering/orders/{}/cancel", uuid::Uuid::new_v4());
    assert_eq!(app.admin().post(&unknown, json!({})).await.status, 404);
    assert_eq!(app.admin().post(&cancel, json!({})).await.status, 202);
    let failed = order_in(&buyer, &order, &["Failed"]).await;
    assert_eq!(failed["failureReason"], "Cancelled by an operator");
    eventually("the stock back", Duration::from_secs(30), || async {
        (stock_of(&app, product).await == (5, 0)).then_some(())
    })
    .await;
    let again = app.admin().post(&cancel, json!({})).await;
    assert_eq!(again.status, 409, "a finished checkout cannot be cancelled");
    let paid = buyer.post(&format!("/api/ordering/orders/{order}/pay"), json!({ "shouldSucceed": true })).await;
    assert_eq!(paid.status, 409, "nor paid");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_cancel_racing_a_payment_ends_in_exactly_one_outcome(backend) {
    let app = spawn_app(backend).await;
    for round in 0..6 {
        let (buyer, order, product) = awaiting_payment(&app, 3, 1).await;
        let pay_path = format!("/api/ordering/orders/{order}/pay");
        let cancel_path = format!("/api/ordering/orders/{order}/cancel");
        let admin = app.admin();
        let pay = buyer.post(&pay_path, json!({ "shouldSucceed": true }));
        let cancel = admin.post(&cancel_path, json!({}));
        let (paid, cancelled) = if round % 2 == 0 {
            tokio::join!(pay, cancel)
        } else {
            let (cancelled, paid) = tokio::join!(cancel, pay);
            (paid, cancelled)
        };
        let outcome = (paid.status, cancelled.status);
        assert!(outcome == (200, 409) || outcome == (409, 202), "round {round}: {outcome:?}");
        let expected = if paid.status == 200 { "Confirmed" } else { "Failed" };
        order_in(&buyer, &order, &[expected]).await;
        let sold = i64::from(expected == "Confirmed");
        eventually("the stock settled", Duration::from_secs(30), || async {
            (stock_of(&app, product).await == (3 - sold, 0)).then_some(())
        })
        .await;
    }
    app.stop().await;
}
}

testkit::backend_tests! {
async fn an_operator_cancels_a_checkout_from_its_page_after_confirming(backend) {
    let app = spawn_app(backend).await;
    let (buyer, order, product) = awaiting_payment(&app, 4, 1).await;
    let operator = operator(&app).await;
    let page = get(&operator, &app, &format!("/admin/orders/{order}")).await.text().await.unwrap();
    assert!(page.contains("Cancel checkout…"));
    let confirm = get(&operator, &app, &format!("/admin/orders/{order}/cancel")).await;
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("Cancel the checkout"));
    let cancelled = post_form(&operator, &app, &format!("/admin/orders/{order}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), 303);
    order_in(&buyer, &order, &["Failed"]).await;
    eventually("the stock back", Duration::from_secs(30), || async {
        (stock_of(&app, product).await == (4, 0)).then_some(())
    })
    .await;
    let again = post_form(&operator, &app, &format!("/admin/orders/{order}/cancel"), &[]).await;
    assert_eq!(again.status(), 409, "a page that says why, not a 500");
    assert!(again.text().await.unwrap().contains("does not await payment"));
    app.stop().await;
}
}

testkit::backend_tests! {
async fn checkouts_are_listed_by_state_and_stuck_with_why_they_wait(backend) {
    let app = spawn_app_with(backend, |config| Config { stuck_after: Duration::ZERO, ..config }).await;
    let (_, first, _) = awaiting_payment(&app, 10, 1).await;
    let (_, second, _) = awaiting_payment(&app, 10, 1).await;
    let admin = app.admin();
    assert_eq!(app.buyer().get("/api/ordering/checkouts").await.status, 401);
    let listed = admin.get("/api/ordering/checkouts?state=StockReserved&limit=1").await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["orderId"], first.as_str(), "least recently moved first");
    assert_eq!(items[0]["waiting"]["kind"], "payment");
    let next = listed.body["next"].as_str().expect("a next page").to_owned();
    let rest = admin.get(&format!("/api/ordering/checkouts?state=StockReserved&after={next}")).await;
    let rest: Vec<_> = rest.body["items"].as_array().unwrap().iter().map(|i| i["orderId"].clone()).collect();
    assert_eq!(rest, [json!(second)], "the next page, nothing skipped or repeated");
    let stuck = admin.get("/api/ordering/checkouts?stuck=true").await;
    assert_eq!(stuck.body["items"].as_array().unwrap().len(), 2, "not moved for 0 s");
    for bad in ["state=Lost", "after=nowhere", "limit=0", "limit=101"] {
        let reply = admin.get(&format!("/api/ordering/checkouts?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
    }

    let page = get(&operator(&app).await, &app, "/admin/checkouts?stuck=true").await.text().await.unwrap();
    assert!(page.contains("Awaiting payment until") && page.contains("Cancel…"), "{page}");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn the_diagram_counts_equal_the_apis(backend) {
    let app = spawn_app(backend).await;
    let (buyer, paid, _) = awaiting_payment(&app, 10, 1).await;
    awaiting_payment(&app, 10, 1).await;
    let answer = buyer.post(&format!("/api/ordering/orders/{paid}/pay"), json!({ "shouldSucceed": true })).await;
    assert_eq!(answer.status, 200);
    order_in(&buyer, &paid, &["Confirmed"]).await;
    let census = app.admin().get("/api/ordering/checkouts/census?windowMinutes=60").await;
    assert_eq!(census.status, 200);
    let count_of = |state: &str| {
        census.body["states"].as_array().unwrap().iter()
            .find(|s| s["state"] == state).map(|s| s["count"].as_i64().unwrap()).unwrap()
    };
    assert_eq!((count_of("StockReserved"), count_of("Confirmed")), (1, 1));
    let confirmed = census.body["moves"].as_array().unwrap().iter()
        .find(|m| m["event"] == "PaymentCompleted").unwrap()["count"].clone();
    assert_eq!(confirmed, 1);
    let page = get(&operator(&app).await, &app, "/admin/checkout").await.text().await.unwrap();
    for state in census.body["states"].as_array().unwrap() {
        let (name, count) = (state["state"].as_str().unwrap(), &state["count"]);
        let link = format!("data-state=\"{name}\">{count}</a>");
        assert!(page.contains(&link), "{link} on the page");
    }
    assert!(page.contains("PaymentCompleted · 1"), "the arrow's count");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn the_kept_figures_equal_counting_the_orders_and_checkouts_whenever_they_are_folded(backend) {
    let app = spawn_app(backend).await;
    let (buyer, paid, product) = awaiting_payment(&app, 2, 1).await;
    awaiting_payment(&app, 10, 2).await;
    let answer = buyer.post(&format!("/api/ordering/orders/{paid}/pay"), json!({ "shouldSucceed": true })).await;
    assert_eq!(answer.status, 200);
    order_in(&buyer, &paid, &["Confirmed"]).await;
    let short = buyer.post("/api/ordering/checkout", checkout_request(&product.to_string(), 5)).await;
    order_in(&buyer, short.body["orderId"].as_str().unwrap(), &["Failed"]).await;
    let both = || async { (kept_figures(&app).await, counted_figures(&app).await) };
    let (kept, counted) = within_one_day(&app, both).await;
    assert_eq!(kept, counted, "pending changes are added");
    assert_eq!(kept.0["Confirmed"], 1);
    ordering::fold_tallies(&app.state.db).await.unwrap();
    saga::fold_tallies(&app.state.db).await.unwrap();
    let (folded, counted) = within_one_day(&app, both).await;
    assert_eq!(folded, counted, "folding changes no figure");
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_moves_pending")
        .fetch_one(app.state.db.reader()).await.unwrap();
    assert_eq!(pending, 0, "all folded");
    app.stop().await;
}
}

/// What the service keeps: orders per status, revenue in cents, today's orders, failure
/// reasons, and checkouts per state.
type Figures = (
    BTreeMap<String, i64>,
    i64,
    i64,
    Vec<(String, i64)>,
    BTreeMap<String, i64>,
);

async fn kept_figures(app: &TestApp) -> Figures {
    let shop = ordering::dashboard(&app.state).await.unwrap();
    let by_status = shop
        .counts_by_status
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(status, count)| (status.to_string(), *count))
        .collect();
    let reasons = ordering::failure_reasons(&app.state).await.unwrap();
    let census = ordering::census(&app.state, Duration::from_secs(3600))
        .await
        .unwrap();
    let states = census
        .states
        .iter()
        .filter(|state| state.count > 0)
        .map(|state| (state.state.to_owned(), state.count))
        .collect();
    (
        by_status,
        shop.revenue.0,
        shop.todays_orders,
        reasons,
        states,
    )
}

async fn counted_figures(app: &TestApp) -> Figures {
    let reader = app.state.db.reader();
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status")
            .fetch_all(reader)
            .await
            .unwrap();
    let revenue: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM orders \
         WHERE status IN ('Confirmed', 'Shipped', 'Delivered')",
    )
    .fetch_one(reader)
    .await
    .unwrap();
    let today = orders_placed_today(app).await;
    let reasons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT failure_reason, COUNT(*) FROM orders WHERE status = 'Failed' GROUP BY failure_reason",
    )
    .fetch_all(reader).await.unwrap();
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM saga_instances GROUP BY state")
            .fetch_all(reader)
            .await
            .unwrap();
    (
        by_status.into_iter().collect(),
        revenue,
        today,
        reasons,
        states.into_iter().collect(),
    )
}

testkit::backend_tests! {
async fn a_poison_message_shows_as_a_dead_letter_group_and_a_group_retry_completes_the_checkouts(backend) {
    let app = spawn_app_with(backend, |config| Config { stuck_after: Duration::ZERO, ..config }).await;
    let product = stocked_product(&app, "Stove", 10).await;
    let buyer = app.buyer();
    crate::faults::poison_reservations(&app, backend).await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let placed = buyer.post("/api/ordering/checkout", checkout_request(&product, 1)).await;
        assert_eq!(placed.status, 201);
        orders.push(placed.body["orderId"].as_str().unwrap().to_owned());
    }
    let admin = app.admin();
    let groups = eventually("one group of two dead letters", Duration::from_secs(30), || async {
        let groups = admin.get("/api/messaging/dead-letters/groups").await.body;
        (groups[0]["count"] == 2).then_some(groups)
    })
    .await;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert!(groups[0]["error"].as_str().unwrap().contains("warehouse is closed"));
    let sample = groups[0]["sampleId"].as_i64().unwrap();
    let one = admin.get(&format!("/api/messaging/dead-letters/{sample}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["messageType"], "ReserveStockForOrder");
    assert_eq!(admin.get("/api/messaging/dead-letters/999999").await.status, 404);
    assert_eq!(app.buyer().get("/api/messaging/dead-letters/groups").await.status, 401);

    let operator = operator(&app).await;
    let page = get(&operator, &app, "/admin/dead-letters").await.text().await.unwrap();
    assert!(page.contains("warehouse is closed") && page.contains("Retry all…"), "{page}");
    let stuck = get(&operator, &app, "/admin/checkouts?stuck=true").await.text().await.unwrap();
    assert!(stuck.contains("A dead letter: ReserveStockForOrder"), "why they wait: {stuck}");
    let asked = get(&operator, &app, &format!("/admin/dead-letters/groups/{sample}/retry")).await;
    assert_eq!(asked.status(), 200);
    assert!(asked.text().await.unwrap().contains("Retry 2 dead letters?"));

    crate::faults::cure(&app, backend).await;
    let retried = post_form(&operator, &app, &format!("/admin/dead-letters/groups/{sample}/retry"), &[]).await;
    assert_eq!(retried.status(), 303);
    for order in &orders {
        order_in(&buyer, order, &["StockReserved"]).await;
    }
    assert_eq!(admin.get("/api/messaging/dead-letters/groups").await.body, json!([]));
    let gone = post_form(&operator, &app, &format!("/admin/dead-letters/groups/{sample}/purge"), &[]).await;
    assert_eq!(gone.status(), 404, "nothing left to purge says so");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn a_dead_letter_group_is_purged_after_asking(backend) {
    let app = spawn_app(backend).await;
    let product = stocked_product(&app, "Grill", 10).await;
    crate::faults::poison_reservations(&app, backend).await;
    let placed = app.buyer().post("/api/ordering/checkout", checkout_request(&product, 1)).await;
    assert_eq!(placed.status, 201);
    let admin = app.admin();
    let sample = eventually("a dead letter", Duration::from_secs(30), || async {
        admin.get("/api/messaging/dead-letters/groups").await.body[0]["sampleId"].as_i64()
    })
    .await;
    let operator = operator(&app).await;
    let letter = get(&operator, &app, &format!("/admin/dead-letters/{sample}")).await.text().await.unwrap();
    assert!(letter.contains("ReserveStockForOrder") && letter.contains("warehouse is closed"));
    let asked = get(&operator, &app, &format!("/admin/dead-letters/groups/{sample}/purge")).await;
    assert!(asked.text().await.unwrap().contains("Purge 1 dead letter?"));
    let purged = admin.post(&format!("/api/messaging/dead-letters/{sample}/purge-group"), json!({})).await;
    assert_eq!((purged.status, &purged.body["purged"]), (200, &json!(1)));
    assert_eq!(get(&operator, &app, "/admin/dead-letters/nope").await.status(), 404);
    crate::faults::cure(&app, backend).await;
    app.stop().await;
}
}

testkit::backend_tests! {
async fn an_admin_sees_what_is_queued_for_a_checkout_and_its_buyer_does_not(backend) {
    let app = spawn_app(backend).await;
    let (buyer, order, _) = awaiting_payment(&app, 3, 1).await;
    let path = format!("/api/ordering/orders/{order}/checkout");
    let seen = app.admin().get(&path).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body["parked"], json!([]));
    let waiting = seen.body["waiting"].as_array().expect("queued messages for an admin");
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["messageType"], "PaymentTimedOut");
    assert_eq!(waiting[0]["attempts"], 0);
    let own = buyer.get(&path).await;
    assert_eq!(own.status, 200);
    assert!(own.body.get("waiting").is_none(), "{}", own.body);
    app.stop().await;
}
}

/// The id of the category called `name`, from the public listing.
async fn category_called(app: &TestApp, name: &str) -> String {
    let categories = app.buyer().get("/api/catalog/categories").await.body;
    categories
        .as_array()
        .unwrap()
        .iter()
        .find(|category| category["name"] == name)
        .unwrap_or_else(|| panic!("a category called {name}: {categories}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The product form's fields with `name`, `price` and `category`, the rest left blank.
fn product_form<'a>(name: &'a str, price: &'a str, category: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", "Guards the tulips."),
        ("price", price),
        ("category", category),
        ("image_url", ""),
        ("sku", ""),
    ]
}

testkit::backend_tests! {
async fn an_operator_files_a_product_in_a_new_category_publishes_it_and_stocks_it_with_reasons(backend) {
    let app = spawn_app(backend).await;
    let operator = operator(&app).await;
    let catalog = get(&operator, &app, "/admin/catalog").await;
    assert_eq!(catalog.status(), 200);
    let catalog = catalog.text().await.unwrap();
    assert!(catalog.contains(r#"<a href="/admin/catalog" aria-current="page">Catalog</a>"#));
    assert!(catalog.contains("Products (50)") && catalog.contains("Page 1 of 2"), "paged by 25");
    assert!(catalog.contains("Electronics") && catalog.contains("Create product"));
    assert!(!catalog.contains(" style=") && !catalog.contains("<script>"), "no inline style or script");

    let created = post_form(&operator, &app, "/admin/catalog/categories",
        &[("name", "Garden"), ("description", "Tools and seeds")]).await;
    assert_eq!(created.status(), 303);
    assert_eq!(location(&created), "/admin/catalog#categories");
    let garden = category_called(&app, "Garden").await;

    let filed = post_form(&operator, &app, "/admin/catalog/products",
        &product_form("Garden Gnome", "24.50", &garden)).await;
    assert_eq!(filed.status(), 303);
    let page = location(&filed);
    let id = page.strip_prefix("/admin/catalog/products/").expect("the product's page").to_owned();
    let shown = get(&operator, &app, &page).await.text().await.unwrap();
    for text in ["<h1>Garden Gnome</h1>", "Draft", "$24.50", "Publish", "Archive", "No adjustment yet."] {
        assert!(shown.contains(text), "{text} on the product's page");
    }
    let api = format!("/api/catalog/products/{id}");
    assert_eq!(app.buyer().get(&api).await.status, 404, "a draft until published");

    let published = post_form(&operator, &app, &format!("{page}/status"), &[("status", "Published")]).await;
    assert_eq!((published.status().as_u16(), location(&published)), (303, page.clone()));
    assert_eq!(app.buyer().get(&api).await.body["status"], "Published");

    for (units, reason) in [("12", "First delivery"), ("-2", "Two broken in the shop")] {
        let adjusted = post_form(&operator, &app, &format!("{page}/stock"),
            &[("adjustment", units), ("reason", reason)]).await;
        assert_eq!(adjusted.status(), 303);
        assert_eq!(location(&adjusted), format!("{page}#stock"));
    }
    assert_eq!(stock_of(&app, id.parse().unwrap()).await, (10, 0));
    let shown = get(&operator, &app, &page).await.text().await.unwrap();
    let newest = shown.find("Two broken in the shop").expect("the second reason");
    let oldest = shown.find("First delivery").expect("the first reason");
    assert!(newest < oldest, "newest first");
    assert!(shown.contains("+12") && shown.contains(r#"<dd id="available">10"#), "{shown}");

    let edited = post_form(&operator, &app, &page, &product_form("Garden Gnome XL", "30", &garden)).await;
    assert_eq!((edited.status().as_u16(), location(&edited)), (303, page.clone()));
    let product = app.admin().get(&api).await.body;
    assert_eq!((&product["name"], &product["price"]), (&json!("Garden Gnome XL"), &json!(30.00)));
    assert!(product["sku"].as_str().unwrap().starts_with("SKU-"), "a blank SKU keeps the one made up");

    let listed = get(&operator, &app, &format!("/admin/catalog?category={garden}&status=Published"))
        .await.text().await.unwrap();
    assert!(listed.contains("Products (1)") && listed.contains("Garden Gnome XL"), "{listed}");
    let drafts = get(&operator, &app, &format!("/admin/catalog?category={garden}&status=Draft"))
        .await.text().await.unwrap();
    assert!(drafts.contains("No product matches."));

    let renamed = post_form(&operator, &app, &format!("/admin/catalog/categories/{garden}"),
        &[("name", "Garden & Patio"), ("description", "")]).await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(app.admin().get(&api).await.body["categoryName"], "Garden & Patio");
    let archived = post_form(&operator, &app, &format!("{page}/status"), &[("status", "Archived")]).await;
    assert_eq!(archived.status(), 303);
    assert_eq!(app.buyer().get(&api).await.status, 404, "archived: no longer sold");
    app.stop().await;
}
}

/// A console form post refused: (path, form, status, what the page says).
type Refusal<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

testkit::backend_tests! {
async fn catalog_mistakes_in_the_console_are_pages_that_say_why(backend) {
    let app = spawn_app(backend).await;
    let stranger = browser();
    let asked = get(&stranger, &app, "/admin/catalog").await;
    assert_eq!(location(&asked), "/admin/sign-in?next=/admin/catalog", "sign in first");
    let posted = post_form(&stranger, &app, "/admin/catalog/categories", &[("name", "Sneaky")]).await;
    assert_eq!(posted.status(), 303, "to the sign-in form, not written");

    let operator = operator(&app).await;
    let books = category_called(&app, "Books").await;
    let lamp = stocked_product(&app, "Lamp", 3).await;
    let page = format!("/admin/catalog/products/{lamp}");
    let refusals: [Refusal; 9] = [
        ("/admin/catalog/products", product_form("Gnome", "twelve", &books), 400,
         "Price must be an amount in dollars like 12.99"),
        ("/admin/catalog/products", product_form("Gnome", "0", &books), 400,
         "Price must be more than 0"),
        ("/admin/catalog/products", product_form(" ", "5", &books), 400, "Name must be 1 to 200"),
        ("/admin/catalog/categories", vec![("name", "books")], 409, "Another category is already called"),
        ("/admin/catalog/categories", vec![("name", "")], 400, "Name must be 1 to 200"),
        (&page, product_form("Lamp", "-1", &books), 400, "Price must be more than 0"),
        ("/admin/catalog/products/x/status", vec![("status", "Published")], 404, "Product not found"),
        ("/admin/catalog/products", product_form("Gnome", "5", "nowhere"), 422, "is not a category"),
        ("/admin/catalog/categories/x", vec![("name", "Nowhere")], 404, "Category not found"),
    ];
    for (path, form, status, why) in &refusals {
        let refused = post_form(&operator, &app, path, form).await;
        assert_eq!(refused.status(), *status, "{path} {form:?}");
        let text = refused.text().await.unwrap();
        assert!(text.contains(why), "{why} for {path} {form:?}: {text}");
        assert!(text.contains("Back to the"), "a way back");
    }
    let stock = format!("{page}/stock");
    let without_reason = post_form(&operator, &app, &stock, &[("adjustment", "5"), ("reason", " ")]).await;
    assert_eq!(without_reason.status(), 400);
    let text = without_reason.text().await.unwrap();
    assert!(text.contains("Reason is required.") && text.contains(&format!(r#"href="{page}""#)), "{text}");
    let too_many = post_form(&operator, &app, &stock, &[("adjustment", "-5"), ("reason", "Lost")]).await;
    assert_eq!(too_many.status(), 422);
    assert!(too_many.text().await.unwrap().contains("would leave -2 on hand"));
    let zero = post_form(&operator, &app, &stock, &[("adjustment", "0"), ("reason", "Nothing")]).await;
    assert_eq!(zero.status(), 400);
    let status = post_form(&operator, &app, &format!("{page}/status"), &[("status", "Sold")]).await;
    assert_eq!(status.status(), 400);
    assert_eq!(stock_of(&app, lamp.parse().unwrap()).await, (3, 0), "nothing written");

    for (path, status) in [
        ("/admin/catalog?status=Sold".to_owned(), 400),
        ("/admin/catalog?category=nope".to_owned(), 400),
        ("/admin/catalog?page=0".to_owned(), 400),
        (format!("/admin/catalog/products/{}", uuid::Uuid::new_v4()), 404),
        ("/admin/catalog/products/nope".to_owned(), 404),
        (format!("{page}?page=-1"), 400),
    ] {
        assert_eq!(get(&operator, &app, &path).await.status(), status, "{path}");
    }
    let cross_site = operator
        .post(format!("{}/admin/catalog/categories", app.base))
        .header("origin", "https://evil.example")
        .form(&[("name", "Evil")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let names = app.buyer().get("/api/catalog/categories").await.body;
    assert_eq!(names.as_array().unwrap().len(), 8, "no category was written: {names}");
    app.stop().await;
}
}

testkit::backend_tests! {
async fn admins_search_orders_by_number_email_status_and_day_a_page_at_a_time(backend) {
    let app = spawn_app(backend).await;
    let (buyer, first, _) = awaiting_payment(&app, 10, 1).await;
    let (_, second, _) = awaiting_payment(&app, 10, 1).await;
    let admin = app.admin();
    assert_eq!(app.buyer().get("/api/ordering/orders/search").await.status, 401);
    let number = buyer.get(&format!("/api/ordering/orders/{first}")).await.body["orderNumber"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let found = admin.get(&format!("/api/ordering/orders/search?q={number}")).await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    assert_eq!(found.body["items"][0]["id"], first.as_str());
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    let by_email = admin.get("/api/ordering/orders/search?q=ada%40example.com&limit=1").await;
    assert_eq!(by_email.body["items"][0]["id"], second.as_str(), "newest first");
    let next = by_email.body["next"].as_str().expect("a second page").to_owned();
    let rest = admin
        .get(&format!("/api/ordering/orders/search?q=ada%40example.com&limit=1&after={next}"))
        .await;
    assert_eq!(rest.body["items"][0]["id"], first.as_str());
    assert!(rest.body["next"].is_null(), "the last page");
    let today = admin.get("/api/ordering/orders/search?status=StockReserved&placedFrom=2000-01-01").await;
    assert_eq!(today.body["items"].as_array().unwrap().len(), 2);
    let none = admin.get("/api/ordering/orders/search?placedTo=2000-01-01").await;
    assert_eq!(none.body["items"], json!([]));
    for bad in ["after=nowhere", "placedFrom=2026-02-30", "placedTo=", "limit=0"] {
        let reply = admin.get(&format!("/api/ordering/orders/search?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
    }
    app.stop().await;
}
}
