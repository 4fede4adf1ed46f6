//! What the simulator's HTML pages share (the sign-in and consent pages of `oauth`, the project,
//! merge request and settings pages of `pages`): the `_gitlab_session` cookie, CSRF tokens
//! bound to it, Rails-style redirects, and one plain layout.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::render::html_escape;
use crate::secrets;
use crate::state::{Id, State};

pub const SESSION_COOKIE: &str = "_gitlab_session";

/// The signed-in user and their session cookie value, if any.
pub fn session_user(state: &State, headers: &HeaderMap) -> Option<(Id, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| state.web_session_user(value).map(|u| (u, value.to_owned())))
}

/// CSRF token bound to the session cookie.
pub fn authenticity_token(cookie: &str) -> String {
    secrets::digest(&format!("csrf:{cookie}"))
}

/// Whether a submitted form carries the session's CSRF token.
pub fn authentic(cookie: &str, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|t| secrets::constant_time_eq(t, &authenticity_token(cookie)))
}

/// Rails redirects with 302 Found.
pub fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        html_escape(name),
        html_escape(value)
    )
}

/// `/users/sign_in?redirect_to=<this page>`.
pub fn sign_in_redirect(uri: &axum::http::Uri) -> Response {
    let back = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = format!(
        "/users/sign_in?{}",
        serde_urlencoded::to_string([("redirect_to", back)]).unwrap_or_default()
    );
    found(&target)
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#28272d}\
header{background:#292961;color:#fff;padding:8px 16px;font-weight:bold}\
header a{color:#fff;text-decoration:none}main{padding:16px 24px;max-width:1100px}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #dcdcde;padding:4px 8px;text-align:left}\
th{background:#f5f5f5}pre{background:#f5f5f5;padding:8px;overflow:auto}\
.badge{display:inline-block;padding:1px 8px;border-radius:8px;background:#ececef}\
.status-success{background:#c3e6cd}.status-failed{background:#fdd4cd}.status-running,.status-pending{background:#cbe2f9}\
form{margin:8px 0 16px}label{display:block;margin:4px 0}.flash-notice{background:#c3e6cd;padding:8px}\
.flash-alert{background:#fdd4cd;padding:8px}nav a{margin-right:12px}";

/// The layout of every page: a `<title>` like GitLab's (`<title> · GitLab`) and an `<h1>`.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t} · GitLab</title><style>{STYLE}</style></head>\n<body>\n<header><a href=\"/\">GitLab</a></header>\n<main>\n<h1>{t}</h1>\n{body}\n</main>\n</body></html>\n",
        t = html_escape(title)
    );
    (status, Html(html)).into_response()
}

/// GitLab's 404 page.
pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Page Not Found",
        "<p>Make sure the address is correct and the page hasn't moved.</p>",
    )
}
