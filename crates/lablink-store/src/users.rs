//! Local users of an account.

use lablink_core::Role;

use crate::{Db, StoreError, new_id, on_db};

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
}

/// A user to create. `password_hash` is an argon2id PHC string, never a password.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// A user with the hash to verify a password against.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    account_id: String,
    email: String,
    username: String,
    role: String,
    created_at: i64,
    password_hash: String,
}

impl TryFrom<UserRow> for UserCredentials {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(UserCredentials {
            user: User {
                role: r
                    .role
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("users.role: {e}")))?,
                id: r.id,
                account_id: r.account_id,
                email: r.email,
                username: r.username,
                created_at: r.created_at,
            },
            password_hash: r.password_hash,
        })
    }
}

const COLUMNS: &str = "id, account_id, email, username, role, created_at, password_hash";

/// Inserts a user (`$user: &NewUser`) through any executor (a pool or a caller's transaction),
/// so creating a user and completing setup share one statement.
macro_rules! insert_user {
    ($executor:expr, $id:expr, $account_id:expr, $user:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO users (id, account_id, email, username, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($id)
        .bind($account_id)
        .bind($user.email.as_str())
        .bind($user.username.as_str())
        .bind($user.password_hash.as_str())
        .bind($user.role.as_str())
        .bind($now)
        .execute($executor)
        .await
        .map(|r| r.rows_affected())
    };
}
pub(crate) use insert_user;

impl Db {
    /// Creates a user; an email already in use is a [`StoreError::Conflict`].
    pub async fn create_user(&self, account_id: &str, user: &NewUser) -> Result<User, StoreError> {
        let now = crate::now_ms();
        let id = new_id();
        let inserted = on_db!(self, |pool| insert_user!(pool, &id, account_id, user, now));
        match inserted {
            Ok(_) => Ok(User {
                id,
                account_id: account_id.to_owned(),
                email: user.email.clone(),
                username: user.username.clone(),
                role: user.role,
                created_at: now,
            }),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_unique_violation() {
                    Err(StoreError::Conflict(format!(
                        "a user with the email {} already exists",
                        user.email
                    )))
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn user_credentials_by_email(
        &self,
        email: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        let row: Option<UserRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(email).fetch_optional(pool).await
        })?;
        row.map(UserCredentials::try_from).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(row
            .map(UserCredentials::try_from)
            .transpose()?
            .map(|c| c.user))
    }

    pub async fn users_of_account(&self, account_id: &str) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE account_id = $1 ORDER BY email");
        let rows: Vec<UserRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await
        })?;
        rows.into_iter()
            .map(|r| UserCredentials::try_from(r).map(|c| c.user))
            .collect()
    }

    pub async fn set_user_role(&self, user_id: &str, role: Role) -> Result<(), StoreError> {
        let n = on_db!(self, |pool| {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound("user"))
        }
    }

    /// Number of account admins, so the last one cannot be demoted.
    pub async fn count_admins(&self, account_id: &str) -> Result<i64, StoreError> {
        let n: i64 = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE account_id = $1 AND role = $2")
                .bind(account_id)
                .bind(Role::AccountAdmin.as_str())
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }
}
