//! Crashes: a worker aborted mid-transaction, and a whole process killed with SIGKILL.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus::BusConfig;

use bus::Message;

use crate::helpers::*;

testkit::backend_tests! {
async fn a_worker_aborted_mid_transaction_loses_nothing_and_applies_once_after_restart(backend) {
    let t = test_db(backend).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked_once = Arc::new(AtomicBool::new(false));
    let script: Script = {
        let (gate, blocked_once) = (gate.clone(), blocked_once.clone());
        Arc::new(move |_| {
            if blocked_once.swap(true, Ordering::SeqCst) {
                Step::Apply
            } else {
                Step::Wait(gate.clone())
            }
        })
    };
    let stuck = Scripted::new("stuck", &[Ping::TYPE], script);
    let bus = bus_with(&t.db, std::slice::from_ref(&stuck), BusConfig::default());
    let id = publish(&bus, &ping(1)).await;
    let running = tokio::spawn({
        let bus = bus.clone();
        async move { bus.run_pending().await }
    });
    stuck.entered.notified().await; // the effect row is written, the transaction still open
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(
        effects(&t.db, "stuck").await.is_empty(),
        "the open transaction never committed"
    );
    assert_eq!(count(&t.db, "SELECT COUNT(*) FROM bus_queue").await, 1);
    // On PostgreSQL the aborted transaction ends when the pool takes its connection back, in a
    // task of its own; until then its claim still locks the message, which workers skip.
    for _ in 0..500 {
        if bus.run_pending().await.unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(effects(&t.db, "stuck").await, [(id.to_string(), 1)]);
}
}

const CHILD_DB: &str = "BUS_CRASH_CHILD_DB";
const CHILD_MARKER: &str = "BUS_CRASH_CHILD_MARKER";
const MESSAGES: u32 = 10;
const BLOCK_AT: u32 = 5;

/// Kills the child process when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

testkit::backend_tests! {
async fn a_process_killed_mid_batch_loses_nothing_and_applies_every_effect_once(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("crashy")], BusConfig::default());
    for n in 0..MESSAGES {
        publish(&bus, &ping(n)).await;
    }
    // Outside the database, so that the child can say where it is without committing.
    let marker: PathBuf = t.dir().join("child-is-blocked");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash::child_process_killed_mid_batch",
                "--nocapture",
            ])
            .env(CHILD_DB, &t.url)
            .env(CHILD_MARKER, &marker)
            .spawn()
            .unwrap(),
    );
    eventually(
        "the child to block mid-batch",
        Duration::from_secs(60),
        || {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("the child exited before it blocked: {status}");
            }
            std::future::ready(marker.exists().then_some(()))
        },
    )
    .await;
    child.0.kill().unwrap(); // SIGKILL: no destructor, no rollback, no flush
    let status = child.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );

    let before_restart: Vec<u32> = seen(&t.db, "crashy").await;
    assert_eq!(
        before_restart,
        (0..BLOCK_AT - 1).collect::<Vec<_>>(),
        "the batches before the blocked one committed, the blocked one did not"
    );
    let db = open(&t.url).await;
    let restarted = bus_with(&db, &[Scripted::applying("crashy")], BusConfig::default());
    restarted.run_pending().await.unwrap();
    let mut applied: Vec<u32> = seen(&db, "crashy").await;
    applied.sort();
    assert_eq!(
        applied,
        (0..MESSAGES).collect::<Vec<_>>(),
        "each message exactly once"
    );
}
}

/// The process the SIGKILL test starts and kills: its workers consume in batches of two and
/// block forever inside the batch holding message 5 (after writing that message's effect row),
/// once they have told the parent through a file.
#[tokio::test]
#[ignore = "child process of the SIGKILL test; run by it, not on its own"]
async fn child_process_killed_mid_batch() {
    let (Ok(url), Ok(marker)) = (std::env::var(CHILD_DB), std::env::var(CHILD_MARKER)) else {
        panic!("run by a_process_killed_mid_batch_loses_nothing_and_applies_every_effect_once");
    };
    let db = open(&url).await;
    let script: Script = Arc::new(move |e| {
        if e.decode::<Ping>().unwrap().n == BLOCK_AT {
            std::fs::write(&marker, b"blocked").unwrap();
            Step::Wait(Arc::new(tokio::sync::Semaphore::new(0)))
        } else {
            Step::Apply
        }
    });
    let bus = bus_with(
        &db,
        &[Scripted::new("crashy", &[Ping::TYPE], script)],
        BusConfig {
            batch_size: 2,
            ..BusConfig::default()
        },
    );
    let _workers = bus.start();
    std::future::pending::<()>().await; // the parent kills this process while it blocks
}
