//! Dead letters for administrators: listed, grouped by what failed alike (one consumer, one
//! error), one read whole, retried one at a time or a group at once, purged all or by group.
//! The bus keeps them; this only translates HTTP.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, Json, Path, Query, rfc3339};
use crate::state::AppState;
use crate::{Error, Result};

/// `/api/messaging/dead-letters` and below.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters, purge_dead_letters))
        .routes(routes!(dead_letter_groups))
        .routes(routes!(dead_letter))
        .routes(routes!(retry_dead_letter))
        .routes(routes!(retry_group))
        .routes(routes!(purge_group))
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

impl From<bus::DeadLetter> for DeadLetterView {
    fn from(letter: bus::DeadLetter) -> Self {
        Self {
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
        }
    }
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
    let items = letters.into_iter().map(DeadLetterView::from).collect();
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

/// Dead letters that failed alike.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterGroupView {
    /// The consumer that gave them up.
    consumer: String,
    /// The error they share.
    error: String,
    /// How many.
    count: u64,
    /// When the first was given up.
    #[schema(format = DateTime)]
    first_failed_at: String,
    /// When the last was given up.
    #[schema(format = DateTime)]
    last_failed_at: String,
    /// The oldest one's id: the group's name in the group routes.
    sample_id: i64,
}

/// Dead letters grouped by consumer and error, most numerous first.
#[utoipa::path(get, path = "/api/messaging/dead-letters/groups", tag = "messaging",
    security(("admin" = [])), responses((status = 200, body = Vec<DeadLetterGroupView>)))]
async fn dead_letter_groups(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Vec<DeadLetterGroupView>>> {
    let groups = state.bus.dead_letter_groups().await?;
    Ok(Json(
        groups
            .into_iter()
            .map(|group| DeadLetterGroupView {
                consumer: group.consumer,
                error: group.error,
                count: group.count,
                first_failed_at: rfc3339(group.first_failed_at),
                last_failed_at: rfc3339(group.last_failed_at),
                sample_id: group.sample_id,
            })
            .collect(),
    ))
}

/// One dead letter, whole.
#[utoipa::path(get, path = "/api/messaging/dead-letters/{id}", tag = "messaging",
    params(("id" = i64, Path, description = "Dead letter id")), security(("admin" = [])),
    responses((status = 200, body = DeadLetterView), (status = 404, body = crate::error::Problem)))]
async fn dead_letter(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeadLetterView>> {
    let letter = state.bus.dead_letter(id).await?;
    letter
        .map(|letter| Json(letter.into()))
        .ok_or(Error::NotFound("dead letter"))
}

/// How many dead letters a group retry queued again.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Retried {
    retried: u64,
}

/// Puts back on their queues every dead letter that failed like dead letter `id` (same
/// consumer, same error), in one transaction.
#[utoipa::path(post, path = "/api/messaging/dead-letters/{id}/retry-group", tag = "messaging",
    params(("id" = i64, Path, description = "Any dead letter of the group")), security(("admin" = [])),
    responses((status = 200, body = Retried), (status = 404, body = crate::error::Problem)))]
async fn retry_group(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Retried>> {
    match state.bus.retry_dead_letters_like(id).await? {
        0 => Err(Error::NotFound("dead letter")),
        retried => Ok(Json(Retried { retried })),
    }
}

/// Deletes every dead letter that failed like dead letter `id`.
#[utoipa::path(post, path = "/api/messaging/dead-letters/{id}/purge-group", tag = "messaging",
    params(("id" = i64, Path, description = "Any dead letter of the group")), security(("admin" = [])),
    responses((status = 200, body = Purged), (status = 404, body = crate::error::Problem)))]
async fn purge_group(
    _: Admin,
    axum::extract::State(state): axum::extract::State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Purged>> {
    match state.bus.purge_dead_letters_like(id).await? {
        0 => Err(Error::NotFound("dead letter")),
        purged => Ok(Json(Purged { purged })),
    }
}
