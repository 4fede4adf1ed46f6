//! The doctor against gitlab-sim over HTTP: a connected repository is broken the way a user in
//! GitLab would break it, the doctor reports each problem, `--fix` repairs it, and the doctor
//! reports the connection clean afterwards.

use lablink_core::{Plan, Role};
use lablink_service::doctor::{Code, Outcome, Report};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::connected::{Connected, MAINTAINER, connect, create_project};
use crate::support::gitlab::GitLab;
use crate::support::{Backend, Browser, TestApp};
use lablink_service::Principal;

crate::on_both_backends!(
    broken_credentials_are_found_repaired_and_clean_afterwards,
    changed_webhook_settings_are_found_and_reset,
    link_and_membership_problems_say_what_to_do,
    test_delivery_is_received_and_verified,
    the_panel_shows_findings_and_fixes_them,
    gitignore_is_fixed_through_a_merge_request,
    a_symlinked_gitignore_is_replaced_never_followed,
    a_webhook_gitlab_disabled_is_enabled_again,
    expired_and_expiring_project_tokens_are_replaced,
    a_revoked_deploy_token_is_replaced,
    a_replaced_deploy_key_is_out_of_date_and_replaced,
    a_repository_moved_out_of_its_group_says_what_to_do,
    a_webhook_reset_replaces_secret_and_signing_token,
);

/// lablink connected to a GitLab project by a Maintainer, and that Maintainer's personal access
/// token for breaking things in GitLab as they would.
pub(crate) struct World {
    pub gitlab: GitLab,
    pub app: TestApp,
    pub gitlab_project: u64,
    pub project: String,
    pub account: String,
    pat: String,
    http: reqwest::Client,
    pub alice: u64,
    browser: Browser,
    csrf: String,
    caller: Principal,
}

impl World {
    pub async fn start(backend: Backend) -> World {
        let Connected {
            gitlab,
            app,
            alice,
            user,
            browser,
            csrf,
            gitlab_project,
            project,
            ..
        } = Connected::start(
            backend,
            &[
                ("repository_deploy_keys", "true"),
                ("project_token_days", "90"),
            ],
            None,
        )
        .await;
        let pat = gitlab.personal_token(alice.id, "doctor").await;
        World {
            gitlab,
            app,
            gitlab_project,
            project,
            account: user.account_id.clone(),
            pat,
            http: reqwest::Client::new(),
            alice: alice.id,
            browser,
            csrf,
            caller: Principal {
                user_id: user.id,
                email: user.email,
                username: "dev".into(),
                role: Role::Developer,
                account_id: user.account_id,
                account_name: "acme".into(),
                plan: Plan::Enterprise,
            },
        }
    }

    /// Connects one more lablink project to a new GitLab project `path` in the same group,
    /// through the same Maintainer. Returns the lablink repository.
    pub async fn connect_another(&self, path: &str) -> lablink_store::repositories::Repository {
        let group = self.sim_state().await["project"]["namespace"].clone();
        let gitlab_project = self
            .gitlab
            .control(
                Method::POST,
                "/projects",
                json!({"path": path, "namespace": group}),
            )
            .await["id"]
            .as_u64()
            .unwrap();
        self.gitlab
            .member(gitlab_project, self.alice, MAINTAINER)
            .await;
        let project = create_project(&self.browser, &self.csrf, path, "").await;
        let res = connect(&self.browser, &self.csrf, &project, gitlab_project).await;
        assert!(res.status < 300, "connect failed: {}", res.body);
        self.app
            .db
            .live_repository_of_project(&project)
            .await
            .unwrap()
            .unwrap()
    }

