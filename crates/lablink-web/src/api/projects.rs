//! `/api/v1/projects`: the account's dbt projects.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lablink_service::projects::Project;
use lablink_service::projects::ProjectInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiJson;
use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct ProjectJson {
    pub id: String,
    pub name: String,
    /// The dbt project's directory inside the repository ("" = root).
    pub subdirectory: String,
    /// The CI target branch; null = the repository's default branch.
    pub target_branch: Option<String>,
    /// The connected repository, if any.
    pub repository_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Project> for ProjectJson {
    fn from(p: Project) -> Self {
        ProjectJson {
            id: p.id,
            name: p.name,
            subdirectory: p.subdirectory,
            target_branch: p.target_branch,
            repository_id: p.repository_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ProjectInputJson {
    pub name: String,
    #[serde(default)]
    pub subdirectory: String,
    /// Blank or absent: the repository's default branch.
    #[serde(default)]
    pub target_branch: Option<String>,
}

impl From<ProjectInputJson> for ProjectInput {
    fn from(j: ProjectInputJson) -> Self {
        ProjectInput {
            name: j.name,
            subdirectory: j.subdirectory,
            target_branch: j.target_branch.unwrap_or_default(),
        }
    }
}

/// The dbt projects of the caller's account.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<ProjectJson>), (status = 401, body = ErrorBody)))]
pub async fn list_projects(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<Vec<ProjectJson>>, ApiError> {
    let projects = state.services.list_projects(&user.principal).await?;
    Ok(Json(projects.into_iter().map(ProjectJson::from).collect()))
}

/// Creates a dbt project (admins and developers).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ProjectInputJson,
    responses((status = 201, body = ProjectJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<ProjectInputJson>,
) -> Result<(StatusCode, Json<ProjectJson>), ApiError> {
    let project = state
        .services
        .create_project(&user.principal, &body.into())
        .await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// One dbt project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = ProjectJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ProjectJson>, ApiError> {
    Ok(Json(
        state.services.project(&user.principal, &id).await?.into(),
    ))
}

/// Changes a dbt project's name, subdirectory or target branch (admins and developers).
#[utoipa::path(put, path = "/api/v1/projects/{id}", tag = "projects", request_body = ProjectInputJson,
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = ProjectJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_project(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectInputJson>,
) -> Result<Json<ProjectJson>, ApiError> {
    let project = state
        .services
        .update_project(&user.principal, &id, &body.into())
        .await?;
    Ok(Json(project.into()))
}
