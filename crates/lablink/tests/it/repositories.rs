//! Project → Repository against gitlab-sim over HTTP: the import list (groups only, effective
//! access levels), connect all or nothing (a failure at each GitLab step leaves nothing behind),
//! gitlab.com Free, disconnect, move, and the HTTPS fetch into the bare cache with the deploy
//! token.

use std::collections::BTreeSet;
use std::path::Path;

use lablink_core::{Plan, Role};
use lablink_service::Principal;
use lablink_service::repositories::{RepositoryStatus, STOPPED_WHILE_CONNECTING};
use lablink_testkit::git;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::connected::{Linked, connect, create_project};
use crate::support::gitlab::{GitLab, SimUser, lablink_with_operator_app_and, link};
use crate::support::{Backend, Browser, TestApp};

crate::on_both_backends!(
    connect_fetch_disconnect_and_move,
    only_maintainers_connect_and_inherited_ownership_counts,
    a_failure_at_each_step_leaves_nothing_behind,
    gitlab_com_free_connects_with_a_persistent_warning,
    read_only_users_see_projects_but_change_nothing,
    pages_list_connect_and_disconnect_through_forms,
    a_long_list_loads_in_the_background_page_by_page,
    a_fill_cut_short_by_a_dead_replica_completes,
    a_connect_cut_short_by_a_crash_is_rolled_back_later,
    a_crashed_connect_without_its_user_lists_what_is_left,
);

const MAINTAINER_MESSAGE: &str =
    "You need the Maintainer role in GitLab to connect this repository";

/// GitLab with groups `analytics` ⊃ `analytics/dbt`, and lablink (deploy keys on) using the
/// operator application registered in it.
struct World {
    gitlab: GitLab,
    app: TestApp,
    group: u64,
    subgroup: u64,
}

impl World {
    async fn start(backend: Backend) -> World {
        let gitlab = GitLab::start().await;
        let (app, _) = lablink_with_operator_app_and(
            backend,
            &gitlab,
            &[
                ("repository_deploy_keys", "true"),
                ("project_token_days", "90"),
            ],
        )
        .await;
        let group = gitlab.group("analytics", None).await;
        let subgroup = gitlab.group("dbt", Some(group)).await;
        World {
            gitlab,
            app,
            group,
            subgroup,
        }
    }

    /// A lablink user of `role` with `gitlab_user` linked, signed in, and their CSRF token.
    async fn linked(&self, email: &str, role: Role, gitlab_user: &SimUser) -> (Browser, String) {
        let linked = Linked::new(&self.app, &self.gitlab, email, role, gitlab_user).await;
        (linked.browser, linked.csrf)
    }

