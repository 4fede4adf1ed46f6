//! Git over smart HTTP at `/<namespace>/<project>.git/{info/refs, git-upload-pack,
//! git-receive-pack}`, served by real `git http-backend` (CGI) on the project's bare repository,
//! with GitLab's authentication and authorization (gitlab-api.md §2, §2.1):
//!
//! - OAuth access tokens with any user name; personal and project access tokens with any
//!   non-blank user name; deploy tokens only with their own user name and only for fetching.
//! - No credentials on a non-public project: 401 with `WWW-Authenticate: Basic realm="GitLab"`.
//! - Who may fetch and push is decided by [`crate::git_access`] (shared with Git over SSH);
//!   protected branches and push rules are checked by the pre-receive hook of
//!   [`crate::git_hooks`], so git shows GitLab's `GitLab: ...` messages as with the real server.
//! - A successful push fires Push / Tag Push Hooks and updates merge requests
//!   ([`SimHandle::after_push`]).

use std::path::Path;
use std::process::Stdio;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::AsyncWriteExt;

use crate::auth;
use crate::git_access::{self, Actor, Refusal, Service};
use crate::git_hooks::{self, PreparedPush};
use crate::state::{Project, SecretRef, SimHandle, State as SimState};

const UNAUTHORIZED_BODY: &str = "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";

/// A refusal, answered as GitLab's Git HTTP endpoints answer it (plain text).
struct Denied(Refusal);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            Refusal::Unauthorized => (StatusCode::UNAUTHORIZED, UNAUTHORIZED_BODY),
            Refusal::NotFound => (StatusCode::NOT_FOUND, git_access::NOT_FOUND),
            Refusal::Forbidden(message) => (StatusCode::FORBIDDEN, message),
        };
        let mut response = (status, message).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"GitLab\""),
            );
        }
        response
    }
}

/// The Git routes; merge into the top-level router (they match `…/info/refs`,
/// `…/git-upload-pack` and `…/git-receive-pack` paths and hand everything else to the project
/// pages).
pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/{*path}", any(serve))
        .layer(DefaultBodyLimit::disable())
}

/// `(project path, service, CGI path suffix)` of a Git request.
fn parse_request(method: &Method, uri: &Uri) -> Option<(String, Service, &'static str)> {
    let path = uri.path();
    let (repo, suffix, service) = if let Some(repo) = path.strip_suffix("/info/refs") {
        let query = uri.query().unwrap_or_default();
        let service = if query.split('&').any(|p| p == "service=git-receive-pack") {
            Service::Push
        } else {
            Service::Fetch
        };
        (repo, "/info/refs", service)
    } else if let Some(repo) = path.strip_suffix("/git-upload-pack") {
        (repo, "/git-upload-pack", Service::Fetch)
    } else if let Some(repo) = path.strip_suffix("/git-receive-pack") {
        (repo, "/git-receive-pack", Service::Push)
    } else {
        return None;
    };
    let expected = if suffix == "/info/refs" {
        Method::GET
    } else {
        Method::POST
    };
    if *method != expected {
        return None;
    }
    let repo = repo.trim_start_matches('/');
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!repo.is_empty()).then(|| (repo.to_owned(), service, suffix))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn has_scope(scopes: &[String], any_of: &[&str]) -> bool {
    scopes.iter().any(|s| any_of.contains(&s.as_str()))
}

/// `Gitlab::Auth.find_for_git_client` for the credential kinds the simulator has.
fn authenticate(state: &mut SimState, headers: &HeaderMap) -> Result<Actor, Denied> {
    let unauthorized = || Denied(Refusal::Unauthorized);
    let Some((login, password)) = basic_credentials(headers) else {
        return if headers.contains_key(header::AUTHORIZATION) {
            Err(unauthorized())
        } else {
            Ok(Actor::Anonymous)
        };
    };
    match state.find_secret(&password) {
        Some(SecretRef::DeployToken(id)) => {
            let now = state.now();
            let token = state.deploy_tokens.get(&id).ok_or_else(unauthorized)?;
            let usable = !token.revoked
                && !token.deleted
                && token.expires_at.is_none_or(|t| t > now)
                // Deploy tokens only work with their own user name (`login != token.username`).
                && token.username == login;
            if !usable {
                return Err(unauthorized());
            }
            Ok(Actor::DeployToken {
                project_id: token.project_id,
                read: has_scope(&token.scopes, &["read_repository"]),
            })
        }
        Some(
            secret @ (SecretRef::PersonalAccessToken(_)
            | SecretRef::ProjectAccessToken(_)
            | SecretRef::OAuthAccess(_)),
        ) => {
            // Access tokens need a non-blank user name; OAuth ignores it.
            if !matches!(secret, SecretRef::OAuthAccess(_)) && login.trim().is_empty() {
                return Err(unauthorized());
            }
            let identity =
                auth::authenticate(state, &password, true).map_err(|_| unauthorized())?;
            Ok(Actor::User {
                user_id: identity.user_id,
                read: has_scope(
                    &identity.scopes,
                    &["read_repository", "write_repository", "api"],
                ),
                write: has_scope(&identity.scopes, &["write_repository", "api"]),
            })
        }
        _ => Err(unauthorized()),
    }
}

