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
pub(crate) mod flash;
mod hooks_intake;
mod json;
mod layout;
mod middleware;
pub mod pages;
mod render;
mod request_id;
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

/// Which of lablink's faces a replica serves (its `web` and `intake` roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faces {
    /// Pages, the JSON API and the assets.
    pub web: bool,
    /// GitLab's webhook deliveries.
    pub intake: bool,
}

/// The HTTP application for `faces`: health checks always, pages, API and webhook intake as
/// asked, and the protective layers. A path of a face this replica does not serve is not found
/// here: the reverse proxy sends it to a replica that does.
pub fn router(state: AppState, faces: Faces) -> Router {
    let mut routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(pages::health::readyz));
    if faces.web {
        routes = routes
            .route(
                "/assets/lablink.css",
                get(|| async {
                    asset(
                        "text/css; charset=utf-8",
                        include_str!("../assets/lablink.css"),
                    )
                }),
            )
            .route(
                "/assets/lablink.js",
                get(|| async { asset(JAVASCRIPT, include_str!("../assets/lablink.js")) }),
            )
            .route(
                "/assets/icon.svg",
                get(|| async { asset("image/svg+xml", include_str!("../assets/icon.svg")) }),
            )
            .route(
                "/assets/workspace.js",
                get(|| async { asset(JAVASCRIPT, include_str!("../assets/workspace.js")) }),
            )
            .merge(pages::routes())
            .merge(api::routes());
    }
    if faces.intake {
        routes = routes.merge(hooks_intake::routes());
    }
    let routes = routes
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::keep_navigation,
        ))
        .layer(axum::middleware::from_fn(flash::clear_after_showing));
    middleware::apply(routes, &state).with_state(state)
}

/// A file of `assets/`, compiled in: the stylesheet, the pages' small script (progress on
/// buttons, copy buttons, live run pages) and the workspace's editor (CodeMirror, built by
/// `web/editor/build.sh`).
fn asset(content_type: &'static str, body: &'static str) -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
