//! Periodic passes run once per period across the fleet: a row per pass with its next due time
//! and a lease. Taking a pass is one conditional `UPDATE` (due, and not held or held by a lease
//! that ran out), which PostgreSQL re-checks after the row lock and SQLite's single writer makes
//! atomic: two replicas asking at once never both get it.

use crate::{Db, StoreError};

/// What is known about a pass.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PeriodicPass {
    pub name: String,
    pub due_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    /// How many times the fleet ran the pass to its end.
    pub times_run: i64,
    pub last_ran_by: Option<String>,
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
}

const COLUMNS: &str = "name, due_at, locked_by, locked_until, times_run, last_ran_by, last_started_at, \
     last_finished_at";

impl Db {
    /// Takes pass `name` for `holder` until `now + lease_ms` when it is due at `now` and nobody
    /// holds it, and returns it (with its last complete run); `None` when it is not due or held.
    /// A pass never seen before is due.
    pub async fn take_periodic_pass(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<PeriodicPass>, StoreError> {
        let take = format!(
            "UPDATE periodic_passes SET locked_by = $2, locked_until = $4 \
             WHERE name = $1 AND due_at <= $3 \
             AND (locked_until IS NULL OR locked_until < $3) RETURNING {COLUMNS}"
        );
        let taken = crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO periodic_passes (name, due_at) VALUES ($1, 0) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .execute(pool)
            .await?;
            sqlx::query_as(&take)
                .bind(name)
                .bind(holder)
                .bind(now)
                .bind(now.saturating_add(lease_ms))
                .fetch_optional(pool)
                .await
        })?;
        Ok(taken)
    }

    /// Extends `holder`'s lease on a pass it runs; `false` when it no longer holds it.
    pub async fn renew_periodic_pass(
        &self,
        name: &str,
        holder: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let renewed = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE periodic_passes SET locked_until = $3 WHERE name = $1 AND locked_by = $2",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
        })?;
        Ok(renewed)
    }

    /// Ends `holder`'s run of a pass (`started`, `now`), due again at `next_due_at`; `false`
    /// when the lease was lost meanwhile (the pass stays with whoever took it over).
    pub async fn finish_periodic_pass(
        &self,
        name: &str,
        holder: &str,
        (started, now): (i64, i64),
        next_due_at: i64,
    ) -> Result<bool, StoreError> {
        let finished = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE periodic_passes SET due_at = $5, locked_by = NULL, locked_until = NULL, \
                 times_run = times_run + 1, last_ran_by = $2, last_started_at = $3, \
                 last_finished_at = $4 \
                 WHERE name = $1 AND locked_by = $2",
            )
            .bind(name)
            .bind(holder)
            .bind(started)
            .bind(now)
            .bind(next_due_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
        })?;
        Ok(finished)
    }

    /// Every pass the fleet ran or is running, by name.
    pub async fn periodic_passes(&self) -> Result<Vec<PeriodicPass>, StoreError> {
        let passes = crate::on_db!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM periodic_passes ORDER BY name"
            ))
            .fetch_all(pool)
            .await
        })?;
        Ok(passes)
    }
}
