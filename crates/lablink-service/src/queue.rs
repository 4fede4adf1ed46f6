//! The background task queue's worker side: claim the next due [`Task`], keep its lease while it
//! runs, dispatch it (every kind has its arm in [`Services::dispatch`], the one place), and record
//! the outcome, retrying with backoff.

use std::time::Duration;

use lablink_store::queue::{QueueItem, Task};

use crate::ci::executor::CiRuntime;
use crate::{ServiceError, Services};

/// An item's lease is short and renewed while it runs, so an item interrupted by a crash is
/// taken up again within a minute, while a long one (a schema drop) keeps its lease.
const LEASE_MS: i64 = 60_000;
const RENEW_EVERY: Duration = Duration::from_secs(20);

impl Services {
    /// Queues `task` now, with `max_attempts` attempts.
    pub(crate) async fn enqueue(&self, task: Task, max_attempts: i64) -> Result<(), ServiceError> {
        self.db
            .enqueue(&task, max_attempts, lablink_store::now_ms())
            .await?;
        Ok(())
    }

    /// Claims and runs one due queue item; `false` when none was due.
    pub async fn run_next_queue_item(&self, rt: &CiRuntime) -> Result<bool, ServiceError> {
        let Some(item) = self.db.claim_queue_item(&rt.worker_id, LEASE_MS).await? else {
            return Ok(false);
        };
        let renewal = {
            let (db, id, worker) = (self.db.clone(), item.id.clone(), rt.worker_id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    match db.renew_queue_lease(&id, &worker, LEASE_MS).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(item = %id, error = %e, "cannot renew a queue lease")
                        }
                    }
                }
            })
        };
        let result = self.dispatch(rt, &item).await;
        renewal.abort();
        match result {
            Ok(()) => {
                self.db.complete_queue_item(&item.id, &rt.worker_id).await?;
            }
            Err(e) => {
                let retry_ms = 1000 * (1_i64 << item.attempts.clamp(0, 8));
                tracing::warn!(item = %item.id, task = ?item.task, error = %e, "queued task failed");
                self.db
                    .fail_queue_item(&item.id, &rt.worker_id, &e.to_string(), retry_ms)
                    .await?;
            }
        }
        Ok(true)
    }

    #[tracing::instrument(
        name = "queue_item",
        skip_all,
        fields(item_id = %item.id, kind = %item.task.kind()),
    )]
    async fn dispatch(&self, rt: &CiRuntime, item: &QueueItem) -> Result<(), ServiceError> {
        match &item.task {
            Task::RotateProjectToken {
                repository_id,
                project_token_id,
            } => {
                self.run_rotation_task(repository_id, *project_token_id)
                    .await
            }
            Task::FillImportList { user_id } => self.fill_import_list(user_id).await,
            Task::DropCiSchema { ci_job_id, mr_iid } => {
                self.drop_mr_schemas(rt, *ci_job_id, *mr_iid).await
            }
            Task::RepackDeliveryBodies {} => {
                let mut after = String::new();
                while let Some(last) = self.db.repack_legacy_delivery_bodies(&after, 200).await? {
                    after = last;
                }
                Ok(())
            }
        }
    }
}
