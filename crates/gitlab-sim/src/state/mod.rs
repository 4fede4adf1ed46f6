//! The simulator's whole world: one [`State`] behind one mutex in [`SimHandle`].
//!
//! Lock with [`SimHandle::lock`], never across an `.await` (git commands run before or after).

mod access_rules;
pub mod model;
mod pipelines;
mod protected_branches;
mod setup;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Duration;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use model::*;
pub use pipelines::HeadPipeline;
pub use protected_branches::{NewProtection, Pusher};
pub use setup::{
    NewGroup, NewMergeRequest, NewProject, NewSshKey, NewUser, SetupError, SshKeyError,
    is_draft_title,
};

use crate::secrets;

/// Everything GitLab would keep in its database. Serialisable for `--state-file`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    next_id: u64,
    /// Simulated time = wall clock + this offset (advanced by tests).
    pub clock_offset_ms: i64,
    pub settings: Settings,
    pub users: BTreeMap<Id, User>,
    pub groups: BTreeMap<Id, Group>,
    pub projects: BTreeMap<Id, Project>,
    pub group_members: BTreeMap<Id, BTreeMap<Id, Member>>,
    pub project_members: BTreeMap<Id, BTreeMap<Id, Member>>,
    pub personal_access_tokens: BTreeMap<Id, PersonalAccessToken>,
    pub project_access_tokens: BTreeMap<Id, ProjectAccessToken>,
    pub deploy_tokens: BTreeMap<Id, DeployToken>,
    pub deploy_keys: BTreeMap<Id, DeployKey>,
    pub deploy_key_links: Vec<DeployKeyLink>,
    pub hooks: BTreeMap<Id, Hook>,
    pub merge_requests: BTreeMap<Id, MergeRequest>,
    pub pipelines: BTreeMap<Id, Pipeline>,
    pub commit_statuses: BTreeMap<Id, CommitStatus>,
    pub oauth_applications: BTreeMap<Id, OAuthApplication>,
    pub oauth_grants: BTreeMap<Id, OAuthGrant>,
    pub oauth_tokens: BTreeMap<Id, OAuthToken>,
    /// (user, application) pairs that skip the consent page.
    pub oauth_approvals: HashSet<(Id, Id)>,
    /// SHA-256 hex of every token/code → what it is. Plain secrets are never stored (as in GitLab).
    pub secrets: HashMap<String, SecretRef>,
    /// Sign-in sessions of the sim's web pages: cookie value digest → user id.
    pub web_sessions: HashMap<String, Id>,
    pub faults: Vec<Fault>,
    /// Push rules per project (Premium in GitLab); absent means none.
    #[serde(default)]
    pub push_rules: BTreeMap<Id, PushRule>,
    #[serde(default)]
    pub protected_branches: BTreeMap<Id, ProtectedBranch>,
    /// Users' SSH keys.
    #[serde(default)]
    pub ssh_keys: BTreeMap<Id, SshKey>,
    /// Fixed-window rate-limit counters: key → (window start in unix seconds, count).
    #[serde(skip)]
    pub rate_windows: HashMap<String, (i64, u32)>,
    /// GitLab's `ssh_path_prefix` for clone URLs: `ssh://git@HOST:PORT/` (a port other than
    /// 22), set at start; `None` without SSH.
    #[serde(skip)]
    pub ssh_path_prefix: Option<String>,
    /// Requests answered since the start or the last reset (not persisted).
    #[serde(skip)]
    pub request_counts: crate::request_log::RequestCounts,
}

