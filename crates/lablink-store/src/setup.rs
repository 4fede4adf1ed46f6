//! One-time setup tokens (stored hashed) for the first start of an empty database.

use crate::{Db, StoreError, on_db};

impl Db {
    /// Opens a new setup link unless another one was opened at `fresh_after` or later (a replica
    /// starting at the same time); older open links are revoked. True when this one was opened.
    pub async fn mint_setup_token(
        &self,
        token_hash: &str,
        now: i64,
        expires_at: i64,
        fresh_after: i64,
    ) -> Result<bool, StoreError> {
        let minted = on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE setup_tokens SET used_at = $1 \
                 WHERE used_at IS NULL AND (created_at < $2 OR expires_at <= $1)",
            )
            .bind(now)
            .bind(fresh_after)
            .execute(&mut *tx)
            .await?;
            // The unique index on open links refuses a second one; a replica that lost the
            // race inserts nothing.
            let inserted = sqlx::query(
                "INSERT INTO setup_tokens (token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(token_hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted == 1)
        })?;
        Ok(minted)
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
