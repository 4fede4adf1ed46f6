//! The JSON API under `/api/v1`, described by `/api/v1/openapi.json`. Callers authenticate with a
//! personal API token (`Authorization: Bearer <token>`) or a browser session (writes then need the
//! `X-CSRF-Token` header). Authorization is the same as for the pages: it is decided by the use
//! cases.

pub(crate) mod audit;
mod ci;
mod git_credential;
mod integration;
mod ip_restrictions;
mod linked_accounts;
mod me;
mod projects;
mod repositories;
mod tokens;
mod users;
mod workspace;
mod workspace_dbt;
mod workspaces;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ErrorBody;

/// What the document says beyond the routes, which [`routes`] adds as it registers them.
#[derive(OpenApi)]
#[openapi(
    info(title = "lablink API", version = "1"),
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

/// Every route of the API with its OpenAPI entry, registered together (the path is the one in
/// each handler's `#[utoipa::path]`), and the document they make.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::me))
        .routes(routes!(audit::list_audit))
        .routes(routes!(git_credential::setup, git_credential::issue))
        .routes(routes!(
            workspace::get_workspace,
            workspace::delete_workspace
        ))
        .routes(routes!(workspaces::list_workspaces))
        .routes(routes!(workspaces::set_disk_cap))
        .routes(routes!(
            workspace::get_file,
            workspace::save_file,
            workspace::create_file,
            workspace::delete_file
        ))
        .routes(routes!(workspace::rename_file))
        .routes(routes!(workspace::revert))
        .routes(routes!(workspace::diff))
        .routes(routes!(workspace::create_branch))
        .routes(routes!(workspace::checkout))
        .routes(routes!(workspace::commit))
        .routes(routes!(workspace::pull))
        .routes(routes!(workspace::refresh))
        .routes(routes!(workspace::rollback))
        .routes(routes!(workspace::repair_deploy_key))
        .routes(routes!(workspace::merge_default_branch))
        .routes(routes!(workspace::abort_merge))
        .routes(routes!(workspace::fix_gitignore))
        .routes(routes!(workspace::merge_request))
        .routes(routes!(workspace::revert_commit))
        .routes(routes!(
            workspace_dbt::list_commands,
            workspace_dbt::start_command
        ))
        .routes(routes!(workspace_dbt::get_command))
        .routes(routes!(
            workspace_dbt::save_credentials,
            workspace_dbt::remove_credentials
        ))
        .routes(routes!(workspace_dbt::cancel_command))
        .routes(routes!(workspace_dbt::target_file))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::change_role))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(
            ip_restrictions::get_restrictions,
            ip_restrictions::create_rule
        ))
        .routes(routes!(
            ip_restrictions::update_rule,
            ip_restrictions::delete_rule
        ))
        .routes(routes!(ip_restrictions::set_enabled))
        .routes(routes!(ip_restrictions::set_webhook_sources))
        .routes(routes!(ip_restrictions::validate))
        .routes(routes!(
            integration::get_integration,
            integration::save_integration,
            integration::remove_integration
        ))
        .routes(routes!(linked_accounts::get_link, linked_accounts::unlink))
        .routes(routes!(linked_accounts::check_link))
        .routes(routes!(ci::list_jobs, ci::create_job))
        .routes(routes!(ci::get_job, ci::update_job, ci::delete_job))
        .routes(routes!(ci::list_runs))
        .routes(routes!(ci::get_run))
        .routes(routes!(ci::approve_run))
        .routes(routes!(ci::cancel_run))
        .routes(routes!(ci::rerun_run))
        .routes(routes!(ci::drop_run_schemas))
        .routes(routes!(ci::run_log))
        .routes(routes!(ci::run_artifact))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(projects::get_project, projects::update_project))
        .routes(routes!(
            repositories::get_repository,
            repositories::connect_repository,
            repositories::disconnect_repository
        ))
        .routes(routes!(repositories::import_list))
        .routes(routes!(repositories::set_post_as))
        .split_for_parts()
}

