//! `/api/v1/projects/{id}/workspace/...`: the caller's workspace of a project — its files, and
//! the git actions of the dbt IDE (branches, commit and sync, pull, rollback). Every action needs
//! the Developer role; pushes go with the caller's own GitLab account on Enterprise plans.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lablink_service::workspace::{Merged, Synced, TreeEntry, WorkspaceView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct TreeEntryJson {
    /// Relative path; an ignored folder ends with `/`.
    pub path: String,
    /// `modified`, `added`, `deleted`, `untracked`, `ignored`, `conflicted`; null: unchanged.
    pub state: Option<String>,
}

impl From<TreeEntry> for TreeEntryJson {
    fn from(e: TreeEntry) -> Self {
        TreeEntryJson {
            path: e.path,
            state: e.state.map(|s| s.as_str().to_owned()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceJson {
    pub id: String,
    pub repository: String,
    pub branch: String,
    pub head_sha: String,
    pub default_branch: String,
    /// True on the default branch: it can be edited, not committed to.
    pub protected: bool,
    pub branches: Vec<String>,
    pub files: Vec<TreeEntryJson>,
    /// Saved but uncommitted files.
    pub changes: usize,
    /// Whom GitLab sees on a push.
    pub pushes_as: String,
    /// While the default branch is being merged in: the files still in conflict (empty when
    /// all are resolved and "commit" finishes the merge); null when no merge is in progress.
    pub merging: Option<Vec<String>>,
    /// What the dbt project's `.gitignore` gets wrong; null when nothing.
    pub gitignore: Option<GitignoreJson>,
    /// The branch's last commits, newest first.
    pub recent_commits: Vec<CommitSummaryJson>,
    /// The checkout's size on the lablink server when last measured, in bytes.
    pub disk_bytes: i64,
    /// Pushes go over SSH with the repository's deploy key (gitlab.com Free on Developer and
    /// Starter plans); `.../workspace/repair-deploy-key` repairs it.
    pub pushes_with_deploy_key: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CommitSummaryJson {
    pub sha: String,
    pub title: String,
}

/// The build folders `.gitignore` misses, and those with files in git.
#[derive(Serialize, ToSchema)]
pub struct GitignoreJson {
    pub missing: Vec<String>,
    pub tracked: Vec<String>,
}

impl From<WorkspaceView> for WorkspaceJson {
    fn from(v: WorkspaceView) -> Self {
        WorkspaceJson {
            id: v.workspace_id,
            repository: v.path_with_namespace,
            branch: v.branch,
            head_sha: v.head_sha,
            default_branch: v.default_branch,
            protected: v.protected,
            branches: v.branches,
            files: v.files.into_iter().map(TreeEntryJson::from).collect(),
            changes: v.changes,
            pushes_as: v.pushes_as,
            merging: v.merging,
            recent_commits: v
                .recent_commits
                .into_iter()
                .map(|(sha, title)| CommitSummaryJson { sha, title })
                .collect(),
            disk_bytes: v.disk_bytes,
            pushes_with_deploy_key: v.pushes_with_deploy_key,
            gitignore: v.gitignore.map(|g| GitignoreJson {
                missing: g.missing.iter().map(|f| format!("{f}/")).collect(),
                tracked: g.tracked.iter().map(|f| format!("{f}/")).collect(),
            }),
        }
    }
}

/// The caller's workspace of the project (created on first use, at the default branch).
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace", tag = "workspace",
    responses((status = 200, body = WorkspaceJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_workspace(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceJson>, ApiError> {
    Ok(Json(
        state.services.workspace(&user.principal, &id).await?.into(),
    ))
}

/// Deletes the caller's workspace of the project with its uncommitted changes and dbt commands,
/// giving its disk back; the next use starts a new one.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/workspace", tag = "workspace",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_workspace(&user.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct PathQuery {
    /// The file's path in the repository, like `models/orders.sql`.
    pub path: String,
}

#[derive(Serialize, ToSchema)]
pub struct FileJson {
    pub path: String,
    /// The content; null for a file that is not UTF-8 text.
    pub text: Option<String>,
    pub bytes: usize,
}

/// One file of the workspace.
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace/files", tag = "workspace", params(PathQuery),
    responses((status = 200, body = FileJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<FileJson>, ApiError> {
    let file = state
        .services
        .workspace_file(&user.principal, &id, &q.path)
        .await?;
    Ok(Json(FileJson {
        path: file.path,
        text: file.text,
        bytes: file.bytes,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct FileBody {
    pub path: String,
    pub text: String,
}

/// Saves a file (created with its folders when new).
#[utoipa::path(put, path = "/api/v1/projects/{id}/workspace/files", tag = "workspace", request_body = FileBody,
    responses((status = 204), (status = 422, body = ErrorBody)))]
pub async fn save_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FileBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .save_workspace_file(&user.principal, &id, &body.path, &body.text)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a file; 409 when the path is taken.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/files", tag = "workspace", request_body = FileBody,
    responses((status = 201), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FileBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .create_workspace_file(&user.principal, &id, &body.path, &body.text)
        .await?;
    Ok(StatusCode::CREATED)
}

/// Deletes a file.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/workspace/files", tag = "workspace", params(PathQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_workspace_file(&user.principal, &id, &q.path)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct RenameBody {
    pub from: String,
    pub to: String,
}

/// Renames (moves) a file.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/rename", tag = "workspace", request_body = RenameBody,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .rename_workspace_file(&user.principal, &id, &body.from, &body.to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct RevertBody {
    /// The files to revert; absent: every uncommitted change.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

/// Reverts uncommitted changes (of some files, or all).
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/revert", tag = "workspace", request_body = RevertBody,
    responses((status = 204), (status = 422, body = ErrorBody)))]
pub async fn revert(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevertBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revert_workspace_changes(&user.principal, &id, body.paths.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct DiffJson {
    /// A unified diff against the branch's commit.
    pub diff: String,
}

/// A file's uncommitted changes.
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace/diff", tag = "workspace", params(PathQuery),
    responses((status = 200, body = DiffJson), (status = 422, body = ErrorBody)))]
pub async fn diff(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<DiffJson>, ApiError> {
    let diff = state
        .services
        .workspace_diff(&user.principal, &id, &q.path)
        .await?;
    Ok(Json(DiffJson { diff }))
}

#[derive(Deserialize, ToSchema)]
pub struct BranchBody {
    pub name: String,
}

/// Creates a branch off the default branch and changes to it (uncommitted changes come along).
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/branches", tag = "workspace", request_body = BranchBody,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_branch(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BranchBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .create_workspace_branch(&user.principal, &id, &body.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct CheckoutBody {
    pub branch: String,
    /// With uncommitted changes the change is refused (409) unless this says to drop them.
    #[serde(default)]
    pub discard_changes: bool,
}

/// Changes to another branch.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/checkout", tag = "workspace", request_body = CheckoutBody,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn checkout(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .switch_workspace_branch(&user.principal, &id, &body.branch, body.discard_changes)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct CommitBody {
    pub message: String,
    /// The files to commit; absent: every uncommitted change.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct CommitJson {
    pub branch: String,
    pub sha: String,
    /// GitLab's page to open a merge request of the branch.
    pub new_merge_request_url: String,
}

impl From<Synced> for CommitJson {
    fn from(synced: Synced) -> Self {
        CommitJson {
            branch: synced.branch,
            sha: synced.sha,
            new_merge_request_url: synced.new_merge_request_url,
        }
    }
}

/// Commits and pushes. 403 with GitLab's own words when GitLab (or the caller's role) refuses.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/commit", tag = "workspace", request_body = CommitBody,
    responses((status = 200, body = CommitJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn commit(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommitBody>,
) -> Result<Json<CommitJson>, ApiError> {
    Ok(Json(
        state
            .services
            .commit_and_sync(&user.principal, &id, &body.message, body.paths.as_deref())
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct MessageJson {
    pub message: String,
}

/// Pulls the branch from GitLab (needs no uncommitted changes).
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/pull", tag = "workspace",
    responses((status = 200, body = MessageJson), (status = 409, body = ErrorBody)))]
pub async fn pull(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<MessageJson>, ApiError> {
    let message = state.services.pull_workspace(&user.principal, &id).await?;
    Ok(Json(MessageJson { message }))
}

/// Refreshes the workspace's view of GitLab: fetches, prunes the branches deleted there, and
/// says what changed.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/refresh", tag = "workspace",
    responses((status = 200, body = MessageJson), (status = 404, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<MessageJson>, ApiError> {
    let message = state
        .services
        .refresh_workspace(&user.principal, &id)
        .await?;
    Ok(Json(MessageJson { message }))
}

/// "GitLab Authentication is out of date": checks the repository's SSH deploy key against GitLab
/// and adds a new one when GitLab's is missing or another (workspaces that push with it).
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/repair-deploy-key", tag = "workspace",
    responses((status = 200, body = MessageJson), (status = 409, body = ErrorBody)))]
pub async fn repair_deploy_key(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<MessageJson>, ApiError> {
    let message = state
        .services
        .repair_workspace_deploy_key(&user.principal, &id)
        .await?;
    Ok(Json(MessageJson { message }))
}

/// Makes the workspace exactly GitLab's branch, dropping every uncommitted change.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/rollback", tag = "workspace",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .rollback_workspace(&user.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MergeJson {
    /// `up_to_date`, `pushed` or `conflicts`.
    pub outcome: String,
    /// The merge commit, when pushed.
    pub sha: Option<String>,
    /// The files to resolve, on conflicts.
    pub conflicts: Vec<String>,
}

/// Merges the default branch into the workspace's branch: pushed when clean; on conflicts the
/// files hold git's markers until they are resolved and committed (or the merge is aborted).
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/merge-default-branch", tag = "workspace",
    responses((status = 200, body = MergeJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn merge_default_branch(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<MergeJson>, ApiError> {
    let merged = state
        .services
        .merge_default_branch(&user.principal, &id)
        .await?;
    Ok(Json(match merged {
        Merged::UpToDate => MergeJson {
            outcome: "up_to_date".into(),
            sha: None,
            conflicts: Vec::new(),
        },
        Merged::Pushed { sha } => MergeJson {
            outcome: "pushed".into(),
            sha: Some(sha),
            conflicts: Vec::new(),
        },
        Merged::Conflicts(conflicts) => MergeJson {
            outcome: "conflicts".into(),
            sha: None,
            conflicts,
        },
    }))
}

/// Abandons a merge waiting for its conflicts.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/abort-merge", tag = "workspace",
    responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn abort_merge(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .abort_workspace_merge(&user.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The seed's "Fix in the Studio IDE": on branch `lablink/fix-gitignore` off the default branch,
/// `.gitignore` gets dbt's build folders and the tracked ones leave git; committed and pushed.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/fix-gitignore", tag = "workspace",
    responses((status = 200, body = CommitJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn fix_gitignore(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<CommitJson>, ApiError> {
    Ok(Json(
        state
            .services
            .fix_gitignore_in_workspace(&user.principal, &id)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct MergeRequestBody {
    pub title: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema)]
pub struct MergeRequestJson {
    /// The merge request's page in GitLab.
    pub web_url: String,
}

/// Opens a merge request of the workspace's branch into the default branch.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/merge-request", tag = "workspace", request_body = MergeRequestBody,
    responses((status = 201, body = MergeRequestJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn merge_request(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeRequestBody>,
) -> Result<(StatusCode, Json<MergeRequestJson>), ApiError> {
    let web_url = state
        .services
        .open_merge_request(&user.principal, &id, &body.title, &body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(MergeRequestJson { web_url })))
}

#[derive(Deserialize, ToSchema)]
pub struct RevertCommitBody {
    /// The commit of the branch to undo (full SHA).
    pub sha: String,
}

/// Commits the reversal of a commit of the branch and pushes it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/revert-commit", tag = "workspace", request_body = RevertCommitBody,
    responses((status = 200, body = CommitJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn revert_commit(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevertCommitBody>,
) -> Result<Json<CommitJson>, ApiError> {
    Ok(Json(
        state
            .services
            .revert_workspace_commit(&user.principal, &id, &body.sha)
            .await?
            .into(),
    ))
}
