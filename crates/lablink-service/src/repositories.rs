//! Project → Repository: connecting a dbt project to a repository in a GitLab group, all or
//! nothing, and disconnecting it again. The import list is in [`import_list`], the HTTPS clone
//! into the per-repository bare cache in [`fetch`].
//!
//! Connecting creates, in order: the webhook, the project access token (for commit statuses), a
//! read-only deploy token (HTTPS clone) and, where configured, an SSH deploy key with write access.
//! When a step fails, whatever was already created is removed again in reverse order, and the row
//! ends `failed` without secrets: nothing half-made stays in GitLab or here. Each GitLab id is
//! stored on the row the moment GitLab returns it, so a connect cut short by a crash is rolled
//! back later by [`Services::recover_stale_connections`].

pub use lablink_store::repositories::{Repository, RepositoryStatus};

pub mod fetch;
pub mod import_list;
pub mod posting;
pub mod ssh_address;
pub mod ssh_key;

use crate::rotation::new_expiry;
use base64::Engine as _;
use lablink_core::Plan;
use lablink_core::names::project_access_token_name;
use lablink_gitlab::api::{HookSpec, NewAccessToken};
use lablink_gitlab::{Api, GitLabError};
use lablink_store::audit::AuditEvent;
use lablink_store::repositories::{
    self as store, Connected, DeployKey, GitLabObject, NewRepository, ProjectToken,
};
use rand::RngCore;
use secrecy::SecretString;

use crate::error::require;
use crate::secrets::random_secret;
use crate::{Principal, ServiceError, Services};

/// Shown instead of Connect, and as the refusal, below Maintainer.
pub const MAINTAINER_REQUIRED: &str =
    "You need the Maintainer role in GitLab to connect this repository";
/// The persistent warning of a connection without a project access token.
pub const NO_STATUS_REPORTING: &str = "CI status cannot be reported back to GitLab: project access tokens are not available on this GitLab plan";
/// GitLab's 400 when project access tokens are not available (gitlab.com Free).
const PLAN_REFUSES_TOKENS: &str = "does not have permission to create project access token";
/// Maintainer: statuses can be posted to protected branches.
pub(crate) const TOKEN_ACCESS_LEVEL: i64 = 40;
pub(crate) const TOKEN_SCOPES: &[&str] = &["api", "self_rotate"];
pub(crate) const MAX_TOKEN_DAYS: u32 = 365;
pub(crate) const DEPLOY_TOKEN_NAME: &str = "lablink";
pub(crate) const DEPLOY_KEY_TITLE: &str = "lablink";
/// A connect that made no progress for this long belongs to a process that stopped.
pub const STALE_CONNECT_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// The reason on a connection rolled back after its process stopped.
pub const STOPPED_WHILE_CONNECTING: &str =
    "lablink stopped while connecting; everything it had created in GitLab was removed";
const CANCELLED_WHILE_CONNECTING: &str =
    "The connection was cancelled while it was being made; nothing was connected.";

/// A user's GitLab: an API client with their fresh token, and their GitLab user id.
pub(crate) struct UserGitLab {
    pub api: Api,
    pub gitlab_user_id: i64,
    pub username: String,
    pub instance_url: String,
}

/// One step of connecting, named as the user reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Webhook,
    ProjectAccessToken,
    DeployToken,
    DeployKey,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Step::Webhook => "creating the webhook",
            Step::ProjectAccessToken => "creating the project access token",
            Step::DeployToken => "creating the deploy token",
            Step::DeployKey => "adding the SSH deploy key",
        }
    }
}

/// Something created in GitLab, to remove again.
#[derive(Debug, Clone, Copy)]
enum Created {
    Hook(i64),
    ProjectToken(i64),
    DeployToken(i64),
    DeployKey(i64),
}