    /// A REST call to GitLab as the Maintainer.
    pub async fn as_maintainer(&self, method: Method, path: &str, body: Value) -> Value {
        let res = self
            .http
            .request(
                method,
                format!(
                    "{}/api/v4/projects/{}{path}",
                    self.gitlab.base, self.gitlab_project
                ),
            )
            .header("PRIVATE-TOKEN", &self.pat)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn doctor(&self, fix: bool) -> Report {
        self.app
            .services
            .check_connection(&self.account, &self.project, fix)
            .await
            .unwrap()
    }

    pub async fn repository(&self) -> lablink_store::repositories::Repository {
        self.app
            .db
            .live_repository_of_project(&self.project)
            .await
            .unwrap()
            .unwrap()
    }

    /// A commit to `main` (GitLab fires a push webhook for it).
    pub async fn push_change(&self, n: usize) {
        self.gitlab
            .control(
                Method::POST,
                &format!("/projects/{}/repository/commits", self.gitlab_project),
                json!({"branch": "main", "message": format!("change {n}"), "user_id": self.alice,
                       "files": [{"path": format!("models/m{n}.sql"), "content": "select 1\n"}]}),
            )
            .await;
    }

    pub async fn sim_state(&self) -> Value {
        self.gitlab.project_state(self.gitlab_project).await
    }
}

pub(crate) fn codes(report: &Report) -> Vec<Code> {
    let mut codes: Vec<Code> = report.findings.iter().map(|f| f.code).collect();
    codes.sort_by_key(|c| format!("{c:?}"));
    codes
}

/// Fixes, checks every repair succeeded, and checks the doctor then finds nothing.
pub(crate) async fn fix_and_expect_clean(w: &World) {
    let fixed = w.doctor(true).await;
    for repair in &fixed.repairs {
        assert_eq!(repair.outcome, Outcome::Repaired, "{repair:?}");
    }
    let after = w.doctor(false).await;
    assert!(after.healthy(), "{:#?}", after.findings);
}

async fn broken_credentials_are_found_repaired_and_clean_afterwards(backend: Backend) {
    let w = World::start(backend).await;
    let clean = w.doctor(false).await;
    assert!(clean.healthy(), "{:#?}", clean.findings);
    let repo = w.repository().await;

    // A Maintainer deletes lablink's webhook, deploy token and deploy key, and revokes its
    // project access token.
    w.as_maintainer(
        Method::DELETE,
        &format!("/hooks/{}", repo.hook_id.unwrap()),
        json!({}),
    )
    .await;
    w.as_maintainer(
        Method::DELETE,
        &format!("/deploy_tokens/{}", repo.deploy_token_id.unwrap()),
        json!({}),
    )
    .await;
    w.as_maintainer(
        Method::DELETE,
        &format!("/deploy_keys/{}", repo.deploy_key_id.unwrap()),
        json!({}),
    )
    .await;
    w.as_maintainer(
        Method::DELETE,
        &format!("/access_tokens/{}", repo.project_token_id.unwrap()),
        json!({}),
    )
    .await;

    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [
            Code::DeployKeyMissing,
            Code::DeployTokenMissing,
            Code::ProjectTokenRevoked,
            Code::WebhookMissing
        ],
        "{:#?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.repairable && !f.fix.is_empty())
    );
    // The stable JSON shape.
    let doc = serde_json::to_value(&report).unwrap();
    assert_eq!(doc["findings"][0]["severity"], "error");
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "webhook_missing")
    );

    fix_and_expect_clean(&w).await;
    let after = w.repository().await;
    assert_ne!(after.hook_id, repo.hook_id);
    assert_ne!(after.project_token_id, repo.project_token_id);
    assert_ne!(after.deploy_token_id, repo.deploy_token_id);
    assert_ne!(after.deploy_key_id, repo.deploy_key_id);
    let state = w.sim_state().await;
    assert_eq!(state["hooks"].as_array().unwrap().len(), 1, "{state:#}");

    // The CLI's path over every connected project gives the same clean report.
    let reports = w.app.services.check_connections(None, false).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].healthy());
    w.app.stop().await;
}

