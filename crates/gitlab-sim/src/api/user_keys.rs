//! Users' SSH keys (`/user/keys`, `/users/:id/keys`) and e-mails (`/user/emails`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::deploy_tokens::parse_datetime;
use super::parse_id;
use crate::auth::{Auth, Identity};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::render;
use crate::state::{Id, NewSshKey, SimHandle, SshKeyError, State as SimState};

const USER_SCOPES: [&str; 3] = ["api", "read_api", "read_user"];

fn keys_of(state: &SimState, user_id: Id) -> Value {
    Value::Array(
        state
            .ssh_keys
            .values()
            .filter(|k| k.user_id == user_id)
            .map(render::ssh_key)
            .collect(),
    )
}

fn add_key(state: &mut SimState, user_id: Id, params: &Params) -> ApiResult {
    let new = NewSshKey {
        title: params.required_str("title")?,
        key: params.required_str("key")?,
        expires_at: parse_datetime(params, "expires_at")?,
        usage_type: match params.str("usage_type") {
            None => None,
            Some(u) if ["auth", "signing", "auth_and_signing"].contains(&u.as_str()) => Some(u),
            Some(_) => return Err(ApiError::not_valid_value("usage_type")),
        },
    };
    match state.add_ssh_key(user_id, new) {
        Ok(key) => Ok((StatusCode::CREATED, Json(render::ssh_key(&key))).into_response()),
        Err(SshKeyError::Key(e)) => Err(e.into()),
        Err(SshKeyError::Taken) => Err(ApiError::validation(
            StatusCode::BAD_REQUEST,
            "fingerprint_sha256",
            "has already been taken",
        )),
        Err(SshKeyError::UnknownUser) => Err(ApiError::not_found("User")),
    }
}

fn read_user(auth: Auth) -> Result<Identity, ApiError> {
    let identity = auth.required()?;
    identity.require_scopes(&USER_SCOPES)?;
    Ok(identity)
}

/// `GET /user/keys`.
pub async fn list_mine(State(sim): State<SimHandle>, auth: Auth) -> ApiResult<Json<Value>> {
    let identity = read_user(auth)?;
    Ok(Json(keys_of(&sim.lock(), identity.user_id)))
}

/// `POST /user/keys`.
pub async fn create_mine(State(sim): State<SimHandle>, auth: Auth, params: Params) -> ApiResult {
    let identity = auth.required()?;
    identity.require_api(true)?;
    add_key(&mut sim.lock(), identity.user_id, &params)
}

/// The caller's key `key_id`, or GitLab's 404.
fn own_key(state: &SimState, user_id: Id, raw: &str) -> Result<Id, ApiError> {
    let id = parse_id(raw, "Key")?;
    state
        .ssh_keys
        .get(&id)
        .filter(|k| k.user_id == user_id)
        .map(|k| k.id)
        .ok_or_else(|| ApiError::not_found("Key"))
}

/// `GET /user/keys/:key_id`.
pub async fn show_mine(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let identity = read_user(auth)?;
    let state = sim.lock();
    let id = own_key(&state, identity.user_id, &key_id)?;
    Ok(Json(render::ssh_key(&state.ssh_keys[&id])))
}

/// `DELETE /user/keys/:key_id`.
pub async fn delete_mine(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let mut state = sim.lock();
    let id = own_key(&state, identity.user_id, &key_id)?;
    state.ssh_keys.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/:id/keys`: public, like the user's profile.
pub async fn list_of_user(
    State(sim): State<SimHandle>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let state = sim.lock();
    let user_id = parse_id(&user_id, "User")?;
    if !state.users.contains_key(&user_id) {
        return Err(ApiError::not_found("User"));
    }
    Ok(Json(keys_of(&state, user_id)))
}

/// `POST /users/:id/keys`: administrators only.
pub async fn create_for_user(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(user_id): Path<String>,
    params: Params,
) -> ApiResult {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let mut state = sim.lock();
    if !state
        .users
        .get(&identity.user_id)
        .is_some_and(|u| u.is_admin)
    {
        return Err(ApiError::forbidden());
    }
    let user_id = parse_id(&user_id, "User")?;
    add_key(&mut state, user_id, &params)
}

/// `GET /user/emails`: the primary (commit) address, confirmed when the user was created.
pub async fn emails(State(sim): State<SimHandle>, auth: Auth) -> ApiResult<Json<Value>> {
    let identity = read_user(auth)?;
    let state = sim.lock();
    let user = state
        .users
        .get(&identity.user_id)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Json(json!([{
        "id": user.id,
        "email": user.email,
        "confirmed_at": render::time(user.created_at),
    }])))
}
