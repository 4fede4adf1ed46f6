//! Personal API tokens for the JSON API and the CLI: shown once, stored hashed, revocable.

pub use lablink_store::api_tokens::ApiToken;

use lablink_core::validate;
use lablink_store::audit::AuditEvent;
use secrecy::SecretString;

use crate::accounts::bad;
use crate::secrets::{random_secret, secret_hash};
use crate::{Principal, ServiceError, Services};

/// Every token starts with this, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "lablink_pat_";
/// How much of a token is kept in clear to tell tokens apart in lists.
const SHOWN_LEN: usize = TOKEN_PREFIX.len() + 6;

/// A token just created: the only moment its value exists outside the caller's hands.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub value: SecretString,
}

impl Services {
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<CreatedToken, ServiceError> {
        let name = validate::display_name("token name", name).map_err(bad)?;
        let value = format!("{TOKEN_PREFIX}{}", random_secret());
        let token = self
            .db
            .create_api_token(
                &principal.user_id,
                &name,
                &value[..SHOWN_LEN],
                &secret_hash(&value),
            )
            .await?;
        self.db
            .record_audit(AuditEvent {
                account_id: Some(&principal.account_id),
                actor_user_id: Some(&principal.user_id),
                action: "api_token.created",
                detail: format!("{} ({})", token.name, token.prefix),
                client_ip: None,
            })
            .await?;
        Ok(CreatedToken {
            token,
            value: SecretString::from(value),
        })
    }

    pub async fn list_api_tokens(
        &self,
        principal: &Principal,
    ) -> Result<Vec<ApiToken>, ServiceError> {
        Ok(self.db.api_tokens_of_user(&principal.user_id).await?)
    }

    /// Revokes one of the caller's own tokens.
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
        self.db
            .record_audit(AuditEvent {
                account_id: Some(&principal.account_id),
                actor_user_id: Some(&principal.user_id),
                action: "api_token.revoked",
                detail: token_id.to_owned(),
                client_ip: None,
            })
            .await?;
        Ok(())
    }

    /// The caller behind a bearer token.
    pub async fn principal_for_api_token(&self, value: &str) -> Result<Principal, ServiceError> {
        self.db
            .principal_by_api_token(&secret_hash(value.trim()))
            .await?
            .ok_or_else(|| {
                ServiceError::Unauthenticated(
                    "The API token is not valid: it is unknown or was revoked.".into(),
                )
            })
    }
}
