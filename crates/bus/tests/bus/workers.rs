//! Workers over time: wake-ups, polling, ordering, concurrency and shutdown.

use std::sync::Arc;
use std::time::Duration;

use bus::{BusConfig, Message};
use storage::Timestamp;

use crate::helpers::*;

testkit::backend_tests! {
async fn a_committed_publish_wakes_an_idle_worker(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], sleepy());
    let workers = bus.start();
    tokio::time::sleep(Duration::from_millis(50)).await; // let the worker go idle first
    publish(&bus, &ping(1)).await;
    eventually("the woken worker to consume", Duration::from_secs(5), || async {
        (effects(&t.db, "a").await.len() == 1).then_some(())
    })
    .await;
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn messages_of_one_correlation_are_consumed_in_order_and_never_concurrently(backend) {
    let t = test_db(backend).await;
    let ordered = Scripted::applying("ordered");
    let bus = bus_with(
        &t.db,
        std::slice::from_ref(&ordered),
        BusConfig {
            workers: 4,
            ..BusConfig::default()
        },
    );
    let workers = bus.start();
    let id = uuid::Uuid::now_v7();
    for n in 0..100 {
        publish(&bus, &Ping { id, n }).await;
    }
    eventually("all consumed", LIMIT, || async {
        (effects(&t.db, "ordered").await.len() == 100).then_some(())
    })
    .await;
    let order: Vec<u32> = seen(&t.db, "ordered").await;
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    assert_eq!(
        ordered
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn concurrent_publishers_get_every_message_consumed_exactly_once(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(
        &t.db,
        &[Scripted::applying("a"), Scripted::applying("b")],
        BusConfig::default(),
    );
    let workers = bus.start();
    let publishers = (0..20).map(|task| {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0..50 {
                publish(&bus, &ping(task * 100 + n)).await;
            }
        })
    });
    futures_util::future::join_all(publishers).await;
    eventually("all consumed", LIMIT, || async {
        (count(&t.db, "SELECT COUNT(*) FROM effects").await >= 2000).then_some(())
    })
    .await;
    workers.shutdown().await;
    assert!(queued(&t.db).await.is_empty());
    for consumer in ["a", "b"] {
        let seen = effects(&t.db, consumer).await;
        let distinct: std::collections::HashSet<_> = seen.iter().map(|(id, _)| id).collect();
        assert_eq!((seen.len(), distinct.len()), (1000, 1000), "{consumer}");
    }
    assert_eq!(bus.stats().completed, 2000);
    assert!(
        bus.stats().batches < 2000,
        "batches amortise commits: {:?}",
        bus.stats()
    );
}
}

testkit::backend_tests! {
async fn shutdown_lets_the_batch_in_flight_finish_and_leaves_the_rest_queued(backend) {
    let t = test_db(backend).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let script: Script = {
        let gate = gate.clone();
        Arc::new(move |e| {
            if e.decode::<Ping>().unwrap().n == 0 {
                Step::Wait(gate.clone())
            } else {
                Step::Apply
            }
        })
    };
    let slow = Scripted::new("slow", &[Ping::TYPE], script);
    let bus = bus_with(
        &t.db,
        std::slice::from_ref(&slow),
        BusConfig {
            batch_size: 1,
            ..sleepy()
        },
    );
    publish(&bus, &ping(0)).await;
    for n in 1..=5 {
        publish(&bus, &ping(n)).await;
    }
    let workers = bus.start();
    slow.entered.notified().await;
    let stopping = tokio::spawn(workers.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the message in flight"
    );
    gate.add_permits(1);
    stopping.await.unwrap();
    let done = effects(&t.db, "slow").await.len();
    assert!(done >= 1, "the in-flight message committed");
    let queued = count(&t.db, "SELECT COUNT(*) FROM bus_queue").await as usize;
    assert_eq!(done + queued, 6, "nothing lost");
    let restarted = bus.start();
    eventually("the rest after restart", LIMIT, || async {
        (effects(&t.db, "slow").await.len() == 6).then_some(())
    })
    .await;
    restarted.shutdown().await;
}
}

/// Refuses the first message for good (a dead letter) and applies every later one.
fn refusing_once() -> Script {
    let refused = std::sync::atomic::AtomicBool::new(false);
    Arc::new(move |_| {
        if refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Step::Apply
        } else {
            Step::Permanent
        }
    })
}

