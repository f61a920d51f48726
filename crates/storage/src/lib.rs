//! The storage seam: the one place that knows which database runs.
//!
//! A [`Db`] is opened once at start-up from a URL (`sqlite://…` or `postgres://…`); the bus,
//! the saga engine and the service then write portable SQL through its [`Conn`] and
//! [`Transaction`] and never name a backend in their signatures. Behind it:
//!
//! - on SQLite, one write connection and a few readers, each driven in place by whoever holds
//!   it (`sqlite.rs`, `readers.rs`); on PostgreSQL, a shared pool and one for the writer lane;
//! - the writer lane (`lane.rs`): a thread of its own for the tasks that write in bulk;
//! - on SQLite, checkpoints on a thread of their own (`checkpoint.rs`), off the writer;
//! - the first connection to PostgreSQL (`reach.rs`), whose failure names the server and cause;
//! - what a failed statement means ([`ErrorKind`]), decided here for both backends;
//! - [`Timestamp`] and the database clock ([`Db::now_in`]);
//! - [`pending`] rows that many transactions append and one folder at a time takes;
//! - the few statement fragments that differ by backend ([`sql`]).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("example.db").display());
//! let db = storage::Db::connect(&storage::DbOptions::new(url)).await?;
//! db.execute(sqlx::query("CREATE TABLE notes (body TEXT)")).await?;
//! let mut tx = db.begin().await?;
//! sqlx::query("INSERT INTO notes (body) VALUES ($1)").bind("hello").execute(&mut *tx).await?;
//! tx.commit().await?;
//! let notes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes").fetch_one(db.reader()).await?;
//! assert_eq!(notes, 1);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod checkpoint;
mod conn;
mod db;
mod error;
mod error_kind;
mod lane;
pub mod pending;
mod reach;
mod readers;
pub mod sql;
mod sqlite;
mod time;

pub use conn::{Conn, Transaction};
pub use db::{Backend, Db, DbOptions, Migrations, Synchronous};
pub use error::{ConnectCause, DbError};
pub use error_kind::ErrorKind;
pub use readers::Readers;
pub use sql::{
    json_param, json_rows, json_rows_to_look_up, json_values, json_values_to_look_up,
    placeholder_rows, placeholders,
};
pub use time::Timestamp;
