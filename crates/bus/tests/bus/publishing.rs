//! The outbox: what is written, for whom, and only when the transaction commits.

use std::sync::Arc;

use bus::{BusConfig, BusError, Message, Outgoing};

use storage::{DbError, DbOptions};

use crate::helpers::*;

testkit::backend_tests! {
async fn publishing_fans_out_one_row_per_subscribed_consumer(backend) {
    let t = test_db(backend).await;
    let a = Scripted::applying("a");
    let b = Scripted::applying("b");
    let pongs = Scripted::new("pongs", &[Pong::TYPE], Arc::new(|_| Step::Apply));
    let bus = bus_with(&t.db, &[a, b, pongs], BusConfig::default());
    assert_eq!(bus.subscribers(Ping::TYPE), ["a", "b"]);
    let id = publish(&bus, &ping(1)).await;
    let rows: Vec<(String, String)> = queued(&t.db)
        .await
        .into_iter()
        .map(|row| (row.consumer, row.message_id))
        .collect();
    assert_eq!(
        rows,
        [("a".into(), id.to_string()), ("b".into(), id.to_string())],
        "one row per subscriber, all under the one message id"
    );
    assert_eq!(bus.run_pending().await.unwrap(), 2);
    assert_eq!(effects(&t.db, "a").await.len(), 1);
    assert_eq!(effects(&t.db, "b").await.len(), 1);
    assert!(effects(&t.db, "pongs").await.is_empty());
}
}

testkit::backend_tests! {
async fn send_reaches_exactly_one_consumer_even_without_a_subscription(backend) {
    let t = test_db(backend).await;
    let a = Scripted::applying("a");
    let pongs = Scripted::new("pongs", &[Pong::TYPE], Arc::new(|_| Step::Apply));
    let bus = bus_with(&t.db, &[a, pongs], BusConfig::default());
    let mut tx = bus.begin().await.unwrap();
    tx.send("pongs", &ping(7)).await.unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<String> = queued(&t.db).await.into_iter().map(|r| r.consumer).collect();
    assert_eq!(rows, ["pongs"]);
    bus.run_pending().await.unwrap();
    assert!(effects(&t.db, "a").await.is_empty());
    assert_eq!(effects(&t.db, "pongs").await[0].1, 7);
}
}

testkit::backend_tests! {
async fn sending_to_an_unknown_consumer_is_an_error(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let mut tx = bus.begin().await.unwrap();
    let error = tx.send("nobody", &ping(1)).await.unwrap_err();
    assert!(matches!(error, BusError::UnknownConsumer(name) if name == "nobody"));
    tx.commit().await.unwrap();
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
}
}

testkit::backend_tests! {
async fn a_message_nobody_subscribes_to_writes_nothing(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    publish(
        &bus,
        &Pong {
            id: uuid::Uuid::now_v7(),
        },
    )
    .await;
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 0);
}
}

testkit::backend_tests! {
async fn a_message_published_in_a_rolled_back_transaction_is_never_delivered(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let mut tx = bus.begin().await.unwrap();
    tx.publish(&ping(1)).await.unwrap();
    tx.rollback().await.unwrap();
    let mut dropped = bus.begin().await.unwrap();
    dropped.publish(&ping(2)).await.unwrap();
    drop(dropped);
    assert_eq!(bus.run_pending().await.unwrap(), 0);
    assert!(effects(&t.db, "a").await.is_empty());
}
}

testkit::backend_tests! {
async fn a_business_write_and_the_message_published_with_it_commit_or_roll_back_together(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let order = |committed: bool| {
        let bus = bus.clone();
        async move {
            let mut tx = bus.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO effects (consumer, message_id, correlation_id, n) \
                 VALUES ('handler', 'business', 'row', $1)",
            )
            .bind(i64::from(committed))
            .execute(&mut *tx)
            .await
            .unwrap();
            let id = tx.publish(&ping(u32::from(committed))).await.unwrap();
            if committed {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            id
        }
    };
    order(false).await;
    let delivered = order(true).await;
    assert_eq!(bus.run_pending().await.unwrap(), 1);
    assert_eq!(effects(&t.db, "handler").await, [("business".into(), 1)]);
    assert_eq!(effects(&t.db, "a").await, [(delivered.to_string(), 1)]);
}
}

testkit::backend_tests! {
async fn a_message_written_in_a_rolled_back_savepoint_is_dropped_with_it(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let mut tx = bus.begin().await.unwrap();
    let kept = tx.publish(&ping(1)).await.unwrap();
    let mut undone = tx.savepoint().await.unwrap();
    undone.publish(&ping(2)).await.unwrap();
    undone.rollback().await.unwrap();
    let mut released = tx.savepoint().await.unwrap();
    let also_kept = released.publish(&ping(3)).await.unwrap();
    released.commit().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(bus.run_pending().await.unwrap(), 2);
    assert_eq!(
        effects(&t.db, "a").await,
        [(kept.to_string(), 1), (also_kept.to_string(), 3)]
    );
}
}

#[test]
#[should_panic(expected = "registered twice")]
fn two_consumers_with_one_name_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = runtime.block_on(open(&format!(
        "sqlite://{}",
        dir.path().join("test.db").display()
    )));
    bus_with(
        &db,
        &[Scripted::applying("same"), Scripted::applying("same")],
        BusConfig::default(),
    );
}