    async fn commit(&self, project: u64, user: &SimUser, file: &str) -> String {
        self.gitlab
            .control(
                Method::POST,
                &format!("/projects/{project}/repository/commits"),
                json!({"branch": "main", "message": format!("add {file}"), "user_id": user.id,
                       "files": [{"path": file, "content": "select 1\n"}]}),
            )
            .await["sha"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn fault(&self, method: &str, path: &str, status: u16) {
        self.gitlab.fail(Some(method), path, status, 1.0).await;
    }
}

async fn import_rows(browser: &Browser, query: &str) -> Value {
    let res = browser
        .api(
            Method::GET,
            &format!("/api/v1/gitlab/projects{query}"),
            None,
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// The rows of the whole import list: reloads it, waits for the background load, then follows
/// `next_after` page by page.
async fn all_rows(browser: &Browser) -> Vec<Value> {
    let mut page = import_rows(browser, "?refresh=true").await;
    while page["loading"] == true {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        page = import_rows(browser, "").await;
    }
    let mut rows = Vec::new();
    loop {
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        let Some(after) = page["next_after"].as_i64() else {
            return rows;
        };
        page = import_rows(browser, &format!("?after={after}")).await;
    }
}

async fn disconnect(browser: &Browser, csrf: &str, project: &str) -> crate::support::Page {
    browser
        .api(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/repository"),
            None,
            Some(csrf),
        )
        .await
}

/// Nothing of lablink's is live in the GitLab project: no hook, no active project access
/// token, no live deploy token, no deploy key.
fn assert_nothing_left(state: &Value) {
    assert_eq!(state["hooks"].as_array().unwrap().len(), 0, "{state:#}");
    for token in state["project_access_tokens"].as_array().unwrap() {
        assert_eq!(token["revoked"], true, "{token:#}");
    }
    for token in state["deploy_tokens"].as_array().unwrap() {
        assert!(
            token["revoked"] == true || token["deleted"] == true,
            "{token:#}"
        );
    }
    assert_eq!(
        state["deploy_key_links"].as_array().unwrap().len(),
        0,
        "{state:#}"
    );
}

fn pack_files(cache: &Path) -> BTreeSet<String> {
    std::fs::read_dir(cache.join("objects/pack"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".pack"))
                .collect()
        })
        .unwrap_or_default()
}

async fn connect_fetch_disconnect_and_move(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    let other = w.gitlab.project_in(w.group, "marts").await;
    w.gitlab.member(warehouse, alice.id, 40).await;
    w.gitlab.member(other, alice.id, 40).await;
    // A project in alice's personal namespace is never listed.
    let personal = w
        .gitlab
        .control(
            Method::POST,
            "/projects",
            json!({"path": "scratch", "namespace": {"kind": "user", "id": alice.id}}),
        )
        .await["id"]
        .as_u64()
        .unwrap();
    let first = w.commit(warehouse, &alice, "models/a.sql").await;
    let (browser, csrf) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    let project = create_project(&browser, &csrf, "Analytics", "transform").await;

    let rows = all_rows(&browser).await;
    let paths: Vec<&str> = rows
        .iter()
        .map(|r| r["path_with_namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["analytics/dbt/warehouse", "analytics/marts"],
        "{rows:#?}"
    );
    assert!(!rows.iter().any(|r| r["gitlab_project_id"] == personal));
    let row = &rows[0];
    assert_eq!(row["access_level"], 40);
    assert_eq!(row["access_label"], "Maintainer");
    assert_eq!(row["can_connect"], true);
    assert_eq!(row["default_branch"], "main");
    assert_eq!(row["visibility"], "private");
    let searched = import_rows(&browser, "?search=MARTS").await;
    assert_eq!(
        searched["rows"].as_array().unwrap().len(),
        1,
        "{searched:#}"
    );
    assert_eq!(
        searched["rows"][0]["path_with_namespace"],
        "analytics/marts"
    );

    let res = connect(&browser, &csrf, &project, warehouse).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let repo = res.json();
    let repo_id = repo["id"].as_str().unwrap().to_owned();
    assert_eq!(repo["status"], "connected");
    assert_eq!(repo["status_reporting"], true);
    assert_eq!(repo["status_warning"], Value::Null);
    assert_eq!(repo["path_with_namespace"], "analytics/dbt/warehouse");
    let public_key = repo["deploy_key_public"].as_str().unwrap();
    assert!(public_key.starts_with("ssh-ed25519 AAAA") && public_key.ends_with(" lablink"));

    // What exists in GitLab now.
    let state = w.gitlab.project_state(warehouse).await;
    let hooks = state["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook["id"], repo["hook_id"]);
    assert_eq!(
        hook["url"],
        format!("{}/webhooks/gitlab/{repo_id}", w.app.base)
    );
    assert_eq!(hook["enable_ssl_verification"], true);
    assert!(hook["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        hook["signing_token"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    for (event, on) in hook["events"].as_object().unwrap() {
        let wanted = event == "merge_requests_events" || event == "push_events";
        assert_eq!(on.as_bool().unwrap(), wanted, "{event}");
    }
    let tokens = state["project_access_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0]["name"],
        format!("lablink token for GitLab project: {warehouse}")
    );
    assert_eq!(tokens[0]["access_level"], 40);
    assert_eq!(tokens[0]["scopes"], json!(["api", "self_rotate"]));
    let expires =
        chrono::NaiveDate::parse_from_str(tokens[0]["expires_at"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    assert_eq!((expires - chrono::Utc::now().date_naive()).num_days(), 90);
    let deploy = state["deploy_tokens"].as_array().unwrap();
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0]["scopes"], json!(["read_repository"]));
    assert_eq!(deploy[0]["username"], repo["deploy_token_username"]);
    assert_eq!(state["deploy_keys"][0]["key"], public_key);
    // Read only: pushes go with the project access token; only where GitLab has none (and the
    // plan pushes with a shared credential) does the key get write access.
    assert_eq!(state["deploy_key_links"][0]["can_push"], false);

    // Secrets are sealed at rest.
    let secrets = w
        .app
        .db
        .repository_secrets(&w.app.keys, &repo_id)
        .await
        .unwrap();
    use secrecy::ExposeSecret as _;
    let stored = w.app.table_text("repositories").await;
    for secret in [
        secrets.hook_secret.as_ref().unwrap(),
        secrets.signing_token.as_ref().unwrap(),
        secrets.project_token.as_ref().unwrap(),
        secrets.deploy_token.as_ref().unwrap(),
        secrets.deploy_key_private.as_ref().unwrap(),
    ] {
        assert!(!stored.contains(secret.expose_secret()));
    }
    assert_eq!(
        hook["signing_token"].as_str().unwrap(),
        secrets.signing_token.as_ref().unwrap().expose_secret()
    );

    // Real git over HTTPS-style smart HTTP with the deploy token, then an incremental fetch.
    let cache = w.app.services.fetch_repository(&repo_id).await.unwrap();
    assert_eq!(git(&cache, &["rev-parse", "refs/heads/main"]), first);
    let packs = pack_files(&cache);
    let second = w.commit(warehouse, &alice, "models/b.sql").await;
    let again = w.app.services.fetch_repository(&repo_id).await.unwrap();
    assert_eq!(again, cache);
    assert_eq!(git(&cache, &["rev-parse", "refs/heads/main"]), second);
    assert!(
        pack_files(&cache).is_superset(&packs),
        "the first fetch's objects were kept"
    );
    assert_eq!(git(&cache, &["rev-parse", "refs/heads/main~1"]), first);
    let token = secrets.deploy_token.as_ref().unwrap().expose_secret();
    let config = std::fs::read_to_string(cache.join("config")).unwrap();
    assert!(
        !config.contains(token) && !config.contains("extraheader"),
        "{config}"
    );
    assert!(!git(&cache, &["config", "--list"]).contains(token));

    // Disconnect: nothing of lablink's stays in GitLab; the secrets here are gone; the project
    // and its history stay.
    let res = disconnect(&browser, &csrf, &project).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "disconnected");
    assert_nothing_left(&w.gitlab.project_state(warehouse).await);
    let gone = w
        .app
        .db
        .repository_secrets(&w.app.keys, &repo_id)
        .await
        .unwrap();
    assert!(gone.hook_secret.is_none() && gone.deploy_token.is_none());
    assert!(gone.project_token.is_none() && gone.deploy_key_private.is_none());
    let res = browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{project}/repository"),
            None,
            None,
        )
        .await;
    assert_eq!(res.status, 404);
    let kept = browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{project}"),
            None,
            None,
        )
        .await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.json()["repository_id"], Value::Null);
    assert!(w.app.services.fetch_repository(&repo_id).await.is_err());

    // Move: connect the same project to another repository; the old connection stays as history.
    let res = connect(&browser, &csrf, &project, other).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let moved = res.json();
    assert_eq!(moved["path_with_namespace"], "analytics/marts");
    let dbt_project = browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{project}"),
            None,
            None,
        )
        .await
        .json();
    assert_eq!(dbt_project["repository_id"], moved["id"]);
    let history = w.app.db.repositories_of_project(&project).await.unwrap();
    let statuses: Vec<&str> = history.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["connected", "disconnected"]);
    // A second connect while connected is refused.
    let res = connect(&browser, &csrf, &project, warehouse).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_nothing_left(&w.gitlab.project_state(warehouse).await);
    let res = disconnect(&browser, &csrf, &project).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_nothing_left(&w.gitlab.project_state(other).await);

    let audit = w
        .app
        .db
        .audit_entries(
            &repo_account(&w.app, &repo_id).await,
            &lablink_store::audit::AuditFilter::default(),
            50,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "repository.connected")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "repository.disconnected")
            .count(),
        2,
        "{actions:?}"
    );
}

