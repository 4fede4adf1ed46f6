//! How much work waits in the database, for the fleet's gauges: a few aggregate queries, cheap
//! enough to run every few seconds (each reads an index or a small table).

use crate::{Db, StoreError};

/// The fleet's backlog at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Webhook deliveries stored and not handled yet.
    pub deliveries_waiting: i64,
    /// When the oldest of them arrived (Unix ms), if any.
    pub oldest_delivery_at: Option<i64>,
    /// Runs by state (every state that has runs).
    pub runs_by_state: Vec<(String, i64)>,
    /// Commit statuses decided and not yet accepted by GitLab.
    pub statuses_unsent: i64,
    /// Queue items not finished (queued or running), by kind.
    pub queue_by_kind: Vec<(String, i64)>,
}

impl Db {
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let backlog = crate::on_db!(self, |pool| {
            let (deliveries_waiting, oldest_delivery_at): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(received_at) FROM webhook_deliveries \
                 WHERE status = 'received'",
            )
            .fetch_one(pool)
            .await?;
            let runs_by_state =
                sqlx::query_as("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
                    .fetch_all(pool)
                    .await?;
            let statuses_unsent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM status_outbox \
                 WHERE sent_version IS NULL OR sent_version < version",
            )
            .fetch_one(pool)
            .await?;
            let queue_by_kind = sqlx::query_as(
                "SELECT kind, COUNT(*) FROM jobs WHERE status IN ('queued', 'running') \
                 GROUP BY kind ORDER BY kind",
            )
            .fetch_all(pool)
            .await?;
            Ok::<Backlog, sqlx::Error>(Backlog {
                deliveries_waiting,
                oldest_delivery_at,
                runs_by_state,
                statuses_unsent,
                queue_by_kind,
            })
        })?;
        Ok(backlog)
    }
}
