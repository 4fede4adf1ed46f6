//! CI jobs and runs: `/api/v1/projects/{id}/ci-jobs`, `/api/v1/ci-jobs/{id}`,
//! `/api/v1/projects/{id}/runs`, `/api/v1/runs/{id}` with its log and artifacts.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use lablink_service::ci::jobs::{CiJobForm, CiJobView};
use lablink_service::ci::runs::{LogLineView, RunDetail, RunSummary};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiJson;
use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState, ClientIp};

/// A project's CI jobs.
#[utoipa::path(get, path = "/api/v1/projects/{id}/ci-jobs", tag = "ci",
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = Vec<CiJobView>), (status = 404, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    user: ApiUser,
    Path(project_id): Path<String>,
) -> Result<Json<Vec<CiJobView>>, ApiError> {
    Ok(Json(
        state
            .services
            .list_ci_jobs(&user.principal, &project_id)
            .await?,
    ))
}

/// Creates a CI job in a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/ci-jobs", tag = "ci", request_body = CiJobForm,
    params(("id" = String, Path, description = "project id")),
    responses((status = 201, body = CiJobView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_job(
    State(state): State<AppState>,
    user: ApiUser,
    Path(project_id): Path<String>,
    ApiJson(form): ApiJson<CiJobForm>,
) -> Result<(StatusCode, Json<CiJobView>), ApiError> {
    let job = state
        .services
        .create_ci_job(&user.principal, &project_id, form)
        .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

#[utoipa::path(get, path = "/api/v1/ci-jobs/{id}", tag = "ci",
    params(("id" = i64, Path, description = "CI job id")),
    responses((status = 200, body = CiJobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i64>,
) -> Result<Json<CiJobView>, ApiError> {
    Ok(Json(state.services.get_ci_job(&user.principal, id).await?))
}

/// Replaces a CI job's settings (omit `warehouse_password` to keep the stored one).
#[utoipa::path(put, path = "/api/v1/ci-jobs/{id}", tag = "ci", request_body = CiJobForm,
    params(("id" = i64, Path, description = "CI job id")),
    responses((status = 200, body = CiJobView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_job(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i64>,
    ApiJson(form): ApiJson<CiJobForm>,
) -> Result<Json<CiJobView>, ApiError> {
    Ok(Json(
        state
            .services
            .update_ci_job(&user.principal, id, form)
            .await?,
    ))
}

/// Deletes a CI job and its runs.
#[utoipa::path(delete, path = "/api/v1/ci-jobs/{id}", tag = "ci",
    params(("id" = i64, Path, description = "CI job id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_job(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_ci_job(&user.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct RunFilter {
    /// Only runs of this merge request.
    pub mr_iid: Option<i64>,
}

/// The newest runs of a project (at most 100).
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs", tag = "ci",
    params(("id" = String, Path, description = "project id"), RunFilter),
    responses((status = 200, body = Vec<RunSummary>), (status = 404, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    user: ApiUser,
    Path(project_id): Path<String>,
    Query(filter): Query<RunFilter>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    Ok(Json(
        state
            .services
            .list_runs(&user.principal, &project_id, filter.mr_iid)
            .await?,
    ))
}

/// One run: state, timing, steps, the last 200 log lines and the artifacts it has.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "ci",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(
        state.services.run_detail(&user.principal, &id, 200).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct LogPage {
    /// First sequence number to return (0 for the start).
    #[serde(default)]
    pub after: i64,
    /// At most this many lines (default 1000, at most 5000).
    pub limit: Option<i64>,
}

/// A run's log lines, redacted, from `after` on; poll with the last `seq` + 1.
#[utoipa::path(get, path = "/api/v1/runs/{id}/log", tag = "ci",
    params(("id" = String, Path, description = "run id"), LogPage),
    responses((status = 200, body = Vec<LogLineView>), (status = 404, body = ErrorBody)))]
pub async fn run_log(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    Query(page): Query<LogPage>,
) -> Result<Json<Vec<LogLineView>>, ApiError> {
    Ok(Json(
        state
            .services
            .run_log(&user.principal, &id, page.after, page.limit.unwrap_or(1000))
            .await?,
    ))
}

/// Approves a fork's commit to run with the job's secrets. Only a Maintainer of the target project
/// in GitLab may (checked with the caller's linked GitLab account).
#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", tag = "ci",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunSummary), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_run(
    State(state): State<AppState>,
    user: ApiUser,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    Ok(Json(
        state
            .services
            .approve_fork_run(&user.principal, &id, ip.0.as_deref())
            .await?,
    ))
}

/// Cancels an active run (queued, waiting for approval, starting or running); 409 when it has
/// ended. Its commit status in GitLab becomes `canceled`.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "ci",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_run(
    State(state): State<AppState>,
    user: ApiUser,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .cancel_run_by_user(&user.principal, &id, ip.0.as_deref())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Runs an ended run again from the beginning (its log and artifacts are replaced); 409 while
/// it is active. A fork's commit nobody approved waits for an approval again.
#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", tag = "ci",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunSummary), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rerun_run(
    State(state): State<AppState>,
    user: ApiUser,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    Ok(Json(
        state
            .services
            .rerun_run(&user.principal, &id, ip.0.as_deref())
            .await?,
    ))
}

/// Drops the warehouse schemas of the run's merge request and job now (in the background; 202).
#[utoipa::path(post, path = "/api/v1/runs/{id}/drop-schemas", tag = "ci",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn drop_run_schemas(
    State(state): State<AppState>,
    user: ApiUser,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .drop_run_schemas(&user.principal, &id, ip.0.as_deref())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `run_results.json`, `manifest.json` or `lablink_report.json` (what changed) of a run.
#[utoipa::path(get, path = "/api/v1/runs/{id}/artifacts/{name}", tag = "ci",
    params(("id" = String, Path, description = "run id"),
        ("name" = String, Path, description = "run_results.json, manifest.json or lablink_report.json")),
    responses((status = 200, content_type = "application/json", body = String),
        (status = 404, body = ErrorBody)))]
pub async fn run_artifact(
    State(state): State<AppState>,
    user: ApiUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let content = state
        .services
        .run_artifact(&user.principal, &id, &name)
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], content))
}