async fn repo_account(app: &TestApp, repo_id: &str) -> String {
    app.db
        .repository(repo_id)
        .await
        .unwrap()
        .unwrap()
        .account_id
}

async fn only_maintainers_connect_and_inherited_ownership_counts(backend: Backend) {
    let w = World::start(backend).await;
    let bob = w.gitlab.user("bob").await;
    let carol = w.gitlab.user("carol").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    w.gitlab.member(warehouse, bob.id, 30).await;
    // carol owns the top-level group: Owner of the project in its subgroup by inheritance.
    w.gitlab
        .control(
            Method::POST,
            &format!("/groups/{}/members", w.group),
            json!({"user_id": carol.id, "access_level": 50}),
        )
        .await;

    let (dev, dev_csrf) = w.linked("bob@acme.test", Role::Developer, &bob).await;
    let project = create_project(&dev, &dev_csrf, "Analytics", "transform").await;
    let rows = all_rows(&dev).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["access_level"], 30);
    assert_eq!(rows[0]["access_label"], "Developer");
    assert_eq!(rows[0]["can_connect"], false);
    assert_eq!(rows[0]["blocked_reason"], MAINTAINER_MESSAGE);
    let res = connect(&dev, &dev_csrf, &project, warehouse).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(res.json()["error"], MAINTAINER_MESSAGE);
    assert_nothing_left(&w.gitlab.project_state(warehouse).await);
    assert!(
        w.app
            .db
            .repositories_of_project(&project)
            .await
            .unwrap()
            .is_empty()
    );

    let (owner, owner_csrf) = w
        .linked("carol@acme.test", Role::AccountAdmin, &carol)
        .await;
    let rows = all_rows(&owner).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["access_level"], 50);
    assert_eq!(rows[0]["can_connect"], true);
    let res = connect(&owner, &owner_csrf, &project, warehouse).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "connected");
}

