//! CI end to end: a repository connected to gitlab-sim (over HTTP, real git), merge requests in
//! the simulator fire real webhooks at lablink, runs execute real dbt (dbt-duckdb or
//! dbt-postgres from the test virtualenv) on the sample project, and the commit statuses (and,
//! when asked, a note on the merge request) land in the simulator.

use lablink_store::deliveries::DeliveryStatus;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lablink_service::ci::worker::MAX_RUN_ATTEMPTS;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::PgPool;

use crate::secrets_at_rest::{contains, database_bytes};
use crate::support::connected::{Connected, Linked};
use crate::support::gitlab::{GitLab, SimUser};
use crate::support::{Backend, Browser, TestApp, TestDatabase};
use lablink_core::Role;

crate::on_both_backends!(
    merge_request_runs_report_statuses_and_close_drops_the_schema,
    drafts_wait_and_replayed_deliveries_run_once,
    statuses_survive_an_unreliable_status_api,
    intake_refuses_strangers_and_ignores_what_it_does_not_handle,
    a_project_token_revoked_in_gitlab_is_replaced_on_use,
    finished_runs_are_summarised_on_the_merge_request_when_asked,
    a_postgres_warehouse_gets_the_schema_and_loses_it_on_close,
    runs_of_vanished_workers_are_taken_up_again_then_given_up,
    the_mr_note_survives_an_unreliable_notes_api,
    merge_requests_from_forks_wait_for_a_maintainers_approval,
);

/// Upper bound for waiting on background work (dbt runs take seconds); not a timing assertion.
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// A GitLab project seeded with the sample dbt project, connected to a lablink project with
/// one CI job `ci`.
pub(crate) struct World {
    pub(crate) gitlab: GitLab,
    pub(crate) app: TestApp,
    pub(crate) alice: SimUser,
    pub(crate) browser: Browser,
    pub(crate) csrf: String,
    pub(crate) account: String,
    pub(crate) gitlab_project: u64,
    pub(crate) project: String,
    pub(crate) repository_id: String,
    pub(crate) job_id: i64,
}

pub(crate) fn sample_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jaffle_shop_duckdb")
}

/// The settings of a job `name` building into the project's DuckDB file, without a note.
pub(crate) fn duckdb_job(name: &str) -> Value {
    json!({"name": name, "timeout_secs": 600, "warehouse": {"type": "duckdb"}, "mr_note": false})
}

impl World {
    /// The job `ci` builds into `warehouse.duckdb`.
    pub(crate) async fn start(backend: Backend) -> World {
        World::with_job(backend, duckdb_job("ci")).await
    }

    /// Like [`World::start`], with more settings of the lablink server.
    pub(crate) async fn start_with(backend: Backend, settings: &[(&str, &str)]) -> World {
        World::with_job_and(backend, duckdb_job("ci"), settings).await
    }

    /// The job `ci` is created from `job` (its JSON settings).
    pub(crate) async fn with_job(backend: Backend, job: Value) -> World {
        World::with_job_and(backend, job, &[]).await
    }

    pub(crate) async fn with_job_and(
        backend: Backend,
        job: Value,
        settings: &[(&str, &str)],
    ) -> World {
        let connected = Connected::start(backend, settings, Some(&sample_project())).await;
        World::of(connected, job).await
    }

    /// The world on a GitLab that behaves like gitlab.com Free (no project access tokens).
    pub(crate) async fn on_gitlab_com_free(backend: Backend, job: Value) -> World {
        let connected = Connected::start_on(backend, &[], Some(&sample_project()), true).await;
        World::of(connected, job).await
    }

    async fn of(connected: Connected, job: Value) -> World {
        let Connected {
            gitlab,
            app,
            alice,
            user,
            browser,
            csrf,
            gitlab_project,
            project,
            repository_id,
        } = connected;
        let mut w = World {
            gitlab,
            app,
            alice,
            browser,
            csrf,
            account: user.account_id,
            gitlab_project,
            project,
            repository_id,
            job_id: 0,
        };
        let job = w.create_job(job).await;
        assert_eq!(job["status_name"], "lablink/ci");
        assert_eq!(job["run_on_draft"], false);
        w.job_id = job["id"].as_i64().unwrap();
        w
    }

