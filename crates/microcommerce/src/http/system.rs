//! Routes that belong to no business module: health and dead-letter administration.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, Json, Path, Query, rfc3339};
use crate::error::Problem;
use crate::state::AppState;
use crate::{Error, Result};

/// Health and `/api/messaging`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(list_dead_letters, purge_dead_letters))
        .routes(routes!(retry_dead_letter))
}

/// Unknown routes answer with a 404 problem like every other error.
pub async fn fallback() -> Error {
    Error::NotFound("route")
}

/// A known route called with the wrong method answers with a 405 problem.
pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn live() -> &'static str {
    "ok"
}

/// What readiness depends on.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Readiness {
    /// The database answers.
    database: bool,
    /// The message workers run.
    workers: bool,
}

/// Readiness: the database answers and the workers run; 503 otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (or the service is overloaded)",
            content((Readiness = "application/json"), (Problem = "application/problem+json")))))]
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let database = match state.read().await {
        Ok(mut conn) => sqlx::query("SELECT 1").execute(&mut conn).await.is_ok(),
        Err(_) => false,
    };
    let workers = state.workers_running();
    let status = if database && workers {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { database, workers }))
}

/// A dead letter as administrators see it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    id: i64,
    #[schema(format = Uuid)]
    message_id: String,
    consumer: String,
    message_type: String,
    #[schema(format = Uuid)]
    correlation_id: String,
    attempts: u32,
    error: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    failed_at: String,
    payload: serde_json::Value,
}

/// Dead letters, oldest first, paged.
#[utoipa::path(get, path = "/api/messaging/dead-letters", tag = "messaging",
    params(super::Paging), security(("admin" = [])),
    responses((status = 200, body = super::Page<DeadLetterView>)))]
async fn list_dead_letters(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Query(paging): Query<super::Paging>,
) -> Result<Json<super::Page<DeadLetterView>>> {
    let request = paging.request()?;
    let offset = request.offset().unsigned_abs();
    let letters = state.bus.dead_letters(request.size, offset).await?;
    let total_count = i64::try_from(state.bus.dead_letter_count().await?).unwrap_or(i64::MAX);
    let items = letters
        .into_iter()
        .map(|letter| DeadLetterView {
            id: letter.id,
            message_id: letter.message_id.to_string(),
            consumer: letter.consumer,
            message_type: letter.message_type,
            correlation_id: letter.correlation_id.to_string(),
            attempts: letter.attempts,
            error: letter.error,
            created_at: rfc3339(letter.created_at),
            failed_at: rfc3339(letter.failed_at),
            payload: serde_json::from_str(&letter.payload).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(request.page_of(items, total_count)))
}

/// Puts a dead letter back on its queue.
#[utoipa::path(post, path = "/api/messaging/dead-letters/{id}/retry", tag = "messaging",
    params(("id" = i64, Path, description = "Dead letter id")), security(("admin" = [])),
    responses((status = 204, description = "Queued again")))]
async fn retry_dead_letter(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    if state.bus.retry_dead_letter(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("dead letter"))
    }
}

/// How many dead letters a purge removed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Purged {
    purged: u64,
}

/// Deletes every dead letter.
#[utoipa::path(delete, path = "/api/messaging/dead-letters", tag = "messaging",
    security(("admin" = [])), responses((status = 200, body = Purged)))]
async fn purge_dead_letters(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Purged>> {
    let purged = state.bus.purge_dead_letters().await?;
    Ok(Json(Purged { purged }))
}
