//! Linked GitLab accounts (`gitlab_links`): the user's OAuth tokens, sealed, and the
//! compare-and-swap primitives that make a refresh single-flight across replicas.
//!
//! GitLab refresh tokens work exactly once, so exactly one replica may present one. A replica
//! first claims a short lease on the row for the `token_version` it read; only the claimant calls
//! GitLab, and it stores the new pair only if the version is still the one it read.

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::sealed::{LINK_ACCESS_TOKEN, LINK_REFRESH_TOKEN};
use crate::{Db, StoreError, new_id, now_ms, on_db};

lablink_core::text_enum! {
    /// Whether a link's tokens can still be used.
    pub enum LinkStatus ("link status") {
        Active = "active",
        /// GitLab no longer accepts the refresh token (or the application changed): link again.
        Dead = "dead",
    }
}

/// A linked GitLab account, tokens decrypted.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: String,
    pub user_id: String,
    pub account_id: String,
    pub instance_url: String,
    pub application_id: String,
    pub gitlab_user_id: i64,
    pub gitlab_username: String,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// Unix milliseconds.
    pub expires_at: i64,
    pub token_version: i64,
    pub status: LinkStatus,
    pub dead_reason: Option<String>,
    pub linked_at: i64,
    pub refreshed_at: Option<i64>,
}

/// A token pair to store, expiry in Unix milliseconds.
pub struct Tokens<'a> {
    pub access_token: &'a SecretString,
    pub refresh_token: &'a SecretString,
    pub expires_at: i64,
}

/// A link as made by a completed authorization.
pub struct NewLink<'a> {
    pub user_id: &'a str,
    pub account_id: &'a str,
    pub instance_url: &'a str,
    pub application_id: &'a str,
    pub gitlab_user_id: i64,
    pub gitlab_username: &'a str,
    pub tokens: Tokens<'a>,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: String,
    user_id: String,
    account_id: String,
    instance_url: String,
    application_id: String,
    gitlab_user_id: i64,
    gitlab_username: String,
    access_token_enc: Vec<u8>,
    refresh_token_enc: Vec<u8>,
    expires_at: i64,
    token_version: i64,
    #[sqlx(try_from = "String")]
    status: LinkStatus,
    dead_reason: Option<String>,
    linked_at: i64,
    refreshed_at: Option<i64>,
}

const LINK_COLUMNS: &str = "id, user_id, account_id, instance_url, application_id, gitlab_user_id, \
     gitlab_username, access_token_enc, refresh_token_enc, expires_at, token_version, status, \
     dead_reason, linked_at, refreshed_at";

impl LinkRow {
    fn open(self, keys: &KeyRing) -> Result<Link, StoreError> {
        let access_token =
            keys.open_str(&LINK_ACCESS_TOKEN.aad(&self.id), &self.access_token_enc)?;
        let refresh_token =
            keys.open_str(&LINK_REFRESH_TOKEN.aad(&self.id), &self.refresh_token_enc)?;
        Ok(Link {
            access_token,
            refresh_token,
            status: self.status,
            id: self.id,
            user_id: self.user_id,
            account_id: self.account_id,
            instance_url: self.instance_url,
            application_id: self.application_id,
            gitlab_user_id: self.gitlab_user_id,
            gitlab_username: self.gitlab_username,
            expires_at: self.expires_at,
            token_version: self.token_version,
            dead_reason: self.dead_reason,
            linked_at: self.linked_at,
            refreshed_at: self.refreshed_at,
        })
    }
}

fn seal_tokens(keys: &KeyRing, id: &str, tokens: &Tokens<'_>) -> (Vec<u8>, Vec<u8>) {
    (
        keys.seal_str(&LINK_ACCESS_TOKEN.aad(id), tokens.access_token),
        keys.seal_str(&LINK_REFRESH_TOKEN.aad(id), tokens.refresh_token),
    )
}

