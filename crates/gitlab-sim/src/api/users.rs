//! `GET /user`, `GET /users/:id`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::render;
use crate::state::SimHandle;

const USER_SCOPES: [&str; 3] = ["api", "read_api", "read_user"];

pub async fn current(State(sim): State<SimHandle>, auth: Auth) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_scopes(&USER_SCOPES)?;
    let state = sim.lock();
    let user = state
        .users
        .get(&identity.user_id)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Json(render::user_current(sim.base_url(), user)))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(identity) = &auth.0 {
        identity.require_scopes(&USER_SCOPES)?;
    }
    let state = sim.lock();
    let user = id
        .parse()
        .ok()
        .and_then(|id| state.users.get(&id))
        .ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(render::user_public(sim.base_url(), user)))
}
