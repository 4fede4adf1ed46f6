//! Project access token rotation.
//!
//! The token rotates itself (`POST .../access_tokens/self/rotate`) ahead of expiry, keeping its
//! name. GitLab revokes the old token the moment it answers, so the new one is stored in the same
//! statement that ends the rotation. Before asking, the row is marked (`rotating_since`); a mark
//! still present later means the answer was lost: the stored token is then revoked and the new
//! one unknown. Rotating again with the old token would make GitLab revoke the whole token family,
//! so recovery never does that: it re-creates the token through the connecting Maintainer's
//! linked account, or says exactly what to do.
//!
//! Scheduling reads only the due tokens (an indexed range on the expiry date) and enqueues one
//! job per token; a job names the token it rotates, so running it twice, or after someone else
//! rotated, does nothing. A token that needs a person is marked and not scheduled again until
//! its repository row changes.

use chrono::{Duration, NaiveDate, Utc};
use lablink_core::names::project_access_token_name;
use lablink_gitlab::api::NewAccessToken;
use lablink_gitlab::{Api, GitLabError};
use lablink_store::queue::Task;
use lablink_store::repositories::{ProjectToken, Repository, RepositoryStatus};
use secrecy::SecretString;

use crate::repositories::{MAX_TOKEN_DAYS, TOKEN_ACCESS_LEVEL, TOKEN_SCOPES};
use crate::{ServiceError, Services};

/// The job kind that rotates one repository's project access token.
const ROTATE_ATTEMPTS: i64 = 5;
/// At most this many jobs are enqueued per scheduling pass; the rest wait for the next pass.
const SCHEDULE_BATCH: i64 = 1000;

/// What one rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated by lablink: the new token is stored.
    Rotated { token_id: i64, expires_on: String },
    /// The token was lost (revoked, rotated outside lablink, or a rotation's answer was lost)
    /// and a new one was created through the Maintainer's linked account.
    Recreated { token_id: i64, expires_on: String },
    /// Nothing to do: the repository or token changed meanwhile, or another rotation is running.
    Skipped(String),
    /// lablink cannot repair it alone; the message says exactly what to do.
    NeedsAction(String),
}

/// The day a token created or rotated today should expire.
pub(crate) fn new_expiry(days: u32) -> NaiveDate {
    (Utc::now() + Duration::days(i64::from(days.clamp(1, MAX_TOKEN_DAYS)))).date_naive()
}

