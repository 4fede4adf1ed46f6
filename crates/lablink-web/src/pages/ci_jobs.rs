//! Project → CI jobs: the list with what each job runs, a form to add one (DuckDB warehouses;
//! other warehouses through the API) and deletion.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::ci::jobs::{CiJobForm, CiJobView, DEFAULT_TIMEOUT_SECS, WarehouseSettings};
use secrecy::SecretString;
use serde::Deserialize;

use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/ci-jobs", get(list).post(create))
        .route("/ci-jobs/{id}/delete", post(delete))
}

#[derive(Template)]
#[template(path = "ci_jobs.html")]
struct CiJobsPage {
    chrome: Chrome,
    project_id: String,
    jobs: Vec<CiJobView>,
    default_timeout: i64,
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
) -> Result<impl IntoResponse, HtmlError> {
    let jobs = state
        .services
        .list_ci_jobs(&user.principal, &project_id)
        .await?;
    render(&CiJobsPage {
        chrome: Chrome::for_user(&user),
        project_id,
        jobs,
        default_timeout: DEFAULT_TIMEOUT_SECS,
    })
}

#[derive(Deserialize)]
struct NewJob {
    csrf_token: String,
    name: String,
    kind: String,
    #[serde(default)]
    commands: String,
    #[serde(default)]
    target_branch_filter: String,
    #[serde(default)]
    run_on_draft: Option<String>,
    timeout_secs: i64,
    /// `NAME=value` per line.
    #[serde(default)]
    env: String,
    #[serde(default)]
    mr_note: Option<String>,
    /// `approval` or `without_secrets`.
    forks: String,
    /// One path per line.
    #[serde(default)]
    watch_paths: String,
    compare_max_models: i64,
    compare_timeout_secs: i64,
}

fn parse_env(text: &str) -> Result<BTreeMap<String, SecretString>, ServiceError> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line.split_once('=').ok_or_else(|| {
                ServiceError::BadInput(format!(
                    "Environment variables are `NAME=value`, one per line; `{}` has no `=`.",
                    line.split_whitespace().next().unwrap_or_default()
                ))
            })?;
            Ok((name.trim().to_owned(), SecretString::from(value.to_owned())))
        })
        .collect()
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    Form(form): Form<NewJob>,
) -> Result<impl IntoResponse, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let job = CiJobForm {
        name: form.name,
        kind: form
            .kind
            .parse()
            .map_err(|e: lablink_core::UnknownName| ServiceError::BadInput(format!("{e}.")))?,
        commands: form.commands.lines().map(str::to_owned).collect(),
        target_branch_filter: Some(form.target_branch_filter.trim().to_owned())
            .filter(|f| !f.is_empty()),
        run_on_draft: form.run_on_draft.is_some(),
        enabled: true,
        timeout_secs: form.timeout_secs,
        env: parse_env(&form.env)?,
        warehouse: WarehouseSettings::DuckDb {},
        warehouse_password: None,
        mr_note: form.mr_note.is_some(),
        watch_paths: form.watch_paths.lines().map(str::to_owned).collect(),
        compare_max_models: form.compare_max_models,
        compare_timeout_secs: form.compare_timeout_secs,
        forks: form
            .forks
            .parse()
            .map_err(|e: lablink_core::UnknownName| ServiceError::BadInput(format!("{e}.")))?,
    };
    state
        .services
        .create_ci_job(&user.principal, &project_id, job)
        .await?;
    Ok(Redirect::to(&format!("/projects/{project_id}/ci-jobs")))
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
    state.services.delete_ci_job(&user.principal, id).await?;
    Ok(Redirect::to(&format!(
        "/projects/{}/ci-jobs",
        form.project_id
    )))
}
