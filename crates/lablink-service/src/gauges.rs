//! The fleet's backlog as Prometheus gauges, read from the database (so every replica that
//! refreshes them shows the same values; dashboards take the maximum across replicas).
//! Schedulers refresh them ([`gauges_loop`]).

use std::collections::BTreeSet;
use std::time::Duration;

use lablink_core::run::RunState;
use lablink_store::now_ms;
use tokio_util::sync::CancellationToken;

use crate::{ServiceError, Services};

impl Services {
    /// Reads the backlog once and sets the gauges; `shown_kinds` are the queue kinds shown
    /// before, set to 0 when none is left.
    async fn refresh_gauges(&self, shown_kinds: &mut BTreeSet<String>) -> Result<(), ServiceError> {
        let backlog = self.db.backlog().await?;
        metrics::gauge!("lablink_deliveries_waiting").set(backlog.deliveries_waiting as f64);
        let oldest_age = backlog
            .oldest_delivery_at
            .map_or(0, |at| now_ms().saturating_sub(at).max(0));
        metrics::gauge!("lablink_deliveries_oldest_waiting_seconds")
            .set(oldest_age as f64 / 1000.0);
        for state in RunState::ALL {
            let n = backlog
                .runs_by_state
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("lablink_runs", "state" => state.as_str()).set(n as f64);
        }
        metrics::gauge!("lablink_statuses_unsent").set(backlog.statuses_unsent as f64);
        let mut now_shown = BTreeSet::new();
        for (kind, n) in &backlog.queue_by_kind {
            metrics::gauge!("lablink_queue_items", "kind" => kind.clone()).set(*n as f64);
            now_shown.insert(kind.clone());
        }
        for gone in shown_kinds.difference(&now_shown) {
            metrics::gauge!("lablink_queue_items", "kind" => gone.clone()).set(0.0);
        }
        *shown_kinds = now_shown;
        Ok(())
    }
}

/// Refreshes the backlog gauges now and then every `every` until `stop`.
pub async fn gauges_loop(services: Services, every: Duration, stop: CancellationToken) {
    let mut shown_kinds = BTreeSet::new();
    loop {
        if let Err(e) = services.refresh_gauges(&mut shown_kinds).await {
            tracing::warn!(error = %e, "cannot read the backlog for the metrics");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}
