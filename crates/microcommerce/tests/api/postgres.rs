//! PostgreSQL only: several instances on one database, and a database restart under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use microcommerce_service::config::Config;

use crate::helpers::{
    Backend, Client, KillOnDrop, TestApp, eventually, spawn_instance, stocked_product,
};

const SETTLE: Duration = Duration::from_secs(90);

fn order_body(product: &str) -> Value {
    json!({
        "email": "ada@example.com",
        "shippingAddress": { "name": "Ada", "email": "ada@example.com", "street": "1 Loop",
            "city": "London", "state": "LDN", "zipCode": "N1" },
        "items": [{ "productId": product, "quantity": 1 }]
    })
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.db.reader())
        .await
        .unwrap()
}

/// Messages each settled order causes, at most one inbox row per (consumer, message) (a
/// message handed over within a worker batch is never queued, so never remembered):
/// confirmed: CheckoutStarted, ReserveStockForOrder, StockReservationCompleted (saga and
/// order status), PaymentCompleted, ConfirmOrder, DeductStock = 7; failed for stock:
/// CheckoutStarted, ReserveStockForOrder, StockReservationFailed, OrderFailed = 4.
fn most_inbox_rows(confirmed: i64, failed_for_stock: i64) -> i64 {
    confirmed * 7 + failed_for_stock * 4
}

/// Every message handled: the queue is empty (a batch deletes its rows when it commits, and
/// whatever it hands over exists only inside it; the timeouts of paid orders are withdrawn)
/// and no reservation is still held.
async fn bus_settled(app: &TestApp) -> bool {
    scalar(app, "SELECT COUNT(*) FROM bus_queue").await == 0
        && scalar(
            app,
            "SELECT COUNT(*) FROM stock_reservations WHERE status = 'Held'",
        )
        .await
            == 0
}

#[tokio::test]
async fn three_instances_on_one_database_confirm_exactly_the_stock_and_apply_each_effect_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path()).await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(spawn_instance(url.clone(), tempfile::tempdir().unwrap(), |c| c).await);
    }
    let product = stocked_product(&instances[0], "Limited Edition", 50).await;
    let buyers = (0..200).map(|n| {
        let buyer = instances[n % 3].buyer();
        let product = product.clone();
        tokio::spawn(async move { check_out_and_pay(&buyer, &product).await })
    });
    let outcomes: Vec<String> = futures_util::future::join_all(buyers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let confirmed = outcomes.iter().filter(|o| *o == "Confirmed").count() as i64;
    let failed = outcomes.iter().filter(|o| *o == "Failed").count() as i64;
    assert_eq!((confirmed, failed), (50, 150));

    assert_each_effect_once(&instances[0], &product, 50, 150).await;
    for instance in instances {
        instance.stop().await;
    }
}

