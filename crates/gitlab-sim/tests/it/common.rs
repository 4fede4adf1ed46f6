//! Shared set-up: a simulator on port 0, users/groups/projects through the Rust handle, commits
//! written into the real bare repositories with git plumbing, HTML form parsing.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use gitlab_sim::state::{Id, Namespace, NewGroup, NewProject, NewUser, Project, Visibility};
use gitlab_sim::{Sim, SimConfig, SimHandle};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestSim {
    pub sim: Sim,
    pub http: Client,
    _data_dir: tempfile::TempDir,
}

pub struct TestUser {
    pub id: Id,
    pub username: String,
    pub token: String,
}

impl TestSim {
    pub async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = SimConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.data_dir = Some(data_dir.path().to_path_buf());
        let sim = Sim::start(config).await.expect("sim starts");
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            sim,
            http,
            _data_dir: data_dir,
        }
    }

    pub fn handle(&self) -> &SimHandle {
        self.sim.handle()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v4{path}"))
    }

    pub fn user(&self, username: &str) -> TestUser {
        let (user, token) = self
            .handle()
            .create_user(NewUser {
                username: username.into(),
                password: Some(PASSWORD.into()),
                ..NewUser::default()
            })
            .expect("user");
        TestUser {
            id: user.id,
            username: user.username,
            token,
        }
    }

    pub fn group(&self, path: &str, parent_id: Option<Id>) -> Id {
        self.handle()
            .create_group(NewGroup {
                path: path.into(),
                parent_id,
                ..NewGroup::default()
            })
            .expect("group")
            .id
    }

    pub async fn project(&self, path: &str, namespace: Namespace) -> Project {
        self.project_with(path, namespace, Visibility::Private)
            .await
    }

    pub async fn project_with(
        &self,
        path: &str,
        namespace: Namespace,
        visibility: Visibility,
    ) -> Project {
        self.handle()
            .create_project(NewProject {
                path: path.into(),
                name: None,
                namespace,
                visibility: Some(visibility),
                description: None,
                default_branch: None,
                archived: false,
            })
            .await
            .expect("project")
    }

    /// A project in a fresh group where `user` has `level`.
    pub async fn project_for(&self, user: &TestUser, level: u8) -> Project {
        let group = self.group(&format!("g{}", user.id), None);
        self.handle()
            .add_group_member(group, user.id, level)
            .expect("member");
        self.project("repo", Namespace::Group(group)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.api(path))
            .header("PRIVATE-TOKEN", token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .post(self.api(path))
            .header("PRIVATE-TOKEN", token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .put(self.api(path))
            .header("PRIVATE-TOKEN", token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.http
            .delete(self.api(path))
            .header("PRIVATE-TOKEN", token)
            .send()
            .await
            .expect("request")
    }

    /// Writes a commit with one file on `branch` of the project's bare repository.
    pub fn commit(&self, project_id: Id, branch: &str, file: &str, content: &str) -> String {
        let repo = self.handle().repo_path(project_id);
        commit_to(&repo, &format!("refs/heads/{branch}"), file, content)
    }

    pub fn repo(&self, project_id: Id) -> std::path::PathBuf {
        self.handle().repo_path(project_id)
    }
}

fn git(repo: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("git output");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Commits with git plumbing (no work tree); `git_ref` may be a branch or any other ref.
pub fn commit_to(repo: &Path, git_ref: &str, file: &str, content: &str) -> String {
    let blob = git(repo, &["hash-object", "-w", "--stdin"], Some(content));
    let tree = git(
        repo,
        &["mktree"],
        Some(&format!("100644 blob {blob}\t{file}\n")),
    );
    let parent = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", git_ref])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let mut args = vec!["commit-tree", tree.as_str(), "-m", "test commit"];
    if let Some(p) = &parent {
        args.push("-p");
        args.push(p);
    }
    let commit = git(repo, &args, None);
    git(repo, &["update-ref", git_ref, &commit], None);
    commit
}

pub async fn json(response: Response) -> Value {
    response.json().await.expect("json body")
}

pub async fn expect(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A parsed `<form>`: its action, inputs (hidden and named) and submit button.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub fields: HashMap<String, String>,
}

/// Finds the form with the given `id` in an HTML page.
pub fn form(html: &str, id: &str) -> Form {
    let form_re =
        regex::Regex::new(r#"(?s)<form id="([^"]*)" action="([^"]*)" method="post">(.*?)</form>"#)
            .expect("regex");
    let input_re = regex::Regex::new(r#"<(?:input|button)[^>]*name="([^"]*)"[^>]*value="([^"]*)""#)
        .expect("regex");
    let caps = form_re
        .captures_iter(html)
        .find(|c| &c[1] == id)
        .unwrap_or_else(|| panic!("form {id} in page: {html}"));
    let fields = input_re
        .captures_iter(&caps[3])
        .map(|c| (html_unescape(&c[1]), html_unescape(&c[2])))
        .collect();
    Form {
        action: html_unescape(&caps[2]),
        fields,
    }
}

pub fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
