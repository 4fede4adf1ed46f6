//! Merge requests through the REST API: create (also from a fork), update, close/reopen, and
//! merge with GitLab's refusals; forks with `refs/merge-requests/<iid>/head` in the parent and
//! webhook payloads naming the fork as the source.

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Id, Namespace, Visibility, access};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, TestUser, expect};
use crate::gitcli::Git;
use crate::receiver::{Receiver, assert_shape_of_fixture};

async fn commit(
    t: &TestSim,
    project: Id,
    user: Id,
    branch: &str,
    file: &str,
    content: &str,
) -> String {
    t.handle()
        .commit_files(
            project,
            CommitRequest {
                branch: branch.into(),
                start_branch: None,
                message: format!("Change {file}"),
                files: vec![FileChange {
                    path: file.into(),
                    content: Some(content.as_bytes().to_vec()),
                }],
                user_id: user,
                author: None,
            },
        )
        .await
        .expect("commit")
}

struct World {
    t: TestSim,
    owner: TestUser,
    dev: TestUser,
    project_id: Id,
}

async fn world(visibility: Visibility) -> World {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let dev = t.user("dev");
    let group = t.group("team", None);
    t.handle()
        .add_group_member(group, owner.id, access::MAINTAINER)
        .expect("member");
    t.handle()
        .add_group_member(group, dev.id, access::DEVELOPER)
        .expect("member");
    let project = t
        .project_with("analytics", Namespace::Group(group), visibility)
        .await;
    commit(&t, project.id, owner.id, "main", "README.md", "hello\n").await;
    World {
        t,
        owner,
        dev,
        project_id: project.id,
    }
}

impl World {
    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project_id)
    }

    async fn open(&self, source: &str, title: &str) -> Value {
        expect(
            self.t
                .post(
                    &self.path("/merge_requests"),
                    &self.dev.token,
                    json!({ "source_branch": source, "target_branch": "main", "title": title }),
                )
                .await,
            StatusCode::CREATED,
        )
        .await
    }
}

