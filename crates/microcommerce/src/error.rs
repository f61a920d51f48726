//! The service's errors in domain terms, and their one mapping to RFC 9457 problem+json.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use storage::ErrorKind;

use crate::ids::ProductId;

/// Field name → messages, as returned in a validation problem's `errors` member.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything a request or a consumer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but its values break the rules.
    #[error("one or more fields are invalid")]
    Validation(FieldErrors),
    /// The request is well-formed and within the documented bounds, but refused as things stand
    /// (an empty cart, a product not for sale, an unknown category).
    #[error("the request cannot be carried out as it stands")]
    Unprocessable(FieldErrors),
    /// The body is not declared as JSON.
    #[error("the body must be sent as application/json")]
    UnsupportedMediaType,
    /// The request could not be read (malformed JSON, a malformed id, …).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the service accepts.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The route exists but not with this method.
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    /// No valid admin token was presented.
    #[error("a valid admin bearer token (or a console session) is required")]
    Unauthorized,
    /// An action made with the console's session cookie came from another site's page.
    #[error("this action was sent from another site")]
    CrossSite,
    /// Another product has the SKU a create or an update asked for (a unique constraint).
    #[error("another product already has this SKU")]
    DuplicateSku,
    /// Another category has the name a create or an edit asked for, in any case (a unique
    /// index).
    #[error("another category is already called {0:?}")]
    DuplicateCategory(String),
    /// An `Idempotency-Key` already used by this buyer for a different request: answering with
    /// the first request's order would hide that this one was not carried out.
    #[error("this Idempotency-Key was already used for a different request; use a new key")]
    IdempotencyKeyReused,
    /// Every order number drawn for a new order was taken; drawing again may succeed.
    #[error("could not allocate an order number; retry")]
    OrderNumberExhausted,
    /// A payment for an order that does not await one.
    #[error("{0}")]
    NotAwaitingPayment(NotAwaitingPayment),
    /// An admin asked for a status change that only the checkout saga makes, or none does.
    /// Carries the statuses' names: this module sits below ordering, which owns the statuses.
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition {
        /// The order's status now.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// A stock adjustment would leave fewer units on hand than the checkouts hold reserved.
    #[error(
        "adjusting by {adjustment} would leave {on_hand_after} on hand with {reserved} reserved"
    )]
    InsufficientStock {
        /// The product whose stock it is.
        product: ProductId,
        /// The units the adjustment asked to add (negative: remove).
        adjustment: i64,
        /// What would be on hand after it.
        on_hand_after: i64,
        /// What is reserved now.
        reserved: i64,
    },
    /// A limit that protects the service turned the request away (see `http::limits`).
    #[error("{0}")]
    Limited(Limit),
    /// A database failure; never shown to the client.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A bus failure; never shown to the client.
    #[error("messaging error")]
    Bus(#[from] bus::BusError),
    /// A grouped write transaction did not commit; never shown to the client.
    #[error("transaction error")]
    Group(#[from] bus::GroupError),
}

/// Why an order does not take a payment now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAwaitingPayment {
    /// The order's checkout saga has not started.
    #[error("the order's checkout has not started yet")]
    NotStarted,
    /// The order is in this status, which takes no payment.
    #[error("the order is {0} and does not await payment")]
    InStatus(&'static str),
    /// A payment was recorded already.
    #[error("a payment for this order was already recorded")]
    AlreadyPaid,
    /// The payment window closed (its timeout fired or is being handled).
    #[error("the payment window has closed")]
    WindowClosed,
    /// A payment or the payment timeout is settling the checkout at this moment.
    #[error("a payment or the payment timeout is already settling this checkout")]
    Settling,
}

/// Which limit turned a request away, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// This client sent writing requests faster than its rate allows (429).
    #[error("too many writing requests from this client; retry after {} s", retry_after_seconds(*.retry_after))]
    Rate {
        /// When the client's next request will be let through.
        retry_after: std::time::Duration,
    },
    /// As many requests are held open (long polls, `Prefer: wait`, event streams) as the
    /// service allows, or as this client address may hold (503).
    #[error(
        "too many requests are held open waiting for changes, in all or from this client; retry, or ask without waiting"
    )]
    HeldOpen,
    /// The request took longer than the service gives one (503); its effect may have
    /// committed, so a checkout retried with its `Idempotency-Key` is safe.
    #[error("the request took too long and was abandoned; retry shortly")]
    Timeout,
    /// A new checkout would hold more unpaid checkouts than one buyer (or one client address)
    /// may (429): stock is not held for anyone who does not pay.
    #[error("{holder} already holds {limit} unpaid checkouts; pay one, or retry after {} s when the oldest lapses", retry_after_seconds(*.retry_after))]
    UnpaidCheckouts {
        /// Who holds them.
        holder: Holder,
        /// How many one may hold.
        limit: u32,
        /// When the oldest one's payment window closes and frees a place.
        retry_after: std::time::Duration,
    },
}

