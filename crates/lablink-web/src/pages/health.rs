use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// Ready when the database answers and the schema is current.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.services.readiness().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"))
        }
    }
}
