//! Repository content: branches (list, get, create, delete), tree, files and raw files,
//! compare. Branch creation and deletion go through GitLab's ref checks as web/API updates.

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ProjectAccess, visible_project};
use crate::auth::Auth;
use crate::changes::RefUpdate;
use crate::checks::ObjectDirs;
use crate::commits::ZERO_SHA;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::repo_browse::{self, Commit};
use crate::state::{Id, Pusher, SimHandle, Visibility, access};

/// Who may read code: anyone who sees a public project, Reporters of the others.
fn code_reader(
    sim: &SimHandle,
    id: &str,
    auth: &Auth,
) -> Result<(ProjectAccess, String), ApiError> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let state = sim.lock();
    let found = visible_project(&state, id, auth.user_id())?;
    if found.project.visibility == Visibility::Private {
        found.require(access::REPORTER)?;
    }
    let full_path = state.project_full_path(&found.project);
    Ok((found, full_path))
}

fn branch_not_found() -> ApiError {
    ApiError::not_found("Branch")
}

async fn branch_json(
    sim: &SimHandle,
    found: &ProjectAccess,
    full_path: &str,
    name: &str,
    head: &Commit,
    user_id: Option<Id>,
) -> ApiResult<Value> {
    let project = &found.project;
    let repo = sim.repo_path(project.id);
    let merged = name != project.default_branch
        && repo_browse::is_ancestor(&repo, &head.id, &project.default_branch).await?;
    let state = sim.lock();
    let facts = render::BranchFacts {
        name,
        head,
        merged,
        can_push: user_id.is_some_and(|u| {
            state.project_access(u, project) >= access::DEVELOPER
                && state.can_push_to_branch(Pusher::User(u), project, name)
        }),
    };
    Ok(render::branch(
        &state,
        sim.base_url(),
        full_path,
        project,
        &facts,
    ))
}

pub async fn list_branches(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (found, full_path) = code_reader(&sim, &id, &auth)?;
    let (page, per_page) = paginate::page_params(&params)?;
    let search = params.str("search");
    let matches = |name: &str| match search.as_deref() {
        None | Some("") => true,
        Some(s) if s.starts_with('^') => name.starts_with(&s[1..]),
        Some(s) if s.ends_with('$') => name.ends_with(&s[..s.len() - 1]),
        Some(s) => name.contains(s),
    };
    let all: Vec<(String, Commit)> = repo_browse::branches(&sim.repo_path(found.project.id))
        .await?
        .into_iter()
        .filter(|(name, _)| matches(name))
        .collect();
    let (items, headers) = paginate::offset(all, page, per_page, sim.base_url(), &uri);
    let mut body = Vec::with_capacity(items.len());
    for (name, head) in &items {
        body.push(branch_json(&sim, &found, &full_path, name, head, auth.user_id()).await?);
    }
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn show_branch(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, branch)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (found, full_path) = code_reader(&sim, &id, &auth)?;
    let head = repo_browse::commit(
        &sim.repo_path(found.project.id),
        &format!("refs/heads/{branch}"),
    )
    .await?
    .ok_or_else(branch_not_found)?;
    Ok(Json(
        branch_json(&sim, &found, &full_path, &branch, &head, auth.user_id()).await?,
    ))
}

/// The caller as a pusher of the project (Developer or more), for API ref updates.
fn developer(
    sim: &SimHandle,
    id: &str,
    auth: Auth,
) -> Result<(ProjectAccess, String, Id), ApiError> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let state = sim.lock();
    let found = visible_project(&state, id, Some(identity.user_id))?;
    found.require(access::DEVELOPER)?;
    let full_path = state.project_full_path(&found.project);
    Ok((found, full_path, identity.user_id))
}

/// Runs the ref checks as a web/API update and moves the ref; refusals are 400 with GitLab's
/// message, as `Branches::CreateService` / `DeleteService` answer a `PreReceiveError`.
async fn checked_update(
    sim: &SimHandle,
    project_id: Id,
    user_id: Id,
    update: &RefUpdate,
) -> ApiResult<()> {
    let verdict = sim
        .check_ref_updates(
            project_id,
            Pusher::User(user_id),
            &ObjectDirs::default(),
            std::slice::from_ref(update),
            true,
        )
        .await?;
    verdict.map_err(|message| ApiError::message(StatusCode::BAD_REQUEST, message))
}