/// Who holds the unpaid checkouts a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Holder {
    /// The buyer of the cookie.
    #[error("this buyer")]
    Buyer,
    /// Every buyer behind the client's address.
    #[error("this client address")]
    Address,
}

/// Whole seconds for `Retry-After`, rounded up: a client that waits them is let through.
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Field errors naming one field.
fn one_field(field: &str, message: String) -> FieldErrors {
    FieldErrors::from([(field.to_owned(), vec![message])])
}

/// Result alias for the service.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a constraint the database enforces into the domain error it means, at the query that
/// hit it, so that callers never inspect database errors themselves.
pub trait ResultExt<T> {
    /// `error` if the query broke a unique constraint; any other failure stays a database error.
    fn on_unique_violation(self, error: Error) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_unique_violation(self, error: Error) -> Result<T> {
        self.map_err(|failure| match ErrorKind::of(&failure) {
            ErrorKind::UniqueViolation => error,
            _ => failure.into(),
        })
    }
}

impl Error {
    /// A validation problem about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(one_field(field, message.into()))
    }

    /// A refusal about one field of a well-formed request.
    pub fn refused(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(one_field(field, message.into()))
    }

    /// Seconds after which the request is worth sending again (`Retry-After`), for the
    /// answers that have one: 429 and 503 (`status`, this error's).
    fn retry_after(&self, status: StatusCode) -> Option<u64> {
        match self {
            Self::Limited(
                Limit::Rate { retry_after } | Limit::UnpaidCheckouts { retry_after, .. },
            ) => Some(retry_after_seconds(*retry_after)),
            _ => (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        }
    }

    /// The HTTP status this error maps to.
    pub(crate) fn status(&self) -> StatusCode {
        self.status_and_kind().0
    }

    fn status_and_kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not Found"),
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "validation", "Validation failed"),
            Self::Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
            ),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad Request"),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload Too Large",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::CrossSite => (StatusCode::FORBIDDEN, "cross-site", "Forbidden"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
            ),
            Self::DuplicateSku => (StatusCode::CONFLICT, "duplicate-sku", "Conflict"),
            Self::DuplicateCategory(_) => (StatusCode::CONFLICT, "duplicate-category", "Conflict"),
            Self::OrderNumberExhausted => (StatusCode::CONFLICT, "order-number", "Conflict"),
            Self::NotAwaitingPayment(_) => {
                (StatusCode::CONFLICT, "not-awaiting-payment", "Conflict")
            }
            Self::InvalidTransition { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-status-transition",
                "Unprocessable",
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Unprocessable",
            ),
            Self::InsufficientStock { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "insufficient-stock",
                "Unprocessable",
            ),
            Self::Limited(Limit::Rate { .. }) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too Many Requests",
            ),
            Self::Limited(Limit::UnpaidCheckouts { .. }) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-unpaid-checkouts",
                "Too Many Requests",
            ),
            Self::Limited(Limit::HeldOpen) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-waiting",
                "Service Unavailable",
            ),
            Self::Limited(Limit::Timeout) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Service Unavailable",
            ),
            Self::Database(_) | Self::Bus(_) | Self::Group(_) => self.storage_failure(),
        }
    }

    /// A database, bus or group failure: 503 when retrying soon may succeed (the database is
    /// away, busy or out of space), 500 otherwise.
    fn storage_failure(&self) -> (StatusCode, &'static str, &'static str) {
        const UNAVAILABLE: &str = "Service Unavailable";
        let sql = match self {
            Self::Database(error) | Self::Bus(bus::BusError::Sql(error)) => Some(error),
            Self::Group(bus::GroupError::Sql(error)) => Some(error.as_ref()),
            _ => None,
        };
        match sql.map(ErrorKind::of) {
            Some(ErrorKind::DiskFull) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage-full", UNAVAILABLE)
            }
            Some(kind) if is_unavailable(kind) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", UNAVAILABLE)
            }
            None if matches!(self, Self::Group(bus::GroupError::ShuttingDown)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", UNAVAILABLE)
            }
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
            ),
        }
    }
}

