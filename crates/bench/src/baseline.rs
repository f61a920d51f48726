//! The ceiling: the rows one checkout writes, written by plain SQL transactions on the same
//! schema and durability, with no bus, no saga and no HTTP.
//!
//! Per checkout, three transactions, as a buyer's three requests: add to cart; place the order
//! and reserve its stock (one conditional update per line); pay, then confirm, deduct and clear
//! the cart, or release and fail.

use std::sync::Arc;
use std::time::Instant;

use bus::Bus;

use super::{BenchError, BenchOptions, Ending, Outcome, Tally};
use microcommerce_service::config::Config;
use microcommerce_service::ids::{BuyerId, OrderId};
use microcommerce_service::money::Money;
use microcommerce_service::ordering::{Order, OrderItem, OrderStatus, Totals, insert_order};

/// The plain-SQL driver; cheap to clone.
#[derive(Clone)]
pub struct Baseline {
    inner: Arc<Inner>,
}

struct Inner {
    /// Used only for `begin()`: it has no consumers, so nothing is ever published.
    bus: Bus,
    products: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Baseline {
    /// A fresh database with the demo catalog and plenty of stock (the hot product gets
    /// `hot_stock` units).
    pub async fn prepare(options: &BenchOptions) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
        let database_url = match &options.database_url {
            Some(url) if url.starts_with("postgres") => url.clone(),
            _ => format!("sqlite://{}", dir.path().join("baseline.db").display()),
        };
        let config = Config {
            database_url,
            synchronous: options.synchronous,
            pin_writer: options.pin_writer,
            db_pool_size: 20,
            limits: microcommerce_service::config::Limits::off(),
            ..Config::default()
        };
        let db = microcommerce_service::app::prepare_database(&config).await?;
        microcommerce_service::catalog::seed_if_empty(&db).await?;
        let bus = Bus::builder(db.clone()).build();
        let mut products: Vec<String> =
            sqlx::query_scalar("SELECT id FROM products WHERE status = 'Published' ORDER BY name")
                .fetch_all(db.reader())
                .await?;
        if options.hot_product {
            products.truncate(1);
        }
        for product in &products {
            let units = if options.hot_product {
                options.hot_stock
            } else {
                1_000_000_000
            };
            db.execute(
                sqlx::query("UPDATE stock_items SET on_hand = reserved + $1 WHERE product_id = $2")
                    .bind(units)
                    .bind(product),
            )
            .await?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                bus,
                products,
                _dir: dir,
            }),
        })
    }

    /// One checkout's rows.
    pub async fn checkout(
        &self,
        rng: &mut fastrand::Rng,
        options: &BenchOptions,
        tally: &Tally,
    ) -> Outcome {
        let started = Instant::now();
        let product = self.inner.products[rng.usize(..self.inner.products.len())].clone();
        let decline = rng.f64() < options.decline_ratio;
        match self.inner.run(&product, decline, tally).await {
            Ok((status, to_awaiting)) => Outcome {
                bought: if status.is_sold() {
                    vec![(product, 1)]
                } else {
                    Vec::new()
                },
                status: Ending::Settled(status),
                reason: None,
                to_awaiting: Some(to_awaiting),
                to_settled: None,
                whole: started.elapsed().as_micros() as u64,
            },
            Err(error) => {
                tally.error(format!("baseline: {error}")).await;
                Outcome {
                    status: Ending::Error,
                    reason: Some(error.to_string()),
                    bought: Vec::new(),
                    to_awaiting: None,
                    to_settled: None,
                    whole: started.elapsed().as_micros() as u64,
                }
            }
        }
    }
}

impl Inner {
    /// The three write transactions of a checkout (cart, order with reservation, payment with
    /// its outcome), through the same group commit as the service's own requests.
    async fn run(
        &self,
        product: &str,
        decline: bool,
        tally: &Tally,
    ) -> microcommerce_service::Result<(OrderStatus, u64)> {
        let buyer = BuyerId(uuid::Uuid::new_v4());
        let cart = uuid::Uuid::now_v7().to_string();
        tally.request();
        let (cart_id, item) = (cart.clone(), product.to_owned());
        self.bus
            .transact(move |tx| Box::pin(fill_cart(tx, buyer, cart_id.clone(), item.clone())))
            .await?;

        let placed_at = Instant::now();
        tally.request();
        let item = product.to_owned();
        let (order, status) = self
            .bus
            .transact(move |tx| Box::pin(place_and_reserve(tx, buyer, item.clone())))
            .await?;
        let to_awaiting = placed_at.elapsed().as_micros() as u64;
        if status == OrderStatus::Failed {
            return Ok((OrderStatus::Failed, to_awaiting));
        }

        tally.request();
        let item = product.to_owned();
        let outcome = self
            .bus
            .transact(move |tx| {
                Box::pin(pay_and_settle(
                    tx,
                    order,
                    item.clone(),
                    cart.clone(),
                    decline,
                ))
            })
            .await?;
        Ok((outcome, to_awaiting))
    }
}

