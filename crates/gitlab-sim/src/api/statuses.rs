//! Commit statuses (gitlab-api.md §6): external pipelines/jobs, GitLab's job state machine,
//! ref resolution through the real repository, protected-ref permissions.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::visible_project;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate;
use crate::params::Params;
use crate::render;
use crate::repo;
use crate::state::{CommitStatus, Id, JobStatus, Pipeline, Pusher, SimHandle, access};

const STATES: [&str; 6] = [
    "pending", "running", "success", "failed", "canceled", "skipped",
];

/// The 400 GitLab's state machine gives for an event not allowed from the current state.
fn cannot_transition(event: &str, from: JobStatus) -> ApiError {
    ApiError::message(
        StatusCode::BAD_REQUEST,
        format!(
            "Cannot transition status via :{event} from :{} (Reason(s): Status cannot transition via \"{event}\")",
            from.as_str()
        ),
    )
}

/// `Ci::CreateCommitStatusService#update_job_state` over `CommitStatus`'s state machine.
fn transition(from: JobStatus, requested: &str) -> Result<JobStatus, ApiError> {
    use JobStatus::*;
    let enqueue_from = |s: JobStatus| matches!(s, Created | Skipped);
    let (event, allowed, to) = match requested {
        "pending" => ("enqueue", enqueue_from(from), Pending),
        "running" => {
            // `enqueue` (non-bang, may silently fail) then `run!`.
            let after_enqueue = if enqueue_from(from) { Pending } else { from };
            return if after_enqueue == Pending {
                Ok(Running)
            } else {
                Err(cannot_transition("run", after_enqueue))
            };
        }
        "success" => (
            "success",
            matches!(from, Created | Pending | Running),
            Success,
        ),
        "failed" => ("drop", matches!(from, Created | Pending | Running), Failed),
        "canceled" => (
            "cancel",
            matches!(from, Created | Pending | Running),
            Canceled,
        ),
        _ => ("skip", matches!(from, Created | Pending), Skipped),
    };
    if allowed {
        Ok(to)
    } else {
        Err(cannot_transition(event, from))
    }
}

fn limited(params: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match params.str(key) {
        Some(v) if v.chars().count() > 255 => Err(ApiError::validation(
            StatusCode::BAD_REQUEST,
            key,
            "is too long (maximum is 255 characters)",
        )),
        other => Ok(other),
    }
}

