//! SQLite: a thread of its own copies the write-ahead log into the database file.
//!
//! SQLite checkpoints inside the commit that crosses `wal_autocheckpoint`, on the one writer:
//! that commit, and every request waiting behind it, pays for copying and syncing the pages.
//! Here a thread with a connection of its own runs a passive checkpoint every interval, which
//! waits for no one and which no writer waits for. The writer's own automatic checkpoint stays
//! as a backstop, far above what an interval writes, in case this thread cannot keep up.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::sqlite::SqliteConn;

/// The running checkpoint thread; it stops when this is stopped or dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    /// Dropping the sender wakes the thread, which then ends.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing on `conn` every `every`.
    pub(crate) fn start(mut conn: SqliteConn, every: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(error) = conn.checkpoint() {
                        tracing::warn!(%error, "a checkpoint of the write-ahead log failed; the next one tries again");
                    }
                }
            })?;
        Ok(Self {
            stop: Mutex::new(Some(stop)),
        })
    }

    /// Stops the thread after the checkpoint it may be running; the log left over is
    /// checkpointed when the last connection closes, as SQLite always does.
    pub(crate) fn stop(&self) {
        let sender = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(sender);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
