//! Branches, tree, files, compare and the user's e-mails through the REST API.

use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Namespace, access};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, header};

fn files(list: &[(&str, &str)]) -> Vec<FileChange> {
    list.iter()
        .map(|(path, content)| FileChange {
            path: (*path).into(),
            content: Some(content.as_bytes().to_vec()),
        })
        .collect()
}

#[tokio::test]
async fn branches_tree_files_and_compare() {
    let t = TestSim::start().await;
    let alice = t.user("alice");
    let reader = t.user("reader");
    let project = t.project("warehouse", Namespace::User(alice.id)).await;
    t.handle()
        .add_project_member(project.id, reader.id, access::GUEST)
        .expect("member");
    let commit = |branch: &str, message: &str, list: &[(&str, &str)]| {
        let request = CommitRequest {
            branch: branch.into(),
            start_branch: None,
            message: message.into(),
            files: files(list),
            user_id: alice.id,
            author: None,
        };
        let handle = t.handle().clone();
        let project_id = project.id;
        async move {
            handle
                .commit_files(project_id, request)
                .await
                .expect("commit")
        }
    };
    let first = commit(
        "main",
        "Initial",
        &[("README.md", "hi\n"), ("models/orders.sql", "select 1\n")],
    )
    .await;
    let second = commit(
        "feature/x",
        "Add customers",
        &[("models/customers.sql", "select 2\n")],
    )
    .await;
    let p = format!("/projects/{}", project.id);

    let branches = expect(
        t.get(&format!("{p}/repository/branches"), &alice.token)
            .await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = branches
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, vec!["feature/x", "main"]);
    assert_eq!(branches[1]["default"], true);
    assert_eq!(branches[1]["protected"], true);
    assert_eq!(branches[1]["commit"]["id"], first.as_str());
    assert_eq!(branches[0]["merged"], false);
    assert_eq!(branches[0]["commit"]["title"], "Add customers");
    let searched = expect(
        t.get(
            &format!("{p}/repository/branches?search=^feat"),
            &alice.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(searched.as_array().map(Vec::len), Some(1));
    let one = expect(
        t.get(
            &format!("{p}/repository/branches/feature%2Fx"),
            &alice.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["commit"]["id"], second.as_str());
    assert_eq!(
        expect(
            t.get(&format!("{p}/repository/branches/nope"), &alice.token)
                .await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({ "message": "404 Branch Not Found" })
    );
    assert_eq!(
        expect(
            t.post(
                &format!("{p}/repository/branches"),
                &alice.token,
                json!({ "branch": "main", "ref": "main" })
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": "Branch already exists" })
    );
    assert_eq!(
        expect(
            t.post(
                &format!("{p}/repository/branches"),
                &alice.token,
                json!({ "branch": "x", "ref": "nope" })
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": "Invalid reference name: nope" })
    );

    let tree = expect(
        t.get(&format!("{p}/repository/tree?ref=feature/x"), &alice.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        tree,
        json!([
            { "id": tree[0]["id"], "name": "README.md", "type": "blob", "path": "README.md", "mode": "100644" },
            { "id": tree[1]["id"], "name": "models", "type": "tree", "path": "models", "mode": "040000" },
        ])
    );
    let page = t
        .get(
            &format!("{p}/repository/tree?ref=feature/x&recursive=true&per_page=2&page=2"),
            &alice.token,
        )
        .await;
    assert_eq!(header(&page, "x-total").as_deref(), Some("4"));
    let page = expect(page, StatusCode::OK).await;
    assert_eq!(page[0]["path"], "models/customers.sql");
    let sub = expect(
        t.get(&format!("{p}/repository/tree?path=models"), &alice.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sub[0]["path"], "models/orders.sql");
    assert_eq!(
        expect(
            t.get(&format!("{p}/repository/tree?path=nope"), &alice.token)
                .await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({ "message": "404 Tree Not Found" })
    );

    let file = expect(
        t.get(
            &format!("{p}/repository/files/models%2Forders.sql?ref=main"),
            &alice.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(file["file_name"], "orders.sql");
    assert_eq!(file["encoding"], "base64");
    assert_eq!(file["content"], "c2VsZWN0IDEK");
    assert_eq!(file["commit_id"], first.as_str());
    assert_eq!(file["last_commit_id"], first.as_str());
    assert_eq!(
        expect(
            t.get(&format!("{p}/repository/files/README.md"), &alice.token)
                .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "error": "ref is missing" })
    );
    assert_eq!(
        expect(
            t.get(
                &format!("{p}/repository/files/nope.txt?ref=main"),
                &alice.token
            )
            .await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({ "message": "404 File Not Found" })
    );
    let raw = t
        .get(
            &format!("{p}/repository/files/models%2Fcustomers.sql/raw?ref=feature%2Fx"),
            &alice.token,
        )
        .await;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.text().await.expect("body"), "select 2\n");
    // A Guest of a private project may not read code.
    expect(
        t.get(&format!("{p}/repository/tree"), &reader.token).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let compare = expect(
        t.get(
            &format!("{p}/repository/compare?from=main&to=feature%2Fx"),
            &alice.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(compare["commits"].as_array().map(Vec::len), Some(1));
    assert_eq!(compare["commit"]["id"], second.as_str());
    assert_eq!(compare["diffs"][0]["new_path"], "models/customers.sql");
    assert_eq!(compare["diffs"][0]["new_file"], true);
    assert!(
        compare["diffs"][0]["diff"]
            .as_str()
            .is_some_and(|d| d.starts_with("@@") && d.contains("+select 2"))
    );
    assert_eq!(compare["compare_same_ref"], false);

    let emails = expect(t.get("/user/emails", &alice.token).await, StatusCode::OK).await;
    assert_eq!(emails[0]["email"], "alice@example.com");
    let me = expect(t.get("/user", &alice.token).await, StatusCode::OK).await;
    assert_eq!(me["commit_email"], "alice@example.com");
    assert_eq!(me["public_email"], "");
}

/// `POST /repository/commits` meets protected branches (403) and push rules (400, GitLab's
/// message) like any push.
#[tokio::test]
async fn api_commits_meet_protected_branches_and_push_rules() {
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
    let project = t.project("analytics", Namespace::Group(group)).await;
    let p = format!("/projects/{}", project.id);
    let commit = |branch: &str, message: &str, action: &str| {
        json!({
            "branch": branch,
            "commit_message": message,
            "start_branch": "main",
            "actions": [{ "action": action, "file_path": "models/a.sql", "content": "select 1\n" }],
        })
    };
    let first = expect(
        t.post(&format!("{p}/repository/commits"), &owner.token, json!({ "branch": "main", "commit_message": "Initial", "actions": [{ "action": "create", "file_path": "README.md", "content": "aGkK", "encoding": "base64" }] })).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["title"], "Initial");
    let readme = t
        .get(&format!("{p}/repository/files/README.md/raw"), &owner.token)
        .await;
    assert_eq!(readme.text().await.expect("body"), "hi\n");
    assert_eq!(
        expect(
            t.post(
                &format!("{p}/repository/commits"),
                &dev.token,
                commit("main", "x", "create")
            )
            .await,
            StatusCode::FORBIDDEN
        )
        .await,
        json!({ "message": "403 Forbidden - You are not allowed to push into this branch" })
    );
    let made = expect(
        t.post(
            &format!("{p}/repository/commits"),
            &dev.token,
            commit("feature", "Add a", "create"),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let branch = expect(
        t.get(&format!("{p}/repository/branches/feature"), &dev.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(branch["commit"]["id"], made["id"]);
    assert_eq!(
        expect(
            t.post(
                &format!("{p}/repository/commits"),
                &dev.token,
                commit("feature", "again", "create")
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": "A file with this name already exists" })
    );
    expect(
        t.post(
            &format!("{p}/push_rule"),
            &owner.token,
            json!({ "commit_message_regex": "^JIRA-" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        expect(
            t.post(
                &format!("{p}/repository/commits"),
                &dev.token,
                commit("feature", "no ticket", "update")
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": "Commit message does not follow the pattern '^JIRA-'" })
    );
    let branch_after = expect(
        t.get(&format!("{p}/repository/branches/feature"), &dev.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        branch_after["commit"]["id"], made["id"],
        "a refused commit moves nothing"
    );
    expect(
        t.post(
            &format!("{p}/repository/commits"),
            &dev.token,
            commit("feature", "JIRA-1 update", "update"),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
}
