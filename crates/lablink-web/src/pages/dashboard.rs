//! The dashboard: what needs the user's attention (a GitLab link that stopped working, broken
//! connections, CI jobs whose latest run failed) and the account's recent runs.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use lablink_core::run::RunState;
use lablink_service::ci::runs::RunSummary;
use lablink_service::links::LinkView;

use super::{badges, when};
use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

/// How many of the account's runs the dashboard looks at (and lists the first of).
const RUNS_READ: i64 = 50;
const RUNS_SHOWN: usize = 10;

/// A project whose connection's last check found it broken.
struct Broken {
    project_id: String,
    project_name: String,
    headline: String,
    remedy: String,
    checked: String,
}

/// A run with its project's name, for lists across projects.
struct RunLine {
    run: RunSummary,
    project_name: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    username: String,
    account_name: String,
    plan: &'static str,
    role: &'static str,
    link: LinkView,
    broken: Vec<Broken>,
    /// The latest run of each job that failed.
    failing: Vec<RunLine>,
    recent: Vec<RunLine>,
    projects: usize,
}

impl Dashboard {
    fn all_well(&self) -> bool {
        self.broken.is_empty()
            && self.failing.is_empty()
            && matches!(self.link, LinkView::Linked { .. })
    }
}

async fn dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl IntoResponse, HtmlError> {
    let p = &user.principal;
    let services = &state.services;
    let projects = services.list_projects(p).await?;
    let names: HashMap<&str, &str> = projects
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let name_of = |id: &str| {
        names
            .get(id)
            .copied()
            .unwrap_or("(deleted project)")
            .to_owned()
    };
    let broken = services
        .broken_connections(p)
        .await?
        .into_iter()
        .map(|c| Broken {
            project_name: name_of(&c.project_id),
            project_id: c.project_id,
            headline: c.headline,
            remedy: c.remedy,
            checked: when(c.checked_at),
        })
        .collect();
    let runs = services.recent_runs(p, RUNS_READ).await?;
    // The newest run of each (project, job) decides whether that job is failing now.
    let mut seen = HashSet::new();
    let failing = runs
        .iter()
        .filter(|r| seen.insert((r.project_id.clone(), r.ci_job_id)))
        .filter(|r| r.state == RunState::Error)
        .map(|r| RunLine {
            project_name: name_of(&r.project_id),
            run: r.clone(),
        })
        .collect();
    let recent = runs
        .into_iter()
        .take(RUNS_SHOWN)
        .map(|r| RunLine {
            project_name: name_of(&r.project_id),
            run: r,
        })
        .collect();
    render(&Dashboard {
        chrome: Chrome::for_user(&user),
        username: p.username.clone(),
        account_name: p.account_name.clone(),
        plan: p.plan.label(),
        role: p.role.label(),
        link: services.gitlab_link_view(p).await?,
        broken,
        failing,
        recent,
        projects: projects.len(),
    })
}
