//! A fresh database per test and a consumer whose behaviour each test scripts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{
    Bus, BusConfig, ConsumeError, Consumer, Envelope, Message, RetryPolicy, Tx, async_trait,
};

use serde::{Deserialize, Serialize};
use storage::{Db, DbOptions, Synchronous};
pub use testkit::{Backend, eventually};
use uuid::Uuid;

/// A database in a temporary directory, with the bus tables and an `effects` table.
pub struct TestDb {
    /// The database.
    pub db: Db,
    /// Its file's URL, to open it again after a "crash".
    pub url: String,
    dir: tempfile::TempDir,
}

impl TestDb {
    /// The test's temporary directory, for files that must live outside the database.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

pub async fn test_db(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path()).await;
    let db = open(&url).await;
    create_effects(&db).await;
    TestDb { db, url, dir }
}

/// The table every scripted consumer writes one row to per message it handles.
pub async fn create_effects(db: &Db) {
    let seq = match db.backend() {
        storage::Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        storage::Backend::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    db.execute(sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE effects (consumer TEXT NOT NULL, message_id TEXT NOT NULL, \
         correlation_id TEXT NOT NULL, n BIGINT NOT NULL, seq {seq})"
    ))))
    .await
    .unwrap();
}

/// Opens (again) the database at `url` with `synchronous=NORMAL`, the bus tables migrated.
pub async fn open(url: &str) -> Db {
    open_with(url, Synchronous::Normal).await
}

pub async fn open_with(url: &str, synchronous: Synchronous) -> Db {
    let mut options = DbOptions::new(url);
    options.synchronous = synchronous;
    let db = Db::connect(&options).await.unwrap();
    Bus::migrate(&db).await.unwrap();
    db
}

/// The test message: `n` tells messages of one correlation apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping {
    pub id: Uuid,
    pub n: u32,
}

impl Message for Ping {
    const TYPE: &'static str = "Ping";
    fn correlation_id(&self) -> Uuid {
        self.id
    }
}

/// A second type, to check subscriptions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    pub id: Uuid,
}

impl Message for Pong {
    const TYPE: &'static str = "Pong";
    fn correlation_id(&self) -> Uuid {
        self.id
    }
}

/// What a scripted consumer does with a message, after it has written its effect row.
pub enum Step {
    Apply,
    Transient,
    Permanent,
    Panic,
    /// Waits on the semaphore (a test releases it) before applying.
    Wait(Arc<tokio::sync::Semaphore>),
}

pub type Script = Arc<dyn Fn(&Envelope) -> Step + Send + Sync>;

/// A consumer that writes one `effects` row per message inside the bus transaction, then does
/// what its script says; it records the highest number of messages of one correlation id it
/// ever had in flight.
pub struct Scripted {
    pub name: String,
    pub types: Vec<&'static str>,
    pub script: Script,
    pub in_flight: Mutex<HashMap<Uuid, usize>>,
    pub max_in_flight: AtomicUsize,
    pub entered: tokio::sync::Notify,
}

impl Scripted {
    pub fn new(name: &str, types: &[&'static str], script: Script) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            types: types.to_vec(),
            script,
            in_flight: Mutex::new(HashMap::new()),
            max_in_flight: AtomicUsize::new(0),
            entered: tokio::sync::Notify::new(),
        })
    }

    pub fn applying(name: &str) -> Arc<Self> {
        Self::new(name, &[Ping::TYPE], Arc::new(|_| Step::Apply))
    }

    fn enter(&self, id: Uuid) {
        let mut in_flight = self.in_flight.lock().unwrap();
        let count = in_flight.entry(id).or_default();
        *count += 1;
        self.max_in_flight.fetch_max(*count, Ordering::SeqCst);
    }

    fn leave(&self, id: Uuid) {
        *self.in_flight.lock().unwrap().entry(id).or_default() -= 1;
    }
}

#[async_trait]
impl Consumer for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        self.types.clone()
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        self.enter(message.correlation_id);
        let n = message.decode::<Ping>().map(|p| p.n).unwrap_or_default();
        let result = async {
            sqlx::query(
                "INSERT INTO effects (consumer, message_id, correlation_id, n) VALUES ($1, $2, $3, $4)",
            )
            .bind(&self.name)
            .bind(message.message_id.to_string())
            .bind(message.correlation_id.to_string())
            .bind(i64::from(n))
            .execute(&mut **tx)
            .await?;
            self.entered.notify_one();
            match (self.script)(message) {
                Step::Apply => Ok(()),
                Step::Transient => Err(ConsumeError::transient("scripted transient failure")),
                Step::Permanent => Err(ConsumeError::permanent("scripted permanent failure")),
                Step::Panic => panic!("scripted panic"),
                Step::Wait(gate) => {
                    let _permit = gate.acquire().await.unwrap();
                    Ok(())
                }
            }
        }
        .await;
        self.leave(message.correlation_id);
        result
    }
}

/// A bus on `db` with tiny retry delays and the given consumers.
pub fn bus_with(db: &Db, consumers: &[Arc<Scripted>], config: BusConfig) -> Bus {
    consumers
        .iter()
        .fold(Bus::builder(db.clone()).config(config), |b, c| {
            b.consumer(c.clone() as Arc<dyn Consumer>)
        })
        .build()
}

/// The longest any bounded wait of these tests lasts before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A poll interval far longer than any test: only commit notifications and the scheduled
/// timer can wake the workers.
pub fn sleepy() -> BusConfig {
    BusConfig {
        poll_interval: Duration::from_secs(3600),
        ..BusConfig::default()
    }
}

/// Fast retries, three attempts.
pub fn quick_retries() -> BusConfig {
    BusConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            jitter: 0.0,
        },
        ..BusConfig::default()
    }
}

pub async fn publish(bus: &Bus, message: &impl Message) -> bus::MessageId {
    let mut tx = bus.begin().await.unwrap();
    let id = tx.publish(message).await.unwrap();
    tx.commit().await.unwrap();
    id
}

pub fn ping(n: u32) -> Ping {
    Ping {
        id: Uuid::now_v7(),
        n,
    }
}

/// Effect rows of `consumer`, in the order they were written.
pub async fn effects(db: &Db, consumer: &str) -> Vec<(String, u32)> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT message_id, n FROM effects WHERE consumer = $1 ORDER BY seq")
            .bind(consumer)
            .fetch_all(db.reader())
            .await
            .unwrap();
    rows.into_iter().map(|(id, n)| (id, n as u32)).collect()
}

/// The `n` of each effect row of `consumer`, in the order they were written.
pub async fn seen(db: &Db, consumer: &str) -> Vec<u32> {
    effects(db, consumer)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// A queue row as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub consumer: String,
    pub message_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub available_at: i64,
    pub last_error: Option<String>,
}

/// Every queue row, oldest first.
pub async fn queued(db: &Db) -> Vec<Queued> {
    let rows: Vec<(String, String, i64, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT consumer, message_id, attempts, created_at, available_at, last_error \
         FROM bus_queue ORDER BY id",
    )
    .fetch_all(db.reader())
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(consumer, message_id, attempts, created_at, available_at, last_error)| Queued {
                consumer,
                message_id,
                attempts,
                created_at,
                available_at,
                last_error,
            },
        )
        .collect()
}

pub async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.reader())
        .await
        .unwrap()
}
