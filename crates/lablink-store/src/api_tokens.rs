//! Personal API tokens. Only the SHA-256 of a token is stored, with a short prefix to recognise it.

use crate::sessions::{PRINCIPAL_COLUMNS, Principal, PrincipalRow};
use crate::{Db, StoreError, new_id, now_ms, on_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, prefix, created_at, last_used_at, revoked_at, expires_at";

/// What is checked of a token before its caller is let in.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TokenUse {
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl Db {
    pub async fn create_api_token(
        &self,
        user_id: &str,
        name: &str,
        prefix: &str,
        token_hash: &str,
        lifetime_ms: Option<i64>,
    ) -> Result<ApiToken, StoreError> {
        // One clock reading: the token lives exactly `lifetime_ms` from its creation.
        let created_at = now_ms();
        let token = ApiToken {
            id: new_id(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            created_at,
            last_used_at: None,
            revoked_at: None,
            expires_at: lifetime_ms.map(|ms| created_at + ms),
        };
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_tokens \
                 (id, user_id, name, prefix, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&token.id)
            .bind(&token.user_id)
            .bind(&token.name)
            .bind(&token.prefix)
            .bind(token_hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(token)
    }

    pub async fn api_tokens_of_user(&self, user_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC");
        let rows = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Revokes a token of `user_id`; a token of another user is "not found".
    pub async fn revoke_api_token(&self, user_id: &str, token_id: &str) -> Result<(), StoreError> {
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 \
                 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(token_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound("API token"))
        }
    }

    /// The expiry and last use of an unrevoked token.
    pub async fn api_token_use(&self, token_hash: &str) -> Result<Option<TokenUse>, StoreError> {
        let row = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT expires_at, last_used_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// The caller behind an unrevoked token.
    pub async fn principal_by_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let sql = format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM api_tokens t \
             JOIN users u ON u.id = t.user_id JOIN accounts a ON a.id = u.account_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        );
        let row: Option<PrincipalRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Principal::try_from).transpose()
    }

    /// Records that a token was used at `now`.
    pub async fn touch_api_token(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
