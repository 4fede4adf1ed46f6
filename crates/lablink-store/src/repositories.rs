//! GitLab repositories connected to dbt projects (`repositories`). One row per connection: it is
//! `connecting` while lablink creates the webhook and credentials in GitLab, `connected` once all
//! of them exist, `failed` when a step failed (everything was removed again), and `disconnected`
//! afterwards, kept so runs keep pointing at the repository they ran on. Secrets are sealed with
//! `repositories.<column>:<id>` as associated data and cleared when the row stops being live.

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::sealed::repository_aad;
use crate::{Db, StoreError, new_id, now_ms, on_db};

lablink_core::text_enum! {
    /// Where a connection is in its life (see the module documentation).
    pub enum RepositoryStatus ("repository status") {
        Connecting = "connecting",
        Connected = "connected",
        Disconnected = "disconnected",
        Failed = "failed",
    }
}

impl RepositoryStatus {
    /// Connecting or connected: the row holds GitLab objects and secrets.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RepositoryStatus::Connecting | RepositoryStatus::Connected
        )
    }
}

/// A GitLab repository connected to one of the account's projects.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LiveConnection {
    pub gitlab_instance_url: String,
    pub gitlab_project_id: i64,
    pub project_id: String,
    pub project_name: String,
}

/// How a live connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// A connect step failed; everything was removed again.
    Failed,
    Disconnected,
}

impl ConnectionEnd {
    fn status(self) -> RepositoryStatus {
        match self {
            ConnectionEnd::Failed => RepositoryStatus::Failed,
            ConnectionEnd::Disconnected => RepositoryStatus::Disconnected,
        }
    }
}

/// A connection as shown to users: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    pub id: String,
    pub account_id: String,
    pub project_id: String,
    pub gitlab_instance_url: String,
    pub gitlab_project_id: i64,
    pub path_with_namespace: String,
    pub default_branch: String,
    pub http_url_to_repo: String,
    pub web_url: String,
    #[sqlx(try_from = "String")]
    pub status: RepositoryStatus,
    pub hook_id: Option<i64>,
    pub project_token_id: Option<i64>,
    pub project_token_expires_on: Option<String>,
    pub project_token_user_id: Option<i64>,
    pub project_token_username: Option<String>,
    pub status_reporting: bool,
    pub status_warning: Option<String>,
    pub deploy_token_id: Option<i64>,
    pub deploy_token_username: Option<String>,
    pub deploy_key_id: Option<i64>,
    pub deploy_key_public: Option<String>,
    pub deploy_key_fingerprint: Option<String>,
    pub connected_by: Option<String>,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Without a project access token (gitlab.com Free): the lablink user whose linked GitLab
    /// account posts statuses and notes, chosen by them as a Maintainer.
    pub post_as_user_id: Option<String>,
    /// Their GitLab username when they chose it.
    pub post_as_username: Option<String>,
    /// Why posting through a user's account stopped (they unlinked it).
    pub post_as_warning: Option<String>,
    /// `ssh://` address of the repository, for pushes with the SSH deploy key.
    pub ssh_url_to_repo: Option<String>,
}

const COLUMNS: &str = "id, account_id, project_id, gitlab_instance_url, gitlab_project_id, \
     path_with_namespace, default_branch, http_url_to_repo, web_url, status, hook_id, \
     project_token_id, project_token_expires_on, project_token_user_id, project_token_username, \
     status_reporting, status_warning, deploy_token_id, deploy_token_username, deploy_key_id, \
     deploy_key_public, deploy_key_fingerprint, connected_by, connected_at, disconnected_at, \
     created_at, updated_at, post_as_user_id, post_as_username, post_as_warning, ssh_url_to_repo";

/// Something a connection creates in GitLab, by the column that keeps its GitLab id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitLabObject {
    Hook,
    ProjectToken,
    DeployToken,
    DeployKey,
}

impl GitLabObject {
    fn column(self) -> &'static str {
        match self {
            GitLabObject::Hook => "hook_id",
            GitLabObject::ProjectToken => "project_token_id",
            GitLabObject::DeployToken => "deploy_token_id",
            GitLabObject::DeployKey => "deploy_key_id",
        }
    }
}

