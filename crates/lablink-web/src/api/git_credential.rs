//! `/api/v1/git-credential`: what the `lablink credential` helper asks for. `GET` says which
//! GitLab to configure git for; `POST` issues a credential for one git request (audited, and
//! refused from addresses the account's IP restrictions deny, like every API call).

use axum::Json;
use axum::extract::State;
use lablink_service::git_credentials::CredentialRequest;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct LocalGitSetup {
    /// The GitLab instance (`https://gitlab.example.com`) git should ask lablink about.
    pub gitlab_url: String,
    /// True on plans whose git goes through a repository's shared credential: git must send
    /// the repository's path (`credential.useHttpPath`).
    pub needs_repository_path: bool,
}

/// How the caller's local git should be configured.
#[utoipa::path(get, path = "/api/v1/git-credential", tag = "git",
    responses((status = 200, body = LocalGitSetup), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn setup(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<LocalGitSetup>, ApiError> {
    let gitlab_url = state.services.local_git_gitlab_url(&user.principal).await?;
    Ok(Json(LocalGitSetup {
        gitlab_url,
        needs_repository_path: !user.principal.plan.allows_own_gitlab_app(),
    }))
}

/// What git asks (git-credential(1)).
#[derive(Deserialize, ToSchema)]
pub struct CredentialBody {
    /// `https` (or `http` for a GitLab served without TLS).
    pub protocol: String,
    /// Host and port, as git sends it (`gitlab.example.com`).
    pub host: String,
    /// The repository's path (`group/project.git`), sent when git's `useHttpPath` is set.
    pub path: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GitCredentialJson {
    pub username: String,
    pub password: String,
    /// Unix time (seconds) after which git must not use the credential.
    pub password_expiry_utc: i64,
    /// Whom GitLab will see.
    pub identity: String,
}

/// A short-lived credential for one git request: the linked GitLab account's token (Enterprise)
/// or the repository's shared credential where the account allows it (Developer, Starter).
#[utoipa::path(post, path = "/api/v1/git-credential", tag = "git", request_body = CredentialBody,
    responses((status = 200, body = GitCredentialJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn issue(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<CredentialBody>,
) -> Result<Json<GitCredentialJson>, ApiError> {
    let credential = state
        .services
        .issue_git_credential(
            &user.principal,
            &CredentialRequest {
                protocol: body.protocol,
                host: body.host,
                path: body.path,
            },
        )
        .await?;
    Ok(Json(GitCredentialJson {
        username: credential.username,
        password: credential.password.expose_secret().to_owned(),
        password_expiry_utc: credential.expires_at / 1000,
        identity: credential.identity,
    }))
}
