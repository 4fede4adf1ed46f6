//! Project deploy keys (gitlab-api.md §5.2): keys are global, enabled per project.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::deploy_tokens::parse_datetime;
use super::{maintainer_project, parse_id};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::render;
use crate::ssh_key;
use crate::state::{DeployKey, DeployKeyLink, Id, SimHandle, State as SimState, access};

fn link(state: &SimState, project_id: Id, key_id: Id) -> Option<&DeployKeyLink> {
    state
        .deploy_key_links
        .iter()
        .find(|l| l.project_id == project_id && l.key_id == key_id)
}

fn linked_key(
    state: &SimState,
    project_id: Id,
    raw_key_id: &str,
) -> Result<(DeployKey, bool), ApiError> {
    let key_id = parse_id(raw_key_id, "Deploy Key")?;
    let l = link(state, project_id, key_id).ok_or_else(|| ApiError::not_found("Deploy Key"))?;
    let key = state
        .deploy_keys
        .get(&key_id)
        .ok_or_else(|| ApiError::not_found("Deploy Key"))?;
    Ok((key.clone(), l.can_push))
}

/// A key is usable by a user who maintains a project where it is enabled.
fn accessible_by(state: &SimState, key_id: Id, user_id: Id) -> bool {
    state.deploy_key_links.iter().any(|l| {
        l.key_id == key_id
            && state
                .projects
                .get(&l.project_id)
                .is_some_and(|p| state.project_access(user_id, p) >= access::MAINTAINER)
    })
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let keys: Vec<Value> = state
        .deploy_key_links
        .iter()
        .filter(|l| l.project_id == found.project.id)
        .filter_map(|l| {
            state
                .deploy_keys
                .get(&l.key_id)
                .map(|k| render::deploy_key(k, l.can_push))
        })
        .collect();
    Ok(Json(Value::Array(keys)))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let (key, can_push) = linked_key(&state, found.project.id, &key_id)?;
    Ok(Json(render::deploy_key(&key, can_push)))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let raw_key = params.required_str("key")?;
    let title = params.required_str("title")?;
    let can_push = params.bool("can_push")?.unwrap_or(false);
    let expires_at = parse_datetime(&params, "expires_at")?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let parsed = ssh_key::parse(&raw_key)?;
    let project_id = found.project.id;
    let existing = state
        .deploy_keys
        .values()
        .find(|k| k.fingerprint_sha256 == parsed.fingerprint_sha256)
        .map(|k| k.id);
    // Deploy keys and users' keys share GitLab's `keys` table: one fingerprint, one key.
    if state
        .ssh_keys
        .values()
        .any(|k| k.fingerprint_sha256 == parsed.fingerprint_sha256)
    {
        return Err(ApiError::validation(
            StatusCode::BAD_REQUEST,
            "fingerprint_sha256",
            "has already been taken",
        ));
    }
    let key_id = match existing {
        Some(key_id) if link(&state, project_id, key_id).is_some() => {
            return Err(ApiError::validation(
                StatusCode::BAD_REQUEST,
                "deploy_key.fingerprint_sha256",
                "has already been taken",
            ));
        }
        // An existing key joins this project only if the user can access it elsewhere.
        Some(key_id) if accessible_by(&state, key_id, identity.user_id) => key_id,
        Some(_) => {
            return Err(ApiError::validation(
                StatusCode::BAD_REQUEST,
                "fingerprint_sha256",
                "has already been taken",
            ));
        }
        None => {
            let key_id = state.next_id();
            let key = DeployKey {
                id: key_id,
                title,
                key: parsed.normalized,
                fingerprint: parsed.fingerprint,
                fingerprint_sha256: parsed.fingerprint_sha256,
                expires_at,
                created_at: state.now(),
                user_id: identity.user_id,
            };
            state.deploy_keys.insert(key_id, key);
            key_id
        }
    };
    state.deploy_key_links.push(DeployKeyLink {
        key_id,
        project_id,
        can_push,
    });
    let key = &state.deploy_keys[&key_id];
    Ok((StatusCode::CREATED, Json(render::deploy_key(key, can_push))).into_response())
}

pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let title = params.str("title");
    let can_push = params.bool("can_push")?;
    if title.is_none() && can_push.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": "title, can_push are missing, at least one parameter must be provided" }),
        ));
    }
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let (key, _) = linked_key(&state, found.project.id, &key_id)?;
    if let Some(title) = title
        && let Some(k) = state.deploy_keys.get_mut(&key.id)
    {
        k.title = title;
    }
    let project_id = found.project.id;
    let l = state
        .deploy_key_links
        .iter_mut()
        .find(|l| l.project_id == project_id && l.key_id == key.id)
        .ok_or_else(|| ApiError::not_found("Deploy Key"))?;
    if let Some(can_push) = can_push {
        l.can_push = can_push;
    }
    let can_push = l.can_push;
    Ok(Json(render::deploy_key(
        &state.deploy_keys[&key.id],
        can_push,
    )))
}

pub async fn delete(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let (key, _) = linked_key(&state, found.project.id, &key_id)?;
    let project_id = found.project.id;
    state
        .deploy_key_links
        .retain(|l| !(l.project_id == project_id && l.key_id == key.id));
    // Deleted from the system when no other project uses it.
    if !state.deploy_key_links.iter().any(|l| l.key_id == key.id) {
        state.deploy_keys.remove(&key.id);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let key_id = parse_id(&key_id, "Deploy Key")?;
    let key = state
        .deploy_keys
        .get(&key_id)
        .filter(|_| accessible_by(&state, key_id, identity.user_id))
        .cloned()
        .ok_or_else(|| ApiError::not_found("Deploy Key"))?;
    let project_id = found.project.id;
    let can_push = match link(&state, project_id, key_id) {
        Some(l) => l.can_push,
        None => {
            state.deploy_key_links.push(DeployKeyLink {
                key_id,
                project_id,
                can_push: false,
            });
            false
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(render::deploy_key(&key, can_push)),
    )
        .into_response())
}