testkit::backend_tests! {
async fn a_retried_dead_letter_wakes_an_idle_worker(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::new("a", &[Ping::TYPE], refusing_once())], sleepy());
    let workers = bus.start();
    let id = publish(&bus, &ping(1)).await;
    let letter = eventually("the dead letter", LIMIT, || async {
        bus.dead_letters(1, 0).await.unwrap().pop()
    })
    .await;
    assert!(bus.retry_dead_letter(letter.id).await.unwrap());
    eventually("the retried message to be consumed", Duration::from_secs(5), || async {
        (effects(&t.db, "a").await == [(id.to_string(), 1)]).then_some(())
    })
    .await;
    workers.shutdown().await;
}
}

testkit::backend_tests! {
async fn a_message_committed_by_another_process_is_found_by_polling(backend) {
    let t = test_db(backend).await;
    let polling = bus_with(
        &t.db,
        &[Scripted::applying("a")],
        BusConfig {
            poll_interval: Duration::from_millis(100),
            ..BusConfig::default()
        },
    );
    let workers = polling.start();
    // Another process: its own connections and its own bus, whose commits cannot wake the
    // workers above (on PostgreSQL they do, through NOTIFY, which is fine too).
    let other_db = open(&t.url).await;
    let other = bus_with(&other_db, &[Scripted::applying("a")], BusConfig::default());
    let id = publish(&other, &ping(1)).await;
    eventually("the polling worker to find it", LIMIT, || async {
        (effects(&t.db, "a").await == [(id.to_string(), 1)]).then_some(())
    })
    .await;
    workers.shutdown().await;
    assert_eq!(other.stats().completed, 0);
    other_db.close().await;
}
}

/// Bumps one shared row: the stand-in for stock that batches of different workers lock.
struct RowBumper;

#[bus::async_trait]
impl bus::Handler for RowBumper {
    type Messages = Ping;

    fn name(&self) -> &str {
        "bumper"
    }

    async fn handle(
        &self,
        _ping: Ping,
        _envelope: &bus::Envelope,
        tx: &mut bus::Tx<'_>,
    ) -> Result<(), bus::ConsumeError> {
        sqlx::query("UPDATE bumps SET n = n + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// A batch that cannot get a row lock in time (a deadlock partner, or a long holder) steps
/// back and runs again later; the lost race is not a failed attempt of its messages.
#[tokio::test]
async fn a_batch_that_loses_a_lock_race_runs_again_without_using_an_attempt() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let t = test_db(backend).await;
    t.db.execute(sqlx::query(
        "CREATE TABLE bumps (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
    ))
    .await
    .unwrap();
    t.db.execute(sqlx::query("INSERT INTO bumps VALUES (1, 0)"))
        .await
        .unwrap();
    let bus = bus::Bus::builder(t.db.clone())
        .config(quick_retries())
        .consumer(Arc::new(RowBumper))
        .build();
    publish(&bus, &ping(1)).await;

    let mut holder = t.db.begin().await.unwrap();
    sqlx::query("UPDATE bumps SET n = n WHERE id = 1")
        .execute(&mut *holder)
        .await
        .unwrap();
    bus.run_pending().await.unwrap();
    let stats = bus.stats();
    assert!(stats.contended >= 1, "{stats:?}");
    assert_eq!((stats.completed, stats.retried), (0, 0), "{stats:?}");
    let waiting = queued(&t.db).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].attempts, &waiting[0].last_error), (0, &None));

    holder.commit().await.unwrap();
    bus.run_pending().await.unwrap();
    assert_eq!(bus.stats().completed, 1);
    assert_eq!(count(&t.db, "SELECT n FROM bumps WHERE id = 1").await, 1);
    assert!(queued(&t.db).await.is_empty());
}

testkit::backend_tests! {
async fn an_announced_change_wakes_its_waiters_once_committed_and_never_when_rolled_back(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[], sleepy());
    let order = uuid::Uuid::now_v7();
    let waiting = tokio::spawn(bus.changed_next(order));

    let mut undone = bus.begin().await.unwrap();
    undone.announce_change(order);
    undone.rollback().await.unwrap();
    let mut unrelated = bus.begin().await.unwrap();
    unrelated.announce_change(uuid::Uuid::now_v7());
    unrelated.commit().await.unwrap();
    // A savepoint rolled back takes its announcement with it, though its transaction commits.
    let mut outer = bus.begin().await.unwrap();
    let mut dropped = outer.savepoint().await.unwrap();
    dropped.announce_change(order);
    dropped.rollback().await.unwrap();
    outer.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "woken without a committed change");

    let mut tx = bus.begin().await.unwrap();
    let mut savepoint = tx.savepoint().await.unwrap();
    savepoint.announce_change(order);
    savepoint.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "woken before the outermost commit");
    tx.commit().await.unwrap();
    tokio::time::timeout(LIMIT, waiting).await.unwrap().unwrap();
}
}

