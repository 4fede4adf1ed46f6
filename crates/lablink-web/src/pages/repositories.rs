//! Project → Repository: the import list from the user's linked GitLab account (search, pages,
//! Connect or the Maintainer message, progress while it loads), the connected repository with
//! what was created in GitLab and when, and Disconnect with a confirmation step.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::projects::Project;
use lablink_service::repositories::Repository;
use lablink_service::repositories::import_list::{ImportList, ImportQuery};
use lablink_service::repositories::posting::PostingIdentity;
use serde::Deserialize;

use super::when;
use crate::flash;
use crate::layout::{ProjectNav, ProjectTab};
use crate::render::filters;
use crate::{AppState, Chrome, ClientIp, CurrentUser, HtmlError, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/repository", get(show))
        .route("/projects/{id}/repository/connect", post(connect))
        .route(
            "/projects/{id}/repository/disconnect",
            get(confirm_disconnect).post(disconnect),
        )
        .route("/projects/{id}/repository/post-as", post(post_as))
}

/// A connection with its times formatted.
struct ConnectionView {
    repo: Repository,
    connected_at: String,
    disconnected_at: String,
    posting: PostingIdentity,
}

impl ConnectionView {
    fn of(repo: Repository) -> ConnectionView {
        ConnectionView {
            connected_at: repo.connected_at.map(when).unwrap_or_default(),
            disconnected_at: repo.disconnected_at.map(when).unwrap_or_default(),
            posting: PostingIdentity::of(&repo),
            repo,
        }
    }
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    nav: ProjectNav,
    project: Project,
    connected: Option<ConnectionView>,
    history: Vec<ConnectionView>,
    /// The import list, when nothing is connected and the user may connect.
    list: Option<ImportList>,
    /// Why the import list is not shown (no GitLab link, read-only, GitLab unreachable).
    list_problem: Option<String>,
    search: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "repository_disconnect.html")]
struct DisconnectPage {
    chrome: Chrome,
    nav: ProjectNav,
    project: Project,
    connected: ConnectionView,
}

#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default)]
    search: String,
    after: Option<i64>,
    #[serde(default)]
    refresh: bool,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    params: ListParams,
    error: Option<String>,
) -> Result<RepositoryPage, HtmlError> {
    let services = &state.services;
    let nav = super::project_nav(state, user, id, ProjectTab::Repository).await?;
    let project = services.project(&user.principal, id).await?;
    let mut history: Vec<ConnectionView> = services
        .project_repository_history(&user.principal, id)
        .await?
        .into_iter()
        .map(ConnectionView::of)
        .collect();
    let live = history.iter().position(|c| c.repo.status.is_live());
    let connected = live.map(|i| history.remove(i));
    let (list, list_problem) = if connected.is_some() {
        (None, None)
    } else {
        let query = ImportQuery {
            search: params.search.clone(),
            after: params.after,
            refresh: params.refresh,
        };
        match services.gitlab_import_list(&user.principal, &query).await {
            Ok(list) => (Some(list), None),
            Err(
                e @ (ServiceError::Forbidden(_)
                | ServiceError::NotFound(_)
                | ServiceError::LinkDead(_)
                | ServiceError::Conflict(_)
                | ServiceError::GitLab(_)),
            ) => (None, Some(e.to_string())),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(RepositoryPage {
        chrome: Chrome::for_user(user),
        nav,
        project,
        connected,
        history,
        list,
        list_problem,
        search: params.search,
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, HtmlError> {
    Ok(render(&page(&state, &user, &id, params, None).await?)?.into_response())
}

#[derive(Deserialize)]
struct ConnectForm {
    csrf_token: String,
    gitlab_project_id: i64,
}

async fn connect(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    Form(form): Form<ConnectForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    match state
        .services
        .connect_repository(&user.principal, &id, form.gitlab_project_id, ip.as_deref())
        .await
    {
        Ok(repo) => Ok(flash::redirect(
            &format!("/projects/{id}"),
            format!(
                "Connected {}: lablink created its webhook and tokens in GitLab. Add a CI job to \
                 run dbt on its merge requests.",
                repo.path_with_namespace
            ),
            state.services.settings.secure_cookies(),
        )),
        // Refusals and GitLab failures are shown above the import list, naming the failed step.
        Err(
            e @ (ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)
            | ServiceError::GitLab(_)
            | ServiceError::BadInput(_)),
        ) => refused_on_page(&state, &user, &id, e).await,
        Err(e) => Err(e.into()),
    }
}

async fn confirm_disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    let project = state.services.project(&user.principal, &id).await?;
    let Some(repo) = state
        .services
        .project_repository(&user.principal, &id)
        .await?
    else {
        return Ok(Redirect::to(&format!("/projects/{id}/repository")).into_response());
    };
    let page = DisconnectPage {
        chrome: Chrome::for_user(&user),
        nav: super::project_nav(&state, &user, &id, ProjectTab::Repository)
            .await?
            .then("Repository", Some(format!("/projects/{id}/repository")))
            .then("Disconnect", None),
        project,
        connected: ConnectionView::of(repo),
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

#[derive(Deserialize)]
struct PostAsForm {
    csrf_token: String,
    /// `on` or `off`.
    post_as: String,
}

/// Turns posting statuses and notes as the user on or off; refusals are shown on the page.
async fn post_as(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    Form(form): Form<PostAsForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    match state
        .services
        .set_posting_as_me(&user.principal, &id, form.post_as == "on", ip.as_deref())
        .await
    {
        Ok(_) => Ok(flash::redirect(
            &format!("/projects/{id}/repository#posting"),
            if form.post_as == "on" {
                "Statuses and notes are now posted through your linked GitLab account."
            } else {
                "Statuses and notes are no longer posted through your GitLab account."
            },
            state.services.settings.secure_cookies(),
        )),
        Err(
            e @ (ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)
            | ServiceError::NotFound(_)
            | ServiceError::LinkDead(_)
            | ServiceError::GitLab(_)),
        ) => refused_on_page(&state, &user, &id, e).await,
        Err(e) => Err(e.into()),
    }
}

/// The repository page again, with the refusal `e` above it and its status.
async fn refused_on_page(
    state: &AppState,
    user: &CurrentUser,
    project_id: &str,
    e: ServiceError,
) -> Result<Response, HtmlError> {
    let message = e.to_string();
    let status = HtmlError::from(e).status;
    let page = page(
        state,
        user,
        project_id,
        ListParams::default(),
        Some(message),
    )
    .await?;
    Ok((status, render(&page)?).into_response())
}

async fn disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let done = state
        .services
        .disconnect_repository(&user.principal, &id, ip.as_deref())
        .await?;
    Ok(flash::redirect(
        &format!("/projects/{id}/repository"),
        format!(
            "Disconnected {}. The project, its CI jobs and its runs stay; you can connect a \
             repository again.",
            done.repository.path_with_namespace
        ),
        state.services.settings.secure_cookies(),
    ))
}
