//! The one error type of this crate: every way talking to GitLab can fail, each with a message
//! that says what happened and what to do about it.

use std::time::Duration;

/// An OAuth error code from GitLab's token endpoints (Doorkeeper, RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// Code or refresh token invalid, expired, already used, or issued to another client.
    InvalidGrant,
    /// Wrong client id or secret (for example after "Renew secret" in GitLab).
    InvalidClient,
    /// The application is not allowed the requested scope.
    InvalidScope,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
    AccessDenied,
    Other(String),
}

impl OAuthErrorCode {
    pub fn parse(code: &str) -> OAuthErrorCode {
        match code {
            "invalid_grant" => OAuthErrorCode::InvalidGrant,
            "invalid_client" => OAuthErrorCode::InvalidClient,
            "invalid_scope" => OAuthErrorCode::InvalidScope,
            "invalid_request" => OAuthErrorCode::InvalidRequest,
            "unauthorized_client" => OAuthErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => OAuthErrorCode::UnsupportedGrantType,
            "access_denied" => OAuthErrorCode::AccessDenied,
            other => OAuthErrorCode::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::AccessDenied => "access_denied",
            OAuthErrorCode::Other(code) => code,
        }
    }

    fn advice(&self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidGrant => {
                "The code or refresh token is expired, already used or revoked: link the GitLab account again."
            }
            OAuthErrorCode::InvalidClient => {
                "GitLab does not accept the application ID or secret: check them in the GitLab integration settings (the secret changes when it is renewed in GitLab)."
            }
            OAuthErrorCode::InvalidScope => {
                "The GitLab application does not allow the requested scope: tick the `api` scope in the application's settings in GitLab."
            }
            OAuthErrorCode::AccessDenied => "The GitLab user declined access.",
            _ => "Check the GitLab application's settings (redirect URI, confidential, scopes).",
        }
    }
}

impl std::fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a 401 with a token was refused (from GitLab's `invalid_token` body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// "Token is expired": refresh it and retry.
    Expired,
    /// "Token was revoked": refreshing usually fails too; the user must link again.
    Revoked,
    /// Unknown token ("Bad Access Token.") or plain `401 Unauthorized`.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    /// The base URL was refused before any request (scheme, credentials, query, fragment).
    #[error("the GitLab URL is not usable: {0}")]
    InvalidUrl(String),

    #[error(
        "the CA bundle is not usable: {0}. Paste the PEM certificate(s) of the CA that signed GitLab's certificate"
    )]
    InvalidCaBundle(String),

    #[error(
        "cannot reach GitLab at {host}: {cause}. Check the URL, that the name resolves and that the server is up"
    )]
    Unreachable { host: String, cause: String },

    #[error(
        "GitLab at {host} did not answer in time. Try again later; if it persists, check the server"
    )]
    Timeout { host: String },

    #[error(
        "TLS problem talking to {host}: {cause}. If GitLab uses a certificate from a private CA, add that CA's bundle to the integration"
    )]
    Tls { host: String, cause: String },

    #[error(
        "refused by lablink's network policy: {host} resolves to {address}, a {class} address. Use GitLab's public address, or ask the operator to allow private networks"
    )]
    NetworkPolicy {
        host: String,
        address: String,
        class: &'static str,
    },

    /// [`crate::Instance::probe`] found something that is not GitLab at the URL.
    #[error(
        "{url} does not answer like GitLab: {detail}. Check that the URL is GitLab's base address"
    )]
    NotGitLab { url: String, detail: String },

    #[error("GitLab refused the OAuth request ({code}: {description}). {}", code.advice())]
    OAuth {
        code: OAuthErrorCode,
        description: String,
    },

    #[error("GitLab refused the token: {}", match problem {
        TokenProblem::Expired => "it has expired. Refresh it, or link the GitLab account again",
        TokenProblem::Revoked => "it was revoked. Link the GitLab account again",
        TokenProblem::Invalid => "it is not valid. Link the GitLab account again or replace the token",
    })]
    Unauthorized {
        problem: TokenProblem,
        description: String,
    },

    #[error(
        "the token lacks a scope GitLab requires ({description}). Re-authorize with the `api` scope"
    )]
    InsufficientScope {
        description: String,
        required: Option<String>,
    },

    /// 403 other than a missing scope (role too low, protected branch).
    #[error(
        "GitLab forbids this ({message}). The GitLab user or bot needs a higher role (usually Maintainer), or the branch is protected"
    )]
    Forbidden { message: String },

    /// 404: missing, or hidden from this token (GitLab answers 404 rather than 403).
    #[error("GitLab says it does not exist or is not visible to this token ({message})")]
    NotFound { message: String },

    #[error("GitLab reports a conflict ({message}); retrying later usually succeeds")]
    Conflict { message: String },

    /// 422, e.g. `Invalid url given` for a hook URL GitLab blocks.
    #[error("GitLab rejected the request: {message}")]
    Unprocessable { message: String },

    /// 400 with GitLab's message (for example "User does not have permission to create project
    /// access token" on gitlab.com Free).
    #[error("GitLab rejected the request as bad: {message}")]
    BadRequest { message: String },

    /// 429; `retry_after` from the `Retry-After` header.
    #[error("GitLab is rate limiting lablink{}; try again later", match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    })]
    RateLimited { retry_after: Option<Duration> },

    #[error(
        "GitLab had an internal problem (HTTP {status}: {message}); retrying later usually succeeds"
    )]
    Server { status: u16, message: String },

    /// Any other status, including redirects (which lablink never follows).
    #[error("GitLab answered with unexpected HTTP {status}: {message}")]
    UnexpectedStatus { status: u16, message: String },

    /// A 2xx answer whose body does not have the expected shape.
    #[error("GitLab's answer could not be read ({context}): {cause}")]
    Decode { context: String, cause: String },
}

impl GitLabError {
    /// A JSON body that does not fit. Only the error's kind and position are kept: serde's text
    /// can quote the offending value, which may be a token.
    pub(crate) fn decode(context: &str, err: &serde_json::Error) -> GitLabError {
        let missing = err.to_string();
        let cause = match missing.strip_prefix("missing field ") {
            Some(rest) => format!(
                "missing field {}",
                rest.split(' ').next().unwrap_or_default()
            ),
            None => format!(
                "{:?} error at line {} column {}",
                err.classify(),
                err.line(),
                err.column()
            ),
        };
        GitLabError::Decode {
            context: context.to_owned(),
            cause,
        }
    }

    /// True when the same request may succeed if sent again later (network trouble, 409, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GitLabError::Unreachable { .. }
                | GitLabError::Timeout { .. }
                | GitLabError::Conflict { .. }
                | GitLabError::RateLimited { .. }
                | GitLabError::Server { .. }
        )
    }

    /// How long GitLab asked us to wait (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GitLabError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// gitlab.com Free (or a group setting) does not allow project access tokens (§4.1).
    pub fn is_project_access_token_unavailable(&self) -> bool {
        matches!(self, GitLabError::BadRequest { message }
            if message.contains("does not have permission to create project access token"))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, GitLabError::NotFound { .. })
    }

    /// The OAuth error code, when GitLab's OAuth server refused the request.
    pub fn oauth_code(&self) -> Option<&OAuthErrorCode> {
        match self {
            GitLabError::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Why a token was refused, for a 401.
    pub fn token_problem(&self) -> Option<TokenProblem> {
        match self {
            GitLabError::Unauthorized { problem, .. } => Some(*problem),
            _ => None,
        }
    }
}
