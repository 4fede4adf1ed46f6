//! Use cases of lablink, one module per flow, over the store, GitLab and processes.
//!
//! [`Services`] is the context every use case runs in; web handlers and the CLI hold one and call
//! a single use case per request. Authorization is checked here (from the [`Principal`]), so every
//! face (pages, JSON API, CLI) applies the same rules.

pub mod accounts;
pub mod api_tokens;
pub mod audit;
pub mod ci;
pub mod doctor;
mod error;
pub mod gauges;
pub mod git_credentials;
pub mod integration;
pub mod ip_restrictions;
pub mod links;
mod passwords;
pub mod projects;
mod queue;
pub mod rekey;
pub mod repositories;
pub mod retention;
pub mod rotation;
pub mod scheduler;
pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod workspace;

use std::sync::Arc;

pub use error::ServiceError;
pub use lablink_gitlab::GitLabError;
use lablink_store::Db;
pub use lablink_store::Principal;
use lablink_store::crypto::KeyRing;
pub use settings::{OperatorGitlabApp, ServiceSettings};

/// The context of every use case: the database, the master keys and the settings.
#[derive(Clone, Debug)]
pub struct Services {
    pub(crate) db: Db,
    pub(crate) keys: Arc<KeyRing>,
    pub settings: Arc<ServiceSettings>,
    /// Per-process GitLab state (HTTP clients, the token-refresh single-flight table).
    pub gitlab: Arc<integration::GitLabRuntime>,
    /// The webhook deliveries' group-commit writer, started on the first delivery.
    intake: Arc<std::sync::OnceLock<ci::intake::IntakeWriter>>,
    /// Webhook secrets that recently verified a delivery.
    hook_secrets: Arc<ci::hook_secret_cache::HookSecretCache>,
    /// Wakes this replica's CI loops when it commits work for them.
    pub wake: Arc<ci::wake::Wakeups>,
    /// The doctor's `.gitignore` inspections, by commit.
    gitignore_cache: Arc<doctor::GitignoreCache>,
    /// Every account's IP restrictions, as this replica enforces them.
    ip_rules: Arc<ip_restrictions::IpRulesCache>,
    /// The connection checks this replica runs in the background for pages.
    checks_running: Arc<doctor::ChecksRunning>,
}

impl Services {
    pub fn new(db: Db, keys: KeyRing, settings: ServiceSettings) -> Services {
        Services {
            db,
            keys: Arc::new(keys),
            settings: Arc::new(settings),
            gitlab: Arc::default(),
            intake: Arc::default(),
            hook_secrets: Arc::default(),
            wake: Arc::default(),
            gitignore_cache: Arc::default(),
            ip_rules: Arc::default(),
            checks_running: Arc::default(),
        }
    }
}

impl Services {
    /// Ready to serve: the database answers and every migration is applied.
    pub async fn readiness(&self) -> Result<(), ServiceError> {
        self.db.ping().await?;
        if self.db.pending_migrations().await? > 0 {
            return Err(ServiceError::Internal(
                "database migrations are pending; run `lablink migrate`".into(),
            ));
        }
        Ok(())
    }
}