fn format_day(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl Services {
    /// The API client for a repository's GitLab with `token` (a project access token).
    pub(crate) async fn repository_api(
        &self,
        repo: &Repository,
        token: SecretString,
    ) -> Result<Api, ServiceError> {
        let ca = self
            .db
            .gitlab_integration(&self.keys, &repo.account_id)
            .await?
            .filter(|i| i.instance_url == repo.gitlab_instance_url)
            .and_then(|i| i.ca_bundle_pem);
        let instance = self.gitlab_instance(&repo.gitlab_instance_url, ca.as_deref())?;
        Ok(Api::private_token(&instance, token))
    }

    /// The connecting user's linked account, as a client (for repairs a project token cannot do).
    pub(crate) async fn connector_api(&self, repo: &Repository) -> Result<Api, ServiceError> {
        let user = repo.connected_by.as_deref().ok_or_else(|| {
            ServiceError::NotFound("Nobody is recorded as having connected this repository.".into())
        })?;
        let fresh = self.gitlab_access_token(user).await?;
        Ok(Api::bearer(&fresh.app.instance, fresh.token))
    }

    /// Enqueues one rotation job per connected token expiring within `margin_days`. Costs work
    /// proportional to the tokens due. Returns how many jobs were enqueued.
    #[tracing::instrument(skip_all)]
    pub async fn schedule_token_rotations(&self, margin_days: i64) -> Result<usize, ServiceError> {
        let due_on = format_day((Utc::now() + Duration::days(margin_days)).date_naive());
        let due = self
            .db
            .tokens_due_for_rotation(&due_on, SCHEDULE_BATCH)
            .await?;
        let now = lablink_store::now_ms();
        for token in &due {
            let task = Task::RotateProjectToken {
                repository_id: token.repository_id.clone(),
                project_token_id: token.project_token_id,
            };
            self.db.enqueue(&task, ROTATE_ATTEMPTS, now).await?;
        }
        Ok(due.len())
    }

    /// Queues the repair of a project access token that GitLab refused on use (401: revoked,
    /// expired or rotated by someone in GitLab). The rotation job finds the token dead and
    /// re-creates it through the connecting Maintainer's link, or logs what to do; a job for a
    /// token that was already replaced does nothing, so queuing it more than once is harmless.
    pub(crate) async fn repair_rejected_project_token(
        &self,
        repository_id: &str,
    ) -> Result<(), ServiceError> {
        let Some(token_id) = self
            .db
            .repository(repository_id)
            .await?
            .and_then(|r| r.project_token_id)
        else {
            return Ok(());
        };
        let task = Task::RotateProjectToken {
            repository_id: repository_id.to_owned(),
            project_token_id: token_id,
        };
        self.enqueue(task, ROTATE_ATTEMPTS).await
    }

    /// The rotation job: a token lablink cannot replace alone is logged with what to do (the
    /// doctor reports it too) and marked, so the schedule leaves it alone until its repository
    /// changes (a repair, a new token) instead of enqueuing a job each pass that fails again.
    pub(crate) async fn run_rotation_task(
        &self,
        repository_id: &str,
        project_token_id: i64,
    ) -> Result<(), ServiceError> {
        match self
            .rotate_project_token(repository_id, project_token_id)
            .await?
        {
            Rotation::NeedsAction(what) => {
                tracing::warn!(repository_id = %repository_id, "{what}");
                self.db
                    .mark_token_needs_action(repository_id, project_token_id)
                    .await?;
            }
            other => {
                tracing::debug!(repository_id = %repository_id, outcome = ?other, "rotation task");
            }
        }
        Ok(())
    }

    /// Rotates the repository's project access token `token_id` (the job's work).
    #[tracing::instrument(skip_all, fields(repository_id = %repository_id, token_id = token_id))]
    pub async fn rotate_project_token(
        &self,
        repository_id: &str,
        token_id: i64,
    ) -> Result<Rotation, ServiceError> {
        let repo = self.connected_repository(repository_id).await?;
        if repo.project_token_id != Some(token_id) {
            return Ok(Rotation::Skipped(
                "the token was already replaced".to_owned(),
            ));
        }
        if self.db.token_rotation_started(&repo.id).await?.is_some() {
            return self.recover_project_token(&repo).await;
        }
        let Some(token) = self
            .db
            .repository_secrets(&self.keys, &repo.id)
            .await?
            .project_token
        else {
            return Ok(Rotation::Skipped(
                "the repository has no project access token".into(),
            ));
        };
        if !self.db.begin_token_rotation(&repo.id, token_id).await? {
            return Ok(Rotation::Skipped(
                "another rotation of this token is under way".into(),
            ));
        }
        let api = self.repository_api(&repo, token).await?;
        let expires_at = new_expiry(self.settings.repositories.project_token_days);
        match api
            .self_rotate_project_access_token(repo.gitlab_project_id, expires_at)
            .await
        {
            Ok(issued) => {
                let new = ProjectToken {
                    id: issued.info.id,
                    expires_on: format_day(issued.info.expires_at.unwrap_or(expires_at)),
                    token: issued.token,
                    user_id: issued.info.user_id,
                    username: None,
                };
                self.db
                    .store_replaced_token(&self.keys, &repo.id, token_id, &new)
                    .await?;
                tracing::info!(repository_id = %repo.id, token_id = new.id, "project access token rotated");
                Ok(Rotation::Rotated {
                    token_id: new.id,
                    expires_on: new.expires_on,
                })
            }
            Err(e) if definitely_not_rotated(&e) => {
                // GitLab refused before rotating: the stored token is as it was.
                self.db.abandon_token_rotation(&repo.id).await?;
                if e.token_problem().is_some() {
                    // Refused because the token itself is dead (revoked or rotated outside lablink).
                    return self.recreate_project_token(&repo, token_id).await;
                }
                Err(e.into())
            }
            // The answer is unknown (timeout, connection lost, 5xx): the mark stays, and the
            // next attempt recovers instead of rotating again.
            Err(e) => Err(e.into()),
        }
    }

    /// A rotation's answer was lost. If the stored token still works, GitLab never rotated it
    /// and the mark is cleared; otherwise the token is re-created.
    async fn recover_project_token(&self, repo: &Repository) -> Result<Rotation, ServiceError> {
        let token_id = repo.project_token_id.unwrap_or_default();
        let token = self
            .db
            .repository_secrets(&self.keys, &repo.id)
            .await?
            .project_token;
        if let Some(token) = token {
            let api = self.repository_api(repo, token).await?;
            match api
                .project_access_token(repo.gitlab_project_id, token_id)
                .await
            {
                Ok(found) if found.active && !found.revoked => {
                    self.db.abandon_token_rotation(&repo.id).await?;
                    return Ok(Rotation::Skipped(
                        "the interrupted rotation never reached GitLab; the token still works and \
                         rotates on the next pass"
                            .into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.token_problem().is_some() => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.recreate_project_token(repo, token_id).await
    }

    /// Replaces a lost token: revokes every active token of ours (nobody here knows their
    /// secrets) and creates a new one with the same name, through the connecting Maintainer's
    /// linked account.
    pub(crate) async fn recreate_project_token(
        &self,
        repo: &Repository,
        old_token_id: i64,
    ) -> Result<Rotation, ServiceError> {
        let api = match self.connector_api(repo).await {
            Ok(api) => api,
            Err(e) => {
                return Ok(Rotation::NeedsAction(manual_token_fix(
                    repo,
                    &e.to_string(),
                )));
            }
        };
        let project = repo.gitlab_project_id;
        let name = project_access_token_name(project);
        let created: Result<ProjectToken, GitLabError> = async {
            for orphan in api
                .list_project_access_tokens(project)
                .await?
                .into_iter()
                .filter(|t| t.name == name && t.active && !t.revoked)
            {
                match api.revoke_project_access_token(project, orphan.id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
            let expires_at = new_expiry(self.settings.repositories.project_token_days);
            let issued = api
                .create_project_access_token(
                    project,
                    &NewAccessToken {
                        name: &name,
                        scopes: TOKEN_SCOPES,
                        access_level: TOKEN_ACCESS_LEVEL,
                        expires_at,
                    },
                )
                .await?;
            Ok(ProjectToken {
                id: issued.info.id,
                expires_on: format_day(issued.info.expires_at.unwrap_or(expires_at)),
                token: issued.token,
                user_id: issued.info.user_id,
                username: None,
            })
        }
        .await;
        let new = match created {
            Ok(new) => new,
            Err(e) => {
                return Ok(Rotation::NeedsAction(manual_token_fix(
                    repo,
                    &e.to_string(),
                )));
            }
        };
        // Stored before anything else can use it; the row still names the lost token.
        self.db
            .store_replaced_token(&self.keys, &repo.id, old_token_id, &new)
            .await?;
        tracing::info!(repository_id = %repo.id, token_id = new.id, "project access token re-created");
        Ok(Rotation::Recreated {
            token_id: new.id,
            expires_on: new.expires_on,
        })
    }

    async fn connected_repository(&self, id: &str) -> Result<Repository, ServiceError> {
        self.db
            .repository(id)
            .await?
            .filter(|r| r.status == RepositoryStatus::Connected)
            .ok_or_else(|| ServiceError::NotFound("No connected repository with this id.".into()))
    }
}

/// Errors GitLab answers before changing anything: the old token is untouched.
fn definitely_not_rotated(e: &GitLabError) -> bool {
    matches!(
        e,
        GitLabError::Unauthorized { .. }
            | GitLabError::Forbidden { .. }
            | GitLabError::BadRequest { .. }
            | GitLabError::NotFound { .. }
    )
}

/// What a person must do when lablink cannot re-create the token itself.
fn manual_token_fix(repo: &Repository, why: &str) -> String {
    format!(
        "lablink's project access token for {} no longer works (revoked, rotated outside lablink, \
         or a rotation's answer was lost), and lablink cannot create a new one: {why}. A Maintainer \
         of {} should link their GitLab account in lablink (Profile → Linked accounts) and run \
         `lablink doctor --project {} --fix` (or click Fix under Check connection); or disconnect \
         and connect the repository again.",
        repo.path_with_namespace, repo.path_with_namespace, repo.project_id
    )
}
