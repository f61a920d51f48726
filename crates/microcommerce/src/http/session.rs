//! The operations console's sign-in session: a cookie that says "signed in until T", signed
//! with a key derived from the admin token. It needs no table, holds across instances and
//! restarts, and dies with the token: changing the token signs every operator out.
//!
//! The cookie is HttpOnly (no script reads it), `SameSite=Strict` (no other site's page makes
//! the browser send it) and `Secure` when the service is configured for HTTPS. Actions made with
//! it are also refused when the browser says they come from another origin ([`cross_origin`]).

use std::time::Duration;

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use storage::Timestamp;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "mc_console";

/// How long a sign-in lasts: a working shift, after which the operator signs in again.
pub const LASTS: Duration = Duration::from_secs(8 * 60 * 60);

/// Wrong tokens wait this long for their answer, one at a time per instance (see
/// [`slow_down`]), so guessing the token over the network is hopeless.
pub const WRONG_TOKEN_DELAY: Duration = Duration::from_secs(1);

/// A new session's cookie value, valid until `now` + [`LASTS`]; `None` when no admin token is
/// configured (the console is then closed to everyone).
pub fn issue(token: &str, now: Timestamp) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let expires = now.0 / 1_000_000 + LASTS.as_secs() as i64;
    let claim = format!("v1.{expires}.{}", uuid::Uuid::new_v4().simple());
    Some(format!(
        "{claim}.{}",
        hex(&mac(token, &claim).finalize().into_bytes())
    ))
}

/// True when `value` is a session this token signed and it has not expired.
pub fn is_valid(value: &str, token: &str, now: Timestamp) -> bool {
    let Some((claim, signature)) = value.rsplit_once('.') else {
        return false;
    };
    let mut fields = claim.split('.');
    let (Some("v1"), Some(expires), Some(_nonce), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let unexpired = expires
        .parse::<i64>()
        .is_ok_and(|expires| now.0 / 1_000_000 < expires);
    let signed = unhex(signature)
        .is_some_and(|signature| mac(token, claim).verify_slice(&signature).is_ok());
    !token.is_empty() && unexpired && signed
}

/// True when the request carries a valid session cookie.
pub fn signed_in(headers: &HeaderMap, token: &str, now: Timestamp) -> bool {
    cookie_values(headers).any(|value| is_valid(value, token, now))
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(value: &str, secure: bool) -> HeaderValue {
    let max_age = LASTS.as_secs();
    cookie_header(&format!("{COOKIE_NAME}={value}; Max-Age={max_age}"), secure)
}

/// The `Set-Cookie` value that ends the session in this browser.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie_header(&format!("{COOKIE_NAME}=; Max-Age=0"), secure)
}

fn cookie_header(start: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{start}; Path=/; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Makes a wrong token wait [`WRONG_TOKEN_DELAY`], one at a time: parallel guesses queue
/// behind each other, while the right token is never held up.
pub async fn slow_down() {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    tokio::time::sleep(WRONG_TOKEN_DELAY).await;
}

/// True for methods that change something (everything but GET, HEAD and OPTIONS).
pub fn is_action(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// True when the browser's headers show a request from another origin: by `Sec-Fetch-Site`,
/// or, from browsers that do not send it, by comparing `Origin` with `Host` (the check of Go's
/// `CrossOriginProtection`). Requests with neither come from tools, not from a browser page,
/// and carry only the cookies their user gave them.
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(&HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(&ORIGIN), text(&HOST)) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin_host != Some(host)
        }
        (Some(_), None) => true,
    }
}

fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// The MAC of `claim` under a key of its own derived from the token, so the cookie never
/// reveals anything usable as the token itself.
fn mac(token: &str, claim: &str) -> Hmac<Sha256> {
    let key = <Sha256 as sha2::Digest>::digest(format!("microcommerce console session\n{token}"));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(claim.as_bytes());
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn a_session_is_valid_for_its_token_until_it_expires() {
        let now = Timestamp(1_800_000_000 * 1_000_000);
        let session = issue("secret", now).expect("a token is set");
        assert!(is_valid(&session, "secret", now));
        assert!(is_valid(&session, "secret", Timestamp(now.0 + 7 * HOUR)));
        assert!(!is_valid(&session, "secret", Timestamp(now.0 + 8 * HOUR)));
        assert!(!is_valid(&session, "another", now), "a new token signs out");
    }

    #[test]
    fn a_changed_or_forged_session_is_refused() {
        let now = Timestamp(1_800_000_000 * 1_000_000);
        let session = issue("secret", now).expect("a token is set");
        let (claim, signature) = session.rsplit_once('.').expect("signed");
        let later = claim.replacen("v1.1800", "v1.1900", 1);
        assert!(!is_valid(&format!("{later}.{signature}"), "secret", now));
        assert!(!is_valid(&format!("{claim}.00"), "secret", now));
        assert!(!is_valid(claim, "secret", now));
        assert!(!is_valid("", "secret", now));
        assert!(!is_valid("v1.x.y.zz", "secret", now));
    }

    #[test]
    fn no_token_no_console() {
        let now = Timestamp(0);
        assert_eq!(issue("", now), None);
        let forged = format!(
            "v1.99.n.{}",
            hex(&mac("", "v1.99.n").finalize().into_bytes())
        );
        assert!(!is_valid(&forged, "", now));
    }

    #[test]
    fn the_session_is_found_among_other_cookies() {
        let now = Timestamp(1_800_000_000 * 1_000_000);
        let session = issue("secret", now).expect("a token is set");
        let cookie = format!("buyer_id=abc; {COOKIE_NAME}={session}");
        let mut map = HeaderMap::new();
        map.insert(COOKIE, HeaderValue::from_str(&cookie).expect("ascii"));
        assert!(signed_in(&map, "secret", now));
        assert!(!signed_in(
            &headers(&[("cookie", "buyer_id=abc")]),
            "secret",
            now
        ));
    }

    #[test]
    fn the_cookie_is_strict_and_unreadable_by_scripts() {
        let cookie = set_cookie("v", true);
        assert_eq!(
            cookie.to_str().expect("ascii"),
            "mc_console=v; Max-Age=28800; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(
            clear_cookie(false)
                .to_str()
                .expect("ascii")
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn fetch_metadata_decides_when_the_browser_sends_it() {
        assert!(!cross_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(cross_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_origin(&headers(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn otherwise_the_origin_must_name_this_host() {
        let same = [
            ("origin", "http://shop.test:8080"),
            ("host", "shop.test:8080"),
        ];
        assert!(!cross_origin(&headers(&same)));
        let other = [("origin", "https://evil.test"), ("host", "shop.test:8080")];
        assert!(cross_origin(&headers(&other)));
        assert!(cross_origin(&headers(&[("origin", "null"), ("host", "a")])));
        assert!(!cross_origin(&headers(&[("host", "shop.test")])));
    }
}
