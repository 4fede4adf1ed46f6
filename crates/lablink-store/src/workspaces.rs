//! Workspaces as stored: a user's branch and commit of a project, and the files they saved but
//! did not commit. Every change bumps `version` in the same transaction; a replica whose
//! checkout was built at another version rebuilds it from here.

use crate::{Db, StoreError, new_id, now_ms, on_db};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Workspace {
    pub id: String,
    pub account_id: String,
    pub project_id: String,
    pub user_id: String,
    pub repository_id: String,
    pub branch: String,
    pub head_sha: String,
    /// The commit being merged while conflicts wait to be resolved.
    pub merging_sha: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub used_at: i64,
    /// The checkout's size when last measured (0 while no replica holds one).
    pub disk_bytes: i64,
}

/// A saved, uncommitted file: its content, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedChange {
    pub path: String,
    pub content: Option<Vec<u8>>,
}

/// A new workspace's place.
pub struct NewWorkspace<'a> {
    pub account_id: &'a str,
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub repository_id: &'a str,
    pub branch: &'a str,
    pub head_sha: &'a str,
}

const COLUMNS: &str = "id, account_id, project_id, user_id, repository_id, branch, head_sha, \
     merging_sha, version, created_at, used_at, disk_bytes";

/// A workspace of an account with whose it is and its disk use, for the account's admins.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkspaceUse {
    pub workspace_id: String,
    pub project_id: String,
    pub project_name: String,
    pub username: String,
    pub branch: String,
    pub disk_bytes: i64,
    pub used_at: i64,
}

/// Marks a change of the workspace and returns its new version.
const BUMP: &str =
    "UPDATE workspaces SET version = version + 1, used_at = $1 WHERE id = $2 RETURNING version";

