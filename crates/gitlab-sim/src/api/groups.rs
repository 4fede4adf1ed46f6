//! `GET /groups`, `GET /groups/:id`.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::state::{Group, SimHandle, Visibility};

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let user_id = auth.user_id();
    let min_access_level = params.int("min_access_level")?;
    let all_available = params.bool("all_available")?;
    let search = params.str("search").map(|s| s.to_lowercase());
    let (page, per_page) = paginate::page_params(&params)?;
    let base = sim.base_url().to_owned();
    let state = sim.lock();
    let is_admin = user_id
        .and_then(|u| state.users.get(&u))
        .is_some_and(|u| u.is_admin);
    // Authenticated non-admins see their groups unless `all_available=true` (GitLab's default).
    let show_all = all_available.unwrap_or(is_admin);
    let mut groups: Vec<&Group> = state
        .groups
        .values()
        .filter(|g| {
            let level = user_id.map_or(0, |u| state.group_access(u, g.id));
            let visible = match (user_id, min_access_level) {
                (_, Some(min)) => i64::from(level) >= min,
                (None, None) => g.visibility == Visibility::Public,
                (Some(_), None) if show_all => state.can_read_group(user_id, g.id),
                (Some(_), None) => level > 0,
            };
            visible
                && search.as_ref().is_none_or(|s| {
                    g.name.to_lowercase().contains(s) || g.path.to_lowercase().contains(s)
                })
        })
        .collect();
    groups.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    let (page_items, headers) = paginate::offset(groups, page, per_page, &base, &uri);
    let body: Vec<Value> = page_items
        .into_iter()
        .map(|g| render::group(&state, &base, g))
        .collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let state = sim.lock();
    let group = state
        .find_group(&id)
        .filter(|g| state.can_read_group(auth.user_id(), g.id))
        .ok_or_else(|| ApiError::not_found("Group"))?;
    Ok(Json(render::group(&state, sim.base_url(), group)))
}
