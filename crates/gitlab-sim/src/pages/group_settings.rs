//! `/groups/<group>/-/settings/applications` (group Owners): the OAuth applications and the
//! form that adds one, then shows its Application ID and Secret once, as GitLab does (the
//! seed's first step).

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use super::{Viewer, table};
use crate::render::html_escape;
use crate::state::{Id, OAuthApplication, SimHandle, access};
use crate::web::{self, page, sign_in_redirect};

/// The scopes the form offers, in GitLab's order.
const SCOPES: [&str; 9] = [
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "sudo",
    "openid",
    "profile",
    "email",
];

const FIELD: &str = "doorkeeper_application";

fn form(viewer: &Viewer, action: &str, error: Option<&str>) -> String {
    let scopes: String = SCOPES
        .iter()
        .map(|s| {
            format!(
                "<label><input type=\"checkbox\" name=\"{FIELD}[scopes][]\" value=\"{s}\"> {s}</label>"
            )
        })
        .collect();
    let error = error.map_or_else(String::new, |e| {
        format!(
            "<p class=\"flash-alert\" id=\"form-error\">{}</p>",
            html_escape(e)
        )
    });
    format!(
        "<h2>Add new application</h2>{error}<form id=\"new_doorkeeper_application\" action=\"{action}\" method=\"post\">{csrf}\
         <label>Name <input type=\"text\" name=\"{FIELD}[name]\"></label>\
         <label>Redirect URI <textarea name=\"{FIELD}[redirect_uri]\" rows=\"3\" cols=\"60\"></textarea></label>\
         <label><input type=\"checkbox\" name=\"{FIELD}[confidential]\" value=\"1\" checked> Confidential</label>\
         <fieldset><legend>Scopes</legend>{scopes}</fieldset>\
         <button type=\"submit\" name=\"commit\" value=\"Save application\">Save application</button></form>",
        csrf = viewer.csrf_field(),
    )
}

fn created(app: &OAuthApplication, secret: &str) -> String {
    format!(
        "<p class=\"flash-notice\">The application was created successfully.</p>\
         <table id=\"application\"><tbody>\
         <tr><th>Application ID</th><td><code id=\"application-id\">{uid}</code></td></tr>\
         <tr><th>Secret</th><td><code id=\"application-secret\">{secret}</code></td></tr>\
         <tr><th>Callback URL</th><td id=\"callback-url\">{callback}</td></tr>\
         <tr><th>Confidential</th><td>{confidential}</td></tr>\
         <tr><th>Scopes</th><td id=\"application-scopes\">{scopes}</td></tr>\
         </tbody></table>\
         <p>Make sure you save the secret - you won't be able to access it again.</p>",
        uid = html_escape(&app.uid),
        secret = html_escape(secret),
        callback = html_escape(&app.redirect_uris.join("\n")),
        confidential = if app.confidential { "Yes" } else { "No" },
        scopes = html_escape(&app.scopes.join(" ")),
    )
}

/// `GET`/`POST /groups/<group>/-/settings/applications`.
pub async fn serve(
    State(sim): State<SimHandle>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/groups/");
    let Some(group_path) = path.strip_suffix("/-/settings/applications") else {
        return web::not_found();
    };
    let viewer = Viewer::of(&sim, &headers);
    let Some(user_id) = viewer.user_id else {
        return sign_in_redirect(&uri);
    };
    let group: Option<(Id, String)> = {
        let state = sim.lock();
        state
            .find_group(group_path)
            .filter(|g| state.group_access(user_id, g.id) >= access::OWNER)
            .map(|g| (g.id, g.name.clone()))
    };
    let Some((_, group_name)) = group else {
        return web::not_found();
    };
    let action = uri.path().to_owned();
    let mut notice = String::new();
    let mut error = None;
    if method == Method::POST {
        let Some(params) = viewer.form(&body) else {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The change you requested was rejected",
                "<p>Invalid authenticity token.</p>",
            );
        };
        let name = params.str(&format!("{FIELD}[name]")).unwrap_or_default();
        let redirect: Vec<String> = params
            .str(&format!("{FIELD}[redirect_uri]"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        let scopes = params
            .list(&format!("{FIELD}[scopes]"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let confidential = params
            .bool(&format!("{FIELD}[confidential]"))
            .ok()
            .flatten()
            .unwrap_or(false);
        if name.trim().is_empty() {
            error = Some("Name can't be blank".to_owned());
        } else {
            match sim
                .lock()
                .create_oauth_application(&name, redirect, scopes, confidential, false)
            {
                Ok((app, secret)) => notice = created(&app, &secret),
                Err(e) => error = Some(format!("Redirect URI {e}")),
            }
        }
    }
    let rows: Vec<Vec<String>> = sim
        .lock()
        .oauth_applications
        .values()
        .map(|a| {
            vec![
                html_escape(&a.name),
                html_escape(&a.redirect_uris.join(" ")),
                html_escape(&a.scopes.join(" ")),
                (if a.confidential { "Yes" } else { "No" }).to_owned(),
            ]
        })
        .collect();
    page(
        StatusCode::OK,
        "Group applications",
        &format!(
            "<p>Group <strong>{}</strong></p>{notice}{}<h2>Applications</h2>{}",
            html_escape(&group_name),
            form(&viewer, &action, error.as_deref()),
            table(
                "applications",
                &["Name", "Callback URL", "Scopes", "Confidential"],
                &rows
            )
        ),
    )
}