/// Runs `commit` (a transaction on another instance, numbered from 1) every 200 ms until
/// `heard` completes: this instance's listener connects in the background, so the first
/// commits may go unheard. Returns how many ran.
async fn commit_until_heard<C, F>(
    heard: impl Future<Output = ()> + Send + 'static,
    mut commit: C,
) -> u32
where
    C: FnMut(u32) -> F,
    F: Future<Output = ()>,
{
    let mut heard = tokio::spawn(heard);
    let mut sent = 0;
    let arrived = tokio::time::timeout(LIMIT, async {
        loop {
            sent += 1;
            commit(sent).await;
            if tokio::time::timeout(Duration::from_millis(200), &mut heard)
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "no announcement from the other instance arrived"
    );
    sent
}

/// On PostgreSQL a dead letter retried by one instance wakes another instance's idle workers
/// (a sleepy poll would take an hour), as any commit that queues a message does.
#[tokio::test]
async fn a_dead_letter_retried_by_another_instance_wakes_this_ones_workers() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let t = test_db(backend).await;
    let here = bus_with(
        &t.db,
        &[Scripted::new("a", &[Ping::TYPE], refusing_once())],
        sleepy(),
    );
    let workers = here.start();
    let id = publish(&here, &ping(1)).await;
    let letter = eventually("the dead letter", LIMIT, || async {
        here.dead_letters(1, 0).await.unwrap().pop()
    })
    .await;
    let elsewhere = bus_with(&open(&t.url).await, &[Scripted::applying("a")], sleepy());
    // This instance's listener connects in the background: wait until it hears the other.
    announce_until_heard(&elsewhere, &here).await;
    assert!(elsewhere.retry_dead_letter(letter.id).await.unwrap());
    eventually("the retried message consumed here", LIMIT, || async {
        (effects(&t.db, "a").await == [(id.to_string(), 1)]).then_some(())
    })
    .await;
    workers.shutdown().await;
}

/// Announces a change on `elsewhere` until a waiter on `here` hears of it.
async fn announce_until_heard(elsewhere: &bus::Bus, here: &bus::Bus) {
    let order = uuid::Uuid::now_v7();
    commit_until_heard(here.changed_next(order), |_| async {
        let mut tx = elsewhere.begin().await.unwrap();
        tx.announce_change(order);
        tx.commit().await.unwrap();
    })
    .await;
}

/// On PostgreSQL a change announced by one instance wakes the waiters of another, through the
/// listener its workers run.
#[tokio::test]
async fn a_change_announced_by_another_instance_wakes_this_ones_waiters() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let t = test_db(backend).await;
    let here = bus_with(&t.db, &[], sleepy());
    let workers = here.start();
    let elsewhere = bus_with(&open(&t.url).await, &[], sleepy());
    announce_until_heard(&elsewhere, &here).await;
    workers.shutdown().await;
}

/// On PostgreSQL a committed transaction that both writes messages and announces changes wakes
/// another instance's workers (a sleepy poll would take an hour) and its waiters; one that
/// rolls back delivers nothing.
#[tokio::test]
async fn messages_and_changes_committed_by_another_instance_wake_its_workers_and_waiters() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let t = test_db(backend).await;
    let consumer = Scripted::applying("c");
    let here = bus_with(&t.db, std::slice::from_ref(&consumer), sleepy());
    let workers = here.start();
    let elsewhere = bus_with(&open(&t.url).await, &[consumer], sleepy());
    let order = uuid::Uuid::now_v7();

    let mut undone = elsewhere.begin().await.unwrap();
    undone.publish(&Ping { id: order, n: 0 }).await.unwrap();
    undone.announce_change(order);
    undone.rollback().await.unwrap();

    let sent = commit_until_heard(here.changed_next(order), |n| {
        let elsewhere = elsewhere.clone();
        async move {
            let mut tx = elsewhere.begin().await.unwrap();
            tx.publish(&Ping { id: order, n }).await.unwrap();
            tx.announce_change(order);
            tx.commit().await.unwrap();
        }
    })
    .await;
    eventually(
        "the other instance's messages handled here",
        LIMIT,
        || async { (effects(&t.db, "c").await.len() as u32 == sent).then_some(()) },
    )
    .await;
    let handled: Vec<u32> = seen(&t.db, "c").await;
    assert!(
        !handled.contains(&0),
        "the rolled-back message was delivered: {handled:?}"
    );
    workers.shutdown().await;
}

