//! Personal API tokens for the JSON API and the CLI: shown once, stored hashed, revocable.

pub use lablink_store::api_tokens::ApiToken;

use lablink_core::validate;
use lablink_store::audit::AuditEvent;
use lablink_store::now_ms;
use secrecy::SecretString;

use crate::accounts::bad;
use crate::secrets::{random_secret, secret_hash};
use crate::{Principal, ServiceError, Services};

/// Every token starts with this, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "lablink_pat_";
/// How much of a token is kept in clear to tell tokens apart in lists.
const SHOWN_LEN: usize = TOKEN_PREFIX.len() + 6;
/// A token's last use is written at most this often: a busy script must not turn every API
/// read into a database write.
const LAST_USE_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest expiry a token may be given (GitLab's personal access tokens live at most a year).
pub const MAX_TOKEN_DAYS: u32 = 365;

/// A token just created: the only moment its value exists outside the caller's hands.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub value: SecretString,
}

impl Services {
    #[tracing::instrument(
        skip_all,
        fields(account_id = %principal.account_id, user_id = %principal.user_id),
    )]
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        name: &str,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken, ServiceError> {
        let name = validate::display_name("token name", name).map_err(bad)?;
        let lifetime_ms = match expires_in_days {
            None => None,
            Some(days @ 1..=MAX_TOKEN_DAYS) => Some(i64::from(days) * DAY_MS),
            Some(days) => {
                return Err(ServiceError::BadInput(format!(
                    "A token expires after 1 to {MAX_TOKEN_DAYS} days (or never), not {days}."
                )));
            }
        };
        let value = format!("{TOKEN_PREFIX}{}", random_secret());
        let token = self
            .db
            .create_api_token(
                &principal.user_id,
                &name,
                &value[..SHOWN_LEN],
                &secret_hash(&value),
                lifetime_ms,
            )
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&principal.account_id),
            actor_user_id: Some(&principal.user_id),
            action: "api_token.created",
            target: Some(format!("token {}", token.name)),
            detail: format!("{} ({})", token.name, token.prefix),
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        Ok(CreatedToken {
            token,
            value: SecretString::from(value),
        })
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %principal.account_id, user_id = %principal.user_id),
    )]
    pub async fn list_api_tokens(
        &self,
        principal: &Principal,
    ) -> Result<Vec<ApiToken>, ServiceError> {
        Ok(self.db.api_tokens_of_user(&principal.user_id).await?)
    }

    /// Revokes one of the caller's own tokens.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %principal.account_id,
            user_id = %principal.user_id,
            token_id = %token_id,
        ),
    )]
    pub async fn revoke_api_token(
        &self,
        principal: &Principal,
        token_id: &str,
    ) -> Result<(), ServiceError> {
        self.db
            .revoke_api_token(&principal.user_id, token_id)
            .await
            .map_err(|_| {
                ServiceError::NotFound("You have no active API token with that id.".into())
            })?;
        self.audit(AuditEvent {
            account_id: Some(&principal.account_id),
            actor_user_id: Some(&principal.user_id),
            action: "api_token.revoked",
            target: Some(format!("token {token_id}")),
            detail: token_id.to_owned(),
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// The caller behind a bearer token that is neither revoked nor expired.
    pub async fn principal_for_api_token(&self, value: &str) -> Result<Principal, ServiceError> {
        let hash = secret_hash(value.trim());
        let unknown = || {
            ServiceError::Unauthenticated(
                "The API token is not valid: it is unknown or was revoked.".into(),
            )
        };
        let usage = self.db.api_token_use(&hash).await?.ok_or_else(unknown)?;
        let now = now_ms();
        if let Some(expired) = usage.expires_at.filter(|at| *at <= now) {
            return Err(ServiceError::Unauthenticated(format!(
                "The API token expired on {}. Create a new one under Profile → Personal API \
                 tokens.",
                day(expired)
            )));
        }
        let principal = self
            .db
            .principal_by_api_token(&hash)
            .await?
            .ok_or_else(unknown)?;
        if usage
            .last_used_at
            .is_none_or(|at| at <= now - LAST_USE_EVERY_MS)
        {
            self.db.touch_api_token(&hash, now).await?;
        }
        Ok(principal)
    }
}

/// A moment as a day people read (UTC).
fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}