async fn a_failure_at_each_step_leaves_nothing_behind(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    w.gitlab.member(warehouse, alice.id, 40).await;
    let (browser, csrf) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    let project = create_project(&browser, &csrf, "Analytics", "transform").await;
    let steps = [
        ("hooks", "creating the webhook"),
        ("access_tokens", "creating the project access token"),
        ("deploy_tokens", "creating the deploy token"),
        ("deploy_keys", "adding the SSH deploy key"),
    ];
    for (route, label) in steps {
        w.fault(
            "POST",
            &format!("/api/v4/projects/{warehouse}/{route}"),
            500,
        )
        .await;
        let res = connect(&browser, &csrf, &project, warehouse).await;
        assert_eq!(res.status, 502, "{route}: {}", res.body);
        let message = res.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("Connecting failed while {label}")),
            "{message}"
        );
        assert!(
            message.contains("HTTP 500"),
            "GitLab's reason is shown: {message}"
        );
        assert!(message.contains("nothing was connected"), "{message}");
        assert_nothing_left(&w.gitlab.project_state(warehouse).await);
        let res = browser
            .api(
                Method::GET,
                &format!("/api/v1/projects/{project}/repository"),
                None,
                None,
            )
            .await;
        assert_eq!(res.status, 404, "{route}: nothing half-made is connected");
        w.gitlab.clear_faults().await;
    }
    let history = w.app.db.repositories_of_project(&project).await.unwrap();
    assert_eq!(history.len(), 4);
    for row in &history {
        assert_eq!(row.status, RepositoryStatus::Failed);
        let secrets = w
            .app
            .db
            .repository_secrets(&w.app.keys, &row.id)
            .await
            .unwrap();
        assert!(secrets.hook_secret.is_none() && secrets.deploy_token.is_none());
        assert!(secrets.project_token.is_none() && secrets.deploy_key_private.is_none());
    }
    // With GitLab healthy again the same connect succeeds.
    let res = connect(&browser, &csrf, &project, warehouse).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

