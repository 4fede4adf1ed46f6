//! Accounts and users: creating users (admins in the UI, operators from the CLI), listing them,
//! and role changes.

pub use lablink_store::users::User;

use lablink_core::{Plan, Role, validate};
use lablink_store::accounts::Account;
use lablink_store::audit::AuditEvent;
use lablink_store::users::NewUser;
use secrecy::{ExposeSecret, SecretString};

use crate::error::require;
use crate::passwords::hash_password;
use crate::{Principal, ServiceError, Services};

/// A user to create, as typed by a person.
#[derive(Debug)]
pub struct UserInput {
    pub email: String,
    pub username: String,
    pub password: SecretString,
    pub role: Role,
}

impl UserInput {
    /// Validates the input and hashes the password.
    pub(crate) async fn into_new_user(self) -> Result<NewUser, ServiceError> {
        let email = validate::email(&self.email).map_err(bad)?;
        let username = validate::username(&self.username).map_err(bad)?;
        validate::new_password(self.password.expose_secret()).map_err(bad)?;
        Ok(NewUser {
            email,
            username,
            password_hash: hash_password(&self.password).await?,
            role: self.role,
        })
    }
}

pub(crate) fn bad(e: validate::Invalid) -> ServiceError {
    ServiceError::BadInput(e.to_string())
}

impl Services {
    /// An admin adds a user to their own account.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn add_user(
        &self,
        admin: &Principal,
        input: UserInput,
    ) -> Result<User, ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins can add users.",
        )?;
        let new_user = input.into_new_user().await?;
        // Emails are unique across lablink. The refusal is the same whether the email is in this
        // account or another, and names neither: an admin must not learn of other accounts.
        let user = self
            .db
            .create_user(&admin.account_id, &new_user)
            .await
            .map_err(|e| match e {
                lablink_store::StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "{} cannot be added: the email is already in use in lablink. Ask the person \
                     for another address.",
                    new_user.email
                )),
                other => other.into(),
            })?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: "user.created",
            target: Some(format!("user {}", user.email)),
            detail: format!("{} as {}", user.email, user.role),
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        Ok(user)
    }

    /// The operator creates a user from a shell (`lablink admin create-user`). The account is
    /// created with `plan_if_new` when no account has that name yet.
    #[tracing::instrument(skip_all)]
    pub async fn create_user_in_account(
        &self,
        account_name: &str,
        plan_if_new: Plan,
        input: UserInput,
    ) -> Result<(Account, User), ServiceError> {
        let account_name = validate::display_name("account name", account_name).map_err(bad)?;
        let new_user = input.into_new_user().await?;
        let account = match self.db.account_by_name(&account_name).await? {
            Some(a) => a,
            None => self.db.create_account(&account_name, plan_if_new).await?,
        };
        let user = self.db.create_user(&account.id, &new_user).await?;
        self.audit(AuditEvent {
            account_id: Some(&account.id),
            action: "user.created",
            target: Some(format!("user {}", user.email)),
            detail: format!("{} as {} (from the command line)", user.email, user.role),
            ..AuditEvent::default()
        })
        .await?;
        Ok((account, user))
    }

    /// The users of the admin's account.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn list_users(&self, admin: &Principal) -> Result<Vec<User>, ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins can see the list of users.",
        )?;
        Ok(self.db.users_of_account(&admin.account_id).await?)
    }

    /// An admin changes the role of a user of their account. The last admin cannot step down,
    /// so an account never loses its administration.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id, target_user_id = %user_id),
    )]
    pub async fn change_role(
        &self,
        admin: &Principal,
        user_id: &str,
        role: Role,
    ) -> Result<User, ServiceError> {
        require(
            admin.role.can_manage_account(),
            "Only account admins can change roles.",
        )?;
        let user = self
            .db
            .user_by_id(user_id)
            .await?
            .filter(|u| u.account_id == admin.account_id)
            .ok_or_else(|| {
                ServiceError::NotFound("There is no such user in your account.".into())
            })?;
        if user.role == Role::AccountAdmin
            && role != Role::AccountAdmin
            && self.db.count_admins(&admin.account_id).await? <= 1
        {
            return Err(ServiceError::Conflict(
                "This is the account's last admin. Make another user an admin first.".into(),
            ));
        }
        self.db.set_user_role(&user.id, role).await?;
        self.audit(AuditEvent {
            account_id: Some(&admin.account_id),
            actor_user_id: Some(&admin.user_id),
            action: "user.role_changed",
            target: Some(format!("user {}", user.email)),
            detail: format!("{}: {} -> {}", user.email, user.role, role),
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        Ok(User { role, ..user })
    }

    /// The account of the caller.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %principal.account_id, user_id = %principal.user_id),
    )]
    pub async fn account(&self, principal: &Principal) -> Result<Account, ServiceError> {
        self.db
            .account_by_id(&principal.account_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("account not found".into()))
    }
}
