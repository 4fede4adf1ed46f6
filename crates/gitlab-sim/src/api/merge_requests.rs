//! Merge requests: list, get, create, notes list/create (state changes of MRs are control
//! operations that fire hooks).

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::deploy_tokens::parse_datetime;
use super::{ProjectAccess, visible_project};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::state::{
    MergeRequest, Note, SimEvent, SimHandle, State as SimState, Visibility, access,
};

const MAX_NOTE_LENGTH: usize = 1_000_000;

fn readable_project(
    state: &SimState,
    id: &str,
    user_id: Option<u64>,
) -> Result<ProjectAccess, ApiError> {
    let found = visible_project(state, id, user_id)?;
    if found.project.visibility != Visibility::Public {
        found.require(access::GUEST)?;
    }
    Ok(found)
}

fn find_mr<'a>(
    state: &'a SimState,
    project_id: u64,
    iid: &str,
) -> Result<&'a MergeRequest, ApiError> {
    iid.parse()
        .ok()
        .and_then(|iid| state.merge_request(project_id, iid))
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))
}

fn desc_param(params: &Params) -> Result<bool, ApiError> {
    match params.str("sort").as_deref() {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(_) => Err(ApiError::not_valid_value("sort")),
    }
}

fn by_updated(params: &Params) -> Result<bool, ApiError> {
    match params.str("order_by").as_deref() {
        None | Some("created_at") => Ok(false),
        Some("updated_at") => Ok(true),
        Some(_) => Err(ApiError::not_valid_value("order_by")),
    }
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let wanted_state = params.str("state").unwrap_or_else(|| "all".into());
    if !["opened", "closed", "locked", "merged", "all"].contains(&wanted_state.as_str()) {
        return Err(ApiError::not_valid_value("state"));
    }
    let updated_after = parse_datetime(&params, "updated_after")?;
    let updated_before = parse_datetime(&params, "updated_before")?;
    let source_branch = params.str("source_branch");
    let target_branch = params.str("target_branch");
    let desc = desc_param(&params)?;
    let updated = by_updated(&params)?;
    let (page, per_page) = paginate::page_params(&params)?;
    let state = sim.lock();
    let found = readable_project(&state, &id, auth.user_id())?;
    let mut mrs: Vec<&MergeRequest> = state
        .merge_requests
        .values()
        .filter(|mr| {
            mr.project_id == found.project.id
                && (wanted_state == "all" || mr.state.as_str() == wanted_state)
                && updated_after.is_none_or(|t| mr.updated_at >= t)
                && updated_before.is_none_or(|t| mr.updated_at <= t)
                && source_branch
                    .as_ref()
                    .is_none_or(|b| &mr.source_branch == b)
                && target_branch
                    .as_ref()
                    .is_none_or(|b| &mr.target_branch == b)
        })
        .collect();
    mrs.sort_by_key(|mr| {
        (
            if updated {
                mr.updated_at
            } else {
                mr.created_at
            },
            mr.id,
        )
    });
    if desc {
        mrs.reverse();
    }
    let (items, headers) = paginate::offset(mrs, page, per_page, sim.base_url(), &uri);
    let body = items
        .into_iter()
        .map(|mr| render::merge_request(&state, sim.base_url(), mr))
        .collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let state = sim.lock();
    let found = readable_project(&state, &id, auth.user_id())?;
    let mr = find_mr(&state, found.project.id, &iid)?;
    Ok(Json(render::merge_request(&state, sim.base_url(), mr)))
}

pub async fn list_notes(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let desc = desc_param(&params)?;
    let updated = by_updated(&params)?;
    let (page, per_page) = paginate::page_params(&params)?;
    let state = sim.lock();
    let found = readable_project(&state, &id, auth.user_id())?;
    let mr = find_mr(&state, found.project.id, &iid)?;
    // Internal notes are visible to Reporters and above only.
    let sees_internal = found.level >= access::REPORTER;
    let mut notes: Vec<&Note> = mr
        .notes
        .iter()
        .filter(|n| sees_internal || !n.internal)
        .collect();
    notes.sort_by_key(|n| (if updated { n.updated_at } else { n.created_at }, n.id));
    if desc {
        notes.reverse();
    }
    let (items, headers) = paginate::offset(notes, page, per_page, sim.base_url(), &uri);
    let body = items
        .into_iter()
        .map(|n| render::note(&state, sim.base_url(), mr, n))
        .collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn create_note(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let body = params.required_str("body")?;
    let internal = params.bool("internal")?.unwrap_or(false);
    if body.trim().is_empty() {
        return Err(ApiError::validation(
            StatusCode::BAD_REQUEST,
            "note",
            "can't be blank",
        ));
    }
    if body.chars().count() > MAX_NOTE_LENGTH {
        return Err(ApiError::validation(
            StatusCode::BAD_REQUEST,
            "note",
            "is too long (maximum is 1000000 characters)",
        ));
    }
    let mut state = sim.lock();
    let found = readable_project(&state, &id, Some(identity.user_id))?;
    if internal {
        found.require(access::REPORTER)?;
    }
    let project_id = found.project.id;
    let mr_iid = find_mr(&state, project_id, &iid)?.iid;
    let now = state.now();
    let note = Note {
        id: state.next_id(),
        body,
        author_id: identity.user_id,
        internal,
        system: false,
        created_at: now,
        updated_at: now,
    };
    let note_id = note.id;
    let mr = state
        .merge_request_mut(project_id, mr_iid)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    mr.notes.push(note.clone());
    mr.updated_at = now;
    let mr = mr.clone();
    let rendered = render::note(&state, sim.base_url(), &mr, &note);
    drop(state);
    sim.emit(SimEvent::MergeRequestNoteCreated {
        project_id,
        mr_iid,
        note_id,
        user_id: identity.user_id,
    });
    Ok((StatusCode::CREATED, Json(rendered)).into_response())
}

/// `POST /projects/:id/merge_requests`: opens a merge request as the caller (Developer or more),
/// firing its `open` hook like the control operation does.
pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let source = params.required_str("source_branch")?;
    let target = params.required_str("target_branch")?;
    let title = params.required_str("title")?;
    let description = params.str("description").unwrap_or_default();
    let project_id = {
        let state = sim.lock();
        let found = readable_project(&state, &id, Some(identity.user_id))?;
        found.require(access::DEVELOPER)?;
        found.project.id
    };
    let mr = sim
        .open_merge_request(
            project_id,
            identity.user_id,
            &source,
            &target,
            &title,
            &description,
        )
        .await?;
    let body = {
        let state = sim.lock();
        render::merge_request(&state, sim.base_url(), &mr)
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
