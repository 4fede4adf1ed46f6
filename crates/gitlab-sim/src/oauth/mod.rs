//! GitLab as OAuth 2.0 provider (Doorkeeper semantics, gitlab-api.md §1): sign-in and consent
//! pages, authorization codes with PKCE, rotating refresh tokens, token info, revocation.

mod authorize;
mod token;

use axum::Router;
use axum::routing::{get, post};

use crate::state::SimHandle;

/// Doorkeeper's `error_description` for each error code.
pub fn describe(error: &str) -> &'static str {
    match error {
        "invalid_request" => {
            "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed."
        }
        "invalid_client" => {
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."
        }
        "invalid_grant" => {
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."
        }
        "unauthorized_client" => {
            "The client is not authorized to perform this request using this method."
        }
        "unsupported_grant_type" => {
            "The authorization grant type is not supported by the authorization server."
        }
        "unsupported_response_type" => {
            "The authorization server does not support this response type."
        }
        "invalid_scope" => "The requested scope is invalid, unknown, or malformed.",
        "invalid_redirect_uri" => {
            "The requested redirect uri is malformed or doesn't match client redirect URI."
        }
        "access_denied" => "The resource owner or authorization server denied the request.",
        _ => "An unknown error occurred.",
    }
}

pub fn router() -> Router<SimHandle> {
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::show).post(authorize::decide),
        )
        .route(
            "/users/sign_in",
            get(authorize::sign_in_page).post(authorize::sign_in),
        )
        .route("/oauth/token", post(token::token))
        .route("/oauth/token/info", get(token::info))
        .route("/oauth/revoke", post(token::revoke))
}
