//! `/api/v1/audit`: the account's audit log (account admins), filtered and paged like the page.

use axum::Json;
use axum::extract::{Query, State};
use lablink_service::ServiceError;
use lablink_service::audit::AuditEntry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit_query::{AuditQuery, cursor};
use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState};

const PAGE_SIZE: i64 = 100;

#[derive(Serialize, ToSchema)]
pub struct AuditEntryJson {
    pub id: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub actor_user_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
}

impl From<AuditEntry> for AuditEntryJson {
    fn from(e: AuditEntry) -> Self {
        AuditEntryJson {
            id: e.id,
            created_at: e.created_at,
            actor_user_id: e.actor_user_id,
            actor_email: e.actor_email,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryJson>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next: Option<String>,
}

/// The account's audit log, newest first, 100 entries a page.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    user: ApiUser,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = query.filter().map_err(ServiceError::BadInput)?;
    let mut entries = state
        .services
        .audit_log(&user.principal, &filter, PAGE_SIZE + 1)
        .await?;
    let next = (entries.len() as i64 > PAGE_SIZE).then(|| {
        entries.truncate(PAGE_SIZE as usize);
        cursor(entries.last().expect("a full page"))
    });
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntryJson::from).collect(),
        next,
    }))
}
