//! The control API for repository content and merge requests, over HTTP: seed from a
//! directory, commit, push rule, and the merge request lifecycle with its hooks.

use gitlab_sim::state::access;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, expect};
use crate::receiver::Receiver;

async fn control(
    sim: &TestSim,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    sim.http
        .request(method, sim.url(&format!("/-/sim{path}")))
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn seed_commit_and_merge_request_lifecycle_over_http() {
    let sim = TestSim::start().await;
    let owner = sim.user("owner");
    let project = sim.project_for(&owner, access::MAINTAINER).await;
    let p = project.id;
    let mut receiver = Receiver::start().await;
    expect(
        sim.post(
            &format!("/projects/{p}/hooks"),
            &owner.token,
            json!({ "url": receiver.url, "push_events": true, "merge_requests_events": true }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let sample = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(sample.path().join("models")).expect("mkdir");
    std::fs::write(sample.path().join("dbt_project.yml"), "name: sample\n").expect("write");
    std::fs::write(sample.path().join("models/orders.sql"), "select 1 as id\n").expect("write");
    let seeded = expect(
        control(
            &sim,
            reqwest::Method::POST,
            &format!("/projects/{p}/repository/seed"),
            json!({ "dir": sample.path(), "user_id": owner.id }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let push = receiver.next_event("Push Hook").await.body;
    assert_eq!(push["after"], seeded["sha"]);
    let mut added: Vec<String> =
        serde_json::from_value(push["commits"][0]["added"].clone()).expect("added");
    added.sort();
    assert_eq!(added, ["dbt_project.yml", "models/orders.sql"]);

    let committed = expect(
        control(
            &sim,
            reqwest::Method::POST,
            &format!("/projects/{p}/repository/commits"),
            json!({
                "branch": "feature",
                "message": "Change orders",
                "user_id": owner.id,
                "author_name": "Ada",
                "author_email": "ada@example.com",
                "files": [
                    { "path": "models/orders.sql", "content": "select 2 as id\n" },
                    { "path": "dbt_project.yml", "delete": true },
                ],
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let push = receiver.next_event("Push Hook").await.body;
    assert_eq!(push["ref"], "refs/heads/feature");
    assert_eq!(push["after"], committed["sha"]);
    assert_eq!(push["commits"][0]["author"]["email"], "ada@example.com");
    assert_eq!(push["commits"][0]["removed"], json!(["dbt_project.yml"]));

    let bad = control(
        &sim,
        reqwest::Method::POST,
        &format!("/projects/{p}/repository/commits"),
        json!({ "branch": "x", "message": "m", "user_id": owner.id, "files": [{ "path": "a" }] }),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let escape = control(
        &sim,
        reqwest::Method::POST,
        &format!("/projects/{p}/repository/commits"),
        json!({ "branch": "x", "message": "m", "user_id": owner.id, "files": [{ "path": "../x", "content": "x" }] }),
    )
    .await;
    assert_eq!(escape.status(), StatusCode::BAD_REQUEST);

    let mr = expect(
        control(
            &sim,
            reqwest::Method::POST,
            &format!("/projects/{p}/merge_requests"),
            json!({ "source_branch": "feature", "title": "Orders", "author_id": owner.id }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(mr["sha"], committed["sha"]);
    assert_eq!(mr["target_branch"], "main");
    let iid = mr["iid"].as_u64().expect("iid");
    assert_eq!(
        receiver.next_event("Merge Request Hook").await.body["object_attributes"]["action"],
        "open"
    );

    // The MR head is also published as refs/merge-requests/<iid>/head, as GitLab does.
    let mr_ref = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(sim.handle().repo_path(p))
        .args(["rev-parse", &format!("refs/merge-requests/{iid}/head")])
        .output()
        .expect("git");
    assert_eq!(
        String::from_utf8_lossy(&mr_ref.stdout).trim(),
        committed["sha"]
    );

    let edited = expect(
        control(
            &sim,
            reqwest::Method::PUT,
            &format!("/projects/{p}/merge_requests/{iid}"),
            json!({ "title": "Orders v2", "user_id": owner.id }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["title"], "Orders v2");
    assert!(
        receiver.next_event("Merge Request Hook").await.body["object_attributes"]
            .get("oldrev")
            .is_none()
    );

    for (action, expected) in [
        ("draft", "update"),
        ("ready", "update"),
        ("close", "close"),
        ("reopen", "reopen"),
        ("approve", "approved"),
        ("merge", "merge"),
    ] {
        let response = control(
            &sim,
            reqwest::Method::POST,
            &format!("/projects/{p}/merge_requests/{iid}/{action}"),
            json!({ "user_id": owner.id }),
        )
        .await;
        let body = expect(response, StatusCode::OK).await;
        let hook = receiver.next_event("Merge Request Hook").await.body;
        assert_eq!(hook["object_attributes"]["action"], expected, "{action}");
        if action == "draft" {
            assert_eq!(body["draft"], true);
        }
        if action == "merge" {
            assert_eq!(body["state"], "merged");
        }
    }
    let again = control(
        &sim,
        reqwest::Method::POST,
        &format!("/projects/{p}/merge_requests/{iid}/close"),
        json!({ "user_id": owner.id }),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let unknown = control(
        &sim,
        reqwest::Method::POST,
        &format!("/projects/{p}/merge_requests/{iid}/explode"),
        json!({ "user_id": owner.id }),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let rule = expect(
        control(
            &sim,
            reqwest::Method::PUT,
            &format!("/projects/{p}/push_rule"),
            json!({ "reject_unverified_users": true }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        rule["commit_committer_check"], true,
        "the older name still works"
    );
    assert_eq!(rule["project_id"], p);
    assert!(sim.handle().lock().push_rules[&p].commit_committer_check);
}
