//! Runs: the list of a project's runs (all, or one merge request's) and the run page with its
//! status, timing and log in step sections. Both refresh in place while a run is active (the
//! pages' script re-reads the parts marked `data-live`; no full-page reload).

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lablink_service::ci::runs::{RunDetail, RunSummary};
use serde::Deserialize;

use super::log_view::{LogSection, log_sections};
use super::{badges, when};
use crate::layout::{ProjectNav, ProjectTab};
use crate::render::filters;
use crate::{AppState, Chrome, ClientIp, CurrentUser, HtmlError, flash, render};

/// How many log lines the run page shows.
const LOG_TAIL: i64 = 300;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/{action}", post(act))
}

/// A form that carries nothing but its CSRF token.
#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

/// One of the run page's actions; the use cases check who may: `approve` (a Maintainer in
/// GitLab approves a fork's commit), `cancel`, `rerun` (a fork's commit waits for an approval
/// again), `drop-schemas` (queued; the page shows the ledger's state).
async fn act(
    State(state): State<AppState>,
    user: CurrentUser,
    ip: ClientIp,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let (services, caller, ip) = (&state.services, &user.principal, ip.0.as_deref());
    let said = match action.as_str() {
        "approve" => {
            services.approve_fork_run(caller, &id, ip).await?;
            "Approved: the run is queued with the job's warehouse and variables."
        }
        "cancel" => {
            services.cancel_run_by_user(caller, &id, ip).await?;
            "Cancelling the run: a queued run stops at once, a running one within a few seconds."
        }
        "rerun" => {
            if services.rerun_run(caller, &id, ip).await?.awaits_approval() {
                "Running it again: from a fork, so it waits for a Maintainer's approval first."
            } else {
                "Running it again: queued; GitLab shows the commit's status as pending."
            }
        }
        "drop-schemas" => {
            services.drop_run_schemas(caller, &id, ip).await?;
            return Ok(Redirect::to(&format!("/runs/{id}?dropping=1#schemas")).into_response());
        }
        _ => return Err(HtmlError::not_found()),
    };
    Ok(flash::redirect(
        &format!("/runs/{id}"),
        said,
        services.settings.secure_cookies(),
    ))
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
    nav: ProjectNav,
    project_id: String,
    mr_iid: Option<i64>,
    rows: Vec<RunRow>,
    /// A run is active: the list refreshes in place.
    live: bool,
    /// The repository's page in GitLab, for links to merge requests and commits.
    gitlab: Option<String>,
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
    let mut nav = super::project_nav(&state, &user, &project_id, ProjectTab::Runs).await?;
    if let Some(iid) = params.mr {
        nav = nav
            .then("Runs", Some(format!("/projects/{project_id}/runs")))
            .then(format!("!{iid}"), None);
    }
    render(&RunsPage {
        chrome: Chrome::for_user(&user),
        nav,
        gitlab: gitlab_page(&state, &user, &project_id).await?,
        live: runs.iter().any(|r| !r.state.is_terminal()),
        project_id,
        mr_iid: params.mr,
        rows: runs.into_iter().map(RunRow::of).collect(),
    })
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    nav: ProjectNav,
    row: RunRow,
    detail: RunDetail,
    log: Vec<LogSection>,
    started: String,
    finished: String,
    /// The run is active: its state, steps and log refresh in place.
    live: bool,
    /// Just asked to drop the schemas.
    dropping: bool,
    gitlab: Option<String>,
}

/// The project's repository page in GitLab, when one is connected.
async fn gitlab_page(
    state: &AppState,
    user: &CurrentUser,
    project_id: &str,
) -> Result<Option<String>, HtmlError> {
    Ok(state
        .services
        .project_repository(&user.principal, project_id)
        .await?
        .and_then(|r| {
            crate::render::http_link(&r.web_url).map(|u| u.trim_end_matches('/').to_owned())
        }))
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
    let project_id = detail.run.project_id.clone();
    let nav = super::project_nav(&state, &user, &project_id, ProjectTab::Runs)
        .await?
        .then("Runs", Some(format!("/projects/{project_id}/runs")))
        .then(format!("Run {}", badges::run_ref(&detail.run.id)), None);
    render(&RunPage {
        chrome: Chrome::for_user(&user),
        nav,
        gitlab: gitlab_page(&state, &user, &project_id).await?,
        log: log_sections(
            detail.log_tail.iter().map(|l| l.line.as_str()),
            "Preparing the run",
            |command, _| {
                detail
                    .steps
                    .iter()
                    .find(|s| s.command == command)
                    .map(|s| s.outcome.clone().unwrap_or_else(|| "running".into()))
            },
        ),
        started: detail.run.started_at.map(when).unwrap_or_default(),
        finished: detail.run.finished_at.map(when).unwrap_or_default(),
        live: !detail.run.state.is_terminal(),
        dropping: params.dropping.is_some(),
        row: RunRow::of(detail.run.clone()),
        detail,
    })
}
