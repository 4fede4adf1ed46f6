//! Who posts a repository's commit statuses and merge request notes. Normally lablink's project
//! access token (GitLab shows its bot). gitlab.com Free has no project access tokens: there a
//! Maintainer may choose to have them posted through their own linked GitLab account, and GitLab
//! then shows them as that person. Off by default; unlinking the account turns it off and leaves
//! a warning on the repository page.

use lablink_core::AccessLevel;
use lablink_store::audit::AuditEvent;
use lablink_store::repositories::Repository;

use super::UserGitLab;
use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// Who posts a repository's statuses and notes, as its page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostingIdentity {
    /// lablink's project access token; GitLab shows its bot user.
    ProjectBot { username: Option<String> },
    /// A Maintainer's linked account (gitlab.com Free); GitLab shows that person.
    Maintainer { username: String },
    /// Nothing reaches GitLab.
    Nobody,
}

impl PostingIdentity {
    pub fn of(repository: &Repository) -> PostingIdentity {
        if repository.status_reporting && repository.project_token_id.is_some() {
            PostingIdentity::ProjectBot {
                username: repository.project_token_username.clone(),
            }
        } else if let (Some(_), Some(username)) =
            (&repository.post_as_user_id, &repository.post_as_username)
        {
            PostingIdentity::Maintainer {
                username: username.clone(),
            }
        } else {
            PostingIdentity::Nobody
        }
    }
}

/// Fails unless `gitlab`'s user is a Maintainer (or Owner) of GitLab project `project_id`
/// (`path` names it), checked now; `to` says what for.
pub(crate) async fn require_gitlab_maintainer(
    gitlab: &UserGitLab,
    project_id: i64,
    path: &str,
    to: &str,
) -> Result<AccessLevel, ServiceError> {
    let level = gitlab
        .api
        .member_all(project_id, gitlab.gitlab_user_id)
        .await?
        .map_or(0, |m| m.access_level);
    let role = AccessLevel::try_from(u8::try_from(level).unwrap_or(0)).ok();
    require(
        level >= i64::from(AccessLevel::Maintainer.value()),
        &format!(
            "Only a Maintainer of {path} in GitLab may {to}; your GitLab account @{} has the {} \
             role there.",
            gitlab.username,
            role.map_or("no", AccessLevel::label)
        ),
    )?;
    Ok(role.unwrap_or(AccessLevel::Maintainer))
}

impl Services {
    /// Turns posting through the caller's own linked GitLab account on (`true`) or off for the
    /// project's repository. On needs a repository without a project access token and the
    /// caller a Maintainer of it in GitLab (checked now); any writer may turn it off.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn set_posting_as_me(
        &self,
        caller: &Principal,
        project_id: &str,
        on: bool,
        client_ip: Option<&str>,
    ) -> Result<Repository, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot change who posts statuses.",
        )?;
        let repository = self
            .project_repository(caller, project_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound("The project has no connected repository.".into())
            })?;
        let detail = if on {
            if let PostingIdentity::ProjectBot { username } = PostingIdentity::of(&repository) {
                return Err(ServiceError::Conflict(format!(
                    "lablink's project access token posts this repository's statuses and notes \
                     (as its bot{}); posting as a person is only for GitLab plans without \
                     project access tokens.",
                    username.map(|u| format!(" @{u}")).unwrap_or_default()
                )));
            }
            let gitlab = self.user_gitlab(caller).await?;
            require_gitlab_maintainer(
                &gitlab,
                repository.gitlab_project_id,
                &repository.path_with_namespace,
                "have statuses and notes posted as themselves",
            )
            .await?;
            self.db
                .set_post_as(&repository.id, Some((&caller.user_id, &gitlab.username)))
                .await?;
            format!(
                "statuses and notes of {} posted as @{}",
                repository.path_with_namespace, gitlab.username
            )
        } else {
            self.db.set_post_as(&repository.id, None).await?;
            format!(
                "statuses and notes of {} no longer posted as a person",
                repository.path_with_namespace
            )
        };
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: if on {
                "repository.post_as.enabled"
            } else {
                "repository.post_as.disabled"
            },
            detail,
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        self.project_repository(caller, project_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound("The project has no connected repository.".into())
            })
    }
}
