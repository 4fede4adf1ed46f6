//! GitLab as OAuth 2.0 provider (gitlab-api.md §1): authorize URL with PKCE S256, code exchange,
//! refresh (single-use, rotating refresh tokens: the caller must single-flight it), revoke.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::GitLabError;
use crate::transport::{Instance, read_body, response};

/// GitLab access tokens live 2 hours (not configurable, §1.6); used when a reply omits `expires_in`.
const DEFAULT_LIFETIME_SECS: i64 = 7200;
const VERIFIER_LEN: usize = 64;

/// The admin-registered GitLab application.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
}

/// A PKCE pair: the verifier stays with lablink, the challenge goes in the authorize URL.
#[derive(Debug)]
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    /// A fresh random verifier of 64 unreserved characters and its S256 challenge.
    pub fn generate() -> Pkce {
        let verifier: String = rand::rngs::OsRng
            .sample_iter(rand::distributions::Alphanumeric)
            .take(VERIFIER_LEN)
            .map(char::from)
            .collect();
        Pkce::from_verifier(SecretString::from(verifier))
    }

    /// The pair for a known verifier: challenge = base64url(SHA-256(verifier)), no padding.
    pub fn from_verifier(verifier: SecretString) -> Pkce {
        let digest = Sha256::digest(verifier.expose_secret().as_bytes());
        Pkce {
            challenge: URL_SAFE_NO_PAD.encode(digest),
            verifier,
        }
    }
}

/// Where to send the browser: `<base>/oauth/authorize?…` with `state` and the PKCE challenge.
pub fn authorize_url(
    instance: &Instance,
    app: &AppCredentials,
    state: &str,
    pkce_challenge: &str,
    scope: &str,
) -> Url {
    let mut url = instance.web_url("oauth/authorize");
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &app.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", state)
        .append_pair("scope", scope)
        .append_pair("code_challenge", pkce_challenge)
        .append_pair("code_challenge_method", "S256");
    url
}

/// An access token and the single-use refresh token that replaces it.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_at_unix: i64,
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: SecretString,
    token_type: String,
    refresh_token: SecretString,
    expires_in: Option<i64>,
    created_at: Option<i64>,
    scope: Option<String>,
}

impl TokenReply {
    fn into_token_set(self, now_unix: i64) -> Result<TokenSet, GitLabError> {
        if !self.token_type.eq_ignore_ascii_case("bearer") {
            return Err(GitLabError::Decode {
                context: "the OAuth token reply".to_owned(),
                cause: format!("token_type is {:?}, not bearer", self.token_type),
            });
        }
        let issued = self.created_at.unwrap_or(now_unix);
        Ok(TokenSet {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            expires_at_unix: issued + self.expires_in.unwrap_or(DEFAULT_LIFETIME_SECS),
            scope: self.scope,
        })
    }
}

/// Exchanges the authorization code from the callback (with the PKCE verifier) for tokens.
pub async fn exchange_code(
    instance: &Instance,
    app: &AppCredentials,
    code: &str,
    verifier: &SecretString,
) -> Result<TokenSet, GitLabError> {
    token_request(
        instance,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier.expose_secret()),
        ],
    )
    .await
}

/// Trades a refresh token for a new pair. GitLab revokes the old pair at once, so the caller
/// must store the new one before using it and never send the same refresh token twice.
pub async fn refresh(
    instance: &Instance,
    app: &AppCredentials,
    refresh_token: &SecretString,
) -> Result<TokenSet, GitLabError> {
    token_request(
        instance,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ],
    )
    .await
}

/// Revokes an access or refresh token (and so its pair) at GitLab.
pub async fn revoke(
    instance: &Instance,
    app: &AppCredentials,
    token: &SecretString,
) -> Result<(), GitLabError> {
    let form = [
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        ("token", token.expose_secret()),
    ];
    let request = instance
        .client()
        .post(instance.web_url("oauth/revoke"))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form);
    let reply = instance.send(request).await?;
    let status = reply.status();
    let headers = reply.headers().clone();
    let body = read_body(reply).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(response::oauth_error(status, &headers, &body))
    }
}

/// What GitLab knows about an OAuth access token (`GET /oauth/token/info`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// The GitLab user id behind the token.
    pub resource_owner_id: i64,
    #[serde(default)]
    pub scope: Vec<String>,
    /// Seconds left; `None` only for legacy non-expiring tokens.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// Asks GitLab whether an access token is still good, and whose it is. An expired or revoked
/// token gives [`GitLabError::Unauthorized`] with its [`crate::error::TokenProblem`].
pub async fn token_info(
    instance: &Instance,
    token: &SecretString,
) -> Result<TokenInfo, GitLabError> {
    let mut authorization =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| GitLabError::Unauthorized {
                problem: crate::error::TokenProblem::Invalid,
                description: "the token contains characters GitLab never issues".to_owned(),
            })?;
    authorization.set_sensitive(true);
    let request = instance
        .client()
        .get(instance.web_url("oauth/token/info"))
        .header(reqwest::header::AUTHORIZATION, authorization);
    let reply = instance.send(request).await?;
    let status = reply.status();
    let headers = reply.headers().clone();
    let body = read_body(reply).await?;
    if !status.is_success() {
        return Err(response::api_error(status, &headers, &body));
    }
    serde_json::from_slice(&body).map_err(|e| GitLabError::decode("the token info", &e))
}

