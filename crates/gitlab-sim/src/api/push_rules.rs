//! A project's push rule (`/projects/:id/push_rule`, Premium): get, add, edit, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::maintainer_project;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::render;
use crate::state::{PushRule, SimHandle};

/// Applies the request's attributes to `rule`; regexes must compile (RE2).
fn apply(params: &Params, rule: &mut PushRule) -> Result<(), ApiError> {
    for (key, field) in [
        ("commit_message_regex", &mut rule.commit_message_regex),
        (
            "commit_message_negative_regex",
            &mut rule.commit_message_negative_regex,
        ),
        ("branch_name_regex", &mut rule.branch_name_regex),
        ("author_email_regex", &mut rule.author_email_regex),
        ("file_name_regex", &mut rule.file_name_regex),
    ] {
        if let Some(v) = params.str(key) {
            crate::checks::validate_regex(&v).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, json!({ "message": { key: [e] } }))
            })?;
            *field = v;
        }
    }
    for (key, field) in [
        ("deny_delete_tag", &mut rule.deny_delete_tag),
        ("member_check", &mut rule.member_check),
        ("prevent_secrets", &mut rule.prevent_secrets),
        ("commit_committer_check", &mut rule.commit_committer_check),
        (
            "commit_committer_name_check",
            &mut rule.commit_committer_name_check,
        ),
        ("reject_unsigned_commits", &mut rule.reject_unsigned_commits),
        ("reject_non_dco_commits", &mut rule.reject_non_dco_commits),
    ] {
        if let Some(v) = params.bool(key)? {
            *field = v;
        }
    }
    if let Some(size) = params.int("max_file_size")? {
        rule.max_file_size = u64::try_from(size).map_err(|_| ApiError::invalid("max_file_size"))?;
    }
    Ok(())
}

fn missing() -> ApiError {
    ApiError::not_found("Push Rule")
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, false)?;
    // No rule renders as `null`, as GitLab presents a nil push rule.
    Ok(Json(
        state
            .push_rules
            .get(&found.project.id)
            .map_or(Value::Null, render::push_rule),
    ))
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    let mut rule = PushRule::default();
    apply(&params, &mut rule)?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    if state.push_rules.contains_key(&found.project.id) {
        return Err(ApiError::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Project push rule exists",
        ));
    }
    let rule = state.set_push_rule(found.project.id, rule)?;
    Ok((StatusCode::CREATED, Json(render::push_rule(&rule))).into_response())
}

pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    let mut rule = state
        .push_rules
        .get(&found.project.id)
        .cloned()
        .ok_or_else(missing)?;
    apply(&params, &mut rule)?;
    let rule = state.set_push_rule(found.project.id, rule)?;
    Ok(Json(render::push_rule(&rule)))
}

pub async fn delete(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let identity = auth.required()?;
    let mut state = sim.lock();
    let found = maintainer_project(&state, &id, &identity, true)?;
    state
        .push_rules
        .remove(&found.project.id)
        .ok_or_else(missing)?;
    Ok(StatusCode::NO_CONTENT)
}
