//! What the doctor found and did, in the stable shape `lablink doctor --json` prints
//! (documented in `docs/doctor-json.md`): codes and field names never change meaning.

use serde::{Deserialize, Serialize};

/// One kind of problem. The snake_case name is the stable `code` of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    WebhookMissing,
    WebhookDisabled,
    WebhookUrlMismatch,
    WebhookEventsOff,
    WebhookSslVerificationOff,
    WebhookSecretMissing,
    ProjectTokenMissing,
    ProjectTokenExpired,
    ProjectTokenRevoked,
    ProjectTokenRotatedOutside,
    ProjectTokenRotationInterrupted,
    ProjectTokenExpiringSoon,
    DeployTokenMissing,
    DeployTokenRevoked,
    DeployKeyMissing,
    DeployKeyMismatch,
    UserLinkBroken,
    RepositoryGone,
    RepositoryNotInGroup,
    ConnectorNotMaintainer,
    GitignoreIncomplete,
    BuildFoldersTracked,
    /// `run_isolation = "none"`: CI runs are not sandboxed.
    RunsNotIsolated,
    /// The sandbox cannot start on this host: CI runs fail until it can.
    SandboxUnavailable,
    /// Deliveries with the right secret came from outside the account's webhook source ranges.
    WebhookSourcesRefused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something lablink needs is broken now.
    Error,
    /// Works now, will break, or works worse than it should.
    Warning,
}

/// One problem: what it means and how it is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// What is wrong and what it means for the user.
    pub message: String,
    /// What `--fix` does, or what a person must do.
    pub fix: String,
    /// True when `--fix` (the Fix button) repairs it.
    pub repairable: bool,
}

impl Code {
    /// The stable snake_case name (the JSON `code`).
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Finding {
    pub(crate) fn error(code: Code, message: String, fix: String, repairable: bool) -> Finding {
        Finding {
            code,
            severity: Severity::Error,
            message,
            fix,
            repairable,
        }
    }

    pub(crate) fn warning(code: Code, message: String, fix: String, repairable: bool) -> Finding {
        Finding {
            code,
            severity: Severity::Warning,
            message,
            fix,
            repairable,
        }
    }
}

/// What `--fix` did about one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub code: Code,
    pub outcome: Outcome,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Repaired,
    /// lablink tried and GitLab refused; the message says why and what to do.
    Failed,
    /// lablink cannot repair this; the message says what a person must do.
    Manual,
}

/// The doctor's report for one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub project_id: String,
    pub project_name: String,
    /// `None` when the project has no connected repository (then there is nothing to check).
    pub repository_id: Option<String>,
    pub path_with_namespace: Option<String>,
    /// Unix ms of the last verified webhook delivery, if any.
    pub last_verified_delivery_at: Option<i64>,
    pub findings: Vec<Finding>,
    /// Empty unless repairs were asked for.
    pub repairs: Vec<Repair>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
    }
}
