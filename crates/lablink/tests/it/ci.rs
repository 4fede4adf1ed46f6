//! CI end to end: a repository connected to gitlab-sim (over HTTP, real git), merge requests in
//! the simulator fire real webhooks at lablink, runs execute real dbt (dbt-duckdb from the test
//! virtualenv) on the sample project, and the commit statuses land in the simulator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::gitlab::{GitLab, SimUser, free_port, link};
use crate::support::{Backend, Browser, TestApp};

/// `<name>::sqlite` and `<name>::postgres` from `async fn <name>(backend: Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::support::Backend::Postgres).await;
                }
            }
        )*
    };
}

on_both_backends!(
    merge_request_runs_report_statuses_and_close_drops_the_schema,
    drafts_wait_and_replayed_deliveries_run_once,
    statuses_survive_an_unreliable_status_api,
    intake_refuses_strangers_and_ignores_what_it_does_not_handle,
    a_project_token_revoked_in_gitlab_is_replaced_on_use,
);

/// Upper bound for waiting on background work (dbt runs take seconds); not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(180);

/// A GitLab project seeded with the sample dbt project, connected to a lablink project with
/// one CI job building into a DuckDB file.
struct World {
    gitlab: GitLab,
    app: TestApp,
    alice: SimUser,
    browser: Browser,
    gitlab_project: u64,
    project: String,
    repository_id: String,
    job_id: i64,
    duckdb: PathBuf,
    _dir: tempfile::TempDir,
}

fn sample_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jaffle_shop_duckdb")
}

