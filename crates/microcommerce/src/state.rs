//! What every handler can reach, below the feature modules so that they never import start-up.

use std::sync::{Arc, Mutex};

use bus::{Bus, Tx, TxFuture, Workers};
use storage::{Conn, Db};

use crate::config::Config;

/// What every handler can reach: one shared handle, so that the copies every request makes
/// (each layer and handler takes its own) cost one reference count, not one per field.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

/// The state itself, reached through [`AppState`]'s dereference.
pub struct Shared {
    /// The database.
    pub db: Db,
    /// The bus, for publishing in handlers' transactions.
    pub bus: Bus,
    /// The configuration the app was built with.
    pub config: Config,
    /// The running workers, for readiness and shutdown.
    workers: Mutex<Option<Workers>>,
    /// Turns true when shutdown begins, so that requests held open (waiting for an order to
    /// change) answer at once instead of delaying it.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl AppState {
    /// The state of a service that has not started its workers.
    pub fn new(db: Db, bus: Bus, config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                db,
                bus,
                config,
                workers: Mutex::new(None),
                stopping: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// A connection for reads: the one way handlers read. It never waits behind the writer
    /// and sees only committed data.
    pub async fn read(&self) -> crate::Result<Conn<'static>> {
        Ok(self.db.read().await?)
    }

    /// Runs `job` on `input` in a write transaction and returns its result once committed:
    /// the one way handlers write. What the job publishes commits with its writes. Behind this
    /// call the bus may share the transaction with other requests' jobs (group commit) and run
    /// a job again after another job failed, so a job only touches the database and reads its
    /// input by reference.
    pub async fn write<I, T, F>(&self, input: I, job: F) -> crate::Result<T>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'t, 'c> Fn(&'t mut Tx<'c>, &'t I) -> TxFuture<'t, crate::Result<T>>
            + Send
            + Sync
            + 'static,
    {
        let (input, job) = (Arc::new(input), Arc::new(job));
        self.bus
            .transact(move |tx| {
                let (input, job) = (Arc::clone(&input), Arc::clone(&job));
                Box::pin(async move { job(tx, &input).await })
            })
            .await
    }

    /// Keeps the started workers, for readiness and shutdown.
    pub fn set_workers(&self, workers: Workers) {
        *self.workers.lock().expect("workers lock") = Some(workers);
    }

    /// The workers, taken out to shut them down.
    pub fn take_workers(&self) -> Option<Workers> {
        self.workers.lock().expect("workers lock").take()
    }

    /// Starts shutdown: requests held open answer at once.
    pub fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// True while the bus workers are alive.
    pub fn workers_running(&self) -> bool {
        self.workers
            .lock()
            .map(|slot| slot.as_ref().is_some_and(Workers::is_running))
            .unwrap_or(false)
    }

    /// Completes once shutdown has begun.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}
