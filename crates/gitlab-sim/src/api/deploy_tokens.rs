//! Project deploy tokens (gitlab-api.md §5.1): read-only credentials, not usable on the API.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{maintainer_project, parse_id};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::state::{DeployToken, SecretRef, SimHandle, Time};

/// `DeployToken::AVAILABLE_SCOPES`.
const SCOPES: [&str; 7] = [
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
    "read_virtual_registry",
    "write_virtual_registry",
];

/// ISO-8601 date-time (or a plain date, read as midnight UTC).
pub fn parse_datetime(params: &Params, key: &str) -> Result<Option<Time>, ApiError> {
    let Some(raw) = params.str(key) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&raw) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Some(dt.and_utc()))
        .ok_or_else(|| ApiError::invalid(key))
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let active = params.bool("active")?;
    let (page, per_page) = paginate::page_params(&params)?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let now = state.now();
    let tokens: Vec<Value> = state
        .deploy_tokens
        .values()
        .filter(|t| t.project_id == found.project.id && !t.deleted)
        .filter(|t| {
            active.is_none_or(|a| a == (!t.revoked && t.expires_at.is_none_or(|e| e > now)))
        })
        .map(|t| render::deploy_token(t, now))
        .collect();
    let (items, headers) = paginate::offset(tokens, page, per_page, sim.base_url(), &uri);
    Ok(with_headers(StatusCode::OK, Value::Array(items), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let token_id = parse_id(&token_id, "Deploy Token")?;
    let token = state
        .deploy_tokens
        .get(&token_id)
        .filter(|t| t.project_id == found.project.id && !t.deleted)
        .ok_or_else(|| ApiError::not_found("Deploy Token"))?;
    Ok(Json(render::deploy_token(token, state.now())))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let name = params.required_str("name")?;
    let scopes = params
        .list("scopes")?
        .ok_or_else(|| ApiError::missing("scopes"))?;
    if scopes.is_empty() || !scopes.iter().all(|s| SCOPES.contains(&s.as_str())) {
        return Err(ApiError::not_valid_value("scopes"));
    }
    let expires_at = parse_datetime(&params, "expires_at")?;
    let username = params.str("username").filter(|u| !u.is_empty());
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    if let Some(u) = &username
        && !u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
    {
        return Err(ApiError::bad_request(
            "Username can contain only letters, digits, '_', '-', '+', and '.'",
        ));
    }
    let token_id = state.next_id();
    let token = DeployToken {
        id: token_id,
        project_id: found.project.id,
        name,
        username: username.unwrap_or_else(|| format!("gitlab+deploy-token-{token_id}")),
        scopes,
        expires_at,
        revoked: false,
        deleted: false,
        created_at: state.now(),
    };
    let mut body = render::deploy_token(&token, state.now());
    state.deploy_tokens.insert(token_id, token);
    body["token"] = Value::String(state.issue_secret("gldt-", SecretRef::DeployToken(token_id)));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn delete(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let token_id = parse_id(&token_id, "Deploy Token")?;
    let token = state
        .deploy_tokens
        .get_mut(&token_id)
        .filter(|t| t.project_id == found.project.id && !t.deleted)
        .ok_or_else(|| ApiError::not_found("Deploy Token"))?;
    token.deleted = true;
    token.revoked = true;
    Ok(StatusCode::NO_CONTENT)
}
