//! The console's chrome (head, navigation, sign-out) and the small pieces its pages share:
//! times, ages, page numbers and the pager, and the error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use storage::Timestamp;

use crate::Error;
use crate::http::{Page, PageRequest, Paging};
use crate::web::{assets, layout};

/// The console's sections, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Dashboard,
    Orders,
    Checkout,
    Stuck,
    DeadLetters,
    Catalog,
}

impl Section {
    const ALL: [Self; 6] = [
        Self::Dashboard,
        Self::Orders,
        Self::Checkout,
        Self::Stuck,
        Self::DeadLetters,
        Self::Catalog,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Dashboard => "Dashboard",
            Self::Orders => "Orders",
            Self::Checkout => "Checkout",
            Self::Stuck => "Stuck",
            Self::DeadLetters => "Dead letters",
            Self::Catalog => "Catalog",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Self::Dashboard => "/admin",
            Self::Orders => "/admin/orders",
            Self::Checkout => "/admin/checkout",
            Self::Stuck => "/admin/checkouts?stuck=true",
            Self::DeadLetters => "/admin/dead-letters",
            Self::Catalog => "/admin/catalog",
        }
    }
}

/// A whole console page: `title` in the tab, `main` inside the chrome, `current` marked in the
/// navigation (none on the sign-in page, which has no navigation).
pub(super) fn page(title: &str, current: Option<Section>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (layout::head(&format!("{title} · operations · microcommerce"), &[assets::CONSOLE_CSS], None))
            body.console {
                a.skip href="#main" { "Skip to content" }
                header.site-header {
                    a.brand href="/admin" {
                        img src=(assets::ICON) alt="" width="28" height="28";
                        span { "microcommerce operations" }
                    }
                    @if let Some(current) = current {
                        (navigation(current))
                    }
                }
                main #main { (main) }
            }
        }
    }
}

fn navigation(current: Section) -> Markup {
    html! {
        nav aria-label="Console" {
            @for section in Section::ALL {
                @if section == current {
                    a href=(section.href()) aria-current="page" { (section.label()) }
                } @else {
                    a href=(section.href()) { (section.label()) }
                }
            }
            form.inline action="/admin/sign-out" method="post" {
                button.link type="submit" { "Sign out" }
            }
        }
    }
}

/// Page `number` of a listing of `size` items a page, as the form or a link sends it; blank is
/// the first.
pub(super) fn page_request(number: &str, size: u32) -> Result<PageRequest, Error> {
    let page = match number.trim() {
        "" => 1,
        text => text
            .parse()
            .map_err(|_| Error::invalid("page", format!("{text:?} is not a page number")))?,
    };
    Paging {
        page: Some(page),
        page_size: Some(size),
    }
    .request()
}

/// Links to the pages before and after `page`, made by `href`, and where the list stands.
pub(super) fn pager<T>(page: &Page<T>, href: impl Fn(u32) -> String, label: &str) -> Markup {
    let size = i64::from(page.page_size.max(1));
    let pages = u32::try_from((page.total_count + size - 1) / size)
        .unwrap_or(u32::MAX)
        .max(1);
    html! {
        nav.pager aria-label=(label) {
            @if page.page > 1 {
                a rel="prev" href=(href(page.page - 1)) { "Previous page" }
            }
            span { "Page " (page.page) " of " (pages) }
            @if page.page < pages {
                a rel="next" href=(href(page.page + 1)) { "Next page" }
            }
        }
    }
}

/// A time as operators read it in logs: `2026-12-07 12:34:56 UTC`.
pub(super) fn time(at: Timestamp) -> String {
    time_of(&crate::http::rfc3339(at))
}

/// An RFC 3339 time (as the API writes it, `2026-12-07T12:34:56.123456Z`) as [`time`] writes
/// it; anything else as it is.
pub(super) fn time_of(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock} UTC"),
        _ => rfc3339.to_owned(),
    }
}

/// How long from `from` to `to`, in the largest whole unit that fits: `42 s`, `3 min`, `5 h`,
/// `2 d`.
pub(super) fn span(from: Timestamp, to: Timestamp) -> String {
    let seconds = (to.0 - from.0).max(0) / 1_000_000;
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A page that asks before an action: what it will do, one button that posts to `action`, and
/// a way `back` without doing it.
pub(super) fn confirmation(
    title: &str,
    section: Section,
    explanation: Markup,
    action: &str,
    button: &str,
    back: &str,
) -> Response {
    let body = html! {
        section.panel.narrow {
            h1 { (title) }
            (explanation)
            form method="post" action=(action) {
                button.button.danger type="submit" { (button) }
            }
            p { a href=(back) { "Go back without doing it" } }
        }
    };
    super::super::page(StatusCode::OK, page(title, Some(section), body))
}

/// A length of time in the largest whole unit that fits, as [`span`] writes it.
pub(super) fn length(of: std::time::Duration) -> String {
    let micros = i64::try_from(of.as_micros()).unwrap_or(i64::MAX);
    span(Timestamp(0), Timestamp(micros))
}

/// What a console page fails with: an error page in the console's chrome that says why (each
/// refused field in a sentence), with a way back.
#[derive(Debug)]
pub(crate) struct Failure {
    error: crate::Error,
    /// The page the failed action was sent from, to go back to; the dashboard when none.
    back: Option<Back>,
}

/// Where a failure's page leads back to.
#[derive(Debug)]
struct Back {
    section: Section,
    href: String,
    label: &'static str,
}

impl Failure {
    /// This failure, leading back to `href` (in `section`) with a button saying `label`.
    pub(super) fn back_to(mut self, section: Section, href: String, label: &'static str) -> Self {
        self.back = Some(Back {
            section,
            href,
            label,
        });
        self
    }
}

impl From<crate::Error> for Failure {
    fn from(error: crate::Error) -> Self {
        Self { error, back: None }
    }
}

impl From<bus::BusError> for Failure {
    fn from(error: bus::BusError) -> Self {
        crate::Error::from(error).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let detail = match &self.error {
            _ if status.is_server_error() => {
                tracing::error!(error = ?self.error, "console page failed");
                "Something went wrong on our side; the log has the cause.".to_owned()
            }
            crate::Error::Validation(errors) | crate::Error::Unprocessable(errors) => {
                crate::web::field_messages(errors)
            }
            other => crate::web::capitalized(&other.to_string()) + ".",
        };
        let title = if status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "That did not work"
        };
        let back = self.back.unwrap_or(Back {
            section: Section::Dashboard,
            href: "/admin".to_owned(),
            label: "Back to the dashboard",
        });
        let body = html! {
            section.panel {
                h1 { (title) }
                p #why { (detail) }
                p { a.button href=(back.href) { (back.label) } }
            }
        };
        super::super::page(status, page(title, Some(back.section), body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn spans_read_in_the_largest_unit_that_fits() {
        let at = |seconds| Timestamp(seconds * SECOND);
        assert_eq!(span(at(0), at(42)), "42 s");
        assert_eq!(span(at(0), at(180)), "3 min");
        assert_eq!(span(at(0), at(5 * 3600)), "5 h");
        assert_eq!(span(at(0), at(3 * 86_400)), "3 d");
        assert_eq!(span(at(10), at(0)), "0 s", "never negative");
    }

    #[test]
    fn times_read_as_in_logs() {
        assert_eq!(time(Timestamp(0)), "1970-01-01 00:00:00 UTC");
    }
}
