//! Retention: how long lablink keeps what grows with use, and the pass that prunes the rest
//! (once an hour across the fleet, by a scheduler: [`crate::scheduler`]). Workspace checkouts
//! are files of one replica: each replica with the `web` role reclaims its own
//! ([`checkout_reclaim_loop`]).

use std::time::Duration;

use lablink_store::now_ms;
use lablink_store::retention::{PruneBefore, Pruned};
use tokio_util::sync::CancellationToken;

use crate::{ServiceError, Services};

/// Sign-in counters untouched this long are deleted (the throttle itself forgets failures after
/// an hour; unlocked rows past that only take space).
const THROTTLE_ROWS_FOR: Duration = Duration::from_secs(24 * 3600);

/// How long each kind of record is kept (settings `retention_*_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Webhook deliveries once handled.
    pub deliveries: Duration,
    /// Run logs and artifacts (production's manifest is kept whatever its age).
    pub runs: Duration,
    pub audit: Duration,
    /// A replica's checkout of a workspace nobody changed for this long (the workspace itself,
    /// saved changes included, stays in the database; a checkout is rebuilt on next use).
    pub workspace_checkouts: Duration,
}

impl Default for Retention {
    /// 30 days of deliveries, 90 of run logs and artifacts, a year of audit entries, a week of
    /// idle workspace checkouts.
    fn default() -> Self {
        let days = |n: u64| Duration::from_secs(n * 24 * 3600);
        Retention {
            deliveries: days(30),
            runs: days(90),
            audit: days(365),
            workspace_checkouts: days(7),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Services {
    /// Prunes every record older than `retention` allows.
    #[tracing::instrument(skip_all)]
    pub async fn prune_old_records(&self, retention: Retention) -> Result<Pruned, ServiceError> {
        let now = now_ms();
        let before = |keep: Duration| now.saturating_sub(ms(keep));
        Ok(self
            .db
            .prune(PruneBefore {
                deliveries: before(retention.deliveries),
                runs: before(retention.runs),
                audit: before(retention.audit),
                throttle: before(THROTTLE_ROWS_FOR),
                now,
            })
            .await?)
    }

    /// Deletes this replica's checkouts of workspaces nobody changed for `idle`.
    #[tracing::instrument(skip_all)]
    pub async fn reclaim_workspace_checkouts(&self, idle: Duration) -> Result<(), ServiceError> {
        self.reclaim_idle_checkouts(now_ms().saturating_sub(ms(idle)))
            .await
    }
}

/// Reclaims this replica's idle workspace checkouts at start and then every `every` until `stop`.
pub async fn checkout_reclaim_loop(
    services: Services,
    idle: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = services.reclaim_workspace_checkouts(idle).await {
            tracing::warn!(error = %e, "reclaiming idle workspace checkouts failed");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}