testkit::backend_tests! {
/// Workers run on the writer lane, a thread of their own, with connections the lane drives
/// (on PostgreSQL connections of its own): a batch completes while the runtime serving requests
/// (this test's, which has one thread) is too busy to poll anything.
async fn a_batch_completes_while_the_request_runtime_is_busy(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    publish(&bus, &ping(1)).await;
    let workers = bus.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bus.stats().completed == 0 && std::time::Instant::now() < deadline {
        // Blocks this runtime's only thread: nothing it drives makes progress meanwhile.
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(bus.stats().completed, 1, "the lane finished the batch on its own");
    workers.shutdown().await;
    assert_eq!(effects(&t.db, "a").await.len(), 1);
}
}

/// Workers never shut down still end with the runtime that started them, as that runtime's own
/// tasks would: they hold the database, so otherwise its lane and its connections would live
/// on after the application that used them is gone.
#[test]
fn workers_never_shut_down_end_with_the_runtime_that_started_them() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let started = runtime();
    let t = started.block_on(async {
        let t = test_db(backend).await;
        let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
        publish(&bus, &ping(1)).await;
        let _running = bus.start();
        eventually("the worker to consume", LIMIT, || async {
            (bus.stats().completed == 1).then_some(())
        })
        .await;
        t
    });
    let url = t.url.clone();
    drop(t);
    drop(started);
    runtime().block_on(async {
        use sqlx::Connection;
        let mut watcher = sqlx::AnyConnection::connect(&url).await.unwrap();
        let deadline = tokio::time::Instant::now() + LIMIT;
        let mut others = i64::MAX;
        while others > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            others = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
        }
        assert_eq!(others, 0, "connections left open");
    });
}

/// PostgreSQL: the news of a commit goes out from the bus's sender connection once the commit
/// succeeded, not from the committing transaction, whose commit would otherwise queue behind
/// every other notifying commit's disk flush (see `notify.rs`).
#[tokio::test]
async fn the_news_of_a_commit_is_sent_by_another_connection_after_it() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (_database, bus, mut listener) = bus_and_wake_listener(backend).await;
    let mut tx = bus.begin().await.unwrap();
    let committing: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.publish(&ping(1)).await.unwrap();
    tx.commit().await.unwrap();
    let news = tokio::time::timeout(LIMIT, listener.recv())
        .await
        .expect("the news arrives")
        .unwrap();
    assert_ne!(i64::from(news.process_id()), i64::from(committing));
}

/// PostgreSQL: a message due later than a poll interval (a payment timeout) sends no news to
/// the other instances' workers, which look again within the interval anyway; one due now does.
#[tokio::test]
async fn only_messages_due_within_a_poll_interval_wake_other_instances() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (_database, bus, mut listener) = bus_and_wake_listener(backend).await;
    let later = Timestamp::now().plus(BusConfig::default().poll_interval * 10);
    let mut tx = bus.begin().await.unwrap();
    tx.schedule(later, &ping(1)).await.unwrap();
    tx.commit().await.unwrap();
    let news = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(
        news.is_err(),
        "a message due in twenty seconds woke the instances"
    );
    publish(&bus, &ping(2)).await;
    tokio::time::timeout(LIMIT, listener.recv())
        .await
        .expect("a message due now wakes them")
        .unwrap();
}

/// A bus with one consumer, and a connection listening for the wake-ups its commits send to
/// the other instances.
async fn bus_and_wake_listener(backend: Backend) -> (TestDb, bus::Bus, sqlx::postgres::PgListener) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], BusConfig::default());
    let mut listener = sqlx::postgres::PgListener::connect(&t.url).await.unwrap();
    listener.listen("bus_wake").await.unwrap();
    (t, bus, listener)
}
