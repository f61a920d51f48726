//! Routes that belong to no business module: health, and (in [`super::dead_letters`]) the
//! administration of dead letters.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Json;
use crate::Error;
use crate::error::Problem;
use crate::state::AppState;

/// Health and `/api/messaging`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .merge(super::dead_letters::router())
        .merge(super::metrics::router())
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
