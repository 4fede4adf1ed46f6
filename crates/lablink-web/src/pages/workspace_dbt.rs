//! Project → Workspace → dbt: the command box. A command typed here runs in the sandbox on the
//! workspace's files against the user's development schema; its output refreshes in place while
//! it runs, and what dbt wrote to its target path can be browsed afterwards.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lablink_service::ServiceError;
use lablink_service::workspace::{DevCommand, DevCommands};
use serde::Deserialize;

use super::log_view::{LogSection, log_sections};
use super::{badges, when};
use crate::layout::{ProjectNav, ProjectTab};
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/workspace/dbt", get(show).post(start))
        .route(
            "/projects/{id}/workspace/dbt/{command}/cancel",
            post(cancel),
        )
        .route(
            "/projects/{id}/workspace/dbt/{command}/target/{*path}",
            get(target_file),
        )
        .route(
            "/projects/{id}/workspace/dbt-credentials/{action}",
            post(credentials),
        )
}

#[derive(Template)]
#[template(path = "workspace_dbt.html")]
struct DbtPage {
    chrome: Chrome,
    nav: ProjectNav,
    project_id: String,
    box_: DevCommands,
    /// The command shown: the latest, or one chosen from the earlier ones.
    shown: Option<DevCommand>,
    /// The shown command's output, folded per dbt command.
    log: Vec<LogSection>,
    /// What was typed, kept after a refusal.
    typed: String,
    job_id: Option<i64>,
    error: Option<(Option<&'static str>, String)>,
    /// The credentials form's user, as saved or as typed before a refusal.
    typed_user: String,
}

impl DbtPage {
    fn field_error(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == Some(field))
            .map(|(_, m)| m.as_str())
    }

    fn form_error(&self) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| f.is_none())
            .map(|(_, m)| m.as_str())
    }

    /// A file's size in words a person reads at a glance.
    fn size(&self, bytes: &i64) -> String {
        match *bytes {
            b if b < 1024 => format!("{b} B"),
            b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
            b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        }
    }

    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }

    fn chosen(&self, job: &i64) -> bool {
        self.job_id == Some(*job)
    }

    /// The credentials form is shown open: it was refused.
    fn credentials_open(&self) -> bool {
        self.field_error("username").is_some() || self.field_error("password").is_some()
    }

    fn live(&self) -> bool {
        self.shown.as_ref().is_some_and(DevCommand::running)
    }
}

#[derive(Deserialize, Default)]
struct PageQuery {
    command: Option<String>,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    chosen: Option<&str>,
    typed: String,
    job_id: Option<i64>,
    error: Option<(Option<&'static str>, String)>,
) -> Result<DbtPage, HtmlError> {
    let (services, caller) = (&state.services, &user.principal);
    let box_ = services.workspace_commands(caller, id).await?;
    let shown = match chosen {
        Some(command) => Some(services.workspace_command(caller, id, command).await?),
        None => box_.latest.clone(),
    };
    let log = shown.as_ref().map_or_else(Vec::new, |c| {
        log_sections(c.output.lines(), "Preparing", |_, last| {
            Some(if !last || c.state == "succeeded" {
                "success".into()
            } else {
                c.state.replace('_', " ")
            })
        })
    });
    let typed = if typed.is_empty() {
        shown
            .as_ref()
            .map(|c| c.command.clone())
            .unwrap_or_default()
    } else {
        typed
    };
    Ok(DbtPage {
        chrome: Chrome::for_user(user),
        nav: super::project_nav(state, user, id, ProjectTab::Workspace)
            .await?
            .then("Workspace", Some(format!("/projects/{id}/workspace")))
            .then("dbt", None),
        project_id: id.to_owned(),
        job_id: job_id.or_else(|| shown.as_ref().map(|c| c.job_id)),
        typed_user: box_.dev_user.clone().unwrap_or_default(),
        box_,
        shown,
        log,
        typed,
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, HtmlError> {
    let page = page(
        &state,
        &user,
        &id,
        query.command.as_deref(),
        String::new(),
        None,
        None,
    )
    .await?;
    Ok(render(&page)?.into_response())
}

async fn start(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, HtmlError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    user.check_csrf(&field("csrf_token"))?;
    let command = field("command");
    let job_text = field("job_id");
    let job_id = job_text.trim().parse::<i64>().ok();
    let result = if job_id.is_none() && !job_text.trim().is_empty() {
        Err(ServiceError::InvalidField {
            field: "job_id",
            message: "Choose one of the project's CI jobs.".into(),
        })
    } else {
        state
            .services
            .start_workspace_command(&user.principal, &id, &command, job_id)
            .await
    };
    let error = match result {
        Ok(started) => {
            return Ok(flash::redirect(
                &format!("/projects/{id}/workspace/dbt?command={}", started.id),
                format!("Started `{}`: its output follows below.", started.command),
                state.services.settings.secure_cookies(),
            ));
        }
        Err(ServiceError::InvalidField { field, message }) => (Some(field), message),
        Err(ServiceError::BadInput(why) | ServiceError::Conflict(why)) => (None, why),
        Err(e) => return Err(e.into()),
    };
    let page = page(&state, &user, &id, None, command, job_id, Some(error)).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, command)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let back = format!("/projects/{id}/workspace/dbt?command={command}");
    let secure = state.services.settings.secure_cookies();
    let cancelled = state
        .services
        .cancel_workspace_command(&user.principal, &id, &command)
        .await;
    Ok(match cancelled {
        Ok(()) => flash::redirect(
            &back,
            "Cancelling: the command stops within a second.",
            secure,
        ),
        Err(ServiceError::Conflict(why)) => flash::redirect_problem(&back, why, secure),
        Err(e) => return Err(e.into()),
    })
}

/// A file of the command's target path: text shown as text, anything else downloaded.
async fn target_file(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, command, path)): Path<(String, String, String)>,
) -> Result<Response, HtmlError> {
    let content = state
        .services
        .workspace_command_file(&user.principal, &id, &command, &path)
        .await?;
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let (kind, disposition) = match std::str::from_utf8(&content) {
        Ok(_) if path.ends_with(".json") => ("application/json; charset=utf-8", "inline"),
        Ok(_) => ("text/plain; charset=utf-8", "inline"),
        Err(_) => ("application/octet-stream", "attachment"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; filename=\"{name}\""),
            ),
        ],
        content,
    )
        .into_response())
}

#[derive(Deserialize)]
struct CredentialsForm {
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Saves or removes the caller's own warehouse credentials for the project.
async fn credentials(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<CredentialsForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let services = &state.services;
    let result = match action.as_str() {
        "save" => services
            .save_dev_credentials(
                &user.principal,
                &id,
                &form.username,
                &secrecy::SecretString::from(form.password.clone()),
            )
            .await
            .map(|()| {
                format!(
                    "Saved: your commands on PostgreSQL jobs now run as warehouse user `{}`.",
                    form.username.trim()
                )
            }),
        "remove" => services
            .remove_dev_credentials(&user.principal, &id)
            .await
            .map(|()| "Removed: your commands use the CI job's warehouse user again.".to_owned()),
        _ => return Err(HtmlError::not_found()),
    };
    let error = match result {
        Ok(said) => {
            return Ok(flash::redirect(
                &format!("/projects/{id}/workspace/dbt"),
                said,
                services.settings.secure_cookies(),
            ));
        }
        Err(ServiceError::InvalidField { field, message }) => (Some(field), message),
        Err(e) => return Err(e.into()),
    };
    let mut page = page(&state, &user, &id, None, String::new(), None, Some(error)).await?;
    page.typed_user = form.username;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}
