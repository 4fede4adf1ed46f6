//! The durable queue of background tasks (table `jobs`). Every background effect that is not a
//! delivery, run or status row of its own is a queue item here: a [`Task`] with attempts. A
//! worker claims an item with a lease (`locked_until`), and an item whose lease ran out (its
//! replica died) is claimable again. ("CI jobs", the dbt jobs users configure, are `ci_jobs`.)

use serde::{Deserialize, Serialize};

use crate::{Db, StoreError, new_id, now_ms};

/// What a queue item asks for: its kind (the `kind` column) and payload (`payload`, JSON). Every
/// kind is here, and the service dispatches them in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Task {
    /// Rotate (or re-create) a repository's project access token.
    #[serde(rename = "repositories.rotate_project_token")]
    RotateProjectToken {
        repository_id: String,
        /// The token to rotate: a task for a token that was already replaced does nothing.
        project_token_id: i64,
    },
    /// Fetch the rest of a user's import list from GitLab.
    #[serde(rename = "repositories.fill_import_list")]
    FillImportList { user_id: String },
    /// Drop a closed merge request's CI schema `lablink_pr_<ci_job_id>_<mr_iid>`.
    #[serde(rename = "ci.drop_schema")]
    DropCiSchema { ci_job_id: i64, mr_iid: i64 },
    /// Repack delivery bodies stored by earlier versions as LZ4 (queued once, by migration 0010).
    #[serde(rename = "deliveries.repack_bodies")]
    RepackDeliveryBodies {},
}

impl Task {
    /// The `kind` and `payload` columns.
    pub(crate) fn columns(&self) -> (String, String) {
        let tagged = serde_json::to_value(self).expect("a task is plain data");
        (
            tagged["kind"].as_str().unwrap_or_default().to_owned(),
            tagged["payload"].to_string(),
        )
    }

    /// The kind's name, as stored and as logged (e.g. `ci.drop_schema`).
    pub fn kind(&self) -> String {
        self.columns().0
    }

    fn from_columns(kind: &str, payload: &str) -> Result<Task, StoreError> {
        let payload: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| StoreError::Corrupt(format!("queue item of kind {kind}: {e}")))?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload }))
            .map_err(|e| StoreError::Corrupt(format!("queue item of kind {kind}: {e}")))
    }
}

lablink_core::text_enum! {
    pub enum QueueItemStatus ("queue item status") {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

/// A claimed (or inspected) queue item.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub id: String,
    pub task: Task,
    pub status: QueueItemStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    id: String,
    kind: String,
    payload: String,
    #[sqlx(try_from = "String")]
    status: QueueItemStatus,
    attempts: i64,
    max_attempts: i64,
    run_after: i64,
    locked_by: Option<String>,
    locked_until: Option<i64>,
    last_error: Option<String>,
}

impl QueueRow {
    fn open(self) -> Result<QueueItem, StoreError> {
        Ok(QueueItem {
            task: Task::from_columns(&self.kind, &self.payload)?,
            id: self.id,
            status: self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_after: self.run_after,
            locked_by: self.locked_by,
            locked_until: self.locked_until,
            last_error: self.last_error,
        })
    }
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
    /// Queues `task`, to run at `run_after` (Unix ms) or later.
    pub async fn enqueue(
        &self,
        task: &Task,
        max_attempts: i64,
        run_after: i64,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = now_ms();
        let (kind, payload) = task.columns();
        crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_after, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(&kind)
            .bind(&payload)
            .bind(QueueItemStatus::Queued.as_str())
            .bind(max_attempts.max(1))
            .bind(run_after)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(id)
    }

    /// Claims the oldest due item (queued and due, or running with an expired lease) for
    /// `worker` for `lease_ms`, counting an attempt. `None` when nothing is due.
    pub async fn claim_queue_item(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<QueueItem>, StoreError> {
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
        let row: Option<QueueRow> = match self {
            Db::Sqlite(pool) => {
                sqlx::query_as(&update(PICK))
                    .bind(QueueItemStatus::Queued.as_str())
                    .bind(QueueItemStatus::Running.as_str())
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(&update(&format!("{PICK} FOR UPDATE SKIP LOCKED")))
                    .bind(QueueItemStatus::Queued.as_str())
                    .bind(QueueItemStatus::Running.as_str())
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .fetch_optional(pool)
                    .await?
            }
        };
        row.map(QueueRow::open).transpose()
    }

    /// Extends the lease of an item this worker is running; `false` means it had lost the lease.
    pub async fn renew_queue_lease(
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
            .bind(QueueItemStatus::Running.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Marks an item done. Only the worker holding the lease may; `false` means it had lost it.
    pub async fn complete_queue_item(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = $1, locked_by = NULL, locked_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND locked_by = $4 AND status = $5",
            )
            .bind(QueueItemStatus::Done.as_str())
            .bind(now_ms())
            .bind(id)
            .bind(worker)
            .bind(QueueItemStatus::Running.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Records a failed attempt: queued again after `retry_in_ms` while attempts remain, else
    /// marked failed. `None` when the worker no longer held the lease.
    pub async fn fail_queue_item(
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
            .bind(QueueItemStatus::Queued.as_str())
            .bind(QueueItemStatus::Failed.as_str())
            .bind(retry_at)
            .bind(error)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(QueueItemStatus::Running.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Ok(None);
        }
        let item = self
            .queue_item(id)
            .await?
            .ok_or(StoreError::NotFound("queue item"))?;
        Ok(Some(if item.status == QueueItemStatus::Failed {
            FailOutcome::GaveUp
        } else {
            FailOutcome::RetryAt(retry_at)
        }))
    }

    pub async fn queue_item(&self, id: &str) -> Result<Option<QueueItem>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<QueueRow> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(QueueRow::open).transpose()
    }
}
