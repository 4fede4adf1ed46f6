//! What the doctor repairs in a connection: a re-created webhook, a reset webhook secret and
//! signing token (the previous secret stays valid for a grace window, so deliveries GitLab
//! already queued still verify), a re-created deploy token or deploy key; and when the last
//! verified delivery arrived.

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::repositories::{DeployKey, RepositoryStatus};
use crate::sealed::repository_aad;
use crate::{Db, StoreError, now_ms, on_db};

impl Db {
    /// Stores a re-created webhook and its secrets. `false` when the repository is not connected.
    pub async fn replace_hook(
        &self,
        keys: &KeyRing,
        id: &str,
        hook_id: i64,
        secret: &SecretString,
        signing_token: Option<&SecretString>,
    ) -> Result<bool, StoreError> {
        let sealed = keys.seal_str(&repository_aad("hook_secret", id), secret);
        let signing = signing_token.map(|s| keys.seal_str(&repository_aad("signing_token", id), s));
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET hook_id = $1, hook_secret = $2, signing_token = $3, \
                 hook_secret_previous = NULL, hook_secret_grace_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND status = $6",
            )
            .bind(hook_id)
            .bind(&sealed)
            .bind(&signing)
            .bind(now_ms())
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Makes `secret` and `signing_token` the webhook's; the current secret stays accepted until
    /// `grace_until` (and the signature is not required meanwhile, see `hook_secrets`). Call
    /// before telling GitLab, so no delivery sent with the new ones is ever refused.
    pub async fn rotate_hook_secret(
        &self,
        keys: &KeyRing,
        id: &str,
        secret: &SecretString,
        signing_token: &SecretString,
        grace_until: i64,
    ) -> Result<bool, StoreError> {
        let current: Option<(Option<Vec<u8>>,)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT hook_secret FROM repositories WHERE id = $1 AND status = $2")
                .bind(id)
                .bind(RepositoryStatus::Connected.as_str())
                .fetch_optional(pool)
                .await
        })?;
        let Some((current,)) = current else {
            return Ok(false);
        };
        // The previous secret is sealed under its own column's identity.
        let previous = current
            .map(|blob| keys.open_str(&repository_aad("hook_secret", id), &blob))
            .transpose()?
            .map(|old| keys.seal_str(&repository_aad("hook_secret_previous", id), &old));
        let sealed = keys.seal_str(&repository_aad("hook_secret", id), secret);
        let signing = keys.seal_str(&repository_aad("signing_token", id), signing_token);
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET hook_secret = $1, hook_secret_previous = $2, \
                 hook_secret_grace_until = $3, signing_token = $4, updated_at = $5 \
                 WHERE id = $6 AND status = $7",
            )
            .bind(&sealed)
            .bind(&previous)
            .bind(grace_until)
            .bind(&signing)
            .bind(now_ms())
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Forgets the webhook's signing token: GitLab before 19.0 ignores signing tokens, and a
    /// stored token GitLab does not have must not be expected.
    pub async fn forget_signing_token(&self, id: &str) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET signing_token = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Stores a re-created deploy token.
    pub async fn replace_deploy_token(
        &self,
        keys: &KeyRing,
        id: &str,
        token_id: i64,
        username: &str,
        token: &SecretString,
    ) -> Result<bool, StoreError> {
        let sealed = keys.seal_str(&repository_aad("deploy_token", id), token);
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET deploy_token_id = $1, deploy_token_username = $2, \
                 deploy_token = $3, updated_at = $4 WHERE id = $5 AND status = $6",
            )
            .bind(token_id)
            .bind(username)
            .bind(&sealed)
            .bind(now_ms())
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Stores a re-created SSH deploy key.
    pub async fn replace_deploy_key(
        &self,
        keys: &KeyRing,
        id: &str,
        key: &DeployKey,
    ) -> Result<bool, StoreError> {
        let sealed = keys.seal_str(&repository_aad("deploy_key_private", id), &key.private);
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE repositories SET deploy_key_id = $1, deploy_key_public = $2, \
                 deploy_key_private = $3, deploy_key_fingerprint = $4, updated_at = $5 \
                 WHERE id = $6 AND status = $7",
            )
            .bind(key.id)
            .bind(&key.public)
            .bind(&sealed)
            .bind(&key.fingerprint)
            .bind(now_ms())
            .bind(id)
            .bind(RepositoryStatus::Connected.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// When the last verified delivery for the repository arrived at or after `since` (Unix ms).
    /// Intake stores only verified deliveries, so any row counts.
    pub async fn last_delivery_at(
        &self,
        repository_id: &str,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: (Option<i64>,) = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT MAX(received_at) FROM webhook_deliveries \
                 WHERE repository_id = $1 AND received_at >= $2",
            )
            .bind(repository_id)
            .bind(since)
            .fetch_one(pool)
            .await
        })?;
        Ok(row.0)
    }

    /// `(account_id, project_id)` of every connected repository, for a doctor run over all.
    pub async fn connected_projects(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT account_id, project_id FROM repositories WHERE status = $1 ORDER BY project_id",
            )
            .bind(RepositoryStatus::Connected.as_str())
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
