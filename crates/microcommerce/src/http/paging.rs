//! Paging, set up once for every listing: the query parameters a listing takes ([`Paging`]),
//! their validated form that a listing's query reads its window from ([`PageRequest`]), and
//! the answer's shape ([`Page`]).

/// Page numbers and sizes as the API accepts them: 1 ≤ page ≤ 2^31 − 1 (the document's int32),
/// 1 ≤ pageSize ≤ 100. A listing takes them as their own query extractor beside its filters
/// (`Query(paging): Query<Paging>`, documented with `params(Filter, Paging)`), so that no
/// filter repeats them.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::IntoParams)]
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

    /// The page and size after validation, as a [`PageRequest`].
    pub fn request(self) -> crate::Result<PageRequest> {
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
            Ok(PageRequest { page, size })
        } else {
            Err(crate::Error::Validation(errors))
        }
    }
}

/// A page that passed validation: what a listing's query binds (`LIMIT` and `OFFSET`) and
/// what its answer repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

impl PageRequest {
    /// Rows on this page at most, for `LIMIT`.
    pub fn limit(self) -> i64 {
        i64::from(self.size)
    }

    /// Rows before this page, for `OFFSET` (never overflows: the values are `u32`s).
    pub fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.size)
    }

    /// `items` as this page of `total_count` items.
    pub fn page_of<T>(self, items: Vec<T>, total_count: i64) -> Page<T> {
        Page {
            items,
            total_count,
            page: self.page,
            page_size: self.size,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_paging_is_the_first_page_of_twenty() {
        let request = Paging::default().request().unwrap();
        assert_eq!(request, PageRequest { page: 1, size: 20 });
        assert_eq!((request.limit(), request.offset()), (20, 0));
    }

    #[test]
    fn the_offset_skips_the_pages_before() {
        let request = Paging {
            page: Some(3),
            page_size: Some(12),
        };
        let request = request.request().unwrap();
        assert_eq!((request.limit(), request.offset()), (12, 24));
        let last = PageRequest {
            page: u32::MAX,
            size: 100,
        };
        assert_eq!(last.offset(), i64::from(u32::MAX - 1) * 100);
    }

    #[test]
    fn pages_and_sizes_out_of_bounds_are_refused_together() {
        let paging = Paging {
            page: Some(0),
            page_size: Some(101),
        };
        let Err(crate::Error::Validation(errors)) = paging.request() else {
            panic!("page 0 of 101 items must be refused");
        };
        assert_eq!(errors.len(), 2);
    }
}