impl State {
    pub fn next_id(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    pub fn now(&self) -> Time {
        let real = chrono::Utc::now();
        // A corrupt offset (e.g. from a hand-edited state file) must not panic.
        real.checked_add_signed(Duration::milliseconds(self.clock_offset_ms))
            .unwrap_or(real)
    }

    /// Moves simulated time forward (or back); clamped to ±100 years.
    pub fn advance_clock(&mut self, seconds: i64) -> Time {
        const LIMIT_MS: i64 = 100 * 366 * 86_400 * 1000;
        self.clock_offset_ms = self
            .clock_offset_ms
            .saturating_add(seconds.saturating_mul(1000))
            .clamp(-LIMIT_MS, LIMIT_MS);
        self.now()
    }

    /// Registers a freshly generated secret and returns it in plain text (shown to the caller once).
    pub fn issue_secret(&mut self, prefix: &str, target: SecretRef) -> String {
        let secret = secrets::random_token(prefix);
        self.secrets.insert(secrets::digest(&secret), target);
        secret
    }

    pub fn find_secret(&self, secret: &str) -> Option<SecretRef> {
        self.secrets.get(&secrets::digest(secret)).copied()
    }

    /// The user a presented token belongs to (for per-user rate limiting).
    pub fn user_of_secret(&self, secret: &str) -> Option<Id> {
        match self.find_secret(secret)? {
            SecretRef::PersonalAccessToken(id) => {
                self.personal_access_tokens.get(&id).map(|t| t.user_id)
            }
            SecretRef::ProjectAccessToken(id) => {
                self.project_access_tokens.get(&id).map(|t| t.user_id)
            }
            SecretRef::OAuthAccess(id) => self.oauth_tokens.get(&id).map(|t| t.user_id),
            SecretRef::DeployToken(_) | SecretRef::OAuthRefresh(_) | SecretRef::OAuthCode(_) => {
                None
            }
        }
    }

    pub fn user_by_username(&self, username: &str) -> Option<&User> {
        self.users.values().find(|u| u.username == username)
    }

    /// `full_path` of a group: its ancestors' paths joined by `/`.
    pub fn group_full_path(&self, group_id: Id) -> String {
        let mut parts = Vec::new();
        let mut current = self.groups.get(&group_id);
        while let Some(group) = current {
            parts.push(group.path.as_str());
            current = group.parent_id.and_then(|p| self.groups.get(&p));
        }
        parts.reverse();
        parts.join("/")
    }

    pub fn group_full_name(&self, group_id: Id) -> String {
        let mut parts = Vec::new();
        let mut current = self.groups.get(&group_id);
        while let Some(group) = current {
            parts.push(group.name.as_str());
            current = group.parent_id.and_then(|p| self.groups.get(&p));
        }
        parts.reverse();
        parts.join(" / ")
    }

    pub fn namespace_full_path(&self, namespace: Namespace) -> String {
        match namespace {
            Namespace::Group(id) => self.group_full_path(id),
            Namespace::User(id) => self
                .users
                .get(&id)
                .map(|u| u.username.clone())
                .unwrap_or_default(),
        }
    }

    /// `ssh_url_to_repo` of a project with this full path.
    pub fn ssh_url_to_repo(&self, base: &str, full_path: &str) -> String {
        match &self.ssh_path_prefix {
            Some(prefix) => format!("{prefix}{full_path}.git"),
            None => {
                let host = url::Url::parse(base)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("git@{host}:{full_path}.git")
            }
        }
    }

    pub fn project_full_path(&self, project: &Project) -> String {
        format!(
            "{}/{}",
            self.namespace_full_path(project.namespace),
            project.path
        )
    }

    /// A project by numeric id or full path (what `:id` means in GitLab's API).
    pub fn find_project(&self, id_or_path: &str) -> Option<&Project> {
        match id_or_path.parse::<Id>() {
            Ok(id) => self.projects.get(&id),
            Err(_) => self
                .projects
                .values()
                .find(|p| self.project_full_path(p) == id_or_path),
        }
    }

    pub fn find_group(&self, id_or_path: &str) -> Option<&Group> {
        match id_or_path.parse::<Id>() {
            Ok(id) => self.groups.get(&id),
            Err(_) => self
                .groups
                .values()
                .find(|g| self.group_full_path(g.id) == id_or_path),
        }
    }

    pub fn merge_request(&self, project_id: Id, iid: u64) -> Option<&MergeRequest> {
        self.merge_requests
            .values()
            .find(|mr| mr.project_id == project_id && mr.iid == iid)
    }

    pub fn merge_request_mut(&mut self, project_id: Id, iid: u64) -> Option<&mut MergeRequest> {
        self.merge_requests
            .values_mut()
            .find(|mr| mr.project_id == project_id && mr.iid == iid)
    }

    pub fn hooks_of(&self, project_id: Id) -> impl Iterator<Item = &Hook> {
        self.hooks
            .values()
            .filter(move |h| h.project_id == project_id)
    }
}

/// Events other parts of the simulator (webhook delivery) react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// A note was created on a merge request through the REST API.
    MergeRequestNoteCreated {
        project_id: Id,
        mr_iid: u64,
        note_id: Id,
        user_id: Id,
    },
}

