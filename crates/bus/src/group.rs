//! Group commit for SQLite: concurrent write transactions share one database transaction, each
//! in its own savepoint, and one durable commit.
//!
//! SQLite has a single writer and, with `synchronous=FULL`, every commit waits for the disk.
//! Requests that would each pay for their own `BEGIN IMMEDIATE … COMMIT` queue here instead; a
//! writer task runs whatever has queued up in one transaction and answers every caller only
//! after that transaction committed, so an acknowledged write is as durable as before.
//!
//! Jobs run straight in the shared transaction, without a savepoint each (which saves two
//! statements per job). If one fails, its writes are mixed with the others', so the whole
//! transaction is rolled back and the group runs again, this time each job in its own
//! savepoint: the failing job's writes are undone alone and the others commit. That is why a job may run more than once, and why it must only
//! touch the database. If the commit itself fails, every job of the group gets the error and
//! none was acknowledged. Before committing, the group hands over what its jobs sent (see
//! [`Bus::transact`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::bus::{Bus, GroupJob, GroupRun, Inner, Tx, TxFuture};

/// Most jobs in one group: bounds how long the first caller of a busy group waits.
const MAX_GROUP: usize = 64;

/// Why a grouped job's transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The database failed (beginning, a savepoint, or the shared commit).
    #[error("database error in a grouped transaction: {0}")]
    Sql(#[source] Arc<sqlx::Error>),
    /// The writer task is gone: the bus is shutting down.
    #[error("the bus is shutting down")]
    ShuttingDown,
    /// The job panicked; its writes were rolled back.
    #[error("the transaction's job panicked")]
    Panicked,
}

impl Bus {
    /// Runs `job` in a write transaction and returns its result once its writes are durable.
    /// With a single writer (SQLite), concurrent jobs share one transaction and one commit
    /// (group commit; see the module docs), and the group hands over what they sent before it
    /// commits; a job that fails is rolled back alone. A job may run more than once, so it
    /// only touches the database. Never call it from inside another transaction: that one
    /// holds the writer the group needs.
    pub async fn transact<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: for<'t, 'c> Fn(&'t mut Tx<'c>) -> TxFuture<'t, Result<T, E>> + Send + Sync + 'static,
        T: Send + 'static,
        E: From<GroupError> + From<sqlx::Error> + Send + 'static,
    {
        if !self.db().has_single_writer() {
            let mut tx = self.begin().await?;
            let value = AssertUnwindSafe(job(&mut tx))
                .catch_unwind()
                .await
                .map_err(|_| GroupError::Panicked)??;
            tx.commit().await?;
            return Ok(value);
        }
        let slot = Arc::new(std::sync::Mutex::new(None));
        let last_result = Arc::clone(&slot);
        let job = Arc::new(job);
        // The job runs on the writer's task, but in the caller's span: its log lines and the
        // trace context of the messages it sends are the caller's.
        let caller = tracing::Span::current();
        let run: GroupRun = Box::new(move |tx| {
            let job = Arc::clone(&job);
            let slot = Arc::clone(&slot);
            Box::pin(
                async move {
                    // A panic leaves the slot empty: an earlier run's result must not stand in.
                    slot.lock().expect("result slot").take();
                    let result = job(tx).await;
                    let ok = result.is_ok();
                    *slot.lock().expect("result slot") = Some(result);
                    ok
                }
                .instrument(caller.clone()),
            )
        });
        let (committed, commit_rx) = oneshot::channel();
        let waiting = &self.inner.group.waiting;
        waiting.fetch_add(1, Ordering::Relaxed);
        if self
            .group_queue()
            .send(GroupJob { run, committed })
            .is_err()
        {
            waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(GroupError::ShuttingDown.into());
        }
        let commit = commit_rx.await.map_err(|_| GroupError::ShuttingDown)?;
        let result = last_result
            .lock()
            .expect("result slot")
            .take()
            .ok_or(GroupError::Panicked)?;
        match (result, commit) {
            (Err(error), _) => Err(error),
            (Ok(_), Err(error)) => Err(GroupError::Sql(error).into()),
            (Ok(value), Ok(())) => Ok(value),
        }
    }

    fn group_queue(&self) -> &mpsc::UnboundedSender<GroupJob> {
        self.inner.group.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let writer = write_groups(Arc::downgrade(&self.inner), receiver);
            self.inner.db.spawn_writing(writer);
            sender
        })
    }
}

/// The writer task: one transaction per group of queued jobs. It holds the bus weakly, so
/// that dropping the last handle ends it.
async fn write_groups(bus: Weak<Inner>, mut queue: mpsc::UnboundedReceiver<GroupJob>) {
    while let Some(first) = queue.recv().await {
        let Some(inner) = bus.upgrade() else { return };
        inner.group.waiting.fetch_sub(1, Ordering::Relaxed);
        let bus = Bus { inner };
        let mut group = vec![first];
        let outcome = run_group(&bus, &mut group, &mut queue)
            .await
            .map_err(Arc::new);
        if outcome.is_ok() {
            let counters = &bus.inner.counters;
            counters.group_commits.fetch_add(1, Ordering::Relaxed);
            counters
                .grouped_jobs
                .fetch_add(group.len() as u64, Ordering::Relaxed);
        }
        if let Err(error) = &outcome {
            tracing::warn!(%error, jobs = group.len(), "a group commit failed");
        }
        for job in group {
            let _ = job.committed.send(outcome.clone());
        }
    }
}

/// Runs the jobs of one group, taking in more as they arrive (up to [`MAX_GROUP`]), then
/// commits; `group` ends up holding every job that shares the outcome. If a job fails, the
/// group runs again, a savepoint per job.
async fn run_group(
    bus: &Bus,
    group: &mut Vec<GroupJob>,
    queue: &mut mpsc::UnboundedReceiver<GroupJob>,
) -> Result<(), sqlx::Error> {
    let mut tx = bus.begin().await?;
    let mut next = 0;
    while next < group.len() {
        let ok = run_job(&group[next], &mut tx).await;
        next += 1;
        if !ok {
            tx.rollback().await?;
            return run_group_carefully(bus, group).await;
        }
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => {
                    bus.inner.group.waiting.fetch_sub(1, Ordering::Relaxed);
                    group.push(job);
                }
                Err(_) => break,
            }
        }
    }
    tx.commit().await
}

/// The group again, each job in its own savepoint, so that a failing job undoes only its own
/// writes.
async fn run_group_carefully(bus: &Bus, group: &[GroupJob]) -> Result<(), sqlx::Error> {
    let mut tx = bus.begin().await?;
    for job in group {
        let mut savepoint = tx.savepoint().await?;
        if run_job(job, &mut savepoint).await {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
    }
    tx.commit().await
}

/// Runs one job; a panic counts as a failure.
async fn run_job(job: &GroupJob, tx: &mut Tx<'_>) -> bool {
    AssertUnwindSafe((job.run)(tx))
        .catch_unwind()
        .await
        .unwrap_or(false)
}
