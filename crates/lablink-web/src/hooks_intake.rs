//! `POST /webhooks/gitlab/{repository_id}`: GitLab's webhook deliveries. The handler only hands
//! the raw request to intake; the answer is 2xx for every accepted delivery (also duplicates and
//! events lablink ignores, so GitLab never disables the hook because of lablink's choices), 401
//! with no detail for unknown repositories and bad secrets, 403 for a delivery from outside the
//! account's webhook source ranges, 413 above GitLab's maximum size.
//! The secret is checked before the body is read: strangers cannot make lablink read 25 MiB.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lablink_service::ci::intake::{Accepted, IntakeError, MAX_BODY_BYTES};

use crate::AppState;
use crate::extract::ClientIp;

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/gitlab/{repository_id}", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(repository_id): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let client_ip = client_ip.as_deref();
    if let Err(e) = state
        .services
        .precheck_webhook(&repository_id, &headers, client_ip)
        .await
    {
        return refused(e);
    }
    // Past the limit (or a sender that stopped sending) nothing is kept.
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    match state
        .services
        .receive_webhook(&repository_id, &headers, &body, client_ip)
        .await
    {
        Ok(Accepted::Queued { .. }) => (StatusCode::OK, "queued").into_response(),
        Ok(Accepted::Ignored { .. }) => (StatusCode::OK, "ignored").into_response(),
        Ok(Accepted::Duplicate) => (StatusCode::OK, "duplicate").into_response(),
        Err(e) => refused(e),
    }
}

fn refused(e: IntakeError) -> Response {
    match e {
        IntakeError::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
        IntakeError::OutsideSources => (
            StatusCode::FORBIDDEN,
            "lablink does not accept webhook deliveries from this address; an admin can allow \
             it under Settings → IP restrictions → Webhook deliveries.",
        )
            .into_response(),
        IntakeError::Service(e) => {
            tracing::error!(error = %e, "webhook intake failed");
            // 5xx makes GitLab count a failure; nothing was stored, so nothing is lost twice.
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
