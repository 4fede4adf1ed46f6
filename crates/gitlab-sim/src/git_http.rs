//! Git over smart HTTP at `/<namespace>/<project>.git/{info/refs, git-upload-pack,
//! git-receive-pack}`, served by real `git http-backend` (CGI) on the project's bare repository,
//! with GitLab's authentication and authorization (gitlab-api.md §2, §2.1):
//!
//! - OAuth access tokens with any user name; personal and project access tokens with any
//!   non-blank user name; deploy tokens only with their own user name and only for fetching.
//! - No credentials on a non-public project: 401 with `WWW-Authenticate: Basic realm="GitLab"`.
//! - Pushing needs a write scope and Developer access; protected branches need Maintainer and
//!   refuse force pushes and deletion (GitLab's default protection); the
//!   optional push rule "Reject unverified users" refuses commits whose committer email is not
//!   the pusher's. The last two are checked by a pre-receive hook, so git shows GitLab's
//!   `GitLab: ...` messages exactly as with the real server.
//! - A successful push fires Push / Tag Push Hooks and updates merge requests
//!   ([`SimHandle::after_push`]).

use std::path::{Path, PathBuf};
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
use crate::changes::RefUpdate;
use crate::state::{Id, Project, SecretRef, SimHandle, State as SimState, Visibility, access};

const UNAUTHORIZED_BODY: &str = "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";
const NOT_FOUND_BODY: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
const DOWNLOAD_DENIED: &str = "You are not allowed to download code from this project.";
const UPLOAD_DENIED: &str = "You are not allowed to upload code.";
const PUSH_DENIED: &str = "You are not allowed to push code to this project.";

