//! `GET /projects/:id/hooks/:hook_id/events`, `POST .../events/:hook_event_id/resend` and
//! `POST /projects/:id/hooks/:hook_id/test/:trigger` (gitlab-api.md §3.1).

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::delivery::{self, Delivery, Outgoing};
use super::{EventKind, payload};
use crate::api::{ProjectAccess, parse_id, visible_project};
use crate::auth::Auth;
use crate::commits;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::state::{Hook, HookDelivery, Id, SimHandle, State as SimState, access};

/// The delivery log keeps the past 7 days.
const LOG_RETENTION_DAYS: i64 = 7;

/// Every trigger GitLab's test endpoint accepts.
const TEST_TRIGGERS: [&str; 12] = [
    "push_events",
    "tag_push_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "merge_requests_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "releases_events",
    "emoji_events",
    "resource_access_token_events",
];

fn hook_of_project(
    state: &SimState,
    auth: &Auth,
    id: &str,
    hook_id: &str,
) -> Result<(ProjectAccess, Hook), ApiError> {
    let identity = auth.0.as_ref().ok_or_else(ApiError::unauthorized)?;
    identity.require_api(true)?;
    let found = visible_project(state, id, Some(identity.user_id))?;
    found.require(access::MAINTAINER)?;
    let hook_id = parse_id(hook_id, "Hook")?;
    let hook = state
        .hooks
        .get(&hook_id)
        .filter(|h| h.project_id == found.project.id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Hook"))?;
    Ok((found, hook))
}

fn render(d: &HookDelivery) -> Value {
    json!({
        "id": d.id,
        "url": d.url,
        "trigger": d.trigger,
        "request_headers": d.request_headers,
        "request_data": d.request_data,
        "response_headers": d.response_headers,
        "response_body": d.response_body,
        "execution_duration": d.execution_duration,
        "response_status": d.response_status,
    })
}

fn status_matches(filter: &str, status: &str) -> bool {
    let code = status.parse::<u16>().ok();
    match filter {
        "successful" => code.is_some_and(|c| (200..300).contains(&c)),
        "client_failure" => code.is_some_and(|c| (400..500).contains(&c)),
        "server_failure" => code.is_some_and(|c| (500..600).contains(&c)),
        other => other == status,
    }
}

pub async fn list_events(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (page, per_page) = paginate::page_params(&params)?;
    let status = params.str("status");
    if let Some(s) = &status
        && !["successful", "client_failure", "server_failure"].contains(&s.as_str())
        && s.parse::<u16>().is_err()
    {
        return Err(ApiError::not_valid_value("status"));
    }
    let state = sim.lock();
    let (_, hook) = hook_of_project(&state, &auth, &id, &hook_id)?;
    let since = state.now() - chrono::Duration::days(LOG_RETENTION_DAYS);
    let mut entries: Vec<&HookDelivery> = hook
        .deliveries
        .iter()
        .filter(|d| d.created_at >= since)
        .filter(|d| {
            status
                .as_deref()
                .is_none_or(|s| status_matches(s, &d.response_status))
        })
        .collect();
    entries.reverse();
    let (items, headers) = paginate::offset(entries, page, per_page, sim.base_url(), &uri);
    let body = items.into_iter().map(render).collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn resend(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id, event_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let out = {
        let state = sim.lock();
        let (_, hook) = hook_of_project(&state, &auth, &id, &hook_id)?;
        let event_id = parse_id(&event_id, "Hook event")?;
        let logged = hook
            .deliveries
            .iter()
            .find(|d| d.id == event_id)
            .ok_or_else(|| ApiError::not_found("Hook event"))?;
        if logged.url != hook.url {
            return Err(ApiError::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The hook URL has changed, and this log entry cannot be retried",
            ));
        }
        let header = |name: &str| {
            logged
                .request_headers
                .get(name)
                .cloned()
                .unwrap_or_default()
        };
        Outgoing {
            hook_id: hook.id,
            trigger: logged.trigger.clone(),
            event: header("X-Gitlab-Event"),
            event_uuid: header("X-Gitlab-Event-UUID"),
            // The point of a resend: receivers see the same key and can deduplicate.
            idempotency_key: logged.idempotency_key.clone(),
            payload: logged.request_data.clone(),
        }
    };
    let status = match delivery::deliver(&sim, out, true).await {
        Delivery::Answered(code) => json!(code),
        Delivery::Failed | Delivery::Dropped => json!("internal error"),
        Delivery::NoHook => return Err(ApiError::not_found("Hook")),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "response_status": status })),
    )
        .into_response())
}

