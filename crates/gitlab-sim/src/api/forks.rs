//! `POST /projects/:id/fork` and `GET /projects/:id/forks`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::visible_project;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::forks::NewFork;
use crate::params::Params;
use crate::render;
use crate::state::{Id, Namespace, SetupError, SimHandle, State as SimState, Visibility, access};

fn target_not_found() -> ApiError {
    ApiError::not_found("Target Namespace")
}

/// `namespace_id`, `namespace_path` or `namespace` (id or path) → a namespace the user may
/// create projects in (their own, or a group where they are at least Developer).
fn target_namespace(state: &SimState, params: &Params, user_id: Id) -> Result<Namespace, ApiError> {
    let raw = params
        .str("namespace_id")
        .or_else(|| params.str("namespace_path"))
        .or_else(|| params.str("namespace"));
    let Some(raw) = raw else {
        return Ok(Namespace::User(user_id));
    };
    let namespace = if let Some(group) = state.find_group(&raw) {
        Namespace::Group(group.id)
    } else {
        let user = match raw.parse::<Id>() {
            Ok(id) => state.users.get(&id),
            Err(_) => state.user_by_username(&raw),
        };
        Namespace::User(user.ok_or_else(target_not_found)?.id)
    };
    let allowed = match namespace {
        Namespace::User(id) => id == user_id,
        Namespace::Group(id) => state.group_access(user_id, id) >= access::DEVELOPER,
    };
    if allowed {
        Ok(namespace)
    } else {
        Err(target_not_found())
    }
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let visibility = match params.str("visibility") {
        None => None,
        Some(v) => {
            Some(Visibility::parse(&v).ok_or_else(|| ApiError::not_valid_value("visibility"))?)
        }
    };
    let (project_id, namespace) = {
        let state = sim.lock();
        let found = visible_project(&state, &id, Some(identity.user_id))?;
        // Forking needs the code: Reporters of private projects, anyone who sees the others.
        if found.project.visibility == Visibility::Private {
            found.require(access::REPORTER)?;
        }
        (
            found.project.id,
            target_namespace(&state, &params, identity.user_id)?,
        )
    };
    let fork = NewFork {
        user_id: identity.user_id,
        namespace: Some(namespace),
        path: params.str("path"),
        name: params.str("name"),
        description: params.str("description"),
        visibility,
    };
    let project = match sim.fork_project(project_id, fork).await {
        Ok(project) => project,
        Err(SetupError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                json!({ "message": { "name": ["has already been taken"], "path": ["has already been taken"] } }),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let state = sim.lock();
    let body = render::project_full(&state, sim.base_url(), &project, Some(identity.user_id));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let state = sim.lock();
    let found = visible_project(&state, &id, auth.user_id())?;
    let forks = state
        .projects
        .values()
        .filter(|p| p.forked_from_id == Some(found.project.id))
        .filter(|p| state.can_read_project(auth.user_id(), p))
        .map(|p| render::project_full(&state, sim.base_url(), p, auth.user_id()))
        .collect();
    Ok(Json(Value::Array(forks)))
}
