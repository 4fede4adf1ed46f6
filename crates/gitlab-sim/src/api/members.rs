//! `GET /projects/:id/members/all/:user_id` (effective, inherited) and `/members/:user_id` (direct).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{parse_id, visible_project};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::render;
use crate::state::SimHandle;

pub async fn show_all(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(false)?;
    let state = sim.lock();
    let found = visible_project(&state, &id, Some(identity.user_id))?;
    let user_id = parse_id(&user_id, "Member")?;
    let member = state
        .effective_project_membership(user_id, &found.project)
        .ok_or_else(|| ApiError::not_found("Member"))?;
    Ok(Json(render::member(&state, sim.base_url(), &member)))
}

pub async fn show_direct(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(false)?;
    let state = sim.lock();
    let found = visible_project(&state, &id, Some(identity.user_id))?;
    let user_id = parse_id(&user_id, "Member")?;
    let member = state
        .project_members
        .get(&found.project.id)
        .and_then(|ms| ms.get(&user_id))
        .ok_or_else(|| ApiError::not_found("Member"))?;
    Ok(Json(render::member(&state, sim.base_url(), member)))
}
