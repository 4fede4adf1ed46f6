//! Project hooks CRUD (gitlab-api.md §3.1). Delivery, test, events and resend live with the
//! webhook engine.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

use super::{maintainer_project, parse_id};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::state::{HOOK_EVENT_FLAGS, Hook, KeyValue, SimHandle};

const MAX_CUSTOM_HEADERS: usize = 20;

fn is_local(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => *d == "localhost" || d.ends_with(".localhost"),
        url::Host::Ipv4(ip) => {
            let ip = IpAddr::V4(*ip);
            ip.is_loopback()
                || ip.is_unspecified()
                || matches!(ip, IpAddr::V4(v4) if v4.is_private() || v4.is_link_local())
        }
        url::Host::Ipv6(ip) => ip.is_loopback() || ip.is_unspecified(),
    }
}

fn check_url(raw: &str, allow_local: bool) -> Result<(), ApiError> {
    let invalid = || ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, "Invalid url given");
    let parsed = url::Url::parse(raw).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid());
    }
    let host = parsed.host().ok_or_else(invalid)?;
    if !allow_local && is_local(&host) {
        return Err(invalid());
    }
    Ok(())
}

fn valid_signing_token(token: &str) -> bool {
    token.strip_prefix("whsec_").is_some_and(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .is_ok_and(|key| key.len() == 32)
    })
}

fn key_values(params: &Params, field: &str) -> Result<Option<Vec<KeyValue>>, ApiError> {
    let Some(value) = params.value(field) else {
        return Ok(None);
    };
    let items = value.as_array().ok_or_else(|| ApiError::invalid(field))?;
    items
        .iter()
        .map(|item| {
            let key = item.get("key").and_then(Value::as_str);
            let value = item.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(k), Some(v)) => Ok(KeyValue {
                    key: k.into(),
                    value: v.into(),
                }),
                _ => Err(ApiError::invalid(field)),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn valid_header_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.to_ascii_lowercase().starts_with("x-gitlab-")
        && !["idempotency-key", "user-agent", "content-type"]
            .contains(&name.to_ascii_lowercase().as_str())
        && !name.to_ascii_lowercase().starts_with("webhook-")
}

fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::validation(
        StatusCode::UNPROCESSABLE_ENTITY,
        field,
        &format!("is too long (maximum is {max} characters)"),
    )
}

/// Applies create/edit attributes. On edit a changed URL drops the secret token (GitLab resets it).
fn apply(hook: &mut Hook, params: &Params, allow_local: bool) -> Result<(), ApiError> {
    let url = params.required_str("url")?;
    check_url(&url, allow_local)?;
    if url != hook.url {
        hook.token = None;
        hook.url = url;
    }
    for flag in HOOK_EVENT_FLAGS {
        if let Some(on) = params.bool(flag)? {
            hook.events.insert(flag.into(), on);
        }
    }
    if let Some(v) = params.bool("enable_ssl_verification")? {
        hook.enable_ssl_verification = v;
    }
    for (field, max, target) in [
        ("name", 255, &mut hook.name),
        ("description", 2048, &mut hook.description),
        (
            "custom_webhook_template",
            4096,
            &mut hook.custom_webhook_template,
        ),
        (
            "push_events_branch_filter",
            5000,
            &mut hook.push_events_branch_filter,
        ),
    ] {
        if let Some(v) = params.str(field) {
            if v.chars().count() > max {
                return Err(too_long(field, max));
            }
            *target = v;
        }
    }
    if let Some(strategy) = params.str("branch_filter_strategy") {
        if !["wildcard", "regex", "all_branches"].contains(&strategy.as_str()) {
            return Err(ApiError::not_valid_value("branch_filter_strategy"));
        }
        hook.branch_filter_strategy = strategy;
    }
    if let Some(token) = params.str("token") {
        hook.token = (!token.is_empty()).then_some(token);
    }
    if let Some(signing) = params.str("signing_token") {
        if signing.is_empty() {
            hook.signing_token = None;
        } else if valid_signing_token(&signing) {
            hook.signing_token = Some(signing);
        } else {
            return Err(ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                "signing_token",
                "must be in whsec_<base64> format encoding a 32-byte key",
            ));
        }
    }
    if let Some(headers) = key_values(params, "custom_headers")? {
        merge_key_values(&mut hook.custom_headers, headers);
        if hook.custom_headers.len() > MAX_CUSTOM_HEADERS
            || !hook
                .custom_headers
                .iter()
                .all(|h| valid_header_name(&h.key))
        {
            return Err(ApiError::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Custom headers validation failed",
            ));
        }
    }
    if let Some(vars) = key_values(params, "url_variables")? {
        merge_key_values(&mut hook.url_variables, vars);
    }
    Ok(())
}

/// PUT merges `custom_headers` / `url_variables` into the existing ones.
fn merge_key_values(existing: &mut Vec<KeyValue>, new: Vec<KeyValue>) {
    for kv in new {
        match existing.iter_mut().find(|e| e.key == kv.key) {
            Some(e) => e.value = kv.value,
            None => existing.push(kv),
        }
    }
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
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let hooks: Vec<&Hook> = state.hooks_of(found.project.id).collect();
    let (items, headers) = paginate::offset(hooks, page, per_page, sim.base_url(), &uri);
    let body = items
        .into_iter()
        .map(|h| render::hook(h, state.now()))
        .collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    let hook_id = parse_id(&hook_id, "Hook")?;
    let hook = state
        .hooks
        .get(&hook_id)
        .filter(|h| h.project_id == found.project.id)
        .ok_or_else(|| ApiError::not_found("Hook"))?;
    Ok(Json(render::hook(hook, state.now())))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let mut hook = Hook {
        id: 0,
        project_id: found.project.id,
        url: String::new(),
        name: String::new(),
        description: String::new(),
        token: None,
        signing_token: None,
        // Database defaults: push events on, everything else off.
        events: [("push_events".to_owned(), true)].into_iter().collect(),
        push_events_branch_filter: String::new(),
        branch_filter_strategy: "wildcard".into(),
        enable_ssl_verification: true,
        custom_webhook_template: String::new(),
        custom_headers: Vec::new(),
        url_variables: Vec::new(),
        alert_status: "executable".into(),
        disabled_until: None,
        recent_failures: 0,
        backoff_count: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        created_at: state.now(),
        deliveries: Vec::new(),
    };
    let allow_local = state.settings.allow_local_webhooks;
    apply(&mut hook, &params, allow_local)?;
    hook.id = state.next_id();
    let body = render::hook(&hook, state.now());
    state.hooks.insert(hook.id, hook);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let hook_id = parse_id(&hook_id, "Hook")?;
    let allow_local = state.settings.allow_local_webhooks;
    let now = state.now();
    let hook = state
        .hooks
        .get_mut(&hook_id)
        .filter(|h| h.project_id == found.project.id)
        .ok_or_else(|| ApiError::not_found("Hook"))?;
    // Validate on a copy so a rejected edit changes nothing.
    let mut edited = hook.clone();
    apply(&mut edited, &params, allow_local)?;
    *hook = edited;
    Ok(Json(render::hook(hook, now)))
}

pub async fn delete(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let hook_id = parse_id(&hook_id, "Hook")?;
    match state.hooks.get(&hook_id) {
        Some(h) if h.project_id == found.project.id => {
            state.hooks.remove(&hook_id);
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::not_found("Hook")),
    }
}
