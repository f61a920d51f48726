//! microcommerce: a commerce backend whose checkout is a durable saga.
//!
//! Module map, one folder per business module, each with its routes and consumers:
//! - [`catalog`]: categories and products, and the demo seed.
//! - [`inventory`]: stock levels, adjustments and the reservations the checkout holds.
//! - [`cart`]: one cart per buyer.
//! - [`ordering`]: orders and the checkout saga ([`ordering::checkout`]).
//! - [`payment`]: the simulated payment that feeds the saga.
//!
//! Tools: [`bench`] (the `microcommerce bench` load generator).
//!
//! The edges: [`http`] (extractors, identity, problem documents via [`error`]), [`app`]
//! (start-up), [`cli`] and [`config`]. Shared types: [`money`], [`ids`].
#![warn(missing_docs)]

pub mod app;
pub mod bench;
pub mod cart;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod openapi;
pub mod ordering;
pub mod payment;

pub use error::{Error, Result};
