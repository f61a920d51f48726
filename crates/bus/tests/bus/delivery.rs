//! Completing messages: atomic effects, duplicates, retries and dead letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bus::{BusConfig, MessageId, Outgoing};

use storage::Timestamp;

use bus::Message;

use crate::helpers::*;

/// Fails the first `failures` deliveries transiently, then applies.
fn failing_first(failures: u32) -> Script {
    let seen = Arc::new(AtomicU32::new(0));
    Arc::new(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < failures {
            Step::Transient
        } else {
            Step::Apply
        }
    })
}

testkit::backend_tests! {
async fn a_failed_attempt_leaves_no_effect_and_the_retry_applies_it_once(backend) {
    let t = test_db(backend).await;
    let flaky = Scripted::new("flaky", &[Ping::TYPE], failing_first(2));
    let bus = bus_with(&t.db, &[flaky], quick_retries());
    publish(&bus, &ping(1)).await;
    eventually("retries to succeed", LIMIT, || async {
        bus.run_pending().await.unwrap();
        queued(&t.db).await.is_empty().then_some(())
    })
    .await;
    // Every attempt wrote its row before it failed or succeeded: only the last one's stayed.
    assert_eq!(effects(&t.db, "flaky").await.len(), 1);
    let stats = bus.stats();
    assert_eq!(
        (stats.retried, stats.completed, stats.dead_lettered),
        (2, 1, 0)
    );
}
}

testkit::backend_tests! {
async fn a_failed_attempt_leaves_no_effect_behind(backend) {
    let t = test_db(backend).await;
    let mut config = quick_retries();
    config.retry.initial_delay = Duration::from_secs(3600); // no retry during the test
    config.retry.max_delay = Duration::from_secs(3600);
    let flaky = Scripted::new("flaky", &[Ping::TYPE], failing_first(1));
    let bus = bus_with(&t.db, &[flaky], config);
    let id = publish(&bus, &ping(1)).await;
    assert_eq!(bus.run_pending().await.unwrap(), 1);
    assert!(
        effects(&t.db, "flaky").await.is_empty(),
        "the row written before the error was rolled back"
    );
    let row = queued(&t.db).await.remove(0);
    assert_eq!((row.message_id, row.attempts), (id.to_string(), 1));
    assert!(row.available_at >= row.created_at + 3_600_000_000);
    let error = row.last_error.unwrap();
    assert!(error.contains("scripted transient failure"), "{error}");
}
}

testkit::backend_tests! {
async fn a_transient_failure_is_retried_later_with_growing_backoff(backend) {
    let t = test_db(backend).await;
    // (attempts so far, when it was due, when it ran) of every delivery.
    let deliveries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let script: Script = {
        let (deliveries, fail) = (deliveries.clone(), failing_first(2));
        Arc::new(move |envelope| {
            deliveries.lock().unwrap().push((
                envelope.attempts,
                envelope.available_at,
                Timestamp::now(),
            ));
            fail(envelope)
        })
    };
    let mut config = quick_retries();
    config.retry.max_attempts = 5;
    config.retry.initial_delay = Duration::from_millis(20);
    config.retry.max_delay = Duration::from_secs(1);
    let bus = bus_with(
        &t.db,
        &[Scripted::new("flaky", &[Ping::TYPE], script)],
        config,
    );
    publish(&bus, &ping(1)).await;
    eventually("the third attempt to succeed", LIMIT, || async {
        bus.run_pending().await.unwrap();
        queued(&t.db).await.is_empty().then_some(())
    })
    .await;
    let deliveries = deliveries.lock().unwrap().clone();
    let attempts: Vec<u32> = deliveries.iter().map(|d| d.0).collect();
    assert_eq!(attempts, [0, 1, 2]);
    let due: Vec<i64> = deliveries.iter().map(|d| d.1.0).collect();
    assert!(due[1] >= due[0] + 20_000, "20 ms after the first: {due:?}");
    assert!(due[2] >= due[1] + 40_000, "then 40 ms: {due:?}");
    for (attempts, due, ran) in deliveries {
        assert!(ran >= due, "attempt {attempts} ran before it was due");
    }
    assert_eq!(effects(&t.db, "flaky").await.len(), 1);
    assert_eq!(bus.dead_letter_count().await.unwrap(), 0);
    assert_eq!((bus.stats().retried, bus.stats().completed), (2, 1));
}
}

