//! `/api/v1/projects/{id}/repository` (connect, show, disconnect) and `/api/v1/gitlab/projects`
//! (the import list from the caller's linked GitLab account).

use axum::Json;
use axum::extract::{Path, Query, State};
use lablink_service::repositories::import_list::{ImportList, ImportQuery, ImportRow};
use lablink_service::repositories::posting::PostingIdentity;
use lablink_service::repositories::{Repository, RepositoryStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiJson;
use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState, ClientIp};

#[derive(Serialize, ToSchema)]
pub struct RepositoryJson {
    /// Also the last segment of the webhook URL `<public_url>/webhooks/gitlab/<id>`.
    pub id: String,
    pub project_id: String,
    /// `connecting`, `connected`, `disconnected` or `failed`.
    #[schema(value_type = String)]
    pub status: RepositoryStatus,
    pub gitlab_instance_url: String,
    pub gitlab_project_id: i64,
    pub path_with_namespace: String,
    pub default_branch: String,
    pub web_url: String,
    pub http_url_to_repo: String,
    /// What exists in GitLab for this connection.
    pub hook_id: Option<i64>,
    pub project_token_id: Option<i64>,
    /// `YYYY-MM-DD`.
    pub project_token_expires_on: Option<String>,
    pub deploy_token_id: Option<i64>,
    pub deploy_token_username: Option<String>,
    pub deploy_key_id: Option<i64>,
    pub deploy_key_public: Option<String>,
    pub deploy_key_fingerprint: Option<String>,
    /// Whether CI statuses can be posted back to GitLab.
    pub status_reporting: bool,
    /// A persistent warning, e.g. when project access tokens are not available on the plan.
    pub status_warning: Option<String>,
    pub connected_by: Option<String>,
    /// Unix milliseconds.
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    /// Who posts commit statuses and merge request notes: `project_bot` (lablink's project
    /// access token), `maintainer` (a Maintainer's own account, on GitLab plans without project
    /// access tokens) or `nobody`.
    pub posted_by: &'static str,
    /// The GitLab username of the bot or the Maintainer.
    pub posted_by_username: Option<String>,
    /// Why posting through a Maintainer's account stopped (they unlinked it).
    pub post_as_warning: Option<String>,
}

