//! The HTML pages a person meets in the demo, at GitLab's paths, plain and server-rendered
//! (GitLab's fields, not its look): the dashboard, a project (files at a ref, branches, a
//! commit), a merge request with its pipeline widget, project settings (Webhooks with recent
//! events and "Test", Access tokens, Repository), group settings → Applications and user
//! settings → SSH keys. Private pages send anonymous visitors to the sign-in page; pages the
//! signed-in user may not see are GitLab's 404.
//!
//! Project paths nest (`group/subgroup/project`), so project pages are reached through the
//! catch-all route of Git over HTTP ([`project_page`]); the others have their own routes.

mod group_settings;
mod merge_request;
mod project;
mod project_settings;
mod user_settings;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;

use crate::params::Params;
use crate::render::html_escape;
use crate::state::{Id, Project, SimHandle, Visibility, access};
use crate::web::{self, hidden, page, session_user, sign_in_redirect};

/// Who looks at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user_id: Option<Id>,
    /// The session cookie, for the CSRF token of forms.
    pub cookie: Option<String>,
}

impl Viewer {
    fn of(sim: &SimHandle, headers: &HeaderMap) -> Self {
        let session = session_user(&sim.lock(), headers);
        Self {
            user_id: session.as_ref().map(|(u, _)| *u),
            cookie: session.map(|(_, c)| c),
        }
    }

    /// The CSRF field every form of the page carries.
    fn csrf_field(&self) -> String {
        self.cookie.as_deref().map_or_else(String::new, |c| {
            hidden("authenticity_token", &web::authenticity_token(c))
        })
    }

    /// A submitted form: its fields, when its CSRF token is the session's.
    fn form(&self, body: &Bytes) -> Option<Params> {
        let params = Params::from_query(&String::from_utf8_lossy(body));
        let cookie = self.cookie.as_deref()?;
        web::authentic(cookie, params.str("authenticity_token").as_deref()).then_some(params)
    }
}

/// A page request inside a project.
pub struct ProjectRequest<'a> {
    pub sim: &'a SimHandle,
    pub viewer: Viewer,
    pub project: Project,
    pub full_path: String,
    /// The viewer's effective access level.
    pub level: u8,
    /// A submitted form's body (empty for `GET`).
    pub body: Bytes,
}

impl ProjectRequest<'_> {
    fn web(&self) -> String {
        format!("{}/{}", self.sim.base_url(), self.full_path)
    }

    /// Reading code: anyone who sees a public or internal project, Reporters of private ones.
    fn may_read_code(&self) -> bool {
        self.project.visibility != Visibility::Private || self.level >= access::REPORTER
    }

    fn is_maintainer(&self) -> bool {
        self.level >= access::MAINTAINER
    }

    /// The project's navigation, as GitLab's sidebar offers it.
    fn nav(&self) -> String {
        let p = format!("/{}", self.full_path);
        let mut links = vec![
            format!("<a href=\"{p}\">Repository</a>"),
            format!("<a href=\"{p}/-/branches\">Branches</a>"),
        ];
        if self.is_maintainer() {
            links.push(format!("<a href=\"{p}/-/hooks\">Webhooks</a>"));
            links.push(format!(
                "<a href=\"{p}/-/settings/access_tokens\">Access tokens</a>"
            ));
            links.push(format!(
                "<a href=\"{p}/-/settings/repository\">Repository settings</a>"
            ));
        }
        format!("<nav id=\"project-nav\">{}</nav>", links.join(" "))
    }

    fn page(&self, title: &str, body: &str) -> Response {
        page(
            StatusCode::OK,
            title,
            &format!(
                "<p class=\"breadcrumb\"><a href=\"/{path}\">{path}</a></p>\n{nav}\n{body}",
                path = html_escape(&self.full_path),
                nav = self.nav()
            ),
        )
    }
}

/// Routes of the pages outside projects.
pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/", get(dashboard))
        .route(
            "/groups/{*rest}",
            get(group_settings::serve).post(group_settings::serve),
        )
        .route(
            "/-/user_settings/ssh_keys",
            get(user_settings::show).post(user_settings::add),
        )
}

/// `/`: the signed-in user's projects.
async fn dashboard(
    State(sim): State<SimHandle>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let viewer = Viewer::of(&sim, &headers);
    let Some(user_id) = viewer.user_id else {
        return sign_in_redirect(&uri);
    };
    let state = sim.lock();
    let rows: String = state
        .projects
        .values()
        .filter(|p| state.project_access(user_id, p) >= access::GUEST)
        .map(|p| {
            let path = html_escape(&state.project_full_path(p));
            format!("<li><a href=\"/{path}\">{path}</a></li>")
        })
        .collect();
    let name = state
        .users
        .get(&user_id)
        .map(|u| u.username.clone())
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Projects",
        &format!(
            "<p>Signed in as <strong id=\"username\">@{}</strong> · <a href=\"/-/user_settings/ssh_keys\">SSH keys</a></p>\n<ul id=\"projects\">{rows}</ul>",
            html_escape(&name)
        ),
    )
}

/// A page under a project's path (`/<namespace>/<project>[/-/...]`), or GitLab's 404.
pub async fn project_page(
    sim: &SimHandle,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_matches('/');
    let (project_path, rest) = match path.split_once("/-/") {
        Some((p, rest)) => (p, rest),
        None => (path, ""),
    };
    let viewer = Viewer::of(sim, headers);
    let found = {
        let state = sim.lock();
        state
            .find_project(&percent_decode(project_path))
            .filter(|p| state.can_read_project(viewer.user_id, p))
            .map(|p| {
                let level = viewer.user_id.map_or(0, |u| state.project_access(u, p));
                (p.clone(), state.project_full_path(p), level)
            })
    };
    let Some((project, full_path, level)) = found else {
        // Like GitLab, anonymous visitors of a page they may not see are asked to sign in.
        return if viewer.user_id.is_none() {
            sign_in_redirect(uri)
        } else {
            web::not_found()
        };
    };
    let request = ProjectRequest {
        sim,
        viewer,
        project,
        full_path,
        level,
        body,
    };
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", []) => project::overview(&request).await,
        ("GET", ["tree", rest @ ..]) => project::tree(&request, rest).await,
        ("GET", ["blob", rest @ ..]) => project::blob(&request, rest).await,
        ("GET", ["branches"]) => project::branches(&request).await,
        ("GET", ["commit", sha]) => project::commit(&request, sha).await,
        ("GET", ["merge_requests", iid]) => merge_request::show(&request, iid).await,
        ("GET", ["hooks"]) => project_settings::webhooks(&request),
        ("POST", ["hooks", hook_id, "test"]) => {
            project_settings::test_webhook(&request, hook_id).await
        }
        ("GET", ["settings", "access_tokens"]) => project_settings::access_tokens(&request),
        ("GET", ["settings", "repository"]) => project_settings::repository(&request),
        _ => web::not_found(),
    }
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A table with a header row; cells are already HTML.
fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", html_escape(h)))
        .collect();
    let body: String = rows
        .iter()
        .map(|r| {
            let cells: String = r.iter().map(|c| format!("<td>{c}</td>")).collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    format!("<table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
}
