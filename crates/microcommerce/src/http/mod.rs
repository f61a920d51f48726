//! The HTTP edge shared by every module: extractors that turn bad input into problems, buyer
//! identity, admin authentication, paging, health and dead-letter administration.

mod access;
mod auth;
mod client_address;
mod dead_letters;
mod extract;
mod limits;
pub mod metrics;
mod paging;
mod retry;
pub mod session;
mod system;

pub use access::{REQUEST_ID, RequestId, Traced, observe};
pub use auth::{Admin, Caller, buyer_identity, is_admin_token};
pub use client_address::{ClientAddress, find_client_address, parse_trusted};
pub use extract::{Json, Path, PreferWait, Query, integer};
pub(crate) use extract::{NUL_REFUSED, encodes_nul};
pub use limits::{Limiter, enforce_limits};
pub use paging::{Page, PageRequest, Paging};
pub use retry::retry_conflicts;
pub use system::{fallback, method_not_allowed, router};

use storage::Timestamp;

/// Largest request body accepted (64 KiB); larger ones get a 413 problem.
pub const BODY_LIMIT: usize = 64 * 1024;

/// RFC 3339 text of a stored timestamp, as the API returns times.
pub fn rfc3339(at: Timestamp) -> String {
    let nanos = i128::from(at.0) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
