//! A toy order saga, a fresh database per test, and a consumer that records what it sends.

use std::sync::Arc;
use std::time::Duration;

use bus::{
    Bus, BusConfig, ConsumeError, Consumer, Envelope, Handler, Message, MessageId, Outgoing, Tx,
    async_trait,
};

pub use saga::Saga;
use saga::{Engine, Rejected, Transition};
use serde::{Deserialize, Serialize};
use storage::{Db, DbOptions, Synchronous};
pub use testkit::{Backend, eventually};
use uuid::Uuid;

/// Far enough away never to fire during a test.
pub const LONG: Duration = Duration::from_secs(3600);

macro_rules! message {
    ($name:ident $({ $($field:ident : $ty:ty),* })?) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name { pub id: Uuid $($(, pub $field: $ty)*)? }
        impl Message for $name {
            const TYPE: &'static str = stringify!($name);
            fn correlation_id(&self) -> Uuid { self.id }
        }
    };
}

// Events the saga consumes.
message!(Started);
message!(Reserved);
message!(Paid);
message!(Declined);
message!(TimedOut);
message!(Noted { note: u32 });
message!(Bogus);
// Commands it sends, which the recorder consumes.
message!(Confirm);
message!(Release);

/// The toy saga's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderState {
    Open { notes: Vec<u32> },
    Reserved { notes: Vec<u32> },
    Confirmed { notes: Vec<u32> },
    Failed { reason: String },
}

saga::events! {
    /// Its events, one per message type it consumes.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OrderEvent {
        Started(Started),
        Reserved(Reserved),
        Paid(Paid),
        Declined(Declined),
        TimedOut(TimedOut),
        Noted(Noted),
        Bogus(Bogus),
    }
}

/// Started → Open → Reserved (schedules TimedOut) → Confirmed (sends Confirm) or Failed
/// (declined or timed out; sends Release). `Noted` appends to the notes in any open state, so
/// that two of them raced must both survive; `Bogus` is never valid.
pub struct OrderSaga {
    /// How long a reserved order waits for its payment.
    pub timeout: Duration,
}

impl Saga for OrderSaga {
    type State = OrderState;
    type Event = OrderEvent;
    const NAME: &'static str = "order";

    fn is_start(&self, event: &OrderEvent) -> bool {
        matches!(event, OrderEvent::Started(_))
    }

    fn initially(&self, event: &OrderEvent) -> Transition<OrderState> {
        match event {
            OrderEvent::Started(_) => Ok((OrderState::Open { notes: vec![] }, vec![])),
            _ => Err(Rejected::Invalid("only Started starts".into())),
        }
    }

    fn during(&self, state: &OrderState, event: &OrderEvent) -> Transition<OrderState> {
        use OrderEvent as E;
        use OrderState as S;
        match (state, event) {
            (_, E::Bogus(_)) => Err(Rejected::Invalid("Bogus is never valid".into())),
            (S::Open { notes }, E::Noted(n)) => Ok((
                S::Open {
                    notes: with(notes, n.note),
                },
                vec![],
            )),
            (S::Reserved { notes }, E::Noted(n)) => Ok((
                S::Reserved {
                    notes: with(notes, n.note),
                },
                vec![],
            )),
            (S::Open { notes }, E::Reserved(Reserved { id })) => Ok((
                S::Reserved {
                    notes: notes.clone(),
                },
                vec![Outgoing::publish(&TimedOut { id: *id }).after(self.timeout)],
            )),
            (S::Open { .. }, E::Paid(_) | E::Declined(_)) => Err(Rejected::Early),
            (S::Open { .. }, E::TimedOut(_)) => Err(Rejected::Stale("not reserved yet".into())),
            (S::Reserved { notes }, E::Paid(Paid { id })) => Ok((
                S::Confirmed {
                    notes: notes.clone(),
                },
                vec![Outgoing::publish(&Confirm { id: *id })],
            )),
            (S::Reserved { .. }, E::Declined(Declined { id })) => Ok(failed(*id, "declined")),
            (S::Reserved { .. }, E::TimedOut(TimedOut { id })) => Ok(failed(*id, "timed out")),
            (S::Reserved { .. }, E::Reserved(_)) => Err(Rejected::Stale("already reserved".into())),
            _ => Err(Rejected::Stale("finished or repeated".into())),
        }
    }

    fn state_name(state: &OrderState) -> &'static str {
        match state {
            OrderState::Open { .. } => "Open",
            OrderState::Reserved { .. } => "Reserved",
            OrderState::Confirmed { .. } => "Confirmed",
            OrderState::Failed { .. } => "Failed",
        }
    }

    fn is_final(state: &OrderState) -> bool {
        matches!(
            state,
            OrderState::Confirmed { .. } | OrderState::Failed { .. }
        )
    }
}

