//! The writer lane: the tasks that write for the bus (its workers, and on SQLite the
//! group-commit writer) run on a thread of their own, optionally bound to one CPU (on Linux;
//! elsewhere the system places the thread).
//!
//! On SQLite the write connection runs each statement on the thread that holds it
//! (`crate::sqlite`), so on the lane SQLite's work stays on one thread and one CPU, next to its
//! page cache, and a request that queues a job for the group-commit writer wakes one known
//! thread. On PostgreSQL a worker's batch is a chain of statements, each waiting for the
//! server; transactions begun on the lane take connections the lane's runtime drives, so each
//! answer wakes the lane's thread at once instead of waiting its turn behind the request tasks
//! of the shared runtime. See `docs/architecture.md` ("The writer lane and the in-place write
//! connection").

use std::cell::Cell;
use std::future::Future;
use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A thread with a single-threaded tokio runtime, pinned to one CPU when asked and when the
/// process may use more than one. Dropping the lane stops the thread; tasks still on it are
/// dropped with its runtime.
#[derive(Debug)]
pub(crate) struct WriterLane {
    handle: Handle,
    cpu: Option<usize>,
    /// Dropping it ends the runtime's `block_on`, which stops the thread.
    _stop: oneshot::Sender<()>,
}

thread_local! {
    /// True on a lane's thread, whose runtime runs only lane tasks.
    static ON_LANE: Cell<bool> = const { Cell::new(false) };
}

impl WriterLane {
    /// True when called from a task running on a writer lane.
    pub(crate) fn is_current() -> bool {
        ON_LANE.with(Cell::get)
    }

    /// Starts the thread; with `pin`, binds it to the last CPU the process may use.
    pub(crate) async fn start(pin: bool) -> io::Result<Self> {
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("bus-writer".into())
            .spawn(move || {
                ON_LANE.with(|on_lane| on_lane.set(true));
                let cpu = if pin { pin_to_last_cpu() } else { None };
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let _ = ready.send(Ok((runtime.handle().clone(), cpu)));
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })?;
        let (handle, cpu) = started
            .await
            .map_err(|_| io::Error::other("the writer thread ended while starting"))??;
        let lane = Self {
            handle,
            cpu,
            _stop: stop,
        };
        if let Some(cpu) = lane.cpu() {
            tracing::debug!(cpu, "writer lane bound to one CPU");
        }
        Ok(lane)
    }

    /// Runs `future` on the lane's thread.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// The CPU the lane is bound to, if it is.
    pub(crate) fn cpu(&self) -> Option<usize> {
        self.cpu
    }
}

/// Binds the calling thread to the highest-numbered CPU it may run on (the first CPU tends to
/// take most device interrupts). Nothing is done, and `None` returned, when only one CPU is
/// allowed or the system refuses.
#[cfg(target_os = "linux")]
fn pin_to_last_cpu() -> Option<usize> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let allowed = sched_getaffinity(None).ok()?;
    if allowed.count() < 2 {
        return None;
    }
    let cpu = (0..CpuSet::MAX_CPU)
        .rev()
        .find(|&cpu| allowed.is_set(cpu))?;
    let mut only = CpuSet::new();
    only.set(cpu);
    match sched_setaffinity(None, &only) {
        Ok(()) => Some(cpu),
        Err(error) => {
            tracing::warn!(%error, "could not bind the writer thread to one CPU");
            None
        }
    }
}

/// Binding a thread to a CPU is done on Linux only; elsewhere the system places the lane.
#[cfg(not(target_os = "linux"))]
fn pin_to_last_cpu() -> Option<usize> {
    None
}

/// The tests read and check CPU affinity, which only Linux lets them do.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn cpus_allowed() -> rustix::thread::CpuSet {
        rustix::thread::sched_getaffinity(None).expect("affinity readable")
    }

    #[tokio::test]
    async fn a_pinned_lane_runs_its_tasks_on_the_last_allowed_cpu_when_there_are_several() {
        let allowed = cpus_allowed();
        let lane = WriterLane::start(true).await.expect("lane starts");
        let on_lane = lane
            .spawn(async { (cpus_allowed().count(), rustix::thread::sched_getcpu()) })
            .await
            .expect("task runs");
        if allowed.count() >= 2 {
            let last = (0..rustix::thread::CpuSet::MAX_CPU)
                .rev()
                .find(|&cpu| allowed.is_set(cpu));
            assert_eq!(lane.cpu(), last);
            assert_eq!(on_lane, (1, last.expect("a CPU")));
        } else {
            assert_eq!(lane.cpu(), None, "one CPU: nothing to choose");
        }
        // The caller's own thread is left as it was.
        assert_eq!(cpus_allowed().count(), allowed.count());
    }

    #[tokio::test]
    async fn an_unpinned_lane_keeps_the_process_affinity_and_stops_when_dropped() {
        let lane = WriterLane::start(false).await.expect("lane starts");
        assert_eq!(lane.cpu(), None);
        let allowed = lane
            .spawn(async { cpus_allowed().count() })
            .await
            .expect("task runs");
        assert_eq!(allowed, cpus_allowed().count());
        let (_keep, never) = oneshot::channel::<()>();
        let pending = lane.spawn(async move {
            let _ = never.await;
        });
        drop(lane);
        let ended = pending
            .await
            .expect_err("the task is dropped with the lane");
        assert!(ended.is_cancelled());
    }
}
