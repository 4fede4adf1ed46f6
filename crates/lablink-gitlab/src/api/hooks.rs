//! Project webhooks (gitlab-api.md §3.1).

use std::collections::BTreeMap;

use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Api, Pager};
use crate::error::GitLabError;

/// Event flags lablink never wants. Each is sent as `false` because omitted flags keep
/// GitLab's defaults, and those differ between versions.
const UNWANTED_EVENTS: &[&str] = &[
    "tag_push_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
    "feature_flag_events",
    "milestone_events",
    "emoji_events",
    "resource_access_token_events",
    "resource_deploy_token_events",
];

/// What lablink asks of a hook, on create and edit.
#[derive(Debug, Clone)]
pub struct HookSpec {
    pub url: String,
    /// Sent back in `X-Gitlab-Token`. GitLab drops it when the URL changes: always resend it.
    pub token: Option<SecretString>,
    /// `whsec_<base64 of 32 bytes>`, GitLab 19.0+; older versions ignore it.
    pub signing_token: Option<SecretString>,
    pub merge_requests_events: bool,
    pub push_events: bool,
    pub enable_ssl_verification: bool,
}

impl HookSpec {
    fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("url".into(), json!(self.url));
        body.insert(
            "merge_requests_events".into(),
            json!(self.merge_requests_events),
        );
        body.insert("push_events".into(), json!(self.push_events));
        body.insert(
            "enable_ssl_verification".into(),
            json!(self.enable_ssl_verification),
        );
        for flag in UNWANTED_EVENTS {
            body.insert((*flag).into(), json!(false));
        }
        if let Some(token) = &self.token {
            body.insert("token".into(), json!(token.expose_secret()));
        }
        if let Some(signing) = &self.signing_token {
            body.insert("signing_token".into(), json!(signing.expose_secret()));
        }
        Value::Object(body)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    pub id: i64,
    pub url: String,
    #[serde(default)]
    pub project_id: Option<i64>,
    #[serde(default)]
    pub push_events: bool,
    #[serde(default)]
    pub merge_requests_events: bool,
    #[serde(default)]
    pub enable_ssl_verification: bool,
    /// `executable`, `temporarily_disabled` or `disabled` (auto-disabled after failures).
    #[serde(default)]
    pub alert_status: Option<String>,
    #[serde(default)]
    pub disabled_until: Option<String>,
    /// 19.0+; `None` on older instances.
    #[serde(default)]
    pub token_present: Option<bool>,
    /// 19.0+; `None` means the instance cannot sign deliveries.
    #[serde(default)]
    pub signing_token_present: Option<bool>,
}

/// One recorded delivery from `GET …/hooks/:id/events` (17.3+, last 7 days).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HookEvent {
    pub id: i64,
    #[serde(default)]
    pub trigger: Option<String>,
    /// GitLab sends it as a string (`"200"`) or a number, or an error text.
    #[serde(default, deserialize_with = "text_or_number")]
    pub response_status: Option<String>,
    #[serde(default)]
    pub execution_duration: Option<f64>,
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

impl Api {
    pub async fn create_hook(&self, project_id: i64, spec: &HookSpec) -> Result<Hook, GitLabError> {
        let url = self.project_url(project_id, &["hooks"]);
        self.send_json(Method::POST, url, &spec.body()).await
    }

    pub async fn hook(&self, project_id: i64, hook_id: i64) -> Result<Hook, GitLabError> {
        self.get(self.hook_url(project_id, hook_id, &[])).await
    }

    pub async fn list_hooks(&self, project_id: i64) -> Result<Vec<Hook>, GitLabError> {
        let mut url = self.project_url(project_id, &["hooks"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        Pager::new(self, url).collect_all().await
    }

    /// PUT with the full spec (GitLab requires `url` and forgets the token when the URL changes).
    pub async fn edit_hook(
        &self,
        project_id: i64,
        hook_id: i64,
        spec: &HookSpec,
    ) -> Result<Hook, GitLabError> {
        let url = self.hook_url(project_id, hook_id, &[]);
        self.send_json(Method::PUT, url, &spec.body()).await
    }

    /// Deletes a hook; a hook already gone is [`GitLabError::NotFound`].
    pub async fn delete_hook(&self, project_id: i64, hook_id: i64) -> Result<(), GitLabError> {
        self.delete(self.hook_url(project_id, hook_id, &[])).await
    }

    /// Asks GitLab to send a test delivery, e.g. `trigger = "merge_requests_events"` (5/min).
    pub async fn test_hook(
        &self,
        project_id: i64,
        hook_id: i64,
        trigger: &str,
    ) -> Result<(), GitLabError> {
        let url = self.hook_url(project_id, hook_id, &["test", trigger]);
        self.send_json::<Value>(Method::POST, url, &json!({}))
            .await?;
        Ok(())
    }

    /// Recent deliveries of a hook, newest first; `status` filters (`successful`, `client_failure`,
    /// `server_failure` or a code).
    pub fn hook_events(
        &self,
        project_id: i64,
        hook_id: i64,
        status: Option<&str>,
    ) -> Pager<HookEvent> {
        let mut url = self.hook_url(project_id, hook_id, &["events"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("per_page", "100");
            if let Some(status) = status {
                query.append_pair("status", status);
            }
        }
        Pager::new(self, url)
    }

    fn hook_url(&self, project_id: i64, hook_id: i64, rest: &[&str]) -> url::Url {
        let hook = hook_id.to_string();
        let mut segments = vec!["hooks", hook.as_str()];
        segments.extend_from_slice(rest);
        self.project_url(project_id, &segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn spec_sets_every_event_flag_explicitly() {
        let spec = HookSpec {
            url: "https://lablink.example.com/webhooks/gitlab/abc".to_owned(),
            token: Some(SecretString::from("secret-token")),
            signing_token: None,
            merge_requests_events: true,
            push_events: true,
            enable_ssl_verification: true,
        };
        let body = spec.body();
        assert_eq!(body["merge_requests_events"], json!(true));
        assert_eq!(body["push_events"], json!(true));
        assert_eq!(body["enable_ssl_verification"], json!(true));
        assert_eq!(body["token"], json!("secret-token"));
        assert!(body.get("signing_token").is_none());
        for flag in UNWANTED_EVENTS {
            assert_eq!(body[*flag], json!(false), "{flag}");
        }
        assert!(!format!("{spec:?}").contains("secret-token"));
    }

    #[test]
    fn parses_hook_and_event_fixtures() {
        let hook: Hook = serde_json::from_slice(&fixture("api.project_hook.get.json")).unwrap();
        assert_eq!(hook.id, 1);
        assert_eq!(hook.alert_status.as_deref(), Some("executable"));
        assert_eq!(hook.signing_token_present, Some(false));
        assert!(hook.merge_requests_events);
        let event: HookEvent =
            serde_json::from_slice(&fixture("api.project_hook.event.list_item.json")).unwrap();
        assert_eq!(event.response_status.as_deref(), Some("200"));
        assert_eq!(
            event
                .request_headers
                .get("Idempotency-Key")
                .map(String::as_str),
            Some("3a427872-00df-429c-9bc9-a9475de2efe4")
        );
    }
}
