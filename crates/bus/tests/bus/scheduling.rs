//! Scheduled delivery: nothing before its time, then on time without polling; cancelling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{BusConfig, Message, Outgoing};

use storage::Timestamp;

use crate::helpers::*;

testkit::backend_tests! {
async fn a_scheduled_message_waits_for_its_time_and_then_arrives(backend) {
    let t = test_db(backend).await;
    // (when it was due, when it ran) of every delivery.
    let deliveries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let script: Script = {
        let deliveries = deliveries.clone();
        Arc::new(move |envelope| {
            deliveries
                .lock()
                .unwrap()
                .push((envelope.available_at, Timestamp::now()));
            Step::Apply
        })
    };
    let bus = bus_with(
        &t.db,
        &[Scripted::new("a", &[Ping::TYPE], script)],
        sleepy(),
    );
    let workers = bus.start();
    let delay = Duration::from_millis(400);
    let started = Instant::now();
    let written = Timestamp::now();
    let mut tx = bus.begin().await.unwrap();
    tx.write(&Outgoing::publish(&ping(1)).after(delay))
        .await
        .unwrap();
    tx.schedule(Timestamp::now().plus(delay), &ping(2))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The poll interval is an hour: only the timer set for the due time can wake the worker.
    eventually("scheduled delivery", LIMIT, || async {
        (effects(&t.db, "a").await.len() == 2).then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= delay,
        "delivered after {:?}",
        started.elapsed()
    );
    for (due, ran) in deliveries.lock().unwrap().iter() {
        assert!(*due >= written.plus(delay), "due {due:?}, written {written:?}");
        assert!(ran >= due, "ran at {ran:?}, due at {due:?}");
    }
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn a_message_due_after_the_poll_interval_arrives_on_time_without_waking_anyone(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(
        &t.db,
        &[Scripted::applying("a")],
        BusConfig {
            poll_interval: Duration::from_millis(200),
            ..BusConfig::default()
        },
    );
    let workers = bus.start();
    // Due later than a poll interval from now: its commit wakes no worker; an idle worker
    // looks again within the interval, finds it and sleeps until it is due.
    let delay = Duration::from_millis(700);
    let due = Timestamp::now().plus(delay);
    let mut tx = bus.begin().await.unwrap();
    tx.schedule(due, &ping(1)).await.unwrap();
    tx.commit().await.unwrap();
    eventually("the scheduled delivery", LIMIT, || async {
        (effects(&t.db, "a").await.len() == 1).then_some(())
    })
    .await;
    assert!(Timestamp::now() >= due, "delivered before it was due");
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn a_message_scheduled_for_later_is_left_queued_until_it_is_due(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let mut tx = bus.begin().await.unwrap();
    let scheduled = tx.schedule(later, &ping(1)).await.unwrap();
    let delayed = tx
        .write(&Outgoing::publish(&ping(2)).after(Duration::from_secs(3600)))
        .await
        .unwrap();
    let now = tx.publish(&ping(3)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(bus.run_pending().await.unwrap(), 1, "only the due one");
    assert_eq!(effects(&t.db, "a").await, [(now.to_string(), 3)]);
    let waiting: Vec<(String, i64)> = queued(&t.db)
        .await
        .into_iter()
        .map(|row| (row.message_id, row.available_at))
        .collect();
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0], (scheduled.to_string(), later.0));
    assert_eq!(waiting[1].0, delayed.to_string());
    assert!(waiting[1].1 >= later.0, "after(1 h) is due in an hour");
}
}

testkit::backend_tests! {
async fn cancelling_withdraws_only_the_future_messages_of_one_consumer_and_correlation(backend) {
    let t = test_db(backend).await;
    let hour = Duration::from_secs(3600);
    let script: Script = Arc::new(|e| {
        if e.decode::<Ping>().unwrap().n == 4 {
            Step::Transient
        } else {
            Step::Apply
        }
    });
    let mut config = quick_retries();
    config.retry.initial_delay = hour;
    config.retry.max_delay = hour;
    let bus = bus_with(
        &t.db,
        &[
            Scripted::new("a", &[Ping::TYPE], script),
            Scripted::applying("b"),
        ],
        config,
    );
    let (x, y) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let later = Timestamp::now().plus(hour);
    let mut tx = bus.begin().await.unwrap();
    let x_later = tx.schedule(later, &Ping { id: x, n: 1 }).await.unwrap(); // a and b
    let y_later = tx.schedule(later, &Ping { id: y, n: 2 }).await.unwrap(); // a and b
    tx.publish(&Ping { id: x, n: 3 }).await.unwrap(); // a and b, now
    let x_failing = tx.send("a", &Ping { id: x, n: 4 }).await.unwrap(); // retried in an hour
    tx.commit().await.unwrap();
    assert_eq!(bus.run_pending().await.unwrap(), 3);
    assert_eq!(bus.stats().retried, 1);

    let mut tx = bus.begin().await.unwrap();
    tx.cancel_scheduled("a", x).await.unwrap();
    tx.commit().await.unwrap();
    let left: Vec<(String, String, i64)> = queued(&t.db)
        .await
        .into_iter()
        .map(|row| (row.message_id, row.consumer, row.attempts))
        .collect();
    assert_eq!(
        left,
        [
            (x_later.to_string(), "b".into(), 0),
            (y_later.to_string(), "a".into(), 0),
            (y_later.to_string(), "b".into(), 0),
            (x_failing.to_string(), "a".into(), 1),
        ],
        "only x's scheduled message for a is withdrawn; its retry stays"
    );
}
}

testkit::backend_tests! {
async fn cancelling_also_withdraws_what_the_same_transaction_scheduled(backend) {
    // Messages are inserted when the transaction commits, so a cancel must also withdraw the
    // ones written before it in the same transaction, savepoints included, spare the ones
    // written after it, and vanish with a savepoint that rolls back.
    let t = test_db(backend).await;
    let bus = bus_with(
        &t.db,
        &[Scripted::applying("a"), Scripted::applying("b")],
        BusConfig::default(),
    );
    let (x, y, z) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let mut tx = bus.begin().await.unwrap();
    tx.schedule(later, &Ping { id: x, n: 1 }).await.unwrap(); // a and b
    tx.schedule(later, &Ping { id: z, n: 2 }).await.unwrap(); // a and b
    let mut step = tx.savepoint().await.unwrap();
    step.send("a", &Ping { id: x, n: 3 }).await.unwrap(); // due now: stays
    step.schedule(later, &Ping { id: x, n: 4 }).await.unwrap(); // a and b
    step.cancel_scheduled("a", z).await.unwrap(); // the parent's message for a
    step.commit().await.unwrap();
    let mut undone = tx.savepoint().await.unwrap();
    undone.cancel_scheduled("b", z).await.unwrap();
    undone.rollback().await.unwrap();
    tx.schedule(later, &Ping { id: y, n: 5 }).await.unwrap(); // a and b
    tx.cancel_scheduled("a", x).await.unwrap();
    let after = tx
        .write(&Outgoing::send("a", &Ping { id: x, n: 6 }).at(later))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut left: Vec<(String, i64)> = queued(&t.db)
        .await
        .into_iter()
        .map(|row| (row.consumer, row.available_at))
        .collect();
    left.sort();
    assert_eq!(left.len(), 7, "{left:?}");
    let a_later = left
        .iter()
        .filter(|(consumer, at)| consumer == "a" && *at == later.0)
        .count();
    assert_eq!(a_later, 2, "of a's future messages y's and the one after the cancel are left");
    let b_later = left
        .iter()
        .filter(|(consumer, at)| consumer == "b" && *at == later.0)
        .count();
    assert_eq!(b_later, 4, "b keeps x, z (its withdrawal was rolled back), x's second and y");
    assert!(
        queued(&t.db).await.iter().any(|row| row.message_id == after.to_string()),
        "a message scheduled after the cancel stays"
    );
}
}

testkit::backend_tests! {
async fn taking_a_scheduled_message_is_exclusive_and_a_rollback_puts_it_back(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(
        &t.db,
        &[Scripted::applying("a"), Scripted::applying("b")],
        BusConfig::default(),
    );
    let (x, y) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let mut tx = bus.begin().await.unwrap();
    let x_message = tx.schedule(later, &Ping { id: x, n: 1 }).await.unwrap(); // for a and b
    let y_message = tx.schedule(later, &Ping { id: y, n: 2 }).await.unwrap(); // for a and b
    tx.commit().await.unwrap();
    let consumers_of = |rows: Vec<Queued>, message: bus::MessageId| -> Vec<String> {
        rows.into_iter()
            .filter(|row| row.message_id == message.to_string())
            .map(|row| row.consumer)
            .collect()
    };

    let mut tx = bus.begin().await.unwrap();
    assert!(tx.take_scheduled("a", x, Ping::TYPE).await.unwrap().is_some());
    tx.rollback().await.unwrap();
    assert_eq!(consumers_of(queued(&t.db).await, x_message), ["a", "b"], "put back");

    let mut tx = bus.begin().await.unwrap();
    assert!(tx.take_scheduled("a", x, "Other").await.unwrap().is_none(), "another type");
    assert!(tx.take_scheduled("a", x, Ping::TYPE).await.unwrap().is_some());
    assert!(tx.take_scheduled("a", x, Ping::TYPE).await.unwrap().is_none(), "taken once");
    tx.commit().await.unwrap();
    assert_eq!(consumers_of(queued(&t.db).await, x_message), ["b"]);
    assert_eq!(consumers_of(queued(&t.db).await, y_message), ["a", "b"]);
}
}
