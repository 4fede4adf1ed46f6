//! The worker's loops, started by `lablink serve` on replicas with the `worker` role: delivery
//! processing, the task queue, run executors, the status outbox, lease reaping and this
//! replica's worktree housekeeping. Every loop polls the database, so any replica picks up any
//! work; this replica's own new work also wakes the loop at once ([`super::wake`]).

use std::sync::Arc;
use std::time::Duration;

use lablink_core::run::{FailureReason, RunEvent};
use lablink_store::runs::Holder;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::executor::{CiRuntime, decode_cancel};
use crate::{ServiceError, Services};

/// A run whose worker vanished this many times is failed instead of queued again.
pub const MAX_RUN_ATTEMPTS: i64 = 3;

/// How this replica works: how fast it looks for work and how much it takes on.
#[derive(Debug, Clone)]
pub struct CiWorkerConfig {
    /// How long an idle loop waits before looking again.
    pub poll: Duration,
    /// How many runs execute at once on this replica (setting `max_concurrent_runs`): one loop
    /// per run, each claiming its next run only when its last one ended.
    pub max_concurrent_runs: usize,
    /// How often this replica removes its worktrees of deleted CI jobs and its spares of
    /// disconnected repositories.
    pub tidy_every: Duration,
}

impl Default for CiWorkerConfig {
    fn default() -> CiWorkerConfig {
        CiWorkerConfig {
            poll: Duration::from_millis(50),
            max_concurrent_runs: 2,
            tidy_every: Duration::from_secs(120),
        }
    }
}

/// Starts the worker loops on `rt` (this replica's runtime). When `stop_claiming` is cancelled
/// they take no new work; a run under way goes on until it ends or `rt.hand_back` is cancelled,
/// so the caller decides how long to wait for them.
pub fn spawn_ci_workers(
    services: Services,
    rt: Arc<CiRuntime>,
    config: CiWorkerConfig,
    stop_claiming: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let poll = config.poll;
    let wake = Arc::clone(&services.wake);
    let worker_id = rt.worker_id.clone();
    let shutdown = stop_claiming;
    let mut handles = vec![
        spawn_loop(
            "webhook deliveries",
            poll,
            Some(Arc::clone(&wake.deliveries)),
            shutdown.clone(),
            each_time(&services, &worker_id, |s, worker| async move {
                s.process_next_deliveries(&worker).await
            }),
        ),
        spawn_loop(
            "task queue",
            poll,
            None,
            shutdown.clone(),
            each_time(&services, &rt, |s, rt| async move {
                s.run_next_queue_item(&rt).await
            }),
        ),
        spawn_loop(
            "commit statuses",
            poll,
            Some(Arc::clone(&wake.statuses)),
            shutdown.clone(),
            each_time(&services, &worker_id, |s, worker| async move {
                s.deliver_next_status(&worker).await
            }),
        ),
        spawn_loop(
            "stale connects",
            poll * 4,
            None,
            shutdown.clone(),
            each_time(&services, &(), |s, ()| async move {
                let recovered = s
                    .recover_stale_connections(crate::repositories::STALE_CONNECT_AFTER)
                    .await?;
                Ok(recovered > 0)
            }),
        ),
    ];
    for _ in 0..config.max_concurrent_runs.max(1) {
        handles.push(spawn_loop(
            "ci runs",
            poll * 4,
            Some(Arc::clone(&wake.runs)),
            shutdown.clone(),
            each_time(&services, &rt, |s, rt| async move {
                s.reap_expired_runs().await?;
                let ran = s.execute_next_run(&rt).await?;
                if ran {
                    // The run's final status is queued: post it now.
                    s.wake.statuses.notify_one();
                }
                Ok(ran)
            }),
        ));
    }
    handles.push(tokio::spawn(tidy_loop(
        services,
        rt,
        config.tidy_every,
        shutdown,
    )));
    handles
}

/// A loop's step: `step` called with its own clones of the services and of `with`.
fn each_time<W, F, Fut>(services: &Services, with: &W, step: F) -> impl Fn() -> Fut + Send + 'static
where
    W: Clone + Send + 'static,
    F: Fn(Services, W) -> Fut + Send + 'static,
{
    let (services, with) = (services.clone(), with.clone());
    move || step(services.clone(), with.clone())
}

/// Calls `step` until it reports no work, then waits `idle` or until `wake` is notified; errors
/// are logged and waited out.
fn spawn_loop<F, Fut>(
    name: &'static str,
    idle: Duration,
    wake: Option<Arc<Notify>>,
    shutdown: CancellationToken,
    step: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, ServiceError>> + Send,
{
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let wait = match step().await {
                Ok(true) => continue,
                Ok(false) => idle,
                Err(e) => {
                    tracing::warn!(worker = name, error = %e, "CI worker step failed");
                    idle * 20
                }
            };
            let woken = async {
                match &wake {
                    Some(notify) => notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
            }
        }
    })
}

/// This replica's own housekeeping: worktrees of deleted CI jobs and spares of disconnected
/// repositories (reconciliation and schema sweeps are the fleet's, see [`crate::scheduler`]).
async fn tidy_loop(
    services: Services,
    rt: Arc<CiRuntime>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let kept = tokio::try_join!(
            services.db.ci_job_ids(),
            services.db.connected_repository_ids()
        );
        match kept {
            Ok((jobs, repositories)) => {
                // Deleting 20,000 files takes a while: not on the async workers.
                let rt = Arc::clone(&rt);
                let remove = move || rt.remove_worktrees_except(&jobs, &repositories);
                match tokio::task::spawn_blocking(remove).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        tracing::info!(
                            removed = n,
                            "removed worktrees of deleted CI jobs and disconnected repositories"
                        )
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove old worktrees"),
                    Err(e) => tracing::warn!(error = %e, "worktree removal stopped"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list CI jobs and repositories"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}

impl Services {
    /// Runs whose worker stopped renewing its lease: queued again, failed after too many
    /// attempts, or cancelled when that had been asked for.
    pub async fn reap_expired_runs(&self) -> Result<(), ServiceError> {
        for run in self.db.runs_with_expired_lease().await? {
            let state = run.state;
            let event = if run.cancel_requested {
                RunEvent::Cancelled(decode_cancel(run.cancel_reason.as_deref().unwrap_or("")))
            } else if run.attempts >= MAX_RUN_ATTEMPTS {
                RunEvent::Failed(FailureReason::TooManyAttempts {
                    attempts: u32::try_from(run.attempts).unwrap_or(u32::MAX),
                })
            } else {
                RunEvent::LeaseExpired
            };
            let holder = Holder::ExpiredBefore(lablink_store::now_ms());
            self.apply_run_event(&run.id, state, holder, &event).await?;
        }
        Ok(())
    }
}