async fn changed_webhook_settings_are_found_and_reset(backend: Backend) {
    let w = World::start(backend).await;
    let repo = w.repository().await;
    let hook = repo.hook_id.unwrap();
    w.as_maintainer(
        Method::PUT,
        &format!("/hooks/{hook}"),
        json!({"url": "http://127.0.0.1:9/elsewhere", "push_events": false,
               "enable_ssl_verification": false}),
    )
    .await;
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        // GitLab clears the secret token when a webhook's URL changes.
        [
            Code::WebhookEventsOff,
            Code::WebhookSecretMissing,
            Code::WebhookSslVerificationOff,
            Code::WebhookUrlMismatch
        ],
        "{:#?}",
        report.findings
    );
    fix_and_expect_clean(&w).await;
    // The secret was reset: the previous one stays valid for a grace window.
    let secrets = w
        .app
        .db
        .hook_secrets(&w.app.keys, &repo.id)
        .await
        .unwrap()
        .unwrap();
    assert!(secrets.previous.is_some());
    w.app.stop().await;
}

async fn link_and_membership_problems_say_what_to_do(backend: Backend) {
    let w = World::start(backend).await;
    // The connecting user is demoted to Developer in GitLab.
    w.gitlab.member(w.gitlab_project, w.alice, 30).await;
    let report = w.doctor(true).await;
    assert_eq!(
        codes(&report),
        [Code::ConnectorNotMaintainer],
        "{:#?}",
        report.findings
    );
    assert!(!report.findings[0].repairable);
    assert_eq!(report.repairs[0].outcome, Outcome::Manual);
    w.gitlab.member(w.gitlab_project, w.alice, MAINTAINER).await;
    assert!(w.doctor(false).await.healthy());

    // The connecting user unlinks their GitLab account in lablink.
    let res = w
        .browser
        .post_form(
            "/profile/linked-accounts/gitlab/unlink",
            &[("csrf_token", &w.csrf)],
        )
        .await;
    assert!(res.status < 400, "{}", res.body);
    let report = w.doctor(true).await;
    assert_eq!(
        codes(&report),
        [Code::UserLinkBroken],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.repairs[0].outcome, Outcome::Manual);
    assert!(report.findings[0].fix.contains("Linked accounts"));
    w.app.stop().await;
}

async fn test_delivery_is_received_and_verified(backend: Backend) {
    let w = World::start(backend).await;
    assert_eq!(w.doctor(false).await.last_verified_delivery_at, None);
    // GitLab sends test deliveries only for a project with a commit.
    w.gitlab
        .control(
            Method::POST,
            &format!("/projects/{}/repository/commits", w.gitlab_project),
            json!({"branch": "main", "message": "first", "user_id": w.alice,
                   "files": [{"path": "dbt_project.yml", "content": "name: analytics\n"}]}),
        )
        .await;
    // The push's own delivery arrives first, so it cannot pass for the test delivery.
    while w.doctor(false).await.last_verified_delivery_at.is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sent = w
        .app
        .services
        .send_test_delivery(&w.caller, &w.project, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert!(sent.received, "{}", sent.message);
    assert!(sent.elapsed_ms.is_some());
    w.app.stop().await;
}

async fn the_panel_shows_findings_and_fixes_them(backend: Backend) {
    let w = World::start(backend).await;
    let project_page = w.browser.get(&format!("/projects/{}", w.project)).await;
    assert!(
        project_page.body.contains("id=\"check-connection\""),
        "{}",
        project_page.body
    );
    let panel = format!("/projects/{}/connection", w.project);
    let page = w.browser.get(&panel).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"healthy\""), "{}", page.body);
    assert!(page.body.contains("none yet"));

    let repo = w.repository().await;
    w.as_maintainer(
        Method::DELETE,
        &format!("/deploy_tokens/{}", repo.deploy_token_id.unwrap()),
        json!({}),
    )
    .await;
    let page = w.browser.get(&panel).await;
    assert!(
        page.body.contains("data-code=\"deploy_token_missing\""),
        "{}",
        page.body
    );
    // The check is kept: the project's page and the dashboard show the connection is broken
    // and what to do, without anyone opening Check connection again.
    let hub = w.browser.get(&format!("/projects/{}", w.project)).await;
    assert!(hub.body.contains("id=\"health-problem\""), "{}", hub.body);
    assert!(hub.body.contains("Broken"), "{}", hub.body);
    assert!(hub.body.contains("Check connection and fix"));
    let dashboard = w.browser.get("/").await;
    assert!(
        dashboard.body.contains("class=\"error broken-connection\""),
        "{}",
        dashboard.body
    );
    assert!(
        !dashboard.body.contains("deploy_token_missing"),
        "no internal codes"
    );
    let fixed = w
        .browser
        .post_form(
            &format!("{panel}/fix"),
            &[
                ("csrf_token", &page.csrf()),
                ("code", "deploy_token_missing"),
            ],
        )
        .await;
    // Post/redirect/get: the panel again, saying what was done, with the connection as it is now.
    assert_eq!(fixed.status, 303, "{}", fixed.body);
    let fixed = w.browser.get(&panel).await;
    assert!(fixed.body.contains("id=\"flash\""), "{}", fixed.body);
    assert!(fixed.body.contains("Repaired: "), "{}", fixed.body);
    assert!(fixed.body.contains("id=\"healthy\""), "{}", fixed.body);
    assert_ne!(w.repository().await.deploy_token_id, repo.deploy_token_id);
    let hub = w.browser.get(&format!("/projects/{}", w.project)).await;
    assert!(!hub.body.contains("id=\"health-problem\""), "{}", hub.body);
    assert!(hub.body.contains("Healthy"), "{}", hub.body);
    let dashboard = w.browser.get("/").await;
    assert!(
        !dashboard.body.contains("broken-connection"),
        "{}",
        dashboard.body
    );
    w.app.stop().await;
}