/// The database is busy, unreachable or restarting, or the transaction lost a serialization
/// or deadlock race, or the server ended a transaction this instance kept waiting (it was
/// paused or cut off; nothing of it committed): nothing the client did wrong, and worth
/// retrying soon (503 with `Retry-After`), never a 500. A disk that is full is answered apart.
fn is_unavailable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Busy
            | ErrorKind::Closed
            | ErrorKind::ConnectionLost
            | ErrorKind::ServerRestarting
            | ErrorKind::TransactionEndedByServer
            | ErrorKind::LostRace
    )
}

/// Marks a response whose transaction lost a serialization or deadlock race; the edge runs the
/// request again instead of answering it (see `http::retry_conflicts`).
#[derive(Debug, Clone, Copy)]
pub struct RetryableConflict;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Field name → messages, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>, nullable = false)]
    pub errors: Option<FieldErrors>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.status_and_kind();
        let storage_kind = match &self {
            Self::Database(error) | Self::Bus(bus::BusError::Sql(error)) => {
                Some(ErrorKind::of(error))
            }
            _ => None,
        };
        if let Some(storage_kind) = storage_kind {
            metrics::counter!("storage_errors_total", "kind" => storage_kind.name()).increment(1);
        }
        if matches!(self, Self::Limited(_)) {
            metrics::counter!("http_requests_refused_total", "reason" => kind).increment(1);
        }
        let race = storage_kind == Some(ErrorKind::LostRace);
        let retry_after = self.retry_after(status);
        let detail = if matches!(self, Self::Limited(_)) {
            self.to_string()
        } else if kind == "storage-full" {
            tracing::error!(error = ?self, "the database has no space left");
            "The database has no space left to write; nothing was written. Retry once space is freed."
                .to_owned()
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = ?self, "database unavailable or transaction race");
            "The database is unavailable for a moment; retry shortly.".to_owned()
        } else if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
            "The server could not complete the request; it has been logged.".to_owned()
        } else {
            self.to_string()
        };
        let problem = Problem {
            kind: format!("urn:microcommerce:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) | Self::Unprocessable(errors) => Some(errors),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        if race {
            response.extensions_mut().insert(RetryableConflict);
        }
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, problem slug, title and detail, as the problem document carries them.
    fn shape(error: &Error) -> (u16, &'static str, &'static str, String) {
        let (status, kind, title) = error.status_and_kind();
        (status.as_u16(), kind, title, error.to_string())
    }

    #[test]
    fn conflicts_keep_their_problem_documents() {
        assert_eq!(
            shape(&Error::DuplicateSku),
            (
                409,
                "duplicate-sku",
                "Conflict",
                "another product already has this SKU".into()
            )
        );
        assert_eq!(
            shape(&Error::OrderNumberExhausted),
            (
                409,
                "order-number",
                "Conflict",
                "could not allocate an order number; retry".into()
            )
        );
        assert_eq!(
            shape(&Error::DuplicateCategory("Garden".into())),
            (
                409,
                "duplicate-category",
                "Conflict",
                "another category is already called \"Garden\"".into()
            )
        );
    }

    #[test]
    fn refused_business_rules_keep_their_problem_documents() {
        let transition = Error::InvalidTransition {
            from: "Paid",
            to: "Shipped",
        };
        assert_eq!(
            shape(&transition),
            (
                422,
                "invalid-status-transition",
                "Unprocessable",
                "an order cannot go from Paid to Shipped".into()
            )
        );
        let stock = Error::InsufficientStock {
            product: ProductId(uuid::Uuid::nil()),
            adjustment: -5,
            on_hand_after: 2,
            reserved: 3,
        };
        assert_eq!(
            shape(&stock),
            (
                422,
                "insufficient-stock",
                "Unprocessable",
                "adjusting by -5 would leave 2 on hand with 3 reserved".into()
            )
        );
    }

    #[test]
    fn storage_failures_answer_503_when_retrying_soon_may_succeed() {
        let answer = |kind: ErrorKind| {
            let (status, slug, _) = Error::Database(kind.simulated()).status_and_kind();
            (status.as_u16(), slug)
        };
        assert_eq!(answer(ErrorKind::DiskFull), (503, "storage-full"));
        for kind in [
            ErrorKind::Busy,
            ErrorKind::Closed,
            ErrorKind::ConnectionLost,
            ErrorKind::ServerRestarting,
            ErrorKind::TransactionEndedByServer,
            ErrorKind::LostRace,
        ] {
            assert_eq!(answer(kind), (503, "unavailable"), "{kind:?}");
        }
        for kind in [
            ErrorKind::LockTimeout,
            ErrorKind::UniqueViolation,
            ErrorKind::Other,
        ] {
            assert_eq!(answer(kind), (500, "internal"), "{kind:?}");
        }
    }
}
