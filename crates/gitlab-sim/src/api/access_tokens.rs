//! Project access tokens (gitlab-api.md §4): create, list, get, rotate, revoke; bot users;
//! rotation families; the gitlab.com Free refusal.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate};
use serde_json::Value;

use super::{ProjectAccess, parse_id, visible_project};
use crate::auth::{Auth, Credential, Identity};
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::secrets;
use crate::state::{Id, ProjectAccessToken, SecretRef, SimHandle, State as SimState, User, access};

/// `Gitlab::Auth.resource_bot_scopes`.
const BOT_SCOPES: [&str; 11] = [
    "api",
    "read_api",
    "read_registry",
    "write_registry",
    "read_repository",
    "write_repository",
    "create_runner",
    "manage_runner",
    "ai_features",
    "k8s_proxy",
    "self_rotate",
];

const NO_PERMISSION: &str = "User does not have permission to create project access token";

fn is_bot(state: &SimState, user_id: Id) -> bool {
    state.users.get(&user_id).is_some_and(|u| u.bot)
}

fn parse_date(params: &Params, key: &str) -> Result<Option<NaiveDate>, ApiError> {
    params
        .str(key)
        .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| ApiError::invalid(key)))
        .transpose()
}

/// The expiry rules of personal/project access tokens: in the future, within the instance maximum.
fn check_expiry(state: &SimState, expires_at: NaiveDate) -> Result<(), ApiError> {
    let today = state.now().date_naive();
    if expires_at <= today {
        return Err(ApiError::bad_request(
            "Expiration date must be in the future",
        ));
    }
    let max = today + Days::new(state.settings.max_access_token_lifetime_days as u64);
    if expires_at > max {
        return Err(ApiError::bad_request(&format!(
            "Expires at must be before {max}"
        )));
    }
    Ok(())
}

fn find_token<'a>(
    state: &'a SimState,
    found: &ProjectAccess,
    token_id: &str,
) -> Result<&'a ProjectAccessToken, ApiError> {
    let id = parse_id(token_id, "Project Access Token")?;
    state
        .project_access_tokens
        .get(&id)
        .filter(|t| t.project_id == found.project.id)
        .ok_or_else(|| ApiError::not_found("Project Access Token"))
}

