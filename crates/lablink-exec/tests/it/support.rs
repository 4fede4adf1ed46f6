//! Test fixtures: a Git smart HTTP server (real `git http-backend` behind Basic auth), helpers to
//! build repositories with plain git, and process-table inspection.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::AsyncWriteExt;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub authorized: bool,
    pub had_credentials: bool,
}

#[derive(Clone)]
struct ServerState {
    root: PathBuf,
    /// `user:token` pairs that may fetch and push.
    accounts: Arc<Vec<(String, String)>>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

/// Serves the bare repositories under `root` at `http://127.0.0.1:<port>/<name>.git`.
pub struct GitServer {
    pub base_url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl GitServer {
    pub async fn start(root: &Path, accounts: &[(&str, &str)]) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState {
            root: root.to_owned(),
            accounts: Arc::new(
                accounts
                    .iter()
                    .map(|(u, t)| (u.to_string(), t.to_string()))
                    .collect(),
            ),
            seen: Arc::clone(&seen),
        };
        let app = axum::Router::new()
            .fallback(serve)
            .layer(DefaultBodyLimit::disable())
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base_url: format!("http://{addr}"),
            seen,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.base_url)
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn basic_user(headers: &HeaderMap, accounts: &[(String, String)]) -> (bool, Option<String>) {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return (false, None);
    };
    let decoded = value
        .strip_prefix("Basic ")
        .and_then(|b| BASE64.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let user = decoded.and_then(|pair| {
        let (user, token) = pair.split_once(':')?;
        accounts
            .iter()
            .any(|(u, t)| u == user && t == token)
            .then(|| user.to_owned())
    });
    (true, user)
}

async fn serve(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (had_credentials, user) = basic_user(&headers, &state.accounts);
    state.seen.lock().unwrap().push(SeenRequest {
        authorized: user.is_some(),
        had_credentials,
    });
    let Some(user) = user else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"test\""),
        );
        return response;
    };
    let header_env = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header_env("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header_env("content-encoding"))
        .env("GIT_PROTOCOL", header_env("git-protocol"))
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    cgi_response(&output.stdout)
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, at + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, at + 2))
        })
        .unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..split.0]);
    let mut response = Response::new(axum::body::Body::from(raw[split.1..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or("500");
            *response.status_mut() = StatusCode::from_bytes(code.as_bytes()).unwrap();
        } else {
            response.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
    }
    response
}

pub use lablink_testkit::git;

/// Creates the bare repository `<root>/<name>.git` with one commit of `files` files on `main`,
/// made through a scratch clone at `<root>/<name>.seed`; returns the scratch clone's path.
pub fn seed_repo(root: &Path, name: &str, files: usize) -> PathBuf {
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "init",
            "--bare",
            "--quiet",
            "-b",
            "main",
            bare.to_str().unwrap(),
        ],
    );
    let work = root.join(format!("{name}.seed"));
    git(
        root,
        &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
    );
    for i in 0..files {
        std::fs::write(work.join(format!("file{i}.txt")), format!("content {i}\n")).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "initial"]);
    git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    work
}

/// Commits a change to `file0.txt` in the scratch clone and pushes it; returns the new SHA.
pub fn push_change(root: &Path, name: &str, text: &str) -> String {
    let work = root.join(format!("{name}.seed"));
    std::fs::write(work.join("file0.txt"), text).unwrap();
    git(&work, &["commit", "--quiet", "-am", text]);
    let bare = root.join(format!("{name}.git"));
    git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    git(&work, &["rev-parse", "HEAD"])
}

/// Ids of live (not zombie) processes in group `pgid`, read from `/proc`.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces) are: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

/// Waits (bounded) until group `pgid` has no live member; SIGKILL delivery is asynchronous.
pub async fn assert_group_gone(pgid: i32) {
    for _ in 0..200 {
        if live_group_members(pgid).is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "processes of group {pgid} still alive: {:?}",
        live_group_members(pgid)
    );
}