pub async fn create_branch(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let branch = params.required_str("branch")?;
    let git_ref = params.required_str("ref")?;
    let (found, full_path, user_id) = developer(&sim, &id, auth)?;
    let project_id = found.project.id;
    let repo = sim.repo_path(project_id);
    if crate::changes::check_branch(&branch).is_err() {
        return Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            "Branch name is invalid",
        ));
    }
    if repo_browse::commit(&repo, &format!("refs/heads/{branch}"))
        .await?
        .is_some()
    {
        return Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            "Branch already exists",
        ));
    }
    let head = repo_browse::commit(&repo, &git_ref).await?.ok_or_else(|| {
        ApiError::message(
            StatusCode::BAD_REQUEST,
            format!("Invalid reference name: {git_ref}"),
        )
    })?;
    let update = RefUpdate {
        old: ZERO_SHA.to_owned(),
        new: head.id.clone(),
        git_ref: format!("refs/heads/{branch}"),
    };
    checked_update(&sim, project_id, user_id, &update).await?;
    crate::commits::update_branch(&repo, &branch, &head.id, None).await?;
    sim.after_git_push(project_id, Pusher::User(user_id), &[update])
        .await;
    let body = branch_json(&sim, &found, &full_path, &branch, &head, Some(user_id)).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn delete_branch(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, branch)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (found, _, user_id) = developer(&sim, &id, auth)?;
    let project_id = found.project.id;
    let repo = sim.repo_path(project_id);
    let head = repo_browse::commit(&repo, &format!("refs/heads/{branch}"))
        .await?
        .ok_or_else(branch_not_found)?;
    let update = RefUpdate {
        old: head.id.clone(),
        new: ZERO_SHA.to_owned(),
        git_ref: format!("refs/heads/{branch}"),
    };
    checked_update(&sim, project_id, user_id, &update).await?;
    if !repo_browse::delete_branch(&repo, &branch, &head.id).await? {
        return Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            "Failed to remove branch",
        ));
    }
    sim.after_git_push(project_id, Pusher::User(user_id), &[update])
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// One entry of `actions` of `POST /repository/commits`.
fn file_action(item: &Value) -> Result<(String, String, Option<Vec<u8>>), ApiError> {
    let field = |name: &str| item.get(name).and_then(Value::as_str);
    let action = field("action").ok_or_else(|| ApiError::missing("actions[action]"))?;
    let path = field("file_path").ok_or_else(|| ApiError::missing("actions[file_path]"))?;
    let content = match action {
        "delete" => None,
        "create" | "update" => {
            let raw = field("content").unwrap_or_default();
            Some(if field("encoding") == Some("base64") {
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .map_err(|_| ApiError::invalid("actions[content]"))?
            } else {
                raw.as_bytes().to_vec()
            })
        }
        _ => return Err(ApiError::not_valid_value("actions[action]")),
    };
    Ok((action.to_owned(), path.to_owned(), content))
}

