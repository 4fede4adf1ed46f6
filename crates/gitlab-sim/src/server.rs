//! Starting and stopping the simulator: [`Sim::start`] binds, serves and returns a handle.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::{SimHandle, SshEndpoint, State};
use crate::{api, control, git_http, middleware, oauth, pages, request_log, ssh, webhooks};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where bare repositories live; a fresh temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
    /// Loaded at start when it exists; written by `SimHandle::save` and on binary shutdown.
    pub state_file: Option<PathBuf>,
}

impl SimConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            data_dir: None,
            state_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load state file {path}: {reason}")]
    StateFile { path: PathBuf, reason: String },
    #[error(transparent)]
    HostKey(#[from] crate::ssh::host_key::HostKeyError),
}

/// A running simulator. Dropping it stops the server.
pub struct Sim {
    handle: SimHandle,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn load_state(path: &PathBuf) -> Result<State, StartError> {
    if !path.exists() {
        return Ok(State::default());
    }
    let bytes = std::fs::read(path).map_err(|e| StartError::StateFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| StartError::StateFile {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// All routes of the simulator.
pub fn app(handle: SimHandle) -> Router {
    Router::new()
        .nest("/api/v4", api::router().merge(webhooks::api::router()))
        .merge(oauth::router())
        .nest(middleware::CONTROL_PREFIX, control::router())
        .merge(pages::router())
        .merge(git_http::router())
        .layer(axum::middleware::from_fn_with_state(
            handle.clone(),
            middleware::faults_and_limits,
        ))
        .layer(axum::middleware::from_fn_with_state(
            handle.clone(),
            request_log::count_requests,
        ))
        .with_state(handle)
}

impl Sim {
    /// Starts the simulator with Git over SSH on a free port of the HTTP address's host.
    pub async fn start(config: SimConfig) -> Result<Self, StartError> {
        let ssh_listen = SocketAddr::new(config.listen.ip(), 0);
        Self::start_with_ssh(config, Some(ssh_listen)).await
    }

    /// Starts the simulator; `ssh_listen` is where Git over SSH listens (`None`: no SSH).
    pub async fn start_with_ssh(
        config: SimConfig,
        ssh_listen: Option<SocketAddr>,
    ) -> Result<Self, StartError> {
        let data_dir = config.data_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("gitlab-sim-{}", uuid::Uuid::new_v4()))
        });
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let state = match &config.state_file {
            Some(path) => load_state(path)?,
            None => State::default(),
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let bind = |addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            Ok::<_, StartError>((listener, local))
        };
        let ssh = match ssh_listen {
            Some(addr) => {
                let (listener, local) = bind(addr).await?;
                let key = ssh::host_key::load_or_create(&data_dir)?;
                Some((listener, local, key))
            }
            None => None,
        };
        let endpoint = ssh.as_ref().map(|(_, addr, key)| SshEndpoint {
            addr: *addr,
            host_key: ssh::host_key::public_line(key),
        });
        let handle = SimHandle::new(
            state,
            format!("http://{addr}"),
            endpoint,
            data_dir,
            config.state_file,
        );
        let shutdown = CancellationToken::new();
        if let Some((listener, _, key)) = ssh {
            ssh::spawn(handle.clone(), listener, key, shutdown.clone());
        }
        webhooks::spawn_note_listener(&handle, shutdown.clone());
        let service = app(handle.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, service)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "gitlab-sim server stopped");
            }
        });
        Ok(Self {
            handle,
            addr,
            shutdown,
            task: Some(task),
        })
    }

    pub fn base_url(&self) -> &str {
        self.handle.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