impl Created {
    /// What the repository row says was created, in creation order.
    fn recorded_on(repo: &Repository) -> Vec<Created> {
        [
            repo.hook_id.map(Created::Hook),
            repo.project_token_id.map(Created::ProjectToken),
            repo.deploy_token_id.map(Created::DeployToken),
            repo.deploy_key_id.map(Created::DeployKey),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn stored_as(self) -> (GitLabObject, i64) {
        match self {
            Created::Hook(id) => (GitLabObject::Hook, id),
            Created::ProjectToken(id) => (GitLabObject::ProjectToken, id),
            Created::DeployToken(id) => (GitLabObject::DeployToken, id),
            Created::DeployKey(id) => (GitLabObject::DeployKey, id),
        }
    }

    fn describe(self) -> String {
        match self {
            Created::Hook(id) => format!("webhook {id} (Settings → Webhooks)"),
            Created::ProjectToken(id) => {
                format!("project access token {id} (Settings → Access tokens)")
            }
            Created::DeployToken(id) => format!("deploy token {id} (Settings → Repository)"),
            Created::DeployKey(id) => format!("deploy key {id} (Settings → Repository)"),
        }
    }

    /// Removes it; already gone (404) counts as removed.
    async fn remove(self, api: &Api, project: i64) -> Result<(), GitLabError> {
        let result = match self {
            Created::Hook(id) => api.delete_hook(project, id).await,
            Created::ProjectToken(id) => api.revoke_project_access_token(project, id).await,
            Created::DeployToken(id) => api.delete_deploy_token(project, id).await,
            Created::DeployKey(id) => api.delete_deploy_key(project, id).await,
        };
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

/// Removes everything in `created`, newest first; what could not be removed, with why.
async fn remove_all(api: &Api, project: i64, created: &[Created]) -> Vec<String> {
    let mut left = Vec::new();
    for item in created.iter().rev() {
        if let Err(e) = item.remove(api, project).await {
            tracing::warn!(gitlab_project_id = project, item = %item.describe(), error = %e, "could not remove from GitLab");
            left.push(format!("{}: {e}", item.describe()));
        }
    }
    left
}

/// `whsec_` and 32 random bytes in base64: the Standard Webhooks signing secret format.
pub(crate) fn signing_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    SecretString::from(format!("whsec_{encoded}"))
}

/// Why creating in GitLab stopped before the end.
enum Interrupted {
    Step(Step, GitLabError),
    /// Keeping the created id failed, or the recovery took the row over.
    Lost(ServiceError),
}

fn step_failed(step: Step, err: &GitLabError, left: &[String]) -> ServiceError {
    let cleanup = if left.is_empty() {
        "Everything lablink had created in GitLab was removed again; nothing was connected."
            .to_owned()
    } else {
        format!(
            "lablink could not remove these from GitLab; please delete them there: {}.",
            left.join("; ")
        )
    };
    ServiceError::Remote(format!(
        "Connecting failed while {}: {err}. {cleanup}",
        step.label()
    ))
}

/// The GitLab project, if it can be connected by this user: in a group, and the user is a
/// Maintainer of it (inherited membership counts).
async fn connectable_project(
    api: &Api,
    gitlab_user_id: i64,
    gitlab_project_id: i64,
) -> Result<lablink_gitlab::api::Project, ServiceError> {
    let found = api.project(gitlab_project_id).await?;
    if !found.in_group() {
        return Err(ServiceError::BadInput(format!(
            "{} is in a personal namespace. lablink connects repositories in GitLab groups only: \
             move it into a group (GitLab → Settings → General → Advanced → Transfer project).",
            found.path_with_namespace
        )));
    }
    let level = api
        .member_all(found.id, gitlab_user_id)
        .await?
        .map_or(0, |m| m.access_level);
    require(level >= TOKEN_ACCESS_LEVEL, MAINTAINER_REQUIRED)?;
    Ok(found)
}

/// What a disconnect did.
#[derive(Debug, Clone)]
pub struct Disconnected {
    pub repository: Repository,
}

impl Services {
    /// The caller's linked GitLab account, ready to call the API as them.
    pub(crate) async fn user_gitlab(&self, caller: &Principal) -> Result<UserGitLab, ServiceError> {
        self.user_gitlab_of(&caller.user_id).await
    }

    /// A user's linked GitLab account (for work done on their behalf in the background).
    pub(crate) async fn user_gitlab_of(&self, user_id: &str) -> Result<UserGitLab, ServiceError> {
        let fresh = self.gitlab_access_token(user_id).await?;
        let link = self
            .db
            .gitlab_link_of_user(&self.keys, user_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(
                    "No GitLab account is linked. Link one under Profile → Linked accounts."
                        .to_owned(),
                )
            })?;
        Ok(UserGitLab {
            api: Api::bearer(&fresh.app.instance, fresh.token),
            gitlab_user_id: link.gitlab_user_id,
            username: link.gitlab_username,
            instance_url: fresh.app.instance_url,
        })
    }

    /// The project's current connection, if any.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn project_repository(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Option<Repository>, ServiceError> {
        let project = self.project(caller, project_id).await?;
        Ok(self.db.live_repository_of_project(&project.id).await?)
    }

    /// Every connection the project ever had, newest first (history kept across moves).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn project_repository_history(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Vec<Repository>, ServiceError> {
        let project = self.project(caller, project_id).await?;
        Ok(self.db.repositories_of_project(&project.id).await?)
    }

