//! The HTTP edge shared by every module: extractors that turn bad input into problems, buyer
//! identity, admin authentication, health and dead-letter administration.

mod auth;
mod extract;
mod limits;
mod retry;
mod system;

pub use auth::{Admin, Caller, buyer_identity};
pub use extract::{Json, Path, PreferWait, Query, integer};
pub use limits::{Limiter, enforce_limits};
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

/// Page numbers and sizes as the API accepts them: 1 ≤ page ≤ 2^31 − 1 (the document's int32),
/// 1 ≤ pageSize ≤ 100.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Items per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

impl Paging {
    /// The highest page number accepted.
    const LAST_PAGE: u32 = i32::MAX as u32;

    /// The page and size after validation.
    pub fn resolve(self) -> crate::Result<(u32, u32)> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        let mut errors = crate::error::FieldErrors::new();
        if !(1..=Self::LAST_PAGE).contains(&page) {
            errors.insert(
                "page".into(),
                vec!["must be between 1 and 2147483647".into()],
            );
        }
        if !(1..=100).contains(&size) {
            errors.insert("pageSize".into(), vec!["must be between 1 and 100".into()]);
        }
        if errors.is_empty() {
            Ok((page, size))
        } else {
            Err(crate::Error::Validation(errors))
        }
    }

    /// Rows to skip to reach `page` of `size` (never overflows: the values are `u32`s).
    pub fn offset(page: u32, size: u32) -> i64 {
        i64::from(page.saturating_sub(1)) * i64::from(size)
    }
}

/// A page of results in the shape every listing returns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items across all pages.
    pub total_count: i64,
    /// This page's number.
    pub page: u32,
    /// The page size used.
    pub page_size: u32,
}
