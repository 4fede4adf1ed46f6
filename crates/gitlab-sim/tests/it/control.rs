//! The control API over HTTP and state persistence.

use gitlab_sim::{Sim, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, json};

#[tokio::test]
async fn setup_over_http_then_use_the_api() {
    let t = TestSim::start().await;
    let ctl = |path: &str| t.url(&format!("/-/sim{path}"));
    let user = expect(
        t.http
            .post(ctl("/users"))
            .json(&json!({"username": "ops", "password": "pw"}))
            .send()
            .await
            .expect("r"),
        StatusCode::CREATED,
    )
    .await;
    let token = user["personal_access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let dup = t
        .http
        .post(ctl("/users"))
        .json(&json!({"username": "ops"}))
        .send()
        .await
        .expect("r");
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let bad = t
        .http
        .post(ctl("/users"))
        .json(&json!({"username": 5}))
        .send()
        .await
        .expect("r");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let group = expect(
        t.http
            .post(ctl("/groups"))
            .json(&json!({"path": "analytics"}))
            .send()
            .await
            .expect("r"),
        StatusCode::CREATED,
    )
    .await;
    let gid = group["id"].as_u64().expect("gid");
    let sub = expect(
        t.http
            .post(ctl("/groups"))
            .json(&json!({"path": "dbt", "parent_id": gid}))
            .send()
            .await
            .expect("r"),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(sub["full_path"], "analytics/dbt");
    expect(
        t.http
            .post(ctl(&format!("/groups/{gid}/members")))
            .json(&json!({"user_id": user["id"], "access_level": 40}))
            .send()
            .await
            .expect("r"),
        StatusCode::CREATED,
    )
    .await;
    let bad_level = t
        .http
        .post(ctl(&format!("/groups/{gid}/members")))
        .json(&json!({"user_id": user["id"], "access_level": 41}))
        .send()
        .await
        .expect("r");
    assert_eq!(bad_level.status(), StatusCode::BAD_REQUEST);
    let project = expect(
        t.http
            .post(ctl("/projects"))
            .json(&json!({"path": "jaffle", "namespace": {"kind": "group", "id": sub["id"]}}))
            .send()
            .await
            .expect("r"),
        StatusCode::CREATED,
    )
    .await;
    let repo = project["repository_path"].as_str().expect("repo path");
    // A real bare repository whose HEAD is main.
    let head = std::fs::read_to_string(format!("{repo}/HEAD")).expect("HEAD");
    assert_eq!(head.trim(), "ref: refs/heads/main");
    let listed = json(
        t.get("/projects?membership=true&min_access_level=40", &token)
            .await,
    )
    .await;
    assert_eq!(listed[0]["path_with_namespace"], "analytics/dbt/jaffle");
    let missing_ns = t
        .http
        .post(ctl("/projects"))
        .json(&json!({"path": "x", "namespace": {"kind": "group", "id": 999}}))
        .send()
        .await
        .expect("r");
    assert_eq!(missing_ns.status(), StatusCode::NOT_FOUND);
    let raw = json(t.http.get(ctl("/state")).send().await.expect("r")).await;
    assert_eq!(raw["projects"].as_object().expect("projects").len(), 1);
    let clock = json(
        t.http
            .post(ctl("/clock/advance"))
            .json(&json!({"seconds": 3600}))
            .send()
            .await
            .expect("r"),
    )
    .await;
    assert!(clock["now"].is_string());
    let settings = json(t.http.get(ctl("/settings")).send().await.expect("r")).await;
    assert_eq!(settings["access_token_lifetime_secs"], 7200);
}

#[tokio::test]
async fn state_file_round_trip() {
    let dir = tempfile::tempdir().expect("dir");
    let state_file = dir.path().join("state.json");
    let config = || {
        let mut c = SimConfig::new("127.0.0.1:0".parse().expect("addr"));
        c.data_dir = Some(dir.path().join("data"));
        c.state_file = Some(state_file.clone());
        c
    };
    let token = {
        let sim = Sim::start(config()).await.expect("start");
        let (_, token) = sim
            .handle()
            .create_user(gitlab_sim::state::NewUser {
                username: "persisted".into(),
                ..Default::default()
            })
            .expect("user");
        assert!(sim.handle().save().expect("save"));
        sim.shutdown().await;
        token
    };
    let sim = Sim::start(config()).await.expect("restart");
    let me = reqwest::Client::new()
        .get(format!("{}/api/v4/user", sim.base_url()))
        .header("PRIVATE-TOKEN", &token)
        .send()
        .await
        .expect("r");
    assert_eq!(expect(me, StatusCode::OK).await["username"], "persisted");
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{not json").expect("write");
    let mut c = config();
    c.state_file = Some(corrupt);
    assert!(Sim::start(c).await.is_err());
}

#[tokio::test]
async fn requests_are_counted_by_route_pattern_and_status() {
    let t = TestSim::start().await;
    let user = t.user("counted");
    let project = t
        .project("warehouse", gitlab_sim::state::Namespace::User(user.id))
        .await;
    t.get(&format!("/projects/{}", project.id), &user.token)
        .await;
    t.get(&format!("/projects/{}", project.id), &user.token)
        .await;
    t.get("/projects/999999", &user.token).await;
    t.get("/user", "not-a-token").await;
    let route = "/api/v4/projects/{id}";
    assert_eq!(t.handle().request_count("GET", route), 3);
    let counts = t.handle().request_counts();
    let by_status = |status: u16| {
        counts
            .iter()
            .find(|(k, _)| k.route == route && k.status == status)
            .map(|(_, n)| *n)
    };
    assert_eq!(by_status(200), Some(2));
    assert_eq!(by_status(404), Some(1));
    // Over HTTP; control requests themselves are not counted.
    let listed = expect(
        t.http
            .get(t.url("/-/sim/requests"))
            .send()
            .await
            .expect("r"),
        StatusCode::OK,
    )
    .await;
    let listed = listed.as_array().expect("array");
    assert!(listed.iter().any(|r| r["method"] == "GET"
        && r["route"] == "/api/v4/user"
        && r["status"] == 401
        && r["count"] == 1));
    assert_eq!(listed.len(), counts.len());
    let reset = t
        .http
        .delete(t.url("/-/sim/requests"))
        .send()
        .await
        .expect("r");
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(t.handle().request_counts().is_empty());
}

#[tokio::test]
async fn a_transfer_keeps_the_project_id_and_a_revoked_deploy_token_stays_listed() {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let group = t.group("analytics", None);
    t.handle()
        .add_group_member(group, owner.id, 50)
        .expect("member");
    let project = t
        .project("warehouse", gitlab_sim::state::Namespace::Group(group))
        .await;
    let transfer = t.url(&format!("/-/sim/projects/{}/transfer", project.id));
    let moved = expect(
        t.http
            .post(&transfer)
            .json(&json!({"namespace": {"kind": "user", "id": owner.id}}))
            .send()
            .await
            .expect("r"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["id"], project.id);
    assert_eq!(moved["path_with_namespace"], "owner/warehouse");
    assert_eq!(moved["namespace"]["kind"], "user");
    let again = t
        .http
        .post(&transfer)
        .json(&json!({"namespace": {"kind": "user", "id": owner.id}}))
        .send()
        .await
        .expect("r");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let nowhere = t
        .http
        .post(&transfer)
        .json(&json!({"namespace": {"kind": "group", "id": 999_999}}))
        .send()
        .await
        .expect("r");
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    // The same path in the target namespace is taken.
    let other = t
        .project("warehouse", gitlab_sim::state::Namespace::Group(group))
        .await;
    let taken = t
        .http
        .post(t.url(&format!("/-/sim/projects/{}/transfer", other.id)))
        .json(&json!({"namespace": {"kind": "user", "id": owner.id}}))
        .send()
        .await
        .expect("r");
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let token = expect(
        t.post(
            &format!("/projects/{}/deploy_tokens", project.id),
            &owner.token,
            json!({"name": "ci", "scopes": ["read_repository"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token_id = token["id"].as_u64().expect("id");
    expect(
        t.http
            .post(t.url(&format!(
                "/-/sim/projects/{}/deploy_tokens/{token_id}/revoke",
                project.id
            )))
            .send()
            .await
            .expect("r"),
        StatusCode::OK,
    )
    .await;
    let shown = expect(
        t.get(
            &format!("/projects/{}/deploy_tokens/{token_id}", project.id),
            &owner.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["revoked"], true);
}

/// What lablink's tests and demo set up through the control API: SSH keys, protected
/// branches, push rules, forks; each visible through the REST API afterwards.
#[tokio::test]
async fn keys_protections_push_rules_and_forks_over_http() {
    let t = TestSim::start().await;
    let ctl = |path: &str| t.url(&format!("/-/sim{path}"));
    let post = |path: String, body: serde_json::Value| {
        let request = t.http.post(ctl(&path)).json(&body);
        async move { request.send().await.expect("request") }
    };
    let alice = t.user("alice");
    let bob = t.user("bob");
    let project = t
        .project("warehouse", gitlab_sim::state::Namespace::User(alice.id))
        .await;
    let keys = tempfile::tempdir().expect("tempdir");
    let (_, public, fingerprint) = crate::gitcli::ssh_keygen(keys.path(), "alice");
    let key = expect(
        post(
            format!("/users/{}/keys", alice.id),
            json!({ "title": "laptop", "key": public }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(key["title"], "laptop");
    assert_eq!(
        expect(
            post(
                format!("/users/{}/keys", alice.id),
                json!({ "title": "again", "key": public })
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({ "message": "fingerprint_sha256 has already been taken" })
    );
    let listed = expect(
        t.get(&format!("/users/{}/keys", alice.id), &bob.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["key"], public.as_str());
    let stored = t
        .handle()
        .lock()
        .ssh_keys
        .values()
        .next()
        .map(|k| k.fingerprint_sha256.clone());
    assert_eq!(stored.as_deref(), Some(fingerprint.as_str()));

    let p = project.id;
    let rule = expect(
        post(format!("/projects/{p}/protected_branches"), json!({ "name": "release/*", "push_access_level": 30, "allowed_to_push": [{ "user_id": bob.id }] })).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(rule["push_access_levels"][1]["user_id"], bob.id);
    let listed = expect(
        t.get(&format!("/projects/{p}/protected_branches"), &alice.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let gone = t
        .http
        .delete(ctl(&format!(
            "/projects/{p}/protected_branches/release%2F*"
        )))
        .send()
        .await
        .expect("r");
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);

    let put = t
        .http
        .put(ctl(&format!("/projects/{p}/push_rule")))
        .json(&json!({ "commit_message_regex": "^JIRA-", "max_file_size": 2 }))
        .send()
        .await
        .expect("r");
    expect(put, StatusCode::OK).await;
    let shown = expect(
        t.get(&format!("/projects/{p}/push_rule"), &alice.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["commit_message_regex"], "^JIRA-");
    assert_eq!(shown["max_file_size"], 2);
    let bad = t
        .http
        .put(ctl(&format!("/projects/{p}/push_rule")))
        .json(&json!({ "file_name_regex": "(" }))
        .send()
        .await
        .expect("r");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let fork = expect(
        post(
            format!("/projects/{p}/fork"),
            json!({ "user_id": bob.id, "path": "warehouse-bob" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(fork["path_with_namespace"], "bob/warehouse-bob");
    assert_eq!(fork["forked_from_project"]["id"], p);
    assert!(
        fork["repository_path"]
            .as_str()
            .is_some_and(|r| std::path::Path::new(r).exists())
    );
}