impl World {
    async fn start(backend: Backend) -> World {
        let gitlab = GitLab::start().await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let oauth = gitlab.app(&[&base]).await;
        let listen = format!("127.0.0.1:{port}");
        let app = TestApp::spawn_with(
            backend,
            &[
                ("listen", &listen),
                ("public_url", &base),
                ("allow_http_loopback_gitlab", "true"),
                ("gitlab_url", &gitlab.base),
                ("gitlab_app_id", &oauth.client_id),
                ("gitlab_app_secret", &oauth.secret),
            ],
        )
        .await;
        let alice = gitlab.user("alice").await;
        let group = gitlab
            .control(Method::POST, "/groups", json!({"path": "analytics"}))
            .await["id"]
            .as_u64()
            .unwrap();
        let gitlab_project = gitlab
            .control(
                Method::POST,
                "/projects",
                json!({"path": "warehouse", "namespace": {"kind": "group", "id": group}}),
            )
            .await["id"]
            .as_u64()
            .unwrap();
        gitlab
            .control(
                Method::POST,
                &format!("/projects/{gitlab_project}/members"),
                json!({"user_id": alice.id, "access_level": 40}),
            )
            .await;
        gitlab
            .control(
                Method::POST,
                &format!("/projects/{gitlab_project}/repository/seed"),
                json!({"dir": sample_project(), "user_id": alice.id}),
            )
            .await;

        app.create_user("acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
            .await;
        let browser = app.login("dev@acme.test").await;
        link(&browser, &gitlab, &alice).await;
        let csrf = browser.get("/profile/linked-accounts").await.csrf();
        let res = browser
            .api(
                Method::POST,
                "/api/v1/projects",
                Some(json!({"name": "Analytics", "subdirectory": "", "target_branch": "main"})),
                Some(&csrf),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        let project = res.json()["id"].as_str().unwrap().to_owned();
        let res = browser
            .api(
                Method::PUT,
                &format!("/api/v1/projects/{project}/repository"),
                Some(json!({"gitlab_project_id": gitlab_project})),
                Some(&csrf),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let repository_id = res.json()["id"].as_str().unwrap().to_owned();

        let dir = tempfile::tempdir().unwrap();
        let duckdb = dir.path().join("warehouse.duckdb");
        let res = browser
            .api(
                Method::POST,
                &format!("/api/v1/projects/{project}/ci-jobs"),
                Some(json!({"name": "ci", "timeout_secs": 600,
                            "warehouse": {"type": "duckdb", "path": duckdb}})),
                Some(&csrf),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        let job = res.json();
        assert_eq!(job["status_name"], "lablink/ci");
        assert_eq!(job["run_on_draft"], false);
        World {
            job_id: job["id"].as_i64().unwrap(),
            gitlab,
            app,
            alice,
            browser,
            gitlab_project,
            project,
            repository_id,
            duckdb,
            _dir: dir,
        }
    }

    /// Commits `files` (path, content) to `branch` (created from main when new); returns the SHA.
    async fn commit(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let files: Vec<Value> = files
            .iter()
            .map(|(path, content)| json!({"path": path, "content": content}))
            .collect();
        self.gitlab
            .control(
                Method::POST,
                &format!("/projects/{}/repository/commits", self.gitlab_project),
                json!({"branch": branch, "start_branch": "main", "message": "change",
                       "user_id": self.alice.id, "files": files}),
            )
            .await["sha"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn open_mr(&self, branch: &str, title: &str) -> i64 {
        self.gitlab
            .control(
                Method::POST,
                &format!("/projects/{}/merge_requests", self.gitlab_project),
                json!({"source_branch": branch, "target_branch": "main", "title": title,
                       "author_id": self.alice.id}),
            )
            .await["iid"]
            .as_i64()
            .unwrap()
    }

    async fn mr_action(&self, iid: i64, action: &str) {
        self.gitlab
            .control(
                Method::POST,
                &format!(
                    "/projects/{}/merge_requests/{iid}/{action}",
                    self.gitlab_project
                ),
                json!({"user_id": self.alice.id}),
            )
            .await;
    }

    async fn sim_state(&self) -> Value {
        self.gitlab
            .control(
                Method::GET,
                &format!("/projects/{}/state", self.gitlab_project),
                json!({}),
            )
            .await
    }

    /// The simulator's commit status `lablink/ci` for `sha`, once it is `state`.
    async fn wait_for_status(&self, sha: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let statuses = self.sim_state().await["commit_statuses"].clone();
                last = statuses.clone();
                let found =
                    statuses.as_array().unwrap().iter().find(|s| {
                        s["sha"] == sha && s["name"] == "lablink/ci" && s["status"] == state
                    });
                if let Some(found) = found {
                    return found.clone();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match waited {
            Ok(status) => status,
            Err(_) => panic!(
                "no `{state}` status for {sha}; statuses: {last:#}\nruns: {:#}",
                self.runs().await
            ),
        }
    }

    async fn runs(&self) -> Value {
        let res = self
            .browser
            .api(
                Method::GET,
                &format!("/api/v1/projects/{}/runs", self.project),
                None,
                None,
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    }

    async fn run(&self, id: &str) -> Value {
        let res = self
            .browser
            .api(Method::GET, &format!("/api/v1/runs/{id}"), None, None)
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    }

    async fn runs_at(&self, sha: &str) -> Vec<Value> {
        self.runs()
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["sha"] == sha)
            .cloned()
            .collect()
    }

    /// Waits until the status outbox holds nothing unsent and no run is active.
    async fn wait_until_settled(&self) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let runs = self.runs().await;
                let active = runs.as_array().unwrap().iter().any(|r| {
                    matches!(r["state"].as_str(), Some("queued" | "starting" | "running"))
                });
                if !active {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("runs did not settle");
    }

    /// The schemas in the DuckDB warehouse, read with the test virtualenv's DuckDB.
    fn schemas(&self) -> Vec<String> {
        self.try_schemas().expect("the warehouse is locked")
    }

    /// Like [`World::schemas`]; `None` while a dbt process holds the warehouse's lock.
    fn try_schemas(&self) -> Option<Vec<String>> {
        let venv = std::env::var("LABLINK_DBT_VENV").map_or_else(
            |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lablink/venv"),
            PathBuf::from,
        );
        let out = std::process::Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(
                "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); \
                 print('\\n'.join(r[0] for r in c.execute(\
                 'select schema_name from information_schema.schemata').fetchall()))",
            )
            .arg(&self.duckdb)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("Could not set lock") {
            return None;
        }
        assert!(out.status.success(), "{out:?}");
        Some(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    }
}

const GOOD_MODEL: &str = "select customer_id, count(*) as orders, 2 as version \
    from {{ ref('stg_orders') }} group by customer_id\n";
const BAD_MODEL: &str = "select this is not sql from nowhere\n";
const MODEL_PATH: &str = "models/marts/customer_orders.sql";

async fn merge_request_runs_report_statuses_and_close_drops_the_schema(backend: Backend) {
    let w = World::start(backend).await;
    let sha1 = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;

    let status = w.wait_for_status(&sha1, "success").await;
    let runs = w.runs_at(&sha1).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run_id = runs[0]["id"].as_str().unwrap();
    assert_eq!(runs[0]["state"], "success");
    assert_eq!(runs[0]["mr_iid"], iid);
    assert_eq!(
        status["target_url"],
        format!("{}/runs/{run_id}", w.app.base)
    );
    assert_eq!(status["git_ref"], "feature", "{status:#}");
    let detail = w.run(run_id).await;
    assert_eq!(detail["status_name"], "lablink/ci");
    assert!(
        detail["artifacts"]
            .as_array()
            .unwrap()
            .contains(&json!("run_results.json")),
        "{detail:#}"
    );
    assert!(
        detail["steps"][0]["command"]
            .as_str()
            .unwrap()
            .starts_with("dbt build"),
        "{detail:#}"
    );
    let schema = format!("lablink_pr_{}_{iid}", w.job_id);
    assert!(w.schemas().contains(&schema), "{:?}", w.schemas());
    let log = w
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/log"),
            None,
            None,
        )
        .await;
    assert!(log.body.contains("Completed successfully"), "{}", log.body);
    let results = w
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/artifacts/run_results.json"),
            None,
            None,
        )
        .await;
    assert_eq!(results.status, 200);
    assert!(results.json()["results"].is_array());
    let page = w.browser.get(&format!("/runs/{run_id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("lablink/ci"));

    // A failing model fails the run and the status; its log says why.
    let sha2 = w.commit("feature", &[(MODEL_PATH, BAD_MODEL)]).await;
    w.wait_for_status(&sha2, "failed").await;
    let failed = &w.runs_at(&sha2).await[0];
    assert_eq!(failed["state"], "error");
    assert!(
        failed["reason"].as_str().unwrap().contains("dbt build"),
        "{failed:#}"
    );

    // Two commits in a row: the first one's run is cancelled, the second passes.
    let sha3 = w
        .commit("feature", &[(MODEL_PATH, &GOOD_MODEL.replace('2', "3"))])
        .await;
    let sha4 = w
        .commit("feature", &[(MODEL_PATH, &GOOD_MODEL.replace('2', "4"))])
        .await;
    w.wait_for_status(&sha3, "canceled").await;
    w.wait_for_status(&sha4, "success").await;
    let cancelled = &w.runs_at(&sha3).await[0];
    assert_eq!(cancelled["state"], "cancelled");
    assert!(
        cancelled["reason"].as_str().unwrap().contains(&sha4),
        "{cancelled:#}"
    );

    // Closing the merge request drops its CI schema.
    w.wait_until_settled().await;
    w.mr_action(iid, "close").await;
    tokio::time::timeout(PATIENCE, async {
        while w
            .try_schemas()
            .is_none_or(|schemas| schemas.contains(&schema))
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the CI schema was not dropped");
    // One run per commit, each with its final status.
    for sha in [&sha1, &sha2, &sha3, &sha4] {
        assert_eq!(w.runs_at(sha).await.len(), 1, "{sha}");
    }
}

async fn drafts_wait_and_replayed_deliveries_run_once(backend: Backend) {
    let w = World::start(backend).await;
    let sha = w.commit("draft-work", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("draft-work", "Draft: count orders").await;
    // The draft starts nothing; the delivery is processed with the reason.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let n = w
                .app
                .services
                .db
                .count_deliveries(&w.repository_id, "processed")
                .await
                .unwrap();
            if n >= 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the delivery was not processed");
    assert!(w.runs_at(&sha).await.is_empty());

    // Ready: the head commit runs.
    w.mr_action(iid, "ready").await;
    w.wait_for_status(&sha, "success").await;

    // Replaying every delivery GitLab made changes nothing.
    let pat = w
        .gitlab
        .control(
            Method::POST,
            &format!("/users/{}/personal_access_tokens", w.alice.id),
            json!({"name": "replay", "scopes": ["api"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = w.sim_state().await;
    let hook_id = state["hooks"][0]["id"].as_u64().unwrap();
    let http = reqwest::Client::new();
    let events: Value = http
        .get(format!(
            "{}/api/v4/projects/{}/hooks/{hook_id}/events",
            w.gitlab.base, w.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = events.as_array().unwrap();
    assert!(events.len() >= 2, "{events:#?}");
    for event in events {
        let res = http
            .post(format!(
                "{}/api/v4/projects/{}/hooks/{hook_id}/events/{}/resend",
                w.gitlab.base, w.gitlab_project, event["id"]
            ))
            .header("PRIVATE-TOKEN", &pat)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{res:?}");
    }
    let mut stored = 0;
    for status in ["received", "processed", "ignored"] {
        stored += w
            .app
            .services
            .db
            .count_deliveries(&w.repository_id, status)
            .await
            .unwrap();
    }
    assert_eq!(stored as usize, events.len());
    w.wait_until_settled().await;
    assert_eq!(w.runs_at(&sha).await.len(), 1);
}

async fn statuses_survive_an_unreliable_status_api(backend: Backend) {
    let w = World::start(backend).await;
    let path = format!("/api/v4/projects/{}/statuses/*", w.gitlab_project);
    for status in [429, 502] {
        w.gitlab
            .control(
                Method::POST,
                "/faults",
                json!({"method": "POST", "path": path, "error_rate": 0.2, "error_status": status}),
            )
            .await;
    }
    let good = w.commit("good", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let bad = w.commit("bad", &[(MODEL_PATH, BAD_MODEL)]).await;
    w.open_mr("good", "Good").await;
    w.open_mr("bad", "Bad").await;
    w.wait_for_status(&good, "success").await;
    w.wait_for_status(&bad, "failed").await;
}

async fn intake_refuses_strangers_and_ignores_what_it_does_not_handle(backend: Backend) {
    let w = World::start(backend).await;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/gitlab/{}", w.app.base, w.repository_id);
    // No token, a wrong token, an unknown repository: 401 with nothing to learn from.
    for (target, token) in [
        (url.clone(), None),
        (url.clone(), Some("wrong")),
        (
            format!("{}/webhooks/gitlab/nope", w.app.base),
            Some("wrong"),
        ),
    ] {
        let mut req = http
            .post(&target)
            .header("X-Gitlab-Event", "Merge Request Hook")
            .body("{}");
        if let Some(token) = token {
            req = req.header("X-Gitlab-Token", token);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.text().await.unwrap(), "");
    }
    // Above GitLab's 25 MiB maximum: 413.
    let res = http
        .post(&url)
        .header("X-Gitlab-Event", "Push Hook")
        .body(vec![b' '; 25 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // GitLab's own test delivery of an event lablink does not act on gets a 2xx, recorded as
    // ignored.
    let pat = w
        .gitlab
        .control(
            Method::POST,
            &format!("/users/{}/personal_access_tokens", w.alice.id),
            json!({"name": "test", "scopes": ["api"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook_id = w.sim_state().await["hooks"][0]["id"].as_u64().unwrap();
    let res = http
        .post(format!(
            "{}/api/v4/projects/{}/hooks/{hook_id}/test/tag_push_events",
            w.gitlab.base, w.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let ignored = w
        .app
        .services
        .db
        .count_deliveries(&w.repository_id, "ignored")
        .await
        .unwrap();
    assert_eq!(ignored, 1);
}

/// Someone revokes lablink's project access token in GitLab. The next commit status is refused
/// (401); lablink notices on use, re-creates the token through the connecting Maintainer's link,
/// and the status still arrives, posted with the new token.
async fn a_project_token_revoked_in_gitlab_is_replaced_on_use(backend: Backend) {
    let w = World::start(backend).await;
    let lablink_token = |state: &Value| -> Vec<(u64, bool)> {
        state["project_access_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("lablink token for GitLab project:"))
            })
            .map(|t| (t["id"].as_u64().unwrap(), t["revoked"].as_bool().unwrap()))
            .collect()
    };
    let before = lablink_token(&w.sim_state().await);
    assert_eq!(before.len(), 1, "one token after connect: {before:?}");
    let (old_id, _) = before[0];
    let pat = w
        .gitlab
        .control(
            Method::POST,
            &format!("/users/{}/personal_access_tokens", w.alice.id),
            json!({"name": "maintainer", "scopes": ["api"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = reqwest::Client::new()
        .delete(format!(
            "{}/api/v4/projects/{}/access_tokens/{old_id}",
            w.gitlab.base, w.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("feature", "After the token was revoked").await;
    let status = w.wait_for_status(&sha, "success").await;
    assert_eq!(status["git_ref"], "feature");

    let after = lablink_token(&w.sim_state().await);
    let active: Vec<_> = after.iter().filter(|(_, revoked)| !revoked).collect();
    assert_eq!(
        active.len(),
        1,
        "exactly one active lablink token: {after:?}"
    );
    assert_ne!(active[0].0, old_id, "the revoked token was replaced");
}