async fn gitignore_is_fixed_through_a_merge_request(backend: Backend) {
    let w = World::start(backend).await;
    // A dbt project whose .gitignore misses most build folders, with target/ committed.
    w.gitlab
        .control(
            Method::POST,
            &format!("/projects/{}/repository/commits", w.gitlab_project),
            json!({"branch": "main", "message": "dbt project", "user_id": w.alice,
            "files": [
                {"path": "dbt_project.yml", "content": "name: analytics\n"},
                {"path": ".gitignore", "content": "logs/\n"},
                {"path": "target/manifest.json", "content": "{}\n"},
                {"path": "models/a.sql", "content": "select 1\n"}
            ]}),
        )
        .await;
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::BuildFoldersTracked, Code::GitignoreIncomplete],
        "{:#?}",
        report.findings
    );
    let fixed = w.doctor(true).await;
    for repair in &fixed.repairs {
        assert_eq!(repair.outcome, Outcome::Repaired, "{repair:?}");
    }
    // One merge request from the fix branch; merging it makes the project clean.
    let mrs = w
        .as_maintainer(Method::GET, "/merge_requests?state=opened", json!({}))
        .await;
    let mrs = mrs.as_array().unwrap();
    assert_eq!(mrs.len(), 1, "{mrs:#?}");
    assert_eq!(mrs[0]["source_branch"], "lablink/fix-gitignore");
    let iid = mrs[0]["iid"].as_u64().unwrap();
    w.gitlab
        .control(
            Method::POST,
            &format!("/projects/{}/merge_requests/{iid}/merge", w.gitlab_project),
            json!({"user_id": w.alice}),
        )
        .await;
    let after = w.doctor(false).await;
    assert!(after.healthy(), "{:#?}", after.findings);
    w.app.stop().await;
}

