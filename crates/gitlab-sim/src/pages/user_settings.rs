//! `/-/user_settings/ssh_keys`: the signed-in user's SSH keys and the form that adds one.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Viewer, table};
use crate::render::{self, html_escape};
use crate::state::{NewSshKey, SimHandle};
use crate::web::{page, sign_in_redirect};

fn keys_page(
    sim: &SimHandle,
    viewer: &Viewer,
    user_id: u64,
    flash: Option<(&str, &str)>,
) -> Response {
    let rows: Vec<Vec<String>> = sim
        .lock()
        .ssh_keys
        .values()
        .filter(|k| k.user_id == user_id)
        .map(|k| {
            vec![
                html_escape(&k.title),
                html_escape(&k.fingerprint_sha256),
                html_escape(&k.usage_type),
                render::time(k.created_at),
                k.last_used_at.map_or_else(|| "Never".into(), render::time),
                k.expires_at.map_or_else(|| "Never".into(), render::time),
            ]
        })
        .collect();
    let flash = flash.map_or_else(String::new, |(class, text)| {
        format!(
            "<p class=\"{class}\" id=\"flash\">{}</p>",
            html_escape(text)
        )
    });
    page(
        StatusCode::OK,
        "SSH Keys",
        &format!(
            "{flash}<h2>Add an SSH key</h2>\
             <form id=\"new_key\" action=\"/-/user_settings/ssh_keys\" method=\"post\">{csrf}\
             <label>Key <textarea name=\"key[key]\" rows=\"4\" cols=\"70\"></textarea></label>\
             <label>Title <input type=\"text\" name=\"key[title]\"></label>\
             <button type=\"submit\" name=\"commit\" value=\"Add key\">Add key</button></form>\
             <h2>Your SSH keys</h2>{}",
            table(
                "ssh-keys",
                &[
                    "Title",
                    "Fingerprint (SHA256)",
                    "Usage type",
                    "Created",
                    "Last used",
                    "Expires"
                ],
                &rows
            ),
            csrf = viewer.csrf_field(),
        ),
    )
}

pub async fn show(
    State(sim): State<SimHandle>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let viewer = Viewer::of(&sim, &headers);
    match viewer.user_id {
        Some(user_id) => keys_page(&sim, &viewer, user_id, None),
        None => sign_in_redirect(&uri),
    }
}

pub async fn add(
    State(sim): State<SimHandle>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = Viewer::of(&sim, &headers);
    let Some(user_id) = viewer.user_id else {
        return sign_in_redirect(&uri);
    };
    let Some(form) = viewer.form(&body) else {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The change you requested was rejected",
            "<p>Invalid authenticity token.</p>",
        );
    };
    let new = NewSshKey {
        title: form.str("key[title]").unwrap_or_default(),
        key: form.str("key[key]").unwrap_or_default(),
        expires_at: None,
        usage_type: None,
    };
    let added = sim.lock().add_ssh_key(user_id, new);
    match added {
        Ok(key) => keys_page(
            &sim,
            &viewer,
            user_id,
            Some(("flash-notice", &format!("SSH key {} was added.", key.title))),
        ),
        Err(e) => keys_page(
            &sim,
            &viewer,
            user_id,
            Some(("flash-alert", &format!("Key {e}"))),
        ),
    }
}