impl Db {
    /// The user's linked GitLab account, if any.
    pub async fn gitlab_link_of_user(
        &self,
        keys: &KeyRing,
        user_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM gitlab_links WHERE user_id = $1");
        let row: Option<LinkRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|r| r.open(keys)).transpose()
    }

    /// A link by its id.
    pub async fn gitlab_link(&self, keys: &KeyRing, id: &str) -> Result<Option<Link>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM gitlab_links WHERE id = $1");
        let row: Option<LinkRow> = on_db!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(|r| r.open(keys)).transpose()
    }

    /// Every link of the account, for what an application change does to them.
    pub async fn gitlab_links_of_account(
        &self,
        keys: &KeyRing,
        account_id: &str,
    ) -> Result<Vec<Link>, StoreError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM gitlab_links WHERE account_id = $1 ORDER BY linked_at"
        );
        let rows: Vec<LinkRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await
        })?;
        rows.into_iter().map(|r| r.open(keys)).collect()
    }

    /// Stores the user's link: a new row, or the existing row replaced in place (a new version,
    /// active again) when the user links again.
    pub async fn save_gitlab_link(
        &self,
        keys: &KeyRing,
        new: NewLink<'_>,
    ) -> Result<Link, StoreError> {
        let now = now_ms();
        let existing: Option<String> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM gitlab_links WHERE user_id = $1")
                .bind(new.user_id)
                .fetch_optional(pool)
                .await
        })?;
        let id = existing.clone().unwrap_or_else(new_id);
        let (access_enc, refresh_enc) = seal_tokens(keys, &id, &new.tokens);
        if existing.is_some() {
            on_db!(self, |pool| {
                sqlx::query(
                    "UPDATE gitlab_links SET account_id = $1, instance_url = $2, application_id = $3, \
                     gitlab_user_id = $4, gitlab_username = $5, access_token_enc = $6, \
                     refresh_token_enc = $7, expires_at = $8, token_version = token_version + 1, \
                     refresh_lease_owner = NULL, refresh_lease_until = NULL, status = 'active', \
                     dead_reason = NULL, linked_at = $9, refreshed_at = NULL WHERE id = $10",
                )
                .bind(new.account_id)
                .bind(new.instance_url)
                .bind(new.application_id)
                .bind(new.gitlab_user_id)
                .bind(new.gitlab_username)
                .bind(&access_enc)
                .bind(&refresh_enc)
                .bind(new.tokens.expires_at)
                .bind(now)
                .bind(&id)
                .execute(pool)
                .await
                .map(drop)
            })?;
        } else {
            on_db!(self, |pool| {
                sqlx::query(
                    "INSERT INTO gitlab_links (id, user_id, account_id, instance_url, application_id, \
                     gitlab_user_id, gitlab_username, access_token_enc, refresh_token_enc, expires_at, \
                     token_version, refresh_lease_owner, refresh_lease_until, status, dead_reason, \
                     linked_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, \
                     NULL, NULL, 'active', NULL, $11, NULL)",
                )
                .bind(&id)
                .bind(new.user_id)
                .bind(new.account_id)
                .bind(new.instance_url)
                .bind(new.application_id)
                .bind(new.gitlab_user_id)
                .bind(new.gitlab_username)
                .bind(&access_enc)
                .bind(&refresh_enc)
                .bind(new.tokens.expires_at)
                .bind(now)
                .execute(pool)
                .await
                .map(drop)
            })?;
        }
        self.gitlab_link(keys, &id)
            .await?
            .ok_or(StoreError::NotFound("GitLab link"))
    }

    /// Claims the right to refresh version `version` of the link until `until` (Unix ms). True
    /// for exactly one claimant while the lease runs and the version has not moved.
    pub async fn claim_gitlab_refresh_lease(
        &self,
        id: &str,
        version: i64,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_links SET refresh_lease_owner = $1, refresh_lease_until = $2 \
                 WHERE id = $3 AND token_version = $4 AND status = 'active' \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until < $5)",
            )
            .bind(owner)
            .bind(until)
            .bind(id)
            .bind(version)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Stores the pair a refresh of version `version` returned, and frees the lease. False when
    /// the version moved or another replica holds the lease (the pair is then not stored).
    pub async fn store_refreshed_gitlab_tokens(
        &self,
        keys: &KeyRing,
        id: &str,
        version: i64,
        owner: &str,
        tokens: Tokens<'_>,
    ) -> Result<bool, StoreError> {
        let (access_enc, refresh_enc) = seal_tokens(keys, id, &tokens);
        let done = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_links SET access_token_enc = $1, refresh_token_enc = $2, \
                 expires_at = $3, token_version = token_version + 1, refresh_lease_owner = NULL, \
                 refresh_lease_until = NULL, refreshed_at = $4 \
                 WHERE id = $5 AND token_version = $6 AND refresh_lease_owner = $7",
            )
            .bind(&access_enc)
            .bind(&refresh_enc)
            .bind(tokens.expires_at)
            .bind(now_ms())
            .bind(id)
            .bind(version)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Gives up a refresh lease without storing anything (GitLab unreachable, for example).
    pub async fn release_gitlab_refresh_lease(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_links SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
                 WHERE id = $1 AND refresh_lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Marks version `version` of the link dead with `reason`. False when the version moved
    /// meanwhile: someone stored a newer pair, so the link is not dead.
    pub async fn mark_gitlab_link_dead(
        &self,
        id: &str,
        version: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_links SET status = 'dead', dead_reason = $1, \
                 refresh_lease_owner = NULL, refresh_lease_until = NULL \
                 WHERE id = $2 AND token_version = $3",
            )
            .bind(reason)
            .bind(id)
            .bind(version)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Deletes a link. True when it existed.
    pub async fn delete_gitlab_link(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query("DELETE FROM gitlab_links WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}