#[tokio::test]
async fn update_close_reopen_and_merge_refusals() {
    let w = world(Visibility::Private).await;
    let t = &w.t;
    let head = commit(t, w.project_id, w.dev.id, "feature", "a.sql", "select 1\n").await;
    let mr = w.open("feature", "Draft: Add a").await;
    assert_eq!(mr["draft"], true);
    let iid = mr["iid"].as_u64().expect("iid");
    let duplicate = expect(
        t.post(
            &w.path("/merge_requests"),
            &w.dev.token,
            json!({ "source_branch": "feature", "target_branch": "main", "title": "again" }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        duplicate,
        json!({ "message": [format!("Another open merge request already exists for this source branch: !{iid}")] })
    );
    let mr_path = w.path(&format!("/merge_requests/{iid}"));
    let merge_path = format!("{mr_path}/merge");

    assert!(
        expect(
            t.put(&mr_path, &w.dev.token, json!({})).await,
            StatusCode::BAD_REQUEST
        )
        .await["error"]
            .as_str()
            .is_some_and(|e| e.ends_with("at least one parameter must be provided"))
    );
    // Drafts cannot be merged; Developers cannot merge into the protected default branch.
    assert_eq!(
        expect(
            t.put(&merge_path, &w.owner.token, json!({})).await,
            StatusCode::METHOD_NOT_ALLOWED
        )
        .await,
        json!({ "message": "405 Method Not Allowed" })
    );
    assert_eq!(
        expect(
            t.put(&merge_path, &w.dev.token, json!({})).await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        json!({ "message": "401 Unauthorized" })
    );
    let updated = expect(
        t.put(
            &mr_path,
            &w.dev.token,
            json!({ "title": "Add a", "description": "Adds a.", "remove_source_branch": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["draft"], false);
    assert_eq!(updated["description"], "Adds a.");
    assert_eq!(updated["force_remove_source_branch"], true);
    let closed = expect(
        t.put(&mr_path, &w.dev.token, json!({ "state_event": "close" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(closed["state"], "closed");
    expect(
        t.put(&merge_path, &w.owner.token, json!({})).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    let reopened = expect(
        t.put(&mr_path, &w.dev.token, json!({ "state_event": "reopen" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reopened["state"], "opened");

    // "Pipelines must succeed": no pipeline or a running one blocks; success lets it through.
    let settings = expect(
        t.put(
            &w.path(""),
            &w.owner.token,
            json!({ "only_allow_merge_if_pipeline_succeeds": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["only_allow_merge_if_pipeline_succeeds"], true);
    expect(
        t.put(&merge_path, &w.owner.token, json!({})).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    let statuses = w.path(&format!("/statuses/{head}"));
    let status = |state: &str| {
        t.post(
            &statuses,
            &w.dev.token,
            json!({ "state": state, "name": "lablink/ci", "ref": "feature" }),
        )
    };
    expect(status("running").await, StatusCode::CREATED).await;
    expect(
        t.put(&merge_path, &w.owner.token, json!({})).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    expect(status("success").await, StatusCode::CREATED).await;
    assert_eq!(
        expect(
            t.put(
                &merge_path,
                &w.owner.token,
                json!({ "sha": "0".repeat(40) })
            )
            .await,
            StatusCode::CONFLICT
        )
        .await,
        json!({ "message": format!("SHA does not match HEAD of source branch: {head}") })
    );
    let merged = expect(
        t.put(&merge_path, &w.owner.token, json!({ "sha": head }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(merged["state"], "merged");
    assert!(merged["merge_commit_sha"].is_string());
    // The MR asked for its source branch to go.
    expect(
        t.get(&w.path("/repository/branches/feature"), &w.owner.token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Conflicting changes cannot be merged.
    commit(t, w.project_id, w.dev.id, "clash", "README.md", "theirs\n").await;
    commit(t, w.project_id, w.owner.id, "main", "README.md", "ours\n").await;
    let clash = w.open("clash", "Clash").await;
    expect(
        t.put(
            &w.path(&format!("/merge_requests/{}/merge", clash["iid"])),
            &w.owner.token,
            json!({}),
        )
        .await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    // Retargeting changes the diff base.
    commit(t, w.project_id, w.owner.id, "develop", "d.txt", "d").await;
    let retargeted = expect(
        t.put(
            &w.path(&format!("/merge_requests/{}", clash["iid"])),
            &w.dev.token,
            json!({ "target_branch": "develop" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(retargeted["target_branch"], "develop");
}

#[tokio::test]
async fn merge_requests_from_forks_live_in_the_parent() {
    let w = world(Visibility::Internal).await;
    let t = &w.t;
    let mut receiver = Receiver::start().await;
    expect(
        t.post(
            &w.path("/hooks"),
            &w.owner.token,
            json!({ "url": receiver.url, "merge_requests_events": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let outsider = t.user("outsider");
    let fork = expect(
        t.post(
            &w.path("/fork"),
            &outsider.token,
            json!({ "path": "analytics-fork" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(fork["path_with_namespace"], "outsider/analytics-fork");
    assert_eq!(fork["forked_from_project"]["id"], w.project_id);
    assert_eq!(fork["default_branch"], "main");
    let parent = expect(t.get(&w.path(""), &w.owner.token).await, StatusCode::OK).await;
    assert_eq!(parent["forks_count"], 1);
    assert_eq!(
        expect(
            t.post(
                &w.path("/fork"),
                &outsider.token,
                json!({ "path": "analytics-fork" })
            )
            .await,
            StatusCode::CONFLICT
        )
        .await,
        json!({ "message": { "name": ["has already been taken"], "path": ["has already been taken"] } })
    );
    assert_eq!(
        expect(
            t.post(
                &w.path("/fork"),
                &outsider.token,
                json!({ "namespace_path": "team" })
            )
            .await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({ "message": "404 Target Namespace Not Found" })
    );
    let fork_id = fork["id"].as_u64().expect("id");

    // The outsider pushes a branch to the fork with real git and opens an MR into the parent.
    let dir = tempfile::tempdir().expect("tempdir");
    let git = Git::new("outsider@example.com").basic("outsider", &outsider.token);
    let work = dir.path().join("fork");
    git.ok(
        dir.path(),
        &[
            "clone",
            "-q",
            fork["http_url_to_repo"].as_str().expect("url"),
            work.to_str().expect("utf8"),
        ],
    )
    .await;
    git.commit(&work, "models/b.sql", "select 2\n", "Add b")
        .await;
    git.ok(
        &work,
        &["push", "-q", "origin", "HEAD:refs/heads/contribution"],
    )
    .await;
    let head = git
        .ok(&work, &["rev-parse", "HEAD"])
        .await
        .stdout
        .trim()
        .to_owned();
    let mr = expect(
        t.post(
            &format!("/projects/{fork_id}/merge_requests"),
            &outsider.token,
            json!({ "source_branch": "contribution", "target_branch": "main", "title": "Add b", "target_project_id": w.project_id }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(mr["project_id"], w.project_id);
    assert_eq!(mr["source_project_id"], fork_id);
    assert_eq!(mr["target_project_id"], w.project_id);
    assert_eq!(mr["sha"], head.as_str());
    let iid = mr["iid"].as_u64().expect("iid");
    let mr_ref = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(t.repo(w.project_id))
        .args(["rev-parse", &format!("refs/merge-requests/{iid}/head")])
        .output()
        .expect("git");
    assert_eq!(String::from_utf8_lossy(&mr_ref.stdout).trim(), head);
    let open = receiver.next_event("Merge Request Hook").await.body;
    assert_shape_of_fixture("webhook.merge_request.open.gitlab-com-capture.json", &open);
    let attributes = &open["object_attributes"];
    assert_eq!(attributes["source_project_id"], fork_id);
    assert_eq!(attributes["target_project_id"], w.project_id);
    assert_eq!(
        attributes["source"]["path_with_namespace"],
        "outsider/analytics-fork"
    );
    assert_eq!(
        attributes["target"]["path_with_namespace"],
        "team/analytics"
    );
    assert_eq!(open["project"]["id"], w.project_id);

    // A new push to the fork's branch updates the parent's MR, with `oldrev`.
    git.commit(&work, "models/c.sql", "select 3\n", "Add c")
        .await;
    git.ok(
        &work,
        &["push", "-q", "origin", "HEAD:refs/heads/contribution"],
    )
    .await;
    let update = receiver.next_event("Merge Request Hook").await.body;
    assert_eq!(update["object_attributes"]["action"], "update");
    assert_eq!(update["object_attributes"]["oldrev"], head.as_str());
    let new_head = git
        .ok(&work, &["rev-parse", "HEAD"])
        .await
        .stdout
        .trim()
        .to_owned();
    assert_eq!(
        update["object_attributes"]["last_commit"]["id"],
        new_head.as_str()
    );

    // The parent's maintainer merges it.
    let merged = expect(
        t.put(
            &w.path(&format!("/merge_requests/{iid}/merge")),
            &w.owner.token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(merged["state"], "merged");
    let file = expect(
        t.get(
            &w.path("/repository/files/models%2Fc.sql?ref=main"),
            &w.owner.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(file["content"], "c2VsZWN0IDMK");
}
