//! The console's chrome (head, navigation, sign-out) and the small pieces its pages share:
//! times, ages and the error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use storage::Timestamp;

use crate::web::assets;

/// The console's sections, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Dashboard,
    Orders,
    Checkout,
    Stuck,
    DeadLetters,
}

impl Section {
    const ALL: [Self; 5] = [
        Self::Dashboard,
        Self::Orders,
        Self::Checkout,
        Self::Stuck,
        Self::DeadLetters,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Dashboard => "Dashboard",
            Self::Orders => "Orders",
            Self::Checkout => "Checkout",
            Self::Stuck => "Stuck",
            Self::DeadLetters => "Dead letters",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Self::Dashboard => "/admin",
            Self::Orders => "/admin/orders",
            Self::Checkout => "/admin/checkout",
            Self::Stuck => "/admin/checkouts?stuck=true",
            Self::DeadLetters => "/admin/dead-letters",
        }
    }
}

/// A whole console page: `title` in the tab, `main` inside the chrome, `current` marked in the
/// navigation (none on the sign-in page, which has no navigation).
pub(super) fn page(title: &str, current: Option<Section>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · operations · microcommerce" }
                link rel="stylesheet" href=(assets::CSS);
                link rel="stylesheet" href=(assets::CONSOLE_CSS);
                link rel="icon" href=(assets::ICON) type="image/svg+xml";
            }
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

/// A time as operators read it in logs: `2026-12-07 12:34:56 UTC`.
pub(super) fn time(at: Timestamp) -> String {
    let text = crate::http::rfc3339(at);
    match (text.get(..10), text.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock} UTC"),
        _ => text,
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

/// What a console page fails with: an error page in the console's chrome.
#[derive(Debug)]
pub(crate) struct Failure(crate::Error);

impl From<crate::Error> for Failure {
    fn from(error: crate::Error) -> Self {
        Self(error)
    }
}

impl From<bus::BusError> for Failure {
    fn from(error: bus::BusError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let detail = if status.is_server_error() {
            tracing::error!(error = ?self.0, "console page failed");
            "Something went wrong on our side; the log has the cause.".to_owned()
        } else {
            self.0.to_string()
        };
        let title = if status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "That did not work"
        };
        let body = html! {
            section.panel {
                h1 { (title) }
                p { (detail) }
                p { a.button href="/admin" { "Back to the dashboard" } }
            }
        };
        super::super::page(status, page(title, Some(Section::Dashboard), body))
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
