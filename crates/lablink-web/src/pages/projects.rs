//! Projects: the account's dbt projects (list and create), and a project's page (edit its name,
//! dbt subdirectory and CI target branch; the way to its repository).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::projects::Project;
use lablink_service::projects::ProjectInput;
use lablink_service::repositories::Repository;
use serde::Deserialize;

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

#[derive(Template)]
#[template(path = "projects_show.html")]
struct ProjectPage {
    chrome: Chrome,
    project: Project,
    repository: Option<Repository>,
    can_write: bool,
    error: Option<String>,
    notice: Option<String>,
    form: ProjectForm,
}

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
        Ok(project) => Ok(Redirect::to(&format!("/projects/{}", project.id)).into_response()),
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
    let project = state.services.project(&user.principal, id).await?;
    let repository = state
        .services
        .project_repository(&user.principal, id)
        .await?;
    Ok(ProjectPage {
        chrome: Chrome::for_user(user),
        form: ProjectForm::of(&project),
        project,
        repository,
        can_write: user.principal.role.can_write(),
        error: None,
        notice: None,
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
    let mut page = project_page(&state, &user, &id).await?;
    match result {
        Ok(_) => {
            page.notice = Some("Saved.".to_owned());
            Ok(render(&page)?.into_response())
        }
        Err(e) => match shown_on_page(&e) {
            Some(status) => {
                page.error = Some(e.to_string());
                page.form = form;
                Ok((status, render(&page)?).into_response())
            }
            None => Err(e.into()),
        },
    }
}