/// Once every message is handled: `product` (all its stock sold) was deducted once per
/// confirmed order, each checkout wrote its timeline once, each payment was recorded once,
/// and nothing is left queued, dead-lettered or parked.
async fn assert_each_effect_once(app: &TestApp, product: &str, confirmed: i64, failed: i64) {
    eventually("every message processed", SETTLE, || async {
        bus_settled(app).await.then_some(())
    })
    .await;
    assert!(
        scalar(app, "SELECT COUNT(*) FROM bus_inbox").await <= most_inbox_rows(confirmed, failed)
    );
    let stock = app
        .buyer()
        .get(&format!("/api/inventory/stock/{product}"))
        .await
        .body;
    assert_eq!(
        (
            stock["quantityOnHand"].as_i64(),
            stock["reservedQuantity"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        scalar(
            app,
            "SELECT COUNT(*) FROM stock_reservations WHERE status = 'Deducted'"
        )
        .await,
        confirmed
    );
    assert_eq!(
        scalar(
            app,
            "SELECT COUNT(*) FROM stock_reservations WHERE status <> 'Deducted'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM saga_timeline").await,
        confirmed * 3 + failed * 2
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM payments").await,
        confirmed
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM bus_queue").await,
        0,
        "timeouts withdrawn"
    );
    assert_eq!(
        scalar(app, "SELECT COUNT(*) FROM bus_dead_letters").await,
        0
    );
    assert_eq!(scalar(app, "SELECT COUNT(*) FROM saga_parked").await, 0);
}

/// Where the paused instance's child process finds its database, and says where it listens.
const CHILD_DB: &str = "MICROCOMMERCE_PAUSED_CHILD_DB";
const CHILD_ADDRESS: &str = "MICROCOMMERCE_PAUSED_CHILD_ADDRESS";

fn signal(child: &KillOnDrop, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{name}"), child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{name}");
}

#[tokio::test]
async fn an_instance_paused_past_its_lock_timeout_applies_nothing_twice_and_strands_no_order() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path()).await;
    let working = spawn_instance(url.clone(), tempfile::tempdir().unwrap(), |c| c).await;
    let product = stocked_product(&working, "Lantern", 40).await;
    let address_file = dir.path().join("paused-instance-address");
    let paused = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "postgres::paused_instance_child",
                "--nocapture",
            ])
            .env(CHILD_DB, &url)
            .env(CHILD_ADDRESS, &address_file)
            .spawn()
            .unwrap(),
    );
    let paused_base = eventually("the second instance to serve", SETTLE, || {
        let written = std::fs::read_to_string(&address_file).ok();
        std::future::ready(written.filter(|base| base.ends_with('\n')))
    })
    .await;
    let paused_client = Client::at(paused_base.trim());

    // Half the buyers on the instance about to pause, then the rest on the one that works on
    // while it is stopped, for longer than its transactions may wait for it.
    let seen = Arc::new(Seen::default());
    let deadline = Instant::now() + 2 * SETTLE;
    let buyers_of = |client: &Client, count: usize| {
        (0..count)
            .map(|round| {
                let (buyer, product, seen) =
                    (client.another_buyer(), product.clone(), seen.clone());
                tokio::spawn(async move {
                    resilient_checkout(&buyer, &product, round, &seen, deadline).await
                })
            })
            .collect::<Vec<_>>()
    };
    let on_paused = buyers_of(&paused_client, 30);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&paused, "STOP");
    let on_working = buyers_of(&working.buyer(), 30);
    // The working instance finishes its buyers while the other is still stopped: the server
    // ended the stopped one's transactions and freed its locks.
    let finished = tokio::time::timeout(SETTLE, futures_util::future::join_all(on_working))
        .await
        .expect("the working instance's buyers finish while the other is stopped");
    signal(&paused, "CONT");
    let resumed = futures_util::future::join_all(on_paused).await;
    let orders: Vec<_> = finished
        .into_iter()
        .chain(resumed)
        .map(Result::unwrap)
        .collect();
    assert_eq!(seen.server_errors.load(Ordering::SeqCst), 0, "no 500s");
    assert_eq!(
        seen.lost_connections.load(Ordering::SeqCst),
        0,
        "every request answered"
    );
    assert!(orders.iter().all(Option::is_some));

    assert_each_effect_once(&working, &product, 40, 20).await;
    let confirmed = scalar(
        &working,
        "SELECT COUNT(*) FROM orders WHERE status = 'Confirmed'",
    )
    .await;
    let failed = scalar(
        &working,
        "SELECT COUNT(*) FROM orders WHERE status = 'Failed'",
    )
    .await;
    assert_eq!((confirmed, failed), (40, 20));
    working.stop().await;
}

/// The instance the paused-instance test starts in a process of its own, to stop and continue
/// it with signals: serves on the test's database until killed.
#[tokio::test]
#[ignore = "child process of the paused-instance test; run by it, not on its own"]
async fn paused_instance_child() {
    let (Ok(url), Ok(address_file)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ADDRESS))
    else {
        panic!("run by the paused-instance test only");
    };
    // Its transactions may wait for it one second: the test stops it for longer.
    let instance = spawn_instance(url, tempfile::tempdir().unwrap(), |config| Config {
        statement_timeout: Duration::from_secs(1),
        ..config
    })
    .await;
    let written = format!("{}\n", instance.base);
    std::fs::write(&address_file, written).unwrap();
    std::future::pending::<()>().await;
}

