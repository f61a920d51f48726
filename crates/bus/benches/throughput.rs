//! Messages per second through the bus on SQLite: a no-op consumer and one that updates a row,
//! one message per transaction and 64 per transaction, with `synchronous=FULL` and `NORMAL`.
//!
//! `cargo bench -p bus --bench throughput` (set `BUS_BENCH_MESSAGES` to change the count).
//! It prints a markdown table; docs/benchmarks.md holds a copy.

use std::sync::Arc;
use std::time::Instant;

use bus::{Bus, BusConfig, ConsumeError, Consumer, Envelope, Message, Tx, async_trait};

use serde::{Deserialize, Serialize};
use storage::{Db, DbOptions, Synchronous};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct Tick {
    id: Uuid,
}

impl Message for Tick {
    const TYPE: &'static str = "Tick";
    fn correlation_id(&self) -> Uuid {
        self.id
    }
}

/// Does nothing: the cost of the bus alone.
struct Noop;

#[async_trait]
impl Consumer for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn subscriptions(&self) -> Vec<&'static str> {
        vec![Tick::TYPE]
    }
    async fn consume(&self, _: &Envelope, _: &mut Tx<'_>) -> Result<(), ConsumeError> {
        Ok(())
    }
}

/// Updates one of 100 counter rows: the smallest real effect.
struct Counter;

#[async_trait]
impl Consumer for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn subscriptions(&self) -> Vec<&'static str> {
        vec![Tick::TYPE]
    }
    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let row = i64::from(message.correlation_id.as_bytes()[15] % 100);
        sqlx::query("UPDATE counters SET n = n + 1 WHERE id = $1")
            .bind(row)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

async fn measure(
    sync: Synchronous,
    update_row: bool,
    batch_size: usize,
    messages: usize,
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut options = DbOptions::new(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ));
    options.synchronous = sync;
    let db = Db::connect(&options).await.unwrap();
    Bus::migrate(&db).await.unwrap();
    prepare_counters(&db).await;
    let consumer: Arc<dyn Consumer> = if update_row {
        Arc::new(Counter)
    } else {
        Arc::new(Noop)
    };
    let config = BusConfig {
        batch_size,
        ..BusConfig::default()
    };
    let bus = Bus::builder(db.clone())
        .config(config)
        .consumer(consumer)
        .build();
    // Queued up front in a few large transactions, so that only consuming is timed.
    for chunk in 0..messages.div_ceil(PRELOAD_CHUNK) {
        let mut tx = bus.begin().await.unwrap();
        for _ in 0..PRELOAD_CHUNK.min(messages - chunk * PRELOAD_CHUNK) {
            tx.publish(&Tick { id: Uuid::now_v7() }).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let started = Instant::now();
    let handled = bus.run_pending().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(handled, messages);
    assert_eq!(bus.stats().completed, messages as u64, "{:?}", bus.stats());
    if update_row {
        let total: i64 = sqlx::query_scalar("SELECT SUM(n) FROM counters")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(total, messages as i64, "every message updated its row once");
    }
    db.close().await;
    Measured {
        rate: messages as f64 / elapsed,
        seconds: elapsed,
    }
}

/// Messages published per preloading transaction.
const PRELOAD_CHUNK: usize = 5_000;

struct Measured {
    rate: f64,
    seconds: f64,
}

async fn prepare_counters(db: &Db) {
    db.execute(sqlx::query(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
    ))
    .await
    .unwrap();
    for id in 0..100i64 {
        db.execute(sqlx::query("INSERT INTO counters (id, n) VALUES ($1, 0)").bind(id))
            .await
            .unwrap();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a list; there are no tests here
    }
    let messages: usize = std::env::var("BUS_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    println!(
        "{messages} messages per row; one worker; SQLite {} in WAL mode; database in {}\n",
        sqlite_version().await,
        std::env::temp_dir().display()
    );
    println!("| synchronous | consumer | batch | messages/s | seconds |");
    println!("|---|---|---:|---:|---:|");
    for (sync, sync_name) in [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")] {
        for (update_row, consumer) in [(false, "no-op"), (true, "update one row")] {
            for batch in [1, 64] {
                let Measured { rate, seconds } = measure(sync, update_row, batch, messages).await;
                println!(
                    "| {sync_name} | {consumer} | {batch} | {} | {seconds:.2} |",
                    thousands(rate)
                );
            }
        }
    }
}

/// The version of the SQLite library sqlx links.
async fn sqlite_version() -> String {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("version.db").display());
    let db = Db::connect(&DbOptions::new(url)).await.unwrap();
    let version = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(db.reader())
        .await
        .unwrap();
    db.close().await;
    version
}

/// `12345.6` as `12,346`, as the table in docs/benchmarks.md shows it.
fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
