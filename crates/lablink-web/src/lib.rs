//! All of lablink's HTTP: server-rendered pages, the JSON API under `/api/v1` with its OpenAPI
//! document, sessions and CSRF, health checks. Handlers are thin: parse, call one use case on
//! [`Services`](lablink_service::Services), render.
//!
//! # How to add a page
//!
//! 1. Write a module under `pages/` (e.g. `pages/linked_accounts.rs`) with a
//!    `pub fn routes() -> Router<AppState>` and register it in [`pages::routes`] (one line).
//! 2. Take [`CurrentUser`] as an argument: it signs the visitor in from the session cookie
//!    (anonymous visitors are sent to `/login`) and carries `principal` (user id, role, account id,
//!    plan) and the CSRF token. Check the role with `user.require(Role::can_write, "why")?` or let
//!    the use case refuse.
//! 3. Write a template in `templates/` that `{% extends "base.html" %}` and puts its content in
//!    `{% block content %}`; give its struct a `chrome: Chrome` field (`Chrome::for_user(&user)`)
//!    so the layout shows navigation. Every `<form method="post">` includes
//!    `<input type="hidden" name="csrf_token" value="{{ chrome.csrf_token }}">`, and the POST
//!    handler calls `user.check_csrf(&form.csrf_token)?` first.
//! 4. Return `Result<impl IntoResponse, HtmlError>`; a `ServiceError` converts with `?` into the
//!    error page with the right status. JSON handlers return `Result<_, ApiError>`, take
//!    [`ApiUser`] (a personal API token or the session), read bodies with [`ApiJson`], and get a
//!    `#[utoipa::path]` and one `.routes(routes!(...))` line in `api::api`, which registers the
//!    route and its OpenAPI entry together.
//!
//! Navigation targets reserved for the GitLab integration pages: `/settings/integrations/gitlab`
//! (admins) and `/profile/linked-accounts` (everyone).

pub mod api;
mod audit_query;
mod client_address;
mod csrf;
mod error;
mod extract;
mod hooks_intake;
mod json;
mod layout;
mod middleware;
pub mod pages;
mod render;
mod state;

use axum::Router;
use axum::routing::get;

pub use client_address::TrustedProxies;
pub use csrf::{PreSession, check_csrf};
pub use error::{ApiError, HtmlError};
pub use extract::{ApiUser, ClientIp, CurrentUser};
pub use json::ApiJson;
pub use layout::Chrome;
pub use render::render;
pub use state::AppState;

/// The whole HTTP application: pages, API, health checks and the protective layers.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(pages::health::readyz))
        .route("/assets/lablink.css", get(stylesheet))
        .route("/assets/workspace.js", get(workspace_script))
        .merge(pages::routes())
        .merge(hooks_intake::routes())
        .merge(api::routes())
        .fallback(pages::not_found);
    middleware::apply(routes, &state).with_state(state)
}

/// The workspace's editor (CodeMirror), built by `web/editor/build.sh` and compiled in.
async fn workspace_script() -> impl axum::response::IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../assets/workspace.js"),
    )
}

/// The one stylesheet, compiled in. Browsers revalidate it after five minutes, so a new
/// release's styles arrive without a cache-busting name.
async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../assets/lablink.css"),
    )
}