/// A `.gitignore` that is a symlink (to `/dev/zero`, or out of the repository to a file of the
/// host) is reported as such and replaced by a regular file in the fix commit: lablink reads it
/// from git objects and never follows it, so neither target is read or written.
async fn a_symlinked_gitignore_is_replaced_never_followed(backend: Backend) {
    let w = World::start(backend).await;
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "target/\nhost secret\n").unwrap();
    let before = std::fs::read(outside.path()).unwrap();
    for target in [
        "/dev/zero".to_owned(),
        format!("../../../../../../../../..{}", outside.path().display()),
    ] {
        // Pushed with plain git as a Maintainer: a commit whose .gitignore is that symlink.
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let url = format!(
            "{}/{}.git",
            w.gitlab.base,
            w.repository().await.path_with_namespace
        );
        let authed = url.replacen("://", &format!("://alice:{}@", w.pat), 1);
        lablink_testkit::git(dir, &["clone", "--quiet", &authed, "repo"]);
        let repo = dir.join("repo");
        std::fs::write(repo.join("dbt_project.yml"), "name: analytics\n").unwrap();
        let link = repo.join(".gitignore");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        lablink_testkit::git(&repo, &["add", "--all"]);
        lablink_testkit::git(
            &repo,
            &["commit", "--quiet", "-m", "symlinked ignore rules"],
        );
        lablink_testkit::git(&repo, &["push", "--quiet", "origin", "HEAD:main"]);

        let report = w.doctor(false).await;
        let finding = report
            .findings
            .iter()
            .find(|f| f.code == Code::GitignoreIncomplete && f.message.contains("symlink"))
            .unwrap_or_else(|| panic!("{target}: {:#?}", report.findings));
        assert!(finding.repairable);
        let fixed = w.doctor(true).await;
        assert!(
            fixed.repairs.iter().all(|r| r.outcome == Outcome::Repaired),
            "{:#?}",
            fixed.repairs
        );
        // The fix branch holds a regular .gitignore with the rules.
        lablink_testkit::git(
            &repo,
            &["fetch", "--quiet", "origin", "lablink/fix-gitignore"],
        );
        let mode = lablink_testkit::git(&repo, &["ls-tree", "FETCH_HEAD", ".gitignore"]);
        assert!(mode.starts_with("100644 blob"), "{mode}");
        let text = lablink_testkit::git(&repo, &["show", "FETCH_HEAD:.gitignore"]);
        assert!(
            text.contains("target/") && text.contains("dbt_packages/"),
            "{text}"
        );
        assert!(!text.contains("host secret"), "{text}");
        // Close the fix's merge request so the next round opens its own.
        let mrs = w
            .as_maintainer(Method::GET, "/merge_requests?state=opened", json!({}))
            .await;
        for mr in mrs.as_array().unwrap() {
            let iid = mr["iid"].as_u64().unwrap();
            w.gitlab
                .control(
                    Method::POST,
                    &format!("/projects/{}/merge_requests/{iid}/close", w.gitlab_project),
                    json!({"user_id": w.alice}),
                )
                .await;
        }
    }
    assert_eq!(std::fs::read(outside.path()).unwrap(), before);
    w.app.stop().await;
}

async fn a_webhook_gitlab_disabled_is_enabled_again(backend: Backend) {
    let w = World::start(backend).await;
    let hook = w.repository().await.hook_id.unwrap();
    // Someone points the webhook somewhere that does not answer.
    w.as_maintainer(
        Method::PUT,
        &format!("/hooks/{hook}"),
        json!({"url": "http://127.0.0.1:9/nobody-listens"}),
    )
    .await;
    w.push_change(0).await;
    // The test delivery does not arrive: lablink says its URL is not reachable from GitLab.
    let sent = w
        .app
        .services
        .send_test_delivery(&w.caller, &w.project, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!sent.received);
    assert!(sent.message.contains("not reachable"), "{}", sent.message);
    // Failed deliveries make GitLab disable the webhook.
    let mut n = 1;
    loop {
        let state = w
            .as_maintainer(Method::GET, &format!("/hooks/{hook}"), json!({}))
            .await;
        if state["alert_status"] != "executable" {
            break;
        }
        assert!(n < 50, "GitLab never disabled the webhook: {state:#}");
        w.push_change(n).await;
        n += 1;
    }
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [
            Code::WebhookDisabled,
            Code::WebhookSecretMissing,
            Code::WebhookUrlMismatch
        ],
        "{:#?}",
        report.findings
    );
    fix_and_expect_clean(&w).await;
    w.app.stop().await;
}

/// Sets when lablink's project access token expires in GitLab. lablink dates new tokens by the
/// real clock, so time passing is modelled by moving the expiry rather than the sim's clock:
/// otherwise GitLab would refuse the repair's new expiry as already past.
fn set_token_expiry(w: &World, token_id: i64, expires_at: chrono::NaiveDate) {
    let mut state = w.gitlab.sim().lock();
    let token = state
        .project_access_tokens
        .get_mut(&(token_id as u64))
        .unwrap();
    token.expires_at = Some(expires_at);
}

