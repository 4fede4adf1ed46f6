//! Sign-in and sign-out.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use lablink_service::ServiceError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::csrf::{pre_session_cookie, secure_cookie};
use crate::extract::SESSION_COOKIE;
use crate::{AppState, Chrome, ClientIp, CurrentUser, HtmlError, PreSession, render};

pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout_page).post(logout))
        .route("/logout/everywhere", axum::routing::post(logout_everywhere))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    error: Option<String>,
}

async fn login_page(user: Option<CurrentUser>, pre: PreSession) -> Result<Response, HtmlError> {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let page = LoginPage {
        chrome: Chrome::anonymous(pre.csrf_token.clone()),
        email: String::new(),
        error: None,
    };
    Ok((pre.jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    email: String,
    password: SecretString,
}

/// Sets the session cookie for a new session and drops the pre-session cookie.
pub(crate) fn signed_in(
    state: &AppState,
    jar: CookieJar,
    session: &lablink_service::sessions::NewSession,
) -> CookieJar {
    let secure = state.services.settings.secure_cookies();
    jar.remove(Cookie::build(pre_session_cookie(secure)).path("/"))
        .add(secure_cookie(
            SESSION_COOKIE,
            session.session_id.expose_secret().to_owned(),
            secure,
        ))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    pre: PreSession,
    Form(form): Form<LoginForm>,
) -> Result<Response, HtmlError> {
    pre.check(&form.csrf_token)?;
    match state
        .services
        .login(&form.email, &form.password, ip.as_deref())
        .await
    {
        Ok(session) => {
            let jar = signed_in(&state, pre.jar, &session);
            Ok((jar, Redirect::to("/")).into_response())
        }
        Err(e @ (ServiceError::Unauthenticated(_) | ServiceError::Throttled { .. })) => {
            let status = if matches!(e, ServiceError::Throttled { .. }) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            let page = LoginPage {
                chrome: Chrome::anonymous(pre.csrf_token.clone()),
                email: form.email,
                error: Some(e.to_string()),
            };
            Ok((status, pre.jar, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    chrome: Chrome,
}

async fn logout_page(user: CurrentUser) -> Result<impl IntoResponse, HtmlError> {
    render(&LogoutPage {
        chrome: Chrome::for_user(&user),
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

fn signed_out(jar: CookieJar) -> Response {
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Redirect::to("/login"),
    )
        .into_response()
}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    state.services.logout(&user.session).await?;
    Ok(signed_out(jar))
}

async fn logout_everywhere(
    State(state): State<AppState>,
    user: CurrentUser,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    state.services.logout_everywhere(&user.principal).await?;
    Ok(signed_out(jar))
}
