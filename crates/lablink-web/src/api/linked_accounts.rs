//! `/api/v1/linked-accounts/gitlab`: the caller's linked GitLab account. Linking itself goes
//! through GitLab's consent page in a browser (Profile → Linked accounts).

use axum::Json;
use axum::extract::State;
use lablink_service::links::LinkView;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct LinkJson {
    /// `not_linked`, `linked` or `dead` (link again).
    pub status: String,
    pub username: Option<String>,
    pub instance_url: Option<String>,
    /// Why a dead link stopped working.
    pub reason: Option<String>,
}

impl From<LinkView> for LinkJson {
    fn from(v: LinkView) -> Self {
        match v {
            LinkView::NotLinked => LinkJson {
                status: "not_linked".into(),
                username: None,
                instance_url: None,
                reason: None,
            },
            LinkView::Linked {
                username,
                instance_url,
                ..
            } => LinkJson {
                status: "linked".into(),
                username: Some(username),
                instance_url: Some(instance_url),
                reason: None,
            },
            LinkView::Dead { username, reason } => LinkJson {
                status: "dead".into(),
                username: Some(username),
                instance_url: None,
                reason: Some(format!(
                    "{reason}; link again under Profile → Linked accounts"
                )),
            },
        }
    }
}

/// The caller's linked GitLab account.
#[utoipa::path(get, path = "/api/v1/linked-accounts/gitlab", tag = "gitlab",
    responses((status = 200, body = LinkJson), (status = 401, body = ErrorBody)))]
pub async fn get_link(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<LinkJson>, ApiError> {
    Ok(Json(
        state
            .services
            .gitlab_link_view(&user.principal)
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CheckJson {
    /// The GitLab user the link's token belongs to, as GitLab says now.
    pub username: String,
}

/// Proves the link works: calls GitLab's `GET /user` with a fresh token (refreshing it when
/// needed). A dead link answers 409 with "Link again".
#[utoipa::path(post, path = "/api/v1/linked-accounts/gitlab/check", tag = "gitlab",
    responses((status = 200, body = CheckJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn check_link(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<CheckJson>, ApiError> {
    let username = state.services.check_gitlab_link(&user.principal).await?;
    Ok(Json(CheckJson { username }))
}

#[derive(Serialize, ToSchema)]
pub struct UnlinkedJson {
    /// Set when GitLab could not be told to revoke the token (the link is deleted anyway).
    pub revoke_problem: Option<String>,
    /// How many repositories posted statuses and notes as this account (gitlab.com Free) and
    /// now post nothing.
    pub stopped_posting: u64,
}

/// Unlinks: revokes the token at GitLab (a failure there is reported) and deletes the link.
#[utoipa::path(delete, path = "/api/v1/linked-accounts/gitlab", tag = "gitlab",
    responses((status = 200, body = UnlinkedJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<UnlinkedJson>, ApiError> {
    let unlinked = state.services.unlink_gitlab(&user.principal).await?;
    Ok(Json(UnlinkedJson {
        revoke_problem: unlinked.revoke_problem,
        stopped_posting: unlinked.stopped_posting,
    }))
}
