//! The account's own GitLab OAuth application (`gitlab_integrations`) and the OAuth `state`
//! records of authorizations in progress (`gitlab_oauth_states`).

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::sealed::{INTEGRATION_SECRET, OAUTH_VERIFIER};
use crate::{Db, StoreError, new_id, now_ms, on_db};

lablink_core::text_enum! {
    /// Where an account's GitLab application is in its set-up.
    pub enum IntegrationStatus ("integration status") {
        /// Saved; the admin has not yet come back from authorizing it at GitLab.
        PendingAuthorization = "pending_authorization",
        /// The admin authorized it at GitLab: developers can link.
        Ready = "ready",
    }
}

/// An account's registered GitLab application, secret decrypted.
#[derive(Debug, Clone)]
pub struct Integration {
    pub id: String,
    pub account_id: String,
    pub instance_url: String,
    pub application_id: String,
    pub secret: SecretString,
    pub ca_bundle_pem: Option<String>,
    pub status: IntegrationStatus,
    pub saved_by: String,
    pub saved_at: i64,
    pub ready_at: Option<i64>,
}

/// What an admin saves.
pub struct NewIntegration<'a> {
    pub account_id: &'a str,
    pub instance_url: &'a str,
    pub application_id: &'a str,
    pub secret: &'a SecretString,
    pub ca_bundle_pem: Option<&'a str>,
    pub saved_by: &'a str,
}

#[derive(sqlx::FromRow)]
struct IntegrationRow {
    id: String,
    account_id: String,
    instance_url: String,
    application_id: String,
    secret_enc: Vec<u8>,
    ca_bundle_pem: Option<String>,
    #[sqlx(try_from = "String")]
    status: IntegrationStatus,
    saved_by: String,
    saved_at: i64,
    ready_at: Option<i64>,
}

impl IntegrationRow {
    fn open(self, keys: &KeyRing) -> Result<Integration, StoreError> {
        let secret = keys.open_str(&INTEGRATION_SECRET.aad(&self.id), &self.secret_enc)?;
        Ok(Integration {
            secret,
            status: self.status,
            id: self.id,
            account_id: self.account_id,
            instance_url: self.instance_url,
            application_id: self.application_id,
            ca_bundle_pem: self.ca_bundle_pem,
            saved_by: self.saved_by,
            saved_at: self.saved_at,
            ready_at: self.ready_at,
        })
    }
}

lablink_core::text_enum! {
    /// Why an OAuth authorization was started.
    pub enum OAuthPurpose ("OAuth purpose") {
        /// A user links their GitLab account.
        Link = "link",
        /// An admin authorizes the newly saved integration (and links their own account with it).
        AdminAuthorize = "admin_authorize",
    }
}

