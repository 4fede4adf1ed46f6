//! Who is calling: [`CurrentUser`] for pages (session cookie), [`ApiUser`] for the JSON API
//! (personal API token, or the session plus an `X-CSRF-Token` header for writes).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum_extra::extract::CookieJar;
use lablink_service::sessions::{ActiveSession, csrf_token};
use lablink_service::{Principal, ServiceError};

use crate::client_address::client_address;
use crate::{ApiError, AppState, HtmlError, check_csrf};

pub const SESSION_COOKIE: &str = "lablink_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub principal: Principal,
    pub session: ActiveSession,
    pub csrf_token: String,
    /// The address asked for, so the navigation can mark where the user is.
    pub path: String,
    /// A message left by the action that redirected here ([`crate::flash`]).
    pub flash: Option<crate::flash::Flash>,
}

impl CurrentUser {
    /// Checks the CSRF token of a submitted form.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), HtmlError> {
        check_csrf(&self.csrf_token, submitted)
    }

    /// Refuses with 403 and `why` unless the user's role passes `allowed`.
    pub fn require(
        &self,
        allowed: fn(lablink_core::Role) -> bool,
        why: &str,
    ) -> Result<(), HtmlError> {
        if allowed(self.principal.role) {
            Ok(())
        } else {
            Err(HtmlError::new(StatusCode::FORBIDDEN, why))
        }
    }
}

pub(crate) async fn session_user(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<CurrentUser>, ServiceError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let session = state.services.session(cookie.value()).await?;
    state
        .services
        .check_client_address(
            &session.principal.account_id,
            client_ip(parts, state).as_deref(),
        )
        .await?;
    Ok(Some(CurrentUser {
        principal: session.principal.clone(),
        session,
        csrf_token: csrf_token(cookie.value()),
        path: parts.uri.path().to_owned(),
        flash: crate::flash::read(&parts.headers),
    }))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        session_user(parts, state)
            .await?
            .ok_or_else(HtmlError::sign_in)
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = HtmlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, HtmlError> {
        match session_user(parts, state).await {
            Ok(user) => Ok(user),
            Err(ServiceError::Unauthenticated(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A caller of the JSON API.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub principal: Principal,
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "The Authorization header must be `Bearer <personal API token>`.",
                    )
                })?;
            let principal = state.services.principal_for_api_token(token).await?;
            state
                .services
                .check_client_address(&principal.account_id, client_ip(parts, state).as_deref())
                .await?;
            return Ok(ApiUser { principal });
        }
        let unauthenticated = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Sign in, or send a personal API token as `Authorization: Bearer <token>`.",
            )
        };
        let user = session_user(parts, state)
            .await
            .map_err(|e| match e {
                ServiceError::Unauthenticated(_) => unauthenticated(),
                other => other.into(),
            })?
            .ok_or_else(unauthenticated)?;
        // A browser session can be ridden by other sites; writes need the CSRF token as a header.
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            check_csrf(&user.csrf_token, sent).map_err(|e| ApiError::new(e.status, e.message))?;
        }
        Ok(ApiUser {
            principal: user.principal,
        })
    }
}

/// The client's address (see [`crate::client_address`]), for throttling, the audit log and IP
/// restrictions. `None` only when the server was started without peer addresses.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state)))
    }
}

/// The client's address as text, from the peer and the trusted proxies' headers.
fn client_ip(parts: &Parts, state: &AppState) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| client_address(c.0.ip(), &parts.headers, &state.trusted_proxies))
        .map(|ip| ip.to_string())
}