/// `POST /projects/:id/repository/commits`: one commit of `create` / `update` / `delete`
/// actions. The branch must accept the caller's pushes (403 otherwise, as
/// `authorize_push_to_branch!`), and the commit passes the push rules as a web commit.
pub async fn create_commit(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let branch = params.required_str("branch")?;
    let message = params.required_str("commit_message")?;
    let actions = params
        .value("actions")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::missing("actions"))?;
    let (found, full_path, user_id) = developer(&sim, &id, auth)?;
    let project_id = found.project.id;
    if !sim
        .lock()
        .can_push_to_branch(Pusher::User(user_id), &found.project, &branch)
    {
        return Err(ApiError::message(
            StatusCode::FORBIDDEN,
            "403 Forbidden - You are not allowed to push into this branch",
        ));
    }
    let repo = sim.repo_path(project_id);
    // Files are looked up where the commit starts: the branch, or `start_branch` for a new one.
    let start = if repo_browse::commit(&repo, &format!("refs/heads/{branch}"))
        .await?
        .is_some()
    {
        branch.clone()
    } else {
        params
            .str("start_branch")
            .unwrap_or_else(|| found.project.default_branch.clone())
    };
    let mut files = Vec::with_capacity(actions.len());
    for item in &actions {
        let (action, path, content) = file_action(item)?;
        let exists = repo_browse::blob(&repo, &start, &path).await?.is_some();
        match (action.as_str(), exists) {
            ("create", true) => {
                return Err(ApiError::message(
                    StatusCode::BAD_REQUEST,
                    "A file with this name already exists",
                ));
            }
            ("update" | "delete", false) => {
                return Err(ApiError::message(
                    StatusCode::BAD_REQUEST,
                    "A file with this name doesn't exist",
                ));
            }
            _ => files.push(crate::commits::FileChange { path, content }),
        }
    }
    let author = match (params.str("author_name"), params.str("author_email")) {
        (Some(name), Some(email)) => Some(crate::commits::Signature { name, email }),
        _ => None,
    };
    let request = crate::changes::CommitRequest {
        branch,
        start_branch: params.str("start_branch"),
        message,
        files,
        user_id,
        author,
    };
    let update = sim
        .build_commit(project_id, &request)
        .await
        .map_err(|e| ApiError::message(StatusCode::BAD_REQUEST, e.to_string()))?;
    checked_update(&sim, project_id, user_id, &update).await?;
    let sha = sim.land_commit(project_id, user_id, update).await?;
    let commit = repo_browse::commit(&repo, &sha)
        .await?
        .ok_or_else(|| ApiError::not_found("Commit"))?;
    let mut body = render::commit(&format!("{}/{full_path}", sim.base_url()), &commit);
    body["project_id"] = json!(project_id);
    body["status"] = Value::Null;
    body["last_pipeline"] = Value::Null;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn tree(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (found, _) = code_reader(&sim, &id, &auth)?;
    let (page, per_page) = paginate::page_params(&params)?;
    let git_ref = params
        .str("ref")
        .unwrap_or_else(|| found.project.default_branch.clone());
    let path = params.str("path").unwrap_or_default();
    let recursive = params.bool("recursive")?.unwrap_or(false);
    let entries = repo_browse::tree(&sim.repo_path(found.project.id), &git_ref, &path, recursive)
        .await?
        .ok_or_else(|| ApiError::not_found("Tree"))?;
    let (items, headers) = paginate::offset(entries, page, per_page, sim.base_url(), &uri);
    let body = items.iter().map(render::tree_entry).collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn file(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, file_path)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let git_ref = params.required_str("ref")?;
    let (found, _) = code_reader(&sim, &id, &auth)?;
    let repo = sim.repo_path(found.project.id);
    let not_found = || ApiError::not_found("File");
    let blob = repo_browse::blob(&repo, &git_ref, &file_path)
        .await?
        .ok_or_else(not_found)?;
    let head = repo_browse::commit(&repo, &git_ref)
        .await?
        .ok_or_else(not_found)?;
    let last = repo_browse::log(&repo, &head.id, Some(&file_path), 1).await?;
    Ok(Json(json!({
        "file_name": file_path.rsplit('/').next().unwrap_or(&file_path),
        "file_path": file_path,
        "size": blob.content.len(),
        "encoding": "base64",
        "content_sha256": hex::encode(Sha256::digest(&blob.content)),
        "ref": git_ref,
        "blob_id": blob.id,
        "commit_id": head.id,
        "last_commit_id": last.first().map_or(head.id.clone(), |c| c.id.clone()),
        "execute_filemode": blob.mode == "100755",
        "content": base64::engine::general_purpose::STANDARD.encode(&blob.content),
    })))
}

pub async fn raw_file(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, file_path)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let (found, _) = code_reader(&sim, &id, &auth)?;
    let git_ref = params
        .str("ref")
        .unwrap_or_else(|| found.project.default_branch.clone());
    let blob = repo_browse::blob(&sim.repo_path(found.project.id), &git_ref, &file_path)
        .await?
        .ok_or_else(|| ApiError::not_found("File"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(blob.content),
    )
        .into_response())
}

pub async fn compare(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let from = params.required_str("from")?;
    let to = params.required_str("to")?;
    let straight = params.bool("straight")?.unwrap_or(false);
    let (found, full_path) = code_reader(&sim, &id, &auth)?;
    let repo = sim.repo_path(found.project.id);
    let not_found = || ApiError::not_found("Ref");
    let from_commit = repo_browse::commit(&repo, &from)
        .await?
        .ok_or_else(not_found)?;
    let to_commit = repo_browse::commit(&repo, &to)
        .await?
        .ok_or_else(not_found)?;
    let range = format!("{}..{}", from_commit.id, to_commit.id);
    let mut commits = repo_browse::log(&repo, &range, None, 10_000).await?;
    commits.reverse();
    let diffs = repo_browse::diff(&repo, &from_commit.id, &to_commit.id, straight).await?;
    let web = format!("{}/{full_path}", sim.base_url());
    Ok(Json(json!({
        "commit": commits.last().map(|c| render::commit(&web, c)),
        "commits": commits.iter().map(|c| render::commit(&web, c)).collect::<Vec<_>>(),
        "diffs": diffs.iter().map(render::file_diff).collect::<Vec<_>>(),
        "compare_timeout": false,
        "compare_same_ref": from == to,
        "web_url": format!("{web}/-/compare/{}...{}", from_commit.id, to_commit.id),
    })))
}