async fn expired_and_expiring_project_tokens_are_replaced(backend: Backend) {
    let w = World::start(backend).await;
    let repo = w.repository().await;
    let token = repo.project_token_id.unwrap();

    // GitLab's clock passes the token's expiry: GitLab refuses it as expired.
    let days = 91 * 86_400;
    w.gitlab
        .control(Method::POST, "/clock/advance", json!({"seconds": days}))
        .await;
    let report = w.doctor(false).await;
    assert!(
        codes(&report).contains(&Code::ProjectTokenExpired),
        "{:#?}",
        report.findings
    );
    w.gitlab
        .control(Method::POST, "/clock/advance", json!({"seconds": -days}))
        .await;
    assert!(w.doctor(false).await.healthy());

    // The token expires today: found, replaced by a new token, clean afterwards.
    let today = w.gitlab.sim().now().date_naive();
    set_token_expiry(&w, token, today);
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::ProjectTokenExpired],
        "{:#?}",
        report.findings
    );
    fix_and_expect_clean(&w).await;
    let token = w.repository().await.project_token_id.unwrap();
    assert_ne!(Some(token), repo.project_token_id);

    // The token expires within the rotation margin: a warning, and the fix rotates it.
    set_token_expiry(&w, token, today + chrono::Duration::days(10));
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::ProjectTokenExpiringSoon],
        "{:#?}",
        report.findings
    );
    assert!(report.findings[0].repairable);
    fix_and_expect_clean(&w).await;
    assert_ne!(w.repository().await.project_token_id, Some(token));
    w.app.stop().await;
}

async fn a_revoked_deploy_token_is_replaced(backend: Backend) {
    let w = World::start(backend).await;
    let repo = w.repository().await;
    let old = repo.deploy_token_id.unwrap();
    // A Maintainer presses Revoke on GitLab's deploy token settings page.
    w.gitlab
        .control(
            Method::POST,
            &format!("/projects/{}/deploy_tokens/{old}/revoke", w.gitlab_project),
            json!({}),
        )
        .await;
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::DeployTokenRevoked],
        "{:#?}",
        report.findings
    );
    fix_and_expect_clean(&w).await;
    assert_ne!(w.repository().await.deploy_token_id, Some(old));
    w.app.stop().await;
}

async fn a_replaced_deploy_key_is_out_of_date_and_replaced(backend: Backend) {
    let w = World::start(backend).await;
    let repo = w.repository().await;
    let old = repo.deploy_key_id.unwrap();
    // GitLab now holds another key under lablink's deploy key (an administrator replaced it).
    w.gitlab.replace_deploy_key(old as u64);
    let report = w.doctor(false).await;
    assert_eq!(
        codes(&report),
        [Code::DeployKeyMismatch],
        "{:#?}",
        report.findings
    );
    assert!(
        report.findings[0]
            .message
            .contains("GitLab Authentication is out of date")
    );
    fix_and_expect_clean(&w).await;
    let after = w.repository().await;
    assert_ne!(after.deploy_key_id, Some(old));
    assert_ne!(after.deploy_key_public, repo.deploy_key_public);
    w.app.stop().await;
}

async fn a_repository_moved_out_of_its_group_says_what_to_do(backend: Backend) {
    let w = World::start(backend).await;
    let group = w.sim_state().await["project"]["namespace"].clone();
    assert_eq!(group["kind"], "group");
    let transfer = format!("/projects/{}/transfer", w.gitlab_project);
    // The Maintainer transfers the project to their personal namespace; GitLab keeps its id.
    let moved = w
        .gitlab
        .control(
            Method::POST,
            &transfer,
            json!({"namespace": {"kind": "user", "id": w.alice}}),
        )
        .await;
    assert_eq!(moved["id"], w.gitlab_project);
    assert_eq!(moved["path_with_namespace"], "alice/warehouse");
    let report = w.doctor(true).await;
    assert_eq!(
        codes(&report),
        [Code::RepositoryNotInGroup],
        "{:#?}",
        report.findings
    );
    assert!(!report.findings[0].repairable);
    assert!(report.findings[0].fix.contains("Transfer project"));
    assert_eq!(report.repairs[0].outcome, Outcome::Manual);
    // Doing what the finding says makes the connection clean.
    w.gitlab
        .control(Method::POST, &transfer, json!({"namespace": group}))
        .await;
    let after = w.doctor(false).await;
    assert!(after.healthy(), "{:#?}", after.findings);
    w.app.stop().await;
}

