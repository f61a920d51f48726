//! Integration tests of the saga engine on SQLite, and the pure transitions of a toy saga.

mod concurrency;
mod helpers;
mod lifecycle;
mod transitions;
