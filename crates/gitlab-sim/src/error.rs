//! GitLab's error responses: status codes, bodies and headers (gitlab-api.md §1.7, §10).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    www_authenticate: Option<String>,
}

const BAD_TOKEN: &str = "Bad Access Token.";
const EXPIRED_TOKEN: &str =
    "Token is expired. You can either do re-authorization or token refresh.";
const REVOKED_TOKEN: &str = "Token was revoked. You have to re-authorize from the user.";

impl ApiError {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            www_authenticate: None,
        }
    }

    /// `{"message": message}` with the given status.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "message": message.into() }))
    }

    pub fn unauthorized() -> Self {
        Self::message(StatusCode::UNAUTHORIZED, "401 Unauthorized")
    }

    pub fn forbidden() -> Self {
        Self::message(StatusCode::FORBIDDEN, "403 Forbidden")
    }

    /// `{"message":"404 <what> Not Found"}`.
    pub fn not_found(what: &str) -> Self {
        Self::message(StatusCode::NOT_FOUND, format!("404 {what} Not Found"))
    }

    /// Grape's `bad_request!(reason)`: `{"message":"400 Bad request - <reason>"}`.
    pub fn bad_request(reason: &str) -> Self {
        Self::message(
            StatusCode::BAD_REQUEST,
            format!("400 Bad request - {reason}"),
        )
    }

    /// Grape parameter validation: `{"error":"<param> is missing"}`.
    pub fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("{param} is missing") }),
        )
    }

    pub fn invalid(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("{param} is invalid") }),
        )
    }

    pub fn not_valid_value(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("{param} does not have a valid value") }),
        )
    }

    /// Model validation failures: `{"message":{"field":["error"]}}`.
    pub fn validation(status: StatusCode, field: &str, error: &str) -> Self {
        Self::new(status, json!({ "message": { field: [error] } }))
    }

    fn invalid_token(description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            body: json!({ "error": "invalid_token", "error_description": description }),
            www_authenticate: Some(format!(
                "Bearer realm=\"The API\", error=\"invalid_token\", error_description=\"{description}\""
            )),
        }
    }

    pub fn bad_token() -> Self {
        Self::invalid_token(BAD_TOKEN)
    }

    pub fn expired_token() -> Self {
        Self::invalid_token(EXPIRED_TOKEN)
    }

    pub fn revoked_token() -> Self {
        Self::invalid_token(REVOKED_TOKEN)
    }

    pub fn insufficient_scope(required: &[&str]) -> Self {
        let description =
            "The request requires higher privileges than provided by the access token.";
        let scope = required.join(" ");
        Self {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": "insufficient_scope", "error_description": description, "scope": scope }),
            www_authenticate: Some(format!(
                "Bearer realm=\"The API\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{scope}\""
            )),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<crate::repo::RepoError> for ApiError {
    fn from(e: crate::repo::RepoError) -> Self {
        tracing::error!(error = %e, "repository operation failed");
        Self::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error",
        )
    }
}

/// GitLab's validation errors for a bad SSH key (user keys and deploy keys alike).
impl From<crate::ssh_key::KeyError> for ApiError {
    fn from(e: crate::ssh_key::KeyError) -> Self {
        let mut errors = json!({ "key": [e.to_string()] });
        if e == crate::ssh_key::KeyError::Invalid {
            errors["fingerprint_sha256"] = json!(["cannot be generated"]);
        }
        Self::new(StatusCode::BAD_REQUEST, json!({ "message": errors }))
    }
}

/// A JSON success response with extra headers (pagination).
pub fn with_headers(
    status: StatusCode,
    body: Value,
    headers: Vec<(HeaderName, String)>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
