//! microcommerce: a commerce backend whose checkout is a durable saga.
//!
//! Module map, one folder per business module, each with its routes and consumers:
//! - [`catalog`]: categories and products, and the demo seed.
//! - [`inventory`]: stock levels, adjustments and the reservations the checkout holds.
//! - [`cart`]: one cart per buyer.
//! - [`ordering`]: orders and the checkout saga ([`ordering::checkout`]).
//! - [`payment`]: the simulated payment that feeds the saga.
//!
//! Below them: [`contracts`] (the checkout's messages, which the modules exchange) and
//! [`state`] (what every handler can reach). Shared types: [`money`], [`ids`],
//! [`domain`] (the quantity, email and bounded text parsed at the boundary).
//!
//! Each business module's service functions are re-exported from its root (`cart::cart_of`,
//! `catalog::list_products`, `inventory::stock_levels`, …); its `http` only translates HTTP to
//! them, and no other module reaches into it.
//!
//! The edges: [`http`] (extractors, identity, paging, problem documents via [`error`]),
//! [`openapi`] (the API's routes and their document), [`web`] (the storefront's HTML pages at
//! `/`, over the same service functions), [`app`] (start-up: serves the API routes and the
//! pages) and [`config`].
//!
//! Outside this library: the `microcommerce` binary and its command line (`crates/cli`) and the
//! `microcommerce bench` load generator (`crates/bench`), which drives this library in-process
//! and over HTTP.
#![warn(missing_docs)]

pub mod app;
pub mod cart;
pub mod catalog;
pub mod config;
pub mod contracts;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod openapi;
pub mod ordering;
pub mod payment;
pub mod state;
pub mod web;

pub use error::{Error, NotAwaitingPayment, Result};
