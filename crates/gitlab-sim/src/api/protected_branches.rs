//! Protected branches (`/projects/:id/protected_branches`): list, get, protect, update,
//! unprotect, with role, user and deploy-key access levels and `*` wildcards.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{ProjectAccess, maintainer_project, visible_project};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::render;
use crate::state::{Grantee, Id, NewProtection, SimHandle, State as SimState, access, protection};

fn level_param(params: &Params, key: &str) -> Result<Option<u8>, ApiError> {
    match params.int(key)? {
        None => Ok(None),
        Some(l) if protection::LEVELS.iter().any(|v| i64::from(*v) == l) => Ok(Some(l as u8)),
        Some(_) => Err(ApiError::not_valid_value(key)),
    }
}

/// `allowed_to_push` / `allowed_to_merge`: `[{"access_level": 30} | {"user_id": 1} |
/// {"deploy_key_id": 2}]`, entries marked `_destroy` (with their `id`) listed separately.
fn grantees(params: &Params, key: &str) -> Result<(Vec<Grantee>, Vec<Id>), ApiError> {
    let Some(value) = params.value(key) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let items = value.as_array().ok_or_else(|| ApiError::invalid(key))?;
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for item in items {
        let field = |name: &str| {
            item.get(name).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let destroy = item
            .get("_destroy")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
        if destroy {
            remove.push(field("id").ok_or_else(|| ApiError::invalid(key))?);
        } else if let Some(level) = field("access_level") {
            let level = u8::try_from(level)
                .ok()
                .filter(|l| protection::LEVELS.contains(l))
                .ok_or_else(|| ApiError::not_valid_value(key))?;
            add.push(Grantee::Role(level));
        } else if let Some(user) = field("user_id") {
            add.push(Grantee::User(user));
        } else if let Some(key_id) = field("deploy_key_id") {
            add.push(Grantee::DeployKey(key_id));
        } else {
            return Err(ApiError::invalid(key));
        }
    }
    Ok((add, remove))
}

/// Reading protections needs Developer; changing them Maintainer.
fn developer_project(state: &SimState, id: &str, auth: &Auth) -> Result<ProjectAccess, ApiError> {
    let identity = auth.0.as_ref().ok_or_else(ApiError::unauthorized)?;
    identity.require_api(false)?;
    let found = visible_project(state, id, Some(identity.user_id))?;
    found.require(access::DEVELOPER)?;
    Ok(found)
}

fn find(state: &SimState, project_id: Id, name: &str) -> Result<Id, ApiError> {
    state
        .protected_branches_of(project_id)
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let state = sim.lock();
    let found = developer_project(&state, &id, &auth)?;
    let search = params.str("search");
    let items = state
        .protected_branches_of(found.project.id)
        .filter(|p| search.as_ref().is_none_or(|s| p.name.contains(s.as_str())))
        .map(|p| render::protected_branch(&state, p))
        .collect();
    Ok(Json(Value::Array(items)))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let state = sim.lock();
    let found = developer_project(&state, &id, &auth)?;
    let rule = find(&state, found.project.id, &name)?;
    Ok(Json(render::protected_branch(
        &state,
        &state.protected_branches[&rule],
    )))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let name = params.required_str("name")?;
    let push_level = level_param(&params, "push_access_level")?;
    let merge_level = level_param(&params, "merge_access_level")?;
    let unprotect = level_param(&params, "unprotect_access_level")?;
    let (allowed_push, _) = grantees(&params, "allowed_to_push")?;
    let (allowed_merge, _) = grantees(&params, "allowed_to_merge")?;
    // An explicit level, else Maintainers unless only specific users or keys are named.
    let with_level = |level: Option<u8>, mut named: Vec<Grantee>| {
        match level {
            Some(l) => named.insert(0, Grantee::Role(l)),
            None if named.is_empty() => named.push(Grantee::Role(access::MAINTAINER)),
            None => {}
        }
        named
    };
    let new = NewProtection {
        name,
        push: with_level(push_level, allowed_push),
        merge: with_level(merge_level, allowed_merge),
        unprotect_access_level: unprotect.unwrap_or(access::MAINTAINER),
        allow_force_push: params.bool("allow_force_push")?.unwrap_or(false),
        code_owner_approval_required: params
            .bool("code_owner_approval_required")?
            .unwrap_or(false),
    };
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let rule = state.protect_branch(found.project.id, new)?;
    Ok((
        StatusCode::CREATED,
        Json(render::protected_branch(&state, &rule)),
    )
        .into_response())
}

pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let allow_force_push = params.bool("allow_force_push")?;
    let code_owner = params.bool("code_owner_approval_required")?;
    let (add_push, remove_push) = grantees(&params, "allowed_to_push")?;
    let (add_merge, remove_merge) = grantees(&params, "allowed_to_merge")?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let rule_id = find(&state, found.project.id, &name)?;
    let push = state.grants(&add_push);
    let merge = state.grants(&add_merge);
    let rule = state
        .protected_branches
        .get_mut(&rule_id)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    if let Some(v) = allow_force_push {
        rule.allow_force_push = v;
    }
    if let Some(v) = code_owner {
        rule.code_owner_approval_required = v;
    }
    rule.push_access_levels
        .retain(|g| !remove_push.contains(&g.id));
    rule.push_access_levels.extend(push);
    rule.merge_access_levels
        .retain(|g| !remove_merge.contains(&g.id));
    rule.merge_access_levels.extend(merge);
    let rule = rule.clone();
    Ok(Json(render::protected_branch(&state, &rule)))
}

pub async fn delete(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let rule = find(&state, found.project.id, &name)?;
    state.protected_branches.remove(&rule);
    Ok(StatusCode::NO_CONTENT)
}