testkit::backend_tests! {
async fn a_message_that_keeps_failing_is_dead_lettered_after_the_last_attempt(backend) {
    let t = test_db(backend).await;
    let broken = Scripted::new("broken", &[Ping::TYPE], Arc::new(|_| Step::Transient));
    let bus = bus_with(&t.db, &[broken], quick_retries());
    let id = publish(&bus, &ping(1)).await;
    eventually("dead letter", LIMIT, || async {
        bus.run_pending().await.unwrap();
        (bus.dead_letter_count().await.unwrap() == 1).then_some(())
    })
    .await;
    let letters = bus.dead_letters(10, 0).await.unwrap();
    assert_eq!(letters[0].message_id, id);
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].consumer, "broken");
    assert!(letters[0].error.contains("scripted transient failure"));
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
    assert!(effects(&t.db, "broken").await.is_empty());
    let stats = bus.stats();
    assert_eq!((stats.retried, stats.dead_lettered), (2, 1));
}
}

testkit::backend_tests! {
async fn a_permanent_failure_goes_straight_to_the_dead_letters(backend) {
    let t = test_db(backend).await;
    let refuses = Scripted::new("refuses", &[Ping::TYPE], Arc::new(|_| Step::Permanent));
    let bus = bus_with(&t.db, &[refuses], quick_retries());
    publish(&bus, &ping(1)).await;
    bus.run_pending().await.unwrap();
    let letters = bus.dead_letters(10, 0).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1);
    assert!(letters[0].error.contains("scripted permanent failure"));
    assert_eq!(bus.stats().retried, 0);
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
    assert!(effects(&t.db, "refuses").await.is_empty());
}
}

testkit::backend_tests! {
async fn a_panicking_consumer_is_a_failed_attempt_not_a_dead_worker(backend) {
    let t = test_db(backend).await;
    let seen = Arc::new(AtomicU32::new(0));
    let script: Script = {
        let seen = seen.clone();
        Arc::new(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Step::Panic
            } else {
                Step::Apply
            }
        })
    };
    let bus = bus_with(
        &t.db,
        &[Scripted::new("panicky", &[Ping::TYPE], script)],
        quick_retries(),
    );
    let workers = bus.start();
    publish(&bus, &ping(1)).await;
    eventually(
        "applied after the panic",
        LIMIT,
        || async { (effects(&t.db, "panicky").await.len() == 1).then_some(()) },
    )
    .await;
    assert!(workers.is_running());
    assert_eq!(bus.stats().retried, 1);
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn the_same_message_delivered_many_times_has_one_effect(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("once")], BusConfig::default());
    let id = MessageId::new();
    let outgoing = Outgoing::publish(&ping(1));
    for round in 0..6 {
        // Three copies while the first is queued (they add no row), then three more, each
        // after the previous one was consumed (each queued, then skipped).
        let mut tx = bus.begin().await.unwrap();
        tx.write_with_id(id, &outgoing).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 1);
        if round >= 2 {
            bus.run_pending().await.unwrap();
        }
    }
    assert_eq!(effects(&t.db, "once").await, [(id.to_string(), 1)]);
    assert_eq!(bus.stats().completed, 1);
    assert_eq!(bus.stats().duplicates, 3);
}
}

