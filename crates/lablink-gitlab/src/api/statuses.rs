//! Commit statuses: how a run's result shows on the MR (gitlab-api.md §6).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Api, Pager};
use crate::error::GitLabError;

/// GitLab limits `description` to 255 characters.
const MAX_DESCRIPTION_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Running => "running",
            CommitState::Success => "success",
            CommitState::Failed => "failed",
            CommitState::Canceled => "canceled",
            CommitState::Skipped => "skipped",
        }
    }
}

/// One status update for a commit.
#[derive(Debug, Clone)]
pub struct CommitStatusRequest<'a> {
    pub sha: &'a str,
    pub state: CommitState,
    /// `lablink/<job name>`; every update of one name must come from the same GitLab identity.
    pub name: &'a str,
    pub ref_name: Option<&'a str>,
    pub target_url: Option<&'a str>,
    /// Cut to 255 characters.
    pub description: Option<&'a str>,
    /// The MR's head pipeline, so the status lands in the pipeline the MR shows.
    pub pipeline_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommitStatus {
    pub id: i64,
    pub sha: String,
    pub status: String,
    pub name: String,
    #[serde(default, rename = "ref")]
    pub ref_name: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub pipeline_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatusOutcome {
    Posted(CommitStatus),
    /// GitLab refused the transition because the status already is in this state: done.
    AlreadyInState,
}

impl Api {
    /// Posts a status. Not retried here: 409, 429 and 5xx come back retryable for the caller's
    /// outbox.
    pub async fn set_commit_status(
        &self,
        project_id: i64,
        status: &CommitStatusRequest<'_>,
    ) -> Result<StatusOutcome, GitLabError> {
        let url = self.project_url(project_id, &["statuses", status.sha]);
        match self
            .send_json(Method::POST, url, &status_body(status))
            .await
        {
            Ok(posted) => Ok(StatusOutcome::Posted(posted)),
            Err(GitLabError::BadRequest { message }) if already_in(&message, status.state) => {
                Ok(StatusOutcome::AlreadyInState)
            }
            Err(err) => Err(err),
        }
    }

    /// The latest statuses of a commit, optionally for one name (after a restart: is ours still
    /// `running`?).
    pub async fn commit_statuses(
        &self,
        project_id: i64,
        sha: &str,
        name: Option<&str>,
    ) -> Result<Vec<CommitStatus>, GitLabError> {
        let mut url = self.project_url(project_id, &["repository", "commits", sha, "statuses"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("per_page", "100");
            if let Some(name) = name {
                query.append_pair("name", name);
            }
        }
        Pager::new(self, url).collect_all().await
    }
}

fn status_body(status: &CommitStatusRequest<'_>) -> Value {
    let mut body = Map::new();
    body.insert("state".into(), json!(status.state.as_str()));
    body.insert("name".into(), json!(status.name));
    if let Some(ref_name) = status.ref_name {
        body.insert("ref".into(), json!(ref_name));
    }
    if let Some(target_url) = status.target_url {
        body.insert("target_url".into(), json!(target_url));
    }
    if let Some(description) = status.description {
        let cut: String = description.chars().take(MAX_DESCRIPTION_CHARS).collect();
        body.insert("description".into(), json!(cut));
    }
    if let Some(pipeline_id) = status.pipeline_id {
        body.insert("pipeline_id".into(), json!(pipeline_id));
    }
    Value::Object(body)
}

/// `Cannot transition status via :enqueue from :pending (…)` when posting `pending` again.
fn already_in(message: &str, state: CommitState) -> bool {
    message.starts_with("Cannot transition status via")
        && message.contains(&format!(" from :{} ", state.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn recognises_the_transition_error_only_for_the_posted_state() {
        let pending = "Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")";
        assert!(already_in(pending, CommitState::Pending));
        assert!(!already_in(pending, CommitState::Running));
        let running = "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")";
        assert!(already_in(running, CommitState::Running));
        assert!(!already_in(
            "400 Bad request - State is required",
            CommitState::Pending
        ));
    }

    #[test]
    fn body_has_only_given_fields_and_a_bounded_description() {
        let long = "é".repeat(300);
        let body = status_body(&CommitStatusRequest {
            sha: "abc",
            state: CommitState::Running,
            name: "lablink/ci",
            ref_name: Some("feature"),
            target_url: None,
            description: Some(&long),
            pipeline_id: Some(7),
        });
        assert_eq!(body["state"], json!("running"));
        assert_eq!(body["ref"], json!("feature"));
        assert_eq!(body["pipeline_id"], json!(7));
        assert!(body.get("target_url").is_none());
        assert_eq!(body["description"].as_str().unwrap().chars().count(), 255);
    }

    #[test]
    fn parses_commit_status_fixtures() {
        let status: CommitStatus =
            serde_json::from_slice(&fixture("api.commit_status.create.json")).unwrap();
        assert_eq!(status.status, "success");
        assert_eq!(status.ref_name, None);
        let with: CommitStatus =
            serde_json::from_slice(&fixture("api.commit_status.with_pipeline_id.json")).unwrap();
        assert_eq!(with.pipeline_id, Some(15641));
        assert_eq!(with.ref_name.as_deref(), Some("cccct"));
    }
}
