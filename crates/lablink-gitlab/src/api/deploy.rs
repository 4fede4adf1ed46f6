//! Deploy tokens (read-only HTTPS clone) and deploy keys (SSH) (gitlab-api.md §5).

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, Pager};
use crate::error::GitLabError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeployToken {
    pub id: i64,
    pub name: String,
    /// Git's user name for this token must be exactly this.
    pub username: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub expired: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct IssuedDeployToken {
    #[serde(flatten)]
    pub info: DeployToken,
    pub token: SecretString,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeployKey {
    pub id: i64,
    pub title: String,
    pub key: String,
    /// MD5 form; absent on FIPS instances.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `SHA256:<base64>`, GitLab 15.2+.
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
    #[serde(default)]
    pub can_push: bool,
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl Api {
    /// Creates a `read_repository` deploy token (deploy tokens cannot push).
    pub async fn create_deploy_token(
        &self,
        project_id: i64,
        name: &str,
        username: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<IssuedDeployToken, GitLabError> {
        let mut body = json!({ "name": name, "scopes": ["read_repository"] });
        if let Some(username) = username {
            body["username"] = Value::from(username);
        }
        if let Some(at) = expires_at {
            body["expires_at"] = Value::from(at.to_rfc3339());
        }
        let url = self.project_url(project_id, &["deploy_tokens"]);
        self.send_json(Method::POST, url, &body).await
    }

    pub async fn list_deploy_tokens(
        &self,
        project_id: i64,
    ) -> Result<Vec<DeployToken>, GitLabError> {
        let mut url = self.project_url(project_id, &["deploy_tokens"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        Pager::new(self, url).collect_all().await
    }

    pub async fn deploy_token(
        &self,
        project_id: i64,
        token_id: i64,
    ) -> Result<DeployToken, GitLabError> {
        self.get(self.project_url(project_id, &["deploy_tokens", &token_id.to_string()]))
            .await
    }

    pub async fn delete_deploy_token(
        &self,
        project_id: i64,
        token_id: i64,
    ) -> Result<(), GitLabError> {
        self.delete(self.project_url(project_id, &["deploy_tokens", &token_id.to_string()]))
            .await
    }

    pub async fn create_deploy_key(
        &self,
        project_id: i64,
        title: &str,
        key: &str,
        can_push: bool,
    ) -> Result<DeployKey, GitLabError> {
        let body = json!({ "title": title, "key": key, "can_push": can_push });
        let url = self.project_url(project_id, &["deploy_keys"]);
        self.send_json(Method::POST, url, &body).await
    }

    pub async fn list_deploy_keys(&self, project_id: i64) -> Result<Vec<DeployKey>, GitLabError> {
        let mut url = self.project_url(project_id, &["deploy_keys"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        Pager::new(self, url).collect_all().await
    }

    pub async fn deploy_key(&self, project_id: i64, key_id: i64) -> Result<DeployKey, GitLabError> {
        self.get(self.project_url(project_id, &["deploy_keys", &key_id.to_string()]))
            .await
    }

    pub async fn delete_deploy_key(&self, project_id: i64, key_id: i64) -> Result<(), GitLabError> {
        self.delete(self.project_url(project_id, &["deploy_keys", &key_id.to_string()]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use secrecy::ExposeSecret as _;

    #[test]
    fn parses_deploy_token_fixtures() {
        let created: IssuedDeployToken =
            serde_json::from_slice(&fixture("api.deploy_token.create.json")).unwrap();
        assert_eq!(created.info.username, "custom-user");
        assert_eq!(created.token.expose_secret(), "jMRvtPNxrn3crTAGukpZ");
        assert_eq!(created.info.scopes, ["read_repository"]);
        let listed: Vec<DeployToken> =
            serde_json::from_slice(&fixture("api.deploy_token.list.json")).unwrap();
        assert_eq!(listed[0].username, "gitlab+deploy-token-1");
        assert!(!listed[0].revoked);
    }

    #[test]
    fn parses_deploy_key_fixtures() {
        let key: DeployKey = serde_json::from_slice(&fixture("api.deploy_key.get.json")).unwrap();
        assert_eq!(
            key.fingerprint_sha256.as_deref(),
            Some("SHA256:Jrs3LD1Ji30xNLtTVf9NDCj7kkBgPBb2pjvTZ3HfIgU")
        );
        assert!(!key.can_push);
        let created: DeployKey =
            serde_json::from_slice(&fixture("api.deploy_key.create.json")).unwrap();
        assert!(created.can_push);
        assert_eq!(created.fingerprint, None);
    }
}
