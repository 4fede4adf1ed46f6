//! REST API v4 (`/api/v4/...`), one module per area. Handlers lock the state briefly, never
//! across `.await`; repository reads happen before or after the lock.

mod access_tokens;
mod deploy_keys;
mod deploy_tokens;
mod forks;
mod groups;
mod hooks;
mod members;
mod merge_requests;
mod projects;
mod protected_branches;
mod push_rules;
mod repository;
mod statuses;
mod user_keys;
mod users;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{any, get, post, put};
use serde_json::json;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::{Id, Project, SimHandle, State, access};

pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/user", get(users::current))
        .route("/users/{id}", get(users::show))
        .route(
            "/user/keys",
            get(user_keys::list_mine).post(user_keys::create_mine),
        )
        .route(
            "/user/keys/{key_id}",
            get(user_keys::show_mine).delete(user_keys::delete_mine),
        )
        .route("/user/emails", get(user_keys::emails))
        .route(
            "/users/{id}/keys",
            get(user_keys::list_of_user).post(user_keys::create_for_user),
        )
        .route(
            "/projects/{id}/protected_branches",
            get(protected_branches::list).post(protected_branches::create),
        )
        .route(
            "/projects/{id}/protected_branches/{name}",
            get(protected_branches::show)
                .patch(protected_branches::update)
                .delete(protected_branches::delete),
        )
        .route(
            "/projects/{id}/repository/branches",
            get(repository::list_branches).post(repository::create_branch),
        )
        .route(
            "/projects/{id}/repository/branches/{branch}",
            get(repository::show_branch).delete(repository::delete_branch),
        )
        .route("/projects/{id}/repository/tree", get(repository::tree))
        .route(
            "/projects/{id}/repository/commits",
            post(repository::create_commit),
        )
        .route(
            "/projects/{id}/repository/files/{file_path}",
            get(repository::file),
        )
        .route(
            "/projects/{id}/repository/files/{file_path}/raw",
            get(repository::raw_file),
        )
        .route(
            "/projects/{id}/repository/compare",
            get(repository::compare),
        )
        .route(
            "/projects/{id}/push_rule",
            get(push_rules::show)
                .post(push_rules::create)
                .put(push_rules::update)
                .delete(push_rules::delete),
        )
        .route("/projects", get(projects::list))
        .route("/projects/{id}", get(projects::show).put(projects::update))
        .route("/projects/{id}/fork", post(forks::create))
        .route("/projects/{id}/forks", get(forks::list))
        .route("/groups", get(groups::list))
        .route("/groups/{id}", get(groups::show))
        .route(
            "/projects/{id}/members/all/{user_id}",
            get(members::show_all),
        )
        .route(
            "/projects/{id}/members/{user_id}",
            get(members::show_direct),
        )
        .route("/projects/{id}/hooks", get(hooks::list).post(hooks::create))
        .route(
            "/projects/{id}/hooks/{hook_id}",
            get(hooks::show).put(hooks::update).delete(hooks::delete),
        )
        .route(
            "/projects/{id}/access_tokens",
            get(access_tokens::list).post(access_tokens::create),
        )
        .route(
            "/projects/{id}/access_tokens/{token_id}",
            get(access_tokens::show).delete(access_tokens::revoke),
        )
        .route(
            "/projects/{id}/access_tokens/{token_id}/rotate",
            post(access_tokens::rotate),
        )
        .route(
            "/projects/{id}/deploy_tokens",
            get(deploy_tokens::list).post(deploy_tokens::create),
        )
        .route(
            "/projects/{id}/deploy_tokens/{token_id}",
            get(deploy_tokens::show).delete(deploy_tokens::delete),
        )
        .route(
            "/projects/{id}/deploy_keys",
            get(deploy_keys::list).post(deploy_keys::create),
        )
        .route(
            "/projects/{id}/deploy_keys/{key_id}",
            get(deploy_keys::show)
                .put(deploy_keys::update)
                .delete(deploy_keys::delete),
        )
        .route(
            "/projects/{id}/deploy_keys/{key_id}/enable",
            post(deploy_keys::enable),
        )
        .route("/projects/{id}/statuses/{sha}", post(statuses::create))
        .route(
            "/projects/{id}/repository/commits/{sha}/statuses",
            get(statuses::list),
        )
        .route(
            "/projects/{id}/merge_requests",
            get(merge_requests::list).post(merge_requests::create),
        )
        .route(
            "/projects/{id}/merge_requests/{iid}",
            get(merge_requests::show).put(merge_requests::update),
        )
        .route(
            "/projects/{id}/merge_requests/{iid}/merge",
            put(merge_requests::merge),
        )
        .route(
            "/projects/{id}/merge_requests/{iid}/notes",
            get(merge_requests::list_notes).post(merge_requests::create_note),
        )
        .route(
            "/projects/{id}/merge_requests/{iid}/notes/{note_id}",
            get(merge_requests::show_note).put(merge_requests::update_note),
        )
        // An explicit catch-all (not a fallback) so it wins over other top-level catch-alls.
        .route("/{*unknown}", any(unknown_route))
}

/// Grape's answer for a route that does not exist.
async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, json!({ "error": "404 Not Found" }))
}

/// A project the caller can see, and the caller's effective access level on it.
pub struct ProjectAccess {
    pub project: Project,
    pub level: u8,
}

impl ProjectAccess {
    /// 403 when the caller sees the project but lacks the role.
    pub fn require(&self, level: u8) -> Result<(), ApiError> {
        if self.level >= level {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// Resolves `:id` (numeric or URL-encoded path); invisible projects are 404 like missing ones.
pub fn visible_project(
    state: &State,
    id: &str,
    user_id: Option<Id>,
) -> Result<ProjectAccess, ApiError> {
    let project = state
        .find_project(id)
        .filter(|p| state.can_read_project(user_id, p))
        .ok_or_else(|| ApiError::not_found("Project"))?;
    let level = user_id.map_or(0, |u| state.project_access(u, project));
    Ok(ProjectAccess {
        project: project.clone(),
        level,
    })
}

/// A project the caller maintains (Maintainer or more), with the `api` scope for writes and
/// `api`/`read_api` for reads: the gate of every project settings endpoint.
pub fn maintainer_project(
    state: &State,
    id: &str,
    identity: &Identity,
    write: bool,
) -> Result<ProjectAccess, ApiError> {
    identity.require_api(write)?;
    let found = visible_project(state, id, Some(identity.user_id))?;
    found.require(access::MAINTAINER)?;
    Ok(found)
}

/// Parses a numeric path segment; anything else is GitLab's 404 for that resource.
pub fn parse_id(raw: &str, what: &str) -> Result<Id, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}