pub async fn create(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, sha)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let identity = auth.required()?;
    identity.require_api(true)?;
    let project = {
        let state = sim.lock();
        let found = visible_project(&state, &id, Some(identity.user_id))?;
        found.require(access::DEVELOPER)?;
        found.project
    };
    let requested = params
        .str("state")
        .ok_or_else(|| ApiError::message(StatusCode::BAD_REQUEST, "State is required"))?;
    if !STATES.contains(&requested.as_str()) {
        return Err(ApiError::not_valid_value("state"));
    }
    let name = params
        .str("name")
        .or_else(|| params.str("context"))
        .unwrap_or_else(|| "default".into());
    let target_url = limited(&params, "target_url")?;
    let description = limited(&params, "description")?;
    let git_ref_param = limited(&params, "ref")?;
    let coverage = params.float("coverage")?;
    let pipeline_id = params.int("pipeline_id")?;

    let repo_path = sim.repo_path(project.id);
    let sha = repo::resolve_commit(&repo_path, &sha)
        .await?
        .ok_or_else(|| ApiError::not_found("Commit"))?;
    let git_ref = match git_ref_param {
        Some(r) => r,
        None => repo::branches_containing(&repo_path, &sha)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("References for commit"))?,
    };

    let mut state = sim.lock();
    // Protected refs accept statuses only from identities that may push or merge there.
    let user = Pusher::User(identity.user_id);
    if state.is_protected(project.id, &git_ref)
        && !state.can_push_to_branch(user, &project, &git_ref)
        && !state.can_merge_to_branch(identity.user_id, &project, &git_ref)
    {
        return Err(ApiError::forbidden());
    }
    let now = state.now();
    let pipeline_id = match pipeline_id {
        Some(pid) => state
            .pipelines
            .get(&(pid as Id))
            .filter(|p| p.project_id == project.id && p.sha == sha && p.git_ref == git_ref)
            .map(|p| p.id)
            .ok_or_else(|| ApiError::not_found("Pipeline for pipeline_id, sha and ref"))?,
        None => match state
            .pipelines
            .values()
            .rev()
            .find(|p| p.project_id == project.id && p.sha == sha && p.git_ref == git_ref)
        {
            Some(p) => p.id,
            None => {
                let pid = state.next_id();
                state.pipelines.insert(
                    pid,
                    Pipeline {
                        id: pid,
                        project_id: project.id,
                        sha: sha.clone(),
                        git_ref: git_ref.clone(),
                        source: "external".into(),
                        created_at: now,
                    },
                );
                pid
            }
        },
    };
    let existing = state
        .commit_statuses
        .values()
        .rev()
        .find(|s| {
            s.pipeline_id == pipeline_id
                && s.name == name
                && s.git_ref == git_ref
                && s.author_id == identity.user_id
                && s.status.is_active()
        })
        .cloned();
    let mut job = existing.unwrap_or_else(|| CommitStatus {
        id: 0,
        project_id: project.id,
        pipeline_id,
        sha: sha.clone(),
        git_ref: git_ref.clone(),
        name: name.clone(),
        status: JobStatus::Created,
        target_url: None,
        description: None,
        coverage: None,
        author_id: identity.user_id,
        created_at: now,
        started_at: None,
        finished_at: None,
    });
    let next = transition(job.status, &requested)?;
    if target_url.is_some() {
        job.target_url = target_url;
    }
    if description.is_some() {
        job.description = description;
    }
    if coverage.is_some() {
        job.coverage = coverage;
    }
    if next == JobStatus::Running {
        job.started_at = Some(now);
    }
    if next.is_terminal() {
        job.finished_at = Some(now);
    }
    job.status = next;
    if job.id == 0 {
        job.id = state.next_id();
    }
    let body = render::commit_status(&state, sim.base_url(), &job);
    state.commit_statuses.insert(job.id, job);
    if let Some(p) = state.projects.get_mut(&project.id) {
        p.last_activity_at = now;
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path((id, sha)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let project = {
        let state = sim.lock();
        let found = visible_project(&state, &id, auth.user_id())?;
        if found.project.visibility != crate::state::Visibility::Public {
            found.require(access::REPORTER)?;
        }
        found.project
    };
    let (page, per_page) = paginate::page_params(&params)?;
    let all = params.bool("all")?.unwrap_or(false);
    let git_ref = params.str("ref");
    let name = params.str("name");
    let stage = params.str("stage");
    let pipeline_id = params.int("pipeline_id")?;
    let by_pipeline = match params.str("order_by").as_deref() {
        None | Some("id") => false,
        Some("pipeline_id") => true,
        Some(_) => return Err(ApiError::not_valid_value("order_by")),
    };
    let desc = match params.str("sort").as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::not_valid_value("sort")),
    };
    let sha = repo::resolve_commit(&sim.repo_path(project.id), &sha)
        .await?
        .ok_or_else(|| ApiError::not_found("Commit"))?;
    let state = sim.lock();
    let matching = state.commit_statuses.values().filter(|s| {
        s.project_id == project.id
            && s.sha == sha
            && git_ref.as_ref().is_none_or(|r| &s.git_ref == r)
            && name.as_ref().is_none_or(|n| &s.name == n)
            && stage.as_ref().is_none_or(|st| st == "external")
            && pipeline_id.is_none_or(|p| s.pipeline_id == p as Id)
    });
    let mut statuses: Vec<&CommitStatus> = if all {
        matching.collect()
    } else {
        // Older jobs with the same name in the same pipeline are "retried" and hidden.
        let mut latest: BTreeMap<(Id, &str), &CommitStatus> = BTreeMap::new();
        for s in matching {
            latest.insert((s.pipeline_id, s.name.as_str()), s);
        }
        latest.into_values().collect()
    };
    statuses.sort_by_key(|s| {
        if by_pipeline {
            (s.pipeline_id, s.id)
        } else {
            (s.id, 0)
        }
    });
    if desc {
        statuses.reverse();
    }
    let (items, headers) = paginate::offset(statuses, page, per_page, sim.base_url(), &uri);
    let body: Vec<Value> = items
        .into_iter()
        .map(|s| render::commit_status(&state, sim.base_url(), s))
        .collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}
