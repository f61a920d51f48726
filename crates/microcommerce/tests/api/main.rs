//! API integration tests: one binary, an app on port 0 with a fresh database per test.

mod authorization;
mod browser;
mod cart;
mod catalog;
mod catalog_admin;
mod checkout;
mod console;
mod edge;
mod faults;
mod helpers;
mod idempotency;
mod inventory;
mod limits;
mod messaging;
mod metrics;
mod model;
mod postgres;
mod proxies;
mod storefront;