/// Reading tokens needs Maintainer+; GitLab answers `unauthorized!` otherwise.
fn readable_project(
    state: &SimState,
    id: &str,
    identity: &Identity,
) -> Result<ProjectAccess, ApiError> {
    identity.require_api(false)?;
    let found = visible_project(state, id, Some(identity.user_id))?;
    if found.level < access::MAINTAINER {
        return Err(ApiError::unauthorized());
    }
    Ok(found)
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let (page, per_page) = paginate::page_params(&params)?;
    let state_filter = params.str("state");
    if state_filter
        .as_deref()
        .is_some_and(|s| s != "active" && s != "inactive")
    {
        return Err(ApiError::not_valid_value("state"));
    }
    let revoked = params.bool("revoked")?;
    let state = sim.lock();
    let found = readable_project(&state, &id, &identity)?;
    let today = state.now().date_naive();
    let tokens: Vec<Value> = state
        .project_access_tokens
        .values()
        .filter(|t| t.project_id == found.project.id)
        .map(|t| render::project_access_token(t, today))
        .filter(|v| match state_filter.as_deref() {
            Some("active") => v["active"] == Value::Bool(true),
            Some(_) => v["active"] == Value::Bool(false),
            None => true,
        })
        .filter(|v| revoked.is_none_or(|r| v["revoked"] == Value::Bool(r)))
        .collect();
    let (items, headers) = paginate::offset(tokens, page, per_page, sim.base_url(), &uri);
    Ok(with_headers(StatusCode::OK, Value::Array(items), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = readable_project(&state, &id, &identity)?;
    let token = find_token(&state, &found, &token_id)?;
    Ok(Json(render::project_access_token(
        token,
        state.now().date_naive(),
    )))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let name = params.required_str("name")?;
    let scopes = params
        .list("scopes")?
        .ok_or_else(|| ApiError::missing("scopes"))?;
    if scopes.is_empty() || !scopes.iter().all(|s| BOT_SCOPES.contains(&s.as_str())) {
        return Err(ApiError::not_valid_value("scopes"));
    }
    let access_level = match params.int("access_level")? {
        None => access::MAINTAINER,
        Some(l) if (10..=50).contains(&l) && access::VALID.contains(&(l as u8)) => l as u8,
        Some(_) => return Err(ApiError::not_valid_value("access_level")),
    };
    let expires_at = parse_date(&params, "expires_at")?;
    let description = params.str("description");
    let host = sim.host();
    let mut state = sim.lock();
    let found = visible_project(&state, &id, Some(identity.user_id))?;
    if state.settings.gitlab_com_free
        || found.level < access::MAINTAINER
        || is_bot(&state, identity.user_id)
    {
        return Err(ApiError::bad_request(NO_PERMISSION));
    }
    if access_level > found.level {
        return Err(ApiError::bad_request(
            "Access level of the token can't be greater the access level of the user who created the token",
        ));
    }
    let today = state.now().date_naive();
    let expires_at = match expires_at {
        Some(date) => {
            check_expiry(&state, date)?;
            date
        }
        // Expiry is enforced: an omitted date means the maximum allowed lifetime.
        None => today + Days::new(state.settings.max_access_token_lifetime_days as u64),
    };
    let project_id = found.project.id;
    let bot_id = state.next_id();
    let suffix = secrets::random_hex(8);
    let username = format!("project_{project_id}_bot_{suffix}");
    let bot = User {
        id: bot_id,
        email: format!("{username}@noreply.{host}"),
        username,
        name: name.clone(),
        state: "active".into(),
        is_admin: false,
        bot: true,
        password_digest: None,
        created_at: state.now(),
    };
    state.users.insert(bot_id, bot);
    state
        .add_project_member(project_id, bot_id, access_level, Some(identity.user_id))
        .map_err(|_| {
            ApiError::bad_request("Could not provision owner access to project access token")
        })?;
    let token_id = state.next_id();
    let token = ProjectAccessToken {
        id: token_id,
        project_id,
        user_id: bot_id,
        name,
        description,
        scopes,
        access_level,
        revoked: false,
        expires_at: Some(expires_at),
        created_at: state.now(),
        last_used_at: None,
        family_id: token_id,
    };
    let mut body = render::project_access_token(&token, today);
    state.project_access_tokens.insert(token_id, token);
    body["token"] =
        Value::String(state.issue_secret("glpat-", SecretRef::ProjectAccessToken(token_id)));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn revoke_family(state: &mut SimState, family_id: Id) {
    for t in state.project_access_tokens.values_mut() {
        if t.family_id == family_id {
            t.revoked = true;
        }
    }
}

pub async fn rotate(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, token_id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let expires_at = parse_date(&params, "expires_at")?;
    let mut state = sim.lock();
    let found = visible_project(&state, &id, Some(identity.user_id))?;
    let target = if token_id == "self" {
        // Self-rotation: the caller must be this project's access token, with api or self_rotate.
        let Credential::ProjectAccessToken(own) = identity.credential else {
            return Err(ApiError::forbidden());
        };
        identity.require_scopes(&["api", "self_rotate"])?;
        state
            .project_access_tokens
            .get(&own)
            .filter(|t| t.project_id == found.project.id)
            .cloned()
            .ok_or_else(ApiError::unauthorized)?
    } else {
        identity.require_api(true)?;
        if is_bot(&state, identity.user_id) || found.level < access::MAINTAINER {
            return Err(ApiError::unauthorized());
        }
        find_token(&state, &found, &token_id)?.clone()
    };
    if target.revoked {
        // Reuse detection: rotating a revoked token revokes every token of its family.
        revoke_family(&mut state, target.family_id);
        return Err(ApiError::bad_request("Token already revoked"));
    }
    let today = state.now().date_naive();
    let expires_at = match expires_at {
        Some(date) => {
            check_expiry(&state, date)?;
            date
        }
        None => today + Days::new(7),
    };
    if let Some(old) = state.project_access_tokens.get_mut(&target.id) {
        old.revoked = true;
    }
    let new_id = state.next_id();
    let token = ProjectAccessToken {
        id: new_id,
        revoked: false,
        expires_at: Some(expires_at),
        created_at: state.now(),
        last_used_at: None,
        ..target
    };
    let mut body = render::project_access_token(&token, today);
    state.project_access_tokens.insert(new_id, token);
    body["token"] =
        Value::String(state.issue_secret("glpat-", SecretRef::ProjectAccessToken(new_id)));
    Ok(Json(body))
}

pub async fn revoke(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let mut state = sim.lock();
    let found = visible_project(&state, &id, Some(identity.user_id))?;
    if found.level < access::MAINTAINER {
        return Err(ApiError::unauthorized());
    }
    let token = find_token(&state, &found, &token_id)?;
    if token.revoked {
        return Err(ApiError::not_found("Project Access Token"));
    }
    let (token_id, bot_id, project_id) = (token.id, token.user_id, token.project_id);
    if let Some(t) = state.project_access_tokens.get_mut(&token_id) {
        t.revoked = true;
    }
    // The bot leaves the project; it is kept (GitLab deletes it after 30 days).
    let bot_has_active_token = state
        .project_access_tokens
        .values()
        .any(|t| t.user_id == bot_id && !t.revoked);
    if !bot_has_active_token && let Some(ms) = state.project_members.get_mut(&project_id) {
        ms.remove(&bot_id);
    }
    Ok(StatusCode::NO_CONTENT)
}