/// Where Git over SSH listens and the host key it presents.
#[derive(Debug, Clone)]
pub struct SshEndpoint {
    pub addr: std::net::SocketAddr,
    /// The host public key as an OpenSSH line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

struct Inner {
    state: Mutex<State>,
    base_url: String,
    /// Where Git over SSH listens, if it does.
    ssh: Option<SshEndpoint>,
    pushes: crate::git_hooks::PushRegistry,
    data_dir: PathBuf,
    state_file: Option<PathBuf>,
    events: broadcast::Sender<SimEvent>,
}

/// The shared handle to the running simulator: state, base URL, data directory, event bus.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

impl SimHandle {
    pub(crate) fn new(
        state: State,
        base_url: String,
        ssh: Option<SshEndpoint>,
        data_dir: PathBuf,
        state_file: Option<PathBuf>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let mut state = state;
        if let Some(addr) = ssh.as_ref().map(|e| e.addr) {
            let host = url::Url::parse(&base_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "localhost".into());
            state.ssh_path_prefix = Some(if addr.port() == 22 {
                format!("git@{host}:")
            } else {
                format!("ssh://git@{host}:{}/", addr.port())
            });
        }
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                base_url,
                ssh,
                pushes: Default::default(),
                data_dir,
                state_file,
                events,
            }),
        }
    }

    /// Locks the state. A poisoned lock is recovered: state stays consistent per operation.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// `ssh://git@HOST:PORT` where Git over SSH listens (no trailing slash), if it does.
    pub fn ssh_url(&self) -> Option<String> {
        self.inner
            .ssh
            .as_ref()
            .map(|e| format!("ssh://git@{}:{}", self.host(), e.addr.port()))
    }

    /// Where Git over SSH listens, if it does.
    pub fn ssh_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.ssh.as_ref().map(|e| e.addr)
    }

    /// The SSH host public key (`ssh-ed25519 AAAA...`), for clients' known_hosts.
    pub fn ssh_host_key(&self) -> Option<&str> {
        self.inner.ssh.as_ref().map(|e| e.host_key.as_str())
    }

    pub(crate) fn inner_pushes(&self) -> &crate::git_hooks::PushRegistry {
        &self.inner.pushes
    }

    /// Host and port the hooks call back on: the HTTP listener (loopback when it listens on
    /// every address).
    pub(crate) fn hook_address(&self) -> (String, u16) {
        let url = url::Url::parse(&self.inner.base_url).ok();
        let port = url
            .as_ref()
            .and_then(url::Url::port_or_known_default)
            .unwrap_or(80);
        let host = match url.as_ref().and_then(url::Url::host) {
            Some(url::Host::Ipv4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            Some(url::Host::Ipv6(ip)) if ip.is_unspecified() => "::1".to_owned(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => "127.0.0.1".to_owned(),
        };
        (host, port)
    }

    /// Host part of the base URL, used for bot e-mails (`@noreply.<host>`).
    pub fn host(&self) -> String {
        url::Url::parse(&self.inner.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into())
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The bare repository of a project: `<data-dir>/repositories/<project id>.git`.
    pub fn repo_path(&self, project_id: Id) -> PathBuf {
        self.inner
            .data_dir
            .join("repositories")
            .join(format!("{project_id}.git"))
    }

    pub fn now(&self) -> Time {
        self.lock().now()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.inner.events.subscribe()
    }

    pub fn emit(&self, event: SimEvent) {
        // No subscriber is fine: nobody listens for that event yet.
        let _ = self.inner.events.send(event);
    }

    /// Writes the state to the `--state-file`, if one was configured.
    pub fn save(&self) -> std::io::Result<bool> {
        let Some(path) = &self.inner.state_file else {
            return Ok(false);
        };
        let json = serde_json::to_vec_pretty(&*self.lock()).map_err(std::io::Error::other)?;
        std::fs::write(path, json)?;
        Ok(true)
    }
}
