//! Merge requests: list, get, create, notes list/create (state changes of MRs are control
//! operations that fire hooks).

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::deploy_tokens::parse_datetime;
use super::{ProjectAccess, visible_project};
use crate::auth::Auth;
use crate::changes::{MergeRequestEdit, OpenMergeRequest};
use crate::error::{ApiError, ApiResult, with_headers};
use crate::merging::{MergeError, MergeOptions};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::state::{
    Id, MergeRequest, Note, SetupError, SimEvent, SimHandle, State as SimState, Visibility, access,
};

const MAX_NOTE_LENGTH: usize = 1_000_000;

fn readable_project(
    state: &SimState,
    id: &str,
    user_id: Option<u64>,
) -> Result<ProjectAccess, ApiError> {
    let found = visible_project(state, id, user_id)?;
    // Internal projects' merge requests are open to every signed-in user, as their code is.
    if found.project.visibility == Visibility::Private {
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

/// `GET /projects/:id/merge_requests/:iid/notes/:note_id`.
pub async fn show_note(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid, note_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(false)?;
    let state = sim.lock();
    let found = readable_project(&state, &id, Some(identity.user_id))?;
    let mr = find_mr(&state, found.project.id, &iid)?;
    let note = find_note(mr, &note_id)?;
    if note.internal {
        found.require(access::REPORTER)?;
    }
    Ok(Json(render::note(&state, sim.base_url(), mr, note)))
}

/// `PUT /projects/:id/merge_requests/:iid/notes/:note_id`: only the note's author edits its
/// body (GitLab answers others 403), with the same rules as on create.
pub async fn update_note(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid, note_id)): Path<(String, String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let body = params.required_str("body")?;
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
    let project_id = found.project.id;
    let mr_iid = find_mr(&state, project_id, &iid)?.iid;
    let now = state.now();
    let mr = state
        .merge_request_mut(project_id, mr_iid)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    let note_id: Id = note_id
        .parse()
        .map_err(|_| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    let note = mr
        .notes
        .iter_mut()
        .find(|n| n.id == note_id && !n.system)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    if note.author_id != identity.user_id {
        return Err(ApiError::forbidden());
    }
    note.body = body;
    note.updated_at = now;
    let note = note.clone();
    let mr = mr.clone();
    Ok(Json(render::note(&state, sim.base_url(), &mr, &note)))
}

fn find_note<'a>(mr: &'a MergeRequest, note_id: &str) -> ApiResult<&'a Note> {
    let id: Id = note_id
        .parse()
        .map_err(|_| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))?;
    mr.notes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, "404 Not found"))
}

