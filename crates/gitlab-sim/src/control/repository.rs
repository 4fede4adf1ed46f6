//! Control API for repository content and merge requests: seed a project from a directory,
//! commit files to a branch, set the push rule, and open / edit / draft / ready / close /
//! reopen / merge merge requests. Each fires the webhooks GitLab would (see `changes`).

use std::path::PathBuf;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{post, put};
use serde::Deserialize;
use serde_json::json;

use super::{ControlResult, body, created};
use crate::changes::{CommitRequest, MergeRequestEdit};
use crate::commits::{FileChange, Signature};
use crate::error::ApiError;
use crate::render;
use crate::state::{Id, MergeRequest, PushRule, SetupError, SimHandle};

pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/projects/{id}/repository/seed", post(seed))
        .route("/projects/{id}/repository/commits", post(commit))
        .route("/projects/{id}/push_rule", put(set_push_rule))
        .route("/projects/{id}/merge_requests", post(open_merge_request))
        .route(
            "/projects/{id}/merge_requests/{iid}",
            put(edit_merge_request),
        )
        .route(
            "/projects/{id}/merge_requests/{iid}/{action}",
            post(merge_request_action),
        )
}

fn render_mr(sim: &SimHandle, mr: &MergeRequest) -> serde_json::Value {
    let state = sim.lock();
    render::merge_request(&state, sim.base_url(), mr)
}

#[derive(Deserialize)]
struct Seed {
    dir: PathBuf,
    user_id: Id,
}

async fn seed(State(sim): State<SimHandle>, Path(id): Path<Id>, raw: Bytes) -> ControlResult {
    let seed: Seed = body(&raw)?;
    let sha = sim.seed_project(id, &seed.dir, seed.user_id).await?;
    created(json!({ "sha": sha }))
}

#[derive(Deserialize)]
struct NewFile {
    path: String,
    content: Option<String>,
    #[serde(default)]
    delete: bool,
}

#[derive(Deserialize)]
struct NewCommitBody {
    branch: String,
    start_branch: Option<String>,
    message: String,
    user_id: Id,
    author_name: Option<String>,
    author_email: Option<String>,
    files: Vec<NewFile>,
}

async fn commit(State(sim): State<SimHandle>, Path(id): Path<Id>, raw: Bytes) -> ControlResult {
    let req: NewCommitBody = body(&raw)?;
    let mut files = Vec::with_capacity(req.files.len());
    for f in req.files {
        let content = match (f.delete, f.content) {
            (true, _) => None,
            (false, Some(content)) => Some(content.into_bytes()),
            (false, None) => {
                return Err(SetupError::Invalid(format!(
                    "file {} needs content or delete",
                    f.path
                ))
                .into());
            }
        };
        files.push(FileChange {
            path: f.path,
            content,
        });
    }
    let author = match (req.author_name, req.author_email) {
        (Some(name), Some(email)) => Some(Signature { name, email }),
        (None, None) => None,
        _ => {
            return Err(
                SetupError::Invalid("author_name and author_email go together".into()).into(),
            );
        }
    };
    let sha = sim
        .commit_files(
            id,
            CommitRequest {
                branch: req.branch,
                start_branch: req.start_branch,
                message: req.message,
                files,
                user_id: req.user_id,
                author,
            },
        )
        .await?;
    created(json!({ "sha": sha }))
}

async fn set_push_rule(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let rule: PushRule = body(&raw)?;
    let rule = sim.lock().set_push_rule(id, rule)?;
    Ok(Json(json!(rule)).into_response())
}

#[derive(Deserialize)]
struct NewMergeRequestBody {
    source_branch: String,
    target_branch: Option<String>,
    title: String,
    #[serde(default)]
    description: String,
    author_id: Id,
}

async fn open_merge_request(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let req: NewMergeRequestBody = body(&raw)?;
    let target = match req.target_branch {
        Some(target) => target,
        None => sim
            .lock()
            .projects
            .get(&id)
            .map(|p| p.default_branch.clone())
            .ok_or(SetupError::NotFound("Project"))?,
    };
    let mr = sim
        .open_merge_request(
            id,
            req.author_id,
            &req.source_branch,
            &target,
            &req.title,
            &req.description,
        )
        .await?;
    created(render_mr(&sim, &mr))
}

#[derive(Deserialize)]
struct EditBody {
    title: Option<String>,
    description: Option<String>,
    user_id: Id,
}

async fn edit_merge_request(
    State(sim): State<SimHandle>,
    Path((id, iid)): Path<(Id, u64)>,
    raw: Bytes,
) -> ControlResult {
    let req: EditBody = body(&raw)?;
    let edit = MergeRequestEdit {
        title: req.title,
        description: req.description,
        ..MergeRequestEdit::default()
    };
    let mr = sim.edit_merge_request(id, iid, req.user_id, edit).await?;
    Ok(Json(render_mr(&sim, &mr)).into_response())
}

#[derive(Deserialize)]
struct ActionBody {
    user_id: Id,
}

async fn merge_request_action(
    State(sim): State<SimHandle>,
    Path((id, iid, action)): Path<(Id, u64, String)>,
    raw: Bytes,
) -> ControlResult {
    let req: ActionBody = body(&raw)?;
    let mr = match action.as_str() {
        "draft" => {
            sim.set_merge_request_draft(id, iid, req.user_id, true)
                .await?
        }
        "ready" => {
            sim.set_merge_request_draft(id, iid, req.user_id, false)
                .await?
        }
        "close" => sim.close_merge_request(id, iid, req.user_id).await?,
        "reopen" => sim.reopen_merge_request(id, iid, req.user_id).await?,
        "approve" => sim.approve_merge_request(id, iid, req.user_id).await?,
        "merge" => sim.merge_merge_request(id, iid, req.user_id).await?,
        _ => return Err(ApiError::not_found("Action")),
    };
    Ok(Json(render_mr(&sim, &mr)).into_response())
}
