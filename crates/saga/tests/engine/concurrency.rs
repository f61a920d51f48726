//! Many instances and raced events with workers running; crashes mid-transaction.

use std::sync::Arc;
use std::time::Duration;

use bus::{BusConfig, ConsumeError, Consumer, Envelope, Tx};
use uuid::Uuid;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(60);

async fn count(t: &TestSaga, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(t.db.reader())
        .await
        .unwrap()
}

testkit::backend_tests! {
async fn two_events_raced_for_one_instance_are_both_applied(backend) {
    let t = setup_with(backend,
        Duration::from_secs(3600),
        BusConfig {
            workers: 4,
            ..BusConfig::default()
        },
        vec![],
    )
    .await;
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        t.publish(&Started { id: *id }).await;
    }
    let workers = t.bus.start();
    let racers = ids.iter().flat_map(|id| {
        [1, 2].map(|note| {
            let (bus, id) = (t.bus.clone(), *id);
            tokio::spawn(async move {
                let mut tx = bus.begin().await.unwrap();
                tx.publish(&Noted { id, note }).await.unwrap();
                tx.commit().await.unwrap();
            })
        })
    });
    futures_util::future::join_all(racers).await;
    eventually("every note applied", LIMIT, || async {
        (count(&t, "SELECT COUNT(*) FROM saga_timeline").await == 600).then_some(())
    })
    .await;
    workers.shutdown().await;
    for id in ids {
        let instance = t.instance(id).await.unwrap();
        assert_eq!(instance.version, 3, "no lost update");
        let mut notes: Vec<u64> = instance.data["Open"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        notes.sort();
        assert_eq!(notes, [1, 2]);
    }
}
}

testkit::backend_tests! {
async fn a_thousand_instances_driven_concurrently_all_finish(backend) {
    let t = setup(backend, Duration::from_secs(3600)).await;
    let workers = t.bus.start();
    let drivers = (0..1000u32).map(|n| {
        let bus = t.bus.clone();
        tokio::spawn(async move {
            let id = Uuid::now_v7();
            let last = if n % 2 == 0 {
                bus::Outgoing::publish(&Paid { id })
            } else {
                bus::Outgoing::publish(&Declined { id })
            };
            for outgoing in [
                bus::Outgoing::publish(&Started { id }),
                bus::Outgoing::publish(&Reserved { id }),
                last,
            ] {
                let mut tx = bus.begin().await.unwrap();
                tx.write(&outgoing).await.unwrap();
                tx.commit().await.unwrap();
            }
        })
    });
    futures_util::future::join_all(drivers).await;
    eventually(
        "all instances terminal and their messages consumed",
        LIMIT,
        || async {
            let finished = "SELECT COUNT(*) FROM saga_instances WHERE completed_at IS NOT NULL";
            let settled = count(&t, finished).await == 1000
                && count(&t, "SELECT COUNT(*) FROM sent").await == 1000;
            settled.then_some(())
        },
    )
    .await;
    workers.shutdown().await;
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM saga_instances WHERE state = 'Confirmed'"
        )
        .await,
        500
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM saga_instances WHERE state = 'Failed'"
        )
        .await,
        500
    );
    assert_eq!(count(&t, "SELECT COUNT(*) FROM sent").await, 1000);
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM bus_queue").await,
        0,
        "timeouts withdrawn"
    );
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}

/// Blocks its first message until released, to hold the batch transaction open.
struct Gate(Arc<tokio::sync::Semaphore>, Arc<tokio::sync::Notify>);

#[bus::async_trait]
impl Consumer for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn subscriptions(&self) -> Vec<&'static str> {
        vec![<Reserved as bus::Message>::TYPE]
    }
    async fn consume(&self, _: &Envelope, _: &mut Tx<'_>) -> Result<(), ConsumeError> {
        self.1.notify_one();
        let _permit = self.0.acquire().await.unwrap();
        Ok(())
    }
}

testkit::backend_tests! {
async fn a_transition_aborted_mid_transaction_is_applied_once_after_restart(backend) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let t = setup_with(backend,
        Duration::from_secs(3600),
        BusConfig::default(),
        vec![Arc::new(Gate(gate.clone(), entered.clone()))],
    )
    .await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    t.publish(&Reserved { id }).await;
    let running = tokio::spawn({
        let bus = t.bus.clone();
        async move { bus.run_pending().await }
    });
    entered.notified().await;
    running.abort();
    let _ = running.await;
    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        (instance.state.as_str(), instance.version),
        ("Open", 1),
        "nothing committed"
    );
    gate.add_permits(10);
    t.bus.run_pending().await.unwrap();
    let instance = t.instance(id).await.unwrap();
    assert_eq!((instance.state.as_str(), instance.version), ("Reserved", 2));
    assert_eq!(instance.timeline.len(), 2);
}
}