async fn token_request(
    instance: &Instance,
    app: &AppCredentials,
    grant: &[(&str, &str)],
) -> Result<TokenSet, GitLabError> {
    let mut form = vec![
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        ("redirect_uri", app.redirect_uri.as_str()),
    ];
    form.extend_from_slice(grant);
    let request = instance
        .client()
        .post(instance.web_url("oauth/token"))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form);
    let reply = instance.send(request).await?;
    let status = reply.status();
    let headers = reply.headers().clone();
    let body = read_body(reply).await?;
    if !status.is_success() {
        return Err(response::oauth_error(status, &headers, &body));
    }
    parse_token_reply(&body, chrono::Utc::now().timestamp())
}

fn parse_token_reply(body: &[u8], now_unix: i64) -> Result<TokenSet, GitLabError> {
    serde_json::from_slice::<TokenReply>(body)
        .map_err(|e| GitLabError::decode("the OAuth token reply", &e))?
        .into_token_set(now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use crate::transport::{InstanceConfig, NetworkPolicy};

    #[test]
    fn parses_token_info_fixture() {
        let info: TokenInfo =
            serde_json::from_slice(&fixture("api.oauth.token_info.json")).unwrap();
        assert_eq!(info.resource_owner_id, 1);
        assert_eq!(info.scope, ["api"]);
        assert_eq!(info.expires_in, None);
    }

    #[test]
    fn pkce_matches_the_worked_example_from_gitlab_docs() {
        let pkce = Pkce::from_verifier(SecretString::from(
            "ks02i3jdikdo2k0dkfodf3m39rjfjsdk0wk349rj3jrhf",
        ));
        assert_eq!(
            pkce.challenge,
            "2i0WFA-0AerkjQm4X4oDEhqA17QIAKNjXpagHBXmO_U"
        );
    }

    #[test]
    fn generated_verifiers_are_64_unreserved_chars_and_differ() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_eq!(a.verifier.expose_secret().len(), 64);
        assert!(
            a.verifier
                .expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        );
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_eq!(a.challenge.len(), 43);
        assert!(!format!("{a:?}").contains(a.verifier.expose_secret()));
    }

    #[test]
    fn authorize_url_carries_every_parameter() {
        let instance = Instance::new(InstanceConfig {
            base_url: Url::parse("https://gitlab.example.com/sub").unwrap(),
            ca_bundle_pem: None,
            policy: NetworkPolicy::default(),
            timeout: std::time::Duration::from_secs(5),
        })
        .unwrap();
        let app = AppCredentials {
            client_id: "app id".to_owned(),
            client_secret: SecretString::from("s3cret"),
            redirect_uri: "https://lablink.example.com/complete/gitlab".to_owned(),
        };
        let url = authorize_url(&instance, &app, "st&ate", "chal", "api");
        assert_eq!(url.path(), "/sub/oauth/authorize");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("client_id"), Some("app id"));
        assert_eq!(
            get("redirect_uri"),
            Some("https://lablink.example.com/complete/gitlab")
        );
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("state"), Some("st&ate"));
        assert_eq!(get("scope"), Some("api"));
        assert_eq!(get("code_challenge"), Some("chal"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert!(!url.as_str().contains("s3cret"));
    }

    #[test]
    fn parses_token_replies_from_fixtures() {
        let set =
            parse_token_reply(&fixture("api.oauth.token.authorization_code.json"), 0).unwrap();
        assert_eq!(set.expires_at_unix, 1607635748 + 7200);
        assert!(set.access_token.expose_secret().starts_with("de6780bc"));
        assert!(set.refresh_token.expose_secret().starts_with("8257e65c"));
        assert_eq!(set.scope, None);
        assert!(!format!("{set:?}").contains("de6780bc"));
        let set = parse_token_reply(&fixture("api.oauth.token.refresh.json"), 0).unwrap();
        assert_eq!(set.expires_at_unix, 1628711391 + 7200);
    }

    #[test]
    fn token_reply_without_created_at_counts_from_now_and_rejects_other_types() {
        let set = parse_token_reply(
            br#"{"access_token":"a","token_type":"Bearer","refresh_token":"r","scope":"api"}"#,
            1000,
        )
        .unwrap();
        assert_eq!(set.expires_at_unix, 1000 + 7200);
        assert_eq!(set.scope.as_deref(), Some("api"));
        let err = parse_token_reply(
            br#"{"access_token":"a","token_type":"mac","refresh_token":"r"}"#,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, GitLabError::Decode { .. }));
        let err = parse_token_reply(b"<html>", 0).unwrap_err();
        assert!(matches!(err, GitLabError::Decode { .. }));
    }
}
