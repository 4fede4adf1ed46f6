//! The fleet's periodic work, run by replicas with the `scheduler` role: each pass runs once per
//! period across the fleet, whichever scheduler takes it first ([`lablink_store::periodic`]).
//! The holder renews its lease while the pass runs; a scheduler that dies mid-pass leaves a
//! lease that runs out, and another scheduler takes the pass over.
//!
//! What a replica does for itself (its worktrees, its workspace checkouts, its SQLite log) is not
//! here: every replica with the matching role does that on its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lablink_store::now_ms;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Services;
use crate::ci::executor::CiRuntime;
use crate::retention::Retention;

/// A held pass's lease: short, renewed while the pass runs, so a dead holder's pass is taken
/// over within a minute.
const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How often a scheduler looks whether a pass is due (or its holder died).
const LOOK_EVERY: Duration = Duration::from_secs(30);

/// What the scheduler runs and how often.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This replica's name in the passes' leases.
    pub holder: String,
    /// Reconciliation with GitLab and the sweep of merge request schemas that are due.
    pub reconcile_every: Duration,
    /// Enqueueing the project access token rotations that are due.
    pub rotation_every: Duration,
    /// Pruning what `retention` no longer keeps.
    pub prune_every: Duration,
    /// Refreshing the backlog gauges ([`crate::gauges`]); every scheduler does, not one.
    pub gauges_every: Duration,
    pub retention: Retention,
}

impl SchedulerConfig {
    pub fn new(holder: String, retention: Retention) -> SchedulerConfig {
        SchedulerConfig {
            holder,
            reconcile_every: Duration::from_secs(120),
            rotation_every: Duration::from_secs(3600),
            prune_every: Duration::from_secs(3600),
            gauges_every: Duration::from_secs(15),
            retention,
        }
    }
}

/// Starts the periodic passes; they stop when `stop` is cancelled. Schema sweeps run dbt, so
/// they use `rt` (this replica's runtime, shared with its runs when it is also a worker).
pub fn spawn_scheduler(
    services: Services,
    rt: Arc<CiRuntime>,
    config: SchedulerConfig,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let margin_days = i64::from(services.settings.repositories.token_rotation_margin_days);
    let retention = config.retention;
    let reconcile_every = config.reconcile_every;
    let pass = |name, every| Pass {
        services: services.clone(),
        name,
        every,
        holder: config.holder.clone(),
        stop: stop.clone(),
    };
    vec![
        tokio::spawn(crate::gauges::gauges_loop(
            services.clone(),
            config.gauges_every,
            stop.clone(),
        )),
        tokio::spawn(
            pass("reconciliation", reconcile_every).run(move |s, last_started| {
                let rt = Arc::clone(&rt);
                async move {
                    s.reconcile_and_sweep(&rt, last_started, reconcile_every)
                        .await
                }
            }),
        ),
        tokio::spawn(
            pass("token rotation", config.rotation_every).run(move |s, _| async move {
                match s.schedule_token_rotations(margin_days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(due = n, "project access token rotations enqueued"),
                    Err(e) => tracing::warn!(error = %e, "scheduling token rotations failed"),
                }
            }),
        ),
        tokio::spawn(
            pass("pruning", config.prune_every).run(move |s, _| async move {
                match s.prune_old_records(retention).await {
                    Ok(pruned) if pruned != Default::default() => {
                        tracing::info!(?pruned, "old records pruned");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning old records failed"),
                }
            }),
        ),
    ]
}

/// One named pass, taken by one scheduler of the fleet per period.
struct Pass {
    services: Services,
    name: &'static str,
    every: Duration,
    holder: String,
    stop: CancellationToken,
}

impl Pass {
    /// Looks for the pass every [`LOOK_EVERY`] (or its period, when shorter) and runs `body`
    /// whenever this replica takes it; `body` is given when the pass last started (on any
    /// replica). Failures inside `body` are its own to report: the pass is due again a period
    /// later either way.
    async fn run<F, Fut>(self, body: F)
    where
        F: Fn(Services, Option<DateTime<Utc>>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let every_ms = ms(self.every);
        loop {
            let started = now_ms();
            match self
                .services
                .db
                .take_periodic_pass(self.name, &self.holder, started, ms(LEASE))
                .await
            {
                Ok(Some(taken)) => {
                    let last_started = taken
                        .last_started_at
                        .and_then(DateTime::<Utc>::from_timestamp_millis);
                    let renewal =
                        tokio::spawn(renew(self.services.clone(), self.name, self.holder.clone()));
                    // What the pass logs names it, whichever scheduler took it.
                    body(self.services.clone(), last_started)
                        .instrument(tracing::info_span!("periodic_pass", pass = self.name))
                        .await;
                    renewal.abort();
                    metrics::counter!("lablink_periodic_passes_total", "pass" => self.name)
                        .increment(1);
                    let now = now_ms();
                    match self
                        .services
                        .db
                        .finish_periodic_pass(
                            self.name,
                            &self.holder,
                            (started, now),
                            started.saturating_add(every_ms),
                        )
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            pass = self.name,
                            "a periodic pass outlived its lease; another scheduler took it over"
                        ),
                        Err(e) => {
                            tracing::warn!(pass = self.name, error = %e, "cannot end a periodic pass")
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pass = self.name, error = %e, "cannot look for a periodic pass")
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(LOOK_EVERY.min(self.every)) => {}
            }
        }
    }
}

async fn renew(services: Services, name: &'static str, holder: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let until = now_ms().saturating_add(ms(LEASE));
        match services.db.renew_periodic_pass(name, &holder, until).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => tracing::warn!(pass = name, error = %e, "cannot renew a periodic pass"),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Services {
    /// Reconciliation with GitLab (merge requests changed since the last pass started, less one
    /// period of overlap so that one updated during that pass is seen again; everything on the
    /// fleet's first pass), then the sweep of the schemas that are due: right after reconciliation
    /// found merge requests closed meanwhile, what leaked while lablink was down goes too.
    async fn reconcile_and_sweep(
        &self,
        rt: &CiRuntime,
        last_started: Option<DateTime<Utc>>,
        every: Duration,
    ) {
        let since =
            last_started.map(|at| at - chrono::Duration::from_std(every).unwrap_or_default());
        match self.reconcile(since).await {
            Ok(report) => {
                for error in &report.errors {
                    tracing::warn!(error = %error, "reconciliation");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
        }
        match self.sweep_schemas(rt).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(schemas = n, "swept merge request schemas that were due"),
            Err(e) => tracing::warn!(error = %e, "some schemas due could not be dropped"),
        }
    }
}
