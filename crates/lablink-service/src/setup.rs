//! First start: an empty database gets a one-time setup link that creates the account and its
//! first admin.

use lablink_core::{Plan, Role, validate};
use lablink_store::audit::AuditEvent;
use lablink_store::now_ms;
use secrecy::SecretString;

use crate::accounts::{UserInput, bad};
use crate::secrets::{random_secret, secret_hash};
use crate::sessions::NewSession;
use crate::{ServiceError, Services};

const SETUP_LINK_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// A link opened less than this long ago was opened by a replica starting at the same time: a
/// second one is not opened. An older one is revoked by the next start.
const SETUP_LINK_FRESH_MS: i64 = 60 * 1000;

/// What a start on this database does about the first account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupLink {
    /// An account exists: no link.
    NotNeeded,
    /// The one open link (`<public_url>/setup/<token>`); any earlier one is revoked.
    Opened(String),
    /// A replica starting at the same time opened the link and printed it.
    OpenedByAnotherReplica,
}

/// What the setup page asks for.
#[derive(Debug)]
pub struct SetupInput {
    pub account_name: String,
    pub plan: Plan,
    pub email: String,
    pub username: String,
    pub password: SecretString,
}

fn link_not_valid() -> ServiceError {
    ServiceError::NotFound(
        "This setup link is not valid: it was already used or has expired. \
         Restart lablink for a new link while no account exists, or create users with \
         `lablink admin create-user`."
            .into(),
    )
}

impl Services {
    /// When no account exists yet, opens the one-time setup link (at most one is open at a
    /// time: it revokes the link of an earlier start).
    pub async fn setup_link_if_empty(&self) -> Result<SetupLink, ServiceError> {
        if self.db.count_accounts().await? > 0 {
            return Ok(SetupLink::NotNeeded);
        }
        let token = random_secret();
        let now = now_ms();
        let opened = self
            .db
            .mint_setup_token(
                &secret_hash(&token),
                now,
                now + SETUP_LINK_LIFETIME_MS,
                now - SETUP_LINK_FRESH_MS,
            )
            .await?;
        Ok(if opened {
            SetupLink::Opened(self.settings.public_link(&format!("/setup/{token}")))
        } else {
            SetupLink::OpenedByAnotherReplica
        })
    }

    /// Checks a setup token before showing the form.
    #[tracing::instrument(skip_all)]
    pub async fn check_setup_token(&self, token: &str) -> Result<(), ServiceError> {
        if self
            .db
            .setup_token_is_valid(&secret_hash(token), now_ms())
            .await?
        {
            Ok(())
        } else {
            Err(link_not_valid())
        }
    }

    /// Uses the setup token: creates the account and its first admin and signs the admin in.
    #[tracing::instrument(skip_all)]
    pub async fn complete_setup(
        &self,
        token: &str,
        input: SetupInput,
    ) -> Result<NewSession, ServiceError> {
        let account_name =
            validate::display_name("account name", &input.account_name).map_err(bad)?;
        let admin = UserInput {
            email: input.email,
            username: input.username,
            password: input.password,
            role: Role::AccountAdmin,
        }
        .into_new_user()
        .await?;
        let account = self
            .db
            .complete_setup(&secret_hash(token), &account_name, input.plan, &admin)
            .await
            .map_err(|e| match e {
                lablink_store::StoreError::NotFound(_) => link_not_valid(),
                lablink_store::StoreError::Conflict(_) => ServiceError::Conflict(
                    "An account exists already, so setup is over: sign in, or ask an admin of \
                     the account to add you."
                        .into(),
                ),
                other => other.into(),
            })?;
        let creds = self
            .db
            .user_credentials_by_email(&admin.email)
            .await?
            .ok_or_else(|| ServiceError::Internal("the new admin vanished".into()))?;
        self.audit(AuditEvent {
            account_id: Some(&account.id),
            actor_user_id: Some(&creds.user.id),
            action: "setup.completed",
            detail: format!(
                "account {} ({}) with admin {}",
                account.name, account.plan, admin.email
            ),
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        self.start_session(&creds.user.id).await
    }
}
