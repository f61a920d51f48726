//! The storefront: HTML pages for shoppers at `/`, served by the same binary as the JSON API and
//! built on the same module functions (catalog, inventory, cart, ordering, payment), with the
//! same `buyer_id` cookie, so a cart filled in the browser is the cart the API sees.
//!
//! Pages are maud templates rendered on the server; a little plain JavaScript (`assets/app.js`)
//! follows a checkout live over server-sent events and records the simulated payment without a
//! reload. Every asset (CSS, JS, SVG pictures) is compiled into the binary, so the page asks no
//! other host for anything and no picture is ever broken offline.
//!
//! Security:
//! - maud escapes every value it interpolates;
//! - every page carries a Content-Security-Policy that allows scripts, styles and pictures from
//!   this origin only: no inline script, no inline handlers;
//! - form posts are refused (403) when the browser says they come from another origin: by
//!   `Sec-Fetch-Site`, or, from browsers that do not send it, by comparing `Origin` with `Host`
//!   (the check of Go's `CrossOriginProtection`). Browsers send one of them with every post, so a
//!   page on another site cannot post a form here; with the buyer cookie being `SameSite=Lax`
//!   a cross-site post would not even carry the buyer. No token is needed, so pages stay
//!   cacheable and a form opened in another tab still works.

mod assets;
mod cart;
mod checkout;
mod console;
mod layout;
mod orders;
mod shop;

use axum::Router;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use crate::http::Caller;
use crate::state::AppState;

/// The storefront's pages, form posts, live order events and assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(shop::home))
        .route("/products/{id}", get(shop::product))
        .route("/cart", get(cart::page))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{id}", post(cart::change))
        .route("/cart/items/{id}/remove", post(cart::remove))
        .route("/checkout", get(checkout::form).post(checkout::submit))
        .route("/orders", get(orders::mine))
        .route("/orders/{id}", get(orders::page))
        .route("/orders/{id}/events", get(orders::events))
        .route("/orders/{id}/pay", post(orders::pay))
        .route("/assets/{*path}", get(assets::serve))
        .merge(console::router())
        .route_layer(from_fn(same_origin_posts))
}

/// Unknown routes: a problem document under `/api` and `/health`, as the API promises, and the
/// storefront's 404 page everywhere else.
pub async fn fallback(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") || path.starts_with("/health") {
        return crate::http::fallback().await.into_response();
    }
    let chrome = layout::Chrome::of(&state, &caller).await;
    WebError::NotFound.page(&chrome)
}

/// What a page handler fails with: rendered as an HTML page, never as JSON.
#[derive(Debug)]
pub(crate) enum WebError {
    /// No such page, product or order (or not the caller's).
    NotFound,
    /// A module refused or failed.
    Module(crate::Error),
}

impl From<crate::Error> for WebError {
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::NotFound(_) => Self::NotFound,
            other => Self::Module(other),
        }
    }
}

impl WebError {
    /// The error page, with the header's cart count as `chrome` gives it.
    fn page(self, chrome: &layout::Chrome) -> Response {
        let (status, title, detail) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. It may have moved, or it is not yours."
                    .to_owned(),
            ),
            Self::Module(error) => {
                // The API's mapping decides the status.
                let status = error.status();
                if status.is_server_error() {
                    tracing::error!(?error, "page failed");
                }
                let detail = match &error {
                    _ if status.is_server_error() => {
                        "Something went wrong on our side. Please try again in a moment.".to_owned()
                    }
                    crate::Error::Validation(errors) | crate::Error::Unprocessable(errors) => {
                        field_messages(errors)
                    }
                    other => capitalized(&other.to_string()),
                };
                (status, "We could not do that", detail)
            }
        };
        let body = html! {
            section.panel {
                h1 { (title) }
                p { (detail) }
                p { a.button href="/" { "Back to the shop" } }
            }
        };
        page(status, layout::page(title, chrome, body))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.page(&layout::Chrome::default())
    }
}

/// A validation problem in a sentence: `Quantity must be between 1 and 99.`
fn field_messages(errors: &crate::error::FieldErrors) -> String {
    let sentences: Vec<String> = errors
        .iter()
        .flat_map(|(field, messages)| {
            messages
                .iter()
                .map(move |message| capitalized(&format!("{field} {message}.")))
        })
        .collect();
    sentences.join(" ")
}

/// The first letter in upper case, for messages that start a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// What a page handler returns.
pub(crate) type PageResult = std::result::Result<Response, WebError>;

/// Policy for every page: scripts, styles, pictures and connections from this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// An HTML page with the storefront's security headers. Pages show a buyer's cart and orders,
/// so no cache keeps them.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(headers);
    response
}

/// The security headers of everything the storefront serves, pages and assets alike: the
/// content policy, no guessing of media types, and no address leaked to other sites.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// After a form post: see the result at `to` (303, so a reload does not post again).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// An id from the path; a malformed one is a page that does not exist.
fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, WebError> {
    text.parse().map_err(|_| WebError::NotFound)
}

/// Refuses form posts that the browser says come from another origin (see the module doc).
async fn same_origin_posts(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD)
        || !crate::http::session::cross_origin(request.headers())
    {
        return next.run(request).await;
    }
    let body = html! {
        section.panel {
            h1 { "Form refused" }
            p { "This form was sent from another site. Please use the shop's own pages." }
            p { a.button href="/" { "Back to the shop" } }
        }
    };
    let chrome = layout::Chrome::default();
    page(
        StatusCode::FORBIDDEN,
        layout::page("Form refused", &chrome, body),
    )
}

/// A urlencoded form; an unreadable one is a 400 page rather than axum's plain-text rejection.
pub(crate) struct Form<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        let refused = |text: String| WebError::Module(crate::Error::BadRequest(text));
        let bytes = axum::body::to_bytes(body, crate::http::BODY_LIMIT)
            .await
            .map_err(|error| refused(format!("the form could not be read: {error}")))?;
        if crate::http::encodes_nul(&bytes) {
            return Err(refused(crate::http::NUL_REFUSED.into()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(value)| Self(value))
            .map_err(|rejection| {
                WebError::Module(crate::Error::BadRequest(format!(
                    "the form could not be read: {}",
                    rejection.body_text()
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_a_capital() {
        assert_eq!(capitalized("must be 1"), "Must be 1");
        assert_eq!(capitalized(""), "");
    }
}
