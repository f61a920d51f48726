//! Durable messaging inside the application's own database.
//!
//! The bus keeps its queue in the same database as the business data, so that a handler's
//! writes and the messages it publishes commit in one transaction (the transactional outbox),
//! and a consumer's effects commit together with the completion of the message it handles.
//! Nothing is lost when the process crashes at any point, and an effect that lives in this
//! database is applied exactly once however often a message is redelivered.
//!
//! - [`Tx::publish`] fans a message out to every subscribed consumer, [`Tx::send`] addresses
//!   one, [`Tx::schedule`] delivers later. All take the caller's open transaction; the queue
//!   rows are inserted when it commits, every message of the transaction in one statement.
//! - [`Bus::start`] runs workers that claim due messages in batches (one commit per batch),
//!   retry failures with exponential backoff and jitter ([`RetryPolicy`]), and move messages
//!   that keep failing, or fail [permanently](ConsumeError::Permanent), to the dead letters
//!   ([`Bus::dead_letters`], [`Bus::retry_dead_letter`], [`Bus::purge_dead_letters`]).
//! - Messages with one correlation id are never handled concurrently by one consumer.
//! - A worker batch hands the messages its consumers send to other consumers over
//!   in its own transaction instead of queueing them ([`BusConfig::hand_over`]).
//! - Workers sleep until a publishing transaction commits or a scheduled message falls due.
//! - A message carries the trace context of the span that wrote it, and is handled in a span
//!   that continues it ([`trace`]): one business process is one trace.
//! - A consumer ([`Handler`]) declares the messages it handles once, one [`Message`] type or an
//!   enum of them written with [`messages!`]; its subscriptions and decoding follow from it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use bus::{async_trait, Bus, ConsumeError, Envelope, Handler, Message, Tx};
//! use storage::{Db, DbOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greeted { id: uuid::Uuid, name: String }
//!
//! impl Message for Greeted {
//!     const TYPE: &'static str = "Greeted";
//!     fn correlation_id(&self) -> uuid::Uuid { self.id }
//! }
//!
//! /// Records every greeting in a table of its own.
//! struct Guestbook;
//!
//! #[async_trait]
//! impl Handler for Guestbook {
//!     type Messages = Greeted; // subscribes to "Greeted" and decodes it
//!     fn name(&self) -> &str { "guestbook" }
//!     async fn handle(&self, greeted: Greeted, _: &Envelope, tx: &mut Tx<'_>) -> Result<(), ConsumeError> {
//!         sqlx::query("INSERT INTO guests (name) VALUES ($1)")
//!             .bind(greeted.name)
//!             .execute(&mut **tx)
//!             .await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("example.db").display());
//! let db = Db::connect(&DbOptions::new(url)).await?;
//! Bus::migrate(&db).await?;
//! db.execute(sqlx::query("CREATE TABLE guests (name TEXT)")).await?;
//! let bus = Bus::builder(db.clone()).consumer(Arc::new(Guestbook)).build();
//!
//! // The message commits with whatever else this transaction writes.
//! let mut tx = bus.begin().await?;
//! tx.publish(&Greeted { id: uuid::Uuid::now_v7(), name: "Ada".into() }).await?;
//! tx.commit().await?;
//!
//! bus.run_pending().await?; // or `bus.start()` for background workers
//! let guests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guests")
//!     .fetch_one(db.reader())
//!     .await?;
//! assert_eq!(guests, 1);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod bus;
mod config;
mod consumer;
mod dead_letters;
mod group;
mod inspect;
mod message;
mod messages;
mod metrics;
mod notify;
mod outbox;
mod queue;
mod retry;
pub mod trace;
mod watch;
mod worker;

pub use async_trait::async_trait;
pub use bus::{Bus, BusBuilder, BusError, BusStats, Tx, TxFuture};
pub use config::BusConfig;
pub use consumer::{BoxError, ConsumeError, Consumer, Delivered, Handler};
pub use dead_letters::{DeadLetter, DeadLetterGroup};
pub use group::GroupError;
pub use inspect::{Failed, QueueDepth, Waiting};
pub use message::{Delivery, Destination, Envelope, Headers, Message, MessageId, Outgoing};
#[doc(hidden)]
pub use messages::__private;
pub use messages::Messages;
pub use metrics::describe_metrics;
pub use retry::RetryPolicy;
pub use worker::Workers;