/// `POST /projects/:id/merge_requests`: opens a merge request as the caller (Developer or more
/// of the source project `:id`), into `target_project_id` (the project itself or the parent of
/// a fork), firing its `open` hook like the control operation does.
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
    let target_project = params.int("target_project_id")?;
    let remove_source_branch = params.bool("remove_source_branch")?.unwrap_or(false);
    let (source_project_id, target_project_id) = {
        let state = sim.lock();
        let found = readable_project(&state, &id, Some(identity.user_id))?;
        found.require(access::DEVELOPER)?;
        let source_id = found.project.id;
        let target_id = match target_project.map(|t| t as Id) {
            None => source_id,
            Some(t) if t == source_id => t,
            // Only into the project this one was forked from, and only if the caller sees it.
            Some(t) if found.project.forked_from_id == Some(t) => {
                readable_project(&state, &t.to_string(), Some(identity.user_id))?;
                t
            }
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "message": ["Validate fork Source project is not a fork of the target project"] }),
                ));
            }
        };
        (source_id, target_id)
    };
    let opened = sim
        .open_merge_request_with(OpenMergeRequest {
            source_project_id,
            target_project_id,
            author_id: identity.user_id,
            source_branch: source,
            target_branch: target,
            title,
            description,
            remove_source_branch,
        })
        .await;
    let mr = match opened {
        Ok(mr) => mr,
        // Model validation errors come as a list (`render_validation_error!`).
        Err(SetupError::Conflict(message)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                json!({ "message": [message] }),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let body = {
        let state = sim.lock();
        render::merge_request(&state, sim.base_url(), &mr)
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

const UPDATE_PARAMS: [&str; 5] = [
    "title",
    "description",
    "target_branch",
    "state_event",
    "remove_source_branch",
];

/// `PUT /projects/:id/merge_requests/:iid`: title, description, target branch, "delete source
/// branch", and `state_event` close/reopen; the author or a Developer may edit.
pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    if UPDATE_PARAMS.iter().all(|p| params.value(p).is_none()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("{} are missing, at least one parameter must be provided", UPDATE_PARAMS.join(", ")) }),
        ));
    }
    let state_event = params.str("state_event");
    if state_event
        .as_deref()
        .is_some_and(|e| e != "close" && e != "reopen")
    {
        return Err(ApiError::not_valid_value("state_event"));
    }
    let (project_id, mr_iid) = {
        let state = sim.lock();
        let found = readable_project(&state, &id, Some(identity.user_id))?;
        let mr = find_mr(&state, found.project.id, &iid)?;
        if mr.author_id != identity.user_id {
            found.require(access::DEVELOPER)?;
        }
        (found.project.id, mr.iid)
    };
    let user = identity.user_id;
    let edit = MergeRequestEdit {
        title: params.str("title"),
        description: params.str("description"),
        target_branch: params.str("target_branch"),
        remove_source_branch: params.bool("remove_source_branch")?,
    };
    let edits = edit.title.is_some()
        || edit.description.is_some()
        || edit.target_branch.is_some()
        || edit.remove_source_branch.is_some();
    let mut mr = None;
    if edits {
        mr = Some(
            sim.edit_merge_request(project_id, mr_iid, user, edit)
                .await?,
        );
    }
    match state_event.as_deref() {
        Some("close") => mr = Some(sim.close_merge_request(project_id, mr_iid, user).await?),
        Some("reopen") => mr = Some(sim.reopen_merge_request(project_id, mr_iid, user).await?),
        _ => {}
    }
    let state = sim.lock();
    let mr = match mr {
        Some(mr) => mr,
        None => find_mr(&state, project_id, &iid)?.clone(),
    };
    Ok(Json(render::merge_request(&state, sim.base_url(), &mr)))
}

/// `PUT /projects/:id/merge_requests/:iid/merge`, with GitLab's answers: 401 without the right
/// to merge into the target branch, 405 when not mergeable (closed, draft, conflicts, pipeline
/// required), 409 when `sha` is not the source head.
pub async fn merge(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, iid)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let options = MergeOptions {
        sha: params.str("sha"),
        remove_source_branch: params.bool("should_remove_source_branch")?,
        message: params.str("merge_commit_message"),
    };
    let (project_id, mr_iid) = {
        let state = sim.lock();
        let found = readable_project(&state, &id, Some(identity.user_id))?;
        let mr = find_mr(&state, found.project.id, &iid)?;
        let may_merge = found.level >= access::DEVELOPER
            && state.can_merge_to_branch(identity.user_id, &found.project, &mr.target_branch);
        if !may_merge {
            return Err(ApiError::unauthorized());
        }
        (found.project.id, mr.iid)
    };
    let merged = sim
        .merge_merge_request_with(project_id, mr_iid, identity.user_id, options)
        .await;
    let mr = match merged {
        Ok(mr) => mr,
        Err(MergeError::NotMergeable(_)) => {
            return Err(ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed",
            ));
        }
        Err(e @ MergeError::ShaMismatch(_)) => {
            return Err(ApiError::message(StatusCode::CONFLICT, e.to_string()));
        }
        Err(MergeError::Setup(e)) => return Err(e.into()),
    };
    let state = sim.lock();
    Ok(Json(render::merge_request(&state, sim.base_url(), &mr)))
}
