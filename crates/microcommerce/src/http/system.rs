//! Routes that belong to no business module: health and dead-letter administration.

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::{Admin, Json, Path, Query, rfc3339};
use crate::state::AppState;
use crate::{Error, Result};

/// Health and `/api/messaging`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route(
            "/api/messaging/dead-letters",
            get(list_dead_letters).delete(purge_dead_letters),
        )
        .route(
            "/api/messaging/dead-letters/{id}/retry",
            post(retry_dead_letter),
        )
}

/// Unknown routes answer with a 404 problem like every other error.
pub async fn fallback() -> Error {
    Error::NotFound("route")
}

/// A known route called with the wrong method answers with a 405 problem.
pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

async fn live() -> &'static str {
    "ok"
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Readiness {
    database: bool,
    workers: bool,
}

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
    message_id: String,
    consumer: String,
    message_type: String,
    correlation_id: String,
    attempts: u32,
    error: String,
    created_at: String,
    failed_at: String,
    payload: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetterQuery {
    page: Option<u32>,
    page_size: Option<u32>,
}

async fn list_dead_letters(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<super::Page<DeadLetterView>>> {
    let (page, page_size) = super::Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let letters = state
        .bus
        .dead_letters(page_size, (page - 1) * page_size)
        .await?;
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
    Ok(Json(super::Page {
        items,
        total_count,
        page,
        page_size,
    }))
}

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Purged {
    purged: u64,
}

async fn purge_dead_letters(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Purged>> {
    let purged = state.bus.purge_dead_letters().await?;
    Ok(Json(Purged { purged }))
}
