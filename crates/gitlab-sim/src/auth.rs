//! API authentication as GitLab does it: `PRIVATE-TOKEN`, `Authorization: Bearer`,
//! `?access_token=` / `?private_token=`, token expiry/revocation and scopes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};

use crate::error::ApiError;
use crate::params::Params;
use crate::state::{Id, SecretRef, SimHandle, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    PersonalAccessToken(Id),
    ProjectAccessToken(Id),
    OAuth(Id),
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: Id,
    pub scopes: Vec<String>,
    pub credential: Credential,
}

impl Identity {
    fn has_any(&self, scopes: &[&str]) -> bool {
        self.scopes.iter().any(|s| scopes.contains(&s.as_str()))
    }

    /// Reads need `api` or `read_api`; writes need `api`.
    pub fn require_api(&self, write: bool) -> Result<(), ApiError> {
        let needed: &[&str] = if write {
            &["api"]
        } else {
            &["api", "read_api"]
        };
        self.require_scopes(needed)
    }

    pub fn require_scopes(&self, any_of: &[&str]) -> Result<(), ApiError> {
        if self.has_any(any_of) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(any_of))
        }
    }
}

/// `Option<Identity>`: absent when no credential was sent; a bad credential is an error.
pub struct Auth(pub Option<Identity>);

impl Auth {
    pub fn required(self) -> Result<Identity, ApiError> {
        self.0.ok_or_else(ApiError::unauthorized)
    }

    pub fn user_id(&self) -> Option<Id> {
        self.0.as_ref().map(|i| i.user_id)
    }
}

enum Presented {
    PrivateToken(String),
    Bearer(String),
}

/// The API token a request carries, whichever way it was sent.
pub fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    presented(headers, uri).map(|p| match p {
        Presented::PrivateToken(t) | Presented::Bearer(t) => t,
    })
}

fn presented(headers: &HeaderMap, uri: &Uri) -> Option<Presented> {
    if let Some(v) = headers.get("private-token").and_then(|v| v.to_str().ok()) {
        return Some(Presented::PrivateToken(v.trim().to_owned()));
    }
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = v.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(Presented::Bearer(token.trim().to_owned()));
    }
    let query = Params::from_query(uri.query().unwrap_or_default());
    if let Some(t) = query.str("private_token") {
        return Some(Presented::PrivateToken(t));
    }
    query.str("access_token").map(Presented::Bearer)
}

/// Resolves a token to the identity it stands for, marking it used.
pub fn authenticate(
    state: &mut State,
    token: &str,
    allow_oauth: bool,
) -> Result<Identity, ApiError> {
    let now = state.now();
    let today = now.date_naive();
    let identity = match state.find_secret(token) {
        Some(SecretRef::PersonalAccessToken(id)) => {
            let t = state
                .personal_access_tokens
                .get_mut(&id)
                .ok_or_else(ApiError::bad_token)?;
            if t.revoked {
                return Err(ApiError::revoked_token());
            }
            if t.expires_at.is_some_and(|d| d <= today) {
                return Err(ApiError::expired_token());
            }
            t.last_used_at = Some(now);
            Identity {
                user_id: t.user_id,
                scopes: t.scopes.clone(),
                credential: Credential::PersonalAccessToken(id),
            }
        }
        Some(SecretRef::ProjectAccessToken(id)) => {
            let t = state
                .project_access_tokens
                .get_mut(&id)
                .ok_or_else(ApiError::bad_token)?;
            if t.revoked {
                return Err(ApiError::revoked_token());
            }
            if t.expires_at.is_some_and(|d| d <= today) {
                return Err(ApiError::expired_token());
            }
            t.last_used_at = Some(now);
            Identity {
                user_id: t.user_id,
                scopes: t.scopes.clone(),
                credential: Credential::ProjectAccessToken(id),
            }
        }
        Some(SecretRef::OAuthAccess(id)) if allow_oauth => {
            let t = state
                .oauth_tokens
                .get(&id)
                .ok_or_else(ApiError::bad_token)?;
            if t.revoked {
                return Err(ApiError::revoked_token());
            }
            if (now - t.created_at).num_seconds() >= t.expires_in {
                return Err(ApiError::expired_token());
            }
            Identity {
                user_id: t.user_id,
                scopes: t.scopes.clone(),
                credential: Credential::OAuth(id),
            }
        }
        _ => return Err(ApiError::bad_token()),
    };
    match state.users.get(&identity.user_id) {
        Some(u) if u.state == "active" => Ok(identity),
        Some(_) => Err(ApiError::message(
            axum::http::StatusCode::FORBIDDEN,
            "403 Forbidden - Your account has been blocked.",
        )),
        None => Err(ApiError::bad_token()),
    }
}

impl FromRequestParts<SimHandle> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, sim: &SimHandle) -> Result<Self, ApiError> {
        let Some(presented) = presented(&parts.headers, &parts.uri) else {
            return Ok(Self(None));
        };
        let mut state = sim.lock();
        let identity = match presented {
            // OAuth tokens are Bearer-only; PRIVATE-TOKEN takes personal/project access tokens.
            Presented::PrivateToken(t) => authenticate(&mut state, &t, false)?,
            Presented::Bearer(t) => authenticate(&mut state, &t, true)?,
        };
        Ok(Self(Some(identity)))
    }
}
