//! Project → CI jobs: the list with what each job runs, a form to add one (DuckDB warehouses;
//! other warehouses through the API) and deletion.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::ci::jobs::{CiJobForm, CiJobView, DEFAULT_TIMEOUT_SECS, WarehouseSettings};
use secrecy::SecretString;
use serde::Deserialize;

use crate::layout::{ProjectNav, ProjectTab};
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/ci-jobs", get(list).post(create))
        .route("/ci-jobs/{id}/delete", post(delete))
}

#[derive(Template)]
#[template(path = "ci_jobs.html")]
struct CiJobsPage {
    chrome: Chrome,
    nav: ProjectNav,
    project_id: String,
    jobs: Vec<CiJobView>,
    /// The add-a-job form as it was sent (after a refusal) or with its defaults.
    form: NewJob,
    /// What is wrong with each field of the form, by field name.
    errors: BTreeMap<&'static str, String>,
    /// A refusal not about one field.
    error: Option<String>,
}

impl CiJobsPage {
    fn error_of(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

async fn jobs_page(
    state: &AppState,
    user: &CurrentUser,
    project_id: String,
    form: NewJob,
) -> Result<CiJobsPage, HtmlError> {
    let nav = super::project_nav(state, user, &project_id, ProjectTab::CiJobs).await?;
    let jobs = state
        .services
        .list_ci_jobs(&user.principal, &project_id)
        .await?;
    Ok(CiJobsPage {
        chrome: Chrome::for_user(user),
        nav,
        project_id,
        jobs,
        form,
        errors: BTreeMap::new(),
        error: None,
    })
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
) -> Result<impl IntoResponse, HtmlError> {
    render(&jobs_page(&state, &user, project_id, NewJob::default()).await?)
}

/// The add-a-job form, every field as typed (numbers too, so a wrong one is shown next to its
/// field instead of failing the whole request).
#[derive(Deserialize, Clone)]
#[serde(default)]
struct NewJob {
    csrf_token: String,
    name: String,
    kind: String,
    commands: String,
    target_branch_filter: String,
    run_on_draft: Option<String>,
    timeout_secs: String,
    /// `NAME=value` per line.
    env: String,
    mr_note: Option<String>,
    /// `approval` or `without_secrets`.
    forks: String,
    /// One path per line.
    watch_paths: String,
    compare_max_models: String,
    compare_timeout_secs: String,
}

impl Default for NewJob {
    fn default() -> NewJob {
        NewJob {
            csrf_token: String::new(),
            name: String::new(),
            kind: "ci".into(),
            commands: String::new(),
            target_branch_filter: String::new(),
            run_on_draft: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS.to_string(),
            env: String::new(),
            mr_note: Some("on".into()),
            forks: "approval".into(),
            watch_paths: String::new(),
            compare_max_models: "20".into(),
            compare_timeout_secs: "300".into(),
        }
    }
}

type FieldErrors = BTreeMap<&'static str, String>;

fn whole_number(errors: &mut FieldErrors, field: &'static str, what: &str, text: &str) -> i64 {
    text.trim().parse().unwrap_or_else(|_| {
        errors.insert(
            field,
            format!("{what} must be a whole number; “{}” is not.", text.trim()),
        );
        0
    })
}

fn parse_env(text: &str) -> Result<BTreeMap<String, SecretString>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line.split_once('=').ok_or_else(|| {
                format!(
                    "Environment variables are NAME=value, one per line; “{}” has no “=”.",
                    line.split_whitespace().next().unwrap_or_default()
                )
            })?;
            Ok((name.trim().to_owned(), SecretString::from(value.to_owned())))
        })
        .collect()
}

impl NewJob {
    /// The job the form describes, or what is wrong with each field that cannot be read.
    fn job(&self) -> Result<CiJobForm, FieldErrors> {
        let mut errors = FieldErrors::new();
        let timeout_secs = whole_number(
            &mut errors,
            "timeout_secs",
            "The timeout",
            &self.timeout_secs,
        );
        let compare_max_models = whole_number(
            &mut errors,
            "compare_max_models",
            "The number of models",
            &self.compare_max_models,
        );
        let compare_timeout_secs = whole_number(
            &mut errors,
            "compare_timeout_secs",
            "The comparison's time budget",
            &self.compare_timeout_secs,
        );
        let kind = self.kind.parse().map_err(|e: lablink_core::UnknownName| {
            errors.insert("kind", format!("{e}."));
        });
        let forks = self.forks.parse().map_err(|e: lablink_core::UnknownName| {
            errors.insert("forks", format!("{e}."));
        });
        let env = parse_env(&self.env).map_err(|e| {
            errors.insert("env", e);
        });
        match (kind, forks, env) {
            (Ok(kind), Ok(forks), Ok(env)) if errors.is_empty() => Ok(CiJobForm {
                name: self.name.clone(),
                kind,
                commands: self.commands.lines().map(str::to_owned).collect(),
                target_branch_filter: Some(self.target_branch_filter.trim().to_owned())
                    .filter(|f| !f.is_empty()),
                run_on_draft: self.run_on_draft.is_some(),
                enabled: true,
                timeout_secs,
                env,
                warehouse: WarehouseSettings::DuckDb {},
                warehouse_password: None,
                mr_note: self.mr_note.is_some(),
                watch_paths: self.watch_paths.lines().map(str::to_owned).collect(),
                compare_max_models,
                compare_timeout_secs,
                forks,
            }),
            _ => Err(errors),
        }
    }
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    Form(form): Form<NewJob>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let refused = match form.job() {
        Err(errors) => (errors, None),
        Ok(job) => match state
            .services
            .create_ci_job(&user.principal, &project_id, job)
            .await
        {
            Ok(created) => {
                return Ok(flash::redirect(
                    &format!("/projects/{project_id}/ci-jobs"),
                    format!(
                        "Added the CI job {}: its runs start with the next merge request event.",
                        created.name
                    ),
                    state.services.settings.secure_cookies(),
                ));
            }
            Err(ServiceError::InvalidField { field, message }) => {
                (FieldErrors::from([(field, message)]), None)
            }
            Err(e @ (ServiceError::BadInput(_) | ServiceError::Conflict(_))) => {
                (FieldErrors::new(), Some(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut page = jobs_page(&state, &user, project_id, form).await?;
    (page.errors, page.error) = refused;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf_token: String,
    project_id: String,
}

async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<DeleteForm>,
) -> Result<impl IntoResponse, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let job = state.services.get_ci_job(&user.principal, id).await?;
    state.services.delete_ci_job(&user.principal, id).await?;
    Ok(flash::redirect(
        &format!("/projects/{}/ci-jobs", form.project_id),
        format!(
            "Deleted the CI job {}. Its past runs stay listed.",
            job.name
        ),
        state.services.settings.secure_cookies(),
    ))
}
