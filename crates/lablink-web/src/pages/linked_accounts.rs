//! Profile → Linked accounts: link a GitLab account (GitLab consent and back), see it, unlink it.
//! Also GitLab's OAuth callback `GET /complete/gitlab`, which finishes linking and the admin's
//! authorization of the integration.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lablink_service::ServiceError;
use lablink_service::integration::OAuthPurpose;
use lablink_service::links::{CallbackQuery, LinkView};
use serde::Deserialize;

use super::when;
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

const PAGE: &str = "/profile/linked-accounts";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show))
        .route("/profile/linked-accounts/gitlab/link", post(link))
        .route("/profile/linked-accounts/gitlab/unlink", post(unlink))
        .route("/complete/gitlab", get(complete))
}

#[derive(Template)]
#[template(path = "linked_accounts.html")]
struct LinkedAccountsPage {
    chrome: Chrome,
    view: LinkView,
    linked_at: String,
    error: Option<String>,
}

impl LinkedAccountsPage {
    /// A link exists (working or dead): it can be unlinked.
    fn has_link(&self) -> bool {
        !matches!(self.view, LinkView::NotLinked)
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    error: Option<String>,
) -> Result<LinkedAccountsPage, HtmlError> {
    let view = state.services.gitlab_link_view(&user.principal).await?;
    let linked_at = match &view {
        LinkView::Linked { linked_at, .. } => when(*linked_at),
        _ => String::new(),
    };
    Ok(LinkedAccountsPage {
        chrome: Chrome::for_user(user),
        view,
        linked_at,
        error,
    })
}

async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, HtmlError> {
    Ok(render(&page(&state, &user, None).await?)?.into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn link(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    match state
        .services
        .start_gitlab_link(&user.principal, &user.session.id_hash)
        .await
    {
        Ok(url) => Ok(Redirect::to(url.as_str()).into_response()),
        // Nothing to link with yet: say so on the page.
        Err(ServiceError::Conflict(message)) => Ok((
            StatusCode::CONFLICT,
            render(&page(&state, &user, Some(message)).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

async fn unlink(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let unlinked = state.services.unlink_gitlab(&user.principal).await?;
    let mut notice = match unlinked.revoke_problem {
        None => "Your GitLab account was unlinked, and lablink's access was revoked at GitLab."
            .to_owned(),
        Some(problem) => format!(
            "Your GitLab account was unlinked here, but GitLab could not be told to revoke lablink's access \
             ({problem}). Revoke it yourself in GitLab under Preferences → Applications → Authorized applications."
        ),
    };
    if unlinked.stopped_posting > 0 {
        notice.push_str(&format!(
            " Warning: {} repositor{} posted commit statuses and merge request notes as you; \
             they no longer post anything until a Maintainer turns it on again on the \
             repository's page.",
            unlinked.stopped_posting,
            if unlinked.stopped_posting == 1 {
                "y"
            } else {
                "ies"
            }
        ));
    }
    Ok(flash::redirect(
        "/profile/linked-accounts",
        notice,
        state.services.settings.secure_cookies(),
    ))
}

#[derive(Template)]
#[template(path = "linked_accounts_callback_error.html")]
struct CallbackErrorPage {
    chrome: Chrome,
    message: String,
    /// Where to start again.
    back: &'static str,
    back_label: &'static str,
}

async fn complete(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, HtmlError> {
    match state
        .services
        .complete_gitlab_authorization(&user.principal, &user.session.id_hash, &query)
        .await
    {
        Ok(done) => {
            let (to, message) = match done.purpose {
                OAuthPurpose::Link => (
                    PAGE,
                    format!(
                        "Linked as @{}: lablink now works with GitLab as you.",
                        done.username
                    ),
                ),
                OAuthPurpose::AdminAuthorize => (
                    "/settings/integrations/gitlab",
                    format!(
                        "Authorized at GitLab as @{}: developers can link their GitLab accounts now.",
                        done.username
                    ),
                ),
            };
            Ok(flash::redirect(
                to,
                message,
                state.services.settings.secure_cookies(),
            ))
        }
        Err(ServiceError::BadInput(message) | ServiceError::Conflict(message)) => {
            let admin = user.principal.role.can_manage_account();
            let page = CallbackErrorPage {
                chrome: Chrome::for_user(&user),
                message,
                back: PAGE,
                back_label: if admin {
                    "Linked accounts (or Integrations → GitLab)"
                } else {
                    "Linked accounts"
                },
            };
            Ok((StatusCode::BAD_REQUEST, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
