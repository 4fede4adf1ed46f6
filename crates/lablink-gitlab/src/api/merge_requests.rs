//! Merge requests (reconciliation of missed webhooks) and MR notes (run summaries).

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{Api, Pager};
use crate::error::GitLabError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MergeRequest {
    pub id: i64,
    pub iid: i64,
    pub project_id: i64,
    pub title: String,
    /// `opened`, `closed`, `merged`, `locked`.
    pub state: String,
    #[serde(default)]
    pub draft: bool,
    pub source_branch: String,
    pub target_branch: String,
    pub source_project_id: i64,
    pub target_project_id: i64,
    /// Head commit of the source branch.
    #[serde(default)]
    pub sha: Option<String>,
    pub web_url: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Note {
    pub id: i64,
    pub body: String,
}

impl Api {
    /// Open MRs of a project, optionally only those updated after a time.
    pub fn list_open_merge_requests(
        &self,
        project_id: i64,
        updated_after: Option<DateTime<Utc>>,
        per_page: u32,
    ) -> Pager<MergeRequest> {
        let mut url = self.project_url(project_id, &["merge_requests"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("state", "opened")
                .append_pair("order_by", "updated_at")
                .append_pair("sort", "asc")
                .append_pair("per_page", &per_page.clamp(1, 100).to_string());
            if let Some(after) = updated_after {
                query.append_pair(
                    "updated_after",
                    &after.to_rfc3339_opts(SecondsFormat::Secs, true),
                );
            }
        }
        Pager::new(self, url)
    }

    pub async fn merge_request(
        &self,
        project_id: i64,
        iid: i64,
    ) -> Result<MergeRequest, GitLabError> {
        self.get(self.project_url(project_id, &["merge_requests", &iid.to_string()]))
            .await
    }

    /// Opens a merge request (the doctor's `.gitignore` fix).
    pub async fn create_merge_request(
        &self,
        project_id: i64,
        source_branch: &str,
        target_branch: &str,
        title: &str,
        description: &str,
    ) -> Result<MergeRequest, GitLabError> {
        let body = json!({
            "source_branch": source_branch,
            "target_branch": target_branch,
            "title": title,
            "description": description,
        });
        let url = self.project_url(project_id, &["merge_requests"]);
        self.send_json(Method::POST, url, &body).await
    }

    /// Comments on an MR. Quick actions in `body` (lines starting with `/`) are executed by
    /// GitLab: callers must not pass untrusted text unescaped.
    pub async fn create_merge_request_note(
        &self,
        project_id: i64,
        iid: i64,
        body: &str,
    ) -> Result<Note, GitLabError> {
        let url = self.project_url(project_id, &["merge_requests", &iid.to_string(), "notes"]);
        self.send_json(Method::POST, url, &json!({ "body": body }))
            .await
    }

    pub async fn update_merge_request_note(
        &self,
        project_id: i64,
        iid: i64,
        note_id: i64,
        body: &str,
    ) -> Result<Note, GitLabError> {
        let url = self.project_url(
            project_id,
            &[
                "merge_requests",
                &iid.to_string(),
                "notes",
                &note_id.to_string(),
            ],
        );
        self.send_json(Method::PUT, url, &json!({ "body": body }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_merge_request_from_the_list_api() {
        let json = r#"{"id":84,"iid":3,"project_id":14,"title":"Add feature","state":"opened",
            "draft":true,"source_branch":"feature","target_branch":"main","source_project_id":14,
            "target_project_id":14,"sha":"8888888888888888888888888888888888888888",
            "web_url":"https://gitlab.example.com/g/p/-/merge_requests/3",
            "updated_at":"2024-01-02T03:04:05.000Z","labels":[]}"#;
        let mr: MergeRequest = serde_json::from_str(json).unwrap();
        assert_eq!(mr.iid, 3);
        assert!(mr.draft);
        assert_eq!(
            mr.sha.as_deref(),
            Some("8888888888888888888888888888888888888888")
        );
    }
}
