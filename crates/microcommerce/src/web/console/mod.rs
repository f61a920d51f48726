//! The operations console at `/admin`: pages for the people who run the shop, served by the same
//! binary as the storefront and built the same way (maud templates over the modules' service
//! functions, embedded assets, no inline script).
//!
//! An operator signs in with the admin token and gets a session cookie
//! ([`crate::http::session`]); every page asks for it through [`Operator`], and sends anyone
//! without it to the sign-in form. Actions are form posts, refused when the browser says they
//! come from another site (the storefront's same-origin check), and the cookie is
//! `SameSite=Strict` besides. A buyer's cookie opens nothing here.

mod catalog;
mod categories;
mod checkouts;
mod chrome;
mod dashboard;
mod dead_letters;
mod orders;
mod product;
mod sign_in;
mod stock;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::http::session;
use crate::state::AppState;

pub(crate) use chrome::Failure;

/// The console's pages and actions, under `/admin`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .route("/admin/checkout", get(checkouts::diagram))
        .route("/admin/checkouts", get(checkouts::list))
        .route("/admin/dead-letters", get(dead_letters::groups))
        .route("/admin/dead-letters/{id}", get(dead_letters::letter))
        .route(
            "/admin/dead-letters/{id}/retry",
            get(dead_letters::ask_retry).post(dead_letters::retry),
        )
        .route("/admin/dead-letters/groups/{id}", get(dead_letters::group))
        .route(
            "/admin/dead-letters/groups/{id}/retry",
            get(dead_letters::ask_retry_group).post(dead_letters::retry_group),
        )
        .route(
            "/admin/dead-letters/groups/{id}/purge",
            get(dead_letters::ask_purge_group).post(dead_letters::purge_group),
        )
        .route("/admin/orders", get(orders::list))
        .route("/admin/orders/{id}", get(orders::page))
        .route("/admin/orders/{id}/status", post(orders::move_on))
        .route(
            "/admin/orders/{id}/cancel",
            get(orders::confirm_cancel).post(orders::cancel),
        )
        .route("/admin/catalog", get(catalog::list))
        .route("/admin/catalog/products", post(product::create_product))
        .route(
            "/admin/catalog/products/{id}",
            get(catalog::product).post(product::update_product),
        )
        .route(
            "/admin/catalog/products/{id}/status",
            post(product::change_status),
        )
        .route("/admin/catalog/products/{id}/stock", post(stock::adjust))
        .route(
            "/admin/catalog/categories",
            post(categories::create_category),
        )
        .route(
            "/admin/catalog/categories/{id}",
            post(categories::update_category),
        )
}

/// What a console page returns.
type ConsoleResult = Result<Response, Failure>;

/// Proof that a signed-in operator asks. Without a valid session the request is sent to the
/// sign-in form, which brings the operator back to the page asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = &state.config.admin_token;
        if session::signed_in(&parts.headers, token, state.db.now()) {
            return Ok(Self);
        }
        let asked = parts
            .uri
            .path_and_query()
            .map_or("/admin", |path| path.as_str());
        let next: String = url_encoded(asked);
        Err(super::see_other(&format!("/admin/sign-in?next={next}")).into_response())
    }
}

/// `text` as a query value: everything but unreserved characters percent-encoded.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_address_travels_whole_in_a_query() {
        assert_eq!(
            super::url_encoded("/admin/orders?status=Failed&q=a b"),
            "/admin/orders%3Fstatus%3DFailed%26q%3Da%20b"
        );
    }
}
