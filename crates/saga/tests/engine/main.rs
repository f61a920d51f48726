//! Integration tests of the saga engine, each on SQLite and on PostgreSQL, and the pure
//! transitions of the toy saga they drive (see `helpers`).

mod concurrency;
mod helpers;
mod lifecycle;
mod parking;
mod queries;
mod timeouts;
mod transitions;
