//! Git credentials for a developer's local `git` (the `lablink credential` helper): on Enterprise
//! plans the user's own linked GitLab token, so GitLab applies the person's permissions and push
//! rules; on Developer and Starter plans, where the account allows it, the repository's shared
//! credential (its project access token), as the workspace uses. Every issue and refusal is
//! audited; the API's extractor has already applied the account's IP restrictions.

use lablink_core::Plan;
use lablink_store::audit::{AuditEvent, AuditOutcome};
use secrecy::SecretString;
use url::Url;

use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// How long git may keep a shared credential it was given (`password_expiry_utc`): the token
/// itself lives longer, but a caching helper should ask again, so that a revoked permission or a
/// rotated token takes effect soon.
const SHARED_CREDENTIAL_HINT_MS: i64 = 3600 * 1000;

/// What git asks for (git-credential(1): `protocol`, `host`, and `path` when the user set
/// `credential.useHttpPath`).
#[derive(Debug, Clone, Default)]
pub struct CredentialRequest {
    pub protocol: String,
    pub host: String,
    pub path: Option<String>,
}

/// A credential for git, with whose identity GitLab will see.
pub struct GitCredential {
    pub username: String,
    pub password: SecretString,
    /// After this moment (milliseconds since the epoch) git must not use it.
    pub expires_at: i64,
    /// Who GitLab sees, in words ("your GitLab account @alice").
    pub identity: String,
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredential")
            .field("username", &self.username)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The origin git asks about, refused unless it is http(s) with a host.
fn requested_origin(request: &CredentialRequest) -> Result<Url, ServiceError> {
    let protocol = request.protocol.trim();
    if !matches!(protocol, "https" | "http") {
        return Err(ServiceError::BadInput(format!(
            "lablink issues credentials for HTTPS remotes only, not for `{protocol}`."
        )));
    }
    Url::parse(&format!("{protocol}://{}/", request.host.trim()))
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| {
            ServiceError::BadInput(format!(
                "`{}` is not a host name; git sends one like gitlab.example.com.",
                request.host.trim()
            ))
        })
}

/// True when `instance_url` (a GitLab base URL) is served from `origin`.
fn same_origin(instance_url: &str, origin: &Url) -> bool {
    Url::parse(instance_url).is_ok_and(|u| u.origin() == origin.origin())
}

/// The GitLab base path of `instance_url` (empty, or a relative root like `gitlab`).
fn relative_root(instance_url: &str) -> String {
    Url::parse(instance_url)
        .map(|u| u.path().trim_matches('/').to_owned())
        .unwrap_or_default()
}