/// The API's routes under `/api/v1`, and its document at `/api/v1/openapi.json`.
pub fn routes() -> Router<AppState> {
    let (router, document) = api();
    let document = Arc::new(document);
    router.route(
        "/api/v1/openapi.json",
        get(move || async move { Json(document.as_ref().clone()) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route() {
        let doc = serde_json::to_value(api().1).unwrap();
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
                "DELETE /api/v1/ip-restrictions/{id}",
                "DELETE /api/v1/linked-accounts/gitlab",
                "DELETE /api/v1/projects/{id}/repository",
                "DELETE /api/v1/projects/{id}/workspace",
                "DELETE /api/v1/projects/{id}/workspace/dbt/credentials",
                "DELETE /api/v1/projects/{id}/workspace/files",
                "DELETE /api/v1/tokens/{id}",
                "GET /api/v1/audit",
                "GET /api/v1/ci-jobs/{id}",
                "GET /api/v1/git-credential",
                "GET /api/v1/gitlab/projects",
                "GET /api/v1/integrations/gitlab",
                "GET /api/v1/ip-restrictions",
                "GET /api/v1/ip-restrictions/validate",
                "GET /api/v1/linked-accounts/gitlab",
                "GET /api/v1/me",
                "GET /api/v1/projects",
                "GET /api/v1/projects/{id}",
                "GET /api/v1/projects/{id}/ci-jobs",
                "GET /api/v1/projects/{id}/repository",
                "GET /api/v1/projects/{id}/runs",
                "GET /api/v1/projects/{id}/workspace",
                "GET /api/v1/projects/{id}/workspace/dbt",
                "GET /api/v1/projects/{id}/workspace/dbt/{command}",
                "GET /api/v1/projects/{id}/workspace/dbt/{command}/target",
                "GET /api/v1/projects/{id}/workspace/diff",
                "GET /api/v1/projects/{id}/workspace/files",
                "GET /api/v1/runs/{id}",
                "GET /api/v1/runs/{id}/artifacts/{name}",
                "GET /api/v1/runs/{id}/log",
                "GET /api/v1/tokens",
                "GET /api/v1/users",
                "GET /api/v1/workspaces",
                "PATCH /api/v1/users/{id}",
                "POST /api/v1/git-credential",
                "POST /api/v1/ip-restrictions",
                "POST /api/v1/ip-restrictions/enabled",
                "POST /api/v1/linked-accounts/gitlab/check",
                "POST /api/v1/projects",
                "POST /api/v1/projects/{id}/ci-jobs",
                "POST /api/v1/projects/{id}/workspace/abort-merge",
                "POST /api/v1/projects/{id}/workspace/branches",
                "POST /api/v1/projects/{id}/workspace/checkout",
                "POST /api/v1/projects/{id}/workspace/commit",
                "POST /api/v1/projects/{id}/workspace/dbt",
                "POST /api/v1/projects/{id}/workspace/dbt/{command}/cancel",
                "POST /api/v1/projects/{id}/workspace/files",
                "POST /api/v1/projects/{id}/workspace/fix-gitignore",
                "POST /api/v1/projects/{id}/workspace/merge-default-branch",
                "POST /api/v1/projects/{id}/workspace/merge-request",
                "POST /api/v1/projects/{id}/workspace/pull",
                "POST /api/v1/projects/{id}/workspace/refresh",
                "POST /api/v1/projects/{id}/workspace/rename",
                "POST /api/v1/projects/{id}/workspace/repair-deploy-key",
                "POST /api/v1/projects/{id}/workspace/revert",
                "POST /api/v1/projects/{id}/workspace/revert-commit",
                "POST /api/v1/projects/{id}/workspace/rollback",
                "POST /api/v1/runs/{id}/approve",
                "POST /api/v1/runs/{id}/cancel",
                "POST /api/v1/runs/{id}/drop-schemas",
                "POST /api/v1/runs/{id}/rerun",
                "POST /api/v1/tokens",
                "POST /api/v1/users",
                "PUT /api/v1/ci-jobs/{id}",
                "PUT /api/v1/integrations/gitlab",
                "PUT /api/v1/ip-restrictions/webhook-sources",
                "PUT /api/v1/ip-restrictions/{id}",
                "PUT /api/v1/projects/{id}",
                "PUT /api/v1/projects/{id}/repository",
                "PUT /api/v1/projects/{id}/repository/post-as",
                "PUT /api/v1/projects/{id}/workspace/dbt/credentials",
                "PUT /api/v1/projects/{id}/workspace/files",
                "PUT /api/v1/workspaces/disk-cap",
            ]
        );
    }
}
