//! Waking whoever waits for news of one correlation id (an order, say) when a transaction of
//! this process that changed it commits, so that clients can wait for a change instead of
//! polling the database.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;
use uuid::Uuid;

/// Sweeping for abandoned waits starts once this many correlation ids are watched.
const FIRST_SWEEP: usize = 256;

/// Waiting callers by correlation id. Each waits on a one-shot signal that fires once.
#[derive(Default)]
pub(crate) struct Watchers {
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    waiting: HashMap<Uuid, Vec<oneshot::Sender<()>>>,
    sweep_at: usize,
}

impl Watchers {
    /// A signal that fires when a change of `correlation_id` next commits here.
    pub(crate) fn watch(&self, correlation_id: Uuid) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.state.lock().expect("watchers lock");
        state
            .waiting
            .entry(correlation_id)
            .or_default()
            .push(sender);
        if state.waiting.len() >= state.sweep_at.max(FIRST_SWEEP) {
            // Callers that gave up (timed out) leave closed senders behind.
            state.waiting.retain(|_, senders| {
                senders.retain(|sender| !sender.is_closed());
                !senders.is_empty()
            });
            state.sweep_at = state.waiting.len() * 2;
        }
        receiver
    }

    /// Wakes everyone waiting for one of `changed`, after the change committed.
    pub(crate) fn notify(&self, changed: impl IntoIterator<Item = Uuid>) {
        let mut state = self.state.lock().expect("watchers lock");
        if state.waiting.is_empty() {
            return;
        }
        for id in changed {
            for sender in state.waiting.remove(&id).unwrap_or_default() {
                let _ = sender.send(());
            }
        }
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.state.lock().expect("watchers lock").waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_only_the_waits_for_its_correlation() {
        let watchers = Watchers::default();
        let (order, other) = (Uuid::now_v7(), Uuid::now_v7());
        let first = watchers.watch(order);
        let second = watchers.watch(order);
        let mut unrelated = watchers.watch(other);
        watchers.notify([order]);
        first.await.unwrap();
        second.await.unwrap();
        assert!(unrelated.try_recv().is_err(), "other ids keep waiting");
        assert_eq!(watchers.watched(), 1);
    }

    #[test]
    fn abandoned_waits_are_swept_instead_of_piling_up() {
        let watchers = Watchers::default();
        for _ in 0..10 * FIRST_SWEEP {
            drop(watchers.watch(Uuid::now_v7()));
        }
        assert!(watchers.watched() <= FIRST_SWEEP, "{}", watchers.watched());
    }
}