impl Services {
    /// A credential for `request`, or why there is none; audited either way.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn issue_git_credential(
        &self,
        caller: &Principal,
        request: &CredentialRequest,
    ) -> Result<GitCredential, ServiceError> {
        let target = format!(
            "git {}://{}/{}",
            request.protocol.trim(),
            request.host.trim(),
            request
                .path
                .as_deref()
                .unwrap_or("")
                .trim_start_matches('/')
        );
        let issued = self.git_credential(caller, request).await;
        let (action, outcome, detail) = match &issued {
            Ok(credential) => (
                "git_credential.issued",
                AuditOutcome::Success,
                format!("as {}", credential.identity),
            ),
            Err(e) => (
                "git_credential.refused",
                match e {
                    ServiceError::Forbidden(_) => AuditOutcome::Denied,
                    _ => AuditOutcome::Failure,
                },
                e.to_string(),
            ),
        };
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action,
            outcome,
            target: Some(target),
            detail,
            ..AuditEvent::default()
        })
        .await?;
        issued
    }

    async fn git_credential(
        &self,
        caller: &Principal,
        request: &CredentialRequest,
    ) -> Result<GitCredential, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot use git through lablink; ask an admin for the Developer role.",
        )?;
        let origin = requested_origin(request)?;
        match caller.plan {
            Plan::Enterprise | Plan::EnterprisePlus => self.own_credential(caller, &origin).await,
            Plan::Developer | Plan::Starter => {
                self.shared_credential(caller, &origin, request.path.as_deref())
                    .await
            }
        }
    }

    /// The user's linked GitLab token, refreshed first when it is about to expire.
    async fn own_credential(
        &self,
        caller: &Principal,
        origin: &Url,
    ) -> Result<GitCredential, ServiceError> {
        let fresh = self.gitlab_access_token(&caller.user_id).await?;
        if !same_origin(&fresh.app.instance_url, origin) {
            return Err(ServiceError::NotFound(format!(
                "Your linked GitLab account is on {}, not on {}: lablink has no credential for \
                 this host.",
                fresh.app.instance_url,
                origin.as_str().trim_end_matches('/')
            )));
        }
        Ok(GitCredential {
            // GitLab takes OAuth tokens over HTTPS with the user name `oauth2`.
            username: "oauth2".into(),
            identity: format!("your GitLab account @{}", fresh.gitlab_username),
            password: fresh.token,
            expires_at: fresh.expires_at,
        })
    }

    /// The connected repository's project access token, where the account allows it.
    async fn shared_credential(
        &self,
        caller: &Principal,
        origin: &Url,
        path: Option<&str>,
    ) -> Result<GitCredential, ServiceError> {
        if !self
            .db
            .local_git_shared_credential(&caller.account_id)
            .await?
        {
            return Err(ServiceError::Forbidden(format!(
                "On the {} plan, git goes through each repository's shared GitLab credential, and \
                 your account does not let local git use it. An admin can allow it under Account \
                 settings → Local git; until then, use your own GitLab credentials.",
                caller.plan.label()
            )));
        }
        let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
            return Err(ServiceError::BadInput(format!(
                "On the {} plan lablink needs to know the repository: run `git config --global \
                 credential.{}.useHttpPath true` so that git sends its path.",
                caller.plan.label(),
                origin.as_str().trim_end_matches('/')
            )));
        };
        let not_connected = || {
            ServiceError::NotFound(format!(
                "No repository at {}{} is connected in your lablink account.",
                origin.as_str(),
                path.trim().trim_start_matches('/')
            ))
        };
        let repository = self
            .repository_at(&caller.account_id, origin, path)
            .await?
            .ok_or_else(not_connected)?;
        let secrets = self
            .db
            .repository_secrets(&self.keys, &repository.id)
            .await?;
        let Some(token) = secrets.project_token else {
            return Err(ServiceError::Conflict(format!(
                "{} has no project access token (GitLab.com Free namespaces have none): its \
                 shared credential is an SSH deploy key, which lablink does not hand out. Use your \
                 own GitLab credentials, or the lablink workspace.",
                repository.path_with_namespace
            )));
        };
        Ok(GitCredential {
            username: repository
                .project_token_username
                .clone()
                .unwrap_or_else(|| "lablink".into()),
            identity: format!(
                "the shared project access token of {}{}",
                repository.path_with_namespace,
                repository
                    .project_token_username
                    .as_deref()
                    .map(|u| format!(" (GitLab user @{u})"))
                    .unwrap_or_default()
            ),
            password: token,
            expires_at: lablink_store::now_ms() + SHARED_CREDENTIAL_HINT_MS,
        })
    }

    /// The account's connected repository that git's `path` names on `origin`: `group/project.git`,
    /// after the instance's relative root when it has one (`gitlab/group/project.git`).
    async fn repository_at(
        &self,
        account_id: &str,
        origin: &Url,
        path: &str,
    ) -> Result<Option<lablink_store::repositories::Repository>, ServiceError> {
        let path = path.trim().trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        // Longest first: a group may be named like a relative root.
        for start in 0..segments.len().saturating_sub(1) {
            let candidate = segments[start..].join("/");
            let Some(repository) = self
                .db
                .connected_repository_by_path(account_id, &candidate)
                .await?
            else {
                continue;
            };
            if same_origin(&repository.gitlab_instance_url, origin)
                && relative_root(&repository.gitlab_instance_url) == segments[..start].join("/")
            {
                return Ok(Some(repository));
            }
        }
        Ok(None)
    }

    /// Whether the account's developers' local git may use repositories' shared credential.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn local_git_shared_credential(
        &self,
        caller: &Principal,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .db
            .local_git_shared_credential(&caller.account_id)
            .await?)
    }

    /// Lets (or stops letting) the account's local git use repositories' shared credential.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn set_local_git_shared_credential(
        &self,
        admin: &Principal,
        allowed: bool,
    ) -> Result<(), ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins can change how local git authenticates.",
        )?;
        self.db
            .set_local_git_shared_credential(&admin.account_id, allowed)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: if allowed {
                "local_git.shared_credential_allowed"
            } else {
                "local_git.shared_credential_disallowed"
            },
            target: Some("local git".into()),
            detail: String::new(),
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }
}

impl Services {
    /// The GitLab whose git remotes the caller's local git should ask lablink about: the
    /// account's application's instance.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn local_git_gitlab_url(&self, caller: &Principal) -> Result<String, ServiceError> {
        Ok(self
            .app_for_new_links(&caller.account_id, caller.plan)
            .await?
            .instance_url)
    }
}
