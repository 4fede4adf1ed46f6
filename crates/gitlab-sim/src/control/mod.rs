//! The control API under `/-/sim` (JSON in, JSON out): set-up, settings, faults, clock and raw
//! state for assertions. GitLab has no such routes; every operation is also a Rust method on
//! [`SimHandle`]. Documented in the crate README.

mod project_setup;
mod repository;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::render;
use crate::state::{
    Fault, Id, Namespace, NewGroup, NewProject, NewSshKey, NewUser, RateLimit, SetupError,
    SimHandle, State as SimState,
};

pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}/personal_access_tokens", post(create_pat))
        .route("/users/{id}/sessions", post(create_session))
        .route("/users/{id}/keys", post(add_ssh_key))
        .route("/groups", post(create_group))
        .route("/groups/{id}/members", post(add_group_member))
        .route("/projects", post(create_project))
        .route("/projects/{id}/members", post(add_project_member))
        .route("/projects/{id}/state", get(project_state))
        .route("/projects/{id}/transfer", post(transfer_project))
        .route(
            "/projects/{id}/deploy_tokens/{token_id}/revoke",
            post(revoke_deploy_token),
        )
        .route("/oauth/applications", post(create_application))
        .route("/oauth/approvals", post(approve))
        .route("/oauth/codes", post(create_code))
        .route("/settings", get(get_settings).put(update_settings))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/faults/{id}", delete(remove_fault))
        .route("/clock/advance", post(advance_clock))
        .route("/state", get(raw_state))
        .route(
            "/requests",
            get(request_counts).delete(reset_request_counts),
        )
        .route("/save", put(save).post(save))
        .merge(repository::router())
        .merge(project_setup::router())
        .merge(crate::git_hooks::router())
}

type ControlResult = Result<Response, ApiError>;

fn body<T: DeserializeOwned>(raw: &Bytes) -> Result<T, ApiError> {
    let raw: &[u8] = if raw.is_empty() { b"{}" } else { raw };
    serde_json::from_slice(raw)
        .map_err(|e| ApiError::message(StatusCode::BAD_REQUEST, e.to_string()))
}

