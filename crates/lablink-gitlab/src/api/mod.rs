//! Typed GitLab REST API v4, authenticated with an OAuth bearer token or a `PRIVATE-TOKEN`
//! (project access token). Each endpoint returns small types holding only what lablink reads.

mod access_tokens;
mod branches;
mod deploy;
mod hooks;
mod merge_requests;
mod pages;
mod projects;
mod retry;
mod statuses;
mod user;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::GitLabError;
use crate::transport::{Instance, read_body, response};
pub use access_tokens::{AccessToken, IssuedAccessToken, NewAccessToken};
pub use branches::{Branch, BranchCommit};
pub use deploy::{DeployKey, DeployToken, IssuedDeployToken};
pub use hooks::{Hook, HookEvent, HookSpec};
pub use merge_requests::{MergeRequest, Note};
pub use pages::{Page, Pager};
pub use projects::{Member, Namespace, NamespaceKind, Project};
pub use retry::{RetryPolicy, retry_idempotent};
pub use statuses::{CommitState, CommitStatus, CommitStatusRequest, StatusOutcome};
pub use user::User;

const PRIVATE_TOKEN: HeaderName = HeaderName::from_static("private-token");

#[derive(Debug, Clone)]
enum Credential {
    Bearer(SecretString),
    PrivateToken(SecretString),
}

/// A GitLab API client for one instance and one token.
#[derive(Debug, Clone)]
pub struct Api {
    instance: Instance,
    credential: Credential,
    retry: RetryPolicy,
}

impl Api {
    /// For OAuth access tokens (`Authorization: Bearer`).
    pub fn bearer(instance: &Instance, token: SecretString) -> Api {
        Api::with_credential(instance, Credential::Bearer(token))
    }

    /// For project access tokens and personal access tokens (`PRIVATE-TOKEN`).
    pub fn private_token(instance: &Instance, token: SecretString) -> Api {
        Api::with_credential(instance, Credential::PrivateToken(token))
    }

    fn with_credential(instance: &Instance, credential: Credential) -> Api {
        Api {
            instance: instance.clone(),
            credential,
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces how GETs are retried on 429/5xx/network trouble.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Api {
        self.retry = retry;
        self
    }

    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// A request to `api/v4/<segments…>` carrying the token in a header marked sensitive.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let (name, value) = match &self.credential {
            Credential::Bearer(token) => (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())),
            ),
            Credential::PrivateToken(token) => {
                (PRIVATE_TOKEN, HeaderValue::from_str(token.expose_secret()))
            }
        };
        let builder = self.instance.client().request(method, url);
        match value {
            Ok(mut value) => {
                value.set_sensitive(true);
                builder.header(name, value)
            }
            // A token with control characters cannot be sent; GitLab then answers 401 for it.
            Err(_) => builder,
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        self.instance.api_url(segments)
    }

    /// `api/v4/projects/<id>/<rest…>`.
    fn project_url(&self, project_id: i64, rest: &[&str]) -> Url {
        let project = project_id.to_string();
        let mut segments = vec!["projects", project.as_str()];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// Sends a request and returns the successful response's status, headers and body.
    async fn execute(&self, request: RequestBuilder) -> Result<Reply, GitLabError> {
        let response = self.instance.send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        if status.is_success() {
            Ok(Reply { headers, body })
        } else {
            Err(response::api_error(status, &headers, &body))
        }
    }

    /// GET with the bounded retry for idempotent reads.
    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, GitLabError> {
        let reply = retry_idempotent(&self.retry, || {
            self.execute(self.request(Method::GET, url.clone()))
        })
        .await?;
        reply.json()
    }

    /// A write with a JSON body, not retried: the caller knows whether repeating it is safe.
    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: &serde_json::Value,
    ) -> Result<T, GitLabError> {
        self.execute(self.request(method, url).json(body))
            .await?
            .json()
    }

    async fn delete(&self, url: Url) -> Result<(), GitLabError> {
        self.execute(self.request(Method::DELETE, url)).await?;
        Ok(())
    }
}

struct Reply {
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn json<T: DeserializeOwned>(&self) -> Result<T, GitLabError> {
        decode(&self.body, std::any::type_name::<T>())
    }
}

/// Decodes a JSON body, naming what was expected when it does not fit.
fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, GitLabError> {
    serde_json::from_slice(body)
        .map_err(|e| GitLabError::decode(what.rsplit("::").next().unwrap_or(what), &e))
}
