//! The benchmark as a smoke test: a few buyers for a few checkouts, invariants checked and the
//! report produced. Speed is never asserted here; `docs/benchmarks.md` has the numbers. The
//! command line's own run is in `crates/cli/tests/cli.rs`.

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
        buyers: 4,
        duration: Duration::from_secs(30),
        checkouts: Some(20),
        items: 2,
        hot_product,
        hot_stock: 5,
        decline_ratio: 0.25,
        seed: 7,
        engine,
        baseline: !engine,
        progress: false,
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