/// GitLab's sample data for a test request by `user_id`, or its error message when there is
/// nothing to show.
async fn sample(
    sim: &SimHandle,
    hook: &Hook,
    trigger: &str,
    user_id: Id,
) -> Result<(EventKind, Value), String> {
    let project_id = hook.project_id;
    let repo = sim.repo_path(project_id);
    let default_branch = sim
        .lock()
        .projects
        .get(&project_id)
        .map(|p| p.default_branch.clone())
        .unwrap_or_default();
    let head = commits::branch_head(&repo, &default_branch)
        .await
        .map_err(|e| e.to_string())?;
    match trigger {
        "push_events" | "tag_push_events" => {
            let head = head.ok_or("Ensure the project has at least one commit.")?;
            let (kind, git_ref) = if trigger == "push_events" {
                (EventKind::Push, format!("refs/heads/{default_branch}"))
            } else {
                (EventKind::TagPush, "refs/tags/v1.0.0".to_owned())
            };
            let (recent, total) =
                commits::new_commits(&repo, commits::ZERO_SHA, &head, &git_ref, 3)
                    .await
                    .map_err(|e| e.to_string())?;
            let state = sim.lock();
            let (project, user) = project_and_user(&state, project_id, user_id)?;
            let facts = payload::PushFacts {
                before: commits::ZERO_SHA,
                after: &head,
                checkout_sha: Some(&head),
                git_ref: &git_ref,
                commits: &recent,
                total_commits_count: total,
                message: None,
                ref_protected: state.is_protected(project.id, &default_branch),
            };
            Ok((
                kind,
                payload::push(&state, sim.base_url(), project, user, &facts),
            ))
        }
        "merge_requests_events" => {
            let sha = sim
                .lock()
                .merge_requests
                .values()
                .rfind(|mr| mr.project_id == project_id)
                .map(|mr| mr.sha.clone())
                .ok_or("Ensure the project has merge requests.")?;
            let last = commits::commit_info(&repo, &sha)
                .await
                .map_err(|e| e.to_string())?;
            let state = sim.lock();
            let (project, _) = project_and_user(&state, project_id, user_id)?;
            let mr = state
                .merge_requests
                .values()
                .rfind(|mr| mr.project_id == project_id)
                .ok_or("Ensure the project has merge requests.")?;
            let author = state
                .users
                .get(&mr.author_id)
                .ok_or("Ensure the project has merge requests.")?;
            let change = payload::MergeRequestChange {
                action: "open",
                oldrev: None,
                changes: Vec::new(),
            };
            let body =
                payload::merge_request(&state, sim.base_url(), project, mr, author, &last, &change);
            Ok((EventKind::MergeRequest, body))
        }
        "note_events" => Err("Ensure the project has notes.".into()),
        _ => Err(format!("The simulator cannot send test {trigger}.")),
    }
}

fn project_and_user(
    state: &SimState,
    project_id: Id,
    user_id: Id,
) -> Result<(&crate::state::Project, &crate::state::User), String> {
    let project = state.projects.get(&project_id).ok_or("Project not found")?;
    let user = state.users.get(&user_id).ok_or("User not found")?;
    Ok((project, user))
}

pub async fn test(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, hook_id, trigger)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let hook = {
        let state = sim.lock();
        hook_of_project(&state, &auth, &id, &hook_id)?.1
    };
    let user_id = auth.user_id().ok_or_else(ApiError::unauthorized)?;
    if !TEST_TRIGGERS.contains(&trigger.as_str()) {
        return Err(ApiError::not_valid_value("trigger"));
    }
    let delivery = send_test(&sim, &hook, &trigger, user_id)
        .await
        .map_err(|message| ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, message))?;
    match delivery {
        d if d.succeeded() => Ok((
            StatusCode::CREATED,
            Json(json!({ "message": "201 Created" })),
        )
            .into_response()),
        Delivery::Answered(code) => Err(ApiError::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Error: hook responded with {code}"),
        )),
        _ => Err(ApiError::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Error: internal error",
        )),
    }
}

/// Sends a sample `trigger` event to `hook` as `user_id`; `Err` is GitLab's reason there is no
/// sample (e.g. no commit yet). Test requests go out even to a disabled hook and a 2xx
/// re-enables it (§3.5).
pub async fn send_test(
    sim: &SimHandle,
    hook: &Hook,
    trigger: &str,
    user_id: Id,
) -> Result<Delivery, String> {
    let (kind, body) = sample(sim, hook, trigger, user_id).await?;
    let out = Outgoing {
        hook_id: hook.id,
        trigger: kind.trigger().into(),
        event: kind.header().into(),
        event_uuid: uuid::Uuid::new_v4().to_string(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        payload: body,
    };
    Ok(delivery::deliver(sim, out, true).await)
}

/// Routes of this module, to merge into the REST API router (under `/api/v4`).
pub fn router() -> axum::Router<SimHandle> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/projects/{id}/hooks/{hook_id}/events", get(list_events))
        .route(
            "/projects/{id}/hooks/{hook_id}/events/{hook_event_id}/resend",
            post(resend),
        )
        .route("/projects/{id}/hooks/{hook_id}/test/{trigger}", post(test))
}

#[cfg(test)]
mod tests {
    use super::status_matches;

    #[test]
    fn status_filters() {
        assert!(status_matches("successful", "204"));
        assert!(status_matches("client_failure", "404"));
        assert!(status_matches("server_failure", "503"));
        assert!(!status_matches("server_failure", "internal error"));
        assert!(status_matches("500", "500"));
    }
}
