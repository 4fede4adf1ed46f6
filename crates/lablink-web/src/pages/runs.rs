//! Runs: the list of a project's runs (all, or one merge request's) and the run page with its
//! status, timing, steps and a log tail that refreshes while the run is active.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use lablink_service::ci::runs::{RunDetail, RunSummary};
use serde::Deserialize;

use super::when;
use crate::{AppState, Chrome, ClientIp, CurrentUser, HtmlError, render};

/// How many log lines the run page shows.
const LOG_TAIL: i64 = 300;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/drop-schemas", post(drop_schemas))
}

/// A form that carries nothing but its CSRF token.
#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

/// A Maintainer approves a fork's commit (the use case checks their GitLab role).
async fn approve(
    State(state): State<AppState>,
    user: CurrentUser,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<impl IntoResponse, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    state
        .services
        .approve_fork_run(&user.principal, &id, ip.0.as_deref())
        .await?;
    Ok(Redirect::to(&format!("/runs/{id}")))
}

/// Drops the merge request's schemas now (queued; the page shows the ledger's state).
async fn drop_schemas(
    State(state): State<AppState>,
    user: CurrentUser,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<impl IntoResponse, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    state
        .services
        .drop_run_schemas(&user.principal, &id, ip.0.as_deref())
        .await?;
    Ok(Redirect::to(&format!("/runs/{id}?dropping=1#schemas")))
}

/// A run with its times formatted for the page.
struct RunRow {
    run: RunSummary,
    created: String,
    duration: String,
}

fn duration(run: &RunSummary) -> String {
    match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => format!("{:.1} s", (end - start) as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => String::new(),
    }
}

impl RunRow {
    fn of(run: RunSummary) -> RunRow {
        RunRow {
            created: when(run.created_at),
            duration: duration(&run),
            run,
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    chrome: Chrome,
    project_id: String,
    mr_iid: Option<i64>,
    rows: Vec<RunRow>,
    refresh: bool,
}

#[derive(Deserialize)]
struct ListParams {
    mr: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, HtmlError> {
    let runs = state
        .services
        .list_runs(&user.principal, &project_id, params.mr)
        .await?;
    let refresh = runs.iter().any(|r| !r.state.is_terminal());
    render(&RunsPage {
        chrome: Chrome::for_user(&user),
        project_id,
        mr_iid: params.mr,
        rows: runs.into_iter().map(RunRow::of).collect(),
        refresh,
    })
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    row: RunRow,
    detail: RunDetail,
    started: String,
    finished: String,
    refresh: bool,
    /// Just asked to drop the schemas.
    dropping: bool,
}

#[derive(Deserialize)]
struct ShowParams {
    #[serde(default)]
    dropping: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<impl IntoResponse, HtmlError> {
    let detail = state
        .services
        .run_detail(&user.principal, &id, LOG_TAIL)
        .await?;
    render(&RunPage {
        chrome: Chrome::for_user(&user),
        started: detail.run.started_at.map(when).unwrap_or_default(),
        finished: detail.run.finished_at.map(when).unwrap_or_default(),
        refresh: !detail.run.state.is_terminal(),
        dropping: params.dropping.is_some(),
        row: RunRow::of(detail.run.clone()),
        detail,
    })
}
