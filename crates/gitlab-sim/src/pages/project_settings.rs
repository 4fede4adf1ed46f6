//! Project settings pages (Maintainers): Webhooks with their recent events and "Test",
//! Access tokens, Repository (deploy tokens, deploy keys, protected branches).

use axum::response::Response;

use super::{ProjectRequest, table};
use crate::render::{self, html_escape};
use crate::state::{Grantee, Id, State, access, protection};
use crate::web;
use crate::webhooks::api::send_test;
use crate::webhooks::{Delivery, alert_status};

fn yes_no(on: bool) -> &'static str {
    if on { "Yes" } else { "No" }
}

/// `/<project>/-/hooks`, with an optional flash message (after "Test").
fn webhooks_page(request: &ProjectRequest<'_>, flash: Option<&str>) -> Response {
    let state = request.sim.lock();
    let now = state.now();
    let base = format!("/{}", request.full_path);
    let mut body = flash.map_or_else(String::new, |f| {
        format!(
            "<p class=\"flash-notice\" id=\"flash\">{}</p>",
            html_escape(f)
        )
    });
    let hooks: Vec<_> = state.hooks_of(request.project.id).collect();
    if hooks.is_empty() {
        body.push_str("<p id=\"no-webhooks\">No webhooks enabled.</p>");
    }
    for hook in hooks {
        let events: Vec<&str> = crate::state::HOOK_EVENT_FLAGS
            .iter()
            .copied()
            .filter(|f| hook.wants(f))
            .collect();
        let rows: Vec<Vec<String>> = hook
            .deliveries
            .iter()
            .rev()
            .take(20)
            .map(|d| {
                vec![
                    html_escape(&d.response_status),
                    html_escape(&d.trigger),
                    html_escape(&d.url),
                    format!("{:.2} sec", d.execution_duration),
                    render::time(d.created_at),
                ]
            })
            .collect();
        body.push_str(&format!(
            "<section class=\"webhook\" id=\"hook-{id}\"><h2>{url}</h2>\
             <p>{events} · SSL verification: {ssl} · Status: {status}</p>\
             <form id=\"test-hook-{id}\" action=\"{base}/-/hooks/{id}/test\" method=\"post\">{csrf}\
             <input type=\"hidden\" name=\"trigger\" value=\"push_events\">\
             <button type=\"submit\">Test</button></form>\
             <h3>Recent events</h3>{table}</section>",
            id = hook.id,
            url = html_escape(&hook.url),
            events = html_escape(&events.join(", ")),
            ssl = if hook.enable_ssl_verification {
                "enabled"
            } else {
                "disabled"
            },
            status = alert_status(hook, now),
            csrf = request.viewer.csrf_field(),
            table = table(
                &format!("hook-events-{}", hook.id),
                &["Status", "Trigger", "URL", "Elapsed time", "Request time"],
                &rows
            ),
        ));
    }
    drop(state);
    request.page("Webhooks", &body)
}

pub fn webhooks(request: &ProjectRequest<'_>) -> Response {
    if !request.is_maintainer() {
        return web::not_found();
    }
    webhooks_page(request, None)
}

/// "Test" → a push event sample; the page says what the receiver answered, as GitLab's flash.
pub async fn test_webhook(request: &ProjectRequest<'_>, hook_id: &str) -> Response {
    if !request.is_maintainer() {
        return web::not_found();
    }
    let Some(form) = request.viewer.form(&request.body) else {
        return web::not_found();
    };
    let (Some(user_id), Ok(hook_id)) = (request.viewer.user_id, hook_id.parse::<Id>()) else {
        return web::not_found();
    };
    let hook = request
        .sim
        .lock()
        .hooks
        .get(&hook_id)
        .filter(|h| h.project_id == request.project.id)
        .cloned();
    let Some(hook) = hook else {
        return web::not_found();
    };
    let trigger = form.str("trigger").unwrap_or_else(|| "push_events".into());
    let flash = match send_test(request.sim, &hook, &trigger, user_id).await {
        Ok(Delivery::Answered(code)) => format!("Hook executed successfully: HTTP {code}"),
        Ok(_) => "Hook execution failed: internal error".to_owned(),
        Err(reason) => reason,
    };
    webhooks_page(request, Some(&flash))
}

