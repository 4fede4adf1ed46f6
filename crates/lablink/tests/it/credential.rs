//! `lablink credential` from a shell, as a developer sets it up: `login` keeps the token (0600)
//! and prints the git configuration; then real `git clone` and `git push` against the simulator
//! authenticate only through the helper — as the linked GitLab user on Enterprise, as the
//! repository's shared project access token on the Developer plan once an admin allows it.
//! Refusals reach git's user in lablink's words (IP restrictions included), and every issue is
//! in the audit log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::connected::Connected;
use crate::support::{Backend, Browser};

on_both_backends!(
    the_helper_clones_and_pushes_as_the_linked_user,
    developer_plans_push_with_the_shared_credential_once_allowed,
);

/// The developer's machine: a home directory of its own, and nothing but the helper to give git
/// credentials.
struct Laptop {
    home: tempfile::TempDir,
}

impl Laptop {
    fn new() -> Laptop {
        Laptop {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@acme.test")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@acme.test")
            .current_dir(self.home.path());
        command
    }

    /// Runs `lablink credential login <base>` with the token on standard input.
    fn login(&self, base: &str, token: &str) -> (bool, String, String) {
        let mut child = self
            .command(env!("CARGO_BIN_EXE_lablink"))
            .args(["credential", "login", base])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs each `git config` line `login` printed, as a user pastes them.
    fn configure_git(&self, printed: &str) -> usize {
        let lines: Vec<&str> = printed
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("git config"))
            .collect();
        for line in &lines {
            let ok = self
                .command("sh")
                .args(["-c", line])
                .status()
                .unwrap()
                .success();
            assert!(ok, "{line}");
        }
        lines.len()
    }

    fn git(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self
            .command("git")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        (
            status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        )
    }

    /// Clones `url`, commits a file and pushes it to `branch`.
    fn clone_commit_push(&self, url: &str, branch: &str) -> (bool, String) {
        let (ok, out) = self.git(self.home.path(), &["clone", url, "work"]);
        if !ok {
            return (false, out);
        }
        let work = self.home.path().join("work");
        std::fs::write(work.join("notes.md"), format!("from {branch}\n")).unwrap();
        assert!(self.git(&work, &["add", "notes.md"]).0);
        assert!(self.git(&work, &["commit", "-m", "A note"]).0);
        let (ok, push) = self.git(&work, &["push", "origin", &format!("HEAD:{branch}")]);
        (ok, format!("{out}{push}"))
    }
}

/// A personal API token of the browser's user.
async fn api_token(browser: &Browser, csrf: &str) -> String {
    let res = browser
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "laptop", "expires_in_days": 30})),
            Some(csrf),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["value"].as_str().unwrap().to_owned()
}

fn seed() -> tempfile::TempDir {
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("README.md"), "warehouse\n").unwrap();
    seed
}

async fn audit_details(c: &Connected, action: &str) -> Vec<String> {
    c.app
        .db
        .audit_entries(&c.user.account_id, &Default::default(), 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| {
            format!(
                "{} {} from {}",
                e.target.unwrap_or_default(),
                e.detail,
                e.client_ip.unwrap_or_default()
            )
        })
        .collect()
}

