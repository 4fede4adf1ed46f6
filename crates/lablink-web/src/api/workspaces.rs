//! `/api/v1/workspaces`: the account's workspaces with their disk use, and the account's cap on
//! it (account admins).

use axum::Json;
use axum::extract::State;
use lablink_service::workspace::WorkspacesDiskUse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct WorkspaceUseJson {
    pub id: String,
    pub project_id: String,
    pub project: String,
    pub username: String,
    pub branch: String,
    /// The checkout's size when last measured, in bytes.
    pub disk_bytes: i64,
    /// Milliseconds since the Unix epoch.
    pub used_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspacesJson {
    /// The cap on the sum of the workspaces' disk use, in megabytes.
    pub cap_mb: i64,
    /// True when the account set no cap of its own (lablink's default applies).
    pub default_cap: bool,
    pub total_bytes: i64,
    /// The largest first.
    pub workspaces: Vec<WorkspaceUseJson>,
}

impl From<WorkspacesDiskUse> for WorkspacesJson {
    fn from(u: WorkspacesDiskUse) -> Self {
        WorkspacesJson {
            cap_mb: u.cap_mb,
            default_cap: u.default_cap,
            total_bytes: u.total_bytes,
            workspaces: u
                .workspaces
                .into_iter()
                .map(|w| WorkspaceUseJson {
                    id: w.workspace_id,
                    project_id: w.project_id,
                    project: w.project_name,
                    username: w.username,
                    branch: w.branch,
                    disk_bytes: w.disk_bytes,
                    used_at: w.used_at,
                })
                .collect(),
        }
    }
}

/// The account's workspaces, their disk use and the cap.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspace",
    responses((status = 200, body = WorkspacesJson), (status = 403, body = ErrorBody)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<WorkspacesJson>, ApiError> {
    Ok(Json(
        state
            .services
            .workspaces_disk_use(&user.principal)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct DiskCapBody {
    /// Megabytes; null for lablink's default (10,240).
    pub cap_mb: Option<i64>,
}

/// Sets the account's cap on its workspaces' disk use.
#[utoipa::path(put, path = "/api/v1/workspaces/disk-cap", tag = "workspace",
    request_body = DiskCapBody,
    responses((status = 200, body = WorkspacesJson), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_disk_cap(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<DiskCapBody>,
) -> Result<Json<WorkspacesJson>, ApiError> {
    let services = &state.services;
    services
        .set_workspace_disk_cap(&user.principal, body.cap_mb)
        .await?;
    Ok(Json(
        services.workspaces_disk_use(&user.principal).await?.into(),
    ))
}
