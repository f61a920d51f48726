//! microcommerce: a commerce backend whose checkout is a durable saga.
//!
//! Module map (one folder per business module):
//! - [`ordering`]: orders and the checkout saga ([`ordering::checkout`]).
//! - [`money`], [`ids`]: exact amounts and typed identifiers shared by every module.
#![warn(missing_docs)]

pub mod ids;
pub mod money;
pub mod ordering;