async fn serve(
    State(sim): State<SimHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((repo_path, service, suffix)) = parse_request(&method, &uri) else {
        // Not Git: a project's page (project paths nest, so they share this catch-all).
        return crate::pages::project_page(&sim, &method, &uri, &headers, body).await;
    };
    let checked = {
        let mut state = sim.lock();
        authenticate(&mut state, &headers).and_then(|actor| {
            let project = state.find_project(&repo_path).cloned();
            match project {
                // Anonymous callers learn nothing about what exists: they are asked to sign in.
                None if actor == Actor::Anonymous => Err(Denied(Refusal::Unauthorized)),
                None => Err(Denied(Refusal::NotFound)),
                Some(project) => git_access::authorize(&state, &project, actor, service)
                    .map(|pusher| (project, pusher))
                    .map_err(Denied),
            }
        })
    };
    let (project, pusher) = match checked {
        Ok(found) => found,
        Err(denied) => return denied.into_response(),
    };
    let request = CgiRequest {
        method: &method,
        uri: &uri,
        suffix,
        headers: &headers,
    };
    // Only the pack upload itself moves refs; its ref advertisement is a plain read.
    let push = pusher
        .filter(|_| suffix == "/git-receive-pack")
        .map(|p| (p, sim.prepare_push(project.id, p)));
    let prepared = push.as_ref().map(|(_, prepared)| prepared);
    let result = run_backend(&sim, &project, &request, body, prepared).await;
    let updates = match push {
        Some((pusher, prepared)) => Some((pusher, prepared.finish().await)),
        None => None,
    };
    match result {
        Ok(response) => {
            if let Some((pusher, updates)) = updates.filter(|(_, u)| !u.is_empty()) {
                sim.after_git_push(project.id, pusher, &updates).await;
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "git http-backend failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The parts of a Git HTTP request `git http-backend` reads as CGI variables.
struct CgiRequest<'a> {
    method: &'a Method,
    uri: &'a Uri,
    suffix: &'a str,
    headers: &'a HeaderMap,
}

/// Runs `git http-backend` for one request.
async fn run_backend(
    sim: &SimHandle,
    project: &Project,
    request: &CgiRequest<'_>,
    body: Bytes,
    push: Option<&PreparedPush>,
) -> std::io::Result<Response> {
    let repo = sim.repo_path(project.id);
    let root = repo.parent().map(Path::to_path_buf).unwrap_or_default();
    let repo_name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let hooks = git_hooks::hooks_dir(sim).await?;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(git_hooks::git_config_env(&hooks))
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", request.method.as_str())
        .env("PATH_INFO", format!("/{repo_name}{}", request.suffix))
        .env("QUERY_STRING", request.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(push) = push {
        cmd.envs(push.env());
    }
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // Written concurrently with reading stdout: a large pack would otherwise deadlock.
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let output = child.wait_with_output().await?;
    Ok(cgi_response(&output.stdout))
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(raw: &[u8]) -> Response {
    let (head_end, body_start) = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, at + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, at + 2))
        })
        .unwrap_or((0, 0));
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut response = Response::new(Body::from(raw[body_start..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or_default();
            *response.status_mut() = StatusCode::from_bytes(code.as_bytes())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_paths_are_recognised() {
        let get = Method::GET;
        let post = Method::POST;
        let uri: Uri = "/grp/sub/proj.git/info/refs?service=git-receive-pack"
            .parse()
            .unwrap();
        assert_eq!(
            parse_request(&get, &uri),
            Some(("grp/sub/proj".into(), Service::Push, "/info/refs"))
        );
        let uri: Uri = "/grp/proj/git-upload-pack".parse().unwrap();
        assert_eq!(
            parse_request(&post, &uri),
            Some(("grp/proj".into(), Service::Fetch, "/git-upload-pack"))
        );
        assert_eq!(parse_request(&get, &uri), None);
        let uri: Uri = "/grp/proj".parse().unwrap();
        assert_eq!(parse_request(&get, &uri), None);
    }

    #[test]
    fn cgi_output_becomes_a_response() {
        let response = cgi_response(b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()["content-type"], "text/plain");
    }
}
