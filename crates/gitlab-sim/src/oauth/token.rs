//! `POST /oauth/token` (authorization_code, refresh_token), `GET /oauth/token/info`,
//! `POST /oauth/revoke`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::describe;
use crate::params::Params;
use crate::secrets;
use crate::state::{Id, OAuthApplication, OAuthToken, SecretRef, SimHandle, State as SimState};

/// Doorkeeper default: codes live 10 minutes.
const CODE_LIFETIME_SECS: i64 = 600;

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    let description = describe(error);
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Bearer realm=\"Doorkeeper\", error=\"{error}\", error_description=\"{description}\""
    )) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(response)
}

fn invalid_client() -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client")
}

fn bad(error: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error)
}

/// Client credentials from HTTP Basic (preferred) or the body.
fn client_credentials(headers: &HeaderMap, params: &Params) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':').map(|(id, secret)| {
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (decode(id), decode(secret))
            })
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (params.str("client_id"), params.str("client_secret")),
    }
}

/// Client authentication failed: always answered with 401 `invalid_client`.
struct ClientAuthFailed;

/// Doorkeeper's client authentication: a secret must match when given; confidential
/// applications must give one.
fn authenticate_client(
    state: &SimState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<OAuthApplication>, ClientAuthFailed> {
    let (id, secret) = client_credentials(headers, params);
    let Some(id) = id else {
        return Ok(None);
    };
    let app = state
        .oauth_application_by_uid(&id)
        .cloned()
        .ok_or(ClientAuthFailed)?;
    match secret.filter(|s| !s.is_empty()) {
        Some(secret) => {
            if secrets::constant_time_eq(&secrets::digest(&secret), &app.secret_digest) {
                Ok(Some(app))
            } else {
                Err(ClientAuthFailed)
            }
        }
        None if app.confidential => Err(ClientAuthFailed),
        None => Ok(Some(app)),
    }
}

fn issue(state: &mut SimState, application_id: Id, user_id: Id, scopes: Vec<String>) -> Response {
    let id = state.next_id();
    let token = OAuthToken {
        id,
        application_id,
        user_id,
        scopes,
        expires_in: state.settings.access_token_lifetime_secs,
        revoked: false,
        created_at: state.now(),
    };
    let access = secrets::random_hex(32);
    let refresh = secrets::random_hex(32);
    state
        .secrets
        .insert(secrets::digest(&access), SecretRef::OAuthAccess(id));
    state
        .secrets
        .insert(secrets::digest(&refresh), SecretRef::OAuthRefresh(id));
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "refresh_token": refresh,
        "scope": token.scopes.join(" "),
        "created_at": token.created_at.timestamp(),
    });
    state.oauth_tokens.insert(id, token);
    no_store((StatusCode::OK, Json(body)).into_response())
}

fn pkce_matches(challenge: &str, method: &str, verifier: &str) -> bool {
    let computed = if method == "S256" {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    } else {
        verifier.to_owned()
    };
    secrets::constant_time_eq(&computed, challenge)
}

fn exchange_code(state: &mut SimState, app: &OAuthApplication, params: &Params) -> Response {
    let (Some(code), Some(redirect_uri)) = (params.str("code"), params.str("redirect_uri")) else {
        return bad("invalid_request");
    };
    let Some(SecretRef::OAuthCode(grant_id)) = state.find_secret(&code) else {
        return bad("invalid_grant");
    };
    let now = state.now();
    let Some(grant) = state.oauth_grants.get(&grant_id).cloned() else {
        return bad("invalid_grant");
    };
    let expired = (now - grant.created_at).num_seconds() >= CODE_LIFETIME_SECS;
    if grant.revoked
        || expired
        || grant.application_id != app.id
        || grant.redirect_uri != redirect_uri
    {
        return bad("invalid_grant");
    }
    let verifier = params.str("code_verifier");
    let pkce_ok = match (&grant.code_challenge, &verifier) {
        (None, None) => true,
        (Some(challenge), Some(v)) => pkce_matches(
            challenge,
            grant.code_challenge_method.as_deref().unwrap_or("plain"),
            v,
        ),
        (None, Some(_)) | (Some(_), None) => false,
    };
    if !pkce_ok {
        return bad("invalid_grant");
    }
    if let Some(g) = state.oauth_grants.get_mut(&grant_id) {
        g.revoked = true;
    }
    issue(state, app.id, grant.user_id, grant.scopes)
}