async fn the_helper_clones_and_pushes_as_the_linked_user(backend: Backend) {
    let seed = seed();
    // Requests from 127.0.0.1 may forward a client address, so the admin below can sit at an
    // office address while the laptop connects directly.
    let c = Connected::start(
        backend,
        &[("trusted_proxies", "127.0.0.1")],
        Some(seed.path()),
    )
    .await;
    let token = api_token(&c.browser, &c.csrf).await;
    let laptop = Laptop::new();

    // A wrong token is refused in lablink's words; nothing is kept.
    let (ok, _, err) = laptop.login(&c.app.base, "not-a-token");
    assert!(!ok);
    assert!(err.contains("lablink refused the token"), "{err}");
    // The right one is kept, readable by the user only, and git's configuration is printed.
    let (ok, out, err) = laptop.login(&c.app.base, &token);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Signed in to"), "{out}");
    let file = laptop.home.path().join(".config/lablink/credential.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(laptop.configure_git(&out), 2, "{out}");

    // Clone and push with nothing but the helper: GitLab sees alice, the linked account.
    let url = format!("{}/analytics/warehouse.git", c.gitlab.base);
    let (ok, out) = laptop.clone_commit_push(&url, "feature/from-laptop");
    assert!(ok, "{out}");
    assert!(
        out.contains("lablink: GitLab sees your GitLab account @alice"),
        "{out}"
    );
    let pusher = crate::support::webhooks::last_pusher(&c.app.db, &c.repository_id).await;
    assert_eq!(pusher, "alice");
    // Nothing git was handed is on disk: only the lablink token file is in the config dir.
    let (_, config) = laptop.git(laptop.home.path(), &["config", "--global", "--list"]);
    assert!(!config.contains("password"), "{config}");
    let issued = audit_details(&c, "git_credential.issued").await;
    assert!(
        issued
            .iter()
            .any(|d| d.contains("as your GitLab account @alice") && d.contains("127.0.0.1")),
        "{issued:?}"
    );

    // IP restrictions apply to the helper's endpoint: an admin at the office allows only the
    // office; the laptop (127.0.0.1) is refused, and git shows why.
    c.app
        .create_user(
            "acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let admin = Browser::from_address(&c.app.base, "198.51.100.7");
    let form = admin.get("/login").await;
    let res = admin
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "admin@acme.test"),
                ("password", crate::support::PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let csrf = admin.get("/settings/ip-restrictions").await.csrf();
    let res = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions",
            Some(json!({"name": "office", "kind": "allow", "ranges": ["198.51.100.0/24"]})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": true})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    std::fs::remove_dir_all(laptop.home.path().join("work")).unwrap();
    let (ok, out) = laptop.git(laptop.home.path(), &["clone", &url, "work"]);
    assert!(!ok);
    assert!(
        out.contains("Access denied! Please contact your admin for more details."),
        "{out}"
    );
}

async fn developer_plans_push_with_the_shared_credential_once_allowed(backend: Backend) {
    let seed = seed();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    // The account moves to the Developer plan (its repository stays connected).
    c.app
        .set_account_plan(&c.user.account_id, Plan::Developer)
        .await;
    let token = api_token(&c.browser, &c.csrf).await;
    let laptop = Laptop::new();
    let (ok, out, err) = laptop.login(&c.app.base, &token);
    assert!(ok, "{out}{err}");
    // Developer plans need the repository's path from git: three lines.
    assert_eq!(laptop.configure_git(&out), 3, "{out}");
    let url = format!("{}/analytics/warehouse.git", c.gitlab.base);

    // Not allowed yet: git shows lablink's reason and gets no credential.
    let (ok, out) = laptop.git(laptop.home.path(), &["clone", &url, "work"]);
    assert!(!ok);
    assert!(
        out.contains("your account does not let local git use it"),
        "{out}"
    );
    assert!(!audit_details(&c, "git_credential.refused").await.is_empty());

    // An admin allows it on the settings page.
    c.app
        .create_user(
            "acme",
            Plan::Developer,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let admin = c.app.login("admin@acme.test").await;
    let page = admin.get("/settings").await;
    assert!(
        page.body.contains("id=\"local-git-shared\""),
        "{}",
        page.body
    );
    let res = admin
        .post_form(
            "/settings/local-git",
            &[("csrf_token", &page.csrf()), ("shared_credential", "on")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(
        admin
            .get("/settings")
            .await
            .body
            .contains("name=\"shared_credential\" checked")
    );
    // A developer cannot change it.
    let res = c
        .browser
        .post_form(
            "/settings/local-git",
            &[("csrf_token", &c.csrf), ("shared_credential", "on")],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);

    // Now clone and push go through the project access token's bot.
    let (ok, out) = laptop.clone_commit_push(&url, "feature/shared");
    assert!(ok, "{out}");
    assert!(
        out.contains("lablink: GitLab sees the shared project access token of analytics/warehouse"),
        "{out}"
    );
    let pusher = crate::support::webhooks::last_pusher(&c.app.db, &c.repository_id).await;
    let bot = c.gitlab.project_state(c.gitlab_project).await["project_access_tokens"][0]["user_id"]
        .as_u64()
        .unwrap();
    assert!(
        pusher.starts_with(&format!("project_{}_bot", c.gitlab_project)),
        "pushed as {pusher} (bot user {bot})"
    );
    let issued = audit_details(&c, "git_credential.issued").await;
    assert!(
        issued
            .iter()
            .any(|d| d.contains("the shared project access token of analytics/warehouse")),
        "{issued:?}"
    );
    let allowed = audit_details(&c, "local_git.shared_credential_allowed").await;
    assert_eq!(allowed.len(), 1);
}
