//! The entities GitLab stores, as plain data. Rules live in `state/` methods and `api/` handlers.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub type Id = u64;
pub type Time = DateTime<Utc>;

/// GitLab access levels (`Gitlab::Access`).
pub mod access {
    pub const GUEST: u8 = 10;
    pub const PLANNER: u8 = 15;
    pub const REPORTER: u8 = 20;
    pub const DEVELOPER: u8 = 30;
    pub const MAINTAINER: u8 = 40;
    pub const OWNER: u8 = 50;
    pub const VALID: [u8; 6] = [GUEST, PLANNER, REPORTER, DEVELOPER, MAINTAINER, OWNER];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Internal,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Internal => "internal",
            Self::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Self::Private),
            "internal" => Some(Self::Internal),
            "public" => Some(Self::Public),
            _ => None,
        }
    }

    /// `visibility_level` as used in webhook payloads.
    pub fn level(self) -> u8 {
        match self {
            Self::Private => 0,
            Self::Internal => 10,
            Self::Public => 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub username: String,
    pub name: String,
    pub email: String,
    /// `active`, `blocked`, `deactivated`: only `active` users may authenticate.
    pub state: String,
    pub is_admin: bool,
    pub bot: bool,
    /// SHA-256 of the password for the sim's sign-in page; bots have none.
    pub password_digest: Option<String>,
    pub created_at: Time,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub id: Id,
    pub name: String,
    pub path: String,
    pub parent_id: Option<Id>,
    pub description: String,
    pub visibility: Visibility,
    pub created_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Namespace {
    Group(Id),
    User(Id),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: Id,
    pub name: String,
    pub path: String,
    pub namespace: Namespace,
    pub description: String,
    pub default_branch: String,
    pub visibility: Visibility,
    pub archived: bool,
    pub creator_id: Id,
    /// The project this one was forked from (`forked_from_project`).
    #[serde(default)]
    pub forked_from_id: Option<Id>,
    /// "Pipelines must succeed" (merge checks).
    #[serde(default)]
    pub only_allow_merge_if_pipeline_succeeds: bool,
    pub created_at: Time,
    pub updated_at: Time,
    pub last_activity_at: Time,
    pub next_mr_iid: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub user_id: Id,
    pub access_level: u8,
    pub created_at: Time,
    pub created_by: Option<Id>,
    pub expires_at: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonalAccessToken {
    pub id: Id,
    pub user_id: Id,
    pub name: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
    pub expires_at: Option<NaiveDate>,
    pub created_at: Time,
    pub last_used_at: Option<Time>,
}

/// A project access token: a personal access token of the project's bot user, with rotation family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectAccessToken {
    pub id: Id,
    pub project_id: Id,
    pub user_id: Id,
    pub name: String,
    pub description: Option<String>,
    pub scopes: Vec<String>,
    pub access_level: u8,
    pub revoked: bool,
    pub expires_at: Option<NaiveDate>,
    pub created_at: Time,
    pub last_used_at: Option<Time>,
    /// Id of the first token of the rotation chain; rotating a revoked token revokes the family.
    pub family_id: Id,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployToken {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Time>,
    pub revoked: bool,
    /// DELETE removes it from the API; the record stays for assertions through the control API.
    pub deleted: bool,
    pub created_at: Time,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployKey {
    pub id: Id,
    pub title: String,
    pub key: String,
    pub fingerprint: String,
    pub fingerprint_sha256: String,
    pub expires_at: Option<Time>,
    pub created_at: Time,
    pub user_id: Id,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployKeyLink {
    pub key_id: Id,
    pub project_id: Id,
    pub can_push: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Every event flag a project hook has, in the order GitLab renders them.
pub const HOOK_EVENT_FLAGS: [&str; 18] = [
    "push_events",
    "issues_events",
    "confidential_issues_events",
    "merge_requests_events",
    "tag_push_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
    "milestone_events",
    "feature_flag_events",
    "repository_update_events",
    "resource_access_token_events",
    "resource_deploy_token_events",
    "emoji_events",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hook {
    pub id: Id,
    pub project_id: Id,
    pub url: String,
    pub name: String,
    pub description: String,
    /// Write-only secret sent as `X-Gitlab-Token`.
    pub token: Option<String>,
    /// Write-only `whsec_<base64 of 32 bytes>` key for `webhook-signature`.
    pub signing_token: Option<String>,
    /// Flags from [`HOOK_EVENT_FLAGS`]; absent means false.
    pub events: BTreeMap<String, bool>,
    pub push_events_branch_filter: String,
    pub branch_filter_strategy: String,
    pub enable_ssl_verification: bool,
    pub custom_webhook_template: String,
    pub custom_headers: Vec<KeyValue>,
    pub url_variables: Vec<KeyValue>,
    /// `executable`, `temporarily_disabled` or `disabled`.
    pub alert_status: String,
    pub disabled_until: Option<Time>,
    pub recent_failures: u32,
    pub backoff_count: u32,
    pub uuid: String,
    pub created_at: Time,
    pub deliveries: Vec<HookDelivery>,
}

impl Hook {
    pub fn wants(&self, flag: &str) -> bool {
        self.events.get(flag).copied().unwrap_or(false)
    }
}

/// One entry of `GET /projects/:id/hooks/:hook_id/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookDelivery {
    pub id: Id,
    pub url: String,
    pub trigger: String,
    pub request_headers: BTreeMap<String, String>,
    pub request_data: serde_json::Value,
    pub response_headers: BTreeMap<String, String>,
    pub response_body: String,
    /// GitLab renders the code as a string, or `internal error`.
    pub response_status: String,
    pub execution_duration: f64,
    pub idempotency_key: String,
    pub created_at: Time,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub id: Id,
    pub body: String,
    pub author_id: Id,
    pub internal: bool,
    pub system: bool,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MrState {
    Opened,
    Closed,
    Merged,
    Locked,
}

impl MrState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Closed => "closed",
            Self::Merged => "merged",
            Self::Locked => "locked",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeRequest {
    pub id: Id,
    pub iid: u64,
    /// The target project: the MR lives there (its `iid` counts there).
    pub project_id: Id,
    /// Where `source_branch` lives: the target project itself or a fork of it (0 in state
    /// files written before forks existed: read as `project_id`).
    #[serde(default)]
    pub source_project_id: Id,
    /// "Delete source branch when merge request is accepted".
    #[serde(default)]
    pub force_remove_source_branch: bool,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub target_branch: String,
    /// Head commit of the source branch.
    pub sha: String,
    /// Merge base with the target branch (`diff_refs.base_sha`).
    pub base_sha: String,
    /// Target branch head when the diff was computed (`diff_refs.start_sha`).
    pub start_sha: String,
    pub draft: bool,
    pub state: MrState,
    pub author_id: Id,
    pub merge_commit_sha: Option<String>,
    pub merged_by: Option<Id>,
    pub merged_at: Option<Time>,
    pub closed_by: Option<Id>,
    pub closed_at: Option<Time>,
    pub created_at: Time,
    pub updated_at: Time,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: Id,
    pub project_id: Id,
    pub sha: String,
    pub git_ref: String,
    pub source: String,
    pub created_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Created,
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Skipped => "skipped",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Canceled | Self::Skipped
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitStatus {
    pub id: Id,
    pub project_id: Id,
    pub pipeline_id: Id,
    pub sha: String,
    pub git_ref: String,
    pub name: String,
    pub status: JobStatus,
    pub target_url: Option<String>,
    pub description: Option<String>,
    pub coverage: Option<f64>,
    pub author_id: Id,
    pub created_at: Time,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthApplication {
    pub id: Id,
    /// `client_id`: 64 hex characters.
    pub uid: String,
    /// SHA-256 of the secret: like GitLab, the secret is shown only once.
    pub secret_digest: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub confidential: bool,
    /// Trusted (instance) applications skip the consent page.
    pub trusted: bool,
    pub created_at: Time,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthGrant {
    pub application_id: Id,
    pub user_id: Id,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub created_at: Time,
    pub revoked: bool,
}

/// Access and refresh token are one row, as in GitLab's `oauth_access_tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthToken {
    pub id: Id,
    pub application_id: Id,
    pub user_id: Id,
    pub scopes: Vec<String>,
    pub expires_in: i64,
    pub revoked: bool,
    pub created_at: Time,
}

/// What a secret digest in [`super::State::secrets`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum SecretRef {
    PersonalAccessToken(Id),
    ProjectAccessToken(Id),
    DeployToken(Id),
    OAuthAccess(Id),
    OAuthRefresh(Id),
    OAuthCode(Id),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per period per user (or per IP when unauthenticated).
    pub limit: u32,
    pub period_secs: u32,
}

/// A fault injected on requests whose path matches `path` (`*` matches any run of characters).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub id: Id,
    pub method: Option<String>,
    pub path: String,
    pub latency_ms: u64,
    /// Probability in [0, 1] of answering `error_status` instead of the real response.
    pub error_rate: f64,
    pub error_status: u16,
    pub rate_limited: bool,
    pub drop_connection: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Behave like a gitlab.com Free namespace: project access tokens cannot be created.
    pub gitlab_com_free: bool,
    pub access_token_lifetime_secs: i64,
    pub rate_limit: Option<RateLimit>,
    pub max_access_token_lifetime_days: i64,
    /// GitLab's "Allow requests to the local network from webhooks"; on by default in the sim
    /// because test receivers listen on 127.0.0.1.
    pub allow_local_webhooks: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            gitlab_com_free: false,
            access_token_lifetime_secs: 7200,
            rate_limit: None,
            max_access_token_lifetime_days: 365,
            allow_local_webhooks: true,
        }
    }
}

impl MergeRequest {
    /// The project holding the source branch.
    pub fn source_project(&self) -> Id {
        if self.source_project_id == 0 {
            self.project_id
        } else {
            self.source_project_id
        }
    }
}

/// A project's push rule (Premium; `GET /projects/:id/push_rule`, gitlab-api.md §2.1). Empty
/// strings and zero mean "no restriction", as in GitLab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushRule {
    pub id: Id,
    pub project_id: Id,
    pub created_at: Option<Time>,
    pub commit_message_regex: String,
    pub commit_message_negative_regex: String,
    pub branch_name_regex: String,
    pub deny_delete_tag: bool,
    pub member_check: bool,
    pub prevent_secrets: bool,
    pub author_email_regex: String,
    pub file_name_regex: String,
    /// MiB; 0 = no limit.
    pub max_file_size: u64,
    /// "Reject unverified users" (the control API's older name is still accepted).
    #[serde(alias = "reject_unverified_users")]
    pub commit_committer_check: bool,
    pub commit_committer_name_check: bool,
    pub reject_unsigned_commits: bool,
    pub reject_non_dco_commits: bool,
}

impl PushRule {
    /// The rule's regex fields that are set, by name.
    pub fn regexes(&self) -> Vec<(&'static str, &str)> {
        [
            ("commit_message_regex", &self.commit_message_regex),
            (
                "commit_message_negative_regex",
                &self.commit_message_negative_regex,
            ),
            ("branch_name_regex", &self.branch_name_regex),
            ("author_email_regex", &self.author_email_regex),
            ("file_name_regex", &self.file_name_regex),
        ]
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(f, p)| (f, p.as_str()))
        .collect()
    }
}

/// GitLab's protected-branch access levels (`Gitlab::Access`): no one, Developers +
/// Maintainers, Maintainers, instance admins.
pub mod protection {
    pub const NO_ACCESS: u8 = 0;
    pub const ADMIN: u8 = 60;
    pub const LEVELS: [u8; 4] = [
        NO_ACCESS,
        super::access::DEVELOPER,
        super::access::MAINTAINER,
        ADMIN,
    ];
}

/// Who an access-level entry of a protected branch admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// Everyone with at least this role ([`protection::LEVELS`]).
    Role(u8),
    User(Id),
    DeployKey(Id),
}

/// One entry of `push_access_levels` / `merge_access_levels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub id: Id,
    pub grantee: Grantee,
}

/// A protected branch rule; `name` may hold `*` wildcards (`release/*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedBranch {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub push_access_levels: Vec<AccessGrant>,
    pub merge_access_levels: Vec<AccessGrant>,
    pub unprotect_access_level: u8,
    pub allow_force_push: bool,
    pub code_owner_approval_required: bool,
}

impl ProtectedBranch {
    pub fn matches(&self, branch: &str) -> bool {
        crate::wildcard::matches(&self.name, branch)
    }
}

/// An SSH key of a user (`/user/keys`): authenticates Git over SSH as that user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: Id,
    pub user_id: Id,
    pub title: String,
    pub key: String,
    pub fingerprint: String,
    pub fingerprint_sha256: String,
    /// `auth`, `signing` or `auth_and_signing`.
    pub usage_type: String,
    pub expires_at: Option<Time>,
    pub created_at: Time,
    pub last_used_at: Option<Time>,
}