fn refresh(state: &mut SimState, app: &OAuthApplication, params: &Params) -> Response {
    let Some(refresh_token) = params.str("refresh_token") else {
        return bad("invalid_request");
    };
    let Some(SecretRef::OAuthRefresh(token_id)) = state.find_secret(&refresh_token) else {
        return bad("invalid_grant");
    };
    let Some(old) = state.oauth_tokens.get_mut(&token_id) else {
        return bad("invalid_grant");
    };
    if old.revoked || old.application_id != app.id {
        return bad("invalid_grant");
    }
    // One row holds both tokens: refreshing revokes the old access token too.
    old.revoked = true;
    let (user_id, scopes) = (old.user_id, old.scopes.clone());
    issue(state, app.id, user_id, scopes)
}

pub async fn token(State(sim): State<SimHandle>, headers: HeaderMap, params: Params) -> Response {
    let mut state = sim.lock();
    let app = match authenticate_client(&state, &headers, &params) {
        Ok(Some(app)) => app,
        Ok(None) | Err(ClientAuthFailed) => return invalid_client(),
    };
    match params.str("grant_type").as_deref() {
        None => bad("invalid_request"),
        Some("authorization_code") => exchange_code(&mut state, &app, &params),
        Some("refresh_token") => refresh(&mut state, &app, &params),
        Some(_) => bad("unsupported_grant_type"),
    }
}

fn bearer(headers: &HeaderMap, params: &Params) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .or_else(|| params.str("access_token"))
}

fn invalid_token(description: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "invalid_token", "error_description": description })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Bearer realm=\"Doorkeeper\", error=\"invalid_token\", error_description=\"{description}\""
    )) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

pub async fn info(State(sim): State<SimHandle>, headers: HeaderMap, params: Params) -> Response {
    let state = sim.lock();
    let token = bearer(&headers, &params).and_then(|t| match state.find_secret(&t) {
        Some(SecretRef::OAuthAccess(id)) => state.oauth_tokens.get(&id),
        _ => None,
    });
    let Some(token) = token else {
        return invalid_token("The access token is invalid");
    };
    if token.revoked {
        return invalid_token("The access token was revoked");
    }
    let remaining = token.expires_in - (state.now() - token.created_at).num_seconds();
    if remaining <= 0 {
        return invalid_token("The access token expired");
    }
    let uid = state
        .oauth_applications
        .get(&token.application_id)
        .map(|a| a.uid.clone());
    Json(json!({
        "resource_owner_id": token.user_id,
        "scope": token.scopes,
        "expires_in": remaining,
        "application": { "uid": uid },
        "created_at": token.created_at.timestamp(),
        "scopes": token.scopes,
        "expires_in_seconds": remaining,
    }))
    .into_response()
}

pub async fn revoke(State(sim): State<SimHandle>, headers: HeaderMap, params: Params) -> Response {
    let mut state = sim.lock();
    let client = match authenticate_client(&state, &headers, &params) {
        Ok(client) => client,
        Err(ClientAuthFailed) => return invalid_client(),
    };
    let ok = || (StatusCode::OK, Json(Value::Object(Default::default()))).into_response();
    let token_id = params
        .str("token")
        .and_then(|t| match state.find_secret(&t) {
            Some(SecretRef::OAuthAccess(id) | SecretRef::OAuthRefresh(id)) => Some(id),
            _ => None,
        });
    // RFC 7009: unknown tokens are answered like revoked ones.
    let Some(token_id) = token_id else {
        return ok();
    };
    let Some(token) = state.oauth_tokens.get(&token_id) else {
        return ok();
    };
    let confidential = state
        .oauth_applications
        .get(&token.application_id)
        .is_some_and(|a| a.confidential);
    let authorized = !confidential
        || client
            .as_ref()
            .is_some_and(|c| c.id == token.application_id);
    if !authorized {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "unauthorized_client",
                "error_description": "You are not authorized to revoke this token",
            })),
        )
            .into_response();
    }
    if let Some(t) = state.oauth_tokens.get_mut(&token_id) {
        t.revoked = true;
    }
    ok()
}
