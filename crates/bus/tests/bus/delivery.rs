//! Completing messages: atomic effects, duplicates, retries and dead letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bus::{BusConfig, MessageId, Outgoing};

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
    let mut config = quick_retries();
    config.retry.initial_delay = std::time::Duration::from_millis(100);
    config.retry.max_delay = std::time::Duration::from_millis(200);
    let bus = bus_with(&t.db, &[flaky], config);
    publish(&bus, &ping(1)).await;
    bus.run_pending().await.unwrap();
    let (attempts, available_at, error): (i64, i64, String) =
        sqlx::query_as("SELECT attempts, available_at, last_error FROM bus_queue")
            .fetch_one(t.db.reader())
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(
        available_at
            > bus::Timestamp::now()
                .minus(std::time::Duration::from_secs(1))
                .0
    );
    assert!(error.contains("scripted transient failure"), "{error}");
    assert!(
        effects(&t.db, "flaky").await.is_empty(),
        "the failed attempt rolled back"
    );
    eventually(
        "retries to succeed",
        std::time::Duration::from_secs(5),
        || async {
            bus.run_pending().await.unwrap();
            (count(&t.db, "SELECT COUNT(*) FROM bus_queue").await == 0).then_some(())
        },
    )
    .await;
    assert_eq!(effects(&t.db, "flaky").await.len(), 1);
    let stats = bus.stats();
    assert_eq!(
        (stats.retried, stats.completed, stats.dead_lettered),
        (2, 1, 0)
    );
}
}

testkit::backend_tests! {
async fn a_message_that_keeps_failing_is_dead_lettered_after_the_last_attempt(backend) {
    let t = test_db(backend).await;
    let broken = Scripted::new("broken", &[Ping::TYPE], Arc::new(|_| Step::Transient));
    let bus = bus_with(&t.db, &[broken], quick_retries());
    let id = publish(&bus, &ping(1)).await;
    eventually("dead letter", std::time::Duration::from_secs(5), || async {
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
    assert!(letters[0].error.contains("permanent"));
    assert_eq!(bus.stats().retried, 0);
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
        std::time::Duration::from_secs(5),
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
        // Three copies while the first is queued, three after it was consumed.
        let mut tx = bus.begin().await.unwrap();
        tx.write_with_id(id, &outgoing).await.unwrap();
        tx.commit().await.unwrap();
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
    for n in 0..6 {
        publish(&bus, &ping(n)).await;
    }
    assert_eq!(bus.run_pending().await.unwrap(), 6);
    let mut applied: Vec<u32> = effects(&t.db, "mixed")
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    applied.sort();
    assert_eq!(applied, [0, 1, 2, 4, 5]);
    assert_eq!(bus.dead_letter_count().await.unwrap(), 1);
    let stats = bus.stats();
    assert_eq!(
        (stats.completed, stats.dead_lettered, stats.batches),
        (5, 1, 1)
    );
}
}
