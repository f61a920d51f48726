//! The checkout, model-checked: proptest drives the real service through random interleavings
//! of the checkout's events and compares it with a small reference model after every step, on
//! both backends.
//!
//! A case is a few products with little stock, one to four checkouts of one to three lines, a
//! batch size, hand-over on or off, and a sequence of steps ([`Step`]): place a checkout (again:
//! the same idempotency key), pay or decline it, cancel it as an operator, fire its payment
//! timeout now, deliver again a message a consumer has completed (under its own id or a new
//! one), send a late event to a finished checkout, run one batch of the bus or drain it, and
//! crash: stop the app between two batches and start a new instance on the same database. The
//! app runs no workers, so nothing moves but the steps and every case replays exactly.
//!
//! The model knows what each checkout was told (the payment or cancel the API accepted, whether
//! its timeout was fired) and predicts what the API must accept. After every step it checks
//! what holds at any moment: no unit oversold or lost (stock never negative, units held and
//! deducted agree with the reservations, a shortage only when others took the units), a settled
//! checkout or order never changes, the saga moved only along the declared transitions
//! ([`checkout::diagram`]) and ended as what it was told allows. After a drain it checks what
//! holds at rest: each checkout settled exactly as it was told, or awaiting payment with its
//! timeout pending; every reservation of a settled checkout deducted or released; stock is the
//! initial stock less what confirmed orders took.
//!
//! A failing case shrinks to a short one, and its seed is kept in `model.proptest-regressions`
//! beside this file (checked in), which every later run replays first. `PROPTEST_CASES` sets
//! the number of cases per backend ([`CASES`] by default).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bus::{Delivery, Destination, Envelope, Message, Outgoing};
use microcommerce_service::contracts::{
    CheckoutCancelled, CheckoutStarted, ClearCart, ConfirmOrder, DeductStock, FailureReason,
    OrderFailed, PaymentCompleted, PaymentFailed, PaymentTimedOut, ReleaseStockReservations,
    ReserveStockForOrder, StockReservationCompleted, StockReservationFailed,
};
use microcommerce_service::ids::{OrderId, ProductId};
use microcommerce_service::ordering::checkout::{self, CheckoutSaga, CheckoutState};
use microcommerce_service::ordering::{self, OrderStatus};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config as Runner, FileFailurePersistence, TestCaseError, TestError, TestRunner,
};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{Backend, Client, TestApp, insert_product, product_name, spawn_instance};

/// Cases per backend: each starts an app on a fresh database, so a few dozen keep the test
/// under a minute per backend on two cores.
const CASES: u32 = 48;
/// Products in every case; each checkout's lines take from them.
const PRODUCTS: usize = 2;
/// Checkouts at most in a case; a step names one by its number modulo the case's count.
const MAX_CHECKOUTS: usize = 4;
/// Where the seeds of failing cases are kept, to be replayed by every run.
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/model.proptest-regressions"
);
/// Batches a drain may take before the bus counts as never settling.
const DRAIN_LIMIT: usize = 500;

testkit::backend_tests! {
async fn the_checkout_keeps_to_its_model_through_random_interleavings(backend) {
    // The runner calls the property synchronously; each case builds a runtime of its own, off
    // this test's runtime.
    tokio::task::spawn_blocking(move || check_the_model(backend))
        .await
        .expect("every case keeps to the model");
}
}

fn check_the_model(backend: Backend) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(Runner {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // Every shrinking step starts an app: bound the search.
        max_shrink_iters: 300,
        max_shrink_time: 240_000,
        ..Runner::default()
    });
    let result = runner.run(&scenario(), |scenario| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the case");
        runtime
            .block_on(run_case(backend, scenario))
            .map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            panic!("{reason}\nshrunk to: {case:#?}")
        }
        Err(error) => panic!("{error}"),
    }
}

/// One generated case.
#[derive(Debug, Clone)]
struct Scenario {
    /// Units on hand of each product at the start.
    stock: Vec<i64>,
    /// Each checkout's lines: units per product number.
    checkouts: Vec<BTreeMap<usize, u32>>,
    /// Messages per bus batch.
    batch_size: usize,
    /// Whether a batch hands messages over instead of queueing them.
    hand_over: bool,
    steps: Vec<Step>,
}

