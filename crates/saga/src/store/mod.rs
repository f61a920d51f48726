//! Where saga instances are kept: every statement on the saga's tables is here, so that the
//! engine (`engine.rs`, `sets.rs`) is the logic of moving instances on.
//!
//! - `instances`: the engine loads instances (one, or a batch's at once) and writes
//!   transitions with their timeline rows, one at a time or a set together;
//! - `parked`: events that came too early wait, and are offered again or dropped;
//! - `read`: instances read back for the API, operators and tests;
//! - `census`: instances counted by state, and the moves they made lately, from tallies kept
//!   current.

mod census;
mod decode;
mod instances;
mod parked;
mod read;

pub use census::{Census, Taken, census, fold_tallies};
pub(crate) use instances::{
    Found, Loaded, Step, Stored, count_ignored, decode, load, read_stored, save, save_all,
};
pub(crate) use parked::{drop_parked, flag_parked, park, parked_events, unpark};
pub use read::{
    Current, Filter, Instance, ParkedEvent, Position, Summary, TimelineEntry, current, get, get_on,
    list, list_on, prune_completed,
};