/// The GitLab project a connection starts with.
#[derive(Debug, Clone)]
pub struct NewRepository<'a> {
    pub account_id: &'a str,
    pub project_id: &'a str,
    pub gitlab_instance_url: &'a str,
    pub gitlab_project_id: i64,
    pub path_with_namespace: &'a str,
    pub default_branch: &'a str,
    pub http_url_to_repo: &'a str,
    /// `ssh://` address (checked by the caller), when GitLab gave one.
    pub ssh_url_to_repo: Option<&'a str>,
    pub web_url: &'a str,
    pub connected_by: &'a str,
}

/// The project access token, when the plan allowed creating one.
#[derive(Debug, Clone)]
pub struct ProjectToken {
    pub id: i64,
    pub token: SecretString,
    pub expires_on: String,
    pub user_id: i64,
    /// The bot user's name, when known (GitLab's create answer does not include it).
    pub username: Option<String>,
}

/// The SSH deploy key generated for the repository.
#[derive(Debug, Clone)]
pub struct DeployKey {
    pub id: i64,
    pub public: String,
    pub fingerprint: String,
    pub private: SecretString,
}

/// Everything created in GitLab by a completed connection.
#[derive(Debug, Clone)]
pub struct Connected {
    pub hook_id: i64,
    pub hook_secret: SecretString,
    pub signing_token: Option<SecretString>,
    pub project_token: Option<ProjectToken>,
    pub status_warning: Option<String>,
    pub deploy_token_id: i64,
    pub deploy_token_username: String,
    pub deploy_token: SecretString,
    pub deploy_key: Option<DeployKey>,
}

/// The sealed columns, opened.
#[derive(Debug, Clone)]
pub struct RepositorySecrets {
    pub hook_secret: Option<SecretString>,
    pub signing_token: Option<SecretString>,
    pub project_token: Option<SecretString>,
    pub deploy_token: Option<SecretString>,
    pub deploy_key_private: Option<SecretString>,
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    hook_secret: Option<Vec<u8>>,
    signing_token: Option<Vec<u8>>,
    project_token: Option<Vec<u8>>,
    deploy_token: Option<Vec<u8>>,
    deploy_key_private: Option<Vec<u8>>,
}

fn open(
    keys: &KeyRing,
    column: &str,
    id: &str,
    blob: Option<Vec<u8>>,
) -> Result<Option<SecretString>, StoreError> {
    blob.map(|b| keys.open_str(&repository_aad(column, id), &b))
        .transpose()
        .map_err(StoreError::from)
}

