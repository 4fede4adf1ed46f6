//! The workspace through its JSON API, with real git against the simulator: files edited and
//! saved (kept in the database, so a lost checkout loses nothing), the protected default
//! branch, branches, commit and sync as the user's own GitLab account, the refusals GitLab's
//! roles, protected branches and push rules cause (in GitLab's words, nothing lost), pull,
//! change branch with uncommitted changes, rollback, and paths that try to leave the checkout.

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::sign_in_to_lablink;
use crate::on_both_backends;
use crate::support::connected::Connected;
use crate::support::guide;
use crate::support::webdriver::Browser as Chromium;
use crate::support::webhooks::last_pusher;
use crate::support::{Backend, Page};

on_both_backends!(
    a_developer_edits_commits_and_pushes_as_themselves,
    developer_plans_push_with_the_shared_credential,
    a_conflict_with_the_default_branch_is_resolved_in_the_workspace,
    branches_deleted_in_gitlab_are_pruned_on_refresh,
    disk_use_is_measured_capped_and_given_back,
    on_gitlab_com_free_the_workspace_pushes_with_the_deploy_key,
);

/// The workspace page in Chromium: the editor is CodeMirror (loaded under the page's Content
/// Security Policy), typing and Save keep the change, and "Commit to a new branch" pushes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_page_edits_and_commits_in_a_real_browser() {
    let seed = dbt_project();
    let c = Connected::start(Backend::Sqlite, &[], Some(seed.path())).await;
    let chromium = Chromium::start().await;
    sign_in_to_lablink(&chromium, &c.app, "dev@acme.test").await;
    chromium
        .goto(&format!(
            "{}/projects/{}/workspace?file=models/orders.sql",
            c.app.base, c.project
        ))
        .await;
    chromium.wait_for_text("Version control").await;
    // CodeMirror replaced the textarea (its script ran despite no inline script being allowed).
    let editor = chromium.find(".cm-editor .cm-content").await;
    assert!(editor.text().await.contains("select 1 as id"));
    editor.click().await;
    editor.send_keys("-- reviewed\n").await;
    chromium.find("#save").await.click().await;
    chromium.wait_for_text("Saved.").await;
    let saved = Ws { c: &c }
        .call(Method::GET, "/files?path=models/orders.sql", None)
        .await
        .json();
    assert!(
        saved["text"].as_str().unwrap().contains("-- reviewed"),
        "{saved}"
    );
    chromium.wait_for_text("1 uncommitted change").await;

    // On the protected default branch the button commits to a new branch.
    chromium
        .find("#new-branch")
        .await
        .send_keys("feature/reviewed")
        .await;
    chromium
        .find("#commit-message")
        .await
        .send_keys("Review orders")
        .await;
    assert_eq!(
        chromium.find("#commit").await.text().await,
        "Commit to a new branch"
    );
    chromium.find("#commit").await.click().await;
    chromium.wait_for_text("and pushed it to GitLab").await;
    chromium.find("#ws-new-mr").await;
    assert_eq!(
        gitlab_branch(&c, "feature/reviewed").await["name"],
        "feature/reviewed"
    );
    // The merge request, opened from the page through GitLab's API as the user.
    chromium.find("#mr-title").await.clear().await;
    chromium
        .find("#mr-title")
        .await
        .send_keys("Review the orders model")
        .await;
    chromium.find("#open-mr").await.click().await;
    chromium.wait_for_text("is open in GitLab").await;
    let state = c.gitlab.project_state(c.gitlab_project).await;
    let mr = &state["merge_requests"][0];
    assert_eq!(
        (mr["title"].as_str(), mr["source_branch"].as_str()),
        (Some("Review the orders model"), Some("feature/reviewed"))
    );
    chromium.quit().await;
}

const DEVELOPER: u8 = 30;
const REPORTER: u8 = 20;

pub(crate) fn dbt_project() -> tempfile::TempDir {
    let seed = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let full = seed.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    write("dbt_project.yml", "name: warehouse\nversion: '1.0'\n");
    write("models/orders.sql", "select 1 as id\n");
    write(".gitignore", "target/\ndbt_packages/\nlogs/\n");
    seed
}

pub(crate) struct Ws<'a> {
    pub(crate) c: &'a Connected,
}

