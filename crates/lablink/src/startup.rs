//! Wiring: open the database, apply migrations, load the master key, bind the listeners, start
//! what the replica's roles ask for, serve until told to stop, then shut down gracefully (stop
//! accepting, finish in-flight requests; workers stop claiming and finish their runs within the
//! grace period, then hand back what is left).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lablink_exec::sandbox::Isolation;
use lablink_service::ci::executor::CiRuntime;
use lablink_service::ci::worker::CiWorkerConfig;
use lablink_service::scheduler::SchedulerConfig;
use lablink_service::settings::RepositorySettings;
use lablink_service::setup::SetupLink;
use lablink_service::{ServiceSettings, Services};
use lablink_store::Db;
use lablink_store::crypto::KeyRing;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{Roles, Settings};
use crate::telemetry;

/// How long a stopping worker waits, after its grace period, for its runs to be handed back.
const HAND_BACK_WAIT: Duration = Duration::from_secs(10);
/// How often a web replica reclaims its idle workspace checkouts.
const RECLAIM_CHECKOUTS_EVERY: Duration = Duration::from_secs(3600);

/// A lablink server with its listeners bound, ready to run.
pub struct Application {
    /// `None` on a replica with neither the `web` nor the `intake` role: it serves no HTTP but
    /// its metrics.
    listener: Option<TcpListener>,
    metrics_listener: TcpListener,
    services: Services,
    /// The same database the services use, for the loops this binary runs and the final close.
    db: Db,
    setup_link: SetupLink,
    trusted_proxies: lablink_web::TrustedProxies,
    retention: lablink_service::retention::Retention,
    roles: Roles,
    worker: CiWorkerConfig,
    shutdown_grace: Duration,
    /// This replica's runs, worktrees and schema drops (`worker` and `scheduler` roles).
    runtime: Arc<CiRuntime>,
}

/// Opens the database named by the settings, creating the SQLite file's directory if needed.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    if let Some(path) = settings.database_url.strip_prefix("sqlite://")
        && let Some(dir) = Path::new(path.split('?').next().unwrap_or(path)).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the database directory {}", dir.display()))?;
    }
    Db::connect(&settings.database_url)
        .await
        .context("cannot open the database (setting `database_url`)")
}

/// The use-case context for these settings, on an open database.
pub fn services(settings: &Settings, db: Db, keys: KeyRing, public_url: Url) -> Services {
    Services::new(
        db,
        keys,
        ServiceSettings {
            public_url,
            session_idle: settings.session_idle,
            session_absolute: settings.session_absolute,
            operator_gitlab: settings.operator_gitlab.clone(),
            allow_http_loopback_gitlab: settings.allow_http_loopback_gitlab,
            allow_private_network_gitlab: settings.allow_private_network_gitlab,
            repositories: RepositorySettings {
                project_token_days: settings.project_token_days,
                deploy_keys: settings.repository_deploy_keys,
                token_rotation_margin_days: settings.token_rotation_margin_days,
                ..RepositorySettings::in_data_dir(&settings.data_dir)
            },
            runs: settings.runs.clone(),
        },
    )
}

