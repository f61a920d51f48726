//! Hand-over: a message a worker's consumer sends to another consumer of the bus, due at once,
//! is handled in the same batch transaction, unless the queue holds something for that consumer
//! and correlation id (or, on PostgreSQL, another transaction holds its lock); a failure falls
//! back to the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bus::{BusConfig, ConsumeError, Consumer, Envelope, Message, Outgoing, Tx, async_trait};

use storage::Timestamp;

use crate::helpers::*;

/// Writes its effect row, then sends the ping on to `next` with `n + 1`; fails (transiently)
/// its first `failures` calls, after writing the row.
struct Relay {
    name: &'static str,
    next: Option<&'static str>,
    failures: AtomicUsize,
}

impl Relay {
    fn new(name: &'static str, next: Option<&'static str>, failures: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            next,
            failures: AtomicUsize::new(failures),
        })
    }
}

#[async_trait]
impl Consumer for Relay {
    fn name(&self) -> &str {
        self.name
    }

    fn subscriptions(&self) -> Vec<&'static str> {
        // Only the first relay hears published pings; the others are sent to by name.
        if self.name == "a" {
            vec![Ping::TYPE]
        } else {
            Vec::new()
        }
    }

    async fn consume(&self, message: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let ping: Ping = message.decode().map_err(ConsumeError::permanent)?;
        sqlx::query(
            "INSERT INTO effects (consumer, message_id, correlation_id, n) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.name)
        .bind(message.message_id.to_string())
        .bind(message.correlation_id.to_string())
        .bind(i64::from(ping.n))
        .execute(&mut **tx)
        .await?;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(ConsumeError::transient("relay failing once"));
        }
        if let Some(next) = self.next {
            let onward = Ping {
                id: ping.id,
                n: ping.n + 1,
            };
            tx.send(next, &onward).await?;
        }
        Ok(())
    }
}

/// A bus whose consumers relay a ping along `names` in order (the first hears it published);
/// the last fails its first `last_failures` calls.
fn relays(
    db: &storage::Db,
    names: &[&'static str],
    last_failures: usize,
    config: BusConfig,
) -> bus::Bus {
    let mut builder = bus::Bus::builder(db.clone()).config(config);
    for (i, name) in names.iter().enumerate() {
        let next = names.get(i + 1).copied();
        let failures = if next.is_none() { last_failures } else { 0 };
        builder = builder.consumer(Relay::new(name, next, failures) as Arc<dyn Consumer>);
    }
    builder.build()
}

/// Waits until `consumer` has seen exactly the pings `expected`.
async fn wait_until_seen(db: &storage::Db, consumer: &str, expected: &[u32]) {
    eventually(
        &format!("{consumer} saw {expected:?}"),
        std::time::Duration::from_secs(10),
        || async { (seen(db, consumer).await == expected).then_some(()) },
    )
    .await;
}

testkit::backend_tests! {
async fn a_chain_of_sends_is_handled_in_the_batch_that_started_it(backend) {
    let t = test_db(backend).await;
    let bus = relays(&t.db, &["a", "b", "c"], 0, BusConfig::default());
    publish(&bus, &ping(0)).await;
    assert_eq!(bus.run_pending().await.unwrap(), 1, "only the published ping was queued");

    for (consumer, n) in [("a", 0), ("b", 1), ("c", 2)] {
        assert_eq!(seen(&t.db, consumer).await, [n], "{consumer}");
    }
    let stats = bus.stats();
    assert_eq!(stats.completed, 3);
    assert_eq!((stats.handed_over, stats.batches), (2, 1), "one batch, one commit");
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM bus_inbox").await,
        1,
        "only the queued message is remembered: the others were never queued"
    );
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
}

async fn a_message_for_a_consumer_and_order_with_something_queued_waits_its_turn(backend) {
    let t = test_db(backend).await;
    let bus = relays(&t.db, &["a", "b"], 0, BusConfig::default());
    let start = ping(0);
    // Something for b under the same correlation id is already queued (due much later).
    let later = Ping {
        id: start.id,
        n: 10,
    };
    let mut tx = bus.begin().await.unwrap();
    let far = Timestamp(Timestamp::now().0 + 3_600_000_000);
    tx.write(&Outgoing::send("b", &later).at(far))
        .await
        .unwrap();
    tx.publish(&start).await.unwrap();
    tx.commit().await.unwrap();

    bus.run_pending().await.unwrap();
    assert_eq!(
        seen(&t.db, "b").await,
        [1],
        "b got the relayed ping, through the queue"
    );
    let stats = bus.stats();
    assert_eq!((stats.handed_over, stats.batches), (0, 2));
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM bus_queue").await,
        1,
        "the later message still waits"
    );
}

