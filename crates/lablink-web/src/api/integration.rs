//! `/api/v1/integrations/gitlab`: the account's own GitLab application (admins). Saving through
//! the API stores it; the authorization at GitLab then happens in a browser, on the integration
//! page, because only a browser session can come back through GitLab's redirect.

use axum::Json;
use axum::extract::State;
use lablink_service::integration::IntegrationStatus;
use lablink_service::integration::{IntegrationForm, IntegrationView};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiJson;
use crate::error::ErrorBody;
use crate::{ApiError, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct IntegrationJson {
    /// False on Developer/Starter plans: lablink's operator application for gitlab.com is used.
    pub plan_allows_own_app: bool,
    /// The redirect URI to register in GitLab.
    pub redirect_uri: String,
    /// The scope to tick in GitLab.
    pub scope: String,
    pub instance_url: String,
    pub application_id: Option<String>,
    pub has_ca_bundle: bool,
    /// `none`, `pending_authorization` or `ready`.
    pub status: String,
    pub linked_accounts: usize,
}

impl From<IntegrationView> for IntegrationJson {
    fn from(v: IntegrationView) -> Self {
        IntegrationJson {
            plan_allows_own_app: v.plan_allows_own_app,
            redirect_uri: v.redirect_uri,
            scope: v.scope.to_owned(),
            instance_url: v.instance_url,
            application_id: v.application_id,
            has_ca_bundle: v.has_ca_bundle,
            status: match v.status {
                None => "none",
                Some(IntegrationStatus::PendingAuthorization) => "pending_authorization",
                Some(IntegrationStatus::Ready) => "ready",
            }
            .to_owned(),
            linked_accounts: v.linked_accounts,
        }
    }
}

/// The account's GitLab integration (the secret is never returned).
#[utoipa::path(get, path = "/api/v1/integrations/gitlab", tag = "gitlab",
    responses((status = 200, body = IntegrationJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_integration(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<IntegrationJson>, ApiError> {
    let view = state
        .services
        .gitlab_integration_view(&user.principal)
        .await?;
    Ok(Json(view.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct IntegrationBody {
    /// Defaults to `https://gitlab.com`.
    #[serde(default)]
    pub instance_url: String,
    pub application_id: String,
    /// Empty keeps the stored secret.
    #[serde(default)]
    pub secret: String,
    /// PEM certificates of a private CA, for a self-managed instance.
    #[serde(default)]
    pub ca_bundle_pem: String,
}

#[derive(Serialize, ToSchema)]
pub struct SavedJson {
    /// Links made with the previous instance or application, now marked dead.
    pub links_disconnected: usize,
    /// What to do next.
    pub next_step: String,
}

/// Saves the account's GitLab application (enterprise plans, admins). Links made with another
/// instance or application are marked dead; their users must link again.
#[utoipa::path(put, path = "/api/v1/integrations/gitlab", tag = "gitlab", request_body = IntegrationBody,
    responses((status = 200, body = SavedJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn save_integration(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<IntegrationBody>,
) -> Result<Json<SavedJson>, ApiError> {
    let form = IntegrationForm {
        instance_url: body.instance_url,
        application_id: body.application_id,
        secret: SecretString::from(body.secret),
        ca_bundle_pem: body.ca_bundle_pem,
    };
    let saved = state
        .services
        .save_gitlab_integration(&user.principal, None, form)
        .await?;
    Ok(Json(SavedJson {
        links_disconnected: saved.links_disconnected,
        next_step: format!(
            "Open {} in a browser and click \"Authorize at GitLab\" to finish.",
            state
                .services
                .settings
                .public_link("/settings/integrations/gitlab")
        ),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RemovedJson {
    pub links_removed: usize,
    /// Links GitLab could not be told to revoke, each with the reason.
    pub revoke_failures: Vec<String>,
}

/// Removes the account's GitLab application; every link made with it is revoked and deleted.
#[utoipa::path(delete, path = "/api/v1/integrations/gitlab", tag = "gitlab",
    responses((status = 200, body = RemovedJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn remove_integration(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<RemovedJson>, ApiError> {
    let removed = state
        .services
        .remove_gitlab_integration(&user.principal)
        .await?;
    Ok(Json(RemovedJson {
        links_removed: removed.links_removed,
        revoke_failures: removed.revoke_failures,
    }))
}
