//! Start-up: database, bus, consumers, router and listener, assembled in one place.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use bus::{Bus, BusConfig};
use storage::{Db, DbOptions};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::BODY_LIMIT;
use crate::state::AppState;
use crate::{cart, catalog, http, inventory, openapi, ordering, web};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Db(#[from] storage::DbError),
    /// Seeding or another statement failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A built service, bound to its port but not yet serving.
pub struct App {
    state: AppState,
    limiter: Arc<http::Limiter>,
    listener: TcpListener,
    /// The metrics' own listener, with `--metrics-addr`.
    metrics_listener: Option<TcpListener>,
}

/// Opens the database and brings every table up to date; seeds the demo catalog if asked.
pub async fn prepare_database(config: &Config) -> Result<Db, StartError> {
    let mut options = DbOptions::new(&config.database_url);
    options.synchronous = config.synchronous;
    options.pin_writer = config.pin_writer;
    options.max_connections = config.db_pool_size;
    options.statement_timeout = config.statement_timeout;
    options.connect_timeout = config.connect_timeout;
    options.search_path = SCHEMAS.iter().map(|s| (*s).to_owned()).collect();
    let db = Db::connect(&options).await?;
    Bus::migrate(&db).await?;
    saga::migrate(&db).await?;
    db.migrate(storage::Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    })
    .await?;
    Ok(db)
}

/// PostgreSQL schemas, one per module (`messaging` holds the bus and the sagas); SQL names
/// tables unqualified and the search path finds them.
const SCHEMAS: [&str; 6] = [
    "public",
    "messaging",
    "catalog",
    "inventory",
    "cart",
    "ordering",
];

/// A listener on `addr`, or why there is none.
async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// The bus with every module's consumers registered.
pub fn build_bus(db: Db, config: &Config) -> Bus {
    let bus_config = BusConfig {
        workers: config.workers,
        batch_size: config.batch_size,
        hand_over: config.hand_over,
        ..BusConfig::default()
    };
    let consumers = [
        ordering::consumers(config),
        inventory::consumers(),
        cart::consumers(),
    ];
    consumers
        .into_iter()
        .flatten()
        .fold(Bus::builder(db).config(bus_config), |builder, consumer| {
            builder.consumer(consumer)
        })
        .build()
}

impl App {
    /// Binds the listener (port 0 picks a free port, which tests read back with
    /// [`App::local_addr`]), then prepares the database and builds the bus. Binding comes
    /// first, so that a port already taken stops the start before the database is migrated or
    /// seeded.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let listener = bind(&config.addr).await?;
        let metrics_listener = match &config.metrics_addr {
            Some(addr) if config.metrics => Some(bind(addr).await?),
            _ => None,
        };
        if config.metrics {
            http::metrics::install();
        }
        let db = prepare_database(&config).await?;
        if config.seed {
            catalog::seed_if_empty(&db).await?;
        }
        let bus = build_bus(db.clone(), &config);
        let limiter = http::Limiter::new(config.limits, &config.admin_token);
        let state = AppState::new(db, bus, config);
        Ok(Self {
            state,
            limiter,
            listener,
            metrics_listener,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state, for tests and tools that act next to the HTTP API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address of the metrics' own listener, with `--metrics-addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The limits' state, for reading what they hold (requests held open now).
    pub fn limiter(&self) -> &Arc<http::Limiter> {
        &self.limiter
    }

    /// Starts the workers and serves until `shutdown` completes; then stops taking requests,
    /// lets in-flight messages finish, and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        if state.config.workers > 0 {
            state.set_workers(state.bus.start());
        }
        tracing::info!(addr = %self.local_addr(), "serving");
        let (stop_maintenance, stopped) = tokio::sync::watch::channel(false);
        let maintenance = tokio::spawn(prune_finished_checkouts(state.clone(), stopped.clone()));
        let tallies = tokio::spawn(fold_tallies(state.clone(), stopped.clone()));
        let upkeep = tokio::spawn(http::metrics::keep_up(stopped));
        let stopping = state.clone();
        let metrics = self
            .metrics_listener
            .map(|listener| tokio::spawn(serve_metrics(listener, state.clone())));
        let service = router_limited_by(state.clone(), self.limiter)
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.begin_stopping();
            })
            .await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = stop_maintenance.send(true);
        let _ = maintenance.await;
        let _ = tallies.await;
        let _ = upkeep.await;
        if let Some(workers) = state.take_workers() {
            workers.shutdown().await;
        }
        state.db.close().await;
        tracing::info!("stopped");
        result
    }
}

/// `GET /metrics` alone, without a token, on the metrics' own listener, until the app stops.
async fn serve_metrics(listener: TcpListener, state: AppState) {
    let stopping = state.clone();
    let metrics = Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move {
                http::metrics::render(&state).await
            }),
        )
        .with_state(state);
    let served = axum::serve(listener, metrics)
        .with_graceful_shutdown(async move { stopping.stopping().await })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "the metrics listener failed");
    }
}

/// Hourly: deletes finished checkouts older than the configured retention.
async fn prune_finished_checkouts(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        let before = state.db.now().minus(state.config.saga_retention);
        let saga = ordering::checkout::CheckoutSaga::NAME;
        match saga::prune_completed(&state.bus, saga, before).await {
            Ok(pruned) => tracing::info!(pruned, "pruned finished checkouts"),
            Err(error) => tracing::warn!(%error, "pruning finished checkouts failed"),
        }
    }
}

/// Every second: folds the changes recorded since into the tallies the console reads (orders
/// by status, checkouts by state), so that a reader adds up few pending rows. Only PostgreSQL
/// leaves any: on SQLite the triggers add to the tallies directly.
async fn fold_tallies(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        let folded = tokio::try_join!(
            saga::fold_tallies(&state.db),
            ordering::fold_tallies(&state.db)
        );
        if let Err(error) = folded {
            tracing::warn!(%error, "folding the counts failed; they stay pending until the next try");
        }
    }
}

/// Every module's routes under one router, with the shared layers and limits of its own.
pub fn router(state: AppState) -> Router {
    let limiter = http::Limiter::new(state.config.limits, &state.config.admin_token);
    router_limited_by(state, limiter)
}

/// The same, its limits kept in `limiter`.
fn router_limited_by(state: AppState, limiter: Arc<http::Limiter>) -> Router {
    Router::new()
        .merge(openapi::api_routes())
        .merge(web::router())
        .fallback(web::fallback)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(axum::middleware::from_fn(http::retry_conflicts))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            http::enforce_limits,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::buyer_identity,
        ))
        .layer(axum::middleware::from_fn_with_state(
            http::Traced(state.config.traces),
            http::observe,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.config.trusted_proxies.clone()),
            http::find_client_address,
        ))
        .with_state(state)
}