testkit::backend_tests! {
async fn dead_letters_are_listed_newest_first_and_fetched_by_id(backend) {
    let t = test_db(backend).await;
    let refuses = Scripted::new("refuses", &[Ping::TYPE], Arc::new(|_| Step::Permanent));
    let bus = bus_with(&t.db, &[refuses], quick_retries());
    let first = publish(&bus, &ping(1)).await;
    bus.run_pending().await.unwrap();
    let second = publish(&bus, &ping(2)).await;
    bus.run_pending().await.unwrap();
    let letters = bus.dead_letters(10, 0).await.unwrap();
    let ids: Vec<_> = letters.iter().map(|l| l.message_id).collect();
    assert_eq!(ids, [second, first]);
    assert_eq!(bus.dead_letters(1, 1).await.unwrap()[0].message_id, first);
    let one = bus.dead_letter(letters[1].id).await.unwrap().unwrap();
    assert_eq!(one, letters[1]);
    assert!(bus.dead_letter(999_999).await.unwrap().is_none());
}
}

testkit::backend_tests! {
async fn a_retried_dead_letter_keeps_its_id_and_is_consumed_once(backend) {
    let t = test_db(backend).await;
    let seen = Arc::new(AtomicU32::new(0));
    let script: Script = {
        let seen = seen.clone();
        Arc::new(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Step::Permanent
            } else {
                Step::Apply
            }
        })
    };
    let bus = bus_with(
        &t.db,
        &[Scripted::new("fixed", &[Ping::TYPE], script)],
        quick_retries(),
    );
    let id = publish(&bus, &ping(1)).await;
    bus.run_pending().await.unwrap();
    let letter = bus.dead_letters(10, 0).await.unwrap().remove(0);
    assert!(bus.retry_dead_letter(letter.id).await.unwrap());
    assert!(
        !bus.retry_dead_letter(letter.id).await.unwrap(),
        "it is gone from the dead letters"
    );
    assert_eq!(bus.dead_letter_count().await.unwrap(), 0);
    bus.run_pending().await.unwrap();
    assert_eq!(effects(&t.db, "fixed").await, [(id.to_string(), 1)]);
}
}

testkit::backend_tests! {
async fn purging_deletes_every_dead_letter_and_says_how_many(backend) {
    let t = test_db(backend).await;
    let refuses = Scripted::new("refuses", &[Ping::TYPE], Arc::new(|_| Step::Permanent));
    let bus = bus_with(&t.db, &[refuses], quick_retries());
    for n in 0..3 {
        publish(&bus, &ping(n)).await;
    }
    bus.run_pending().await.unwrap();
    assert_eq!(bus.purge_dead_letters().await.unwrap(), 3);
    assert_eq!(bus.dead_letter_count().await.unwrap(), 0);
}
}

testkit::backend_tests! {
async fn a_queued_message_for_an_unregistered_consumer_is_dead_lettered(backend) {
    let t = test_db(backend).await;
    let before = bus_with(
        &t.db,
        &[Scripted::applying("renamed")],
        BusConfig::default(),
    );
    publish(&before, &ping(1)).await;
    let after = bus_with(
        &t.db,
        &[Scripted::applying("new-name")],
        BusConfig::default(),
    );
    after.run_pending().await.unwrap();
    let letters = after.dead_letters(10, 0).await.unwrap();
    assert!(letters[0].error.contains("no consumer named \"renamed\""));
}
}

testkit::backend_tests! {
async fn a_failure_inside_a_batch_touches_only_the_failing_message(backend) {
    let t = test_db(backend).await;
    let script: Script = Arc::new(|e| {
        if e.decode::<Ping>().unwrap().n == 3 {
            Step::Permanent
        } else {
            Step::Apply
        }
    });
    let bus = bus_with(
        &t.db,
        &[Scripted::new("mixed", &[Ping::TYPE], script)],
        quick_retries(),
    );
    // A message already consumed once and delivered again shares the batch.
    let repeated = MessageId::new();
    let outgoing = Outgoing::publish(&ping(10));
    for _ in 0..2 {
        let mut tx = bus.begin().await.unwrap();
        tx.write_with_id(repeated, &outgoing).await.unwrap();
        tx.commit().await.unwrap();
        if bus.stats().completed == 0 {
            bus.run_pending().await.unwrap();
        }
    }
    for n in 0..6 {
        publish(&bus, &ping(n)).await;
    }
    assert_eq!(bus.run_pending().await.unwrap(), 7);
    let mut applied: Vec<u32> = seen(&t.db, "mixed").await;
    applied.sort();
    assert_eq!(applied, [0, 1, 2, 4, 5, 10]);
    assert_eq!(bus.dead_letter_count().await.unwrap(), 1);
    assert!(queued(&t.db).await.is_empty());
    let stats = bus.stats();
    assert_eq!(
        (
            stats.completed,
            stats.duplicates,
            stats.dead_lettered,
            stats.batches
        ),
        (6, 1, 1, 2)
    );
}
}