/// A tag push, as GitLab would send it, with `secret` and signed with `signing`; its status.
async fn deliver(w: &World, repository_id: &str, secret: &str, signing: &str) -> u16 {
    crate::support::webhooks::deliver(
        &w.app.base,
        repository_id,
        "Tag Push Hook",
        br#"{"object_kind":"tag_push"}"#,
        secret,
        Some(signing),
    )
    .await
}

async fn a_webhook_reset_replaces_secret_and_signing_token(backend: Backend) {
    use secrecy::ExposeSecret;
    let w = World::start(backend).await;
    let repo = w.repository().await;
    let hook = repo.hook_id.unwrap();
    let stored = || async {
        let s = w
            .app
            .db
            .repository_secrets(&w.app.keys, &repo.id)
            .await
            .unwrap();
        (
            s.hook_secret.unwrap().expose_secret().to_owned(),
            s.signing_token.map(|t| t.expose_secret().to_owned()),
        )
    };
    let in_gitlab = || {
        let state = w.gitlab.sim().lock();
        let h = &state.hooks[&(hook as u64)];
        (h.token.clone(), h.signing_token.clone())
    };
    let (old_secret, old_signing) = stored().await;
    let old_signing = old_signing.expect("GitLab 19 hooks are signed");
    assert_eq!(
        in_gitlab(),
        (Some(old_secret.clone()), Some(old_signing.clone()))
    );

    // A Maintainer clears the secret token in GitLab: found, and reset.
    let url = w.sim_state().await["hooks"][0]["url"].clone();
    w.as_maintainer(
        Method::PUT,
        &format!("/hooks/{hook}"),
        json!({"url": url, "token": ""}),
    )
    .await;
    let report = w.doctor(false).await;
    assert_eq!(codes(&report), [Code::WebhookSecretMissing]);
    fix_and_expect_clean(&w).await;

    // Both were replaced, and lablink holds what GitLab holds.
    let (secret, signing) = stored().await;
    let signing = signing.unwrap();
    assert_ne!(secret, old_secret);
    assert_ne!(signing, old_signing);
    assert_eq!(in_gitlab(), (Some(secret.clone()), Some(signing.clone())));

    // During the grace window, deliveries GitLab sent before the reset still pass, and the new
    // ones too; a wrong secret does not.
    assert!(deliver(&w, &repo.id, &old_secret, &old_signing).await < 300);
    assert!(deliver(&w, &repo.id, &secret, &signing).await < 300);
    assert_eq!(deliver(&w, &repo.id, "guess", &old_signing).await, 401);

    // After it, only the new secret and signing token verify deliveries (read from the store:
    // intake keeps verified secrets for a moment).
    w.app
        .execute("UPDATE repositories SET hook_secret_grace_until = 0")
        .await;
    let verifying = w
        .app
        .db
        .hook_secrets(&w.app.keys, &repo.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verifying.secret.expose_secret(), secret);
    assert!(verifying.previous.is_none());
    assert_eq!(
        verifying.signing_token.as_ref().map(|t| t.expose_secret()),
        Some(signing.as_str())
    );
    w.app.stop().await;
}

/// A host that runs CI without a sandbox says so in every project's report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_without_a_sandbox_are_reported() {
    let connected = Connected::start(Backend::Sqlite, &[("run_isolation", "none")], None).await;
    let report = connected
        .app
        .services
        .check_connection(&connected.user.account_id, &connected.project, false)
        .await
        .unwrap();
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == Code::RunsNotIsolated)
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(finding.message.contains("not isolated"));
    assert!(finding.fix.contains("bubblewrap"));
}