/// A stored authorization in progress, PKCE verifier decrypted.
#[derive(Debug)]
pub struct OAuthState {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub account_id: String,
    pub purpose: OAuthPurpose,
    pub instance_url: String,
    pub application_id: String,
    pub verifier: SecretString,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

/// A new authorization in progress; `state_hash` is the SHA-256 of the `state` parameter.
pub struct NewOAuthState<'a> {
    pub state_hash: &'a str,
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub account_id: &'a str,
    pub purpose: OAuthPurpose,
    pub instance_url: &'a str,
    pub application_id: &'a str,
    pub verifier: &'a SecretString,
    pub expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct OAuthStateRow {
    id: String,
    session_id: String,
    user_id: String,
    account_id: String,
    #[sqlx(try_from = "String")]
    purpose: OAuthPurpose,
    instance_url: String,
    application_id: String,
    verifier_enc: Vec<u8>,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

/// Consumed and expired states are kept this long after expiry so that a replayed callback is
/// recognised as a replay (not as an unknown state) for a while.
const STATE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

impl Db {
    /// The account's registered GitLab application, if any.
    pub async fn gitlab_integration(
        &self,
        keys: &KeyRing,
        account_id: &str,
    ) -> Result<Option<Integration>, StoreError> {
        let row: Option<IntegrationRow> = on_db!(self, |pool| {
            sqlx::query_as("SELECT * FROM gitlab_integrations WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|r| r.open(keys)).transpose()
    }

    /// Replaces the account's application with `new`, pending the admin's authorization. Every
    /// save gets a new row id, so ciphertexts of an earlier application never open as this one.
    pub async fn save_gitlab_integration(
        &self,
        keys: &KeyRing,
        new: NewIntegration<'_>,
    ) -> Result<Integration, StoreError> {
        let id = new_id();
        let now = now_ms();
        let secret_enc = keys.seal_str(&INTEGRATION_SECRET.aad(&id), new.secret);
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM gitlab_integrations WHERE account_id = $1")
                .bind(new.account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO gitlab_integrations (id, account_id, instance_url, application_id, \
                 secret_enc, ca_bundle_pem, status, saved_by, saved_at, ready_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
            )
            .bind(&id)
            .bind(new.account_id)
            .bind(new.instance_url)
            .bind(new.application_id)
            .bind(&secret_enc)
            .bind(new.ca_bundle_pem)
            .bind(IntegrationStatus::PendingAuthorization.as_str())
            .bind(new.saved_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })?;
        self.gitlab_integration(keys, new.account_id)
            .await?
            .ok_or(StoreError::NotFound("GitLab integration"))
    }

    /// Marks the integration `id` ready. False when it was replaced or removed meanwhile.
    pub async fn mark_gitlab_integration_ready(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query("UPDATE gitlab_integrations SET status = $1, ready_at = $2 WHERE id = $3")
                .bind(IntegrationStatus::Ready.as_str())
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Removes the account's application. True when there was one.
    pub async fn delete_gitlab_integration(&self, account_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query("DELETE FROM gitlab_integrations WHERE account_id = $1")
                .bind(account_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Stores a new authorization in progress and forgets long-expired ones.
    pub async fn create_gitlab_oauth_state(
        &self,
        keys: &KeyRing,
        new: NewOAuthState<'_>,
    ) -> Result<(), StoreError> {
        let id = new_id();
        let now = now_ms();
        let verifier_enc = keys.seal_str(&OAUTH_VERIFIER.aad(&id), new.verifier);
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM gitlab_oauth_states WHERE expires_at < $1")
                .bind(now - STATE_RETENTION_MS)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO gitlab_oauth_states (id, state_hash, session_id, user_id, account_id, \
                 purpose, instance_url, application_id, verifier_enc, created_at, expires_at, \
                 consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
            )
            .bind(&id)
            .bind(new.state_hash)
            .bind(new.session_id)
            .bind(new.user_id)
            .bind(new.account_id)
            .bind(new.purpose.as_str())
            .bind(new.instance_url)
            .bind(new.application_id)
            .bind(&verifier_enc)
            .bind(now)
            .bind(new.expires_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// The authorization whose `state` hashes to `state_hash`, consumed or not.
    pub async fn gitlab_oauth_state(
        &self,
        keys: &KeyRing,
        state_hash: &str,
    ) -> Result<Option<OAuthState>, StoreError> {
        let row: Option<OAuthStateRow> = on_db!(self, |pool| {
            sqlx::query_as("SELECT * FROM gitlab_oauth_states WHERE state_hash = $1")
                .bind(state_hash)
                .fetch_optional(pool)
                .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let verifier = keys.open_str(&OAUTH_VERIFIER.aad(&row.id), &row.verifier_enc)?;
        Ok(Some(OAuthState {
            verifier,
            purpose: row.purpose,
            id: row.id,
            session_id: row.session_id,
            user_id: row.user_id,
            account_id: row.account_id,
            instance_url: row.instance_url,
            application_id: row.application_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            consumed_at: row.consumed_at,
        }))
    }

    /// Marks a state used. Exactly one caller gets `true`, so a replayed callback racing the
    /// first one is refused.
    pub async fn consume_gitlab_oauth_state(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_oauth_states SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}
