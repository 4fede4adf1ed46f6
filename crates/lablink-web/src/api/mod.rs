//! The JSON API under `/api/v1`, described by `/api/v1/openapi.json`. Callers authenticate with a
//! personal API token (`Authorization: Bearer <token>`) or a browser session (writes then need the
//! `X-CSRF-Token` header). Authorization is the same as for the pages: it is decided by the use
//! cases.

mod ci;
mod integration;
mod linked_accounts;
mod me;
mod projects;
mod repositories;
mod tokens;
mod users;

use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "lablink API", version = "1"),
    paths(
        me::me,
        users::list_users,
        users::create_user,
        users::change_role,
        tokens::list_tokens,
        tokens::create_token,
        tokens::revoke_token,
        integration::get_integration,
        integration::save_integration,
        integration::remove_integration,
        linked_accounts::get_link,
        linked_accounts::check_link,
        linked_accounts::unlink,
        projects::list_projects,
        projects::create_project,
        projects::get_project,
        projects::update_project,
        repositories::get_repository,
        repositories::connect_repository,
        repositories::disconnect_repository,
        repositories::import_list,
        ci::list_jobs,
        ci::create_job,
        ci::get_job,
        ci::update_job,
        ci::delete_job,
        ci::list_runs,
        ci::get_run,
        ci::run_log,
        ci::run_artifact,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/me", get(me::me))
        .route("/users", get(users::list_users).post(users::create_user))
        .route("/users/{id}", patch(users::change_role))
        .route(
            "/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/tokens/{id}", delete(tokens::revoke_token))
        .route(
            "/integrations/gitlab",
            get(integration::get_integration)
                .put(integration::save_integration)
                .delete(integration::remove_integration),
        )
        .route(
            "/linked-accounts/gitlab",
            get(linked_accounts::get_link).delete(linked_accounts::unlink),
        )
        .route(
            "/linked-accounts/gitlab/check",
            post(linked_accounts::check_link),
        )
        .route(
            "/projects/{id}/ci-jobs",
            get(ci::list_jobs).post(ci::create_job),
        )
        .route(
            "/ci-jobs/{id}",
            get(ci::get_job).put(ci::update_job).delete(ci::delete_job),
        )
        .route("/projects/{id}/runs", get(ci::list_runs))
        .route("/runs/{id}", get(ci::get_run))
        .route("/runs/{id}/log", get(ci::run_log))
        .route("/runs/{id}/artifacts/{name}", get(ci::run_artifact))
        .route(
            "/projects",
            get(projects::list_projects).post(projects::create_project),
        )
        .route(
            "/projects/{id}",
            get(projects::get_project).put(projects::update_project),
        )
        .route(
            "/projects/{id}/repository",
            get(repositories::get_repository)
                .put(repositories::connect_repository)
                .delete(repositories::disconnect_repository),
        )
        .route("/gitlab/projects", get(repositories::import_list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut listed: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                "DELETE /api/v1/ci-jobs/{id}",
                "DELETE /api/v1/integrations/gitlab",
                "DELETE /api/v1/linked-accounts/gitlab",
                "DELETE /api/v1/projects/{id}/repository",
                "DELETE /api/v1/tokens/{id}",
                "GET /api/v1/ci-jobs/{id}",
                "GET /api/v1/gitlab/projects",
                "GET /api/v1/integrations/gitlab",
                "GET /api/v1/linked-accounts/gitlab",
                "GET /api/v1/me",
                "GET /api/v1/projects",
                "GET /api/v1/projects/{id}",
                "GET /api/v1/projects/{id}/ci-jobs",
                "GET /api/v1/projects/{id}/repository",
                "GET /api/v1/projects/{id}/runs",
                "GET /api/v1/runs/{id}",
                "GET /api/v1/runs/{id}/artifacts/{name}",
                "GET /api/v1/runs/{id}/log",
                "GET /api/v1/tokens",
                "GET /api/v1/users",
                "PATCH /api/v1/users/{id}",
                "POST /api/v1/linked-accounts/gitlab/check",
                "POST /api/v1/projects",
                "POST /api/v1/projects/{id}/ci-jobs",
                "POST /api/v1/tokens",
                "POST /api/v1/users",
                "PUT /api/v1/ci-jobs/{id}",
                "PUT /api/v1/integrations/gitlab",
                "PUT /api/v1/projects/{id}",
                "PUT /api/v1/projects/{id}/repository",
            ]
        );
    }
}
