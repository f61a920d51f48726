//! The benchmark as a smoke test: a few buyers for a few checkouts, invariants checked and the
//! report produced. Speed is never asserted here; `docs/benchmarks.md` has the numbers. The
//! command line's own run is in `crates/cli/tests/cli.rs`. The PostgreSQL run needs a local
//! server (SKIPPED without one, failing in CI).

use std::time::Duration;

use bench::{BenchOptions, run};

fn small(engine: bool, hot_product: bool) -> BenchOptions {
    BenchOptions {
        urls: Vec::new(),
        instances: 1,
        db_latency: None,
        admin_token: None,
        database_url: None,
        synchronous: storage::Synchronous::Normal,
        // The engine run exercises the writer without binding it to a CPU.
        pin_writer: !engine,
        workers: 1,
        batch_size: 64,
        hand_over: true,
        metrics: true,
        traces: false,
        buyers: 4,
        duration: Duration::from_secs(30),
        warmup: Duration::ZERO,
        checkouts: Some(20),
        stored_orders: None,
        items: 2,
        hot_product,
        hot_stock: 5,
        decline_ratio: 0.25,
        seed: 7,
        engine,
        baseline: !engine,
        progress: false,
        time_console: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_over_http_keeps_the_invariants_and_reports_every_key() {
    let report = run(&small(false, false)).await.expect("the bench runs");
    assert!(report.invariants_ok(), "{}", report.table());
    let json = report.json();
    for key in [
        "checkoutsPerSec",
        "requestsPerSec",
        "latencyMs",
        "outcomes",
        "errors",
        "invariantsOk",
        "baselineCheckoutsPerSec",
        "ratio",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    for key in ["p50", "p95", "p99", "max"] {
        assert!(json["latencyMs"][key].is_number(), "{key}");
    }
    assert_eq!(json["checkouts"], 20, "{}", report.table());
    let outcomes = json["outcomes"].as_object().unwrap();
    let total: u64 = outcomes.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 20);
    assert!(
        json["errors"].as_object().unwrap().is_empty(),
        "{}",
        report.table()
    );
    // The embedded server's metrics give the CPU the run cost; SQLite has no server of its own.
    let cpu = &json["cpuMsPerCheckout"];
    assert!(cpu["service"].as_f64().is_some_and(|ms| ms > 0.0), "{cpu}");
    assert!(cpu["postgres"].is_null(), "{cpu}");
    assert!(
        report.table().contains("CPU/checkout"),
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_delay_line_after_a_warm_up_the_service_and_the_delay_line_are_counted_apart() {
    let Some(server) =
        testkit::required("PostgreSQL (initdb, postgres)", testkit::postgres::shared())
    else {
        return;
    };
    let options = BenchOptions {
        database_url: Some(server.fresh_database().await),
        db_latency: Some(Duration::from_millis(2)),
        instances: 2,
        warmup: Duration::from_millis(500),
        ..small(false, false)
    };
    let report = run(&options).await.expect("the bench runs");
    // The warm-up's checkouts count for the stock only, not in the figures.
    assert!(report.invariants_ok(), "{}", report.table());
    assert_eq!(report.json()["checkouts"], 20, "{}", report.table());
    let cpu = &report.json()["cpuMsPerCheckout"];
    for part in ["service", "postgres", "delayLine"] {
        assert!(
            cpu[part].as_f64().is_some_and(|ms| ms > 0.0),
            "{part}: {cpu}"
        );
    }
    assert_eq!(
        cpu["serviceCounts"],
        "the one process: server and buyers, without the delay line"
    );
    assert!(
        report.table().contains("ms the delay line"),
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_product_in_process_never_sells_more_than_its_stock() {
    let report = run(&small(true, true)).await.expect("the bench runs");
    assert!(report.invariants_ok(), "{}", report.table());
    let json = report.json();
    let confirmed = json["outcomes"]["Confirmed"].as_u64().unwrap_or(0);
    assert!(confirmed <= 5, "{}", report.table());
    let shortages: u64 = json["outcomes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(outcome, _)| outcome.contains("Insufficient stock"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert!(
        shortages >= 10,
        "20 checkouts for 5 units: {}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_orders_are_whole_copies_of_real_checkouts_and_a_full_database_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stored.db").display());
    let options = BenchOptions {
        database_url: Some(url.clone()),
        stored_orders: Some(1_000),
        baseline: false,
        ..small(false, false)
    };
    let report = run(&options).await.expect("the bench runs");
    assert!(report.invariants_ok(), "{}", report.table());
    let stored = report.json()["storedOrders"].as_u64().unwrap();
    assert!((1_000..1_050).contains(&stored), "{stored} orders stored");

    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let copies = count("SELECT COUNT(*) FROM orders WHERE id LIKE '0000%'").await;
    assert!(copies > 900, "{copies} copies");
    // Every copied order is whole: its lines, its payment, its saga instance and timeline.
    for (what, sql) in [
        (
            "lines",
            "SELECT COUNT(*) FROM orders o WHERE o.id LIKE '0000%' AND NOT EXISTS \
                   (SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
        ),
        (
            "payment",
            "SELECT COUNT(*) FROM orders o WHERE o.id LIKE '0000%' AND o.paid_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)",
        ),
        (
            "saga",
            "SELECT COUNT(*) FROM orders o WHERE o.id LIKE '0000%' AND NOT EXISTS \
                  (SELECT 1 FROM saga_instances s WHERE s.correlation_id = o.id \
                   AND s.completed_at IS NOT NULL)",
        ),
        (
            "timeline",
            "SELECT COUNT(*) FROM orders o WHERE o.id LIKE '0000%' AND NOT EXISTS \
                      (SELECT 1 FROM saga_timeline t WHERE t.correlation_id = o.id)",
        ),
        (
            "stock",
            "SELECT COUNT(*) FROM orders o WHERE o.id LIKE '0000%' AND NOT EXISTS \
                   (SELECT 1 FROM stock_reservations r WHERE r.order_id = o.id)",
        ),
    ] {
        assert_eq!(count(sql).await, 0, "copied orders without their {what}");
    }

    db.close().await;

    let again = run(&BenchOptions {
        checkouts: Some(4),
        ..options
    })
    .await
    .expect("the bench runs again");
    assert!(again.invariants_ok(), "{}", again.table());
    let reused = again.json()["storedOrders"].as_u64().unwrap();
    assert_eq!(
        reused,
        stored + 20,
        "a database holding enough orders gets no copies"
    );
}
