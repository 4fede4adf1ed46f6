//! The one-time setup page: creates the account and its first admin.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use lablink_core::Plan;
use lablink_service::ServiceError;
use lablink_service::setup::SetupInput;
use secrecy::SecretString;
use serde::Deserialize;

use crate::{AppState, Chrome, HtmlError, PreSession, render};

pub fn routes() -> Router<AppState> {
    Router::new().route("/setup/{token}", get(setup_page).post(setup))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    action: String,
    plans: Vec<(&'static str, &'static str, bool)>,
    account_name: String,
    email: String,
    username: String,
    error: Option<String>,
}

impl SetupPage {
    fn new(pre: &PreSession, token: &str, form: Option<&SetupForm>, error: Option<String>) -> Self {
        let chosen = form.map_or("enterprise", |f| f.plan.as_str());
        SetupPage {
            chrome: Chrome::anonymous(pre.csrf_token.clone()),
            action: format!("/setup/{token}"),
            plans: Plan::ALL
                .iter()
                .map(|p| (p.as_str(), p.label(), p.as_str() == chosen))
                .collect(),
            account_name: form.map(|f| f.account_name.clone()).unwrap_or_default(),
            email: form.map(|f| f.email.clone()).unwrap_or_default(),
            username: form.map(|f| f.username.clone()).unwrap_or_default(),
            error,
        }
    }
}

async fn setup_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    pre: PreSession,
) -> Result<Response, HtmlError> {
    state.services.check_setup_token(&token).await?;
    let page = SetupPage::new(&pre, &token, None, None);
    Ok((pre.jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    csrf_token: String,
    account_name: String,
    plan: String,
    email: String,
    username: String,
    password: SecretString,
}

async fn setup(
    State(state): State<AppState>,
    Path(token): Path<String>,
    pre: PreSession,
    Form(form): Form<SetupForm>,
) -> Result<Response, HtmlError> {
    pre.check(&form.csrf_token)?;
    let plan = form
        .plan
        .parse::<Plan>()
        .map_err(|e| ServiceError::BadInput(e.to_string()));
    let result = match plan {
        Ok(plan) => {
            state
                .services
                .complete_setup(
                    &token,
                    SetupInput {
                        account_name: form.account_name.clone(),
                        plan,
                        email: form.email.clone(),
                        username: form.username.clone(),
                        password: form.password.clone(),
                    },
                )
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(session) => {
            let jar = super::auth::signed_in(&state, pre.jar, &session);
            Ok((jar, Redirect::to("/")).into_response())
        }
        Err(ServiceError::BadInput(msg) | ServiceError::Conflict(msg)) => {
            let page = SetupPage::new(&pre, &token, Some(&form), Some(msg));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, pre.jar, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