testkit::backend_tests! {
async fn envelopes_carry_type_correlation_causation_and_headers(backend) {
    let t = test_db(backend).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let relay = {
        let seen = seen.clone();
        Scripted::new(
            "relay",
            &[Ping::TYPE, Pong::TYPE],
            Arc::new(move |envelope| {
                seen.lock().unwrap().push(envelope.clone());
                Step::Apply
            }),
        )
    };
    let bus = bus_with(&t.db, &[relay], BusConfig::default());
    let message = ping(3);
    let mut outgoing = Outgoing::publish(&message);
    outgoing.headers.insert("trace".into(), "abc".into());
    let mut tx = bus.begin().await.unwrap();
    let id = tx.write(&outgoing).await.unwrap();
    tx.commit().await.unwrap();
    bus.run_pending().await.unwrap();
    let seen = seen.lock().unwrap();
    let envelope = &seen[0];
    assert_eq!(envelope.message_id, id);
    assert_eq!(envelope.message_type, "Ping");
    assert_eq!(envelope.correlation_id, message.id);
    assert_eq!(envelope.causation_id, None);
    assert_eq!(envelope.headers["trace"], "abc");
    assert_eq!(envelope.attempts, 0);
    assert_eq!(envelope.decode::<Ping>().unwrap().n, 3);
    assert!(envelope.is::<Ping>() && !envelope.is::<Pong>());
    assert_eq!(id.0.get_version_num(), 7, "ids are UUID v7");
}
}

testkit::backend_tests! {
async fn messages_published_by_a_consumer_name_their_cause(backend) {
    struct Forward;
    #[bus::async_trait]
    impl bus::Handler for Forward {
        type Messages = Ping;
        fn name(&self) -> &str {
            "forward"
        }
        async fn handle(
            &self,
            _ping: Ping,
            envelope: &bus::Envelope,
            tx: &mut bus::Tx<'_>,
        ) -> Result<(), bus::ConsumeError> {
            tx.publish(&Pong {
                id: envelope.correlation_id,
            })
            .await?;
            Ok(())
        }
    }
    let t = test_db(backend).await;
    let causes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let causes = causes.clone();
        Scripted::new(
            "sink",
            &[Pong::TYPE],
            Arc::new(move |e| {
                causes
                    .lock()
                    .unwrap()
                    .push((e.causation_id, e.correlation_id));
                Step::Apply
            }),
        )
    };
    let bus = bus::Bus::builder(t.db.clone())
        .consumer(Arc::new(Forward))
        .consumer(sink)
        .build();
    let message = ping(1);
    let id = publish(&bus, &message).await;
    bus.run_pending().await.unwrap();
    assert_eq!(*causes.lock().unwrap(), [(Some(id), message.id)]);
}
}

#[tokio::test]
async fn an_unsupported_url_is_refused() {
    let error = storage::Db::connect(&DbOptions::new("mysql://x"))
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::UnsupportedUrl(url) if url == "mysql://x"));
    for url in [
        "sqlite::memory:",
        "sqlite://shared?mode=memory&cache=shared",
    ] {
        let error = storage::Db::connect(&DbOptions::new(url))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DbError::InMemory(given) if given == url),
            "{error}"
        );
    }
}

#[test]
fn durability_modes_are_named_full_and_normal() {
    assert_eq!("full".parse(), Ok(storage::Synchronous::Full));
    assert_eq!("NORMAL".parse(), Ok(storage::Synchronous::Normal));
    assert!("off".parse::<storage::Synchronous>().is_err());
    assert_eq!(storage::Synchronous::default(), storage::Synchronous::Full);
}

/// `PRAGMA synchronous` and `journal_mode` as a connection reports them.
async fn durability(conn: &mut storage::Conn<'_>) -> (i64, String) {
    let synchronous = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let journal = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (synchronous, journal)
}

#[tokio::test]
async fn sqlite_opens_and_delivers_with_synchronous_full_and_normal() {
    let dir = tempfile::tempdir().unwrap();
    for (file, mode, level) in [
        ("full.db", storage::Synchronous::Full, 2),
        ("normal.db", storage::Synchronous::Normal, 1),
    ] {
        let db = open_with(
            &format!("sqlite://{}", dir.path().join(file).display()),
            mode,
        )
        .await;
        let mut writer = db.begin().await.unwrap();
        assert_eq!(
            durability(&mut writer).await,
            (level, "wal".into()),
            "{mode:?}"
        );
        writer.rollback().await.unwrap();
        let mut reader = db.read().await.unwrap();
        assert_eq!(
            durability(&mut reader).await,
            (level, "wal".into()),
            "{mode:?}"
        );
        drop(reader);
        create_effects(&db).await;
        let bus = bus_with(&db, &[Scripted::applying("a")], BusConfig::default());
        let id = publish(&bus, &ping(1)).await;
        assert_eq!(bus.run_pending().await.unwrap(), 1);
        assert_eq!(effects(&db, "a").await, [(id.to_string(), 1)], "{mode:?}");
        db.close().await;
    }
}
