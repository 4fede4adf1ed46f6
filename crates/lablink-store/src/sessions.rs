//! Browser sessions. Only the SHA-256 of a session id is stored; the id itself lives in the cookie.

use lablink_core::{Plan, Role};

use crate::{Db, StoreError, on_db};

/// A session joined with its user and account: everything a request needs to authorize.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub principal: Principal,
}

/// Who is calling: a user, their role and their account's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub username: String,
    pub role: Role,
    pub account_id: String,
    pub account_name: String,
    pub plan: Plan,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PrincipalRow {
    user_id: String,
    email: String,
    username: String,
    role: String,
    account_id: String,
    account_name: String,
    plan: String,
}

/// The columns of [`PrincipalRow`], for a query joining `users u` and `accounts a`.
pub(crate) const PRINCIPAL_COLUMNS: &str = "u.id AS user_id, u.email, u.username, u.role, \
     a.id AS account_id, a.name AS account_name, a.plan";

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;
    fn try_from(r: PrincipalRow) -> Result<Self, StoreError> {
        Ok(Principal {
            role: r
                .role
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("users.role: {e}")))?,
            plan: r
                .plan
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("accounts.plan: {e}")))?,
            user_id: r.user_id,
            email: r.email,
            username: r.username,
            account_id: r.account_id,
            account_name: r.account_name,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: String,
    created_at: i64,
    last_seen_at: i64,
    #[sqlx(flatten)]
    principal: PrincipalRow,
}

impl Db {
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $3)",
            )
            .bind(id_hash)
            .bind(user_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT s.id_hash, s.created_at, s.last_seen_at, {PRINCIPAL_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id JOIN accounts a ON a.id = u.account_id \
             WHERE s.id_hash = $1"
        );
        let row: Option<SessionRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id_hash)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|r| {
            Ok(SessionRecord {
                id_hash: r.id_hash,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                principal: r.principal.try_into()?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// "Log out everywhere": ends every session of the user. Returns how many were ended.
    pub async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let n = on_db!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    pub async fn count_sessions_of_user(&self, user_id: &str) -> Result<i64, StoreError> {
        let n: i64 = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }
}
