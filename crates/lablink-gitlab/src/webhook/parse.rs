//! Total parsing of webhook bodies: every input gives an [`Event`] or an ignored reason.

use serde_json::Value;

use super::fields::{at, opt_bool, opt_i64, opt_str, req_i64, req_str};
use super::time::parse_gitlab_time;

/// GitLab's maximum webhook payload (gitlab-api.md §3.6); anything larger is not from GitLab.
const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Event),
    /// Not an event lablink acts on, or not readable; the reason is recorded with the delivery.
    Ignored {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MergeRequest(Box<MergeRequestEvent>),
    Push(PushEvent),
    TagPush(PushEvent),
    Note(NoteEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeRequestAction {
    Open,
    Reopen,
    /// New commits only when `oldrev` is present; otherwise a metadata change.
    Update,
    Close,
    Merge,
    Approved,
    Unapproved,
    Approval,
    Unapproval,
    Other(String),
}

impl MergeRequestAction {
    fn parse(action: &str) -> MergeRequestAction {
        match action {
            "open" => MergeRequestAction::Open,
            "reopen" => MergeRequestAction::Reopen,
            "update" => MergeRequestAction::Update,
            "close" => MergeRequestAction::Close,
            "merge" => MergeRequestAction::Merge,
            "approved" => MergeRequestAction::Approved,
            "unapproved" => MergeRequestAction::Unapproved,
            "approval" => MergeRequestAction::Approval,
            "unapproval" => MergeRequestAction::Unapproval,
            other => MergeRequestAction::Other(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequestEvent {
    pub action: MergeRequestAction,
    pub iid: i64,
    pub title: String,
    pub source_branch: String,
    pub target_branch: String,
    /// `object_attributes.last_commit.id`: the SHA to build.
    pub head_sha: String,
    /// Present only when commits were added (`update` with new code).
    pub oldrev: Option<String>,
    pub draft: bool,
    /// `opened`, `closed`, `merged`, `locked`.
    pub state: String,
    pub project_id: i64,
    pub source_project_id: i64,
    pub target_project_id: i64,
    pub url: String,
    /// `changes.draft` as (previous, current) when the draft flag changed.
    pub changes_draft: Option<(bool, bool)>,
    pub head_pipeline_id: Option<i64>,
    pub updated_at_ms: Option<i64>,
    pub user_id: Option<i64>,
}

impl MergeRequestEvent {
    /// Open, reopen, or an update that brought new commits: the events that start CI.
    pub fn has_new_code(&self) -> bool {
        match self.action {
            MergeRequestAction::Open | MergeRequestAction::Reopen => true,
            MergeRequestAction::Update => self.oldrev.is_some(),
            _ => false,
        }
    }

    /// The draft flag went from on to off in this update.
    pub fn became_ready(&self) -> bool {
        self.changes_draft == Some((true, false))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `refs/heads/<branch>` or `refs/tags/<tag>`.
    pub ref_name: String,
    pub before: String,
    pub after: String,
    pub checkout_sha: Option<String>,
    pub project_id: i64,
    pub default_branch: Option<String>,
    pub user_id: Option<i64>,
    pub total_commits_count: Option<i64>,
}

impl PushEvent {
    /// The branch name for a branch push.
    pub fn branch(&self) -> Option<&str> {
        self.ref_name.strip_prefix("refs/heads/")
    }

    /// `after` is all zeros: the ref was deleted.
    pub fn is_deletion(&self) -> bool {
        self.after == ZERO_SHA
    }

    /// A push to the project's default branch that left it in place.
    pub fn is_default_branch_update(&self) -> bool {
        !self.is_deletion()
            && self.branch().is_some()
            && self.branch() == self.default_branch.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteEvent {
    pub note_id: i64,
    /// `MergeRequest`, `Commit`, `Issue`, `Snippet`.
    pub noteable_type: String,
    pub author_id: Option<i64>,
    pub project_id: i64,
    /// The MR's iid when the note is on a merge request.
    pub merge_request_iid: Option<i64>,
    /// `create` or `update` (16.11+); `None` on older versions.
    pub action: Option<String>,
    pub system: bool,
    pub url: Option<String>,
}

/// Reads a delivery. `event_header` is `X-Gitlab-Event` (e.g. `Merge Request Hook`); when
/// present it must agree with the body's `object_kind`.
pub fn parse(event_header: Option<&str>, body: &[u8]) -> Parsed {
    match parse_event(event_header, body) {
        Ok(event) => Parsed::Event(event),
        Err(reason) => Parsed::Ignored { reason },
    }
}

fn parse_event(event_header: Option<&str>, body: &[u8]) -> Result<Event, String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    // serde_json limits nesting depth, so hostile input cannot exhaust the stack.
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON ({e})"))?;
    if !value.is_object() {
        return Err("body is not a JSON object".to_owned());
    }
    let kind = req_str(&value, &["object_kind"])?;
    if let Some(header) = event_header {
        let expected = match header.trim() {
            "Merge Request Hook" => "merge_request",
            "Push Hook" => "push",
            "Tag Push Hook" => "tag_push",
            "Note Hook" | "Confidential Note Hook" => "note",
            other => return Err(format!("event {other:?} is not one lablink handles")),
        };
        if kind != expected {
            return Err(format!(
                "X-Gitlab-Event {header:?} does not match object_kind {kind:?}"
            ));
        }
    }
    match kind.as_str() {
        "merge_request" => merge_request(&value).map(|mr| Event::MergeRequest(Box::new(mr))),
        "push" => push(&value).map(Event::Push),
        "tag_push" => push(&value).map(Event::TagPush),
        "note" => note(&value).map(Event::Note),
        other => Err(format!("object_kind {other:?} is not one lablink handles")),
    }
}

fn merge_request(v: &Value) -> Result<MergeRequestEvent, String> {
    const OA: &str = "object_attributes";
    let target_project_id = req_i64(v, &[OA, "target_project_id"])?;
    let changes_draft = match (
        opt_bool(v, &["changes", "draft", "previous"]),
        opt_bool(v, &["changes", "draft", "current"]),
    ) {
        (Some(previous), Some(current)) => Some((previous, current)),
        _ => None,
    };
    Ok(MergeRequestEvent {
        action: MergeRequestAction::parse(&req_str(v, &[OA, "action"])?),
        iid: req_i64(v, &[OA, "iid"])?,
        title: opt_str(v, &[OA, "title"]).unwrap_or_default(),
        source_branch: req_str(v, &[OA, "source_branch"])?,
        target_branch: req_str(v, &[OA, "target_branch"])?,
        head_sha: req_str(v, &[OA, "last_commit", "id"])?,
        oldrev: opt_str(v, &[OA, "oldrev"]),
        // `work_in_progress` is the deprecated name older versions send.
        draft: opt_bool(v, &[OA, "draft"])
            .or_else(|| opt_bool(v, &[OA, "work_in_progress"]))
            .unwrap_or(false),
        state: req_str(v, &[OA, "state"])?,
        project_id: opt_i64(v, &["project", "id"]).unwrap_or(target_project_id),
        source_project_id: req_i64(v, &[OA, "source_project_id"])?,
        target_project_id,
        url: opt_str(v, &[OA, "url"]).unwrap_or_default(),
        changes_draft,
        head_pipeline_id: opt_i64(v, &[OA, "head_pipeline_id"]),
        updated_at_ms: opt_str(v, &[OA, "updated_at"]).and_then(|t| parse_gitlab_time(&t)),
        user_id: opt_i64(v, &["user", "id"]),
    })
}

fn push(v: &Value) -> Result<PushEvent, String> {
    Ok(PushEvent {
        ref_name: req_str(v, &["ref"])?,
        before: req_str(v, &["before"])?,
        after: req_str(v, &["after"])?,
        checkout_sha: opt_str(v, &["checkout_sha"]),
        project_id: opt_i64(v, &["project_id"])
            .or_else(|| opt_i64(v, &["project", "id"]))
            .ok_or("project_id is missing or not an integer")?,
        default_branch: opt_str(v, &["project", "default_branch"]),
        user_id: opt_i64(v, &["user_id"]),
        total_commits_count: opt_i64(v, &["total_commits_count"]),
    })
}

fn note(v: &Value) -> Result<NoteEvent, String> {
    const OA: &str = "object_attributes";
    Ok(NoteEvent {
        note_id: req_i64(v, &[OA, "id"])?,
        noteable_type: req_str(v, &[OA, "noteable_type"])?,
        author_id: opt_i64(v, &[OA, "author_id"]),
        project_id: opt_i64(v, &["project_id"])
            .or_else(|| opt_i64(v, &["project", "id"]))
            .ok_or("project_id is missing or not an integer")?,
        merge_request_iid: at(v, &["merge_request"]).and_then(|mr| opt_i64(mr, &["iid"])),
        action: opt_str(v, &[OA, "action"]),
        system: opt_bool(v, &[OA, "system"]).unwrap_or(false),
        url: opt_str(v, &[OA, "url"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(header: Option<&str>, body: &str) -> String {
        match parse(header, body.as_bytes()) {
            Parsed::Ignored { reason } => reason,
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_are_ignored_with_a_reason() {
        assert!(ignored(None, "").contains("not JSON"));
        assert!(ignored(None, "[1]").contains("not a JSON object"));
        assert!(ignored(None, "{}").contains("object_kind"));
        assert!(ignored(None, r#"{"object_kind":"pipeline"}"#).contains("pipeline"));
        assert!(
            ignored(Some("Pipeline Hook"), r#"{"object_kind":"pipeline"}"#)
                .contains("Pipeline Hook")
        );
        assert!(
            ignored(Some("Push Hook"), r#"{"object_kind":"merge_request"}"#)
                .contains("does not match")
        );
        assert!(
            ignored(
                None,
                r#"{"object_kind":"merge_request","object_attributes":{"target_project_id":1}}"#
            )
            .contains("object_attributes.action")
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(ignored(None, &deep).contains("not JSON"));
    }

    #[test]
    fn default_branch_updates() {
        let push = |r: &str, after: &str| PushEvent {
            ref_name: r.to_owned(),
            before: ZERO_SHA.to_owned(),
            after: after.to_owned(),
            checkout_sha: None,
            project_id: 1,
            default_branch: Some("main".to_owned()),
            user_id: None,
            total_commits_count: None,
        };
        assert!(push("refs/heads/main", "abc").is_default_branch_update());
        assert!(!push("refs/heads/main", ZERO_SHA).is_default_branch_update());
        assert!(!push("refs/heads/feature", "abc").is_default_branch_update());
        assert!(!push("refs/tags/main", "abc").is_default_branch_update());
    }
}