/// What a step does; a checkout is named by its number modulo the case's count.
#[derive(Debug, Clone)]
enum Step {
    /// Place the checkout (again: the same idempotency key, the same order).
    Place(usize),
    /// Pay (`true`) or decline (`false`) its payment.
    Pay(usize, bool),
    /// An operator cancels it.
    Cancel(usize),
    /// Its pending payment timeout becomes due now.
    FireTimeout(usize),
    /// Deliver again a message a consumer has completed: under its own id (a redelivery) or
    /// under a new one (a resend).
    Redeliver { pick: Index, fresh_id: bool },
    /// Send a finished checkout a timeout (0), a cancel (1) or a payment (2) of its own.
    Late(usize, u8),
    /// The bus runs one batch.
    RunBatch,
    /// The bus runs batches until nothing is due.
    Drain,
    /// The app stops between two batches; a new instance starts on the same database.
    Crash,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let lines = prop::collection::vec((0..PRODUCTS, 1u32..=2), 1..=3).prop_map(|lines| {
        let mut merged = BTreeMap::new();
        for (product, units) in lines {
            *merged.entry(product).or_insert(0) += units;
        }
        merged
    });
    (
        prop::collection::vec(1i64..=4, PRODUCTS),
        prop::collection::vec(lines, 1..=MAX_CHECKOUTS),
        prop::sample::select(vec![1usize, 2, 3, 64]),
        any::<bool>(),
        prop::collection::vec(step(), 1..=30),
    )
        .prop_map(
            |(stock, checkouts, batch_size, hand_over, steps)| Scenario {
                stock,
                checkouts,
                batch_size,
                hand_over,
                steps,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    let checkout = || 0..MAX_CHECKOUTS;
    prop_oneof![
        4 => checkout().prop_map(Step::Place),
        4 => (checkout(), prop::bool::weighted(0.7)).prop_map(|(c, ok)| Step::Pay(c, ok)),
        2 => checkout().prop_map(Step::Cancel),
        2 => checkout().prop_map(Step::FireTimeout),
        3 => (any::<Index>(), any::<bool>())
            .prop_map(|(pick, fresh_id)| Step::Redeliver { pick, fresh_id }),
        1 => (checkout(), 0u8..3).prop_map(|(c, kind)| Step::Late(c, kind)),
        4 => Just(Step::RunBatch),
        2 => Just(Step::Drain),
        1 => Just(Step::Crash),
    ]
}

/// What the API accepted for a checkout: at most one of them, ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Paid,
    Declined,
    Cancelled,
}

/// A product of the case.
struct Product {
    id: ProductId,
    name: String,
    initial: i64,
}

/// A checkout of the case and what the model knows of it.
struct Checkout {
    lines: BTreeMap<usize, u32>,
    buyer: Client,
    idempotency_key: String,
    order: Option<OrderId>,
    told: Option<Told>,
    /// The test made its payment timeout due.
    fired: bool,
    /// As observed after the last step.
    seen: Seen,
}

/// A checkout as read after a step.
#[derive(Debug, Clone, Default)]
struct Seen {
    saga: Option<CheckoutState>,
    finished: bool,
    status: Option<OrderStatus>,
    reason: Option<FailureReason>,
    /// Its payment timeout waits in the queue: the token a payment or a cancel must take.
    window_open: bool,
}

/// A reservation row.
struct Reservation {
    order: String,
    product: String,
    quantity: i64,
    status: String,
}

/// The running case: the app, the model, and every message seen waiting in the queue.
struct World {
    url: String,
    batch_size: usize,
    hand_over: bool,
    /// Holds the SQLite file across restarts.
    _dir: tempfile::TempDir,
    app: Option<TestApp>,
    admin: Client,
    products: Vec<Product>,
    checkouts: Vec<Checkout>,
    /// Every message seen in the queue, by consumer, once each, in the order first seen.
    queued: Vec<(String, Envelope)>,
    queued_keys: HashSet<(String, uuid::Uuid)>,
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

async fn run_case(backend: Backend, scenario: Scenario) -> Result<(), String> {
    let mut world = World::start(backend, &scenario).await;
    for (number, step) in scenario.steps.iter().enumerate() {
        let checked = async {
            world.take(step).await?;
            world.observe().await?;
            if matches!(step, Step::Drain) {
                world.check_at_rest().await?;
            }
            Ok::<_, String>(())
        };
        checked
            .await
            .map_err(|error| format!("step {number} ({step:?}): {error}"))?;
    }
    let settled = async {
        world.drain().await?;
        world.observe().await?;
        world.check_at_rest().await
    };
    settled
        .await
        .map_err(|error| format!("after the last step, drained: {error}"))?;
    world.app.take().expect("running").stop().await;
    Ok(())
}

impl World {
    async fn start(backend: Backend, scenario: &Scenario) -> World {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = backend.fresh_url(dir.path()).await;
        let app = instance(&url, scenario.batch_size, scenario.hand_over).await;
        let mut products = Vec::new();
        for initial in &scenario.stock {
            let id = insert_product(&app, 1000, *initial).await;
            let name = product_name(&app, id).await;
            products.push(Product {
                id,
                name,
                initial: *initial,
            });
        }
        let checkouts = scenario
            .checkouts
            .iter()
            .map(|lines| Checkout {
                lines: lines.clone(),
                buyer: app.buyer(),
                idempotency_key: uuid::Uuid::now_v7().to_string(),
                order: None,
                told: None,
                fired: false,
                seen: Seen::default(),
            })
            .collect();
        World {
            url,
            batch_size: scenario.batch_size,
            hand_over: scenario.hand_over,
            _dir: dir,
            admin: app.admin(),
            app: Some(app),
            products,
            checkouts,
            queued: Vec::new(),
            queued_keys: HashSet::new(),
        }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the app runs between steps")
    }

