//! One error type per face: [`HtmlError`] renders the error page, [`ApiError`] a JSON body.
//! Both map a [`ServiceError`] the same way; internal details go to the log, not to the visitor.

use std::net::SocketAddr;

use askama::Template;
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use lablink_service::{GitLabError, ServiceError};
use serde::Serialize;

use crate::AppState;

const INTERNAL: &str =
    "Something went wrong on our side. The problem has been logged; please try again.";

fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::BadInput(_) | ServiceError::InvalidField { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::GitLab(e) => gitlab_status(e),
        ServiceError::Remote(_) => StatusCode::BAD_GATEWAY,
        ServiceError::LinkDead(_) => StatusCode::CONFLICT,
        ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Store(_) | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A GitLab refusal keeps its meaning: what the caller can fix is a 4xx, what GitLab or the way
/// to it failed at is a 502.
fn gitlab_status(e: &GitLabError) -> StatusCode {
    match e {
        GitLabError::InvalidUrl(_)
        | GitLabError::InvalidCaBundle(_)
        | GitLabError::NetworkPolicy { .. }
        | GitLabError::NotGitLab { .. }
        | GitLabError::BadRequest { .. }
        | GitLabError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        GitLabError::OAuth { .. } | GitLabError::Unauthorized { .. } => StatusCode::CONFLICT,
        GitLabError::InsufficientScope { .. } | GitLabError::Forbidden { .. } => {
            StatusCode::FORBIDDEN
        }
        GitLabError::NotFound { .. } => StatusCode::NOT_FOUND,
        GitLabError::Conflict { .. } => StatusCode::CONFLICT,
        GitLabError::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
        GitLabError::Unreachable { .. }
        | GitLabError::Timeout { .. }
        | GitLabError::Tls { .. }
        | GitLabError::Server { .. }
        | GitLabError::UnexpectedStatus { .. }
        | GitLabError::Decode { .. } => StatusCode::BAD_GATEWAY,
    }
}

/// The message a person may see: the service's own words, or a generic one for internal errors
/// (which are logged here, once).
fn public_message(e: &ServiceError) -> String {
    match e {
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            tracing::error!(error = %e, "request failed");
            INTERNAL.to_owned()
        }
        other => other.to_string(),
    }
}

fn retry_after(e: &ServiceError) -> Option<u64> {
    match e {
        ServiceError::Throttled { retry_after_secs } => Some(*retry_after_secs),
        ServiceError::GitLab(e) => e.retry_after().map(|d| d.as_secs().max(1)),
        _ => None,
    }
}

/// An error shown as a page.
#[derive(Debug)]
pub struct HtmlError {
    pub status: StatusCode,
    pub message: String,
    /// The visitor is not signed in: send them to the sign-in page instead.
    sign_in: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: crate::Chrome,
    title: &'a str,
    message: &'a str,
    /// The request's id, which names its log lines: what to give an operator.
    reference: Option<String>,
}

impl HtmlError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> HtmlError {
        HtmlError {
            status,
            message: message.into(),
            sign_in: false,
        }
    }

    pub fn internal(detail: String) -> HtmlError {
        tracing::error!(error = %detail, "request failed");
        HtmlError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
    }

    pub fn csrf() -> HtmlError {
        HtmlError::new(
            StatusCode::FORBIDDEN,
            "This form has expired or was not sent from a lablink page (CSRF check failed). \
             Go back, reload the page and try again.",
        )
    }

    pub fn not_found() -> HtmlError {
        HtmlError::new(StatusCode::NOT_FOUND, "There is no page at this address.")
    }

    pub(crate) fn sign_in() -> HtmlError {
        HtmlError {
            sign_in: true,
            ..HtmlError::new(StatusCode::UNAUTHORIZED, "Please sign in.")
        }
    }
}

impl From<ServiceError> for HtmlError {
    fn from(e: ServiceError) -> Self {
        if matches!(e, ServiceError::Unauthenticated(_)) {
            return HtmlError::sign_in();
        }
        HtmlError::new(status_of(&e), public_message(&e))
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        if self.sign_in {
            return Redirect::to("/login").into_response();
        }
        let mut res = error_page(self.status, &self.message, crate::Chrome::default());
        // For `keep_navigation`, which shows the page again with the visitor's navigation.
        res.extensions_mut().insert(ShownError {
            status: self.status,
            message: self.message,
        });
        res
    }
}

fn error_page(status: StatusCode, message: &str, chrome: crate::Chrome) -> Response {
    let page = ErrorPage {
        chrome,
        title: status.canonical_reason().unwrap_or("Error"),
        message,
        reference: crate::request_id::current(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_owned()).into_response(),
    }
}

/// An error page as it was shown, before the layer below knew who is signed in.
#[derive(Debug, Clone)]
struct ShownError {
    status: StatusCode,
    message: String,
}

/// Error pages keep the navigation of a signed-in visitor: the error is rendered where it
/// happens (often in an extractor, before anyone is known), so this layer renders it again with
/// the session's navigation when the request came with one.
pub(crate) async fn keep_navigation(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let mut probe = Request::new(());
    *probe.uri_mut() = req.uri().clone();
    *probe.headers_mut() = req.headers().clone();
    if let Some(connect) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        probe.extensions_mut().insert(*connect);
    }
    let res = next.run(req).await;
    let Some(shown) = res.extensions().get::<ShownError>().cloned() else {
        return res;
    };
    let (parts, ()) = probe.into_parts();
    match crate::extract::session_user(&parts, &state).await {
        Ok(Some(user)) => {
            let mut again =
                error_page(shown.status, &shown.message, crate::Chrome::for_user(&user));
            // The error's own headers (Retry-After, cookies) stay.
            for (name, value) in res.headers() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    again.headers_mut().append(name.clone(), value.clone());
                }
            }
            again
        }
        _ => res,
    }
}

/// An error of the JSON API: `{"error": "<message>"}` with the matching status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in plain words.
    pub error: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError {
            status: status_of(&e),
            message: public_message(&e),
            retry_after: retry_after(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lablink\""),
            );
        }
        res
    }
}