impl Db {
    /// Ids of the repositories that are connected now.
    pub async fn connected_repository_ids(
        &self,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let ids: Vec<String> = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM repositories WHERE status = 'connected'")
                .fetch_all(pool)
                .await
        })?;
        Ok(ids.into_iter().collect())
    }

    /// Starts a connection (`connecting`). A project with a live connection is a conflict.
    pub async fn begin_repository_connection(
        &self,
        new: &NewRepository<'_>,
    ) -> Result<Repository, StoreError> {
        let id = new_id();
        let now = now_ms();
        let inserted = on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO repositories (id, account_id, project_id, gitlab_instance_url, gitlab_project_id, \
                 path_with_namespace, default_branch, http_url_to_repo, web_url, status, connected_by, \
                 created_at, updated_at, ssh_url_to_repo) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
            )
            .bind(&id)
            .bind(new.account_id)
            .bind(new.project_id)
            .bind(new.gitlab_instance_url)
            .bind(new.gitlab_project_id)
            .bind(new.path_with_namespace)
            .bind(new.default_branch)
            .bind(new.http_url_to_repo)
            .bind(new.web_url)
            .bind(RepositoryStatus::Connecting.as_str())
            .bind(new.connected_by)
            .bind(now)
            .bind(new.ssh_url_to_repo)
            .execute(pool)
            .await
            .map(drop)
        });
        if let Err(e) = inserted {
            let e = StoreError::from(e);
            return Err(if e.is_unique_violation() {
                StoreError::Conflict(
                    "This project already has a repository connected (or a connection in progress). \
                     Disconnect it first."
                        .to_owned(),
                )
            } else {
                e
            });
        }
        self.repository(&id)
            .await?
            .ok_or(StoreError::NotFound("repository"))
    }

    /// Stores what a connection created in GitLab and makes it the project's repository, in one
    /// transaction. `false` when the row was no longer `connecting`.
    pub async fn complete_repository_connection(
        &self,
        keys: &KeyRing,
        id: &str,
        done: &Connected,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let seal = |column: &str, secret: &SecretString| {
            keys.seal_str(&repository_aad(column, id), secret)
        };
        let hook_secret = seal("hook_secret", &done.hook_secret);
        let signing = done
            .signing_token
            .as_ref()
            .map(|s| seal("signing_token", s));
        let token = done.project_token.as_ref();
        let token_sealed = token.map(|t| seal("project_token", &t.token));
        let deploy_token = seal("deploy_token", &done.deploy_token);
        let key = done.deploy_key.as_ref();
        let key_private = key.map(|k| seal("deploy_key_private", &k.private));
        let updated = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE repositories SET status = $1, hook_id = $2, hook_secret = $3, signing_token = $4, \
                     project_token_id = $5, project_token = $6, project_token_expires_on = $7, \
                     project_token_user_id = $8, project_token_username = $9, status_reporting = $10, \
                     status_warning = $11, deploy_token_id = $12, deploy_token_username = $13, \
                     deploy_token = $14, deploy_key_id = $15, deploy_key_public = $16, \
                     deploy_key_private = $17, deploy_key_fingerprint = $18, connected_at = $19, \
                     updated_at = $19 WHERE id = $20 AND status = $21",
                )
                .bind(RepositoryStatus::Connected.as_str())
                .bind(done.hook_id)
                .bind(&hook_secret)
                .bind(&signing)
                .bind(token.map(|t| t.id))
                .bind(&token_sealed)
                .bind(token.map(|t| t.expires_on.as_str()))
                .bind(token.map(|t| t.user_id))
                .bind(token.and_then(|t| t.username.as_deref()))
                .bind(token.is_some())
                .bind(done.status_warning.as_deref())
                .bind(done.deploy_token_id)
                .bind(&done.deploy_token_username)
                .bind(&deploy_token)
                .bind(key.map(|k| k.id))
                .bind(key.map(|k| k.public.as_str()))
                .bind(&key_private)
                .bind(key.map(|k| k.fingerprint.as_str()))
                .bind(now)
                .bind(id)
                .bind(RepositoryStatus::Connecting.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    sqlx::query(
                        "UPDATE projects SET repository_id = $1, updated_at = $2 \
                         WHERE id = (SELECT project_id FROM repositories WHERE id = $1)",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n == 1)
            }
            .await
        })?;
        Ok(updated)
    }

    /// Ends a live connection as `failed` (a connect step failed) or `disconnected`, clearing
    /// every secret and detaching it from its project, in one transaction.
    pub async fn end_repository_connection(
        &self,
        id: &str,
        end: ConnectionEnd,
    ) -> Result<bool, StoreError> {
        self.end_connection(id, end, None, i64::MAX).await
    }

    /// Records the GitLab id of `object` the moment GitLab created it, so that a connect cut
    /// short by a crash can still be rolled back. `false` when the row is no longer
    /// `connecting` (the recovery took it over): the caller must stop and remove what it made.
    pub async fn record_repository_object(
        &self,
        id: &str,
        object: GitLabObject,
        gitlab_id: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE repositories SET {} = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            object.column()
        );
        let n = on_db!(self, |pool| {
            sqlx::query(&sql)
                .bind(gitlab_id)
                .bind(now_ms())
                .bind(id)
                .bind(RepositoryStatus::Connecting.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Connections still `connecting` with no progress since `before` (Unix ms): their process
    /// stopped in the middle.
    pub async fn stale_repository_connections(
        &self,
        before: i64,
    ) -> Result<Vec<Repository>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM repositories WHERE status = $1 AND updated_at < $2 \
             ORDER BY updated_at, id"
        );
        let rows = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(RepositoryStatus::Connecting.as_str())
                .bind(before)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Takes over a stale connection: `failed` with `reason`, secrets cleared, the project free
    /// to connect again. `false` when it made progress meanwhile or someone else took it.
    pub async fn fail_stale_repository_connection(
        &self,
        id: &str,
        before: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.end_connection(id, ConnectionEnd::Failed, Some(reason), before)
            .await
    }

    /// Replaces the reason shown on a connection.
    pub async fn set_repository_status_warning(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET status_warning = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Statuses and notes of the repository are posted through `user`'s linked GitLab account
    /// (`(user id, GitLab username)`), or not (`None`); clears an earlier warning either way.
    pub async fn set_post_as(
        &self,
        id: &str,
        user: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET post_as_user_id = $1, post_as_username = $2, \
                 post_as_warning = NULL, updated_at = $3 WHERE id = $4",
            )
            .bind(user.map(|u| u.0))
            .bind(user.map(|u| u.1))
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Stops posting through `user_id`'s account wherever it was chosen, leaving `warning`; how
    /// many repositories that were.
    pub async fn stop_posting_as(&self, user_id: &str, warning: &str) -> Result<u64, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET post_as_user_id = NULL, post_as_warning = $1, \
                 updated_at = $2 WHERE post_as_user_id = $3",
            )
            .bind(warning)
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// Ends a live connection last changed before `before` as `status`, in one transaction.
    async fn end_connection(
        &self,
        id: &str,
        end: ConnectionEnd,
        reason: Option<&str>,
        before: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let ended = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE repositories SET status = $1, hook_secret = NULL, hook_secret_previous = NULL, \
                     hook_secret_grace_until = NULL, signing_token = NULL, project_token = NULL, \
                     deploy_token = NULL, deploy_key_private = NULL, disconnected_at = $2, updated_at = $2, \
                     status_warning = COALESCE($6, status_warning) \
                     WHERE id = $3 AND status IN ($4, $5) AND updated_at < $7",
                )
                .bind(end.status().as_str())
                .bind(now)
                .bind(id)
                .bind(RepositoryStatus::Connecting.as_str())
                .bind(RepositoryStatus::Connected.as_str())
                .bind(reason)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    sqlx::query(
                        "UPDATE projects SET repository_id = NULL, updated_at = $1 WHERE repository_id = $2",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n == 1)
            }
            .await
        })?;
        Ok(ended)
    }

    pub async fn repository(&self, id: &str) -> Result<Option<Repository>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM repositories WHERE id = $1");
        let row = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(row)
    }

    /// The project's live (`connecting` or `connected`) repository.
    pub async fn live_repository_of_project(
        &self,
        project_id: &str,
    ) -> Result<Option<Repository>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM repositories WHERE project_id = $1 AND status IN ($2, $3)"
        );
        let row = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_id)
                .bind(RepositoryStatus::Connecting.as_str())
                .bind(RepositoryStatus::Connected.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// The account's live connections, by GitLab repository: which lablink project each GitLab
    /// repository is connected to (the import list marks them; connecting one twice is refused).
    pub async fn live_connections(
        &self,
        account_id: &str,
    ) -> Result<Vec<LiveConnection>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT r.gitlab_instance_url, r.gitlab_project_id, p.id AS project_id, \
                 p.name AS project_name FROM repositories r JOIN projects p ON p.id = r.project_id \
                 WHERE r.account_id = $1 AND r.status IN ($2, $3)",
            )
            .bind(account_id)
            .bind(RepositoryStatus::Connecting.as_str())
            .bind(RepositoryStatus::Connected.as_str())
            .fetch_all(pool)
            .await
        })?)
    }

    /// The account's connected repository with this path in GitLab (`group/project`, compared
    /// without regard to case, as GitLab does).
    pub async fn connected_repository_by_path(
        &self,
        account_id: &str,
        path_with_namespace: &str,
    ) -> Result<Option<Repository>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM repositories WHERE account_id = $1 \
             AND LOWER(path_with_namespace) = LOWER($2) AND status = $3"
        );
        let row = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account_id)
                .bind(path_with_namespace)
                .bind(RepositoryStatus::Connected.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Every connection the project ever had, newest first.
    pub async fn repositories_of_project(
        &self,
        project_id: &str,
    ) -> Result<Vec<Repository>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM repositories WHERE project_id = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(project_id).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// The sealed columns of a repository, opened.
    pub async fn repository_secrets(
        &self,
        keys: &KeyRing,
        id: &str,
    ) -> Result<RepositorySecrets, StoreError> {
        let row: Option<SealedRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT hook_secret, signing_token, project_token, deploy_token, deploy_key_private \
                 FROM repositories WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        let row = row.ok_or(StoreError::NotFound("repository"))?;
        Ok(RepositorySecrets {
            hook_secret: open(keys, "hook_secret", id, row.hook_secret)?,
            signing_token: open(keys, "signing_token", id, row.signing_token)?,
            project_token: open(keys, "project_token", id, row.project_token)?,
            deploy_token: open(keys, "deploy_token", id, row.deploy_token)?,
            deploy_key_private: open(keys, "deploy_key_private", id, row.deploy_key_private)?,
        })
    }
}

pub mod import_list;