    async fn take(&mut self, step: &Step) -> Result<(), String> {
        let count = self.checkouts.len();
        match *step {
            Step::Place(c) => self.place(c % count).await,
            Step::Pay(c, succeed) => self.pay(c % count, succeed).await,
            Step::Cancel(c) => self.cancel(c % count).await,
            Step::FireTimeout(c) => self.fire_timeout(c % count).await,
            Step::Redeliver { pick, fresh_id } => self.redeliver(pick, fresh_id).await,
            Step::Late(c, kind) => self.send_late(c % count, kind).await,
            Step::RunBatch => {
                self.note_queued().await?;
                self.app().state.bus.run_one_batch().await.map_err(text)?;
                Ok(())
            }
            Step::Drain => self.drain().await,
            Step::Crash => {
                self.app.take().expect("running").stop().await;
                let app = instance(&self.url, self.batch_size, self.hand_over).await;
                for checkout in &mut self.checkouts {
                    checkout.buyer = checkout.buyer.at_instance(&app.base);
                }
                self.admin = app.admin();
                self.app = Some(app);
                Ok(())
            }
        }
    }

    async fn place(&mut self, c: usize) -> Result<(), String> {
        let items: Vec<_> = self.checkouts[c]
            .lines
            .iter()
            .map(|(product, units)| {
                json!({ "productId": self.products[*product].id.to_string(), "quantity": units })
            })
            .collect();
        let checkout = &mut self.checkouts[c];
        let reply = checkout
            .buyer
            .with_idempotency_key(&checkout.idempotency_key)
            .post(
                "/api/ordering/checkout",
                crate::helpers::checkout_request_with(items),
            )
            .await;
        ensure!(
            matches!(reply.status, 200 | 201),
            "placing checkout {c}: {} {}",
            reply.status,
            reply.body
        );
        let order: OrderId = reply.body["orderId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("no order id in {}", reply.body))?;
        if let Some(known) = checkout.order {
            ensure!(
                known == order,
                "checkout {c} placed again made another order"
            );
        }
        checkout.order = Some(order);
        Ok(())
    }

    /// A payment is accepted exactly when the checkout awaits one: nothing was accepted
    /// before, and either its payment window is open or the saga has yet to take in a
    /// reservation the order already shows.
    async fn pay(&mut self, c: usize, succeed: bool) -> Result<(), String> {
        let checkout = &mut self.checkouts[c];
        let Some(order) = checkout.order else {
            return Ok(());
        };
        let seen = &checkout.seen;
        let awaits = match seen.saga {
            Some(CheckoutState::StockReserved { .. }) => seen.window_open,
            Some(CheckoutState::Submitted { .. }) => {
                seen.status == Some(OrderStatus::StockReserved)
            }
            _ => false,
        };
        let expected = checkout.told.is_none() && awaits;
        let reply = checkout
            .buyer
            .post(
                &format!("/api/ordering/orders/{order}/pay"),
                json!({ "shouldSucceed": succeed }),
            )
            .await;
        let accepted = match reply.status {
            200 => true,
            409 => false,
            other => return Err(format!("paying checkout {c}: {other} {}", reply.body)),
        };
        ensure!(
            accepted == expected,
            "checkout {c} ({seen:?}, told {:?}): payment accepted {accepted}, the model expected \
             {expected}: {}",
            checkout.told,
            reply.body
        );
        if accepted {
            checkout.told = Some(if succeed { Told::Paid } else { Told::Declined });
        }
        Ok(())
    }

    /// A cancel is accepted exactly when the payment window of an unfinished checkout is open:
    /// a payment or a cancel accepted before took it, and so did a timeout handled.
    async fn cancel(&mut self, c: usize) -> Result<(), String> {
        let checkout = &mut self.checkouts[c];
        let Some(order) = checkout.order else {
            return Ok(());
        };
        let expected = checkout.seen.window_open && !checkout.seen.finished;
        let reply = self
            .admin
            .send(
                "POST",
                &format!("/api/ordering/orders/{order}/cancel"),
                None,
            )
            .await;
        let accepted = match reply.status {
            202 => true,
            409 => false,
            other => return Err(format!("cancelling checkout {c}: {other} {}", reply.body)),
        };
        ensure!(
            accepted == expected,
            "checkout {c} ({:?}, told {:?}): cancel accepted {accepted}, the model expected \
             {expected}: {}",
            checkout.seen,
            checkout.told,
            reply.body
        );
        if accepted {
            ensure!(checkout.told.is_none(), "checkout {c} was told twice");
            checkout.told = Some(Told::Cancelled);
        }
        Ok(())
    }

    /// Makes the checkout's pending payment timeout due now, as if its window had closed.
    async fn fire_timeout(&mut self, c: usize) -> Result<(), String> {
        let Some(order) = self.checkouts[c].order else {
            return Ok(());
        };
        let seen = &self.checkouts[c].seen;
        let awaits_payment = matches!(seen.saga, Some(CheckoutState::StockReserved { .. }));
        // A timeout queued for a finished checkout is a late one (a step sent it), not its own.
        if !(awaits_payment && seen.window_open) {
            return Ok(());
        }
        let mut tx = self.app().state.bus.begin().await.map_err(text)?;
        let fired = sqlx::query(
            "UPDATE bus_queue SET available_at = 0 \
             WHERE consumer = $1 AND correlation_id = $2 AND message_type = $3",
        )
        .bind(CheckoutSaga::NAME)
        .bind(order.to_string())
        .bind(PaymentTimedOut::TYPE)
        .execute(&mut *tx)
        .await
        .map_err(text)?
        .rows_affected();
        tx.commit().await.map_err(text)?;
        ensure!(fired == 1, "checkout {c}: {fired} timeouts pending");
        self.checkouts[c].fired = true;
        Ok(())
    }

    /// Delivers again one of the messages a consumer has completed. Under a new id, a
    /// reservation command is left out: after a shortage failed its order, inventory takes a
    /// resend for a new request and, once units are free again, holds them for the failed
    /// order, which nothing releases. Nothing in the service resends a message under a new id
    /// (dead letters are retried under their own), so that is a hazard, not a failure.
    async fn redeliver(&mut self, pick: Index, fresh_id: bool) -> Result<(), String> {
        self.note_queued().await?;
        let completed: HashSet<(String, uuid::Uuid)> =
            sqlx::query("SELECT consumer, message_id FROM bus_inbox")
                .fetch_all(self.app().state.db.reader())
                .await
                .map_err(text)?
                .iter()
                .filter_map(|row| {
                    let id: String = row.get("message_id");
                    Some((row.get("consumer"), id.parse().ok()?))
                })
                .collect();
        let candidates: Vec<&(String, Envelope)> = self
            .queued
            .iter()
            .filter(|(consumer, message)| {
                completed.contains(&(consumer.clone(), message.message_id.0))
                    && static_type(&message.message_type).is_some()
                    && !(fresh_id && message.message_type == ReserveStockForOrder::TYPE)
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (consumer, message) = pick.get(&candidates);
        let again = Outgoing {
            message_type: static_type(&message.message_type).expect("filtered"),
            correlation_id: message.correlation_id,
            payload: message.payload.clone(),
            headers: message.headers.clone(),
            destination: Destination::Consumer(consumer.clone()),
            delivery: Delivery::Now,
        };
        let mut tx = self.app().state.bus.begin().await.map_err(text)?;
        if fresh_id {
            tx.write(&again).await.map_err(text)?;
        } else {
            tx.write_with_id(message.message_id, &again)
                .await
                .map_err(text)?;
        }
        tx.commit().await.map_err(text)?;
        Ok(())
    }

    /// An event of its own for a checkout that has finished: a timeout, a cancel or a payment
    /// that come too late to change anything.
    async fn send_late(&mut self, c: usize, kind: u8) -> Result<(), String> {
        let checkout = &self.checkouts[c];
        let (Some(order_id), true) = (checkout.order, checkout.seen.finished) else {
            return Ok(());
        };
        let mut tx = self.app().state.bus.begin().await.map_err(text)?;
        let sent = match kind {
            0 => tx.publish(&PaymentTimedOut { order_id }).await,
            1 => tx.publish(&CheckoutCancelled { order_id }).await,
            _ => tx.publish(&PaymentCompleted { order_id }).await,
        };
        sent.map_err(text)?;
        tx.commit().await.map_err(text)?;
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), String> {
        for _ in 0..DRAIN_LIMIT {
            self.note_queued().await?;
            if self.app().state.bus.run_one_batch().await.map_err(text)? == 0 {
                return Ok(());
            }
        }
        Err(format!("the bus did not settle in {DRAIN_LIMIT} batches"))
    }

    /// Remembers the messages waiting in the queue, for redelivery once completed.
    async fn note_queued(&mut self) -> Result<(), String> {
        let rows = sqlx::query(
            "SELECT message_id, consumer, message_type, correlation_id, causation_id, headers, \
             payload, created_at, available_at, attempts FROM bus_queue ORDER BY id",
        )
        .fetch_all(self.app().state.db.reader())
        .await
        .map_err(text)?;
        for row in &rows {
            let consumer: String = row.get("consumer");
            let message = Envelope::from_row(row).map_err(text)?;
            if self
                .queued_keys
                .insert((consumer.clone(), message.message_id.0))
            {
                self.queued.push((consumer, message));
            }
        }
        Ok(())
    }

    /// Reads every placed checkout and the stock, and checks what holds at any moment.
    async fn observe(&mut self) -> Result<(), String> {
        for c in 0..self.checkouts.len() {
            self.observe_checkout(c).await?;
        }
        self.check_stock().await
    }

    async fn observe_checkout(&mut self, c: usize) -> Result<(), String> {
        let Some(order_id) = self.checkouts[c].order else {
            return Ok(());
        };
        let state = &self.app().state;
        let instance = saga::get(state.db.reader(), CheckoutSaga::NAME, order_id.0)
            .await
            .map_err(text)?;
        let order = {
            let mut conn = state.db.read().await.map_err(text)?;
            ordering::order(&mut conn, order_id)
                .await
                .map_err(text)?
                .ok_or_else(|| format!("checkout {c}: its order is gone"))?
        };
        let timeouts: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM bus_queue \
             WHERE consumer = $1 AND correlation_id = $2 AND message_type = $3",
        )
        .bind(CheckoutSaga::NAME)
        .bind(order_id.to_string())
        .bind(PaymentTimedOut::TYPE)
        .fetch_one(state.db.reader())
        .await
        .map_err(text)?;
        let saga = match &instance {
            Some(instance) => {
                follows_the_declaration(instance)
                    .map_err(|error| format!("checkout {c}: {error}"))?;
                Some(serde_json::from_value::<CheckoutState>(instance.data.clone()).map_err(text)?)
            }
            None => None,
        };
        let finished = saga
            .as_ref()
            .is_some_and(|s| matches!(s, CheckoutState::Confirmed | CheckoutState::Failed { .. }));
        // An unfinished checkout has one timeout at most, its own; a finished one may be sent
        // any number of late ones.
        ensure!(
            finished || timeouts <= 1,
            "checkout {c}: {timeouts} payment timeouts pending"
        );
        let now = Seen {
            finished,
            saga,
            status: Some(order.status),
            reason: order.failure_reason,
            window_open: timeouts > 0,
        };
        let checkout = &self.checkouts[c];
        let before = &checkout.seen;
        ensure!(
            before.saga.is_none() || now.saga.is_some(),
            "checkout {c}: its saga vanished"
        );
        ensure!(
            !before.finished || before.saga == now.saga,
            "checkout {c} settled as {:?}, then became {:?}",
            before.saga,
            now.saga
        );
        if let (Some(from), Some(to)) = (before.status, now.status) {
            ensure!(
                may_follow(from, to),
                "checkout {c}: its order moved from {from:?} to {to:?}, which the checkout does \
                 not declare"
            );
        }
        if let Some(saga) = &now.saga {
            agrees_with_what_it_was_told(saga, checkout)
                .map_err(|error| format!("checkout {c}: {error}"))?;
        }
        self.checkouts[c].seen = now;
        Ok(())
    }

    /// What holds at any moment: no unit oversold or lost, and reservations that agree with
    /// the checkouts they belong to.
    async fn check_stock(&self) -> Result<(), String> {
        let reservations = self.reservations().await?;
        for (p, product) in self.products.iter().enumerate() {
            let (on_hand, reserved) = self.stock_of(product.id).await?;
            let of = |status: &str| -> i64 {
                reservations
                    .iter()
                    .filter(|r| r.product == product.id.to_string() && r.status == status)
                    .map(|r| r.quantity)
                    .sum()
            };
            ensure!(
                0 <= reserved && reserved <= on_hand && on_hand <= product.initial,
                "product {p}: {reserved} reserved of {on_hand} on hand (of {})",
                product.initial
            );
            ensure!(
                reserved == of("Held"),
                "product {p}: {reserved} reserved, but reservations hold {}",
                of("Held")
            );
            ensure!(
                product.initial - on_hand == of("Deducted"),
                "product {p}: {} units gone, but reservations deducted {}",
                product.initial - on_hand,
                of("Deducted")
            );
        }
        for (c, checkout) in self.checkouts.iter().enumerate() {
            let Some(order) = checkout.order else {
                continue;
            };
            let mine: Vec<&Reservation> = reservations
                .iter()
                .filter(|r| r.order == order.to_string())
                .collect();
            let statuses: HashSet<&str> = mine.iter().map(|r| r.status.as_str()).collect();
            ensure!(
                statuses.len() <= 1,
                "checkout {c}: its reservations are {statuses:?} at once"
            );
            if !mine.is_empty() {
                ensure!(
                    self.rows_match_lines(checkout, &mine),
                    "checkout {c}: reservations differ from its lines {:?}",
                    checkout.lines
                );
            }
            let saga = &checkout.seen.saga;
            match statuses.iter().next().copied() {
                Some("Deducted") => ensure!(
                    matches!(saga, Some(CheckoutState::Confirmed)),
                    "checkout {c}: stock deducted, but the saga is {saga:?}"
                ),
                Some("Released") => ensure!(
                    matches!(saga, Some(CheckoutState::Failed { .. })),
                    "checkout {c}: stock released, but the saga is {saga:?}"
                ),
                _ => {}
            }
            if let Some(CheckoutState::Failed {
                reason: FailureReason::OutOfStock { product },
            }) = saga
            {
                self.shortage_was_real(c, product, &reservations)?;
            }
        }
        Ok(())
    }

    /// A checkout refused for want of `product` asked for more than the others could ever have
    /// left: the units of every other checkout that holds or held a reservation of it.
    fn shortage_was_real(
        &self,
        c: usize,
        product: &str,
        reservations: &[Reservation],
    ) -> Result<(), String> {
        let p = self
            .products
            .iter()
            .position(|candidate| candidate.name == product)
            .ok_or_else(|| format!("checkout {c}: short of an unknown product {product}"))?;
        let id = self.products[p].id.to_string();
        let wanted = self.checkouts[c].lines.get(&p).copied().unwrap_or(0);
        let mine = self.checkouts[c].order.map(|order| order.to_string());
        let taken_by_others: i64 = reservations
            .iter()
            .filter(|r| r.product == id && Some(&r.order) != mine.as_ref())
            .map(|r| r.quantity)
            .sum();
        ensure!(
            self.products[p].initial - taken_by_others < i64::from(wanted),
            "checkout {c} was refused {wanted} of product {p} for want of stock, though others \
             took at most {taken_by_others} of its {} units",
            self.products[p].initial
        );
        Ok(())
    }

    /// What holds once the bus has nothing due: each checkout settled exactly as it was told,
    /// or awaiting payment with its window open; its reservations ended accordingly; stock is
    /// the initial stock less what confirmed orders took.
    async fn check_at_rest(&self) -> Result<(), String> {
        let reservations = self.reservations().await?;
        let mut taken = vec![0i64; self.products.len()];
        let mut held = vec![0i64; self.products.len()];
        let mut placed = 0;
        for (c, checkout) in self.checkouts.iter().enumerate() {
            let Some(order) = checkout.order else {
                continue;
            };
            placed += 1;
            let seen = &checkout.seen;
            let saga = seen
                .saga
                .as_ref()
                .ok_or_else(|| format!("checkout {c}: placed, yet no saga at rest"))?;
            ensure!(
                seen.status == Some(saga.status()),
                "checkout {c}: the order shows {:?}, the saga {saga:?}",
                seen.status
            );
            let mine: Vec<&Reservation> = reservations
                .iter()
                .filter(|r| r.order == order.to_string())
                .collect();
            let (rows, expected_status) = match saga {
                CheckoutState::Submitted { .. } => {
                    return Err(format!("checkout {c}: still Submitted at rest"));
                }
                CheckoutState::StockReserved { .. } => {
                    ensure!(
                        checkout.told.is_none() && !checkout.fired,
                        "checkout {c}: awaits payment at rest, though told {:?}, fired {}",
                        checkout.told,
                        checkout.fired
                    );
                    ensure!(
                        seen.window_open,
                        "checkout {c}: awaits payment with no timeout pending"
                    );
                    add(&mut held, &checkout.lines);
                    (true, "Held")
                }
                CheckoutState::Confirmed => {
                    add(&mut taken, &checkout.lines);
                    (true, "Deducted")
                }
                CheckoutState::Failed { reason } => {
                    ensure!(
                        seen.reason.as_ref() == Some(reason),
                        "checkout {c}: the order failed for {:?}, the saga for {reason:?}",
                        seen.reason
                    );
                    if let FailureReason::PaymentTimedOut = reason {
                        ensure!(checkout.fired, "checkout {c}: timed out, never fired");
                    }
                    match reason {
                        FailureReason::OutOfStock { .. } => (false, ""),
                        _ => (true, "Released"),
                    }
                }
            };
            if checkout.fired && checkout.told.is_none() {
                ensure!(
                    matches!(
                        saga,
                        CheckoutState::Failed {
                            reason: FailureReason::PaymentTimedOut
                        }
                    ),
                    "checkout {c}: its timeout fired and was drained, yet the saga is {saga:?}"
                );
            }
            if rows {
                ensure!(
                    mine.iter().all(|r| r.status == expected_status)
                        && self.rows_match_lines(checkout, &mine),
                    "checkout {c} ({saga:?}): its reservations should be {expected_status} \
                     for every line"
                );
            } else {
                ensure!(
                    mine.is_empty(),
                    "checkout {c} ({saga:?}): holds reservations"
                );
            }
        }
        for (p, product) in self.products.iter().enumerate() {
            let stock = self.stock_of(product.id).await?;
            let expected = (product.initial - taken[p], held[p]);
            ensure!(
                stock == expected,
                "product {p}: (on hand, reserved) {stock:?} at rest, the model says {expected:?}"
            );
        }
        let state = &self.app().state;
        let orders = crate::helpers::order_count(self.app()).await;
        ensure!(
            orders == placed,
            "{orders} orders for {placed} checkouts placed"
        );
        let letters = state.bus.dead_letter_count().await.map_err(text)?;
        ensure!(letters == 0, "{letters} dead letters");
        let failing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bus_queue WHERE attempts > 0")
            .fetch_one(state.db.reader())
            .await
            .map_err(text)?;
        ensure!(
            failing == 0,
            "{failing} messages failed and wait for a retry"
        );
        Ok(())
    }

    /// The rows are one per line, each for the line's units.
    fn rows_match_lines(&self, checkout: &Checkout, rows: &[&Reservation]) -> bool {
        rows.len() == checkout.lines.len()
            && checkout.lines.iter().all(|(p, units)| {
                let id = self.products[*p].id.to_string();
                rows.iter()
                    .any(|r| r.product == id && r.quantity == i64::from(*units))
            })
    }

    async fn reservations(&self) -> Result<Vec<Reservation>, String> {
        let rows =
            sqlx::query("SELECT order_id, product_id, quantity, status FROM stock_reservations")
                .fetch_all(self.app().state.db.reader())
                .await
                .map_err(text)?;
        Ok(rows
            .iter()
            .map(|row| Reservation {
                order: row.get("order_id"),
                product: row.get("product_id"),
                quantity: row.get("quantity"),
                status: row.get("status"),
            })
            .collect())
    }

    async fn stock_of(&self, product: ProductId) -> Result<(i64, i64), String> {
        let row = sqlx::query("SELECT on_hand, reserved FROM stock_items WHERE product_id = $1")
            .bind(product.to_string())
            .fetch_one(self.app().state.db.reader())
            .await
            .map_err(text)?;
        Ok((row.get("on_hand"), row.get("reserved")))
    }
}

/// An instance with no workers (the steps run the bus) on the database at `url`.
async fn instance(url: &str, batch_size: usize, hand_over: bool) -> TestApp {
    let scratch = tempfile::tempdir().expect("temporary directory");
    spawn_instance(url.to_owned(), scratch, move |mut config| {
        config.workers = 0;
        config.batch_size = batch_size;
        config.hand_over = hand_over;
        config.seed = false;
        config.payment_timeout = Duration::from_secs(3600);
        config
    })
    .await
}

/// The saga's timeline is a chain of declared moves from its start to its current state.
fn follows_the_declaration(instance: &saga::Instance) -> Result<(), String> {
    let diagram = checkout::diagram();
    let mut at: Option<&str> = None;
    for entry in &instance.timeline {
        ensure!(
            entry.from_state.as_deref() == at,
            "the timeline moves from {:?} after reaching {at:?}",
            entry.from_state
        );
        let declared = diagram.edges.iter().any(|edge| {
            edge.from == at
                && edge.event == entry.event
                && matches!(&edge.outcome, saga::Outcome::Moves { to, .. } if *to == entry.to_state)
        });
        ensure!(
            declared,
            "{at:?} --{}--> {} is no declared transition",
            entry.event,
            entry.to_state
        );
        at = Some(&entry.to_state);
    }
    ensure!(
        at == Some(instance.state.as_str()),
        "the timeline ends in {at:?}, the saga is in {}",
        instance.state
    );
    ensure!(
        usize::try_from(instance.version).ok() == Some(instance.timeline.len()),
        "version {} after {} moves",
        instance.version,
        instance.timeline.len()
    );
    Ok(())
}

/// A saga's state fits what its checkout was told: confirmed only when paid, failed only for a
/// reason it was given (a decline, a cancel, its own timeout fired) or a shortage before any
/// reservation.
fn agrees_with_what_it_was_told(saga: &CheckoutState, checkout: &Checkout) -> Result<(), String> {
    let told = checkout.told;
    match saga {
        CheckoutState::Submitted { .. } | CheckoutState::StockReserved { .. } => Ok(()),
        CheckoutState::Confirmed => {
            ensure!(told == Some(Told::Paid), "confirmed, though told {told:?}");
            Ok(())
        }
        CheckoutState::Failed { reason } => {
            let fits = match reason {
                FailureReason::OutOfStock { .. } => told.is_none(),
                FailureReason::PaymentDeclined => told == Some(Told::Declined),
                FailureReason::CancelledByOperator => told == Some(Told::Cancelled),
                FailureReason::PaymentTimedOut => told.is_none() && checkout.fired,
                FailureReason::Other(_) => false,
            };
            ensure!(
                fits,
                "failed for {reason:?}, though told {told:?} (timeout fired: {})",
                checkout.fired
            );
            Ok(())
        }
    }
}

/// True when an order may go from `from` to `to` through the moves its checkout declares.
fn may_follow(from: OrderStatus, to: OrderStatus) -> bool {
    from == to
        || to
            .reachable_from()
            .into_iter()
            .any(|before| may_follow(from, before))
}

fn add(units: &mut [i64], lines: &BTreeMap<usize, u32>) {
    for (product, count) in lines {
        units[*product] += i64::from(*count);
    }
}

/// The checkout's message types, as the `'static` names an outgoing message carries.
fn static_type(message_type: &str) -> Option<&'static str> {
    [
        CheckoutStarted::TYPE,
        ReserveStockForOrder::TYPE,
        StockReservationCompleted::TYPE,
        StockReservationFailed::TYPE,
        PaymentCompleted::TYPE,
        PaymentFailed::TYPE,
        PaymentTimedOut::TYPE,
        CheckoutCancelled::TYPE,
        ConfirmOrder::TYPE,
        OrderFailed::TYPE,
        DeductStock::TYPE,
        ReleaseStockReservations::TYPE,
        ClearCart::TYPE,
    ]
    .into_iter()
    .find(|known| *known == message_type)
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}
