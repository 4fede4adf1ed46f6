//! Account settings → Integrations → GitLab (admins): the account's own GitLab OAuth application.
//! Saving sends the admin to GitLab to authorize it; the callback brings them back here.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::integration::IntegrationStatus;
use lablink_service::integration::{IntegrationForm, IntegrationView};
use secrecy::SecretString;
use serde::Deserialize;

use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

const PAGE: &str = "/settings/integrations/gitlab";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show).post(save))
        .route("/settings/integrations/gitlab/authorize", post(authorize))
        .route("/settings/integrations/gitlab/remove", post(remove))
}

#[derive(Template)]
#[template(path = "integration.html")]
struct IntegrationPage {
    chrome: Chrome,
    view: IntegrationView,
    /// What the form shows: the saved values, or what the admin just typed.
    instance_url: String,
    application_id: String,
    /// The secret just typed, kept (masked) when the form comes back with an error.
    secret: String,
    ca_bundle_pem: String,
    ready: bool,
    pending: bool,
    error: Option<String>,
}

impl IntegrationPage {
    fn new(user: &CurrentUser, view: IntegrationView) -> IntegrationPage {
        // With no application of the account's own yet, the form starts from the GitLab that
        // developers link with now (the operator's), not from a default that contradicts it.
        let instance_url = match (&view.application_id, &view.operator_instance_url) {
            (None, Some(operator)) => operator.clone(),
            _ => view.instance_url.clone(),
        };
        IntegrationPage {
            chrome: Chrome::for_user(user),
            instance_url,
            application_id: view.application_id.clone().unwrap_or_default(),
            secret: String::new(),
            ca_bundle_pem: String::new(),
            ready: view.status == Some(IntegrationStatus::Ready),
            pending: view.status == Some(IntegrationStatus::PendingAuthorization),
            view,
            error: None,
        }
    }
}

async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, HtmlError> {
    let view = state
        .services
        .gitlab_integration_view(&user.principal)
        .await?;
    Ok(render(&IntegrationPage::new(&user, view))?.into_response())
}

#[derive(Deserialize)]
struct SaveForm {
    csrf_token: String,
    #[serde(default)]
    instance_url: String,
    #[serde(default)]
    application_id: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    ca_bundle_pem: String,
}

async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<SaveForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let typed = IntegrationForm {
        instance_url: form.instance_url.clone(),
        application_id: form.application_id.clone(),
        secret: SecretString::from(form.secret.clone()),
        ca_bundle_pem: form.ca_bundle_pem.clone(),
    };
    let saved = state
        .services
        .save_gitlab_integration(&user.principal, Some(&user.session.id_hash), typed)
        .await;
    match saved {
        Ok(saved) => match saved.authorize_url {
            Some(url) => Ok(Redirect::to(url.as_str()).into_response()),
            None => Ok(Redirect::to(PAGE).into_response()),
        },
        // Wrong input or plan: show the form again with what was typed (the secret masked).
        Err(e @ (ServiceError::BadInput(_) | ServiceError::Forbidden(_)))
            if user.principal.role.can_manage_account() =>
        {
            let status = if matches!(e, ServiceError::Forbidden(_)) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let view = state
                .services
                .gitlab_integration_view(&user.principal)
                .await?;
            let mut page = IntegrationPage::new(&user, view);
            page.instance_url = form.instance_url;
            page.application_id = form.application_id;
            page.secret = form.secret;
            page.ca_bundle_pem = form.ca_bundle_pem;
            page.error = Some(e.to_string());
            Ok((status, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn authorize(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let url = state
        .services
        .authorize_gitlab_integration(&user.principal, &user.session.id_hash)
        .await?;
    Ok(Redirect::to(url.as_str()))
}

async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let removed = state
        .services
        .remove_gitlab_integration(&user.principal)
        .await?;
    let mut notice = format!(
        "The GitLab application was removed. {} linked account(s) made with it were revoked at GitLab and removed; \
         their users must link again.",
        removed.links_removed
    );
    if !removed.revoke_failures.is_empty() {
        notice.push_str(&format!(
            " GitLab could not be told to revoke: {}. Revoke lablink's access in GitLab if needed.",
            removed.revoke_failures.join("; ")
        ));
    }
    Ok(flash::redirect(
        PAGE,
        notice,
        state.services.settings.secure_cookies(),
    ))
}
