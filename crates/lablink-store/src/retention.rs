//! Pruning what is kept only for a while: handled webhook deliveries, run logs and artifacts,
//! audit entries and stale sign-in counters. Deletes go in small batches so a large backlog
//! never holds a long transaction (or, on SQLite, the write lock) against intake.

use crate::{Db, StoreError, on_db};

/// Rows deleted per statement.
const BATCH: i64 = 1000;

/// How many rows of each kind one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub run_logs: u64,
    pub run_artifacts: u64,
    pub audit_entries: u64,
    pub throttle_rows: u64,
    pub webhook_refusals: u64,
}

/// What a pass prunes: everything older than these moments (milliseconds since the epoch).
#[derive(Debug, Clone, Copy)]
pub struct PruneBefore {
    /// Deliveries handled (processed, ignored or failed) before this; waiting ones are kept.
    /// Counts of refused deliveries last seen before this go too.
    pub deliveries: i64,
    /// Logs and artifacts of runs that finished before this, except the artifacts of each
    /// project's production run (its latest successful run on the default branch), which later
    /// merge requests are compared with.
    pub runs: i64,
    pub audit: i64,
    /// Sign-in counters last touched before this and not locked at `now`.
    pub throttle: i64,
    pub now: i64,
}

/// The runs whose logs and artifacts are due, as a subquery on `$1` (the cut-off).
const FINISHED_BEFORE: &str = "SELECT id FROM runs WHERE finished_at < $1";
const PRODUCTION_RUNS: &str = "SELECT p.id FROM runs p WHERE p.mr_iid IS NULL \
     AND p.state = 'success' AND p.finished_at = (SELECT MAX(q.finished_at) FROM runs q \
     WHERE q.project_id = p.project_id AND q.mr_iid IS NULL AND q.state = 'success')";

impl Db {
    /// One pruning pass; repeats each batch until nothing older is left.
    pub async fn prune(&self, before: PruneBefore) -> Result<Pruned, StoreError> {
        let deliveries = format!(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE status <> 'received' AND received_at < $1 LIMIT {BATCH})"
        );
        let logs = format!(
            "DELETE FROM run_logs WHERE (run_id, seq) IN (SELECT run_id, seq FROM run_logs \
             WHERE run_id IN ({FINISHED_BEFORE}) LIMIT {BATCH})"
        );
        let artifacts = format!(
            "DELETE FROM run_artifacts WHERE (run_id, name) IN (SELECT run_id, name \
             FROM run_artifacts WHERE run_id IN ({FINISHED_BEFORE}) \
             AND run_id NOT IN ({PRODUCTION_RUNS}) LIMIT {BATCH})"
        );
        let audit = format!(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < $1 \
             LIMIT {BATCH})"
        );
        Ok(Pruned {
            deliveries: self.delete_all(&deliveries, before.deliveries, 0).await?,
            run_logs: self.delete_all(&logs, before.runs, 0).await?,
            run_artifacts: self.delete_all(&artifacts, before.runs, 0).await?,
            audit_entries: self.delete_all(&audit, before.audit, 0).await?,
            throttle_rows: self
                .delete_all(
                    "DELETE FROM login_throttle WHERE updated_at < $1 AND locked_until < $2",
                    before.throttle,
                    before.now,
                )
                .await?,
            webhook_refusals: self
                .delete_all(
                    "DELETE FROM webhook_refusals WHERE last_at < $1",
                    before.deliveries,
                    0,
                )
                .await?,
        })
    }

    /// Runs a batched `DELETE` (binding `$1`, and `$2` when the statement uses it) until it
    /// deletes nothing; the rows deleted in all.
    async fn delete_all(&self, sql: &str, first: i64, second: i64) -> Result<u64, StoreError> {
        let binds_second = sql.contains("$2");
        let mut total = 0;
        loop {
            let n = on_db!(self, |pool| {
                let mut query = sqlx::query(sql).bind(first);
                if binds_second {
                    query = query.bind(second);
                }
                query.execute(pool).await.map(|r| r.rows_affected())
            })?;
            total += n;
            if n < BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
