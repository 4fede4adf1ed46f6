//! The part of lablink's configuration the use cases need.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lablink_exec::limits::Limits;
use lablink_exec::sandbox::Isolation;

use secrecy::SecretString;
use url::Url;

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Where browsers reach lablink; links and the OAuth redirect URI are built from it.
    pub public_url: Url,
    /// A session unused for this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, however active.
    pub session_absolute: Duration,
    /// The operator's GitLab application for gitlab.com, used by developer and starter plans.
    pub operator_gitlab: Option<OperatorGitlabApp>,
    /// Allow `http://` GitLab URLs on loopback addresses (tests, the demo).
    pub allow_http_loopback_gitlab: bool,
    /// Allow GitLab instances on private and link-local networks.
    pub allow_private_network_gitlab: bool,
    /// What connecting a repository creates, and where repositories are cached.
    pub repositories: RepositorySettings,
    /// How runs of repository content are isolated and limited.
    pub runs: RunSettings,
}

impl ServiceSettings {
    /// True when cookies must carry `Secure` (lablink is served over https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// An absolute URL under the public URL, for a path starting with `/`.
    pub fn public_link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, Clone)]
pub struct OperatorGitlabApp {
    pub url: Url,
    pub app_id: String,
    pub secret: SecretString,
}

/// Settings of repository connections.
#[derive(Debug, Clone)]
pub struct RepositorySettings {
    /// Per-repository bare git caches live here (`<dir>/<repository id>.git`).
    pub cache_dir: std::path::PathBuf,
    /// `HOME` for git: an empty directory of lablink's, so no user configuration leaks in.
    pub git_home: std::path::PathBuf,
    /// This replica's checkouts of users' workspaces (`<dir>/<workspace id>`).
    pub workspace_dir: std::path::PathBuf,
    /// Lifetime of the project access token created at connect, in days (GitLab allows ≤ 365).
    pub project_token_days: u32,
    /// Also create an ed25519 SSH deploy key with write access.
    pub deploy_keys: bool,
    /// Project access tokens are rotated, and the doctor calls them "expiring soon", this many
    /// days before they expire.
    pub token_rotation_margin_days: u32,
}

impl RepositorySettings {
    /// Caches under `<data_dir>/repositories`, a 365-day project access token rotated 30 days
    /// before it expires, no deploy key.
    pub fn in_data_dir(data_dir: &std::path::Path) -> RepositorySettings {
        RepositorySettings {
            cache_dir: data_dir.join("repositories"),
            git_home: data_dir.join("git-home"),
            workspace_dir: data_dir.join("workspaces"),
            project_token_days: 365,
            deploy_keys: false,
            token_rotation_margin_days: 30,
        }
    }
}

/// How processes that run repository content (dbt in CI runs) are isolated and limited.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub isolation: Isolation,
    pub limits: Limits,
    /// DuckDB warehouses: one directory per project below it, holding only that project's
    /// file (its merge job builds production there and its CI jobs build next to it, so
    /// deferral and the comparison with production work as on a warehouse server).
    pub warehouse_root: PathBuf,
    /// A merge request's schemas unused this long are dropped by the sweep.
    pub schema_ttl: Duration,
}

impl RunSettings {
    /// Bubblewrap, the default limits, warehouses under `<data_dir>/warehouses`, schemas kept
    /// for a week.
    pub fn in_data_dir(data_dir: &Path) -> RunSettings {
        RunSettings {
            isolation: Isolation::Bubblewrap,
            limits: Limits::default(),
            warehouse_root: data_dir.join("warehouses"),
            schema_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// The DuckDB file of a project.
    pub fn duckdb_file(&self, project_id: &str) -> PathBuf {
        self.warehouse_root
            .join(format!("project-{project_id}"))
            .join("warehouse.duckdb")
    }

    /// The DuckDB file a user's workspace commands of a project build into: a directory of its
    /// own, so a command's sandbox never reaches the project's CI warehouse.
    pub fn dev_duckdb_file(&self, project_id: &str, user_id: &str) -> PathBuf {
        self.warehouse_root
            .join(format!("project-{project_id}-dev-{user_id}"))
            .join("warehouse.duckdb")
    }
}
