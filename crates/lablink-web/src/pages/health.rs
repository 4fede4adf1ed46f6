use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// Ready when the database answers and the schema is current. Anyone may ask, so the answer is
/// ready or not ready and nothing more; the reason goes to the log (and the doctor).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.services.readiness().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    }
}