impl Db {
    pub async fn workspace_of(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<Workspace>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM workspaces WHERE project_id = $1 AND user_id = $2");
        Ok(on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Creates the user's workspace of the project, or returns the one a concurrent request
    /// created first.
    pub async fn create_workspace(&self, new: &NewWorkspace<'_>) -> Result<Workspace, StoreError> {
        let now = now_ms();
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO workspaces (id, account_id, project_id, user_id, repository_id, \
                 branch, head_sha, version, created_at, used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) \
                 ON CONFLICT (project_id, user_id) DO NOTHING",
            )
            .bind(new_id())
            .bind(new.account_id)
            .bind(new.project_id)
            .bind(new.user_id)
            .bind(new.repository_id)
            .bind(new.branch)
            .bind(new.head_sha)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        })?;
        self.workspace_of(new.project_id, new.user_id)
            .await?
            .ok_or(StoreError::NotFound("workspace"))
    }

    /// Every saved, uncommitted file of the workspace, by path.
    pub async fn workspace_changes(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<SavedChange>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT path, content FROM workspace_changes WHERE workspace_id = $1 \
                 ORDER BY path",
            )
            .bind(workspace_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Saves files (`None`: deleted) and returns the workspace's new version.
    pub async fn save_workspace_changes(
        &self,
        workspace_id: &str,
        changes: &[SavedChange],
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        Ok(on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for change in changes {
                    sqlx::query(
                        "INSERT INTO workspace_changes (workspace_id, path, content, saved_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, path) \
                         DO UPDATE SET content = $3, saved_at = $4",
                    )
                    .bind(workspace_id)
                    .bind(&change.path)
                    .bind(change.content.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let version: i64 = sqlx::query_scalar(BUMP)
                    .bind(now)
                    .bind(workspace_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(version)
            }
            .await
        })?)
    }

    /// Forgets saved files (those of `paths`, or all) without other change; returns the new
    /// version.
    pub async fn drop_workspace_changes(
        &self,
        workspace_id: &str,
        paths: Option<&[String]>,
    ) -> Result<i64, StoreError> {
        self.move_workspace(workspace_id, None, paths).await
    }

    /// Moves the workspace to `branch` at `sha` (when given) and forgets the saved files of
    /// `paths` (or all of them); returns the new version.
    pub async fn move_workspace(
        &self,
        workspace_id: &str,
        to: Option<(&str, &str)>,
        paths: Option<&[String]>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        Ok(on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                match paths {
                    None => {
                        sqlx::query("DELETE FROM workspace_changes WHERE workspace_id = $1")
                            .bind(workspace_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Some(paths) => {
                        for path in paths {
                            sqlx::query(
                                "DELETE FROM workspace_changes WHERE workspace_id = $1 \
                                 AND path = $2",
                            )
                            .bind(workspace_id)
                            .bind(path)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                if let Some((branch, sha)) = to {
                    sqlx::query(
                        "UPDATE workspaces SET branch = $1, head_sha = $2, merging_sha = NULL \
                         WHERE id = $3",
                    )
                    .bind(branch)
                    .bind(sha)
                    .bind(workspace_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let version: i64 = sqlx::query_scalar(BUMP)
                    .bind(now)
                    .bind(workspace_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(version)
            }
            .await
        })?)
    }

    /// Points the workspace at another repository's `branch` at `sha`, keeping saved files.
    pub async fn retarget_workspace(
        &self,
        workspace_id: &str,
        repository_id: &str,
        branch: &str,
        sha: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE workspaces SET repository_id = $1, branch = $2, head_sha = $3, \
                 merging_sha = NULL, version = version + 1, used_at = $4 WHERE id = $5",
            )
            .bind(repository_id)
            .bind(branch)
            .bind(sha)
            .bind(now_ms())
            .bind(workspace_id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Starts (with the merged commit and the merge's files) or ends (`None`, dropping every
    /// saved file) a merge waiting for its conflicts to be resolved; returns the new version.
    pub async fn set_workspace_merge(
        &self,
        workspace_id: &str,
        merging: Option<(&str, &[SavedChange])>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        Ok(on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM workspace_changes WHERE workspace_id = $1")
                    .bind(workspace_id)
                    .execute(&mut *tx)
                    .await?;
                for change in merging.map(|(_, files)| files).unwrap_or_default() {
                    sqlx::query(
                        "INSERT INTO workspace_changes (workspace_id, path, content, saved_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(workspace_id)
                    .bind(&change.path)
                    .bind(change.content.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("UPDATE workspaces SET merging_sha = $1 WHERE id = $2")
                    .bind(merging.map(|(sha, _)| sha))
                    .bind(workspace_id)
                    .execute(&mut *tx)
                    .await?;
                let version: i64 = sqlx::query_scalar(BUMP)
                    .bind(now)
                    .bind(workspace_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(version)
            }
            .await
        })?)
    }

    /// The workspaces unchanged since `before`.
    pub async fn workspaces_idle_since(&self, before: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM workspaces WHERE used_at < $1")
                .bind(before)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Records the size of the workspace's checkout.
    pub async fn set_workspace_disk_bytes(
        &self,
        workspace_id: &str,
        bytes: i64,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE workspaces SET disk_bytes = $1 WHERE id = $2")
                .bind(bytes)
                .bind(workspace_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// The account's workspaces, the largest first.
    pub async fn account_workspace_use(
        &self,
        account_id: &str,
    ) -> Result<Vec<WorkspaceUse>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT w.id AS workspace_id, w.project_id, p.name AS project_name, \
                 u.username, w.branch, w.disk_bytes, w.used_at FROM workspaces w \
                 JOIN projects p ON p.id = w.project_id JOIN users u ON u.id = w.user_id \
                 WHERE w.account_id = $1 ORDER BY w.disk_bytes DESC, w.used_at DESC",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The sum of the account's workspaces' last measured sizes.
    pub async fn account_workspace_bytes(&self, account_id: &str) -> Result<i64, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(disk_bytes), 0) AS BIGINT) FROM workspaces \
                 WHERE account_id = $1",
            )
            .bind(account_id)
            .fetch_one(pool)
            .await
        })?)
    }

    /// Deletes a workspace with its saved files and commands.
    pub async fn delete_workspace(&self, workspace_id: &str) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }
}
