//! The commit status outbox (`status_outbox`): one row per run with the status GitLab should
//! show and the version GitLab last confirmed. Rows are written by the run transitions in
//! [`crate::runs`]; a worker claims a due row with a lease, posts it and records the outcome.

use crate::{Db, StoreError, now_ms};

/// A status to post, as claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingStatus {
    pub run_id: String,
    pub wanted_state: String,
    pub description: String,
    pub version: i64,
    pub attempts: i64,
}

const COLUMNS: &str = "run_id, wanted_state, description, version, attempts";

impl Db {
    /// Claims the oldest due status that GitLab has not confirmed yet.
    pub async fn claim_status(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<PendingStatus>, StoreError> {
        let now = now_ms();
        const PICK: &str = "SELECT run_id FROM status_outbox \
             WHERE (sent_version IS NULL OR sent_version < version) AND run_after <= $1 \
             AND (locked_until IS NULL OR locked_until < $1) ORDER BY run_after, run_id LIMIT 1";
        let update = |pick: &str| {
            format!(
                "UPDATE status_outbox SET attempts = attempts + 1, locked_by = $2, \
                 locked_until = $3 WHERE run_id = ({pick}) RETURNING {COLUMNS}"
            )
        };
        let claimed = match self {
            Db::Sqlite(pool) => {
                sqlx::query_as(&update(PICK))
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(&update(&format!("{PICK} FOR UPDATE SKIP LOCKED")))
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(claimed)
    }

    /// GitLab shows `status.wanted_state` (or the row needs nothing more): done up to its version.
    pub async fn status_sent(
        &self,
        status: &PendingStatus,
        worker: &str,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE status_outbox SET sent_state = $1, sent_version = $2, locked_by = NULL, \
                 locked_until = NULL, last_error = NULL, updated_at = $3 \
                 WHERE run_id = $4 AND locked_by = $5",
            )
            .bind(&status.wanted_state)
            .bind(status.version)
            .bind(now_ms())
            .bind(&status.run_id)
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Posting failed: try again at `retry_at` (Unix ms).
    pub async fn status_failed(
        &self,
        status: &PendingStatus,
        worker: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE status_outbox SET run_after = $1, last_error = $2, locked_by = NULL, \
                 locked_until = NULL, updated_at = $3 WHERE run_id = $4 AND locked_by = $5",
            )
            .bind(retry_at)
            .bind(error)
            .bind(now_ms())
            .bind(&status.run_id)
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The outbox row of a run: (wanted state, sent state, last error), for the run page.
    pub async fn run_status_delivery(
        &self,
        run_id: &str,
    ) -> Result<Option<(String, Option<String>, Option<String>)>, StoreError> {
        let row = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT wanted_state, sent_state, last_error FROM status_outbox WHERE run_id = $1",
            )
            .bind(run_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Records (or clears, with `None`) the warning about a repository's webhook.
    pub async fn set_hook_warning(
        &self,
        repository_id: &str,
        warning: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        crate::on_db!(self, |pool| match warning {
            Some((alert_status, message)) => sqlx::query(
                "INSERT INTO hook_warnings (repository_id, alert_status, message, checked_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id) DO UPDATE SET \
                 alert_status = excluded.alert_status, message = excluded.message, \
                 checked_at = excluded.checked_at",
            )
            .bind(repository_id)
            .bind(alert_status)
            .bind(message)
            .bind(now)
            .execute(pool)
            .await
            .map(drop),
            None => sqlx::query("DELETE FROM hook_warnings WHERE repository_id = $1")
                .bind(repository_id)
                .execute(pool)
                .await
                .map(drop),
        })?;
        Ok(())
    }

    /// The warning about a repository's webhook, if GitLab disabled it.
    pub async fn hook_warning(&self, repository_id: &str) -> Result<Option<String>, StoreError> {
        let message = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT message FROM hook_warnings WHERE repository_id = $1")
                .bind(repository_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(message)
    }
}
