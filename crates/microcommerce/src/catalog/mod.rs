//! catalog.

pub mod db;

use axum::Router;

use crate::app::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Seeds the demo catalog.
pub async fn seed_if_empty(_db: &bus::Db) -> Result<(), sqlx::Error> {
    Ok(())
}