async fn a_failing_hand_over_falls_back_to_the_queue_and_applies_everything_once(backend) {
    let t = test_db(backend).await;
    let bus = relays(&t.db, &["a", "b"], 1, BusConfig::default());
    publish(&bus, &ping(0)).await;
    bus.run_pending().await.unwrap();
    assert_eq!(
        seen(&t.db, "a").await,
        [0],
        "a's effect once, though its batch ran twice"
    );
    assert_eq!(
        seen(&t.db, "b").await,
        [1],
        "the failed hand-over left nothing behind"
    );
    assert_eq!(bus.stats().handed_over, 0);
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
}
}

#[tokio::test]
async fn with_hand_over_off_every_hop_goes_through_the_queue() {
    let t = test_db(Backend::Sqlite).await;
    let config = BusConfig {
        hand_over: false,
        ..BusConfig::default()
    };
    let bus = relays(&t.db, &["a", "b", "c"], 0, config);
    publish(&bus, &ping(0)).await;
    assert_eq!(bus.run_pending().await.unwrap(), 3);
    assert_eq!(seen(&t.db, "c").await, [2]);
    let stats = bus.stats();
    assert_eq!((stats.handed_over, stats.batches), (0, 3));
}

/// Another instance handling a message of b's correlation holds the lock every claim takes
/// (the one hand-over takes too): b's message must wait for the queue, not run beside it.
#[tokio::test]
async fn on_postgres_a_message_whose_correlation_is_busy_elsewhere_goes_through_the_queue() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let t = test_db(backend).await;
    let bus = relays(&t.db, &["a", "b"], 0, BusConfig::default());
    let start = ping(0);
    let mut elsewhere = t.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("b:{}", start.id))
        .execute(&mut *elsewhere)
        .await
        .unwrap();
    publish(&bus, &start).await;

    assert_eq!(
        bus.run_pending().await.unwrap(),
        1,
        "a ran; b's message is not claimable"
    );
    assert_eq!(seen(&t.db, "b").await, Vec::<u32>::new(), "b waits");
    assert_eq!(bus.stats().handed_over, 0);
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 1);

    elsewhere.rollback().await.unwrap();
    assert_eq!(bus.run_pending().await.unwrap(), 1);
    assert_eq!(
        seen(&t.db, "b").await,
        [1],
        "handled through the queue once free"
    );
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Group(#[from] bus::GroupError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
}

/// A request: its own effect row, and `start` published, through [`bus::Bus::transact`].
async fn request(bus: &bus::Bus, start: &Ping) {
    let start = start.clone();
    bus.transact(move |tx| {
        let start = start.clone();
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO effects (consumer, message_id, correlation_id, n) \
                 VALUES ('request', 'm', $1, 0)",
            )
            .bind(start.id.to_string())
            .execute(&mut **tx)
            .await?;
            tx.publish(&start).await?;
            Ok::<_, JobError>(())
        })
    })
    .await
    .unwrap();
}

testkit::backend_tests! {
async fn a_request_queues_what_it_sends_and_a_worker_hands_the_chain_over(backend) {
    let t = test_db(backend).await;
    let bus = relays(&t.db, &["a", "b", "c"], 0, BusConfig::default());
    request(&bus, &ping(0)).await;
    assert_eq!(seen(&t.db, "request").await, [0]);
    assert_eq!(seen(&t.db, "a").await, Vec::<u32>::new(), "no worker ran yet");
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 1, "queued");

    let workers = bus.start();
    wait_until_seen(&t.db, "c", &[2]).await;
    workers.shutdown().await;
    assert_eq!(bus.stats().handed_over, 2, "the worker handed b and c over");
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
}
}