testkit::backend_tests! {
async fn a_payload_that_does_not_decode_fails_for_good_and_a_database_error_is_retried(backend) {
    struct Strict;
    #[bus::async_trait]
    impl bus::Handler for Strict {
        type Messages = Ping;
        fn name(&self) -> &str {
            "strict"
        }
        async fn handle(
            &self,
            ping: Ping,
            _envelope: &bus::Envelope,
            tx: &mut bus::Tx<'_>,
        ) -> Result<(), bus::ConsumeError> {
            if ping.n == 1 {
                sqlx::query("INSERT INTO no_such_table VALUES (1)")
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }
    }
    let t = test_db(backend).await;
    let bus = bus::Bus::builder(t.db.clone())
        .config(quick_retries())
        .consumer(Arc::new(Strict))
        .build();
    let garbled = Outgoing {
        payload: "{\"unexpected\": true}".into(),
        ..Outgoing::publish(&ping(0))
    };
    let mut tx = bus.begin().await.unwrap();
    let garbled = tx.write(&garbled).await.unwrap();
    let failing = tx.publish(&ping(1)).await.unwrap();
    tx.commit().await.unwrap();
    eventually("both dead-lettered", LIMIT, || async {
        bus.run_pending().await.unwrap();
        (bus.dead_letter_count().await.unwrap() == 2).then_some(())
    })
    .await;
    let letters = bus.dead_letters(10, 0).await.unwrap();
    let letter = |id| letters.iter().find(|l| l.message_id == id).unwrap();
    assert_eq!(letter(garbled).attempts, 1, "not retried");
    assert!(letter(garbled).error.starts_with("permanent: "));
    assert_eq!(letter(failing).attempts, 3, "retried to the last attempt");
    assert!(letter(failing).error.contains("no_such_table"), "{}", letter(failing).error);
}
}

/// Records what [`bus::Handler::prepare`] saw and whether `handle` found it in the scratch.
struct Preparing {
    fail: bool,
    prepared: std::sync::Mutex<Vec<usize>>,
    seen: std::sync::Mutex<Vec<Option<usize>>>,
}

#[derive(Default)]
struct ReadAhead(Option<usize>);

#[bus::async_trait]
impl bus::Handler for Preparing {
    type Messages = Ping;

    fn name(&self) -> &str {
        "preparing"
    }

    async fn prepare(
        &self,
        messages: &[&bus::Envelope],
        tx: &mut bus::Tx<'_>,
    ) -> Result<(), bus::ConsumeError> {
        self.prepared.lock().unwrap().push(messages.len());
        if self.fail {
            return Err(bus::ConsumeError::transient("could not read ahead"));
        }
        tx.scratch::<ReadAhead>().0 = Some(messages.len());
        Ok(())
    }

    async fn handle(
        &self,
        _ping: Ping,
        _envelope: &bus::Envelope,
        tx: &mut bus::Tx<'_>,
    ) -> Result<(), bus::ConsumeError> {
        let read_ahead = tx.scratch::<ReadAhead>().0;
        self.seen.lock().unwrap().push(read_ahead);
        Ok(())
    }
}

testkit::backend_tests! {
async fn a_consumer_prepares_once_per_batch_and_a_failed_preparation_costs_no_attempt(backend) {
    for fail in [false, true] {
        let t = test_db(backend).await;
        let consumer = Arc::new(Preparing {
            fail,
            prepared: Default::default(),
            seen: Default::default(),
        });
        let bus = bus::Bus::builder(t.db.clone())
            .consumer(consumer.clone())
            .build();
        let mut tx = bus.begin().await.unwrap();
        for n in 0..3 {
            tx.publish(&ping(n)).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(bus.run_pending().await.unwrap(), 3);

        assert_eq!(*consumer.prepared.lock().unwrap(), [3], "fail: {fail}");
        // After a failed preparation the batch runs again one message at a time, each in a
        // savepoint of its own, whose scratch starts empty.
        let expected = if fail { None } else { Some(3) };
        assert_eq!(*consumer.seen.lock().unwrap(), [expected; 3], "fail: {fail}");
        let stats = bus.stats();
        assert_eq!((stats.completed, stats.retried, stats.dead_lettered), (3, 0, 0));
        assert!(queued(&t.db).await.is_empty());
    }
}
}

bus::messages! {
    /// What [`Tally`] handles: its subscriptions and decoding follow from this list.
    #[derive(Debug)]
    enum Tallied {
        Ping(Ping),
        Pong(Pong),
    }
}

/// Notes what it receives, decoded, and whether alone or in a set.
#[derive(Default)]
struct Tally {
    alone: std::sync::Mutex<Vec<String>>,
    sets: std::sync::Mutex<Vec<Vec<String>>>,
}

fn label(message: &Tallied) -> String {
    match message {
        Tallied::Ping(ping) => format!("ping {}", ping.n),
        Tallied::Pong(_) => "pong".into(),
    }
}

#[bus::async_trait]
impl bus::Handler for Tally {
    type Messages = Tallied;

    fn name(&self) -> &str {
        "tally"
    }

    async fn handle(
        &self,
        message: Tallied,
        _envelope: &bus::Envelope,
        _tx: &mut bus::Tx<'_>,
    ) -> Result<(), bus::ConsumeError> {
        self.alone.lock().unwrap().push(label(&message));
        Ok(())
    }

    /// Takes the pings as a set and leaves the pongs to `handle`.
    async fn handle_all(
        &self,
        messages: Vec<bus::Delivered<'_, Tallied>>,
        _tx: &mut bus::Tx<'_>,
    ) -> Result<Vec<usize>, bus::ConsumeError> {
        let labels = messages.iter().map(|m| label(&m.message)).collect();
        self.sets.lock().unwrap().push(labels);
        let pongs = messages.iter().enumerate();
        let pongs = pongs.filter(|(_, m)| matches!(m.message, Tallied::Pong(_)));
        Ok(pongs.map(|(index, _)| index).collect())
    }
}

testkit::backend_tests! {
async fn a_handler_subscribes_to_its_declared_types_and_receives_them_decoded(backend) {
    let t = test_db(backend).await;
    let tally = Arc::new(Tally::default());
    let bus = bus::Bus::builder(t.db.clone())
        .consumer(tally.clone())
        .build();
    assert_eq!(bus.subscribers(Ping::TYPE), ["tally"]);
    assert_eq!(bus.subscribers(Pong::TYPE), ["tally"]);
    let mut tx = bus.begin().await.unwrap();
    tx.publish(&ping(1)).await.unwrap();
    tx.publish(&Pong { id: uuid::Uuid::now_v7() }).await.unwrap();
    tx.publish(&ping(2)).await.unwrap();
    tx.commit().await.unwrap();
    bus.run_pending().await.unwrap();
    assert_eq!(*tally.sets.lock().unwrap(), [["ping 1", "pong", "ping 2"]]);
    assert_eq!(*tally.alone.lock().unwrap(), ["pong"], "left to be handled alone");
    assert_eq!(bus.stats().completed, 3);
}
}
