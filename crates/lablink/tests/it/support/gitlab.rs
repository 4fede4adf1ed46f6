//! gitlab-sim for the GitLab integration tests: a running simulator, its control API (users,
//! OAuth applications, sign-in sessions, clock, state), GitLab's side of the OAuth dance done the
//! way a signed-in browser does it, and lablink servers configured to talk to the simulator.

use gitlab_sim::{Sim, SimConfig};
use serde_json::{Value, json};

use super::{Backend, Browser, Page, TestApp};

/// A running gitlab-sim.
pub struct GitLab {
    /// Runs as long as the test needs it; its handle changes GitLab's state directly.
    sim: Sim,
    pub base: String,
    http: reqwest::Client,
}

/// A GitLab user of the simulator.
pub struct SimUser {
    pub id: u64,
    pub username: String,
    pub password: String,
    /// A signed-in GitLab browser session (`_gitlab_session`).
    pub session: String,
}

/// An OAuth application registered in the simulator.
pub struct SimApp {
    pub client_id: String,
    pub secret: String,
}

pub use lablink_testkit::free_port;

impl GitLab {
    pub async fn start() -> GitLab {
        let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        GitLab {
            base: sim.base_url().to_owned(),
            sim,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Direct access to GitLab's state, for changes no API (REST or control) can make.
    pub fn sim(&self) -> &gitlab_sim::SimHandle {
        self.sim.handle()
    }

    /// Puts another key's material under deploy key `key_id` (an administrator replaced it), so
    /// the private key lablink holds no longer matches it.
    pub fn replace_deploy_key(&self, key_id: u64) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "other", "-f"])
            .arg(&file)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(file.with_extension("pub")).unwrap();
        let other = gitlab_sim::ssh_key::parse(&public).unwrap();
        let mut state = self.sim().lock();
        let key = state.deploy_keys.get_mut(&key_id).expect("the deploy key");
        key.key = other.normalized;
        key.fingerprint = other.fingerprint;
        key.fingerprint_sha256 = other.fingerprint_sha256;
    }

    /// A call to the simulator's control API (`/-/sim/...`).
    /// A new personal access token of GitLab user `user` with the `api` scope.
    pub async fn personal_token(&self, user: u64, name: &str) -> String {
        self.control(
            reqwest::Method::POST,
            &format!("/users/{user}/personal_access_tokens"),
            serde_json::json!({"name": name, "scopes": ["api"]}),
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let res = self
            .http
            .request(method, format!("{}/-/sim{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "sim control {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Injects a fault into the simulator's handling of `path` (`*` globs; `method` narrows it),
    /// with the fault's other fields from `effect`; returns the fault's id.
    async fn add_fault(&self, method: Option<&str>, path: &str, effect: Value) -> u64 {
        let mut fault = effect;
        fault["path"] = path.into();
        if let Some(method) = method {
            fault["method"] = method.into();
        }
        self.control(reqwest::Method::POST, "/faults", fault).await["id"]
            .as_u64()
            .expect("the fault's id")
    }

    /// Matching requests fail with `status`, at `rate` (0 to 1).
    pub async fn fail(&self, method: Option<&str>, path: &str, status: u16, rate: f64) -> u64 {
        self.add_fault(
            method,
            path,
            serde_json::json!({"error_rate": rate, "error_status": status}),
        )
        .await
    }

    /// Matching requests are answered after `latency_ms`.
    pub async fn delay(&self, method: Option<&str>, path: &str, latency_ms: u64) -> u64 {
        self.add_fault(method, path, serde_json::json!({"latency_ms": latency_ms}))
            .await
    }

    /// Matching requests get their connection closed without an answer.
    pub async fn drop_connections(&self, path: &str) -> u64 {
        self.add_fault(None, path, serde_json::json!({"drop_connection": true}))
            .await
    }

    pub async fn remove_fault(&self, id: u64) {
        self.control(
            reqwest::Method::DELETE,
            &format!("/faults/{id}"),
            serde_json::json!({}),
        )
        .await;
    }

    pub async fn clear_faults(&self) {
        self.control(reqwest::Method::DELETE, "/faults", serde_json::json!({}))
            .await;
    }

    pub async fn user(&self, username: &str) -> SimUser {
        let password = format!("{username}-gitlab-password");
        let created = self
            .control(
                reqwest::Method::POST,
                "/users",
                json!({"username": username, "name": username, "email": format!("{username}@example.com"),
                       "password": password}),
            )
            .await;
        let id = created["id"].as_u64().unwrap();
        let session = self
            .control(
                reqwest::Method::POST,
                &format!("/users/{id}/sessions"),
                json!({}),
            )
            .await["cookie_value"]
            .as_str()
            .unwrap()
            .to_owned();
        SimUser {
            id,
            username: username.to_owned(),
            password,
            session,
        }
    }

    /// An application whose redirect URIs are `<base>/complete/gitlab` for each lablink base.
    pub async fn app(&self, lablink_bases: &[&str]) -> SimApp {
        let redirects: Vec<String> = lablink_bases
            .iter()
            .map(|b| format!("{b}/complete/gitlab"))
            .collect();
        let created = self
            .control(
                reqwest::Method::POST,
                "/oauth/applications",
                json!({"name": "lablink", "redirect_uri": redirects.join("\n"), "scopes": "api",
                       "confidential": true}),
            )
            .await;
        SimApp {
            client_id: created["application_id"].as_str().unwrap().to_owned(),
            secret: created["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// A group (a subgroup of `parent`); returns its id.
    pub async fn group(&self, path: &str, parent: Option<u64>) -> u64 {
        self.control(
            reqwest::Method::POST,
            "/groups",
            json!({"path": path, "parent_id": parent}),
        )
        .await["id"]
            .as_u64()
            .unwrap()
    }

    /// An empty project in `group`; returns its id.
    pub async fn project_in(&self, group: u64, path: &str) -> u64 {
        self.control(
            reqwest::Method::POST,
            "/projects",
            json!({"path": path, "namespace": {"kind": "group", "id": group}}),
        )
        .await["id"]
            .as_u64()
            .unwrap()
    }

    /// Makes the user `user_id` a member of `project` with `access_level`.
    pub async fn member(&self, project: u64, user_id: u64, access_level: u8) {
        self.control(
            reqwest::Method::POST,
            &format!("/projects/{project}/members"),
            json!({"user_id": user_id, "access_level": access_level}),
        )
        .await;
    }

    /// Everything the simulator holds about `project` (hooks, tokens, merge requests, statuses).
    pub async fn project_state(&self, project: u64) -> Value {
        self.control(
            reqwest::Method::GET,
            &format!("/projects/{project}/state"),
            json!({}),
        )
        .await
    }

    pub async fn advance_clock(&self, seconds: i64) {
        self.control(
            reqwest::Method::POST,
            "/clock/advance",
            json!({ "seconds": seconds }),
        )
        .await;
    }

    /// The OAuth token rows (access + refresh pair each) GitLab issued to `user_id`.
    pub async fn oauth_tokens_of(&self, user_id: u64) -> Vec<Value> {
        let state = self
            .http
            .get(format!("{}/-/sim/state", self.base))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        state["oauth_tokens"]
            .as_object()
            .unwrap()
            .values()
            .filter(|t| t["user_id"].as_u64() == Some(user_id))
            .cloned()
            .collect()
    }

    /// GitLab's side of an authorization, as the user's signed-in browser: opens the authorize
    /// URL and answers the consent page with `decision` ("Authorize" or "Deny"). Returns where
    /// GitLab redirects the browser (lablink's callback).
    pub async fn consent(&self, user: &SimUser, authorize_url: &str, decision: &str) -> String {
        assert!(
            authorize_url.starts_with(&self.base),
            "not a GitLab URL: {authorize_url}"
        );
        let cookie = format!("_gitlab_session={}", user.session);
        let page = self
            .http
            .get(authorize_url)
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        // GitLab skips the consent page for an application the user already authorized.
        if page.status() == 302 && decision != "Deny" {
            return location(&page);
        }
        assert_eq!(page.status(), 200, "GitLab's consent page did not show");
        let html = page.text().await.unwrap();
        let form_id = if decision == "Deny" {
            "deny"
        } else {
            "authorize"
        };
        let form = &html[html.find(&format!("<form id=\"{form_id}\"")).unwrap()..];
        let form = &form[..form.find("</form>").unwrap()];
        let fields: Vec<(String, String)> = form
            .split("<input type=\"hidden\" ")
            .skip(1)
            .map(|input| {
                let attr = |name: &str| {
                    let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                    let end = input[start..].find('"').unwrap() + start;
                    text(&input[start..end])
                };
                (attr("name"), attr("value"))
            })
            .collect();
        let answer = self
            .http
            .post(format!("{}/oauth/authorize", self.base))
            .header(reqwest::header::COOKIE, &cookie)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302, "GitLab did not redirect back");
        location(&answer)
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(reqwest::header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// A lablink server that may talk to the simulator over http on loopback, with the operator's
/// application registered in the simulator (its redirect URI needs the port in advance).
pub async fn lablink_with_operator_app(backend: Backend, gitlab: &GitLab) -> (TestApp, SimApp) {
    lablink_with_operator_app_and(backend, gitlab, &[]).await
}

/// Like [`lablink_with_operator_app`], with more settings.
pub async fn lablink_with_operator_app_and(
    backend: Backend,
    gitlab: &GitLab,
    extra: &[(&str, &str)],
) -> (TestApp, SimApp) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let app = gitlab.app(&[&base]).await;
    let listen = format!("127.0.0.1:{port}");
    let mut settings = vec![
        ("listen", listen.as_str()),
        ("public_url", &base),
        ("allow_http_loopback_gitlab", "true"),
        ("gitlab_url", &gitlab.base),
        ("gitlab_app_id", &app.client_id),
        ("gitlab_app_secret", &app.secret),
    ];
    settings.extend_from_slice(extra);
    let lablink = TestApp::spawn_with(backend, &settings).await;
    (lablink, app)
}

/// Clicks "Link" on Profile → Linked accounts; returns GitLab's authorize URL lablink redirects to.
pub async fn start_link(browser: &Browser) -> String {
    let page = browser.get("/profile/linked-accounts").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let res = browser
        .post_form(
            "/profile/linked-accounts/gitlab/link",
            &[("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(
        res.status, 303,
        "Link did not redirect to GitLab: {}",
        res.body
    );
    res.location.unwrap()
}

/// Follows GitLab's redirect back to lablink's callback.
pub async fn callback(browser: &Browser, location: &str) -> Page {
    browser.get(location).await
}

/// The whole link flow for a signed-in lablink browser and a GitLab user; returns the page
/// lablink shows at the end.
pub async fn link(browser: &Browser, gitlab: &GitLab, user: &SimUser) -> Page {
    let authorize = start_link(browser).await;
    let back = gitlab.consent(user, &authorize, "Authorize").await;
    let done = callback(browser, &back).await;
    assert_eq!(done.status, 303, "callback failed: {}", done.body);
    assert_eq!(done.location.as_deref(), Some("/profile/linked-accounts"));
    browser.get("/profile/linked-accounts").await
}

/// A page's HTML with the entities askama escapes turned back into characters, for matching
/// messages.
pub fn text(html: &str) -> String {
    // Pages show the names a message marks as `code` in <code>; read them back as the words.
    html.replace("<code>", "`")
        .replace("</code>", "`")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests from `async fn <name>(backend: Backend)`,
/// for tests that configure their own lablink servers.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod backends {
            $(
                mod $name {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        super::super::$name($crate::support::Backend::Sqlite).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        super::super::$name($crate::support::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}
