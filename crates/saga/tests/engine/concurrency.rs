//! Many instances and raced events with workers running, a save against a stale version, and
//! a crash in the middle of a transaction.

use std::sync::Arc;
use std::time::Duration;

use bus::{BusConfig, ConsumeError, Envelope, Handler, Message, Outgoing, RetryPolicy, Tx};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(60);

testkit::backend_tests! {
/// Publishers in 400 tasks race two notes for each of 200 instances while four workers run.
/// Each note appends to the state, so a lost update would show as a missing note.
async fn two_events_raced_for_one_instance_are_both_applied(backend) {
    let config = BusConfig {
        workers: 4,
        ..BusConfig::default()
    };
    let t = setup_with(backend, LONG, config, vec![]).await;
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
    for racer in futures_util::future::join_all(racers).await {
        racer.unwrap();
    }
    eventually("every note applied", LIMIT, || async {
        (t.count("SELECT COUNT(*) FROM saga_timeline").await == 600).then_some(())
    })
    .await;
    workers.shutdown().await;

    for id in ids {
        let instance = t.instance(id).await.unwrap();
        assert_eq!(
            (instance.version, instance.timeline.len()),
            (3, 3),
            "no lost update"
        );
        let mut notes: Vec<u64> = instance.data["Open"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        notes.sort();
        assert_eq!(notes, [1, 2]);
    }
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}

testkit::backend_tests! {
async fn a_thousand_instances_driven_concurrently_all_finish(backend) {
    let t = setup(backend, LONG).await;
    let workers = t.bus.start();
    let drivers = (0..1000u32).map(|n| {
        let bus = t.bus.clone();
        tokio::spawn(async move {
            let id = Uuid::now_v7();
            let last = if n % 2 == 0 {
                Outgoing::publish(&Paid { id })
            } else {
                Outgoing::publish(&Declined { id })
            };
            for outgoing in [
                Outgoing::publish(&Started { id }),
                Outgoing::publish(&Reserved { id }),
                last,
            ] {
                let mut tx = bus.begin().await.unwrap();
                tx.write(&outgoing).await.unwrap();
                tx.commit().await.unwrap();
            }
        })
    });
    for driver in futures_util::future::join_all(drivers).await {
        driver.unwrap();
    }
    eventually(
        "all instances terminal and their messages consumed",
        LIMIT,
        || async {
            let finished = "SELECT COUNT(*) FROM saga_instances WHERE completed_at IS NOT NULL";
            let settled = t.count(finished).await == 1000
                && t.count("SELECT COUNT(*) FROM sent").await == 1000;
            settled.then_some(())
        },
    )
    .await;
    workers.shutdown().await;

    let count = |sql| t.count(sql);
    assert_eq!(count("SELECT COUNT(*) FROM saga_instances").await, 1000);
    assert_eq!(
        count("SELECT COUNT(*) FROM saga_instances WHERE state = 'Confirmed'").await,
        500
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM saga_instances WHERE state = 'Failed'").await,
        500
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sent WHERE message_type = 'Confirm'").await,
        500
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sent WHERE message_type = 'Release'").await,
        500
    );
    assert_eq!(count("SELECT COUNT(*) FROM saga_timeline").await, 3000);
    assert_eq!(
        count("SELECT COUNT(*) FROM saga_instances WHERE ignored_events > 0").await,
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM saga_parked").await, 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM bus_queue").await,
        0,
        "timeouts withdrawn"
    );
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}

/// PostgreSQL only. On SQLite the engine holds the database's one write lock from loading an
/// instance to saving it, so nothing can change the instance in between. On PostgreSQL another
/// transaction can (a tool, or an engine that skipped the per-correlation lock); this one
/// changes the row while the engine waits for it between its load and its save.
mod a_save_against_a_stale_version_fails_and_is_retried_on_the_new_state {
    use super::*;

    #[tokio::test]
    async fn postgres() {
        let Some(backend) = Backend::postgres() else {
            return;
        };
        let retry = RetryPolicy {
            initial_delay: Duration::from_millis(10),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let config = BusConfig {
            retry,
            ..BusConfig::default()
        };
        let t = setup_with(backend, LONG, config, vec![]).await;
        let id = Uuid::now_v7();
        t.deliver(&Started { id }).await;
        let noted = t.publish(&Noted { id, note: 1 }).await;

        let mut meddler = t.bus.begin().await.unwrap();
        sqlx::query(
            "UPDATE saga_instances SET data = $1, version = version + 1 WHERE correlation_id = $2",
        )
        .bind(r#"{"Open":{"notes":[7]}}"#)
        .bind(id.to_string())
        .execute(&mut *meddler)
        .await
        .unwrap();
        let engine = tokio::spawn({
            let bus = t.bus.clone();
            async move { bus.run_pending().await }
        });
        eventually(
            "the engine to wait for the row it loaded",
            LIMIT,
            || async {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(t.db.reader())
                .await
                .unwrap();
                (waiting > 0).then_some(())
            },
        )
        .await;
        meddler.commit().await.unwrap();
        engine.await.unwrap().unwrap();

        let instance = t
            .run_until("the retry to apply", || async {
                t.instance(id).await.filter(|i| i.version == 3)
            })
            .await;
        assert_eq!(
            instance.data,
            serde_json::json!({ "Open": { "notes": [7, 1] } }),
            "applied to the new state, so the meddler's note survives"
        );
        assert_eq!(t.bus.stats().retried, 1, "the stale save failed once");
        let last = instance.timeline.last().unwrap();
        assert_eq!((last.seq, last.message_id), (3, noted));
        assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
    }
}

/// Registered next to the engine and subscribed to `Reserved`, so that it runs after the
/// engine in the same batch transaction. Tells the test what it sees of the instance inside
/// that transaction, then holds the transaction open until the gate has permits.
struct Gate {
    permits: Arc<Semaphore>,
    saw: mpsc::UnboundedSender<Option<String>>,
}

#[bus::async_trait]
impl Handler for Gate {
    type Messages = Reserved;
    fn name(&self) -> &str {
        "gate"
    }
    async fn handle(&self, _: Reserved, m: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
        let seen = saga::get_on(tx, OrderSaga::NAME, m.correlation_id).await?;
        let _ = self.saw.send(seen.map(|instance| instance.state));
        let _permit = self.permits.acquire().await.expect("never closed");
        Ok(())
    }
}

testkit::backend_tests! {
async fn a_transition_aborted_mid_transaction_is_applied_once_after_restart(backend) {
    let permits = Arc::new(Semaphore::new(0));
    let (saw, mut seen) = mpsc::unbounded_channel();
    let gate = Gate {
        permits: permits.clone(),
        saw,
    };
    let t = setup_with(backend, LONG, BusConfig::default(), vec![Arc::new(gate)]).await;
    let id = Uuid::now_v7();
    t.deliver(&Started { id }).await;
    let reserved = t.publish(&Reserved { id }).await;
    let running = tokio::spawn({
        let bus = t.bus.clone();
        async move { bus.run_pending().await }
    });
    assert_eq!(
        seen.recv().await.unwrap().as_deref(),
        Some("Reserved"),
        "inside the batch the engine has applied the transition"
    );

    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    let instance = t.instance(id).await.unwrap();
    assert_eq!(
        (instance.state.as_str(), instance.version),
        ("Open", 1),
        "nothing committed"
    );
    assert_eq!(instance.timeline.len(), 1);
    let queued: Vec<_> = t
        .queued(id)
        .await
        .into_iter()
        .map(|q| (q.consumer, q.message_type))
        .collect();
    let reserved_for = |c: &str| (c.to_owned(), Reserved::TYPE.to_owned());
    assert_eq!(
        queued,
        [reserved_for(OrderSaga::NAME), reserved_for("gate")],
        "no timeout yet"
    );

    permits.add_permits(10);
    t.bus.run_pending().await.unwrap();

    let instance = t.instance(id).await.unwrap();
    assert_eq!((instance.state.as_str(), instance.version), ("Reserved", 2));
    assert_eq!(instance.timeline.len(), 2);
    assert_eq!(instance.timeline[1].message_id, reserved);
    let queued: Vec<_> = t
        .queued(id)
        .await
        .into_iter()
        .map(|q| q.message_type)
        .collect();
    assert_eq!(queued, [TimedOut::TYPE], "one timeout, scheduled once");
}
}

testkit::backend_tests! {
/// Ten instances started in one batch, three of them with a payment parked early, then moved
/// on in another: the seven plain steps are written together, the three with parked events go
/// one by one, and every instance ends as if each event had been handled alone.
async fn steps_written_together_end_as_one_by_one(backend) {
    let t = setup(backend, LONG).await;
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        t.publish(&Started { id: *id }).await;
    }
    for id in &ids[..3] {
        t.publish(&Paid { id: *id }).await;
    }
    t.bus.run_pending().await.unwrap();
    let mut reserved = Vec::new();
    for id in &ids {
        reserved.push(t.publish(&Reserved { id: *id }).await);
    }
    t.bus.run_pending().await.unwrap();

    for (index, id) in ids.iter().enumerate() {
        let instance = t.instance(*id).await.unwrap();
        let steps: Vec<(Option<String>, String, Vec<String>)> = instance
            .timeline
            .iter()
            .map(|e| (e.from_state.clone(), e.to_state.clone(), e.messages_sent.clone()))
            .collect();
        let open = (None, "Open".to_owned(), vec![]);
        let reserving = (
            Some("Open".to_owned()),
            "Reserved".to_owned(),
            vec![TimedOut::TYPE.to_owned()],
        );
        if index < 3 {
            let paying = (
                Some("Reserved".to_owned()),
                "Confirmed".to_owned(),
                vec![Confirm::TYPE.to_owned()],
            );
            assert_eq!(steps, [open, reserving, paying], "instance {index}");
            assert_eq!(instance.version, 3);
            assert!(instance.completed_at.is_some());
            assert_eq!(t.sent(*id).await, [Confirm::TYPE]);
        } else {
            assert_eq!(steps, [open, reserving], "instance {index}");
            assert_eq!(instance.version, 2);
            let queued = t.queued(*id).await;
            assert_eq!(queued.len(), 1, "its payment timeout");
            assert_eq!(
                queued[0].causation_id,
                Some(reserved[index].to_string()),
                "caused by the event that moved it"
            );
        }
    }
    assert_eq!(t.bus.dead_letter_count().await.unwrap(), 0);
}
}
