use askama::Template;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    username: String,
    account_name: String,
    plan: &'static str,
    role: &'static str,
}

async fn dashboard(user: CurrentUser) -> Result<impl IntoResponse, HtmlError> {
    let p = &user.principal;
    render(&Dashboard {
        chrome: Chrome::for_user(&user),
        username: p.username.clone(),
        account_name: p.account_name.clone(),
        plan: p.plan.label(),
        role: p.role.label(),
    })
}