    /// Creates a CI job of the project; returns it as the API shows it.
    pub(crate) async fn create_job(&self, job: Value) -> Value {
        let res = self
            .browser
            .api(
                Method::POST,
                &format!("/api/v1/projects/{}/ci-jobs", self.project),
                Some(job),
                Some(&self.csrf),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        res.json()
    }

    /// Commits `files` (path, content) to `branch` (created from main when new); returns the SHA.
    pub(crate) async fn commit(&self, branch: &str, files: &[(&str, &str)]) -> String {
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

    pub(crate) async fn open_mr(&self, branch: &str, title: &str) -> i64 {
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

    /// A merge request from a fork, opened by GitLab's webhook: returns its commit and iid. The
    /// fork's commit is where GitLab keeps it in the target project
    /// (refs/merge-requests/<iid>/head); a draft merge request of the target project puts it
    /// there and starts nothing.
    pub(crate) async fn fork_merge_request(&self) -> (String, i64) {
        use crate::support::webhooks;
        use secrecy::ExposeSecret;
        let sha = self.commit("from-fork", &[(MODEL_PATH, GOOD_MODEL)]).await;
        let iid = self.open_mr("from-fork", "Draft: from a fork").await;
        let secrets = self
            .app
            .db
            .hook_secrets(&self.app.keys, &self.repository_id)
            .await
            .unwrap()
            .unwrap();
        let event =
            webhooks::merge_request_opened(self.gitlab_project, 999_999, iid, &sha, "fork-branch");
        let status = webhooks::deliver(
            &self.app.base,
            &self.repository_id,
            "Merge Request Hook",
            &event,
            secrets.secret.expose_secret(),
            secrets.signing_token.as_ref().map(|s| s.expose_secret()),
        )
        .await;
        assert!(status < 300, "{status}");
        (sha, iid)
    }

    pub(crate) async fn mr_action(&self, iid: i64, action: &str) {
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

    pub(crate) async fn sim_state(&self) -> Value {
        self.gitlab.project_state(self.gitlab_project).await
    }

    /// The simulator's commit status `lablink/ci` for `sha`, once it is `state`.
    pub(crate) async fn wait_for_status(&self, sha: &str, state: &str) -> Value {
        self.wait_for_named_status("lablink/ci", sha, state).await
    }

    /// The simulator's commit status `name` for `sha`, once it is `state`.
    pub(crate) async fn wait_for_named_status(&self, name: &str, sha: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let statuses = self.sim_state().await["commit_statuses"].clone();
                last = statuses.clone();
                let found = statuses
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["sha"] == sha && s["name"] == name && s["status"] == state);
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
                "no `{state}` status {name} for {sha}; statuses: {last:#}\nruns: {:#}",
                self.runs().await
            ),
        }
    }

    /// The run's page data once lablink has finished delivering its final `state` to GitLab
    /// (including the merge request note, which is posted before the delivery is recorded).
    pub(crate) async fn wait_for_delivered(&self, run_id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                last = self.run(run_id).await;
                if last["status_sent"] == state {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "`{state}` was not delivered: {last:#}");
        last
    }

    /// The notes of merge request `iid` in the simulator, oldest first.
    pub(crate) async fn notes(&self, iid: i64) -> Vec<Value> {
        let state = self.sim_state().await;
        let mr = state["merge_requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|mr| mr["iid"] == iid)
            .unwrap_or_else(|| panic!("no merge request !{iid}: {state:#}"))
            .clone();
        mr["notes"].as_array().unwrap().clone()
    }

    /// The GitLab user behind lablink's (active) project access token.
    pub(crate) async fn project_token_user(&self) -> u64 {
        let state = self.sim_state().await;
        let active: Vec<u64> = state["project_access_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["revoked"] == false)
            .filter(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("lablink token for GitLab project:"))
            })
            .map(|t| t["user_id"].as_u64().unwrap())
            .collect();
        assert_eq!(active.len(), 1, "{state:#}");
        active[0]
    }

    pub(crate) async fn runs(&self) -> Value {
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

    /// The run's log as text, one line per log line.
    pub(crate) async fn run_log(&self, id: &str) -> String {
        let res = self
            .browser
            .api(Method::GET, &format!("/api/v1/runs/{id}/log"), None, None)
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) async fn run(&self, id: &str) -> Value {
        let res = self
            .browser
            .api(Method::GET, &format!("/api/v1/runs/{id}"), None, None)
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    }

    pub(crate) async fn runs_at(&self, sha: &str) -> Vec<Value> {
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
    pub(crate) async fn wait_until_settled(&self) {
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
    pub(crate) fn schemas(&self) -> Vec<String> {
        self.try_schemas().expect("the warehouse is locked")
    }

    /// Like [`World::schemas`]; `None` while a dbt process holds the warehouse's lock.
    pub(crate) fn try_schemas(&self) -> Option<Vec<String>> {
        crate::support::duckdb_rows(
            &self.app.duckdb_file(&self.project),
            "select schema_name from information_schema.schemata",
        )
    }

    /// Waits for the runs of both jobs (`noted` and `ci`) at `sha` to have delivered `state`;
    /// returns their ids.
    pub(crate) async fn both_runs_delivered(&self, sha: &str, state: &str) -> (String, String) {
        self.wait_for_named_status("lablink/noted", sha, state)
            .await;
        self.wait_for_status(sha, state).await;
        let runs = self.runs_at(sha).await;
        assert_eq!(runs.len(), 2, "{runs:#?}");
        let id_of = |job: &str| {
            runs.iter()
                .find(|r| r["job_name"] == job)
                .and_then(|r| r["id"].as_str())
                .unwrap_or_else(|| panic!("no run of `{job}`: {runs:#?}"))
                .to_owned()
        };
        let (noted, quiet) = (id_of("noted"), id_of("ci"));
        for id in [&noted, &quiet] {
            self.wait_for_delivered(id, state).await;
        }
        (noted, quiet)
    }

    /// A run of `ci` at `sha` as a worker leaves it when it dies during attempt `attempts`:
    /// running, held under a lease that runs out a moment later and is never renewed.
    pub(crate) async fn run_of_dead_worker(
        &self,
        sha: &str,
        branch: &str,
        iid: i64,
        attempts: i64,
    ) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = lablink_store::now_ms();
        self.app
            .execute(&format!(
                "INSERT INTO runs (id, ci_job_id, account_id, project_id, repository_id, sha, \
                 ref_name, mr_iid, triggered_by, state, reason, attempts, locked_by, locked_until, \
                 cancel_requested, created_at, started_at, updated_at) VALUES ('{id}', {job}, \
                 '{account}', '{project}', '{repository}', '{sha}', '{branch}', {iid}, 'webhook', \
                 'running', 'dbt started', {attempts}, 'ci-dead-worker', {until}, FALSE, {now}, \
                 {now}, {now})",
                job = self.job_id,
                account = self.account,
                project = self.project,
                repository = self.repository_id,
                until = now + 1_000,
            ))
            .await;
        id
    }
}

pub(crate) const GOOD_MODEL: &str = "select customer_id, count(*) as orders, 2 as version \
    from {{ ref('stg_orders') }} group by customer_id\n";
const BAD_MODEL: &str = "select this is not sql from nowhere\n";
pub(crate) const MODEL_PATH: &str = "models/marts/customer_orders.sql";

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
                .db
                .count_deliveries(&w.repository_id, DeliveryStatus::Processed)
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
    let pat = w.gitlab.personal_token(w.alice.id, "replay").await;
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
    for status in [
        DeliveryStatus::Received,
        DeliveryStatus::Processed,
        DeliveryStatus::Ignored,
    ] {
        stored += w
            .app
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
        w.gitlab.fail(Some("POST"), &path, status, 0.2).await;
    }
    let good = w.commit("good", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let bad = w.commit("bad", &[(MODEL_PATH, BAD_MODEL)]).await;
    w.open_mr("good", "Good").await;
    w.open_mr("bad", "Bad").await;
    w.wait_for_status(&good, "success").await;
    w.wait_for_status(&bad, "failed").await;
}

async fn intake_refuses_strangers_and_ignores_what_it_does_not_handle(backend: Backend) {
    use secrecy::ExposeSecret;
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
    // A stranger announcing a 25 MiB body is answered 401 before it sends any of it: the
    // secret is checked first (a server that read the body first would wait here forever).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = w.app.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST /webhooks/gitlab/{} HTTP/1.1\r\nHost: {host}\r\nX-Gitlab-Event: Push Hook\r\n\
             X-Gitlab-Token: wrong\r\nContent-Length: {}\r\n\r\n",
            w.repository_id,
            25 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut answer))
            .await
            .expect("answered without reading the body")
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 401");
    }
    let huge = || vec![b' '; 25 * 1024 * 1024 + 1];
    // From the hook itself (its token and, as GitLab 19 signs, the signature's headers), above
    // GitLab's 25 MiB maximum: 413.
    let secrets = w
        .app
        .db
        .hook_secrets(&w.app.keys, &w.repository_id)
        .await
        .unwrap()
        .unwrap();
    let mut req = http
        .post(&url)
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", secrets.secret.expose_secret());
    if secrets.signing_token.is_some() {
        req = req
            .header("webhook-id", "msg_huge")
            .header(
                "webhook-timestamp",
                chrono::Utc::now().timestamp().to_string(),
            )
            .header("webhook-signature", "v1,AAAA");
    }
    let res = req.body(huge()).send().await.unwrap();
    assert_eq!(res.status(), 413);
    // GitLab's own test delivery of an event lablink does not act on gets a 2xx, recorded as
    // ignored.
    let pat = w.gitlab.personal_token(w.alice.id, "test").await;
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
        .db
        .count_deliveries(&w.repository_id, DeliveryStatus::Ignored)
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
    let pat = w.gitlab.personal_token(w.alice.id, "maintainer").await;
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

/// A job with "MR note" on keeps one note on the merge request, posted with lablink's project
/// access token and edited (never posted again) after each run; a job without it posts nothing.
async fn finished_runs_are_summarised_on_the_merge_request_when_asked(backend: Backend) {
    let w = World::start(backend).await;
    let mut noted = duckdb_job("noted");
    noted.as_object_mut().unwrap().remove("mr_note");
    let noted = w.create_job(noted).await;
    assert_eq!(noted["mr_note"], true, "the note is on by default");
    assert_eq!(noted["status_name"], "lablink/noted");
    let token_user = w.project_token_user().await;

    let sha1 = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;
    let (passed, quiet) = w.both_runs_delivered(&sha1, "success").await;
    let notes = w.notes(iid).await;
    assert_eq!(
        notes.len(),
        1,
        "one note, from the noted job only: {notes:#?}"
    );
    let note = &notes[0];
    assert_eq!(note["author_id"], token_user, "{note:#}");
    assert_eq!(note["system"], false);
    let body = note["body"].as_str().unwrap();
    for expected in [
        "lablink/noted",
        "success",
        &sha1[..8],
        &format!("{}/runs/{passed}", w.app.base),
        // No merge job ran yet: nothing to compare with, and the note says so.
        "no production run yet",
    ] {
        assert!(body.contains(expected), "`{expected}` missing from: {body}");
    }
    assert!(!body.contains("lablink/ci"), "{body}");
    assert!(!body.contains(&quiet), "{body}");

    // A failing model: the same note now says the run failed, and which dbt command did.
    let sha2 = w.commit("feature", &[(MODEL_PATH, BAD_MODEL)]).await;
    let (failed, _) = w.both_runs_delivered(&sha2, "failed").await;
    let notes = w.notes(iid).await;
    assert_eq!(notes.len(), 1, "edited in place: {notes:#?}");
    assert_eq!(notes[0]["id"], note["id"]);
    assert_eq!(notes[0]["author_id"], token_user);
    let body = notes[0]["body"].as_str().unwrap();
    for expected in [
        "lablink/noted",
        "failed",
        "`dbt build",
        &sha2[..8],
        &format!("{}/runs/{failed}", w.app.base),
    ] {
        assert!(body.contains(expected), "`{expected}` missing from: {body}");
    }
}

/// The job's warehouse is a PostgreSQL database: the run builds the models into the merge
/// request's schema there, closing the merge request drops it, and the warehouse password is
/// sealed at rest.
async fn a_postgres_warehouse_gets_the_schema_and_loses_it_on_close(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let dbname = warehouse.url.rsplit('/').next().unwrap().to_owned();
    let password = format!("warehouse-{}", uuid::Uuid::new_v4().simple());
    let job = json!({"name": "ci", "timeout_secs": 600,
                     "warehouse": {"type": "postgres", "host": "127.0.0.1", "port": 5432,
                                   "user": "postgres", "dbname": dbname},
                     "warehouse_password": password});
    let w = World::with_job(backend, job).await;
    let shown = w
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{}/ci-jobs", w.project),
            None,
            None,
        )
        .await;
    assert_eq!(shown.json()[0]["has_warehouse_password"], true);
    assert!(!shown.body.contains(&password), "{}", shown.body);
    let stored = database_bytes(&w.app).await;
    assert!(!stored.is_empty());
    assert!(
        !contains(&stored, &password),
        "the warehouse password is stored in plain text"
    );

    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;
    w.wait_for_status(&sha, "success").await;
    let schema = format!("lablink_pr_{}_{iid}", w.job_id);
    let pg = PgPool::connect(&warehouse.url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY table_name",
    )
    .bind(&schema)
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(
        tables,
        ["customer_orders", "raw_orders", "stg_orders"],
        "in {schema}"
    );
    let version: i32 = sqlx::query_scalar(&format!(
        "SELECT MAX(version) FROM {schema}.customer_orders"
    ))
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(version, 2, "the merge request's model was built");
    let run_id = w.runs_at(&sha).await[0]["id"].as_str().unwrap().to_owned();
    let log = w
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/log"),
            None,
            None,
        )
        .await;
    assert!(log.body.contains(&schema), "{}", log.body);
    assert!(!log.body.contains(&password), "{}", log.body);

    w.wait_until_settled().await;
    w.mr_action(iid, "close").await;
    let schema_exists = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
        )
        .bind(&schema)
        .fetch_one(&pg)
        .await
        .unwrap()
            > 0
    };
    tokio::time::timeout(PATIENCE, async {
        while schema_exists().await {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the CI schema was not dropped");
    pg.close().await;
}

/// Runs held by a worker that died (a lease in the database that is no longer renewed): the
/// live worker takes one up again once the lease has expired and finishes it, with its status
/// in GitLab; one that had already been lost `MAX_RUN_ATTEMPTS` times is failed with the reason
/// instead of running forever.
async fn runs_of_vanished_workers_are_taken_up_again_then_given_up(backend: Backend) {
    let w = World::start(backend).await;
    // Drafts start no run, so the runs below are the only ones, each held by the dead worker.
    let again = w.commit("again", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let again_iid = w.open_mr("again", "Draft: taken up again").await;
    let given_up = w
        .commit("given-up", &[(MODEL_PATH, &GOOD_MODEL.replace('2', "5"))])
        .await;
    let given_up_iid = w.open_mr("given-up", "Draft: given up").await;
    let again_run = w.run_of_dead_worker(&again, "again", again_iid, 1).await;
    let given_up_run = w
        .run_of_dead_worker(&given_up, "given-up", given_up_iid, MAX_RUN_ATTEMPTS)
        .await;

    let status = w.wait_for_status(&again, "success").await;
    assert_eq!(
        status["target_url"],
        format!("{}/runs/{again_run}", w.app.base)
    );
    let run = w.run(&again_run).await;
    assert_eq!(run["run"]["state"], "success", "{run:#}");
    assert_eq!(run["run"]["attempts"], 2, "{run:#}");
    assert_eq!(w.runs_at(&again).await.len(), 1);

    let status = w.wait_for_status(&given_up, "failed").await;
    let run = w.run(&given_up_run).await;
    assert_eq!(run["run"]["state"], "error", "{run:#}");
    let reason = run["run"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!("given up after {MAX_RUN_ATTEMPTS} attempts lost by workers")
    );
    assert_eq!(status["description"], reason);
    assert!(run["steps"].as_array().unwrap().is_empty(), "{run:#}");
    assert_eq!(run["run"]["attempts"], MAX_RUN_ATTEMPTS);
}

/// GitLab's notes endpoint answers 500 for a while after a run asking for an MR note finished:
/// the status delivery is retried (re-sending the status GitLab already shows) until the note
/// is posted, and the merge request ends with exactly one note for the run.
async fn the_mr_note_survives_an_unreliable_notes_api(backend: Backend) {
    let w = World::start(backend).await;
    let mut noted = duckdb_job("noted");
    noted["mr_note"] = json!(true);
    w.create_job(noted).await;
    let notes_path = format!(
        "/api/v4/projects/{}/merge_requests/*/notes",
        w.gitlab_project
    );
    let fault = w.gitlab.fail(Some("POST"), &notes_path, 500, 1.0).await;

    // The run finishes and GitLab shows its status, but every note post fails meanwhile.
    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;
    w.wait_for_named_status("lablink/noted", &sha, "success")
        .await;
    let refused = tokio::time::timeout(PATIENCE, async {
        while note_posts(&w.gitlab, 500).await < 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the note was not tried three times");
    assert!(w.notes(iid).await.is_empty());
    w.gitlab.remove_fault(fault).await;

    let (noted, _) = w.both_runs_delivered(&sha, "success").await;
    let notes = w.notes(iid).await;
    assert_eq!(notes.len(), 1, "exactly one note: {notes:#?}");
    let body = notes[0]["body"].as_str().unwrap();
    let link = format!("{}/runs/{noted}", w.app.base);
    assert!(body.contains(&link), "`{link}` missing from: {body}");
    assert_eq!(note_posts(&w.gitlab, 201).await, 1);
    let run = w.run(&noted).await;
    assert!(run["run"]["status_note"].is_null(), "{run:#}");
}

/// How many merge request notes GitLab answered with `status`.
async fn note_posts(gitlab: &GitLab, status: u64) -> u64 {
    let requests = gitlab.control(Method::GET, "/requests", json!({})).await;
    requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["status"] == status)
        .filter(|r| r["route"].as_str().is_some_and(|p| p.ends_with("/notes")))
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

/// A merge request whose models attack the host, run by CI in its sandbox: each attack is
/// checked from the host side. The models read lablink's database file and write what they read
/// into the host's `/tmp` (DuckDB pre-hook, a Python model's shell), and print lablink's own
/// environment through `/proc` (the server runs in this test process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_merge_request_reaches_nothing_of_the_host() {
    let w = World::start(Backend::Sqlite).await;
    let database = w
        .app
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let stolen = format!("/tmp/lablink-stolen-{}", uuid::Uuid::new_v4().simple());
    let hook = format!(
        "{{{{ config(pre_hook=\"COPY (SELECT content FROM read_text('{database}')) TO '{stolen}'\") }}}}\n\
         select 1 as x\n"
    );
    let shell = format!(
        "import subprocess\n\
         def model(dbt, session):\n\
         \x20   subprocess.run(['sh', '-c', 'cp {database} {stolen}-shell; cat /proc/{pid}/environ'])\n\
         \x20   return session.sql('select 1 as x')\n",
        pid = std::process::id(),
    );
    let sha = w
        .commit(
            "hostile",
            &[
                ("models/steal_database.sql", hook.as_str()),
                ("models/shell.py", shell.as_str()),
            ],
        )
        .await;
    w.open_mr("hostile", "Hostile").await;
    // Inside the sandbox the database file does not exist (DuckDB reads no rows from a path that
    // matches nothing) and /tmp is the sandbox's own: the run itself succeeds.
    w.wait_for_status(&sha, "success").await;
    assert!(
        !Path::new(&stolen).exists(),
        "the pre-hook wrote to the host"
    );
    assert!(
        !Path::new(&format!("{stolen}-shell")).exists(),
        "the shell wrote to the host"
    );
    let run = &w.runs_at(&sha).await[0];
    let log = w.run_log(run["id"].as_str().unwrap()).await;
    assert!(log.contains("steal_database"), "{log}");
    assert!(
        !log.contains("CARGO_PKG_NAME="),
        "lablink's environment leaked:\n{log}"
    );
}

/// A job's variables are an allow-list: what would change how Python starts (a committed
/// `sitecustomize.py` on `PYTHONPATH`) cannot be set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_variables_cannot_change_how_programs_start() {
    let w = World::start(Backend::Sqlite).await;
    for name in ["PYTHONPATH", "LD_PRELOAD", "PYTHONSTARTUP"] {
        let mut job = duckdb_job(&format!("env-{}", name.to_lowercase()));
        job["env"] = json!({ name: "." });
        let res = w
            .browser
            .api(
                Method::POST,
                &format!("/api/v1/projects/{}/ci-jobs", w.project),
                Some(job),
                Some(&w.csrf),
            )
            .await;
        assert_eq!(res.status, 422, "{name}: {}", res.body);
        assert!(res.body.contains("start with DBT_"), "{}", res.body);
    }
}

/// A fork bomb and a model that fills the disk, with the limits set small: each run ends in
/// error, and says which limit it passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_past_their_limits_end_with_the_reason() {
    let w = World::start_with(
        Backend::Sqlite,
        &[("run_max_processes", "16"), ("run_disk_mb", "60")],
    )
    .await;
    let fork_bomb = "import os, time\n\
        def model(dbt, session):\n\
        \x20   while True:\n\
        \x20       os.fork()\n\
        \x20       time.sleep(0.05)\n\
        \x20   return session.sql('select 1 as x')\n";
    let filler = "def model(dbt, session):\n\
        \x20   with open('filler.bin', 'wb') as f:\n\
        \x20       for _ in range(200):\n\
        \x20           f.write(b'x' * (1 << 20))\n\
        \x20   return session.sql('select 1 as x')\n";
    for (branch, model, reason) in [
        (
            "fork-bomb",
            fork_bomb,
            "it started more than 16 processes at once",
        ),
        ("filler", filler, "it used more than 60 MiB of disk"),
    ] {
        let sha = w
            .commit(
                branch,
                &[(&format!("models/{}.py", branch.replace('-', "_")), model)],
            )
            .await;
        w.open_mr(branch, branch).await;
        w.wait_for_status(&sha, "failed").await;
        let run = &w.runs_at(&sha).await[0];
        assert_eq!(run["state"], "error");
        assert!(
            run["reason"].as_str().unwrap().contains(reason),
            "{branch}: {run:#}"
        );
    }
}

/// A merge request from a fork (GitLab's event names another source project) never runs with
/// the job's secrets until a Maintainer of the target project approves that commit in lablink;
/// a Developer cannot. A job set to run forks without secrets parses them at once.
async fn merge_requests_from_forks_wait_for_a_maintainers_approval(backend: Backend) {
    let w = World::start(backend).await;
    let mut parse_only = duckdb_job("parse");
    parse_only["forks"] = json!("without_secrets");
    parse_only["env"] = json!({"DBT_ENV_SECRET_TOKEN": "fork-must-not-see-this"});
    w.create_job(parse_only).await;
    let (sha, iid) = w.fork_merge_request().await;

    // The full job waits, with a pending status that says so; the parse-only job runs at once.
    let pending = w.wait_for_status(&sha, "pending").await;
    assert!(
        pending["description"]
            .as_str()
            .unwrap()
            .contains("waiting for a Maintainer"),
        "{pending:#}"
    );
    let parsed = w
        .wait_for_named_status("lablink/parse", &sha, "success")
        .await;
    assert_eq!(parsed["status"], "success");
    let runs = w.runs_at(&sha).await;
    let waiting = runs.iter().find(|r| r["job_name"] == "ci").unwrap();
    assert_eq!(waiting["state"], "awaiting_approval");
    let parse_run = runs.iter().find(|r| r["job_name"] == "parse").unwrap();
    assert_eq!(parse_run["mode"], "without_secrets");
    let log = w.run_log(parse_run["id"].as_str().unwrap()).await;
    assert!(log.contains("dbt parse"), "{log}");
    assert!(!log.contains("fork-must-not-see-this"));
    assert!(!log.contains("dbt build"), "{log}");
    // The full job's warehouse was not touched: its file does not even exist yet.
    let schema = format!("lablink_pr_{}_{iid}", w.job_id);
    assert!(!w.app.duckdb_file(&w.project).exists());

    // A Developer in GitLab may not approve it.
    let bob_gitlab = w.gitlab.user("bob").await;
    w.gitlab.member(w.gitlab_project, bob_gitlab.id, 30).await;
    let bob = Linked::new(
        &w.app,
        &w.gitlab,
        "bob@acme.test",
        Role::Developer,
        &bob_gitlab,
    )
    .await;
    let run_id = waiting["id"].as_str().unwrap();
    let refused = bob
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/approve"),
            None,
            Some(&bob.csrf),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Developer role"), "{}", refused.body);

    // The Maintainer approves: the run goes ahead with the job's secrets and is audited.
    let approved = w
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/approve"),
            None,
            Some(&w.csrf),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(
        approved.json()["approved_by"],
        format!("@{}", w.alice.username)
    );
    w.wait_for_status(&sha, "success").await;
    assert!(w.schemas().contains(&schema));
    let audit = w.app.table_text("audit_log").await;
    assert!(audit.contains("ci.fork_run.approved"), "{audit}");
    // An approval is for one commit: approving again is refused.
    let again = w
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/approve"),
            None,
            Some(&w.csrf),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
}
