//! Server-rendered pages. Each module owns its routes; register a new module here.

mod audit;
mod auth;
pub(crate) mod badges;
mod ci_jobs;
mod dashboard;
mod doctor;
pub mod health;
mod integration;
mod ip_restrictions;
mod linked_accounts;
mod log_view;
mod profile;
mod projects;
mod repositories;
mod runs;
mod settings;
mod setup;
mod workspace;
mod workspace_dbt;

use axum::Router;

use crate::layout::{ProjectNav, ProjectTab};
use crate::{AppState, CurrentUser, HtmlError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(setup::routes())
        .merge(dashboard::routes())
        .merge(profile::routes())
        .merge(settings::routes())
        .merge(audit::routes())
        .merge(ip_restrictions::routes())
        .merge(integration::routes())
        .merge(linked_accounts::routes())
        .merge(projects::routes())
        .merge(repositories::routes())
        .merge(runs::routes())
        .merge(ci_jobs::routes())
        .merge(doctor::routes())
        .merge(workspace::routes())
        .merge(workspace_dbt::routes())
}

pub async fn not_found() -> HtmlError {
    HtmlError::not_found()
}

/// Formats a Unix-ms timestamp for pages.
pub(crate) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// The breadcrumbs and sub-navigation of one of the caller's projects (the project must be
/// theirs: this is also the page's access check).
pub(crate) async fn project_nav(
    state: &AppState,
    user: &CurrentUser,
    project_id: &str,
    tab: ProjectTab,
) -> Result<ProjectNav, HtmlError> {
    let project = state.services.project(&user.principal, project_id).await?;
    Ok(ProjectNav {
        id: project.id,
        name: project.name,
        tab,
        connected: project.repository_id.is_some(),
        can_write: user.principal.role.can_write(),
        trail: Vec::new(),
    })
}
