//! Projects: the account's dbt projects (list and create), and a project's page (edit its name,
//! dbt subdirectory and CI target branch; the way to its repository).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::projects::Project;
use lablink_service::projects::ProjectInput;
use lablink_service::repositories::Repository;
use serde::Deserialize;

use lablink_service::ci::jobs::CiJobView;
use lablink_service::ci::runs::RunSummary;
use lablink_service::doctor::ConnectionHealth;

use super::badges;
use crate::flash;
use crate::layout::{ProjectNav, ProjectTab};
use crate::render::filters;
use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{id}", get(show).post(update))
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    chrome: Chrome,
    projects: Vec<Project>,
    can_write: bool,
    error: Option<String>,
    form: ProjectForm,
}

/// The project's hub: its connection's health, CI jobs, recent runs, the workspace, settings.
#[derive(Template)]
#[template(path = "projects_show.html")]
struct ProjectPage {
    chrome: Chrome,
    nav: ProjectNav,
    project: Project,
    repository: Option<Repository>,
    health: ConnectionHealth,
    checked: String,
    jobs: Vec<CiJobView>,
    recent_runs: Vec<RunSummary>,
    can_write: bool,
    error: Option<String>,
    form: ProjectForm,
}

/// How many runs the hub lists.
const RECENT_RUNS: usize = 5;

#[derive(Deserialize, Default, Clone)]
struct ProjectForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    subdirectory: String,
    #[serde(default)]
    target_branch: String,
}

impl ProjectForm {
    fn of(project: &Project) -> ProjectForm {
        ProjectForm {
            csrf_token: String::new(),
            name: project.name.clone(),
            subdirectory: project.subdirectory.clone(),
            target_branch: project.target_branch.clone().unwrap_or_default(),
        }
    }

    fn input(&self) -> ProjectInput {
        ProjectInput {
            name: self.name.clone(),
            subdirectory: self.subdirectory.clone(),
            target_branch: self.target_branch.clone(),
        }
    }
}

/// A refusal shown on the page next to the form the person filled in (bad input, name taken).
fn shown_on_page(e: &ServiceError) -> Option<StatusCode> {
    match e {
        ServiceError::BadInput(_) => Some(StatusCode::UNPROCESSABLE_ENTITY),
        ServiceError::Conflict(_) => Some(StatusCode::CONFLICT),
        _ => None,
    }
}

async fn list_page(
    state: &AppState,
    user: &CurrentUser,
    error: Option<String>,
    form: ProjectForm,
) -> Result<ProjectsPage, HtmlError> {
    Ok(ProjectsPage {
        chrome: Chrome::for_user(user),
        projects: state.services.list_projects(&user.principal).await?,
        can_write: user.principal.role.can_write(),
        error,
        form,
    })
}

async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, HtmlError> {
    let page = list_page(&state, &user, None, ProjectForm::default()).await?;
    Ok(render(&page)?.into_response())
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<ProjectForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    match state
        .services
        .create_project(&user.principal, &form.input())
        .await
    {
        Ok(project) => Ok(flash::redirect(
            &format!("/projects/{}", project.id),
            format!(
                "Created the project {}. Next, connect its GitLab repository.",
                project.name
            ),
            state.services.settings.secure_cookies(),
        )),
        Err(e) => match shown_on_page(&e) {
            Some(status) => {
                let page = list_page(&state, &user, Some(e.to_string()), form).await?;
                Ok((status, render(&page)?).into_response())
            }
            None => Err(e.into()),
        },
    }
}

async fn project_page(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<ProjectPage, HtmlError> {
    let nav = super::project_nav(state, user, id, ProjectTab::Overview).await?;
    let services = &state.services;
    let project = services.project(&user.principal, id).await?;
    let repository = services.project_repository(&user.principal, id).await?;
    let health = services.connection_health(&user.principal, id).await?;
    let mut recent_runs = services.list_runs(&user.principal, id, None).await?;
    recent_runs.truncate(RECENT_RUNS);
    Ok(ProjectPage {
        chrome: Chrome::for_user(user),
        nav,
        form: ProjectForm::of(&project),
        project,
        repository,
        checked: health
            .last
            .as_ref()
            .map(|c| super::when(c.checked_at))
            .unwrap_or_default(),
        health,
        jobs: services.list_ci_jobs(&user.principal, id).await?,
        recent_runs,
        can_write: user.principal.role.can_write(),
        error: None,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    Ok(render(&project_page(&state, &user, &id).await?)?.into_response())
}

async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ProjectForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let result = state
        .services
        .update_project(&user.principal, &id, &form.input())
        .await;
    match result {
        Ok(project) => Ok(flash::redirect(
            &format!("/projects/{id}"),
            format!("Saved the settings of {}.", project.name),
            state.services.settings.secure_cookies(),
        )),
        Err(e) => match shown_on_page(&e) {
            Some(status) => {
                let mut page = project_page(&state, &user, &id).await?;
                page.error = Some(e.to_string());
                page.form = form;
                Ok((status, render(&page)?).into_response())
            }
            None => Err(e.into()),
        },
    }
}
