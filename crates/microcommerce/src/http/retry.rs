//! Runs a request again when its transaction lost a serialization or deadlock race.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::BODY_LIMIT;
use crate::error::RetryableConflict;

/// Attempts in all before a lost race is answered (503, `Retry-After`).
const ATTEMPTS: usize = 3;

/// PostgreSQL may abort a transaction that deadlocked or could not be serialized
/// ([`storage::ErrorKind::LostRace`]); nothing of it was committed, so the whole request runs again, up to three
/// times, with the same body. The body is read up front (it is at most 64 KiB).
pub async fn retry_conflicts(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return crate::Error::PayloadTooLarge.into_response(),
    };
    let mut attempt = 1;
    loop {
        let request = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
        let response = next.clone().run(request).await;
        if attempt == ATTEMPTS || response.extensions().get::<RetryableConflict>().is_none() {
            return response;
        }
        tracing::info!(
            attempt,
            "transaction lost a race; running the request again"
        );
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use storage::ErrorKind;
    use tower::ServiceExt;

    use super::*;

    /// A route that fails with an error of `kind` until it has been called `failures` times,
    /// echoing its body once it succeeds.
    fn app(kind: ErrorKind, failures: usize, calls: Arc<AtomicUsize>) -> Router {
        let handler = move |body: String| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < failures {
                    Err(crate::Error::Database(kind.simulated()))
                } else {
                    Ok(body)
                }
            }
        };
        Router::new()
            .route("/", post(handler))
            .layer(axum::middleware::from_fn(retry_conflicts))
    }

    async fn call(app: Router) -> (StatusCode, String) {
        let request = Request::post("/").body(Body::from("same body")).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_lost_serialization_race_runs_the_request_again_with_the_same_body() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, body) = call(app(ErrorKind::LostRace, 2, calls.clone())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "same body"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_deadlock_that_keeps_happening_is_a_503_after_three_attempts() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, _) = call(app(ErrorKind::LostRace, usize::MAX, calls.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, _) = call(app(ErrorKind::UniqueViolation, usize::MAX, calls.clone())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
