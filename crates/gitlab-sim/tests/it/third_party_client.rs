//! A third-party client, unchanged: the python-gitlab library from PyPI (in the venv
//! `$LABLINK_PYCLIENTS_VENV`, default `~/.cache/lablink/pyclients`, created when missing) runs
//! `python_gitlab_client.py` against the simulator, which is seeded here through the Rust
//! handle; every value the script prints is checked against what the simulator holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, Namespace, access};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, TestUser, expect};
use crate::gitcli::ssh_keygen;

/// The python-gitlab major versions this test is known to pass with.
const PYTHON_GITLAB_REQUIREMENT: &str = "python-gitlab>=4,<7";
const GROUP_PROJECTS: usize = 240;
const SUBGROUP_PROJECTS: usize = 10;
const PER_PAGE: usize = 100;

fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{} cannot run: {e}", program.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The venv's python with python-gitlab importable, creating the venv if needed.
fn python_with_gitlab() -> PathBuf {
    let venv = std::env::var_os("LABLINK_PYCLIENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME or LABLINK_PYCLIENTS_VENV is set");
            Path::new(&home).join(".cache/lablink/pyclients")
        });
    let python = venv.join("bin/python");
    if run(&python, &["-c", "import gitlab"]).is_ok() {
        return python;
    }
    let venv_arg = venv.to_str().expect("venv path is UTF-8");
    let created = run(Path::new("python3"), &["-m", "venv", venv_arg]).and_then(|_| {
        run(
            &venv.join("bin/pip"),
            &["install", "--quiet", PYTHON_GITLAB_REQUIREMENT],
        )
    });
    if let Err(e) = created {
        panic!(
            "cannot create the python-gitlab venv in {venv_arg} (set LABLINK_PYCLIENTS_VENV to \
             a venv with `pip install '{PYTHON_GITLAB_REQUIREMENT}'`): {e}"
        );
    }
    python
}

struct World {
    alice: TestUser,
    bob: TestUser,
    project_id: Id,
    project_path: String,
    personal_path: &'static str,
    sha: String,
    mr_sha: String,
    mr_iid: u64,
}

async fn commit(t: &TestSim, project_id: Id, user_id: Id, branch: &str, file: &str) -> String {
    t.handle()
        .commit_files(
            project_id,
            CommitRequest {
                branch: branch.into(),
                start_branch: None,
                message: format!("Add {file}"),
                files: vec![FileChange {
                    path: file.into(),
                    content: Some(b"select 1\n".to_vec()),
                }],
                user_id,
                author: None,
            },
        )
        .await
        .expect("commit")
}

/// alice owns `acme` (240 projects) and so its subgroup `acme/analytics` (10 projects), owns a
/// personal project, is a Developer of `partners` (excluded by `min_access_level=40`) except for
/// one project where she is a direct Maintainer; bob is a Developer of `acme` and owns a
/// personal project alice cannot see.
async fn seed(t: &TestSim) -> World {
    let alice = t.user("alice");
    let bob = t.user("bob");
    let acme = t.group("acme", None);
    let analytics = t.group("analytics", Some(acme));
    let partners = t.group("partners", None);
    let handle = t.handle();
    handle
        .add_group_member(acme, alice.id, access::OWNER)
        .expect("member");
    handle
        .add_group_member(acme, bob.id, access::DEVELOPER)
        .expect("member");
    handle
        .add_group_member(partners, alice.id, access::DEVELOPER)
        .expect("member");
    for i in 0..GROUP_PROJECTS {
        t.project(&format!("model-{i:03}"), Namespace::Group(acme))
            .await;
    }
    let mut project = None;
    for i in 0..SUBGROUP_PROJECTS {
        project = Some(
            t.project(&format!("warehouse-{i:02}"), Namespace::Group(analytics))
                .await,
        );
    }
    let project = project.expect("a subgroup project");
    let project_id = project.id;
    for i in 0..3 {
        t.project(&format!("report-{i}"), Namespace::Group(partners))
            .await;
    }
    let shared = t.project("shared", Namespace::Group(partners)).await;
    handle
        .add_project_member(shared.id, alice.id, access::MAINTAINER)
        .expect("member");
    t.project("sandbox", Namespace::User(alice.id)).await;
    t.project("private", Namespace::User(bob.id)).await;

    let sha = commit(t, project_id, alice.id, "main", "models/orders.sql").await;
    let mr_sha = commit(t, project_id, alice.id, "feature", "models/customers.sql").await;
    let mr = handle
        .open_merge_request(project_id, alice.id, "feature", "main", "Add customers", "")
        .await
        .expect("merge request");
    World {
        alice,
        bob,
        project_id,
        project_path: format!("acme/analytics/{}", project.path),
        personal_path: "alice/sandbox",
        sha,
        mr_sha,
        mr_iid: mr.iid,
    }
}

