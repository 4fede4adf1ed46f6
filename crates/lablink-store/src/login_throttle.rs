//! Failed sign-in counters per throttling key, shared by every replica through the database.

use crate::{Db, StoreError, on_db};

#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ThrottleState {
    pub failures: i64,
    pub locked_until: i64,
}

impl Db {
    pub async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        let row = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT failures, locked_until FROM login_throttle WHERE throttle_key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Stores the state after a failed attempt (insert or update).
    pub async fn save_throttle_state(
        &self,
        key: &str,
        state: ThrottleState,
        now: i64,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO login_throttle (throttle_key, failures, locked_until, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (throttle_key) DO UPDATE \
                 SET failures = excluded.failures, locked_until = excluded.locked_until, \
                     updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(state.failures)
            .bind(state.locked_until)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
                .bind(key)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