async fn fill_cart(
    tx: &mut bus::Tx<'_>,
    buyer: BuyerId,
    cart: String,
    product: String,
) -> microcommerce_service::Result<()> {
    let now = tx.now().await?;
    sqlx::query("INSERT INTO carts (id, buyer_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(&cart)
        .bind(buyer.to_string())
        .bind(now.0)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO cart_items (id, cart_id, product_id, quantity, added_at) \
         VALUES ($1, $2, $3, 1, $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&cart)
    .bind(&product)
    .bind(now.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn place_and_reserve(
    tx: &mut bus::Tx<'_>,
    buyer: BuyerId,
    product: String,
) -> microcommerce_service::Result<(OrderId, OrderStatus)> {
    let order = order(buyer, tx.now().await?);
    let item = OrderItem {
        product_id: product.parse().unwrap_or_default(),
        product_name: "baseline".into(),
        unit_price: Money(1000),
        quantity: 1,
        image_url: None,
    };
    insert_order(tx, &order, &[item], None, None).await?;
    let reserved = sqlx::query(
        "UPDATE stock_items SET reserved = reserved + 1 \
         WHERE product_id = $1 AND on_hand - reserved >= 1",
    )
    .bind(&product)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let status = if reserved == 1 {
        sqlx::query(
            "INSERT INTO stock_reservations (order_id, product_id, quantity, status, created_at) \
             VALUES ($1, $2, 1, 'Held', $3)",
        )
        .bind(order.id.to_string())
        .bind(&product)
        .bind(order.created_at.0)
        .execute(&mut **tx)
        .await?;
        OrderStatus::StockReserved
    } else {
        OrderStatus::Failed
    };
    set_status(tx, order.id, status).await?;
    Ok((order.id, status))
}

async fn pay_and_settle(
    tx: &mut bus::Tx<'_>,
    order: OrderId,
    product: String,
    cart: String,
    decline: bool,
) -> microcommerce_service::Result<OrderStatus> {
    let now = tx.now().await?;
    sqlx::query(
        "INSERT INTO payments (order_id, succeeded, failure_reason, at) VALUES ($1, $2, NULL, $3)",
    )
    .bind(order.to_string())
    .bind(i64::from(!decline))
    .bind(now.0)
    .execute(&mut **tx)
    .await?;
    if decline {
        sqlx::query("UPDATE stock_items SET reserved = reserved - 1 WHERE product_id = $1")
            .bind(&product)
            .execute(&mut **tx)
            .await?;
        end_reservation(tx, order, "Released").await?;
        set_status(tx, order, OrderStatus::Failed).await?;
        return Ok(OrderStatus::Failed);
    }
    set_status(tx, order, OrderStatus::Paid).await?;
    sqlx::query(
        "UPDATE stock_items SET on_hand = on_hand - 1, reserved = reserved - 1 \
         WHERE product_id = $1",
    )
    .bind(&product)
    .execute(&mut **tx)
    .await?;
    end_reservation(tx, order, "Deducted").await?;
    set_status(tx, order, OrderStatus::Confirmed).await?;
    sqlx::query("DELETE FROM cart_items WHERE cart_id = $1")
        .bind(&cart)
        .execute(&mut **tx)
        .await?;
    Ok(OrderStatus::Confirmed)
}

fn order(buyer: BuyerId, now: storage::Timestamp) -> Order {
    Order {
        id: OrderId::new(),
        order_number: microcommerce_service::ordering::domain::new_order_number(),
        buyer_id: buyer,
        buyer_email: super::BUYER_EMAIL.into(),
        address: super::buyer_address(),
        status: OrderStatus::Submitted,
        totals: Totals::of([(Money(1000), 1)]),
        failure_reason: None,
        created_at: now,
        paid_at: None,
    }
}

async fn set_status(
    tx: &mut bus::Tx<'_>,
    order: OrderId,
    status: OrderStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(order.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn end_reservation(
    tx: &mut bus::Tx<'_>,
    order: OrderId,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stock_reservations SET status = $1 WHERE order_id = $2")
        .bind(status)
        .bind(order.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
