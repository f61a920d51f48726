//! One checkout driven in the same process: the bench calls ordering's and payment's service
//! functions directly, as the HTTP handlers do, and waits on the bus's change notices.

use std::time::Instant;

use super::{
    Embedded, Inner, LONG_POLL_RECHECK, SETTLE_LIMIT, awaits_buyer, awaits_buyer_or_settled,
    error_outcome, micros, settled,
};
use crate::{BenchError, BenchOptions, Ending, Outcome, Tally};
use microcommerce_service::app::App;
use microcommerce_service::config::Config;
use microcommerce_service::domain::Email;
use microcommerce_service::ids::{BuyerId, OrderId, ProductId};
use microcommerce_service::ordering::{Order, OrderStatus, ValidCheckout};
use microcommerce_service::state::AppState;

impl Inner {
    pub(super) async fn checkout_in_process(
        &self,
        picks: &[String],
        decline: bool,
        tally: &Tally,
    ) -> Outcome {
        let started = Instant::now();
        let state = &self.embedded[self.take_turn() % self.embedded.len()].state;
        let lines = picks
            .iter()
            .filter_map(|p| p.parse::<ProductId>().ok())
            .map(|p| (p, 1))
            .collect();
        let email = match Email::parse(crate::BUYER_EMAIL) {
            Ok(email) => email,
            Err(error) => return error_outcome(started, &format!("checkout: {error}"), 0),
        };
        let valid = ValidCheckout {
            email,
            address: crate::buyer_address(),
            lines: Some(lines),
        };
        let order = match place_in_process(state, &valid, tally).await {
            Ok(order) => order,
            Err(error) => return error_outcome(started, &format!("checkout: {error}"), 0),
        };
        let first = wait_in_process(state, order.id, awaits_buyer_or_settled).await;
        let to_awaiting = micros(started);
        if !awaits_buyer(&first.0) {
            return settled(first, picks, started, Some(to_awaiting), None);
        }
        let paid_at = Instant::now();
        if let Err(error) = pay_in_process(state, &order, !decline, tally).await {
            return error_outcome(started, &format!("pay: {error}"), 0);
        }
        let last = wait_in_process(state, order.id, OrderStatus::is_settled).await;
        settled(
            last,
            picks,
            started,
            Some(to_awaiting),
            Some(micros(paid_at)),
        )
    }
}

async fn place_in_process(
    state: &AppState,
    valid: &ValidCheckout,
    tally: &Tally,
) -> microcommerce_service::Result<Order> {
    tally.request();
    let buyer = BuyerId(uuid::Uuid::new_v4());
    // In process there is no client address to count.
    let address = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    microcommerce_service::ordering::check_out(state, buyer, address, valid.clone(), None).await
}

async fn pay_in_process(
    state: &AppState,
    order: &Order,
    succeed: bool,
    tally: &Tally,
) -> microcommerce_service::Result<()> {
    tally.request();
    let (order, timeout) = (order.id, state.config.payment_timeout);
    state
        .bus
        .transact(move |tx| {
            Box::pin(async move {
                microcommerce_service::payment::record_payment(tx, order, None, succeed, timeout)
                    .await?;
                Ok(())
            })
        })
        .await
}

async fn wait_in_process(
    state: &AppState,
    order: OrderId,
    done: fn(OrderStatus) -> bool,
) -> (Ending, Option<String>) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while Instant::now() < deadline {
        // Woken when the order's status changes, as the HTTP API's long polling is.
        let news = state.bus.changed_next(order.0);
        if let Ok(mut conn) = state.db.read().await
            && let Ok(Some(found)) = microcommerce_service::ordering::order(&mut conn, order).await
            && done(found.status)
        {
            let reason = found.failure_reason.map(|reason| reason.to_string());
            return (Ending::Settled(found.status), reason);
        }
        let _ = tokio::time::timeout(LONG_POLL_RECHECK, news).await;
    }
    (Ending::Stuck, None)
}

impl Embedded {
    /// Starts `options.instances` servers on one database; returns their base URLs, their
    /// admin token and the servers.
    pub(super) async fn start_all(
        options: &BenchOptions,
    ) -> Result<(Vec<String>, String, Vec<Embedded>), BenchError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
        let (mut bases, mut servers) = (Vec::new(), Vec::new());
        for _ in 0..options.instances.max(1) {
            let (base, server) = Self::start(options, &database_url, &token).await?;
            bases.push(base);
            servers.push(server);
        }
        if let Some(first) = servers.first_mut() {
            first._dir = Some(dir);
        }
        Ok((bases, token, servers))
    }

    /// One server on `database_url`; returns its base URL and itself.
    async fn start(
        options: &BenchOptions,
        database_url: &str,
        token: &str,
    ) -> Result<(String, Embedded), BenchError> {
        let postgres = database_url.starts_with("postgres");
        let config = Config {
            addr: "127.0.0.1:0".into(),
            database_url: database_url.to_owned(),
            synchronous: options.synchronous,
            pin_writer: options.pin_writer,
            workers: options.workers,
            batch_size: options.batch_size,
            hand_over: options.hand_over,
            metrics: options.metrics,
            traces: options.traces,
            admin_token: token.to_owned(),
            db_pool_size: if postgres { 20 } else { 10 },
            limits: microcommerce_service::config::Limits::off(),
            ..Config::default()
        };
        let app = App::build(config).await?;
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let embedded = Embedded {
            state,
            shutdown: std::sync::Mutex::new(Some(shutdown)),
            server: std::sync::Mutex::new(Some(server)),
            _dir: None,
        };
        Ok((base, embedded))
    }

    pub(super) async fn stop(&self) {
        if let Some(shutdown) = self.shutdown.lock().expect("lock").take() {
            let _ = shutdown.send(());
        }
        let server = self.server.lock().expect("lock").take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}
