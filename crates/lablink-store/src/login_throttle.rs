//! Failed sign-in counters per throttling key (an account's email, a client address), shared by
//! every replica through the database. Every failure is counted by one atomic statement, so
//! parallel guesses cannot overwrite each other's counts.

use crate::{Db, StoreError, on_db};

impl Db {
    /// Until when `key` is locked (0 or a past time: not locked).
    pub async fn throttle_locked_until(&self, key: &str) -> Result<i64, StoreError> {
        let locked: Option<i64> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT locked_until FROM login_throttle WHERE throttle_key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(locked.unwrap_or(0))
    }

    /// Counts one failure of `key` and returns the failures counted so far; failures older than
    /// `forget_before` (the last one before it) are forgotten first.
    pub async fn count_failed_login(
        &self,
        key: &str,
        now: i64,
        forget_before: i64,
    ) -> Result<i64, StoreError> {
        let failures = on_db!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO login_throttle (throttle_key, failures, locked_until, updated_at) \
                 VALUES ($1, 1, 0, $2) \
                 ON CONFLICT (throttle_key) DO UPDATE \
                 SET failures = CASE WHEN login_throttle.updated_at < $3 THEN 1 \
                                     ELSE login_throttle.failures + 1 END, \
                     updated_at = excluded.updated_at \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now)
            .bind(forget_before)
            .fetch_one(pool)
            .await
        })?;
        Ok(failures)
    }

    /// Locks `key` until `until`, unless a longer lock is already in place.
    pub async fn lock_throttle(&self, key: &str, until: i64) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE login_throttle \
                 SET locked_until = CASE WHEN locked_until < $2 THEN $2 ELSE locked_until END \
                 WHERE throttle_key = $1",
            )
            .bind(key)
            .bind(until)
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
