//! The durable job queue. Every background effect is a row here; a worker claims a job with a
//! lease (`locked_until`), and a job whose lease ran out (its replica died) is claimable again.

use crate::{Db, StoreError, new_id, now_ms};

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, kind, payload, status, attempts, max_attempts, run_after, locked_by, locked_until, last_error";

/// What to do with a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, to run at this time (Unix ms).
    RetryAt(i64),
    /// No attempts left: the job is marked failed.
    GaveUp,
}

impl Db {
    /// Queues a job of `kind` with a JSON payload, to run at `run_after` (Unix ms) or later.
    pub async fn enqueue_job(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        max_attempts: i64,
        run_after: i64,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = now_ms();
        crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_after, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(kind)
            .bind(payload.to_string())
            .bind(QUEUED)
            .bind(max_attempts.max(1))
            .bind(run_after)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(id)
    }

    /// Claims the oldest due job (queued and due, or running with an expired lease) for
    /// `worker` for `lease_ms`, counting an attempt. `None` when nothing is due.
    pub async fn claim_job(&self, worker: &str, lease_ms: i64) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        // The only statement written twice: PostgreSQL needs `FOR UPDATE SKIP LOCKED` so that
        // concurrent replicas pick different rows; SQLite has a single writer, so the plain
        // UPDATE ... WHERE id = (SELECT ...) is already atomic there.
        const PICK: &str = "SELECT id FROM jobs \
             WHERE (status = $1 AND run_after <= $3) OR (status = $2 AND locked_until < $3) \
             ORDER BY run_after, id LIMIT 1";
        let update = |pick: &str| {
            format!(
                "UPDATE jobs SET status = $2, attempts = attempts + 1, locked_by = $4, \
                 locked_until = $5, updated_at = $3 WHERE id = ({pick}) RETURNING {COLUMNS}"
            )
        };
        let job = match self {
            Db::Sqlite(pool) => {
                sqlx::query_as(&update(PICK))
                    .bind(QUEUED)
                    .bind(RUNNING)
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(&update(&format!("{PICK} FOR UPDATE SKIP LOCKED")))
                    .bind(QUEUED)
                    .bind(RUNNING)
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(job)
    }

    /// Extends the lease of a job this worker is running; `false` means it had lost the lease.
    pub async fn renew_job_lease(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET locked_until = $1, updated_at = $2 \
                 WHERE id = $3 AND locked_by = $4 AND status = $5",
            )
            .bind(now + lease_ms)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(RUNNING)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Marks a job done. Only the worker holding the lease may; `false` means it had lost it.
    pub async fn complete_job(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = $1, locked_by = NULL, locked_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND locked_by = $4 AND status = $5",
            )
            .bind(DONE)
            .bind(now_ms())
            .bind(id)
            .bind(worker)
            .bind(RUNNING)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Records a failed attempt: queued again after `retry_in_ms` while attempts remain, else
    /// marked failed. `None` when the worker no longer held the lease.
    pub async fn fail_job(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        retry_in_ms: i64,
    ) -> Result<Option<FailOutcome>, StoreError> {
        let now = now_ms();
        let retry_at = now + retry_in_ms;
        let n = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET \
                   status = CASE WHEN attempts < max_attempts THEN $1 ELSE $2 END, \
                   run_after = $3, locked_by = NULL, locked_until = NULL, last_error = $4, \
                   updated_at = $5 \
                 WHERE id = $6 AND locked_by = $7 AND status = $8",
            )
            .bind(QUEUED)
            .bind(FAILED)
            .bind(retry_at)
            .bind(error)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(RUNNING)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Ok(None);
        }
        let job = self.job(id).await?.ok_or(StoreError::NotFound("job"))?;
        Ok(Some(if job.status == FAILED {
            FailOutcome::GaveUp
        } else {
            FailOutcome::RetryAt(retry_at)
        }))
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let job = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(job)
    }
}
