//! Signing in with the admin token and out again. A right token starts a session
//! ([`crate::http::session`]); a wrong one is answered after a delay and never written to a log.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::chrome;
use crate::http::{is_admin_token, session};
use crate::state::AppState;
use crate::web::{Form, page, see_other};

/// Where to go once signed in.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `GET /admin/sign-in`.
pub(super) async fn form(State(state): State<AppState>, Query(next): Query<Next>) -> Response {
    let next = destination(next.next.as_deref());
    let status = StatusCode::OK;
    page(status, sign_in_page(&state, &next, None))
}

/// `POST /admin/sign-in`: a session and the page asked for, or the form again.
pub(super) async fn submit(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    let next = destination(form.next.as_deref());
    let token = &state.config.admin_token;
    let now = state.db.now();
    match session::issue(token, now).filter(|_| is_admin_token(form.token.trim(), token)) {
        Some(value) => {
            tracing::info!("an operator signed in to the console");
            let mut response = see_other(&next);
            let cookie = session::set_cookie(&value, state.config.secure_cookies);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => {
            session::slow_down().await;
            tracing::warn!("a console sign-in with a wrong token was refused");
            let problem = "That is not the admin token.";
            page(
                StatusCode::UNAUTHORIZED,
                sign_in_page(&state, &next, Some(problem)),
            )
        }
    }
}

/// `POST /admin/sign-out`: the session cookie cleared, back to the sign-in form.
pub(super) async fn sign_out(State(state): State<AppState>) -> Response {
    let mut response = see_other("/admin/sign-in");
    let cookie = session::clear_cookie(state.config.secure_cookies);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response.into_response()
}

/// `next` if it is a console page of this site, else the dashboard: a sign-in link can never
/// send an operator to another site.
fn destination(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?"))
                && !path.contains("//")
                && !path.contains('\\') =>
        {
            path.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

fn sign_in_page(state: &AppState, next: &str, problem: Option<&str>) -> Markup {
    let closed = state.config.admin_token.is_empty();
    let body = html! {
        section.panel.narrow {
            h1 { "Sign in to operations" }
            @if closed {
                p { "The console is closed: this instance was started without an admin token." }
            } @else {
                form method="post" action="/admin/sign-in" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" required autocomplete="current-password"
                        aria-invalid=[problem.map(|_| "true")]
                        aria-describedby=[problem.map(|_| "token-error")];
                    @if let Some(problem) = problem {
                        p #token-error .error role="alert" { (problem) }
                    }
                    button.button type="submit" { "Sign in" }
                }
                p.hint { "The token is the one given to " code { "microcommerce serve --admin-token" }
                    " (or printed at start-up)." }
            }
        }
    };
    chrome::page("Sign in", None, body)
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn only_console_pages_of_this_site_are_destinations() {
        assert_eq!(
            destination(Some("/admin/orders?status=Failed")),
            "/admin/orders?status=Failed"
        );
        assert_eq!(destination(Some("/admin")), "/admin");
        for elsewhere in [
            "https://evil.test/admin",
            "//evil.test",
            "/admin//evil",
            "/cart",
            "/administrator",
        ] {
            assert_eq!(destination(Some(elsewhere)), "/admin", "{elsewhere}");
        }
        assert_eq!(destination(None), "/admin");
    }
}