/// `/<project>/-/settings/access_tokens`: the project's active and inactive tokens.
pub fn access_tokens(request: &ProjectRequest<'_>) -> Response {
    if !request.is_maintainer() {
        return web::not_found();
    }
    let state = request.sim.lock();
    let today = state.now().date_naive();
    let rows: Vec<Vec<String>> = state
        .project_access_tokens
        .values()
        .filter(|t| t.project_id == request.project.id)
        .map(|t| {
            let active = !t.revoked && t.expires_at.is_none_or(|d| d > today);
            vec![
                html_escape(&t.name),
                html_escape(&t.scopes.join(", ")),
                role_name(t.access_level).to_owned(),
                render::time(t.created_at),
                t.last_used_at.map_or_else(|| "Never".into(), render::time),
                t.expires_at
                    .map_or_else(|| "Never".into(), |d| d.to_string()),
                (if active { "Active" } else { "Inactive" }).to_owned(),
            ]
        })
        .collect();
    drop(state);
    request.page(
        "Project access tokens",
        &table(
            "access-tokens",
            &[
                "Token name",
                "Scopes",
                "Role",
                "Created",
                "Last used",
                "Expires",
                "State",
            ],
            &rows,
        ),
    )
}

fn role_name(level: u8) -> &'static str {
    match level {
        access::GUEST => "Guest",
        access::PLANNER => "Planner",
        access::REPORTER => "Reporter",
        access::DEVELOPER => "Developer",
        access::MAINTAINER => "Maintainer",
        access::OWNER => "Owner",
        _ => "No access",
    }
}

fn grantee_name(state: &State, grantee: Grantee) -> String {
    match grantee {
        Grantee::Role(protection::NO_ACCESS) => "No one".into(),
        Grantee::Role(access::DEVELOPER) => "Developers + Maintainers".into(),
        Grantee::Role(access::MAINTAINER) => "Maintainers".into(),
        Grantee::Role(_) => "Admins".into(),
        Grantee::User(id) => state
            .users
            .get(&id)
            .map_or_else(String::new, |u| format!("@{}", u.username)),
        Grantee::DeployKey(id) => state
            .deploy_keys
            .get(&id)
            .map_or_else(String::new, |k| format!("Deploy key: {}", k.title)),
    }
}

/// `/<project>/-/settings/repository`: deploy tokens, deploy keys, protected branches.
pub fn repository(request: &ProjectRequest<'_>) -> Response {
    if !request.is_maintainer() {
        return web::not_found();
    }
    let state = request.sim.lock();
    let now = state.now();
    let project_id = request.project.id;
    let tokens: Vec<Vec<String>> = state
        .deploy_tokens
        .values()
        .filter(|t| t.project_id == project_id && !t.deleted)
        .map(|t| {
            vec![
                html_escape(&t.name),
                html_escape(&t.username),
                html_escape(&t.scopes.join(", ")),
                t.expires_at.map_or_else(|| "Never".into(), render::time),
                (if t.revoked || t.expires_at.is_some_and(|e| e <= now) {
                    "Revoked or expired"
                } else {
                    "Active"
                })
                .to_owned(),
            ]
        })
        .collect();
    let keys: Vec<Vec<String>> = state
        .deploy_key_links
        .iter()
        .filter(|l| l.project_id == project_id)
        .filter_map(|l| state.deploy_keys.get(&l.key_id).map(|k| (k, l.can_push)))
        .map(|(k, can_push)| {
            vec![
                html_escape(&k.title),
                html_escape(&k.fingerprint_sha256),
                yes_no(can_push).to_owned(),
                render::time(k.created_at),
            ]
        })
        .collect();
    let protections: Vec<Vec<String>> = state
        .protected_branches_of(project_id)
        .map(|p| {
            let names = |grants: &[crate::state::AccessGrant]| {
                grants
                    .iter()
                    .map(|g| html_escape(&grantee_name(&state, g.grantee)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                html_escape(&p.name),
                names(&p.merge_access_levels),
                names(&p.push_access_levels),
                yes_no(p.allow_force_push).to_owned(),
            ]
        })
        .collect();
    drop(state);
    let body = format!(
        "<h2>Deploy tokens</h2>{}<h2>Deploy keys</h2>{}<h2>Protected branches</h2>{}",
        table(
            "deploy-tokens",
            &["Name", "Username", "Scopes", "Expires", "State"],
            &tokens
        ),
        table(
            "deploy-keys",
            &["Title", "Fingerprint (SHA256)", "Write access", "Created"],
            &keys
        ),
        table(
            "protected-branches",
            &[
                "Branch",
                "Allowed to merge",
                "Allowed to push and merge",
                "Allowed to force push"
            ],
            &protections
        ),
    );
    request.page("Repository settings", &body)
}