    /// Connects the project to GitLab project `gitlab_project_id`, all or nothing.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
            gitlab_project_id = gitlab_project_id,
        ),
    )]
    pub async fn connect_repository(
        &self,
        caller: &Principal,
        project_id: &str,
        gitlab_project_id: i64,
        client_ip: Option<&str>,
    ) -> Result<Repository, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot connect repositories.",
        )?;
        let project = self.project(caller, project_id).await?;
        let gitlab = self.user_gitlab(caller).await?;
        if let Some(elsewhere) = self
            .db
            .live_connections(&caller.account_id)
            .await?
            .into_iter()
            .find(|c| {
                c.gitlab_project_id == gitlab_project_id
                    && c.gitlab_instance_url == gitlab.instance_url
            })
        {
            return Err(ServiceError::Conflict(format!(
                "This GitLab repository is already connected to the project {}: one repository \
                 has one lablink project (its webhook, tokens and CI jobs are there). Open that \
                 project, or disconnect it there first.",
                elsewhere.project_name
            )));
        }
        let api = &gitlab.api;
        let found = connectable_project(api, gitlab.gitlab_user_id, gitlab_project_id).await?;
        // GitLab's answer decides where lablink's git goes later: it must be GitLab itself.
        self.gitlab_instance(&gitlab.instance_url, None)?
            .git_addresses(&found.http_url_to_repo)
            .await?;
        let default_branch = found
            .default_branch
            .clone()
            .unwrap_or_else(|| "main".into());
        let ssh_url = found
            .ssh_url_to_repo
            .as_deref()
            .and_then(|given| ssh_address::checked(&gitlab.instance_url, given));
        let row = self
            .db
            .begin_repository_connection(&NewRepository {
                account_id: &caller.account_id,
                project_id: &project.id,
                gitlab_instance_url: &gitlab.instance_url,
                gitlab_project_id: found.id,
                path_with_namespace: &found.path_with_namespace,
                default_branch: &default_branch,
                http_url_to_repo: &found.http_url_to_repo,
                ssh_url_to_repo: ssh_url.as_deref(),
                web_url: &found.web_url,
                connected_by: &caller.user_id,
            })
            .await?;
        let mut created = Vec::new();
        let connected = match self
            .create_in_gitlab(api, &row, caller.plan, &mut created)
            .await
        {
            Ok(connected) => connected,
            Err(interrupted) => {
                return Err(self
                    .roll_back_connect(api, &row, &created, interrupted)
                    .await);
            }
        };
        if !self
            .db
            .complete_repository_connection(&self.keys, &row.id, &connected)
            .await?
        {
            remove_all(api, found.id, &created).await;
            return Err(ServiceError::Conflict(
                CANCELLED_WHILE_CONNECTING.to_owned(),
            ));
        }
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "repository.connected",
            target: Some(format!("repository {}", found.path_with_namespace)),
            detail: format!(
                "project “{}” connected to {} (GitLab project {}, repository {})",
                project.name, found.path_with_namespace, found.id, row.id
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        self.db
            .repository(&row.id)
            .await?
            .ok_or_else(|| ServiceError::Internal("the connected repository vanished".into()))
    }

    /// Removes what a failed connect created in GitLab and ends the row as failed; the error
    /// says which step failed and what could not be removed.
    async fn roll_back_connect(
        &self,
        api: &Api,
        row: &Repository,
        created: &[Created],
        interrupted: Interrupted,
    ) -> ServiceError {
        let left = remove_all(api, row.gitlab_project_id, created).await;
        if let Err(e) = self
            .db
            .end_repository_connection(&row.id, store::ConnectionEnd::Failed)
            .await
        {
            return e.into();
        }
        match interrupted {
            Interrupted::Step(step, err) => {
                tracing::warn!(repository_id = %row.id, step = step.label(), error = %err, "connect failed");
                step_failed(step, &err, &left)
            }
            Interrupted::Lost(e) => e,
        }
    }

    /// Pushes `item` to `created` and stores its id on the row before the next step.
    async fn keep(
        &self,
        row: &Repository,
        item: Created,
        created: &mut Vec<Created>,
    ) -> Result<(), Interrupted> {
        created.push(item);
        let (object, id) = item.stored_as();
        match self.db.record_repository_object(&row.id, object, id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Interrupted::Lost(ServiceError::Conflict(
                CANCELLED_WHILE_CONNECTING.to_owned(),
            ))),
            Err(e) => Err(Interrupted::Lost(e.into())),
        }
    }

    /// The GitLab side of connecting; every created thing is kept (see [`Self::keep`]) at once.
    async fn create_in_gitlab(
        &self,
        api: &Api,
        row: &Repository,
        plan: Plan,
        created: &mut Vec<Created>,
    ) -> Result<Connected, Interrupted> {
        let hook_secret = SecretString::from(random_secret());
        let (hook_id, signing_token) = self.create_webhook(api, row, &hook_secret, created).await?;
        let (project_token, status_warning) = self.create_project_token(api, row, created).await?;
        let deploy = api
            .create_deploy_token(row.gitlab_project_id, DEPLOY_TOKEN_NAME, None, None)
            .await
            .map_err(|e| Interrupted::Step(Step::DeployToken, e))?;
        self.keep(row, Created::DeployToken(deploy.info.id), created)
            .await?;
        // Where GitLab has no project access tokens (gitlab.com Free), the workspace of a plan
        // that pushes with the repository's shared credential pushes with a deploy key: only
        // then does the key get write access.
        let pushes_with_key = project_token.is_none()
            && !plan.allows_own_gitlab_app()
            && row.ssh_url_to_repo.is_some();
        let deploy_key = if self.settings.repositories.deploy_keys || pushes_with_key {
            Some(
                self.create_deploy_key(api, row, pushes_with_key, created)
                    .await?,
            )
        } else {
            None
        };
        Ok(Connected {
            hook_id,
            hook_secret,
            signing_token,
            project_token,
            status_warning,
            deploy_token_id: deploy.info.id,
            deploy_token_username: deploy.info.username,
            deploy_token: deploy.token,
            deploy_key,
        })
    }

    /// The webhook with its secret and signing token; the signing token is kept only when GitLab
    /// has them (instances before 19.0 ignore the field).
    async fn create_webhook(
        &self,
        api: &Api,
        row: &Repository,
        secret: &SecretString,
        created: &mut Vec<Created>,
    ) -> Result<(i64, Option<SecretString>), Interrupted> {
        let signing = signing_token();
        let hook = api
            .create_hook(
                row.gitlab_project_id,
                &HookSpec {
                    url: self.webhook_url(&row.id),
                    token: Some(secret.clone()),
                    signing_token: Some(signing.clone()),
                    merge_requests_events: true,
                    push_events: true,
                    enable_ssl_verification: true,
                },
            )
            .await
            .map_err(|e| Interrupted::Step(Step::Webhook, e))?;
        self.keep(row, Created::Hook(hook.id), created).await?;
        Ok((
            hook.id,
            (hook.signing_token_present == Some(true)).then_some(signing),
        ))
    }

    /// The project access token that posts commit statuses; where the plan has none (gitlab.com
    /// Free), no token and the warning that says so.
    async fn create_project_token(
        &self,
        api: &Api,
        row: &Repository,
        created: &mut Vec<Created>,
    ) -> Result<(Option<ProjectToken>, Option<String>), Interrupted> {
        let expires_at = new_expiry(self.settings.repositories.project_token_days);
        let name = project_access_token_name(row.gitlab_project_id);
        let issued = match api
            .create_project_access_token(
                row.gitlab_project_id,
                &NewAccessToken {
                    name: &name,
                    scopes: TOKEN_SCOPES,
                    access_level: TOKEN_ACCESS_LEVEL,
                    expires_at,
                },
            )
            .await
        {
            Ok(issued) => issued,
            Err(GitLabError::BadRequest { message }) if message.contains(PLAN_REFUSES_TOKENS) => {
                return Ok((None, Some(NO_STATUS_REPORTING.to_owned())));
            }
            Err(e) => return Err(Interrupted::Step(Step::ProjectAccessToken, e)),
        };
        self.keep(row, Created::ProjectToken(issued.info.id), created)
            .await?;
        let token = ProjectToken {
            id: issued.info.id,
            token: issued.token,
            expires_on: issued
                .info
                .expires_at
                .unwrap_or(expires_at)
                .format("%Y-%m-%d")
                .to_string(),
            user_id: issued.info.user_id,
            username: None,
        };
        Ok((Some(token), None))
    }

    /// An ed25519 SSH deploy key, with write access when `can_push`.
    async fn create_deploy_key(
        &self,
        api: &Api,
        row: &Repository,
        can_push: bool,
        created: &mut Vec<Created>,
    ) -> Result<DeployKey, Interrupted> {
        let key = ssh_key::generate();
        let added = api
            .create_deploy_key(
                row.gitlab_project_id,
                DEPLOY_KEY_TITLE,
                &key.public,
                can_push,
            )
            .await
            .map_err(|e| Interrupted::Step(Step::DeployKey, e))?;
        self.keep(row, Created::DeployKey(added.id), created)
            .await?;
        Ok(DeployKey {
            id: added.id,
            public: key.public,
            fingerprint: key.fingerprint,
            private: key.private,
        })
    }

    /// Disconnects the project's repository: removes the webhook, revokes the project access
    /// token, deletes the deploy token and key in GitLab (already gone is fine), deletes the
    /// secrets here, and keeps the project with its jobs and runs.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn disconnect_repository(
        &self,
        caller: &Principal,
        project_id: &str,
        client_ip: Option<&str>,
    ) -> Result<Disconnected, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot disconnect repositories.",
        )?;
        let project = self.project(caller, project_id).await?;
        let repo = self
            .db
            .live_repository_of_project(&project.id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound("This project has no connected repository.".to_owned())
            })?;
        let gitlab = self.user_gitlab(caller).await?;
        let created = Created::recorded_on(&repo);
        let left = remove_all(&gitlab.api, repo.gitlab_project_id, &created).await;
        if !left.is_empty() {
            return Err(ServiceError::Remote(format!(
                "GitLab refused to remove: {}. The repository stays connected; try again, or remove \
                 these in GitLab and disconnect again.",
                left.join("; ")
            )));
        }
        self.db
            .end_repository_connection(&repo.id, store::ConnectionEnd::Disconnected)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "repository.disconnected",
            target: Some(format!("repository {}", repo.path_with_namespace)),
            detail: format!(
                "project “{}” disconnected from {} (GitLab project {}, repository {})",
                project.name, repo.path_with_namespace, repo.gitlab_project_id, repo.id
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        let repository = self
            .db
            .repository(&repo.id)
            .await?
            .ok_or_else(|| ServiceError::Internal("the repository row vanished".into()))?;
        Ok(Disconnected { repository })
    }

    /// Rolls back every connect that made no progress for `older_than` (its process stopped):
    /// the row ends `failed` without secrets, so the project can be connected again, and what
    /// it had created in GitLab is removed as the connecting user. What could not be removed is
    /// listed on the row (`status_warning`) for an admin. Returns how many were rolled back.
    #[tracing::instrument(skip_all)]
    pub async fn recover_stale_connections(
        &self,
        older_than: std::time::Duration,
    ) -> Result<usize, ServiceError> {
        let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let before = lablink_store::now_ms().saturating_sub(age);
        let mut recovered = 0;
        for row in self.db.stale_repository_connections(before).await? {
            let created = Created::recorded_on(&row);
            let pending: Vec<String> = created.iter().map(|c| c.describe()).collect();
            // Taken over first, with the ids still listed: should this process stop too, the
            // row already says what may be left in GitLab.
            let taken = self
                .db
                .fail_stale_repository_connection(
                    &row.id,
                    before,
                    &format!(
                        "lablink stopped while connecting; still to remove from GitLab: {}",
                        pending.join("; ")
                    ),
                )
                .await?;
            if !taken {
                continue;
            }
            let left = match self.rollback_api(&row).await {
                Ok(api) => remove_all(&api, row.gitlab_project_id, &created).await,
                Err(why) => pending.iter().map(|p| format!("{p}: {why}")).collect(),
            };
            let reason = if left.is_empty() {
                STOPPED_WHILE_CONNECTING.to_owned()
            } else {
                format!(
                    "lablink stopped while connecting and could not remove these from GitLab; \
                     please delete them there: {}.",
                    left.join("; ")
                )
            };
            self.db
                .set_repository_status_warning(&row.id, &reason)
                .await?;
            tracing::warn!(repository_id = %row.id, left = left.len(), "rolled back a connect whose process stopped");
            self.audit(AuditEvent {
                account_id: Some(&row.account_id),
                actor_user_id: None,
                action: "repository.connect_rolled_back",
                outcome: lablink_store::audit::AuditOutcome::Failure,
                target: Some(format!("repository {}", row.path_with_namespace)),
                detail: format!(
                    "connecting {} (GitLab project {}, repository {}): {reason}",
                    row.path_with_namespace, row.gitlab_project_id, row.id
                ),
                client_ip: None,
                ..AuditEvent::default()
            })
            .await?;
            recovered += 1;
        }
        Ok(recovered)
    }

    /// GitLab as the user who started the connect, on the instance the row belongs to.
    async fn rollback_api(&self, row: &Repository) -> Result<Api, ServiceError> {
        let user = row.connected_by.as_deref().ok_or_else(|| {
            ServiceError::NotFound("nobody is recorded as connecting it".to_owned())
        })?;
        let fresh = self.gitlab_access_token(user).await?;
        if fresh.app.instance_url != row.gitlab_instance_url {
            return Err(ServiceError::Conflict(format!(
                "the connecting user's GitLab is now {}, not {}",
                fresh.app.instance_url, row.gitlab_instance_url
            )));
        }
        Ok(Api::bearer(&fresh.app.instance, fresh.token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn signing_tokens_have_the_standard_webhooks_format() {
        let token = signing_token();
        let encoded = token.expose_secret().strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(token.expose_secret(), signing_token().expose_secret());
    }
}
