//! Who is calling: a buyer known by an unguessable cookie, and admins by bearer token.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::session;
use crate::Error;
use crate::ids::BuyerId;
use crate::state::AppState;

const COOKIE_NAME: &str = "buyer_id";

/// Gives every request a buyer: the one named by the `buyer_id` cookie, or a new one whose
/// cookie is set on the response. The id is a random UUID v4 (122 random bits), so it cannot be
/// guessed; it is the buyer's only credential, hence HttpOnly and SameSite=Lax.
pub async fn buyer_identity(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let known = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("buyer_id="))
        .find_map(|value| value.parse::<uuid::Uuid>().ok());
    let buyer = BuyerId(known.unwrap_or_else(uuid::Uuid::new_v4));
    request.extensions_mut().insert(buyer);
    let mut response = next.run(request).await;
    if known.is_none() {
        let secure = if state.config.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{COOKIE_NAME}={buyer}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// The calling buyer, and whether they are an admin (the token, or a console session).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The buyer the cookie names (or the one just created).
    pub buyer: BuyerId,
    /// True when the admin token came with the request, or the console's session cookie
    /// (not on an action from another site's page).
    pub is_admin: bool,
    /// The client's address, as the limits count clients (behind a trusted proxy, the client
    /// it names; unspecified for an operator or a router served without connection info).
    pub address: IpAddr,
}

impl Caller {
    /// An admin who is no buyer: the console's signed-in operator, who may see every order.
    pub fn operator() -> Self {
        Self {
            buyer: BuyerId(uuid::Uuid::nil()),
            is_admin: true,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// True if the caller may see or act on something owned by `owner`.
    pub fn may_access(&self, owner: BuyerId) -> bool {
        self.is_admin || self.buyer == owner
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let buyer = parts
            .extensions
            .get::<BuyerId>()
            .copied()
            .unwrap_or_else(|| BuyerId(uuid::Uuid::new_v4()));
        Ok(Self {
            buyer,
            // A session used from another site's page is only a buyer here.
            is_admin: is_admin(parts, state).unwrap_or(false),
            address: super::client_address::client_address(&parts.extensions),
        })
    }
}

/// Proof that the caller is an admin: the request carries the admin bearer token, or the
/// console's session cookie ([`super::session`]). Rejects with 401 otherwise, after a delay when
/// a wrong token was presented; an action made with the cookie from another site's page is
/// refused with 403.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if is_admin(parts, state)? {
            return Ok(Self);
        }
        if parts.headers.contains_key(AUTHORIZATION) {
            session::slow_down().await;
        }
        Err(Error::Unauthorized)
    }
}

/// Whether the request comes from an admin: it carries the admin token, or the console's
/// session cookie; an action made with the cookie from another site's page is
/// [`Error::CrossSite`], since a browser sends the cookie whoever made it send the request.
fn is_admin(parts: &Parts, state: &AppState) -> Result<bool, Error> {
    let token = &state.config.admin_token;
    if has_admin_token(&parts.headers, token) {
        return Ok(true);
    }
    if !session::signed_in(&parts.headers, token, state.db.now()) {
        return Ok(false);
    }
    if session::is_action(&parts.method) && session::cross_origin(&parts.headers) {
        return Err(Error::CrossSite);
    }
    Ok(true)
}

/// True when the request presents the admin token; never when no token is configured.
pub(super) fn has_admin_token(headers: &HeaderMap, token: &str) -> bool {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|presented| is_admin_token(presented, token))
}

/// True when `presented` is the admin token; never when no token is configured.
pub fn is_admin_token(presented: &str, token: &str) -> bool {
    !token.is_empty() && constant_time_eq(presented.as_bytes(), token.as_bytes())
}

/// Compares without an early exit, so response timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
