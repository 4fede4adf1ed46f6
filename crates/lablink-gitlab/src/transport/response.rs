//! Turning GitLab's non-2xx answers into [`GitLabError`], from the body formats GitLab documents
//! (gitlab-api.md §1.7, §1.11, §10).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;

use crate::error::{GitLabError, OAuthErrorCode, TokenProblem};

/// Longest message kept from an error body, so a huge HTML page never becomes an error text.
const MAX_MESSAGE_CHARS: usize = 500;

/// The parts of an error body lablink reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// GitLab's `message` (flattened when it is a field → errors object), or plain text.
    pub(crate) message: Option<String>,
    /// OAuth-style `error` code.
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
    pub(crate) scope: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> ErrorBody {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => {
                let text = |key: &str| map.get(key).and_then(Value::as_str).map(truncate);
                ErrorBody {
                    message: map.get("message").map(flatten).map(|m| truncate(&m)),
                    error: text("error"),
                    error_description: text("error_description"),
                    scope: text("scope"),
                }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                ErrorBody {
                    message: (!text.is_empty()).then(|| truncate(text)),
                    ..ErrorBody::default()
                }
            }
        }
    }

    /// The best human text in the body, falling back to the HTTP reason.
    pub(crate) fn text(&self, status: StatusCode) -> String {
        match (&self.message, &self.error, &self.error_description) {
            (Some(message), _, _) => message.clone(),
            (None, Some(error), Some(description)) => format!("{error}: {description}"),
            (None, Some(error), None) => error.clone(),
            (None, None, _) => status.to_string(),
        }
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `{"message":{"url":["is blocked"]}}` → `url is blocked`.
fn flatten(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(flatten).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(field, errors)| format!("{field} {}", flatten(errors)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Classifies a non-2xx answer of the REST API.
pub(crate) fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GitLabError {
    let parsed = ErrorBody::parse(body);
    let message = parsed.text(status);
    match status.as_u16() {
        300..=399 => GitLabError::UnexpectedStatus {
            status: status.as_u16(),
            message: format!(
                "a redirect to {}, which lablink does not follow",
                headers
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("an unnamed place")
            ),
        },
        400 => GitLabError::BadRequest { message },
        401 => GitLabError::Unauthorized {
            problem: token_problem(&parsed),
            description: message,
        },
        403 if parsed.error.as_deref() == Some("insufficient_scope") => {
            GitLabError::InsufficientScope {
                description: parsed.error_description.unwrap_or(message),
                required: parsed.scope,
            }
        }
        403 => GitLabError::Forbidden { message },
        404 => GitLabError::NotFound { message },
        409 => GitLabError::Conflict { message },
        422 => GitLabError::Unprocessable { message },
        429 => GitLabError::RateLimited {
            retry_after: retry_after(headers),
        },
        500..=599 => GitLabError::Server {
            status: status.as_u16(),
            message,
        },
        other => GitLabError::UnexpectedStatus {
            status: other,
            message,
        },
    }
}

fn token_problem(body: &ErrorBody) -> TokenProblem {
    let description = body
        .error_description
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if body.error.as_deref() != Some("invalid_token") {
        TokenProblem::Invalid
    } else if description.contains("expired") {
        TokenProblem::Expired
    } else if description.contains("revoked") {
        TokenProblem::Revoked
    } else {
        TokenProblem::Invalid
    }
}

/// Classifies a non-2xx answer of `/oauth/token` or `/oauth/revoke`: an OAuth `error` code wins,
/// anything else is read like an API error.
pub(crate) fn oauth_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GitLabError {
    let parsed = ErrorBody::parse(body);
    match (&parsed.error, status.is_client_error()) {
        (Some(code), true) => GitLabError::OAuth {
            code: OAuthErrorCode::parse(code),
            description: parsed.error_description.clone().unwrap_or_default(),
        },
        _ => api_error(status, headers, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn api(status: u16, body: &str) -> GitLabError {
        api_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn reads_token_problems_from_invalid_token_bodies() {
        let expired = api(
            401,
            r#"{"error":"invalid_token","error_description":"Token is expired. You can either do re-authorization or token refresh."}"#,
        );
        assert_eq!(expired.token_problem(), Some(TokenProblem::Expired));
        let revoked = api(
            401,
            r#"{"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."}"#,
        );
        assert_eq!(revoked.token_problem(), Some(TokenProblem::Revoked));
        let bad = api(
            401,
            r#"{"error":"invalid_token","error_description":"Bad Access Token."}"#,
        );
        assert_eq!(bad.token_problem(), Some(TokenProblem::Invalid));
        let plain = api(401, r#"{"message":"401 Unauthorized"}"#);
        assert_eq!(plain.token_problem(), Some(TokenProblem::Invalid));
        assert!(!plain.is_retryable());
    }

    #[test]
    fn insufficient_scope_is_distinct_from_forbidden() {
        let err = api(
            403,
            r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
        );
        match err {
            GitLabError::InsufficientScope { required, .. } => {
                assert_eq!(required.as_deref(), Some("api"))
            }
            other => panic!("unexpected {other:?}"),
        }
        match api(403, r#"{"message":"403 Forbidden"}"#) {
            GitLabError::Forbidden { message } => assert_eq!(message, "403 Forbidden"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn keeps_gitlab_messages_for_4xx() {
        match api(404, r#"{"message":"404 Project Not Found"}"#) {
            GitLabError::NotFound { message } => assert_eq!(message, "404 Project Not Found"),
            other => panic!("unexpected {other:?}"),
        }
        match api(422, r#"{"message":"Invalid url given"}"#) {
            GitLabError::Unprocessable { message } => assert_eq!(message, "Invalid url given"),
            other => panic!("unexpected {other:?}"),
        }
        match api(
            400,
            r#"{"message":{"name":["has already been taken"],"scopes":["can't be blank"]}}"#,
        ) {
            GitLabError::BadRequest { message } => {
                assert_eq!(
                    message,
                    "name has already been taken; scopes can't be blank"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        let free = api(
            400,
            r#"{"message":"400 Bad request - User does not have permission to create project access token"}"#,
        );
        assert!(free.is_project_access_token_unavailable());
        assert!(
            !api(400, r#"{"message":"400 Bad request"}"#).is_project_access_token_unavailable()
        );
        match api(400, r#"{"error":"scopes is missing"}"#) {
            GitLabError::BadRequest { message } => assert_eq!(message, "scopes is missing"),
            other => panic!("unexpected {other:?}"),
        }
        let conflict = api(409, r#"{"message":"409 Conflict"}"#);
        assert!(matches!(conflict, GitLabError::Conflict { .. }));
        assert!(conflict.is_retryable());
    }

    #[test]
    fn server_errors_and_plain_text_bodies() {
        let err = api(502, "<html>Bad Gateway</html>");
        assert!(err.is_retryable());
        match err {
            GitLabError::Server { status, message } => {
                assert_eq!(status, 502);
                assert_eq!(message, "<html>Bad Gateway</html>");
            }
            other => panic!("unexpected {other:?}"),
        }
        match api(500, "") {
            GitLabError::Server { message, .. } => assert_eq!(message, "500 Internal Server Error"),
            other => panic!("unexpected {other:?}"),
        }
        let long = "x".repeat(10_000);
        match api(500, &long) {
            GitLabError::Server { message, .. } => assert!(message.chars().count() <= 501),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_limit_reads_retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("42"));
        let err = api_error(StatusCode::TOO_MANY_REQUESTS, &headers, b"Retry later");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
        assert!(err.is_retryable());
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn oauth_errors_keep_code_and_description() {
        let body = crate::test_support::fixture("api.oauth.error.invalid_grant.json");
        let err = oauth_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body);
        assert_eq!(err.oauth_code(), Some(&OAuthErrorCode::InvalidGrant));
        assert!(
            err.to_string()
                .contains("The provided authorization grant is invalid")
        );
        let err = oauth_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"error":"invalid_client","error_description":"Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}"#,
        );
        assert_eq!(err.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
        assert!(err.to_string().contains("secret"));
        let err = oauth_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid_scope","error_description":"The requested scope is invalid, unknown, or malformed."}"#,
        );
        assert_eq!(err.oauth_code(), Some(&OAuthErrorCode::InvalidScope));
        let err = oauth_error(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"down");
        assert!(err.is_retryable());
    }
}