async fn gitlab_com_free_connects_with_a_persistent_warning(backend: Backend) {
    let w = World::start(backend).await;
    w.gitlab
        .control(Method::PUT, "/settings", json!({"gitlab_com_free": true}))
        .await;
    let alice = w.gitlab.user("alice").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    w.gitlab.member(warehouse, alice.id, 40).await;
    let (browser, csrf) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    let project = create_project(&browser, &csrf, "Analytics", "transform").await;
    let res = connect(&browser, &csrf, &project, warehouse).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let repo = res.json();
    let warning = "CI status cannot be reported back to GitLab: project access tokens are not available on this GitLab plan";
    assert_eq!(repo["status"], "connected");
    assert_eq!(repo["status_reporting"], false);
    assert_eq!(repo["status_warning"], warning);
    assert_eq!(repo["project_token_id"], Value::Null);
    let state = w.gitlab.project_state(warehouse).await;
    assert_eq!(state["hooks"].as_array().unwrap().len(), 1);
    assert_eq!(state["project_access_tokens"].as_array().unwrap().len(), 0);
    // The warning persists: the project's repository page shows it.
    let page = browser
        .get(&format!("/projects/{project}/repository"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(warning), "{}", page.body);
    let res = disconnect(&browser, &csrf, &project).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_nothing_left(&w.gitlab.project_state(warehouse).await);
}

async fn read_only_users_see_projects_but_change_nothing(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    let (dev, csrf) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    let project = create_project(&dev, &csrf, "Analytics", "transform").await;
    w.app
        .create_user("acme", Plan::Enterprise, "viewer@acme.test", Role::ReadOnly)
        .await;
    let viewer = w.app.login("viewer@acme.test").await;
    let viewer_csrf = viewer.get("/profile/linked-accounts").await.csrf();
    let list = viewer
        .api(Method::GET, "/api/v1/projects", None, None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()[0]["name"], "Analytics");
    assert_eq!(list.json()[0]["subdirectory"], "transform");
    let res = viewer
        .api(
            Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "Mine"})),
            Some(&viewer_csrf),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    let res = connect(&viewer, &viewer_csrf, &project, 1).await;
    assert_eq!(res.status, 403, "{}", res.body);
    // Bad input is refused with a reason and changes nothing.
    let res = dev
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{project}"),
            Some(json!({"name": "Analytics", "subdirectory": "../etc"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.body);
    let res = create_project(&dev, &csrf, "Marts", "transform").await;
    let dup = dev
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{res}"),
            Some(json!({"name": "Analytics"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.body);
    let kept = dev
        .api(
            Method::GET,
            &format!("/api/v1/projects/{project}"),
            None,
            None,
        )
        .await
        .json();
    assert_eq!(kept["subdirectory"], "transform");
}

async fn pages_list_connect_and_disconnect_through_forms(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    let marts = w.gitlab.project_in(w.group, "marts").await;
    w.gitlab.member(warehouse, alice.id, 40).await;
    w.gitlab.member(marts, alice.id, 30).await;
    let (browser, _) = w.linked("dev@acme.test", Role::Developer, &alice).await;

    let list = browser.get("/projects").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let created = browser
        .post_form(
            "/projects",
            &[
                ("csrf_token", &list.csrf()),
                ("name", "Analytics"),
                ("subdirectory", ""),
                ("target_branch", ""),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let project_url = created.location.unwrap();
    let project = browser.get(&project_url).await;
    assert!(
        project.body.contains("No repository connected yet."),
        "{}",
        project.body
    );
    let repo_url = format!("{project_url}/repository");

    let page = browser.get(&repo_url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("analytics/dbt/warehouse"),
        "{}",
        page.body
    );
    assert!(page.body.contains("analytics/marts"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("name=\"gitlab_project_id\" value=\"{warehouse}\"")),
        "{}",
        page.body
    );
    assert!(
        !page
            .body
            .contains(&format!("name=\"gitlab_project_id\" value=\"{marts}\"")),
        "no Connect for a Developer: {}",
        page.body
    );
    assert!(page.body.contains(MAINTAINER_MESSAGE), "{}", page.body);
    let search = browser.get(&format!("{repo_url}?search=marts")).await;
    assert!(search.body.contains("analytics/marts"));
    assert!(
        !search.body.contains("analytics/dbt/warehouse"),
        "{}",
        search.body
    );

    // A failing step is named on the page, and nothing is connected.
    w.fault("POST", &format!("/api/v4/projects/{warehouse}/hooks"), 500)
        .await;
    let csrf = page.csrf();
    let warehouse_id = warehouse.to_string();
    let connect_form = [
        ("csrf_token", csrf.as_str()),
        ("gitlab_project_id", warehouse_id.as_str()),
    ];
    let failed = browser
        .post_form(&format!("{repo_url}/connect"), &connect_form)
        .await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert!(
        failed
            .body
            .contains("Connecting failed while creating the webhook"),
        "{}",
        failed.body
    );
    w.gitlab.clear_faults().await;

    let done = browser
        .post_form(&format!("{repo_url}/connect"), &connect_form)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(project_url.as_str()));
    let hub = browser.get(&project_url).await;
    assert!(
        hub.body
            .contains("Connected analytics/dbt/warehouse: lablink created"),
        "{}",
        hub.body
    );
    let connected = browser.get(&repo_url).await;
    assert!(
        connected.body.contains("Created in GitLab"),
        "{}",
        connected.body
    );
    assert!(connected.body.contains("Webhook"));
    assert!(
        connected
            .body
            .contains(&format!("lablink token for GitLab project: {warehouse}"))
    );
    assert!(connected.body.contains("Deploy token"));
    assert!(connected.body.contains("SSH deploy key"));
    assert!(connected.body.contains("ssh-ed25519 AAAA"));
    assert!(!connected.body.contains("status-warning"));

    let confirm = browser.get(&format!("{repo_url}/disconnect")).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("Disconnect analytics/dbt/warehouse?"),
        "{}",
        confirm.body
    );
    let gone = browser
        .post_form(
            &format!("{repo_url}/disconnect"),
            &[("csrf_token", &confirm.csrf())],
        )
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    assert_nothing_left(&w.gitlab.project_state(warehouse).await);
    let after = browser.get(&repo_url).await;
    assert!(after.body.contains("Earlier connections"), "{}", after.body);
    assert!(after.body.contains("disconnected"));
    assert!(after.body.contains("Connect a GitLab repository"));
}

async fn a_long_list_loads_in_the_background_page_by_page(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    // Maintainer of the subgroup: 130 projects are more than GitLab's 100 per page.
    w.gitlab
        .control(
            Method::POST,
            &format!("/groups/{}/members", w.subgroup),
            json!({"user_id": alice.id, "access_level": 40}),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..130 {
        ids.push(
            w.gitlab
                .project_in(w.subgroup, &format!("model-{i:03}"))
                .await as i64,
        );
    }
    let (browser, _) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    let rows = all_rows(&browser).await;
    let listed: Vec<i64> = rows
        .iter()
        .map(|r| r["gitlab_project_id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, ids, "every project once, in id order");
    assert!(
        rows.iter()
            .all(|r| r["access_level"] == 40 && r["can_connect"] == true)
    );
    let found = import_rows(&browser, "?search=model-127").await;
    assert_eq!(found["loading"], false);
    assert_eq!(found["loaded"], 130);
    assert_eq!(found["rows"].as_array().unwrap().len(), 1, "{found:#}");
    assert_eq!(
        found["rows"][0]["path_with_namespace"],
        "analytics/dbt/model-127"
    );

    // GitLab failing to list is reported, with its reason.
    w.fault("GET", "/api/v4/projects", 503).await;
    let res = browser
        .api(
            Method::GET,
            "/api/v1/gitlab/projects?refresh=true",
            None,
            None,
        )
        .await;
    assert_eq!(res.status, 502, "{}", res.body);
    assert!(
        res.json()["error"].as_str().unwrap().contains("503"),
        "{}",
        res.body
    );
}

/// A connect cut short by a crash: the `connecting` row its dead process left behind.
struct Crashed {
    browser: Browser,
    csrf: String,
    project: String,
    warehouse: u64,
    caller: Principal,
    row: lablink_store::repositories::Repository,
}

/// lablink dies between creating the deploy token and the deploy key: the connect future is
/// dropped mid-step (no rollback of its own runs), like a killed process.
async fn crash_mid_connect(w: &World) -> Crashed {
    let alice = w.gitlab.user("alice").await;
    let warehouse = w.gitlab.project_in(w.subgroup, "warehouse").await;
    w.gitlab.member(warehouse, alice.id, 40).await;
    let user = w
        .app
        .create_user("acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let browser = w.app.login("dev@acme.test").await;
    link(&browser, &w.gitlab, &alice).await;
    let csrf = browser.get("/profile/linked-accounts").await.csrf();
    let project = create_project(&browser, &csrf, "Analytics", "transform").await;
    // Adding the deploy key hangs: the process is "killed" while it waits.
    w.gitlab
        .delay(
            Some("POST"),
            &format!("/api/v4/projects/{warehouse}/deploy_keys"),
            600_000,
        )
        .await;
    let caller = Principal {
        user_id: user.id,
        email: user.email,
        username: "dev".into(),
        role: Role::Developer,
        account_id: user.account_id,
        account_name: "acme".into(),
        plan: Plan::Enterprise,
    };
    let connecting = {
        let (services, caller, project) = (w.app.services.clone(), caller.clone(), project.clone());
        tokio::spawn(async move {
            services
                .connect_repository(&caller, &project, i64::try_from(warehouse).unwrap(), None)
                .await
        })
    };
    let row = loop {
        let live = w.app.db.live_repository_of_project(&project).await.unwrap();
        if let Some(row) = live.filter(|r| r.deploy_token_id.is_some()) {
            break row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    connecting.abort();
    assert!(connecting.await.unwrap_err().is_cancelled());
    w.gitlab.clear_faults().await;

    // What the dead process left: a `connecting` row with every id GitLab had returned.
    assert_eq!(row.status, RepositoryStatus::Connecting);
    assert!(row.hook_id.is_some() && row.project_token_id.is_some());
    assert!(row.deploy_key_id.is_none());
    let state = w.gitlab.project_state(warehouse).await;
    assert_eq!(state["hooks"].as_array().unwrap().len(), 1, "{state:#}");
    let res = connect(&browser, &csrf, &project, warehouse).await;
    assert_eq!(
        res.status, 409,
        "the stuck row blocks the project: {}",
        res.body
    );
    Crashed {
        browser,
        csrf,
        project,
        warehouse,
        caller,
        row,
    }
}

/// The recovery removes what the row says was created, as the connecting user, and frees the
/// project.
async fn a_connect_cut_short_by_a_crash_is_rolled_back_later(backend: Backend) {
    let w = World::start(backend).await;
    let c = crash_mid_connect(&w).await;
    let recovered = w
        .app
        .services
        .recover_stale_connections(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(recovered, 1);
    assert_nothing_left(&w.gitlab.project_state(c.warehouse).await);
    let failed = w.app.db.repository(&c.row.id).await.unwrap().unwrap();
    assert_eq!(failed.status, RepositoryStatus::Failed);
    assert_eq!(
        failed.status_warning.as_deref(),
        Some(STOPPED_WHILE_CONNECTING)
    );
    let secrets = w
        .app
        .db
        .repository_secrets(&w.app.keys, &c.row.id)
        .await
        .unwrap();
    assert!(secrets.hook_secret.is_none() && secrets.deploy_token.is_none());
    assert!(secrets.project_token.is_none() && secrets.deploy_key_private.is_none());
    // Nothing is stale any more, and the project connects again.
    let again = w
        .app
        .services
        .recover_stale_connections(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let res = connect(&c.browser, &c.csrf, &c.project, c.warehouse).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["status"], "connected");
}

/// Without the connecting user's GitLab account nothing can be removed: the project is freed
/// anyway, and the row names what is left in GitLab for an admin to delete.
async fn a_crashed_connect_without_its_user_lists_what_is_left(backend: Backend) {
    let w = World::start(backend).await;
    let c = crash_mid_connect(&w).await;
    w.app.services.unlink_gitlab(&c.caller).await.unwrap();
    let recovered = w
        .app
        .services
        .recover_stale_connections(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(recovered, 1);
    let failed = w.app.db.repository(&c.row.id).await.unwrap().unwrap();
    assert_eq!(failed.status, RepositoryStatus::Failed);
    let reason = failed.status_warning.unwrap();
    assert!(
        reason.contains("could not remove these from GitLab"),
        "{reason}"
    );
    for id in [c.row.hook_id, c.row.project_token_id, c.row.deploy_token_id] {
        assert!(reason.contains(&id.unwrap().to_string()), "{reason}");
    }
    let state = w.gitlab.project_state(c.warehouse).await;
    assert_eq!(state["hooks"].as_array().unwrap().len(), 1, "{state:#}");
    assert!(
        w.app
            .db
            .live_repository_of_project(&c.project)
            .await
            .unwrap()
            .is_none(),
        "the project is free to connect again"
    );
}

/// The import list's fill job: `(status, attempts, locked_by)`.
async fn fill_job(app: &TestApp) -> Option<(String, i64, Option<String>)> {
    // The queue item's kind as stored.
    const FILL_IMPORT_LIST_JOB: &str = "repositories.fill_import_list";
    let sql = "SELECT status, attempts, locked_by FROM jobs WHERE kind = $1";
    match &app.db {
        lablink_store::Db::Sqlite(pool) => sqlx::query_as(sql)
            .bind(FILL_IMPORT_LIST_JOB)
            .fetch_optional(pool)
            .await
            .unwrap(),
        lablink_store::Db::Postgres(pool) => sqlx::query_as(sql)
            .bind(FILL_IMPORT_LIST_JOB)
            .fetch_optional(pool)
            .await
            .unwrap(),
    }
}

async fn a_fill_cut_short_by_a_dead_replica_completes(backend: Backend) {
    let w = World::start(backend).await;
    let alice = w.gitlab.user("alice").await;
    w.gitlab
        .control(
            Method::POST,
            &format!("/groups/{}/members", w.subgroup),
            json!({"user_id": alice.id, "access_level": 40}),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..130 {
        ids.push(
            w.gitlab
                .project_in(w.subgroup, &format!("model-{i:03}"))
                .await as i64,
        );
    }
    let (browser, _) = w.linked("dev@acme.test", Role::Developer, &alice).await;
    // GitLab answers project lists slowly, so the replica's fill job is still waiting for the
    // second page when that replica "dies" (its lease is made to run out, as a crash leaves it).
    w.gitlab.delay(Some("GET"), "/api/v4/projects", 5000).await;
    let first = import_rows(&browser, "?refresh=true").await;
    assert_eq!(first["loading"], true, "{first:#}");
    assert_eq!(first["loaded"], 100);
    while fill_job(&w.app).await.map(|j| j.0) != Some("running".into()) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    w.app
        .execute("UPDATE jobs SET locked_until = 0 WHERE kind = 'repositories.fill_import_list'")
        .await;
    w.gitlab.sim().clear_faults();
    // Another replica takes the job over and resumes from the stored progress.
    let dir = tempfile::tempdir().unwrap();
    let replica =
        lablink_service::ci::executor::CiRuntime::new(dir.path().to_owned(), "replica-2".into());
    while w.app.services.run_next_queue_item(&replica).await.unwrap() {}
    let (status, attempts, _) = fill_job(&w.app).await.unwrap();
    assert_eq!((status.as_str(), attempts), ("done", 2), "claimed twice");
    let mut page = import_rows(&browser, "").await;
    assert_eq!(page["loading"], false, "{page:#}");
    assert_eq!(page["loaded"], 130);
    assert!(page["error"].is_null(), "{page:#}");
    let mut listed = Vec::new();
    loop {
        listed.extend(
            page["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["gitlab_project_id"].as_i64().unwrap()),
        );
        let Some(after) = page["next_after"].as_i64() else {
            break;
        };
        page = import_rows(&browser, &format!("?after={after}")).await;
    }
    assert_eq!(listed, ids, "every project once, in id order");
}