impl From<SetupError> for ApiError {
    fn from(e: SetupError) -> Self {
        let status = match e {
            SetupError::Invalid(_) => StatusCode::BAD_REQUEST,
            SetupError::NotFound(_) => StatusCode::NOT_FOUND,
            SetupError::Conflict(_) => StatusCode::CONFLICT,
            SetupError::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::message(status, e.to_string())
    }
}

fn created(value: Value) -> ControlResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn create_user(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let new: NewUser = body(&raw)?;
    let (user, token) = sim.create_user(new)?;
    let mut v = render::user_current(sim.base_url(), &user);
    v["personal_access_token"] = json!(token);
    created(v)
}

#[derive(Deserialize)]
struct NewPat {
    #[serde(default = "default_pat_name")]
    name: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    expires_at: Option<NaiveDate>,
}

fn default_pat_name() -> String {
    "gitlab-sim".into()
}

fn default_scopes() -> Vec<String> {
    vec!["api".into()]
}

async fn create_pat(State(sim): State<SimHandle>, Path(id): Path<Id>, raw: Bytes) -> ControlResult {
    let new: NewPat = body(&raw)?;
    let (pat, token) =
        sim.lock()
            .create_personal_access_token(id, &new.name, new.scopes, new.expires_at)?;
    created(json!({ "id": pat.id, "user_id": pat.user_id, "scopes": pat.scopes, "token": token }))
}

async fn create_session(State(sim): State<SimHandle>, Path(id): Path<Id>) -> ControlResult {
    if !sim.lock().users.contains_key(&id) {
        return Err(SetupError::NotFound("User").into());
    }
    let cookie = sim.create_web_session(id);
    created(json!({ "cookie_name": "_gitlab_session", "cookie_value": cookie }))
}

async fn add_ssh_key(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let new: NewSshKey = body(&raw)?;
    let key = sim.lock().add_ssh_key(id, new).map_err(SetupError::from)?;
    created(render::ssh_key(&key))
}

async fn create_group(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let new: NewGroup = body(&raw)?;
    let group = sim.create_group(new)?;
    let state = sim.lock();
    created(render::group(&state, sim.base_url(), &group))
}

#[derive(Deserialize)]
struct NewMember {
    user_id: Id,
    access_level: u8,
}

async fn add_group_member(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let m: NewMember = body(&raw)?;
    sim.add_group_member(id, m.user_id, m.access_level)?;
    created(json!({ "group_id": id, "user_id": m.user_id, "access_level": m.access_level }))
}

async fn add_project_member(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let m: NewMember = body(&raw)?;
    sim.add_project_member(id, m.user_id, m.access_level)?;
    created(json!({ "project_id": id, "user_id": m.user_id, "access_level": m.access_level }))
}

#[derive(Deserialize)]
struct Transfer {
    namespace: Namespace,
}

async fn transfer_project(
    State(sim): State<SimHandle>,
    Path(id): Path<Id>,
    raw: Bytes,
) -> ControlResult {
    let t: Transfer = body(&raw)?;
    let project = sim.transfer_project(id, t.namespace)?;
    let state = sim.lock();
    Ok(Json(render::project_full(&state, sim.base_url(), &project, None)).into_response())
}

async fn revoke_deploy_token(
    State(sim): State<SimHandle>,
    Path((id, token_id)): Path<(Id, Id)>,
) -> ControlResult {
    sim.revoke_deploy_token(id, token_id)?;
    Ok(Json(json!({ "id": token_id, "revoked": true })).into_response())
}

async fn create_project(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let new: NewProject = body(&raw)?;
    let project = sim.create_project(new).await?;
    let state = sim.lock();
    let mut v = render::project_full(&state, sim.base_url(), &project, None);
    v["repository_path"] = json!(sim.repo_path(project.id));
    created(v)
}

/// Everything a test may want to assert about one project, secrets and revoked records included.
async fn project_state(State(sim): State<SimHandle>, Path(id): Path<Id>) -> ControlResult {
    let state = sim.lock();
    if !state.projects.contains_key(&id) {
        return Err(SetupError::NotFound("Project").into());
    }
    let of = |pid: Id| pid == id;
    let key_ids: Vec<Id> = state
        .deploy_key_links
        .iter()
        .filter(|l| of(l.project_id))
        .map(|l| l.key_id)
        .collect();
    let v = json!({
        "project": state.projects.get(&id),
        "repository_path": sim.repo_path(id),
        "members": state.project_members.get(&id),
        "hooks": state.hooks_of(id).collect::<Vec<_>>(),
        "project_access_tokens": state.project_access_tokens.values().filter(|t| of(t.project_id)).collect::<Vec<_>>(),
        "deploy_tokens": state.deploy_tokens.values().filter(|t| of(t.project_id)).collect::<Vec<_>>(),
        "deploy_keys": state.deploy_keys.values().filter(|k| key_ids.contains(&k.id)).collect::<Vec<_>>(),
        "deploy_key_links": state.deploy_key_links.iter().filter(|l| of(l.project_id)).collect::<Vec<_>>(),
        "merge_requests": state.merge_requests.values().filter(|m| of(m.project_id)).collect::<Vec<_>>(),
        "pipelines": state.pipelines.values().filter(|p| of(p.project_id)).collect::<Vec<_>>(),
        "commit_statuses": state.commit_statuses.values().filter(|s| of(s.project_id)).collect::<Vec<_>>(),
    });
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
struct NewApplication {
    name: String,
    /// One URI, several separated by newlines (GitLab's form), or an array.
    redirect_uri: Value,
    #[serde(default)]
    scopes: Value,
    #[serde(default = "yes")]
    confidential: bool,
    #[serde(default)]
    trusted: bool,
}

fn yes() -> bool {
    true
}

fn string_list(v: &Value, split: char) -> Vec<String> {
    match v {
        Value::String(s) => s
            .split(split)
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

async fn create_application(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let new: NewApplication = body(&raw)?;
    let (app, secret) = sim.lock().create_oauth_application(
        &new.name,
        string_list(&new.redirect_uri, '\n'),
        string_list(&new.scopes, ' '),
        new.confidential,
        new.trusted,
    )?;
    created(json!({
        "id": app.id,
        "application_id": app.uid,
        "application_name": app.name,
        "secret": secret,
        "callback_url": app.redirect_uris.join("\n"),
        "scopes": app.scopes,
        "confidential": app.confidential,
        "trusted": app.trusted,
    }))
}

#[derive(Deserialize)]
struct Approval {
    user_id: Id,
    /// The application's `client_id` (`application_id` in GitLab's API).
    client_id: String,
}

fn app_id(state: &SimState, client_id: &str) -> Result<Id, ApiError> {
    state
        .oauth_application_by_uid(client_id)
        .map(|a| a.id)
        .ok_or_else(|| SetupError::NotFound("Application").into())
}

async fn approve(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let a: Approval = body(&raw)?;
    let id = app_id(&sim.lock(), &a.client_id)?;
    if !sim.lock().users.contains_key(&a.user_id) {
        return Err(SetupError::NotFound("User").into());
    }
    sim.preapprove_oauth(a.user_id, id);
    created(json!({ "user_id": a.user_id, "client_id": a.client_id }))
}

#[derive(Deserialize)]
struct NewCode {
    user_id: Id,
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    scopes: Value,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn create_code(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let c: NewCode = body(&raw)?;
    let mut state = sim.lock();
    let id = app_id(&state, &c.client_id)?;
    if !state.users.contains_key(&c.user_id) {
        return Err(SetupError::NotFound("User").into());
    }
    let mut scopes = string_list(&c.scopes, ' ');
    if scopes.is_empty() {
        scopes.push("api".into());
    }
    let method = c
        .code_challenge
        .as_ref()
        .map(|_| c.code_challenge_method.unwrap_or_else(|| "plain".into()));
    let code = state.create_oauth_code(
        c.user_id,
        id,
        &c.redirect_uri,
        scopes,
        c.code_challenge,
        method,
    );
    created(json!({ "code": code }))
}

async fn get_settings(State(sim): State<SimHandle>) -> Response {
    Json(json!(sim.lock().settings)).into_response()
}

#[derive(Deserialize)]
struct SettingsUpdate {
    gitlab_com_free: Option<bool>,
    access_token_lifetime_secs: Option<i64>,
    max_access_token_lifetime_days: Option<i64>,
    allow_local_webhooks: Option<bool>,
    /// `null` turns rate limiting off; absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimit>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<RateLimit>>, D::Error> {
    Option::<RateLimit>::deserialize(d).map(Some)
}

async fn update_settings(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let u: SettingsUpdate = body(&raw)?;
    let mut state = sim.lock();
    let s = &mut state.settings;
    if let Some(v) = u.gitlab_com_free {
        s.gitlab_com_free = v;
    }
    // Bounds keep date arithmetic far from overflow.
    if let Some(v) = u.access_token_lifetime_secs {
        s.access_token_lifetime_secs = v.clamp(1, 10 * 365 * 86_400);
    }
    if let Some(v) = u.max_access_token_lifetime_days {
        s.max_access_token_lifetime_days = v.clamp(1, 3650);
    }
    if let Some(v) = u.allow_local_webhooks {
        s.allow_local_webhooks = v;
    }
    if let Some(v) = u.rate_limit {
        s.rate_limit = v;
        state.rate_windows.clear();
    }
    Ok(Json(json!(state.settings)).into_response())
}

#[derive(Deserialize)]
struct NewFault {
    method: Option<String>,
    path: String,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    error_rate: f64,
    #[serde(default = "internal_error")]
    error_status: u16,
    #[serde(default)]
    rate_limited: bool,
    #[serde(default)]
    drop_connection: bool,
}

fn internal_error() -> u16 {
    500
}

async fn add_fault(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let f: NewFault = body(&raw)?;
    if !(0.0..=1.0).contains(&f.error_rate) || !(400..=599).contains(&f.error_status) {
        return Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            "error_rate must be in [0, 1] and error_status in 400..=599",
        ));
    }
    let id = sim.add_fault(Fault {
        id: 0,
        method: f.method,
        path: f.path,
        latency_ms: f.latency_ms,
        error_rate: f.error_rate,
        error_status: f.error_status,
        rate_limited: f.rate_limited,
        drop_connection: f.drop_connection,
    });
    created(json!({ "id": id }))
}

async fn clear_faults(State(sim): State<SimHandle>) -> StatusCode {
    sim.clear_faults();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(sim): State<SimHandle>, Path(id): Path<Id>) -> StatusCode {
    sim.lock().faults.retain(|f| f.id != id);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sim): State<SimHandle>, raw: Bytes) -> ControlResult {
    let a: Advance = body(&raw)?;
    let now = sim.advance_clock(a.seconds);
    Ok(Json(json!({ "now": render::time(now) })).into_response())
}

async fn request_counts(State(sim): State<SimHandle>) -> Response {
    let counts: Vec<Value> = sim
        .request_counts()
        .into_iter()
        .map(|(k, count)| json!({"method": k.method, "route": k.route, "status": k.status, "count": count}))
        .collect();
    Json(json!(counts)).into_response()
}

async fn reset_request_counts(State(sim): State<SimHandle>) -> StatusCode {
    sim.reset_request_counts();
    StatusCode::NO_CONTENT
}

async fn raw_state(State(sim): State<SimHandle>) -> Response {
    Json(json!(&*sim.lock())).into_response()
}

async fn save(State(sim): State<SimHandle>) -> ControlResult {
    match sim.save() {
        Ok(saved) => Ok(Json(json!({ "saved": saved })).into_response()),
        Err(e) => Err(ApiError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}
