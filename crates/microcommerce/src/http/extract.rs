//! Wrappers over axum's extractors whose rejections are problem documents, never plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// JSON body in, JSON body out; a malformed body is a 400 problem, an oversized one a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Why a form with a NUL character is refused.
pub(crate) const NUL_REFUSED: &str = "text must not contain a NUL character";

fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
        _ => Error::BadRequest(rejection.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Reads a JSON integer as JSON Schema counts one: `3` and also `3.0` (a number whose fraction is
/// zero), so that every value the document calls an integer is accepted; `3.5` is refused.
pub fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // The bounds are exactly representable; 2^63 itself is out of range.
        Some(value)
            if value.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value) =>
        {
            Ok(value as i64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "expected an integer, got {number}"
        ))),
    }
}

/// Path parameters; a malformed id is a 400 problem.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection: PathRejection| Error::BadRequest(rejection.body_text()))
    }
}

/// Query parameters; malformed ones are a 400 problem.
#[derive(Debug, Clone, Copy)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| Error::BadRequest(rejection.body_text()))
    }
}

/// True when a form body encodes a NUL character (`%00`), which no text column stores.
pub(crate) fn encodes_nul(text: &[u8]) -> bool {
    text.windows(3).any(|w| w == b"%00")
}

/// The client's `Prefer: wait=N` (RFC 7240): hold the answer of an operation that goes on in
/// the background for up to N seconds (at most [`PreferWait::LONGEST`]) until it moves on, and
/// save a round trip to ask again. Absent or malformed, the preference is ignored, as the RFC
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreferWait(pub Option<std::time::Duration>);

impl PreferWait {
    /// The longest wait honoured; a longer one is shortened to it.
    pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

    /// The `Prefer` header's description in the API document.
    pub const DESCRIPTION: &str =
        "wait=N: hold the answer until the saga moves the order on, N seconds at most (30)";

    /// The `Preference-Applied` header value for a wait that was honoured.
    pub fn applied(self) -> Option<String> {
        self.0.map(|wait| format!("wait={}", wait.as_secs()))
    }

    /// Tells the client that its `Prefer: wait` was honoured (RFC 7240 `Preference-Applied`).
    pub fn mark_applied(self, answer: &mut Response) {
        if let Some(applied) = self.applied().and_then(|text| text.parse().ok()) {
            answer.headers_mut().insert("preference-applied", applied);
        }
    }

    /// The preference among `headers`, as the extractor reads it.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        let wait = headers
            .get_all("prefer")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(Self::parse);
        Self(wait)
    }

    fn parse(header: &str) -> Option<std::time::Duration> {
        let seconds = header.split(',').find_map(|preference| {
            let (name, value) = preference.split_once('=')?;
            let value = value.split(';').next()?.trim().trim_matches('"');
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.parse::<u64>().ok())?
        })?;
        Some(std::time::Duration::from_secs(seconds).min(Self::LONGEST))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PreferWait {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::PreferWait;
    use std::time::Duration;

    #[test]
    fn prefer_wait_reads_seconds_among_other_preferences_and_caps_them() {
        assert_eq!(PreferWait::parse("wait=5"), Some(Duration::from_secs(5)));
        assert_eq!(
            PreferWait::parse("respond-async, Wait = 2"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            PreferWait::parse("wait=\"3\""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(PreferWait::parse("wait=600"), Some(PreferWait::LONGEST));
    }

    #[test]
    fn a_malformed_or_absent_wait_is_ignored() {
        for header in ["", "wait", "wait=soon", "wait=-1", "return=minimal"] {
            assert_eq!(PreferWait::parse(header), None, "{header:?}");
        }
    }
}

#[cfg(test)]
mod nul_tests {
    use super::encodes_nul;

    #[test]
    fn a_percent_encoded_nul_is_found_in_a_form() {
        assert!(encodes_nul(b"name=a%00b"));
        assert!(!encodes_nul(b"name=100%25"));
    }
}
