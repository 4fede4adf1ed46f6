//! The project access token's rotation: which tokens are due (an indexed range query on the
//! expiry date), and storing a rotated token in the same statement that ends the rotation, so the
//! new token is durable before anything else can use it.

use crate::crypto::KeyRing;
use crate::repositories::{ProjectToken, RepositoryStatus};
use crate::sealed::repository_aad;
use crate::{Db, StoreError, now_ms, on_db};

/// A connected repository whose project access token expires on or before the due date.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueToken {
    pub repository_id: String,
    pub project_token_id: i64,
    pub project_token_expires_on: String,
    /// Set when a rotation was started and its answer never stored (see the migration).
    pub project_token_rotating_since: Option<i64>,
}

impl Db {
    /// Connected repositories whose token expires on or before `due_on` (`YYYY-MM-DD`), soonest
    /// first, at most `limit`, except tokens marked as needing a person whose row has not
    /// changed since. Served by the `(status, project_token_expires_on)` index.
    pub async fn tokens_due_for_rotation(
        &self,
        due_on: &str,
        limit: i64,
    ) -> Result<Vec<DueToken>, StoreError> {
        let rows = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id AS repository_id, project_token_id, project_token_expires_on, \
                 project_token_rotating_since FROM repositories \
                 WHERE status = $1 AND project_token_expires_on <= $2 AND project_token_id IS NOT NULL \
                 AND (project_token_needs_action_at IS NULL \
                      OR project_token_needs_action_at <> updated_at) \
                 ORDER BY project_token_expires_on, id LIMIT $3",
            )
            .bind(RepositoryStatus::Connected.as_str())
            .bind(due_on)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Records that lablink is about to rotate token `token_id` of the repository. `false` when
    /// the row moved on (another replica rotated it, or it is no longer connected) or a
    /// rotation of it is already under way: then this caller must not rotate.
    pub async fn begin_token_rotation(&self, id: &str, token_id: i64) -> Result<bool, StoreError> {
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET project_token_rotating_since = $1, updated_at = $1 \
                 WHERE id = $2 AND status = $3 AND project_token_id = $4 \
                 AND project_token_rotating_since IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .bind(token_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Records that token `token_id` needs a person (lablink cannot replace it alone): the
    /// schedule skips it until the row changes. Leaves `updated_at` as it is, on purpose.
    pub async fn mark_token_needs_action(&self, id: &str, token_id: i64) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET project_token_needs_action_at = updated_at \
                 WHERE id = $1 AND status = $2 AND project_token_id = $3",
            )
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .bind(token_id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Stores the token that replaced `old_token_id` and ends any rotation in progress, in one
    /// statement. `false` when the row no longer holds `old_token_id`.
    pub async fn store_replaced_token(
        &self,
        keys: &KeyRing,
        id: &str,
        old_token_id: i64,
        new: &ProjectToken,
    ) -> Result<bool, StoreError> {
        let sealed = keys.seal_str(&repository_aad("project_token", id), &new.token);
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET project_token_id = $1, project_token = $2, \
                 project_token_expires_on = $3, project_token_user_id = $4, \
                 project_token_username = COALESCE($5, project_token_username), \
                 project_token_rotating_since = NULL, project_token_needs_action_at = NULL, \
                 status_reporting = TRUE, updated_at = $6 \
                 WHERE id = $7 AND project_token_id = $8",
            )
            .bind(new.id)
            .bind(&sealed)
            .bind(&new.expires_on)
            .bind(new.user_id)
            .bind(new.username.as_deref())
            .bind(now_ms())
            .bind(id)
            .bind(old_token_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Ends a rotation that GitLab refused before rotating anything (the old token still works).
    pub async fn abandon_token_rotation(&self, id: &str) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET project_token_rotating_since = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// When the rotation of the repository's token started, if one is unfinished.
    pub async fn token_rotation_started(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT project_token_rotating_since FROM repositories WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.and_then(|r| r.0))
    }
}
