//! What every handler can reach, below the feature modules so that they never import start-up.

use std::sync::{Arc, Mutex};

use bus::{Bus, Workers};
use storage::Db;

use crate::config::Config;

/// What every handler can reach: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The bus, for publishing in handlers' transactions.
    pub bus: Bus,
    /// The configuration the app was built with.
    pub config: Arc<Config>,
    /// The running workers, for readiness and shutdown.
    workers: Arc<Mutex<Option<Workers>>>,
    /// Turns true when shutdown begins, so that requests held open (waiting for an order to
    /// change) answer at once instead of delaying it.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// The state of a service that has not started its workers.
    pub fn new(db: Db, bus: Bus, config: Config) -> Self {
        Self {
            db,
            bus,
            config: Arc::new(config),
            workers: Arc::new(Mutex::new(None)),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
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