/// The ids of the projects where `user` has at least Maintainer, ascending.
fn maintained_project_ids(t: &TestSim, user: Id) -> Vec<Id> {
    let state = t.handle().lock();
    let mut ids: Vec<Id> = state
        .projects
        .values()
        .filter(|p| state.project_access(user, p) >= access::MAINTAINER)
        .map(|p| p.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn ids(value: &Value) -> Vec<Id> {
    value
        .as_array()
        .expect("array of ids")
        .iter()
        .map(|v| v.as_u64().expect("id"))
        .collect()
}

#[tokio::test]
async fn python_gitlab_works_unchanged() {
    let python = python_with_gitlab();
    let keys = tempfile::tempdir().expect("tempdir");
    let (_, public_key, fingerprint) = ssh_keygen(keys.path(), "deploy_key");
    let (_, user_key, _) = ssh_keygen(keys.path(), "user_key");
    let t = TestSim::start().await;
    let w = seed(&t).await;
    let expected_ids = maintained_project_ids(&t, w.alice.id);
    assert_eq!(
        expected_ids.len(),
        GROUP_PROJECTS + SUBGROUP_PROJECTS + 2,
        "seeded Maintainer+ projects"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python_gitlab_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("SIM_URL", t.sim.base_url())
        .env("SIM_TOKEN", &w.alice.token)
        .env("SIM_PROJECT_ID", w.project_id.to_string())
        .env("SIM_PROJECT_PATH", &w.project_path)
        .env("SIM_PERSONAL_PROJECT_PATH", w.personal_path)
        .env("SIM_MEMBER_ID", w.bob.id.to_string())
        .env("SIM_SHA", &w.sha)
        .env("SIM_MR_IID", w.mr_iid.to_string())
        .env("SIM_DEPLOY_KEY", &public_key)
        .env("SIM_USER_KEY", &user_key)
        .output()
        .await
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-gitlab script failed:\n{stderr}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");

    assert!(
        r["python_gitlab_version"]
            .as_str()
            .is_some_and(|v| ["4.", "5.", "6."].iter().any(|m| v.starts_with(m))),
        "{}",
        r["python_gitlab_version"]
    );
    assert_eq!(
        r["current_user"],
        json!({"id": w.alice.id, "username": "alice"})
    );

    let mut offset_ids = ids(&r["offset"]["ids"]);
    assert_eq!(offset_ids.len(), expected_ids.len(), "offset pages");
    offset_ids.sort_unstable();
    assert_eq!(offset_ids, expected_ids);
    assert_eq!(r["offset"]["total"], expected_ids.len());
    assert_eq!(
        r["offset"]["total_pages"],
        expected_ids.len().div_ceil(PER_PAGE)
    );
    assert_eq!(r["offset"]["per_page"], PER_PAGE);
    assert_eq!(
        ids(&r["keyset"]["ids"]),
        expected_ids,
        "keyset walks all ids ascending"
    );
    assert_eq!(r["keyset"]["total"], Value::Null, "keyset sends no totals");

    assert_eq!(
        r["project"],
        json!({
            "id": w.project_id,
            "path_with_namespace": w.project_path,
            "by_path_id": w.project_id,
            "default_branch": "main",
            "personal_namespace_kind": "user",
            "personal_path_with_namespace": w.personal_path,
        })
    );
    assert_eq!(
        r["members_all"],
        json!({
            "member": {"id": w.bob.id, "username": "bob", "access_level": access::DEVELOPER},
            "myself_access_level": access::OWNER,
        })
    );

    let hook_id = ids_of(&r["hook"], "created_id");
    assert_eq!(
        r["hook"],
        json!({
            "created_url": "http://127.0.0.1:9/hooks/lablink",
            "created_token_present": true,
            "created_merge_requests_events": true,
            "created_id": hook_id,
            "fetched_id": hook_id,
            "updated_push_events": false,
            "updated_token_present": true,
            "get_after_delete": 404,
        })
    );
    let token = &r["access_token"];
    assert_eq!(token["created_prefix"], "glpat-");
    assert_eq!(token["created_scopes"], json!(["api"]));
    assert_eq!(ids(&token["listed_ids"]), vec![ids_of(token, "created_id")]);
    assert_ne!(token["rotated_id"], token["created_id"]);
    assert_eq!(token["rotated_differs"], true);
    assert_eq!(token["rotated_token_reads_project"], w.project_id);
    assert_eq!(token["old_token_error"], 401);
    assert_eq!(token["revoked_after_delete"], true);
    assert_eq!(token["active_after_delete"], false);

    let deploy_token = &r["deploy_token"];
    assert!(
        deploy_token["username"]
            .as_str()
            .is_some_and(|u| u.starts_with("gitlab+deploy-token-")),
        "{deploy_token}"
    );
    assert_eq!(deploy_token["scopes"], json!(["read_repository"]));
    assert_eq!(deploy_token["has_token"], true);
    assert_eq!(
        ids(&deploy_token["listed_ids"]),
        vec![ids_of(deploy_token, "id")]
    );
    assert_eq!(deploy_token["after_delete_ids"], json!([]));

    let key = &r["deploy_key"];
    assert_eq!(key["fingerprint_sha256"], fingerprint.as_str());
    assert_eq!(key["can_push"], false);
    assert_eq!(ids(&key["listed_ids"]), vec![ids_of(key, "id")]);
    assert_eq!(key["after_delete_ids"], json!([]));

    let statuses = &r["statuses"];
    let created = statuses["created"].as_array().expect("created statuses");
    assert_eq!(created.len(), 2);
    for (status, state) in created.iter().zip(["running", "success"]) {
        assert_eq!(status["status"], state);
        assert_eq!(status["sha"], w.sha.as_str());
        assert_eq!(status["ref"], "main");
        assert_eq!(status["name"], "lablink/dbt");
    }
    assert_eq!(
        statuses["listed"],
        json!([{"id": created[1]["id"], "status": "success", "name": "lablink/dbt"}]),
        "the latest status per name"
    );

    let mr = &r["merge_request"];
    assert_eq!(mr["listed_iids"], json!([w.mr_iid]));
    assert_eq!(mr["iid"], w.mr_iid);
    assert_eq!(mr["source_branch"], "feature");
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(mr["sha"], w.mr_sha.as_str());
    assert_eq!(mr["note_body"], "dbt build passed");
    assert_eq!(mr["note_author"], "alice");
    assert_eq!(ids(&mr["note_ids"]), vec![ids_of(mr, "note_id")]);

    let user = &r["user"];
    assert_eq!(user["key_title"], "laptop");
    assert_eq!(ids(&user["listed_key_ids"]), vec![ids_of(user, "key_id")]);
    assert_eq!(user["keys_after_delete"], json!([]));
    assert_eq!(user["emails"], json!(["alice@example.com"]));
    assert_eq!(user["commit_email"], "alice@example.com");

    assert_eq!(
        r["protected_branches"],
        json!({
            "name": "release/*",
            "push_level": 30,
            "listed": ["main", "release/*"],
            "fetched": "release/*",
            "after_delete": ["main"],
        })
    );
    assert_eq!(
        r["push_rule"],
        json!({
            "created_regex": "JIRA-\\d+",
            "deny_delete_tag": true,
            "edited_max_file_size": 10,
            "edited_regex": "JIRA-\\d+",
        })
    );

    let repository = &r["repository"];
    assert_eq!(repository["created_branch"], "py-branch");
    assert_eq!(
        repository["branches"],
        json!(["feature", "main", "py-branch"])
    );
    assert_eq!(repository["after_delete"], json!(["feature", "main"]));
    assert_eq!(repository["main_sha"], w.sha.as_str());
    assert_eq!(repository["main_protected"], true);
    assert_eq!(repository["file"], "select 1\n");
    assert_eq!(repository["raw"], "select 1\n");
    assert_eq!(
        repository["tree"],
        json!(["models", "models/customers.sql", "models/orders.sql"])
    );
    assert_eq!(repository["compare_commits"], json!([w.mr_sha]));
    assert_eq!(repository["compare_files"], json!(["models/customers.sql"]));

    assert_eq!(
        r["merge_request_api"],
        json!({
            "draft_at_creation": true,
            "edited_title": "From python",
            "edited_draft": false,
            "edited_description": "Edited by python-gitlab.",
            "merged_state": "merged",
            "source_branch_left": false,
        })
    );

    let fork = &r["fork"];
    assert_eq!(fork["path_with_namespace"], "alice/warehouse-fork");
    assert_eq!(fork["forked_from"], w.project_id);
    assert_eq!(ids(&fork["listed"]), vec![ids_of(fork, "id")]);

    assert_eq!(
        r["errors"],
        json!({
            "missing_project": {"code": 404, "message": "404 Project Not Found"},
            "bad_token": {"code": 401},
        })
    );
}

fn ids_of(value: &Value, field: &str) -> Id {
    value[field].as_u64().expect("id field")
}

/// python-gitlab sends Python booleans as `True`/`False`; Grape accepts exactly dry-types'
/// spellings, takes an empty value as absent and rejects anything else.
#[tokio::test]
async fn boolean_params_take_grape_spellings() {
    let t = TestSim::start().await;
    let alice = t.user("alice");
    t.project("mine", Namespace::User(alice.id)).await;
    for spelling in ["True", "TRUE", "on", "Y", "1"] {
        let listed = expect(
            t.get(&format!("/projects?membership={spelling}"), &alice.token)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{spelling}");
    }
    for spelling in ["False", "off", "N", "0", ""] {
        let listed = expect(
            t.get(&format!("/projects?owned={spelling}"), &alice.token)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{spelling}");
    }
    for spelling in ["tRuE", "maybe"] {
        assert_eq!(
            expect(
                t.get(&format!("/projects?membership={spelling}"), &alice.token)
                    .await,
                StatusCode::BAD_REQUEST,
            )
            .await,
            json!({"error": "membership is invalid"}),
            "{spelling:?}"
        );
    }
}