impl From<Repository> for RepositoryJson {
    fn from(r: Repository) -> Self {
        let (posted_by, posted_by_username) = match PostingIdentity::of(&r) {
            PostingIdentity::ProjectBot { username } => ("project_bot", username),
            PostingIdentity::Maintainer { username } => ("maintainer", Some(username)),
            PostingIdentity::Nobody => ("nobody", None),
        };
        RepositoryJson {
            posted_by,
            posted_by_username,
            post_as_warning: r.post_as_warning,
            id: r.id,
            project_id: r.project_id,
            status: r.status,
            gitlab_instance_url: r.gitlab_instance_url,
            gitlab_project_id: r.gitlab_project_id,
            path_with_namespace: r.path_with_namespace,
            default_branch: r.default_branch,
            web_url: r.web_url,
            http_url_to_repo: r.http_url_to_repo,
            hook_id: r.hook_id,
            project_token_id: r.project_token_id,
            project_token_expires_on: r.project_token_expires_on,
            deploy_token_id: r.deploy_token_id,
            deploy_token_username: r.deploy_token_username,
            deploy_key_id: r.deploy_key_id,
            deploy_key_public: r.deploy_key_public,
            deploy_key_fingerprint: r.deploy_key_fingerprint,
            status_reporting: r.status_reporting,
            status_warning: r.status_warning,
            connected_by: r.connected_by,
            connected_at: r.connected_at,
            disconnected_at: r.disconnected_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ConnectJson {
    /// The GitLab project's numeric id (from the import list).
    pub gitlab_project_id: i64,
}

/// The project's connected repository (404 when none).
#[utoipa::path(get, path = "/api/v1/projects/{id}/repository", tag = "repositories",
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = RepositoryJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_repository(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RepositoryJson>, ApiError> {
    let repo = state
        .services
        .project_repository(&user.principal, &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "This project has no connected repository.",
            )
        })?;
    Ok(Json(repo.into()))
}

/// Connects the project to a GitLab repository, all or nothing: webhook, project access token,
/// deploy token and (where configured) SSH deploy key. Needs Maintainer in GitLab. A failed step
/// answers 502 naming the step and GitLab's reason; nothing stays behind in GitLab.
#[utoipa::path(put, path = "/api/v1/projects/{id}/repository", tag = "repositories", request_body = ConnectJson,
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = RepositoryJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
pub async fn connect_repository(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConnectJson>,
) -> Result<Json<RepositoryJson>, ApiError> {
    let repo = state
        .services
        .connect_repository(&user.principal, &id, body.gitlab_project_id, ip.as_deref())
        .await?;
    Ok(Json(repo.into()))
}

/// Disconnects the project's repository: removes what lablink created in GitLab and the secrets
/// here; the project, its jobs and runs stay.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/repository", tag = "repositories",
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = RepositoryJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn disconnect_repository(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<Json<RepositoryJson>, ApiError> {
    let done = state
        .services
        .disconnect_repository(&user.principal, &id, ip.as_deref())
        .await?;
    Ok(Json(done.repository.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostAsBody {
    /// `true`: post this repository's statuses and notes through the caller's own linked
    /// GitLab account (GitLab shows them as the caller); `false`: stop.
    pub enabled: bool,
}

/// On GitLab plans without project access tokens (gitlab.com Free): have statuses and merge
/// request notes posted as the caller, a Maintainer of the repository in GitLab (checked now).
#[utoipa::path(put, path = "/api/v1/projects/{id}/repository/post-as", tag = "repositories",
    params(("id" = String, Path, description = "project id")), request_body = PostAsBody,
    responses((status = 200, body = RepositoryJson), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_post_as(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PostAsBody>,
) -> Result<Json<RepositoryJson>, ApiError> {
    let repo = state
        .services
        .set_posting_as_me(&user.principal, &id, body.enabled, ip.as_deref())
        .await?;
    Ok(Json(repo.into()))
}

#[derive(Deserialize, IntoParams)]
pub struct ImportParams {
    /// Part of the repository's path, case-insensitive.
    #[serde(default)]
    pub search: String,
    /// The previous page's `next_after`.
    pub after: Option<i64>,
    /// `true` reloads the list from GitLab.
    #[serde(default)]
    pub refresh: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ImportRowJson {
    pub gitlab_project_id: i64,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
    pub visibility: Option<String>,
    pub web_url: String,
    /// The caller's effective GitLab access level (10 Guest … 50 Owner).
    pub access_level: i64,
    pub access_label: String,
    pub can_connect: bool,
    pub blocked_reason: Option<String>,
}

impl From<ImportRow> for ImportRowJson {
    fn from(r: ImportRow) -> Self {
        ImportRowJson {
            gitlab_project_id: r.gitlab_project_id,
            path_with_namespace: r.path_with_namespace,
            default_branch: r.default_branch,
            visibility: r.visibility,
            web_url: r.web_url,
            access_level: r.access_level,
            access_label: r.access_label.to_owned(),
            can_connect: r.can_connect,
            blocked_reason: r.blocked_reason.map(str::to_owned),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ImportListJson {
    pub rows: Vec<ImportRowJson>,
    /// Pass as `after` for the next page.
    pub next_after: Option<i64>,
    /// The list is still loading from GitLab in the background.
    pub loading: bool,
    pub loaded: i64,
    pub error: Option<String>,
}

impl From<ImportList> for ImportListJson {
    fn from(l: ImportList) -> Self {
        ImportListJson {
            rows: l.rows.into_iter().map(ImportRowJson::from).collect(),
            next_after: l.next_after,
            loading: l.loading,
            loaded: l.loaded,
            error: l.error,
        }
    }
}

/// Repositories in GitLab groups the caller can reach through their linked GitLab account
/// (never personal namespaces), with their effective access level; paged by `after`.
#[utoipa::path(get, path = "/api/v1/gitlab/projects", tag = "repositories", params(ImportParams),
    responses((status = 200, body = ImportListJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn import_list(
    State(state): State<AppState>,
    user: ApiUser,
    Query(params): Query<ImportParams>,
) -> Result<Json<ImportListJson>, ApiError> {
    let list = state
        .services
        .gitlab_import_list(
            &user.principal,
            &ImportQuery {
                search: params.search,
                after: params.after,
                refresh: params.refresh,
            },
        )
        .await?;
    Ok(Json(list.into()))
}
