//! Project → Check connection: the doctor's findings for the project's repository, a Fix button
//! per repairable finding, Fix all, and "Send test delivery" (GitLab's hook test, and whether
//! lablink received and verified it, and how fast).

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::doctor::{Code, Outcome, Report};
use serde::Deserialize;

use super::{badges, when};
use crate::layout::{ProjectNav, ProjectTab};
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

/// How long "Send test delivery" waits for the delivery to arrive.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/connection", get(show))
        .route("/projects/{id}/connection/fix", post(fix))
        .route(
            "/projects/{id}/connection/test-delivery",
            post(test_delivery),
        )
}

/// A finding as the panel shows it.
struct Row {
    code: String,
    severity: &'static str,
    message: String,
    fix: String,
    repairable: bool,
}

#[derive(Template)]
#[template(path = "doctor.html")]
struct ConnectionPage {
    chrome: Chrome,
    nav: ProjectNav,
    project_id: String,
    project_name: String,
    path: Option<String>,
    last_delivery: Option<String>,
    rows: Vec<Row>,
}

fn page(user: &CurrentUser, nav: ProjectNav, report: Report) -> ConnectionPage {
    let rows = report
        .findings
        .into_iter()
        .map(|f| Row {
            code: f.code.as_str(),
            severity: match f.severity {
                lablink_service::doctor::Severity::Error => "error",
                lablink_service::doctor::Severity::Warning => "warning",
            },
            message: f.message,
            fix: f.fix,
            repairable: f.repairable,
        })
        .collect();
    ConnectionPage {
        chrome: Chrome::for_user(user),
        nav,
        project_id: report.project_id,
        project_name: report.project_name,
        path: report.path_with_namespace,
        last_delivery: report.last_verified_delivery_at.map(when),
        rows,
    }
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    let report = state
        .services
        .check_project_connection(&user.principal, &id, false)
        .await?;
    let nav = super::project_nav(&state, &user, &id, ProjectTab::Connection).await?;
    Ok(render(&page(&user, nav, report))?.into_response())
}

#[derive(Deserialize)]
struct FixForm {
    csrf_token: String,
    /// One finding's code; absent means every repairable finding.
    #[serde(default)]
    code: Option<Code>,
}

async fn fix(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<FixForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let services = &state.services;
    let repaired = match form.code {
        Some(code) => {
            services
                .fix_project_finding(&user.principal, &id, code)
                .await?
        }
        None => {
            services
                .check_project_connection(&user.principal, &id, true)
                .await?
        }
    };
    // Say what was done; the panel then shows the connection as it is now.
    let said: Vec<String> = repaired
        .repairs
        .iter()
        .map(|r| {
            let how = match r.outcome {
                Outcome::Repaired => "Repaired",
                Outcome::Failed => "Could not repair",
                Outcome::Manual => "Needs a person",
            };
            format!("{how}: {}", r.message)
        })
        .collect();
    let failed = repaired
        .repairs
        .iter()
        .any(|r| r.outcome == Outcome::Failed);
    let message = if said.is_empty() {
        "Nothing needed repairing.".to_owned()
    } else {
        said.join(" ")
    };
    let to = format!("/projects/{id}/connection");
    let secure = state.services.settings.secure_cookies();
    Ok(if failed {
        flash::redirect_problem(&to, message, secure)
    } else {
        flash::redirect(&to, message, secure)
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn test_delivery(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let delivery = state
        .services
        .send_test_delivery(&user.principal, &id, DELIVERY_WAIT)
        .await?;
    let to = format!("/projects/{id}/connection");
    let secure = state.services.settings.secure_cookies();
    Ok(if delivery.received {
        flash::redirect(&to, delivery.message, secure)
    } else {
        flash::redirect_problem(&to, delivery.message, secure)
    })
}
