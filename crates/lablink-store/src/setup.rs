//! One-time setup tokens (stored hashed) for the first start of an empty database.

use crate::{Db, StoreError, on_db};

impl Db {
    pub async fn create_setup_token(
        &self,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(token_hash)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// True when the token exists, is unused and has not expired.
    pub async fn setup_token_is_valid(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n: i64 = on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM setup_tokens \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_one(pool)
            .await
        })?;
        Ok(n == 1)
    }
}
