use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lablink_service::api_tokens::ApiToken;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct TokenJson {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When the token stops working (milliseconds since the epoch); `null`: never.
    pub expires_at: Option<i64>,
}

impl From<ApiToken> for TokenJson {
    fn from(t: ApiToken) -> Self {
        TokenJson {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
            expires_at: t.expires_at,
        }
    }
}

/// The caller's personal API tokens (never their values).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenJson>), (status = 401, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<Vec<TokenJson>>, ApiError> {
    let tokens = state.services.list_api_tokens(&user.principal).await?;
    Ok(Json(tokens.into_iter().map(TokenJson::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    pub name: String,
    /// Days until the token stops working (1–365); absent or `null`: it does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenJson,
    /// The token itself. Shown only in this response.
    pub value: String,
}

/// Creates a personal API token; its value is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = state
        .services
        .create_api_token(&user.principal, &body.name, body.expires_in_days)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            value: created.value.expose_secret().to_owned(),
            token: created.token.into(),
        }),
    ))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_api_token(&user.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