impl Ws<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/projects/{}/workspace{rest}", self.c.project)
    }

    pub(crate) async fn call(&self, method: Method, rest: &str, body: Option<Value>) -> Page {
        self.c
            .browser
            .api(method, &self.path(rest), body, Some(&self.c.csrf))
            .await
    }

    pub(crate) async fn view(&self) -> Value {
        let res = self.call(Method::GET, "", None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.json()
    }

    pub(crate) async fn save(&self, path: &str, text: &str) {
        let res = self
            .call(
                Method::PUT,
                "/files",
                Some(json!({"path": path, "text": text})),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.body);
    }

    async fn commit(&self, message: &str) -> Page {
        self.call(Method::POST, "/commit", Some(json!({"message": message})))
            .await
    }
}

fn state_of(view: &Value, path: &str) -> Value {
    view["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .map_or(Value::String("absent".into()), |f| f["state"].clone())
}

/// `GET /api/v4/projects/:id/repository/branches/:name` as alice.
async fn gitlab_branch(c: &Connected, name: &str) -> Value {
    let pat = c.gitlab.personal_token(c.alice.id, "check").await;
    reqwest::Client::new()
        .get(format!(
            "{}/api/v4/projects/{}/repository/branches/{}",
            c.gitlab.base,
            c.gitlab_project,
            name.replace('/', "%2F")
        ))
        .header("PRIVATE-TOKEN", pat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn a_developer_edits_commits_and_pushes_as_themselves(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };

    // First use: the default branch, protected, with the repository's files.
    let view = ws.view().await;
    assert_eq!(view["branch"], "main");
    assert_eq!(view["protected"], true);
    assert_eq!(state_of(&view, "models/orders.sql"), Value::Null);
    assert!(view["pushes_as"].as_str().unwrap().contains("@alice"));

    // Edit and create files; the tree shows their state, the diff the change.
    ws.save("models/orders.sql", "select 1 as id, 'new' as status\n")
        .await;
    let res = ws
        .call(
            Method::POST,
            "/files",
            Some(json!({"path": "models/customers.sql", "text": "select 2 as id\n"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = ws
        .call(
            Method::POST,
            "/files",
            Some(json!({"path": "models/customers.sql", "text": "again"})),
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    let view = ws.view().await;
    assert_eq!(state_of(&view, "models/orders.sql"), "modified");
    assert_eq!(state_of(&view, "models/customers.sql"), "untracked");
    assert_eq!(view["changes"], 2);
    let diff = ws
        .call(Method::GET, "/diff?path=models/orders.sql", None)
        .await
        .json();
    assert!(
        diff["diff"]
            .as_str()
            .unwrap()
            .contains("+select 1 as id, 'new' as status"),
        "{diff}"
    );

    // Paths that leave the checkout or enter .git are refused.
    for bad in ["../../etc/passwd", ".git/config", "/models/../../x"] {
        let res = ws
            .call(Method::GET, &format!("/files?path={bad}"), None)
            .await;
        assert_eq!(res.status, 422, "{bad}: {}", res.body);
    }

    // Nothing saved is lost with the checkout: the replica reclaims idle checkouts (here
    // every one), as a restart on a new machine or another replica would have none.
    let workspace_dir = c
        .app
        .data_dir()
        .join("workspaces")
        .join(view["id"].as_str().unwrap());
    assert!(workspace_dir.is_dir());
    c.app
        .services
        .reclaim_workspace_checkouts(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(!workspace_dir.exists());
    let file = ws
        .call(Method::GET, "/files?path=models/customers.sql", None)
        .await
        .json();
    assert_eq!(file["text"], "select 2 as id\n");
    assert_eq!(ws.view().await["changes"], 2);

    // The default branch can be edited but not committed to.
    let res = ws.commit("Add customers").await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body.contains("main is the protected branch"),
        "{}",
        res.body
    );

    // A new branch takes the changes along; commit and sync pushes it as alice.
    let res = ws
        .call(
            Method::POST,
            "/branches",
            Some(json!({"name": "feature/customers"})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    let res = ws
        .call(Method::POST, "/branches", Some(json!({"name": "bad name"})))
        .await;
    assert_eq!(res.status, 422, "{}", res.body);
    let view = ws.view().await;
    assert_eq!(view["branch"], "feature/customers");
    assert_eq!(view["changes"], 2);
    let res = ws.commit("Add customers").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let committed = res.json();
    assert!(
        committed["new_merge_request_url"]
            .as_str()
            .unwrap()
            .contains("merge_requests/new"),
        "{committed}"
    );
    let branch = gitlab_branch(&c, "feature/customers").await;
    assert_eq!(branch["commit"]["id"], committed["sha"]);
    assert_eq!(last_pusher(&c.app.db, &c.repository_id).await, "alice");
    let view = ws.view().await;
    assert_eq!(view["changes"], 0);
    assert_eq!(state_of(&view, "models/customers.sql"), Value::Null);
    let pushed = c
        .app
        .db
        .audit_entries(&c.user.account_id, &Default::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "workspace.pushed")
        .expect("the push is audited");
    assert!(
        pushed.detail.contains("as your GitLab account @alice"),
        "{}",
        pushed.detail
    );

    // Changing branch with uncommitted changes: a clear choice, never a silent loss.
    ws.save("models/orders.sql", "select 3 as id\n").await;
    let res = ws
        .call(Method::POST, "/checkout", Some(json!({"branch": "main"})))
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body.contains("commit them, or revert them"),
        "{}",
        res.body
    );
    assert_eq!(ws.view().await["changes"], 1);
    let res = ws
        .call(
            Method::POST,
            "/checkout",
            Some(json!({"branch": "main", "discard_changes": true})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    let view = ws.view().await;
    assert_eq!(
        (view["branch"].as_str(), view["changes"].as_u64()),
        (Some("main"), Some(0))
    );

    // Rollback to remote drops what was saved.
    ws.save("models/scratch.sql", "select 4\n").await;
    let res = ws.call(Method::POST, "/rollback", None).await;
    assert_eq!(res.status, 204, "{}", res.body);
    let view = ws.view().await;
    assert_eq!(view["changes"], 0);
    assert_eq!(state_of(&view, "models/scratch.sql"), "absent");

    // Reporter: GitLab's role is named before anything is pushed; pulling still works.
    let res = ws
        .call(
            Method::POST,
            "/checkout",
            Some(json!({"branch": "feature/customers"})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    c.gitlab
        .member(c.gitlab_project, c.alice.id, REPORTER)
        .await;
    ws.save("models/orders.sql", "select 5 as id\n").await;
    let res = ws.commit("As a reporter").await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(
        res.body
            .contains("You have the Reporter role on analytics/warehouse in GitLab (as @alice); pushing needs Developer"),
        "{}",
        res.body
    );
    assert_eq!(ws.view().await["changes"], 1);
    let res = ws.call(Method::POST, "/revert", Some(json!({}))).await;
    assert_eq!(res.status, 204, "{}", res.body);
    let res = ws.call(Method::POST, "/pull", None).await;
    assert_eq!(res.status, 200, "{}", res.body);

    // Developer: a push rule refuses the commit message in GitLab's words; the change stays.
    c.gitlab
        .member(c.gitlab_project, c.alice.id, DEVELOPER)
        .await;
    let maintainer_pat = {
        let owner = c.gitlab.user("owner").await;
        c.gitlab.member(c.gitlab_project, owner.id, 40).await;
        c.gitlab.personal_token(owner.id, "rules").await
    };
    let res = reqwest::Client::new()
        .post(format!(
            "{}/api/v4/projects/{}/push_rule",
            c.gitlab.base, c.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &maintainer_pat)
        .json(&json!({"commit_message_regex": "^JIRA-[0-9]+"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    ws.save("models/orders.sql", "select 6 as id\n").await;
    let res = ws.commit("No ticket").await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(
        res.body
            .contains("Commit message does not follow the pattern '^JIRA-[0-9]+'"),
        "{}",
        res.body
    );
    assert_eq!(ws.view().await["changes"], 1);
    let res = ws.commit("JIRA-7 Orders by id").await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Reverting it makes a "Revert …" commit the push rule refuses: undone, nothing changed.
    let view = ws.view().await;
    let last = view["recent_commits"][0].clone();
    assert_eq!(last["title"], "JIRA-7 Orders by id");
    let res = ws
        .call(
            Method::POST,
            "/revert-commit",
            Some(json!({"sha": last["sha"]})),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(
        res.body
            .contains("Commit message does not follow the pattern"),
        "{}",
        res.body
    );
    assert_eq!(ws.view().await["head_sha"], last["sha"]);
    let refused = c
        .app
        .db
        .audit_entries(&c.user.account_id, &Default::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "workspace.push_refused")
        .count();
    assert_eq!(refused, 1);
}

/// On the Developer plan the workspace pushes with the repository's project access token, and
/// says so; the commit names the user as its author.
async fn developer_plans_push_with_the_shared_credential(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    c.app
        .set_account_plan(&c.user.account_id, Plan::Developer)
        .await;
    let ws = Ws { c: &c };
    let view = ws.view().await;
    assert!(
        view["pushes_as"]
            .as_str()
            .unwrap()
            .contains("the repository's shared project access token"),
        "{view}"
    );
    let res = ws
        .call(Method::POST, "/branches", Some(json!({"name": "shared"})))
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    ws.save("models/orders.sql", "select 7 as id\n").await;
    let res = ws.commit("Through the shared token").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let pusher = last_pusher(&c.app.db, &c.repository_id).await;
    assert!(
        pusher.starts_with(&format!("project_{}_bot", c.gitlab_project)),
        "{pusher}"
    );
    let commit = gitlab_branch(&c, "shared").await["commit"].clone();
    assert_eq!(commit["author_email"], "dev@acme.test", "{commit}");
    // Revert that commit: a new commit undoes it, pushed the same way.
    let res = ws
        .call(
            Method::POST,
            "/revert-commit",
            Some(json!({"sha": commit["id"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let reverted = gitlab_branch(&c, "shared").await["commit"].clone();
    assert!(
        reverted["title"].as_str().unwrap().starts_with("Revert"),
        "{reverted}"
    );
    let file = ws
        .call(Method::GET, "/files?path=models/orders.sql", None)
        .await
        .json();
    assert_eq!(file["text"], "select 1 as id\n");
    let res = ws
        .call(
            Method::POST,
            "/revert-commit",
            Some(json!({"sha": "0123456789abcdef0123456789abcdef01234567"})),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.body);
}

/// The seed's troubleshooting "Fix in the Studio IDE" through the workspace page in Chromium: the
/// banner names what `.gitignore` misses and what is tracked, one button fixes both on a new
/// branch and pushes it, the merge request is offered, and the user changes back to main.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_gitignore_fix_is_one_action_in_the_workspace() {
    let seed = dbt_project();
    std::fs::write(seed.path().join(".gitignore"), "# dbt\n").unwrap();
    std::fs::create_dir_all(seed.path().join("target")).unwrap();
    std::fs::write(seed.path().join("target/run_results.json"), "{}").unwrap();
    let c = Connected::start(Backend::Sqlite, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };
    let view = ws.view().await;
    assert_eq!(
        view["gitignore"],
        json!({"missing": ["target/", "dbt_packages/", "logs/", "dbt_modules/"], "tracked": ["target/"]})
    );

    let chromium = Chromium::start().await;
    chromium.set_viewport(1280, 900).await;
    let shots = guide::screenshot_dir("gitignore-fix");
    let shoot = |name: &'static str| {
        let (chromium, shots) = (&chromium, &shots);
        async move {
            let taken = shots.join(name);
            chromium.screenshot(&taken).await;
            guide::keep(&taken, &format!("walks/gitignore-fix/{name}"));
        }
    };
    sign_in_to_lablink(&chromium, &c.app, "dev@acme.test").await;
    chromium
        .goto(&format!("{}/projects/{}/workspace", c.app.base, c.project))
        .await;
    let page = chromium
        .wait_for_text(".gitignore needs dbt's build folders")
        .await;
    assert!(page.contains("target/ is committed to git"), "{page}");
    shoot("1-banner.png").await;
    chromium.find("#fix-gitignore").await.click().await;
    chromium
        .wait_for_text("Fixed .gitignore on lablink/fix-gitignore and pushed it")
        .await;
    chromium.find("#ws-new-mr").await;
    shoot("2-fixed-on-a-branch.png").await;
    let view = ws.view().await;
    assert_eq!(view["branch"], "lablink/fix-gitignore");
    assert_eq!(view["gitignore"], Value::Null);
    assert_eq!(state_of(&view, "target/run_results.json"), "absent");
    let rules = ws
        .call(Method::GET, "/files?path=.gitignore", None)
        .await
        .json();
    assert_eq!(
        rules["text"],
        "# dbt\ntarget/\ndbt_packages/\nlogs/\ndbt_modules/\n"
    );
    assert_eq!(
        gitlab_branch(&c, "lablink/fix-gitignore").await["name"],
        "lablink/fix-gitignore"
    );
    // The merge request, opened from the page, and merged in GitLab by a Maintainer.
    chromium.find("#open-mr").await.click().await;
    chromium.wait_for_text("is open in GitLab").await;
    let state = c.gitlab.project_state(c.gitlab_project).await;
    let iid = state["merge_requests"][0]["iid"].as_u64().unwrap();
    as_alice(
        &c,
        Method::PUT,
        &format!("/merge_requests/{iid}/merge"),
        None,
    )
    .await;
    // Back to main and pull, as the seed's last step says: the banner is gone there too.
    chromium
        .find("#checkout-branch option[value='main']")
        .await
        .click()
        .await;
    chromium
        .find("#ws-git form[action$='/checkout'] button")
        .await
        .click()
        .await;
    chromium.wait_for_text("You are on main.").await;
    chromium
        .find("#ws-git form[action$='/pull'] button")
        .await
        .click()
        .await;
    let page = chromium
        .wait_for_text("main is up to date with GitLab.")
        .await;
    assert!(
        !page.contains(".gitignore needs dbt's build folders"),
        "{page}"
    );
    shoot("3-main-pulled.png").await;
    let view = ws.view().await;
    assert_eq!(view["gitignore"], Value::Null);
    assert_eq!(state_of(&view, "target/run_results.json"), "absent");
    chromium.quit().await;
}

/// A GitLab API call as alice.
async fn as_alice(c: &Connected, method: Method, path: &str, body: Option<Value>) -> Value {
    let pat = c.gitlab.personal_token(c.alice.id, "api").await;
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!(
                "{}/api/v4/projects/{}{path}",
                c.gitlab.base, c.gitlab_project
            ),
        )
        .header("PRIVATE-TOKEN", pat);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// "Pull changes from main" into a branch that changed the same lines: the conflict is shown
/// with git's markers, survives the loss of the checkout, blocks the commit until resolved, and
/// "Commit and resolve" pushes a merge commit.
async fn a_conflict_with_the_default_branch_is_resolved_in_the_workspace(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };
    let res = ws
        .call(
            Method::POST,
            "/branches",
            Some(json!({"name": "feature/conflict"})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    ws.save("models/orders.sql", "select 'ours' as id\n").await;
    assert_eq!(ws.commit("Ours").await.status, 200);
    // Meanwhile someone changes the same line on main in GitLab.
    as_alice(
        &c,
        Method::POST,
        "/repository/commits",
        Some(json!({
            "branch": "main",
            "commit_message": "Theirs",
            "actions": [{"action": "update", "file_path": "models/orders.sql",
                         "content": "select 'theirs' as id\n"}],
        })),
    )
    .await;

    let res = ws.call(Method::POST, "/merge-default-branch", None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let merge = res.json();
    assert_eq!(merge["outcome"], "conflicts");
    assert_eq!(merge["conflicts"], json!(["models/orders.sql"]));
    // The conflict is kept in the database: a new checkout shows it the same.
    let view = ws.view().await;
    std::fs::remove_dir_all(
        c.app
            .data_dir()
            .join("workspaces")
            .join(view["id"].as_str().unwrap()),
    )
    .unwrap();
    let view = ws.view().await;
    assert_eq!(view["merging"], json!(["models/orders.sql"]));
    assert_eq!(state_of(&view, "models/orders.sql"), "conflicted");
    let file = ws
        .call(Method::GET, "/files?path=models/orders.sql", None)
        .await
        .json();
    let text = file["text"].as_str().unwrap();
    assert!(
        text.contains("<<<<<<< ")
            && text.contains("select 'theirs' as id")
            && text.contains(">>>>>>> "),
        "{text}"
    );

    // Committing with markers left is refused; resolved, it pushes a merge commit.
    let res = ws.commit("Merge main").await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body
            .contains("Resolve the conflicts in models/orders.sql"),
        "{}",
        res.body
    );
    ws.save("models/orders.sql", "select 'both' as id\n").await;
    assert_eq!(ws.view().await["merging"], json!([]));
    let res = ws.commit("Merge main into feature/conflict").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let sha = res.json()["sha"].as_str().unwrap().to_owned();
    let commit = gitlab_branch(&c, "feature/conflict").await["commit"].clone();
    assert_eq!(commit["id"], sha.as_str());
    assert_eq!(
        commit["parent_ids"].as_array().unwrap().len(),
        2,
        "{commit}"
    );
    let view = ws.view().await;
    assert_eq!(
        (view["merging"].clone(), view["changes"].clone()),
        (Value::Null, json!(0))
    );

    // Up to date afterwards; a second merge attempt says so.
    let again = ws
        .call(Method::POST, "/merge-default-branch", None)
        .await
        .json();
    assert_eq!(again["outcome"], "up_to_date");
}

/// "Refresh git state" prunes the branches deleted in GitLab, says which, and says when the
/// workspace's own branch is not in GitLab.
async fn branches_deleted_in_gitlab_are_pruned_on_refresh(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };
    as_alice(
        &c,
        Method::POST,
        "/repository/branches",
        Some(json!({"branch": "old-feature", "ref": "main"})),
    )
    .await;
    let refreshed = ws.call(Method::POST, "/refresh", None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert!(
        refreshed.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Refreshed from GitLab: 2 branches."),
        "{}",
        refreshed.body
    );
    assert!(
        ws.view().await["branches"]
            .as_array()
            .unwrap()
            .contains(&json!("old-feature"))
    );

    // Someone deletes the branch in GitLab (a merged merge request's source branch).
    let pat = c.gitlab.personal_token(c.alice.id, "delete").await;
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/v4/projects/{}/repository/branches/old-feature",
            c.gitlab.base, c.gitlab_project
        ))
        .header("PRIVATE-TOKEN", pat)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let refreshed = ws.call(Method::POST, "/refresh", None).await;
    let said = refreshed.json()["message"].as_str().unwrap().to_owned();
    assert!(
        said.contains("Pruned the branches deleted in GitLab: old-feature."),
        "{said}"
    );
    assert!(
        !ws.view().await["branches"]
            .as_array()
            .unwrap()
            .contains(&json!("old-feature"))
    );

    // A branch made in the workspace and not pushed yet is not in GitLab: the refresh says so.
    let created = ws
        .call(Method::POST, "/branches", Some(json!({"name": "wip"})))
        .await;
    assert!(created.status < 300, "{}", created.body);
    let said = ws.call(Method::POST, "/refresh", None).await.json()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(said.contains("Your branch wip is not in GitLab"), "{said}");
}

/// The workspace's size once it was measured at `at_least` bytes or more.
async fn measured(ws: &Ws<'_>, at_least: i64) -> i64 {
    for _ in 0..100 {
        let bytes = ws.view().await["disk_bytes"].as_i64().unwrap();
        if bytes >= at_least {
            return bytes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the workspace was not measured at {at_least} bytes or more");
}

/// Disk use: each checkout is measured after it changed, the account's admin sees every
/// workspace's and sets the account's cap; past it saving is refused in words (nothing saved is
/// lost), and deleting a workspace gives its disk back.
async fn disk_use_is_measured_capped_and_given_back(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };
    let first = measured(&ws, 1).await;

    c.app
        .create_user(
            "acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let admin = c.app.login("admin@acme.test").await;
    let admin_csrf = admin.get("/profile").await.csrf();
    let listed = admin
        .api(Method::GET, "/api/v1/workspaces", None, None)
        .await
        .json();
    assert_eq!(listed["default_cap"], true, "{listed}");
    assert_eq!(listed["cap_mb"], 10_240);
    assert_eq!(listed["workspaces"][0]["disk_bytes"], first, "{listed}");
    assert_eq!(listed["workspaces"][0]["project"], "Analytics");
    // Only admins see every workspace and set the cap.
    let refused = c
        .browser
        .api(Method::GET, "/api/v1/workspaces", None, None)
        .await;
    assert_eq!(refused.status, 403);
    let cap = |cap_mb: Value| {
        let admin = &admin;
        let csrf = admin_csrf.clone();
        async move {
            admin
                .api(
                    Method::PUT,
                    "/api/v1/workspaces/disk-cap",
                    Some(json!({ "cap_mb": cap_mb })),
                    Some(&csrf),
                )
                .await
        }
    };
    let zero = cap(json!(0)).await;
    assert_eq!(zero.status, 422, "{}", zero.body);
    assert!(zero.body.contains("from 1 to"), "{}", zero.body);
    assert_eq!(cap(json!(1)).await.status, 200);

    // Saving is allowed while the account is under its cap of 1 MB, and can take it over.
    let rows = "id\n1\n".repeat(140_000);
    ws.save("seeds/big.csv", &rows).await;
    measured(&ws, 700_000).await;
    ws.save("seeds/bigger.csv", &rows).await;
    measured(&ws, 1024 * 1024).await;
    let res = ws
        .call(
            Method::PUT,
            "/files",
            Some(json!({"path": "models/more.sql", "text": "select 3"})),
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body.contains("of their 1.0 MB limit") && res.body.contains("Settings → Workspaces"),
        "{}",
        res.body
    );
    let view = ws.view().await;
    assert_eq!(state_of(&view, "models/more.sql"), "absent");
    assert_eq!(view["changes"], 2, "what was saved before is kept");
    let settings = admin.get("/settings").await;
    assert!(
        settings.body.contains("of a limit of 1.0 MB"),
        "settings page"
    );

    // Deleting the workspace gives the disk back; the next visit starts a new one.
    let dir = c
        .app
        .data_dir()
        .join("workspaces")
        .join(view["id"].as_str().unwrap());
    assert!(dir.is_dir());
    let deleted = ws.call(Method::DELETE, "", None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(!dir.exists());
    let listed = admin
        .api(Method::GET, "/api/v1/workspaces", None, None)
        .await
        .json();
    assert_eq!(listed["total_bytes"], 0, "{listed}");
    let fresh = ws.view().await;
    assert_ne!(fresh["id"], view["id"]);
    assert_eq!(fresh["changes"], 0);
    let audit = admin
        .api(
            Method::GET,
            "/api/v1/audit?action=workspace.deleted",
            None,
            None,
        )
        .await;
    assert!(audit.body.contains("workspace.deleted"), "{}", audit.body);
    // Back under the cap: saving works again.
    ws.save("models/more.sql", "select 3").await;
}

/// gitlab.com Free on a Developer plan: GitLab has no project access tokens, so connecting adds
/// a deploy key with write access and the workspace pushes with it over SSH (the user named as
/// the author). When GitLab's key is replaced, pushing says "GitLab Authentication is out of
/// date" with nothing lost, and the workspace's repair puts a new key in GitLab.
async fn on_gitlab_com_free_the_workspace_pushes_with_the_deploy_key(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start_as(backend, &[], Some(seed.path()), true, Plan::Developer).await;
    {
        let state = c.gitlab.sim().lock();
        let links: Vec<_> = state.deploy_key_links.iter().collect();
        assert_eq!(links.len(), 1);
        assert!(links[0].can_push, "the key was made with write access");
    }
    let ws = Ws { c: &c };
    let view = ws.view().await;
    assert_eq!(view["pushes_with_deploy_key"], true, "{view}");
    assert!(
        view["pushes_as"]
            .as_str()
            .unwrap()
            .contains("SSH deploy key"),
        "{view}"
    );
    let res = ws
        .call(Method::POST, "/branches", Some(json!({"name": "keyed"})))
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    ws.save("models/orders.sql", "select 8 as id\n").await;
    let res = ws.commit("Over SSH").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let commit = gitlab_branch(&c, "keyed").await["commit"].clone();
    assert_eq!(commit["author_email"], "dev@acme.test", "{commit}");
    assert_eq!(commit["title"], "Over SSH");

    let old = *c
        .gitlab
        .sim()
        .lock()
        .deploy_keys
        .keys()
        .next()
        .expect("a deploy key");
    c.gitlab.replace_deploy_key(old);
    ws.save("models/orders.sql", "select 9 as id\n").await;
    let refused = ws.commit("After the key changed").await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("GitLab Authentication is out of date"),
        "{}",
        refused.body
    );
    assert_eq!(ws.view().await["changes"], 1, "the change is still saved");
    let repaired = ws.call(Method::POST, "/repair-deploy-key", None).await;
    assert_eq!(repaired.status, 200, "{}", repaired.body);
    assert!(repaired.body.contains("Repaired"), "{}", repaired.body);
    assert!(!c.gitlab.sim().lock().deploy_keys.contains_key(&old));
    let res = ws.commit("After the repair").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        gitlab_branch(&c, "keyed").await["commit"]["title"],
        "After the repair"
    );
    // Nothing left to repair now.
    let again = ws.call(Method::POST, "/repair-deploy-key", None).await;
    assert!(again.body.contains("nothing to repair"), "{}", again.body);
}