fn with(notes: &[u32], n: u32) -> Vec<u32> {
    let mut notes = notes.to_vec();
    notes.push(n);
    notes
}

fn failed(id: Uuid, reason: &str) -> (OrderState, Vec<Outgoing>) {
    (
        OrderState::Failed {
            reason: reason.into(),
        },
        vec![Outgoing::publish(&Release { id })],
    )
}

/// Records every Confirm and Release the saga sends in the `sent` table, so that tests see
/// what actually reached a consumer rather than what sits in the queue.
pub struct Recorder;

bus::messages! {
    /// What the recorder records.
    pub enum Recorded {
        Confirm(Confirm),
        Release(Release),
    }
}

#[async_trait]
impl Handler for Recorder {
    type Messages = Recorded;
    fn name(&self) -> &str {
        "recorder"
    }
    async fn handle(&self, _: Recorded, m: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        sqlx::query(
            "INSERT INTO sent (message_type, correlation_id, causation_id) VALUES ($1, $2, $3)",
        )
        .bind(&m.message_type)
        .bind(m.correlation_id.to_string())
        .bind(m.causation_id.map(|c| c.to_string()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// A fresh database with the bus, saga and `sent` tables, and a bus running the order saga and
/// the recorder.
pub struct TestSaga {
    pub db: Db,
    pub bus: Bus,
    /// Keeps the SQLite file alive for the test's duration.
    _dir: tempfile::TempDir,
}

pub async fn setup(backend: Backend, timeout: Duration) -> TestSaga {
    setup_with(backend, timeout, BusConfig::default(), vec![]).await
}

/// [`setup`] with a bus configuration and consumers registered after the engine and recorder
/// (so that in a batch their copy of a message comes after the engine's).
pub async fn setup_with(
    backend: Backend,
    timeout: Duration,
    config: BusConfig,
    extra: Vec<Arc<dyn Consumer>>,
) -> TestSaga {
    let dir = tempfile::tempdir().unwrap();
    let mut options = DbOptions::new(backend.fresh_url(dir.path()).await);
    options.synchronous = Synchronous::Normal;
    let db = Db::connect(&options).await.unwrap();
    Bus::migrate(&db).await.unwrap();
    saga::migrate(&db).await.unwrap();
    db.execute(sqlx::query(
        "CREATE TABLE sent (message_type TEXT, correlation_id TEXT, causation_id TEXT)",
    ))
    .await
    .unwrap();
    let builder = Bus::builder(db.clone())
        .config(config)
        .consumer(Engine::consumer(OrderSaga { timeout }))
        .consumer(Arc::new(Recorder));
    let bus = extra
        .into_iter()
        .fold(builder, |b, c| b.consumer(c))
        .build();
    TestSaga { db, bus, _dir: dir }
}

/// A message row waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Queued {
    pub consumer: String,
    pub message_type: String,
    pub causation_id: Option<String>,
    pub available_at: i64,
}

impl TestSaga {
    /// Publishes `message` in a transaction of its own.
    pub async fn publish(&self, message: &impl Message) -> MessageId {
        let mut tx = self.bus.begin().await.unwrap();
        let id = tx.publish(message).await.unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Publishes and runs the bus until nothing is due.
    pub async fn deliver(&self, message: &impl Message) -> MessageId {
        let id = self.publish(message).await;
        self.bus.run_pending().await.unwrap();
        id
    }

    pub async fn instance(&self, id: Uuid) -> Option<saga::Instance> {
        saga::get(self.db.reader(), OrderSaga::NAME, id)
            .await
            .unwrap()
    }

    /// Types of the messages the saga sent for `id` that reached the recorder.
    pub async fn sent(&self, id: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT message_type FROM sent WHERE correlation_id = $1")
            .bind(id.to_string())
            .fetch_all(self.db.reader())
            .await
            .unwrap()
    }

    /// Messages of `id` still in the queue, oldest first.
    pub async fn queued(&self, id: Uuid) -> Vec<Queued> {
        sqlx::query_as(
            "SELECT consumer, message_type, causation_id, available_at FROM bus_queue \
             WHERE correlation_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(self.db.reader())
        .await
        .unwrap()
    }

    /// A `SELECT COUNT(*) …`.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db.reader())
            .await
            .unwrap()
    }

    /// Runs the bus until `check` holds, for retries that fall due a little later.
    pub async fn run_until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        eventually(what, Duration::from_secs(30), || async {
            self.bus.run_pending().await.unwrap();
            check().await
        })
        .await
    }
}
