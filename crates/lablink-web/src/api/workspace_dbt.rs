//! `/api/v1/projects/{id}/workspace/dbt...`: the workspace's dbt command box — start a command
//! against the caller's development schema, follow its output, cancel it, read what dbt wrote
//! to its target path.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lablink_service::workspace::{DevCommand, DevCommands};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct TargetFileJson {
    /// Relative to the target path (`run_results.json`, `compiled/...`).
    pub path: String,
    pub bytes: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DevCommandJson {
    pub id: String,
    /// As it ran (`dbt build --select my_model+`).
    pub command: String,
    /// The CI job whose warehouse settings it used.
    pub job_id: i64,
    /// The development schema it built into.
    pub schema: String,
    /// `running`, `succeeded`, `failed`, `cancelled`, `timed_out`, `stopped` or `lost`.
    pub state: String,
    /// Why it did not succeed (empty when it did or still runs).
    pub reason: String,
    /// The output so far (empty in lists).
    pub output: String,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// What dbt wrote to its target path (the latest finished command only).
    pub target_files: Vec<TargetFileJson>,
}

impl From<DevCommand> for DevCommandJson {
    fn from(c: DevCommand) -> Self {
        DevCommandJson {
            id: c.id,
            command: c.command,
            job_id: c.job_id,
            schema: c.schema,
            state: c.state,
            reason: c.reason,
            output: c.output,
            started_at: c.started_at,
            finished_at: c.finished_at,
            target_files: c
                .files
                .into_iter()
                .map(|(path, bytes)| TargetFileJson { path, bytes })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DevCommandsJson {
    /// The development schema commands build into.
    pub schema: String,
    /// The warehouse user of the caller's own development credentials (null: the job's).
    pub dev_user: Option<String>,
    /// The commands, newest first; the first with its output and files.
    pub commands: Vec<DevCommandJson>,
}

impl From<DevCommands> for DevCommandsJson {
    fn from(b: DevCommands) -> Self {
        DevCommandsJson {
            schema: b.schema,
            dev_user: b.dev_user,
            commands: b
                .latest
                .into_iter()
                .chain(b.earlier)
                .map(DevCommandJson::from)
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct StartCommandBody {
    /// A dbt command as a CI job takes it: `dbt build --select my_model+`.
    pub command: String,
    /// The CI job whose warehouse settings to use; the project's first job when absent.
    pub job_id: Option<i64>,
}

/// The caller's dbt commands in the workspace.
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace/dbt", tag = "workspace",
    responses((status = 200, body = DevCommandsJson), (status = 404, body = ErrorBody)))]
pub async fn list_commands(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<DevCommandsJson>, ApiError> {
    Ok(Json(
        state
            .services
            .workspace_commands(&user.principal, &id)
            .await?
            .into(),
    ))
}

/// Starts a dbt command on the workspace's files, in the sandbox, against the caller's
/// development schema; follow it with GET `.../workspace/dbt/{command}`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/dbt", tag = "workspace",
    request_body = StartCommandBody,
    responses((status = 202, body = DevCommandJson), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn start_command(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StartCommandBody>,
) -> Result<(StatusCode, Json<DevCommandJson>), ApiError> {
    let started = state
        .services
        .start_workspace_command(&user.principal, &id, &body.command, body.job_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(started.into())))
}

/// One command with its output so far.
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace/dbt/{command}", tag = "workspace",
    responses((status = 200, body = DevCommandJson), (status = 404, body = ErrorBody)))]
pub async fn get_command(
    State(state): State<AppState>,
    user: ApiUser,
    Path((id, command)): Path<(String, String)>,
) -> Result<Json<DevCommandJson>, ApiError> {
    Ok(Json(
        state
            .services
            .workspace_command(&user.principal, &id, &command)
            .await?
            .into(),
    ))
}

/// Stops a running command.
#[utoipa::path(post, path = "/api/v1/projects/{id}/workspace/dbt/{command}/cancel",
    tag = "workspace",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_command(
    State(state): State<AppState>,
    user: ApiUser,
    Path((id, command)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .cancel_workspace_command(&user.principal, &id, &command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct TargetFileQuery {
    /// The file, relative to the target path (`compiled/my_project/models/orders.sql`).
    pub path: String,
}

/// A file dbt wrote to the command's target path, as it is.
#[utoipa::path(get, path = "/api/v1/projects/{id}/workspace/dbt/{command}/target",
    tag = "workspace", params(TargetFileQuery),
    responses((status = 200, content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody)))]
pub async fn target_file(
    State(state): State<AppState>,
    user: ApiUser,
    Path((id, command)): Path<(String, String)>,
    Query(query): Query<TargetFileQuery>,
) -> Result<Response, ApiError> {
    let content = state
        .services
        .workspace_command_file(&user.principal, &id, &command, &query.path)
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct DevCredentialsBody {
    /// The warehouse user the caller's commands on PostgreSQL jobs run as.
    pub username: String,
    /// Its password; empty keeps the saved one.
    #[serde(default)]
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Saves the caller's own warehouse credentials for the project's workspace commands on
/// PostgreSQL jobs (the job's host, port and database; this user and password).
#[utoipa::path(put, path = "/api/v1/projects/{id}/workspace/dbt/credentials", tag = "workspace",
    request_body = DevCredentialsBody,
    responses((status = 204), (status = 422, body = ErrorBody)))]
pub async fn save_credentials(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DevCredentialsBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .save_dev_credentials(&user.principal, &id, &body.username, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets the caller's own warehouse credentials: commands use the job's again.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/workspace/dbt/credentials",
    tag = "workspace", responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_credentials(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_dev_credentials(&user.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
