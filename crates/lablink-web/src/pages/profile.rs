//! Profile: who you are, personal API tokens, sign out everywhere. Linked accounts live on their
//! own page (`/profile/linked-accounts`), linked from here.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::when;
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/profile", get(profile))
        .route("/profile/tokens", post(create_token))
        .route("/profile/tokens/{id}/revoke", post(revoke_token))
}

struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    expires: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    chrome: Chrome,
    email: String,
    username: String,
    role: &'static str,
    tokens: Vec<TokenRow>,
    /// A token just created: shown this once.
    new_token: Option<String>,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    new_token: Option<String>,
    error: Option<String>,
) -> Result<ProfilePage, HtmlError> {
    let tokens = state
        .services
        .list_api_tokens(&user.principal)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            created: when(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".into(), when),
            expires: t.expires_at.map_or_else(|| "never".into(), when),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    Ok(ProfilePage {
        chrome: Chrome::for_user(user),
        email: user.principal.email.clone(),
        username: user.principal.username.clone(),
        role: user.principal.role.label(),
        tokens,
        new_token,
        error,
    })
}

async fn profile(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl IntoResponse, HtmlError> {
    render(&page(&state, &user, None, None).await?)
}

#[derive(Deserialize)]
struct NewTokenForm {
    #[serde(default)]
    csrf_token: String,
    name: String,
    /// Days, or empty for a token that does not expire.
    #[serde(default)]
    expires_in_days: String,
}

async fn create_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<NewTokenForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let days = match form.expires_in_days.trim() {
        "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|_| ServiceError::BadInput(format!("`{text}` is not a number of days."))),
    };
    let created = match days {
        Ok(days) => {
            state
                .services
                .create_api_token(&user.principal, &form.name, days)
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => {
            let value = created.value.expose_secret().to_owned();
            Ok(render(&page(&state, &user, Some(value), None).await?)?.into_response())
        }
        Err(ServiceError::BadInput(msg)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&page(&state, &user, None, Some(msg)).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn revoke_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    state
        .services
        .revoke_api_token(&user.principal, &id)
        .await?;
    Ok(flash::redirect(
        "/profile",
        "Revoked the token: it no longer works.",
        state.services.settings.secure_cookies(),
    ))
}
