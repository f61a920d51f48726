//! Integration tests of the bus: one binary, a fresh SQLite file per test.

mod connection;
mod crash;
mod delivery;
mod grouping;
mod hand_over;
mod helpers;
mod publishing;
mod scheduling;
mod tracing;
mod workers;
