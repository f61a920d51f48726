//! inventory.

pub mod db;

use axum::Router;

use crate::app::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Consumers of this module.
pub fn consumers() -> Vec<std::sync::Arc<dyn bus::Consumer>> {
    Vec::new()
}