/// Checks out one unit, pays if stock was reserved; returns the final status.
async fn check_out_and_pay(buyer: &Client, product: &str) -> String {
    let placed = buyer
        .post("/api/ordering/checkout", order_body(product))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let order = placed.body["orderId"].as_str().unwrap().to_owned();
    let path = format!("/api/ordering/orders/{order}");
    let status = settle(buyer, &path, &["StockReserved", "Failed"]).await;
    if status == "StockReserved" {
        let paid = buyer
            .post(&format!("{path}/pay"), json!({ "shouldSucceed": true }))
            .await;
        assert_eq!(paid.status, 200, "{:?}", paid.body);
    }
    settle(buyer, &path, &["Confirmed", "Failed"]).await
}

async fn settle(buyer: &Client, path: &str, statuses: &[&str]) -> String {
    eventually("the order to settle", SETTLE, || async {
        let order = buyer.get(path).await;
        let status = order.body["status"].as_str().unwrap_or_default().to_owned();
        statuses.contains(&status.as_str()).then_some(status)
    })
    .await
}

#[tokio::test]
async fn a_database_restart_under_load_gives_no_500s_and_loses_nothing() {
    let Some(server) = testkit::required("PostgreSQL", testkit::postgres::Server::start()) else {
        return;
    };
    let server = Arc::new(server);
    let url = server.fresh_database().await;
    let app = spawn_instance(url, tempfile::tempdir().unwrap(), |mut config| {
        config.db_pool_size = 20;
        config
    })
    .await;
    let product = stocked_product(&app, "Restart Special", 1_000).await;
    let seen = Arc::new(Seen::default());
    let outage_over = Arc::new(AtomicBool::new(false));
    // The buyers check out until the outage is over and twice more, so that load meets it.
    let buyers = (0..12).map(|_| {
        let (buyer, product) = (app.buyer(), product.clone());
        let (seen, outage_over) = (seen.clone(), outage_over.clone());
        tokio::spawn(async move {
            let mut orders = Vec::new();
            let mut after = 0;
            for round in 0..1_000 {
                let deadline = Instant::now() + Duration::from_secs(60);
                orders.extend(resilient_checkout(&buyer, &product, round, &seen, deadline).await);
                after += usize::from(outage_over.load(Ordering::SeqCst));
                if after == 2 {
                    break;
                }
            }
            orders
        })
    });
    let outage = {
        let (server, seen, outage_over) = (server.clone(), seen.clone(), outage_over.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            seen.fault.store(true, Ordering::SeqCst);
            server.stop();
            tokio::time::sleep(Duration::from_secs(3)).await;
            server.restart().expect("PostgreSQL starts again");
            seen.fault.store(false, Ordering::SeqCst);
            outage_over.store(true, Ordering::SeqCst);
        })
    };
    let orders: Vec<String> = futures_util::future::join_all(buyers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    outage.await.unwrap();
    let sent_during = seen.sent_during_fault.load(Ordering::SeqCst);
    eprintln!(
        "{} orders placed; {sent_during} requests sent while the database was down; {} answers were 503",
        orders.len(),
        seen.unavailable.load(Ordering::SeqCst)
    );
    assert!(
        sent_during >= 1,
        "the load met the outage: no request was sent during it"
    );
    assert_eq!(
        seen.server_errors.load(Ordering::SeqCst),
        0,
        "no 5xx other than 503"
    );
    assert_eq!(
        seen.lost_connections.load(Ordering::SeqCst),
        0,
        "every request answered"
    );

    eventually("every saga terminal", SETTLE, || async {
        let active = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM saga_instances WHERE completed_at IS NULL",
        )
        .fetch_one(app.state.db.reader())
        .await
        .ok()?;
        (active == 0).then_some(())
    })
    .await;
    let total = scalar(&app, "SELECT COUNT(*) FROM orders").await;
    assert_eq!(
        total,
        orders.len() as i64,
        "one order per checkout, retries included"
    );
    // Sagas finish before their last messages (ConfirmOrder, DeductStock) are handled: wait
    // until every order is confirmed and the bus holds nothing more.
    let confirmed_now = || {
        scalar(
            &app,
            "SELECT COUNT(*) FROM orders WHERE status = 'Confirmed'",
        )
    };
    let settled = tokio::time::timeout(SETTLE, async {
        loop {
            if confirmed_now().await == total && bus_settled(&app).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let confirmed = confirmed_now().await;
    if settled.is_err() {
        panic!(
            "messages did not settle: {}",
            diagnose(&app, confirmed, total).await
        );
    }
    assert_eq!(
        confirmed, total,
        "stock was plentiful: every order confirmed"
    );
    assert!(scalar(&app, "SELECT COUNT(*) FROM bus_inbox").await <= most_inbox_rows(confirmed, 0));
    let (on_hand, reserved): (i64, i64) =
        sqlx::query_as("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
            .bind(&product)
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
    assert_eq!(
        (on_hand, reserved),
        (1_000 - confirmed, 0),
        "stock conserved"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM bus_dead_letters").await,
        0
    );
    app.stop().await;
}

/// What the bus holds, to explain a run that did not settle.
async fn diagnose(app: &TestApp, confirmed: i64, total: i64) -> String {
    let inbox: Vec<(String, i64)> = sqlx::query_as(
        "SELECT consumer, COUNT(*) FROM bus_inbox GROUP BY consumer ORDER BY consumer",
    )
    .fetch_all(app.state.db.reader())
    .await
    .unwrap_or_default();
    let queue: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT consumer, message_type, attempts, last_error FROM bus_queue ORDER BY id LIMIT 20",
    )
    .fetch_all(app.state.db.reader())
    .await
    .unwrap_or_default();
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status")
            .fetch_all(app.state.db.reader())
            .await
            .unwrap_or_default();
    format!(
        "confirmed {confirmed} of {total}; inbox by consumer {inbox:?}; queue {queue:?}; \
         orders {statuses:?}"
    )
}

/// What the buyers of a test under a fault saw: every answer and every lost connection counted,
/// and the requests sent while the fault lasted, to prove that the load met it.
#[derive(Default)]
struct Seen {
    /// Answers 5xx other than 503: each a defect.
    server_errors: AtomicUsize,
    /// Answers 503: the service saying "not now", which the buyers retry.
    unavailable: AtomicUsize,
    /// Requests that got no answer: the connection failed or the request ran out of time.
    lost_connections: AtomicUsize,
    /// Requests sent while [`Seen::fault`] was true.
    sent_during_fault: AtomicUsize,
    /// True while the fault lasts (the database down).
    fault: AtomicBool,
}

impl Seen {
    /// Sends `request`, bounded by `deadline`; the status and JSON body, or `None` (counted)
    /// when no answer came.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Option<(u16, Value)> {
        if self.fault.load(Ordering::SeqCst) {
            self.sent_during_fault.fetch_add(1, Ordering::SeqCst);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = match request.timeout(left).send().await {
            Ok(reply) => {
                let status = reply.status().as_u16();
                reply
                    .bytes()
                    .await
                    .ok()
                    .map(|body| (status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
            }
            Err(_) => None,
        };
        match answer {
            None => _ = self.lost_connections.fetch_add(1, Ordering::SeqCst),
            Some((503, _)) => _ = self.unavailable.fetch_add(1, Ordering::SeqCst),
            Some((status, _)) if status >= 500 => {
                _ = self.server_errors.fetch_add(1, Ordering::SeqCst)
            }
            Some(_) => {}
        }
        answer
    }
}

/// What one attempt of a step came to.
enum Step<T> {
    Done(T),
    Again,
    GiveUp,
}

/// What a buyer makes of an answer that is not the one awaited: no answer or a 503 is tried
/// again, another 5xx (counted by [`Seen::send`]) ends the checkout, anything else is a defect.
fn otherwise<T>(what: &str, answer: &Option<(u16, Value)>) -> Step<T> {
    match answer {
        None | Some((503, _)) => Step::Again,
        Some((status, _)) if *status >= 500 => Step::GiveUp,
        Some((status, body)) => panic!("{what} answered {status}: {body}"),
    }
}

/// Runs `step` until it is done or gives up, pausing `pause` between attempts; fails the test
/// when still trying at `deadline`.
async fn until_done<T, Fut>(
    what: &str,
    deadline: Instant,
    pause: Duration,
    mut step: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: std::future::Future<Output = Step<T>>,
{
    loop {
        match step().await {
            Step::Done(value) => return Some(value),
            Step::GiveUp => return None,
            Step::Again => {}
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still retrying at its deadline"
        );
        tokio::time::sleep(pause).await;
    }
}

/// One checkout, paid once stock is reserved, that retries 503s and lost connections until
/// `deadline` (with the same idempotency key, so a retried checkout never creates a second
/// order) and ends at any other 5xx; the order, unless it ended so.
async fn resilient_checkout(
    buyer: &Client,
    product: &str,
    round: usize,
    seen: &Seen,
    deadline: Instant,
) -> Option<String> {
    let key = format!("{}-{round}", uuid::Uuid::now_v7());
    let url = |path: &str| format!("{}{path}", buyer.base());
    let order = until_done(
        "a checkout",
        deadline,
        Duration::from_millis(100),
        || async {
            let request = buyer.http.post(url("/api/ordering/checkout"));
            let request = request
                .header("Idempotency-Key", &key)
                .json(&order_body(product));
            match seen.send(request, deadline).await {
                Some((201, body)) => {
                    Step::Done(body["orderId"].as_str().expect("order id").to_owned())
                }
                answer => otherwise("the checkout", &answer),
            }
        },
    )
    .await?;
    let path = format!("/api/ordering/orders/{order}");
    let reserved = until_done(
        "an order read",
        deadline,
        Duration::from_millis(50),
        || async {
            let answer = seen.send(buyer.http.get(url(&path)), deadline).await;
            match &answer {
                Some((200, body)) => match body["status"].as_str() {
                    Some("StockReserved") => Step::Done(true),
                    Some("Failed" | "Confirmed") => Step::Done(false),
                    _ => Step::Again,
                },
                _ => otherwise("the order read", &answer),
            }
        },
    )
    .await?;
    if !reserved {
        return Some(order);
    }
    until_done(
        "a payment",
        deadline,
        Duration::from_millis(100),
        || async {
            let request = buyer.http.post(url(&format!("{path}/pay")));
            match seen
                .send(request.json(&json!({ "shouldSucceed": true })), deadline)
                .await
            {
                // A payment retried after its answer was lost finds itself recorded: 409.
                Some((200 | 409, _)) => Step::Done(()),
                answer => otherwise("the payment", &answer),
            }
        },
    )
    .await?;
    Some(order)
}

/// The service on a database reached over TLS with the server's certificate verified: a
/// checkout goes through, and every connection it opened (the shared pool, the workers' pool,
/// the listener) is encrypted.
#[tokio::test]
async fn a_checkout_goes_through_over_tls_with_every_connection_encrypted() {
    let Some(server) = testkit::required(
        "PostgreSQL with TLS (initdb, postgres and openssl)",
        testkit::postgres::shared_tls(),
    ) else {
        return;
    };
    let plain = server.fresh_database().await;
    let database = plain.rsplit('/').next().unwrap();
    let ca = &server.certificates().unwrap().ca;
    let url = format!(
        "postgres://postgres@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}",
        server.port(),
        ca.display()
    );
    let app = spawn_instance(url, tempfile::tempdir().unwrap(), |c| c).await;
    let product = stocked_product(&app, "Sealed Parcel", 5).await;
    assert_eq!(check_out_and_pay(&app.buyer(), &product).await, "Confirmed");
    let connections = |encrypted: bool| {
        let app = &app;
        async move {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.datname = current_database() AND s.ssl = $1",
            )
            .bind(encrypted)
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
            count
        }
    };
    assert_eq!(connections(false).await, 0, "no connection in the clear");
    assert!(connections(true).await >= 2, "a pool and the listener");
    app.stop().await;
}