/// Checks GitLab runs before refs move, reading its facts from the environment the simulator
/// sets for `git http-backend` (which hands it down to `receive-pack` and its hooks).
const PRE_RECEIVE: &str = r#"#!/bin/sh
# gitlab-sim: protected branches (Maintainers push; nobody force-pushes or deletes) and the
# "Reject unverified users" push rule.
zero=0000000000000000000000000000000000000000
while read -r old new ref; do
  case "$ref" in
    refs/heads/*) branch=${ref#refs/heads/} ;;
    *) continue ;;
  esac
  for protected in $SIM_PROTECTED_BRANCHES; do
    [ "$protected" = "$branch" ] || continue
    if [ "$SIM_MAY_PUSH_PROTECTED" != 1 ]; then
      echo "GitLab: You are not allowed to push code to protected branches on this project." >&2
      exit 1
    fi
    if [ "$new" = "$zero" ]; then
      echo "GitLab: You can only delete protected branches using the web interface." >&2
      exit 1
    fi
    if [ "$old" != "$zero" ] && ! git merge-base --is-ancestor "$old" "$new"; then
      echo "GitLab: You are not allowed to force push code to a protected branch on this project." >&2
      exit 1
    fi
  done
  if [ -n "$SIM_COMMITTER_EMAIL" ] && [ "$new" != "$zero" ]; then
    if [ "$old" = "$zero" ]; then
      emails=$(git log --format=%ce "$new" --not --branches)
    else
      emails=$(git log --format=%ce "$old..$new")
    fi
    for email in $emails; do
      if [ "$(echo "$email" | tr 'A-Z' 'a-z')" != "$SIM_COMMITTER_EMAIL" ]; then
        echo "GitLab: You cannot push commits for '$email'. You can only push commits if the committer email is one of your own verified emails." >&2
        exit 1
      fi
    done
  fi
done
exit 0
"#;

/// Records what moved, for the simulator to fire hooks once `receive-pack` is done.
const POST_RECEIVE: &str = r#"#!/bin/sh
cat >> "$SIM_PUSH_LOG"
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Fetch,
    Push,
}

/// Who is talking to the Git endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Anonymous,
    User {
        user_id: Id,
        read: bool,
        write: bool,
    },
    DeployToken {
        project_id: Id,
        read: bool,
    },
}

/// A refusal, answered as GitLab's Git endpoints answer it (plain text).
struct Denied {
    status: StatusCode,
    message: &'static str,
}

impl Denied {
    fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: UNAUTHORIZED_BODY,
        }
    }

    fn forbidden(message: &'static str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message,
        }
    }

    fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: NOT_FOUND_BODY,
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"GitLab\""),
            );
        }
        response
    }
}

/// The Git routes; merge into the top-level router (they only match `…/info/refs`,
/// `…/git-upload-pack` and `…/git-receive-pack` paths and answer 404 otherwise).
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
    let Some((login, password)) = basic_credentials(headers) else {
        return if headers.contains_key(header::AUTHORIZATION) {
            Err(Denied::unauthorized())
        } else {
            Ok(Actor::Anonymous)
        };
    };
    match state.find_secret(&password) {
        Some(SecretRef::DeployToken(id)) => {
            let now = state.now();
            let token = state
                .deploy_tokens
                .get(&id)
                .ok_or_else(Denied::unauthorized)?;
            let usable = !token.revoked
                && !token.deleted
                && token.expires_at.is_none_or(|t| t > now)
                // Deploy tokens only work with their own user name (`login != token.username`).
                && token.username == login;
            if !usable {
                return Err(Denied::unauthorized());
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
                return Err(Denied::unauthorized());
            }
            let identity =
                auth::authenticate(state, &password, true).map_err(|_| Denied::unauthorized())?;
            Ok(Actor::User {
                user_id: identity.user_id,
                read: has_scope(
                    &identity.scopes,
                    &["read_repository", "write_repository", "api"],
                ),
                write: has_scope(&identity.scopes, &["write_repository", "api"]),
            })
        }
        _ => Err(Denied::unauthorized()),
    }
}

/// Facts the pre-receive hook needs about a permitted push.
struct PushGrant {
    user_id: Id,
    may_push_protected: bool,
    /// Set when the push rule is on: the only committer email accepted.
    committer_email: Option<String>,
}

/// GitLab's access checks for `service` on `project` by `actor`.
fn authorize(
    state: &SimState,
    project: &Project,
    actor: Actor,
    service: Service,
) -> Result<Option<PushGrant>, Denied> {
    match (actor, service) {
        (Actor::Anonymous, Service::Fetch) if project.visibility == Visibility::Public => Ok(None),
        (Actor::Anonymous, _) => Err(Denied::unauthorized()),
        (Actor::DeployToken { project_id, read }, Service::Fetch) => {
            if project_id != project.id {
                Err(Denied::not_found())
            } else if read {
                Ok(None)
            } else {
                Err(Denied::forbidden(DOWNLOAD_DENIED))
            }
        }
        (Actor::DeployToken { project_id, .. }, Service::Push) => {
            if project_id != project.id {
                Err(Denied::not_found())
            } else {
                Err(Denied::forbidden(UPLOAD_DENIED))
            }
        }
        (
            Actor::User {
                user_id,
                read,
                write,
            },
            service,
        ) => {
            if !read {
                return Err(Denied::unauthorized());
            }
            if !state.can_read_project(Some(user_id), project) {
                return Err(Denied::not_found());
            }
            let level = state.project_access(user_id, project);
            let is_admin = state.users.get(&user_id).is_some_and(|u| u.is_admin);
            let may_download =
                project.visibility != Visibility::Private || level >= access::REPORTER || is_admin;
            match service {
                Service::Fetch if may_download => Ok(None),
                Service::Fetch => Err(Denied::forbidden(DOWNLOAD_DENIED)),
                Service::Push if !write => Err(Denied::forbidden(UPLOAD_DENIED)),
                Service::Push if level < access::DEVELOPER && !is_admin => {
                    Err(Denied::forbidden(PUSH_DENIED))
                }
                Service::Push => Ok(Some(PushGrant {
                    user_id,
                    may_push_protected: state.can_push_to_protected(user_id, project) || is_admin,
                    committer_email: state
                        .push_rules
                        .get(&project.id)
                        .filter(|rule| rule.reject_unverified_users)
                        .and_then(|_| state.users.get(&user_id))
                        .map(|u| u.email.to_ascii_lowercase()),
                })),
            }
        }
    }
}

/// Writes the hook scripts once into `<data dir>/git-hooks` (used as `core.hooksPath`).
async fn hooks_dir(sim: &SimHandle) -> std::io::Result<PathBuf> {
    let dir = sim.data_dir().join("git-hooks");
    for (name, script) in [("pre-receive", PRE_RECEIVE), ("post-receive", POST_RECEIVE)] {
        let path = dir.join(name);
        if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(script) {
            continue;
        }
        tokio::fs::create_dir_all(&dir).await?;
        // Written under a temporary name and renamed: a concurrent push never runs half a script.
        let temp = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&temp, script).await?;
        std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        tokio::fs::rename(&temp, &path).await?;
    }
    Ok(dir)
}

async fn serve(
    State(sim): State<SimHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((repo_path, service, suffix)) = parse_request(&method, &uri) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let checked = {
        let mut state = sim.lock();
        authenticate(&mut state, &headers).and_then(|actor| {
            let project = state.find_project(&repo_path).cloned();
            match project {
                // Anonymous callers learn nothing about what exists: they are asked to sign in.
                None if actor == Actor::Anonymous => Err(Denied::unauthorized()),
                None => Err(Denied::not_found()),
                Some(project) => {
                    authorize(&state, &project, actor, service).map(|grant| (project, grant))
                }
            }
        })
    };
    let (project, grant) = match checked {
        Ok(found) => found,
        Err(denied) => return denied.into_response(),
    };
    match run_backend(
        &sim,
        &project,
        &method,
        &uri,
        suffix,
        &headers,
        body,
        grant.as_ref(),
    )
    .await
    {
        Ok((response, updates)) => {
            if let (Some(grant), false) = (grant, updates.is_empty())
                && let Err(e) = sim.after_push(project.id, grant.user_id, &updates).await
            {
                tracing::warn!(error = %e, project = project.id, "push side effects failed");
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "git http-backend failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Runs `git http-backend` for one request; returns its response and, for pushes, the refs that
/// moved.
#[allow(clippy::too_many_arguments)]
async fn run_backend(
    sim: &SimHandle,
    project: &Project,
    method: &Method,
    uri: &Uri,
    suffix: &str,
    headers: &HeaderMap,
    body: Bytes,
    grant: Option<&PushGrant>,
) -> std::io::Result<(Response, Vec<RefUpdate>)> {
    let repo = sim.repo_path(project.id);
    let root = repo.parent().map(Path::to_path_buf).unwrap_or_default();
    let repo_name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let hooks = hooks_dir(sim).await?;
    let push_log = grant.map(|_| {
        sim.data_dir()
            .join(format!("push-{}.log", uuid::Uuid::new_v4()))
    });

    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_COUNT", "2")
        .env("GIT_CONFIG_KEY_0", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_0", &hooks)
        .env("GIT_CONFIG_KEY_1", "http.receivepack")
        .env("GIT_CONFIG_VALUE_1", "true")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", format!("/{repo_name}{suffix}"))
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let (Some(grant), Some(log)) = (grant, &push_log) {
        let protected = project.protected_branches.join(" ");
        cmd.env("REMOTE_USER", grant.user_id.to_string())
            .env("SIM_PROTECTED_BRANCHES", protected)
            .env(
                "SIM_MAY_PUSH_PROTECTED",
                if grant.may_push_protected { "1" } else { "0" },
            )
            .env(
                "SIM_COMMITTER_EMAIL",
                grant.committer_email.clone().unwrap_or_default(),
            )
            .env("SIM_PUSH_LOG", log);
    }
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // Written concurrently with reading stdout: a large pack would otherwise deadlock.
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let output = child.wait_with_output().await?;
    let updates = match &push_log {
        Some(log) => read_push_log(log).await,
        None => Vec::new(),
    };
    Ok((cgi_response(&output.stdout), updates))
}

async fn read_push_log(log: &Path) -> Vec<RefUpdate> {
    let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
    let _ = tokio::fs::remove_file(log).await;
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(RefUpdate {
                old: parts.next()?.to_owned(),
                new: parts.next()?.to_owned(),
                git_ref: parts.next()?.to_owned(),
            })
        })
        .collect()
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
