//! Account settings (admins): plan, users and roles, how local git authenticates, and the ways
//! to Integrations, IP restrictions and the audit log.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_core::Role;
use lablink_service::ServiceError;
use lablink_service::accounts::UserInput;
use lablink_service::workspace::{DEFAULT_CAP_MB, WorkspacesDiskUse, human_bytes};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(settings))
        .route("/settings/users", post(add_user))
        .route("/settings/users/{id}/role", post(change_role))
        .route("/settings/local-git", post(local_git))
        .route("/settings/workspaces", post(workspace_cap))
}

const ADMINS_ONLY: &str = "Account settings are for account admins. Ask an admin of your account.";

struct UserRow {
    id: String,
    email: String,
    username: String,
    role: Role,
    is_you: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    account_name: String,
    plan: &'static str,
    own_gitlab_app: bool,
    /// Whether the plan's git goes through repositories' shared credential.
    shared_credential_plan: bool,
    local_git_shared_credential: bool,
    users: Vec<UserRow>,
    roles: [Role; 3],
    error: Option<String>,
    /// The add-a-user form as typed, after a refusal (the password stays in its masked field).
    new_user: NewUser,
    workspaces: WorkspacesDiskUse,
    /// The disk limit field: as stored, or as typed before a refusal.
    cap_typed: String,
    cap_error: Option<String>,
}

impl SettingsPage {
    fn size(&self, bytes: &i64) -> String {
        human_bytes(*bytes)
    }

    fn when(&self, ms: &i64) -> String {
        super::when(*ms)
    }

    fn limit(&self) -> String {
        human_bytes(self.workspaces.cap_mb.saturating_mul(1024 * 1024))
    }
}

/// What the add-a-user form shows.
#[derive(Debug, Default)]
struct NewUser {
    email: String,
    username: String,
    password: String,
    role: String,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    error: Option<String>,
    new_user: NewUser,
) -> Result<SettingsPage, HtmlError> {
    let p = &user.principal;
    let users = state
        .services
        .list_users(p)
        .await?
        .into_iter()
        .map(|u| UserRow {
            is_you: u.id == p.user_id,
            id: u.id,
            email: u.email,
            username: u.username,
            role: u.role,
        })
        .collect();
    let workspaces = state.services.workspaces_disk_use(p).await?;
    Ok(SettingsPage {
        chrome: Chrome::for_user(user),
        account_name: p.account_name.clone(),
        plan: p.plan.label(),
        own_gitlab_app: p.plan.allows_own_gitlab_app(),
        shared_credential_plan: !p.plan.allows_own_gitlab_app(),
        local_git_shared_credential: state.services.local_git_shared_credential(p).await?,
        users,
        roles: Role::ALL,
        error,
        new_user,
        cap_typed: workspaces.cap_mb.to_string(),
        cap_error: None,
        workspaces,
    })
}

async fn settings(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl IntoResponse, HtmlError> {
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    render(&page(&state, &user, None, NewUser::default()).await?)
}

fn parse_role(text: &str) -> Result<Role, ServiceError> {
    text.parse()
        .map_err(|e: lablink_core::UnknownName| ServiceError::BadInput(e.to_string()))
}

/// Back to the settings page with what was done, or the page again with the refusal when the
/// input was the problem.
async fn or_show_error(
    state: &AppState,
    user: &CurrentUser,
    result: Result<String, ServiceError>,
    typed: NewUser,
) -> Result<Response, HtmlError> {
    match result {
        Ok(done) => Ok(flash::redirect(
            "/settings",
            done,
            state.services.settings.secure_cookies(),
        )),
        Err(ServiceError::BadInput(msg) | ServiceError::Conflict(msg)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&page(state, user, Some(msg), typed).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct AddUserForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    username: String,
    password: SecretString,
    role: String,
}

async fn add_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<AddUserForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let typed = NewUser {
        email: form.email.clone(),
        username: form.username.clone(),
        password: form.password.expose_secret().to_owned(),
        role: form.role.clone(),
    };
    let result = match parse_role(&form.role) {
        Ok(role) => state
            .services
            .add_user(
                &user.principal,
                UserInput {
                    email: form.email,
                    username: form.username,
                    password: form.password,
                    role,
                },
            )
            .await
            .map(|added| format!("Added {} as {}.", added.username, role.label())),
        Err(e) => Err(e),
    };
    or_show_error(&state, &user, result, typed).await
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    csrf_token: String,
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let result = match parse_role(&form.role) {
        Ok(role) => state
            .services
            .change_role(&user.principal, &id, role)
            .await
            .map(|changed| format!("{} is now {}.", changed.username, role.label())),
        Err(e) => Err(e),
    };
    or_show_error(&state, &user, result, NewUser::default()).await
}

#[derive(Deserialize)]
struct LocalGitForm {
    #[serde(default)]
    csrf_token: String,
    /// A checkbox: present when ticked.
    shared_credential: Option<String>,
}

async fn local_git(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<LocalGitForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let result = state
        .services
        .set_local_git_shared_credential(&user.principal, form.shared_credential.is_some())
        .await
        .map(|()| {
            if form.shared_credential.is_some() {
                "Developers may now use the repository's project access token from their \
                 computers (lablink credential)."
            } else {
                "Developers no longer get the repository's project access token on their computers."
            }
            .to_owned()
        });
    or_show_error(&state, &user, result, NewUser::default()).await
}

#[derive(Deserialize)]
struct WorkspaceCapForm {
    #[serde(default)]
    csrf_token: String,
    /// Megabytes; empty for the default.
    cap_mb: String,
}

async fn workspace_cap(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<WorkspaceCapForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let typed = form.cap_mb.trim();
    let cap = if typed.is_empty() {
        Ok(None)
    } else {
        typed.replace([',', '_', ' '], "").parse::<i64>().map(Some).map_err(|_| {
            format!(
                "“{typed}” is not a whole number of megabytes; leave it empty for the default of \
                 {DEFAULT_CAP_MB}."
            )
        })
    };
    let result = match cap {
        Ok(cap) => state
            .services
            .set_workspace_disk_cap(&user.principal, cap)
            .await
            .map_err(|e| match e {
                ServiceError::InvalidField { message, .. } => Ok(message),
                other => Err(other),
            }),
        Err(why) => Err(Ok(why)),
    };
    match result {
        Ok(()) => Ok(flash::redirect(
            "/settings#workspaces",
            "The workspaces' disk limit is saved.",
            state.services.settings.secure_cookies(),
        )),
        Err(Ok(why)) => {
            let mut page = page(&state, &user, None, NewUser::default()).await?;
            page.cap_typed = form.cap_mb.clone();
            page.cap_error = Some(why);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(Err(e)) => Err(e.into()),
    }
}
