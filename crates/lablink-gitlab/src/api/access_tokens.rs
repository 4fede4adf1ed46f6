//! Project access tokens (gitlab-api.md §4): the bot identity lablink posts statuses and pushes as.

use chrono::NaiveDate;
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{Api, Pager};
use crate::error::GitLabError;

/// A project access token as GitLab lists it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The bot user; statuses and pushes are attributed to it.
    pub user_id: i64,
    /// Expires at midnight UTC of this date; `None` only for pre-16.0 tokens.
    #[serde(default)]
    pub expires_at: Option<NaiveDate>,
    #[serde(default)]
    pub access_level: Option<i64>,
}

/// A token just created or rotated: the only time GitLab shows its secret.
#[derive(Debug, Deserialize)]
pub struct IssuedAccessToken {
    #[serde(flatten)]
    pub info: AccessToken,
    pub token: SecretString,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewAccessToken<'a> {
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    /// 40 (Maintainer) lets the bot post statuses on protected branches.
    pub access_level: i64,
    /// Always sent: GitLab's default differs between versions.
    pub expires_at: NaiveDate,
}

impl Api {
    /// Needs a Maintainer's user token; on gitlab.com Free this is a 400 "does not have permission".
    pub async fn create_project_access_token(
        &self,
        project_id: i64,
        new: &NewAccessToken<'_>,
    ) -> Result<IssuedAccessToken, GitLabError> {
        let body = json!({
            "name": new.name,
            "scopes": new.scopes,
            "access_level": new.access_level,
            "expires_at": new.expires_at.format("%Y-%m-%d").to_string(),
        });
        self.send_json(Method::POST, self.tokens_url(project_id, &[]), &body)
            .await
    }

    pub async fn project_access_token(
        &self,
        project_id: i64,
        token_id: i64,
    ) -> Result<AccessToken, GitLabError> {
        self.get(self.tokens_url(project_id, &[&token_id.to_string()]))
            .await
    }

    pub async fn list_project_access_tokens(
        &self,
        project_id: i64,
    ) -> Result<Vec<AccessToken>, GitLabError> {
        let mut url = self.tokens_url(project_id, &[]);
        url.query_pairs_mut().append_pair("per_page", "100");
        Pager::new(self, url).collect_all().await
    }

    /// Rotates another token (needs a user token). GitLab revokes the old token at once and the
    /// new one has a new id. Never repeat a rotate that may have succeeded: rotating a revoked
    /// token revokes the whole family.
    pub async fn rotate_project_access_token(
        &self,
        project_id: i64,
        token_id: i64,
        expires_at: NaiveDate,
    ) -> Result<IssuedAccessToken, GitLabError> {
        self.rotate(project_id, &token_id.to_string(), expires_at)
            .await
    }

    /// Rotates the token this `Api` is authenticated with (`api` or `self_rotate` scope).
    pub async fn self_rotate_project_access_token(
        &self,
        project_id: i64,
        expires_at: NaiveDate,
    ) -> Result<IssuedAccessToken, GitLabError> {
        self.rotate(project_id, "self", expires_at).await
    }

    async fn rotate(
        &self,
        project_id: i64,
        token: &str,
        expires_at: NaiveDate,
    ) -> Result<IssuedAccessToken, GitLabError> {
        let body = json!({ "expires_at": expires_at.format("%Y-%m-%d").to_string() });
        self.send_json(
            Method::POST,
            self.tokens_url(project_id, &[token, "rotate"]),
            &body,
        )
        .await
    }

    /// The token this `Api` is authenticated with (works for project access tokens too): is it
    /// still active, when does it expire.
    pub async fn token_self(&self) -> Result<AccessToken, GitLabError> {
        self.get(self.url(&["personal_access_tokens", "self"]))
            .await
    }

    pub async fn revoke_project_access_token(
        &self,
        project_id: i64,
        token_id: i64,
    ) -> Result<(), GitLabError> {
        self.delete(self.tokens_url(project_id, &[&token_id.to_string()]))
            .await
    }

    fn tokens_url(&self, project_id: i64, rest: &[&str]) -> url::Url {
        let mut segments = vec!["access_tokens"];
        segments.extend_from_slice(rest);
        self.project_url(project_id, &segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use secrecy::ExposeSecret as _;

    #[test]
    fn parses_created_rotated_and_listed_tokens() {
        let created: IssuedAccessToken =
            serde_json::from_slice(&fixture("api.project_access_token.create.json")).unwrap();
        assert_eq!(created.info.id, 1876);
        assert_eq!(created.info.expires_at, None);
        assert_eq!(created.token.expose_secret(), "2UsevZE1x1ZdFZW4MNzH");
        assert!(!format!("{created:?}").contains("2UsevZE1x1ZdFZW4MNzH"));
        let docs: IssuedAccessToken = serde_json::from_slice(&fixture(
            "api.project_access_token.create.docs-example.json",
        ))
        .unwrap();
        assert_eq!(docs.info.expires_at, NaiveDate::from_ymd_opt(2021, 1, 31));
        assert_eq!(docs.info.access_level, Some(30));
        let rotated: IssuedAccessToken =
            serde_json::from_slice(&fixture("api.project_access_token.rotate.json")).unwrap();
        assert_eq!(rotated.info.id, 42);
        assert_eq!(rotated.token.expose_secret(), "s3cr3t");
        let got: AccessToken =
            serde_json::from_slice(&fixture("api.project_access_token.get.json")).unwrap();
        assert_eq!(got.user_id, 2453);
        assert!(got.active && !got.revoked);
    }
}