impl Application {
    /// Opens and migrates the database, binds both listeners (port 0 picks a free port) and,
    /// on an empty database, creates the one-time setup link.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let keys = crate::master_key::load_key_ring(&settings)?;
        let db = open_database(&settings).await?;
        db.migrate()
            .await
            .context("cannot apply database migrations")?;
        let roles = settings.roles;
        let listener = if roles.web || roles.intake {
            Some(TcpListener::bind(settings.listen).await.with_context(|| {
                format!("cannot listen on {} (setting `listen`)", settings.listen)
            })?)
        } else {
            None
        };
        let metrics_listener = TcpListener::bind(settings.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (setting `metrics_listen`)",
                    settings.metrics_listen
                )
            })?;
        let public_url = match (&settings.public_url, &listener) {
            (Some(u), _) => u.clone(),
            (None, Some(listener)) => Url::parse(&format!("http://{}", listener.local_addr()?))?,
            (None, None) => Url::parse(&format!("http://{}", settings.listen))?,
        };
        let services = services(&settings, db.clone(), keys, public_url);
        let setup_link = services.setup_link_if_empty().await?;
        // Requests are checked against rules in memory: load them before serving.
        services
            .refresh_ip_rules()
            .await
            .context("cannot load the accounts' IP restrictions")?;
        Ok(Application {
            listener,
            metrics_listener,
            services,
            db,
            setup_link,
            trusted_proxies: lablink_web::TrustedProxies::new(settings.trusted_proxies.clone()),
            retention: settings.retention,
            roles,
            worker: CiWorkerConfig {
                max_concurrent_runs: settings.max_concurrent_runs,
                ..CiWorkerConfig::default()
            },
            shutdown_grace: settings.shutdown_grace,
            runtime: Arc::new(CiRuntime::new(
                settings.data_dir.join("ci"),
                format!("ci-{}", uuid::Uuid::new_v4()),
            )),
        })
    }

    /// The port of pages, API and intake (0 on a replica that serves none of them).
    pub fn port(&self) -> u16 {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port())
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener.local_addr().map_or(0, |a| a.port())
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// What this start did about the first account (the setup link it opened, if any).
    pub fn setup(&self) -> &SetupLink {
        &self.setup_link
    }

    /// The one-time setup link this start opened.
    pub fn setup_link(&self) -> Option<&str> {
        match &self.setup_link {
            SetupLink::Opened(link) => Some(link),
            SetupLink::NotNeeded | SetupLink::OpenedByAnotherReplica => None,
        }
    }

    /// Serves until `stop` is cancelled, then drains in-flight requests, lets the worker's runs
    /// end within the grace period (handing back the rest) and returns.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let roles = self.roles;
        let main = async {
            let Some(listener) = self.listener else {
                stop.cancelled().await;
                return Ok(());
            };
            let faces = lablink_web::Faces {
                web: roles.web,
                intake: roles.intake,
            };
            let state = lablink_web::AppState::new(self.services.clone(), self.trusted_proxies);
            let app = lablink_web::router(state, faces)
                .into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .await
        };
        let metrics = axum::serve(self.metrics_listener, telemetry::metrics_app())
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        tracing::info!(
            public_url = %self.services.settings.public_url,
            roles = %roles,
            // The name this replica's leases carry (`locked_by` in the database).
            worker = %self.runtime.worker_id,
            "lablink is serving"
        );
        // Every replica writes (intake alone does), so every replica keeps the log short.
        let mut background = vec![
            tokio::spawn(checkpoint_loop(self.db.clone(), stop.clone())),
            tokio::spawn(lablink_service::ip_restrictions::ip_rules_loop(
                self.services.clone(),
                stop.clone(),
            )),
        ];
        if roles.web {
            background.push(tokio::spawn(
                lablink_service::retention::checkout_reclaim_loop(
                    self.services.clone(),
                    self.retention.workspace_checkouts,
                    RECLAIM_CHECKOUTS_EVERY,
                    stop.clone(),
                ),
            ));
        }
        if roles.worker || roles.scheduler {
            check_run_isolation(self.services.settings.runs.isolation).await;
        }
        if roles.scheduler {
            background.extend(lablink_service::scheduler::spawn_scheduler(
                self.services.clone(),
                Arc::clone(&self.runtime),
                SchedulerConfig::new(self.runtime.worker_id.clone(), self.retention),
                stop.clone(),
            ));
        }
        let workers = if roles.worker {
            lablink_service::ci::worker::spawn_ci_workers(
                self.services.clone(),
                Arc::clone(&self.runtime),
                self.worker.clone(),
                stop.clone(),
            )
        } else {
            Vec::new()
        };
        let drained = async {
            stop.cancelled().await;
            finish_or_hand_back(workers, &self.runtime, self.shutdown_grace).await;
        };
        let (main, metrics, ()) = tokio::join!(main, metrics, drained);
        // A pass cut short here is taken over by another scheduler when its lease runs out.
        background.iter().for_each(tokio::task::JoinHandle::abort);
        main.context("the HTTP server failed")?;
        metrics.context("the metrics server failed")?;
        self.db.close().await;
        tracing::info!("lablink stopped");
        Ok(())
    }
}

/// Waits for the worker loops, which take no new work once stopping, for `grace`; then hands
/// back the runs still under way (stopped, queued again for another worker) and waits a little
/// for that. What is still busy after that is dropped: its leases run out and another worker
/// takes it up.
async fn finish_or_hand_back(
    mut workers: Vec<tokio::task::JoinHandle<()>>,
    runtime: &CiRuntime,
    grace: Duration,
) {
    if workers.is_empty() {
        return;
    }
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "stopping: workers finish what they run"
    );
    if tokio::time::timeout(grace, wait_all(&mut workers))
        .await
        .is_err()
    {
        tracing::info!("stopping: the grace period is over, handing back the runs under way");
        runtime.hand_back.cancel();
        // A handle already awaited to its end must not be awaited again.
        workers.retain(|w| !w.is_finished());
        if tokio::time::timeout(HAND_BACK_WAIT, wait_all(&mut workers))
            .await
            .is_err()
        {
            tracing::warn!("stopping: some work was not handed back; its leases will run out");
        }
    }
    workers.iter().for_each(tokio::task::JoinHandle::abort);
}

async fn wait_all(workers: &mut [tokio::task::JoinHandle<()>]) {
    for worker in workers {
        if let Err(e) = worker.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "a worker loop panicked");
        }
    }
}

/// Says at start what runs of repository content will be isolated by, and whether they can be.
async fn check_run_isolation(isolation: Isolation) {
    match isolation {
        Isolation::None => tracing::warn!(
            "run_isolation = \"none\": dbt processes of CI runs are NOT sandboxed; repository \
             content can read what lablink can read (its data directory, its master key)"
        ),
        Isolation::Bubblewrap => {
            if let Err(e) = lablink_exec::sandbox::probe().await {
                tracing::error!(error = %e, "CI runs will fail until the sandbox can start");
            }
        }
    }
}

/// Checkpoints the database's write-ahead log until `stop` ([`Db::checkpoint`]).
async fn checkpoint_loop(db: Db, stop: CancellationToken) {
    if !matches!(db, Db::Sqlite(_)) {
        return;
    }
    let mut tick = tokio::time::interval(Db::CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = db.checkpoint().await {
            tracing::warn!(error = %e, "cannot checkpoint the database log");
        }
    }
}

/// Cancels `stop` on Ctrl-C or SIGTERM.
pub fn stop_on_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler cannot fail on unix");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping: finishing in-flight requests");
        stop.cancel();
    });
}
