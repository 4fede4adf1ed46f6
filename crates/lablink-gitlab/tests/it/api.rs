use std::time::Duration;

use futures::StreamExt as _;
use lablink_gitlab::api::{
    CommitState, CommitStatusRequest, HookSpec, NewAccessToken, Pager, Project, RetryPolicy,
    StatusOutcome,
};
use lablink_gitlab::error::TokenProblem;
use lablink_gitlab::{Api, GitLabError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::server::{Reply, fixture, serve};

const FAST_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_backoff: Duration::ZERO,
    max_wait: Duration::from_secs(2),
};

#[tokio::test]
async fn bearer_and_private_token_headers() {
    let server = serve(|_, _| Reply::json(200, fixture("api.user.current_user.json"))).await;
    let user = Api::bearer(&server.instance(), SecretString::from("oauth-tok"))
        .current_user()
        .await
        .unwrap();
    assert_eq!(user.username, "john_smith");
    Api::private_token(&server.instance(), SecretString::from("glpat-x"))
        .current_user()
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].path, "/api/v4/user");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer oauth-tok")
    );
    assert_eq!(requests[0].query, "");
    assert_eq!(requests[1].header("private-token"), Some("glpat-x"));
    assert_eq!(requests[1].header("authorization"), None);
}

#[tokio::test]
async fn expired_tokens_are_told_apart_and_never_shown() {
    let server = serve(|_, _| {
        Reply::json(
            401,
            r#"{"error":"invalid_token","error_description":"Token is expired. You can either do re-authorization or token refresh."}"#,
        )
    })
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("very-secret-token"));
    let err = api.current_user().await.unwrap_err();
    assert_eq!(err.token_problem(), Some(TokenProblem::Expired));
    assert!(!err.to_string().contains("very-secret-token"));
    assert!(!format!("{err:?}").contains("very-secret-token"));
    assert!(!format!("{api:?}").contains("very-secret-token"));
}

#[tokio::test]
async fn project_listing_follows_link_headers_verbatim() {
    let project = |id: i64, kind: &str| {
        format!(
            r#"{{"id":{id},"name":"p{id}","path_with_namespace":"g/p{id}","default_branch":"main",
            "visibility":"private","web_url":"https://x/g/p{id}","http_url_to_repo":"https://x/g/p{id}.git",
            "namespace":{{"id":9,"kind":"{kind}","full_path":"g"}}}}"#
        )
    };
    let server = serve(move |request, _| {
        let base = format!("http://{}", request.header("host").unwrap());
        match request.query_value("id_after").as_deref() {
            None => Reply::json(
                200,
                format!("[{},{}]", project(1, "group"), project(2, "user")),
            )
            .with_header(
                "link",
                format!(
                    r#"<{base}/api/v4/projects?id_after=2&membership=true&opaque=kept>; rel="next""#
                ),
            ),
            Some("2") => Reply::json(200, format!("[{}]", project(3, "group"))),
            Some(other) => panic!("unexpected id_after {other}"),
        }
    })
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("t"));
    let first = api
        .projects_first_page(Some(40), Some("dbt"), 2)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.items[0].in_group() && !first.items[1].in_group());
    let rest: Vec<_> = Pager::<Project>::resume(&api, first.next.clone())
        .into_stream()
        .collect()
        .await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].as_ref().unwrap().items[0].id, 3);

    let requests = server.requests();
    let q = |key: &str| requests[0].query_value(key);
    assert_eq!(q("membership").as_deref(), Some("true"));
    assert_eq!(q("archived").as_deref(), Some("false"));
    assert_eq!(q("simple").as_deref(), Some("true"));
    assert_eq!(q("pagination").as_deref(), Some("keyset"));
    assert_eq!(q("order_by").as_deref(), Some("id"));
    assert_eq!(q("sort").as_deref(), Some("asc"));
    assert_eq!(q("per_page").as_deref(), Some("2"));
    assert_eq!(q("min_access_level").as_deref(), Some("40"));
    assert_eq!(q("search").as_deref(), Some("dbt"));
    assert_eq!(requests[1].query, "id_after=2&membership=true&opaque=kept");

    let all = api
        .list_projects_keyset(Some(40), None, 2)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(all.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test]
async fn gets_honour_retry_after_and_posts_are_not_retried() {
    let server = serve(|request, index| match (request.method.as_str(), index) {
        ("GET", 0) => Reply::json(429, "Retry later").with_header("retry-after", "0"),
        ("GET", _) => Reply::json(200, fixture("api.user.current_user.json")),
        _ => Reply::json(429, "Retry later").with_header("retry-after", "30"),
    })
    .await;
    let api =
        Api::bearer(&server.instance(), SecretString::from("t")).with_retry_policy(FAST_RETRY);
    api.current_user().await.unwrap();
    assert_eq!(server.requests().len(), 2);

    let spec = HookSpec {
        url: "https://lablink.example.com/webhooks/gitlab/r1".to_owned(),
        token: Some(SecretString::from("hook-secret")),
        signing_token: None,
        merge_requests_events: true,
        push_events: true,
        enable_ssl_verification: true,
    };
    let err = api.create_hook(5, &spec).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert!(err.is_retryable());
    assert_eq!(server.requests().len(), 3, "the POST was sent once");
}

#[tokio::test]
async fn hook_lifecycle_request_shapes() {
    let server = serve(
        |request, _| match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/api/v4/projects/5/hooks") => {
                Reply::json(201, fixture("api.project_hook.get.json"))
            }
            ("PUT", "/api/v4/projects/5/hooks/1") => {
                Reply::json(200, fixture("api.project_hook.get.json"))
            }
            ("POST", "/api/v4/projects/5/hooks/1/test/merge_requests_events") => {
                Reply::json(201, r#"{"message":"201 Created"}"#)
            }
            ("GET", "/api/v4/projects/5/hooks/1/events") => Reply::json(
                200,
                format!("[{}]", fixture("api.project_hook.event.list_item.json")),
            ),
            ("DELETE", "/api/v4/projects/5/hooks/1") => Reply::json(204, ""),
            _ => Reply::json(404, r#"{"message":"404 Not found"}"#),
        },
    )
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("t"));
    let spec = HookSpec {
        url: "https://lablink.example.com/webhooks/gitlab/r1".to_owned(),
        token: Some(SecretString::from("hook-secret")),
        signing_token: Some(SecretString::from("whsec_AAAA")),
        merge_requests_events: true,
        push_events: false,
        enable_ssl_verification: true,
    };
    let hook = api.create_hook(5, &spec).await.unwrap();
    assert_eq!(hook.id, 1);
    api.edit_hook(5, 1, &spec).await.unwrap();
    api.test_hook(5, 1, "merge_requests_events").await.unwrap();
    let events = api
        .hook_events(5, 1, Some("successful"))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    api.delete_hook(5, 1).await.unwrap();
    let gone = api.delete_hook(5, 2).await.unwrap_err();
    assert!(gone.is_not_found());

    let requests = server.requests();
    let created = requests[0].json();
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(
        created["url"],
        "https://lablink.example.com/webhooks/gitlab/r1"
    );
    assert_eq!(created["token"], "hook-secret");
    assert_eq!(created["signing_token"], "whsec_AAAA");
    assert_eq!(created["push_events"], false);
    assert_eq!(created["note_events"], false);
    assert_eq!(created["tag_push_events"], false);
    assert_eq!(requests[1].json()["url"], created["url"]);
    assert_eq!(
        requests[3].query_value("status").as_deref(),
        Some("successful")
    );
}

#[tokio::test]
async fn member_all_maps_404_to_no_access() {
    let server = serve(|request, _| match request.path.as_str() {
        "/api/v4/projects/3/members/all/1" => {
            Reply::json(200, fixture("api.member.get_all_user_id.json"))
        }
        _ => Reply::json(404, r#"{"message":"404 Not found"}"#),
    })
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("t"));
    assert_eq!(
        api.member_all(3, 1).await.unwrap().unwrap().access_level,
        30
    );
    assert_eq!(api.member_all(3, 2).await.unwrap(), None);
}

#[tokio::test]
async fn commit_status_outcomes() {
    let server = serve(|request, _| {
        if request.method == "GET" {
            let status = fixture("api.commit_status.with_pipeline_id.json");
            return Reply::json(200, format!("[{status}]"));
        }
        match request.json()["state"].as_str() {
            Some("running") => Reply::json(201, fixture("api.commit_status.with_pipeline_id.json")),
            Some("pending") => Reply::json(
                400,
                r#"{"message":"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")"}"#,
            ),
            Some("success") => Reply::json(409, r#"{"message":"409 Conflict"}"#),
            _ => Reply::json(400, r#"{"message":"400 Bad request - State is required"}"#),
        }
    })
    .await;
    let api = Api::private_token(&server.instance(), SecretString::from("bot"));
    let request = |state| CommitStatusRequest {
        sha: "6b9fec60e107f1f323dfa6674b317facd996cb0a",
        state,
        name: "lablink/ci",
        ref_name: Some("feature"),
        target_url: Some("https://lablink.example.com/runs/1"),
        description: Some("Running dbt build"),
        pipeline_id: Some(15641),
    };
    match api
        .set_commit_status(7, &request(CommitState::Running))
        .await
        .unwrap()
    {
        StatusOutcome::Posted(status) => assert_eq!(status.pipeline_id, Some(15641)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        api.set_commit_status(7, &request(CommitState::Pending))
            .await
            .unwrap(),
        StatusOutcome::AlreadyInState
    );
    let conflict = api
        .set_commit_status(7, &request(CommitState::Success))
        .await
        .unwrap_err();
    assert!(conflict.is_retryable());
    let bad = api
        .set_commit_status(7, &request(CommitState::Failed))
        .await
        .unwrap_err();
    assert!(matches!(bad, GitLabError::BadRequest { .. }));

    let listed = api
        .commit_statuses(
            7,
            "6b9fec60e107f1f323dfa6674b317facd996cb0a",
            Some("lablink/ci"),
        )
        .await
        .unwrap();
    assert_eq!(listed[0].status, "failed");
    let requests = server.requests();
    let list = requests.last().unwrap();
    assert_eq!(
        list.path,
        "/api/v4/projects/7/repository/commits/6b9fec60e107f1f323dfa6674b317facd996cb0a/statuses"
    );
    assert_eq!(list.query_value("name").as_deref(), Some("lablink/ci"));
    let first = &requests[0];
    assert_eq!(
        first.path,
        "/api/v4/projects/7/statuses/6b9fec60e107f1f323dfa6674b317facd996cb0a"
    );
    let body = first.json();
    assert_eq!(body["name"], "lablink/ci");
    assert_eq!(body["ref"], "feature");
    assert_eq!(body["target_url"], "https://lablink.example.com/runs/1");
    assert_eq!(body["pipeline_id"], 15641);
}

#[tokio::test]
async fn access_token_rotation_and_deploy_credentials() {
    let server = serve(
        |request, _| match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/api/v4/projects/7/access_tokens") => Reply::json(
                201,
                fixture("api.project_access_token.create.docs-example.json"),
            ),
            ("POST", "/api/v4/projects/7/access_tokens/58/rotate")
            | ("POST", "/api/v4/projects/7/access_tokens/self/rotate") => {
                Reply::json(200, fixture("api.project_access_token.rotate.json"))
            }
            ("DELETE", _) => Reply::json(204, ""),
            ("GET", "/api/v4/personal_access_tokens/self") => {
                Reply::json(200, fixture("api.project_access_token.get.json"))
            }
            ("POST", "/api/v4/projects/7/deploy_tokens") => {
                Reply::json(201, fixture("api.deploy_token.create.json"))
            }
            ("POST", "/api/v4/projects/7/deploy_keys") => {
                Reply::json(201, fixture("api.deploy_key.create.json"))
            }
            _ => Reply::json(404, r#"{"message":"404 Not found"}"#),
        },
    )
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("t"));
    let expires = chrono::NaiveDate::from_ymd_opt(2027, 1, 31).unwrap();
    let created = api
        .create_project_access_token(
            7,
            &NewAccessToken {
                name: "lablink token for GitLab project: 7",
                scopes: &["api", "write_repository"],
                access_level: 40,
                expires_at: expires,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.info.id, 58);
    let rotated = api
        .rotate_project_access_token(7, 58, expires)
        .await
        .unwrap();
    assert_eq!(
        (rotated.info.id, rotated.token.expose_secret()),
        (42, "s3cr3t")
    );
    api.self_rotate_project_access_token(7, expires)
        .await
        .unwrap();
    api.revoke_project_access_token(7, 42).await.unwrap();
    let me = api.token_self().await.unwrap();
    assert_eq!(me.id, 1);
    let deploy = api
        .create_deploy_token(7, "lablink clone", Some("lablink-7"), None)
        .await
        .unwrap();
    assert_eq!(deploy.info.username, "custom-user");
    api.create_deploy_key(7, "lablink", "ssh-ed25519 AAAA", true)
        .await
        .unwrap();
    api.delete_deploy_token(7, 1).await.unwrap();
    api.delete_deploy_key(7, 12).await.unwrap();

    let requests = server.requests();
    let body = requests[0].json();
    assert_eq!(body["name"], "lablink token for GitLab project: 7");
    assert_eq!(
        body["scopes"],
        serde_json::json!(["api", "write_repository"])
    );
    assert_eq!(body["access_level"], 40);
    assert_eq!(body["expires_at"], "2027-01-31");
    assert_eq!(requests[1].json()["expires_at"], "2027-01-31");
    assert_eq!(
        requests[2].path,
        "/api/v4/projects/7/access_tokens/self/rotate"
    );
    assert_eq!(requests[3].path, "/api/v4/projects/7/access_tokens/42");
    assert_eq!(requests[4].path, "/api/v4/personal_access_tokens/self");
    let deploy_body = requests[5].json();
    assert_eq!(
        deploy_body["scopes"],
        serde_json::json!(["read_repository"])
    );
    assert_eq!(deploy_body["username"], "lablink-7");
    assert!(deploy_body.get("expires_at").is_none());
    assert_eq!(requests[6].json()["can_push"], true);
    assert_eq!(requests[7].path, "/api/v4/projects/7/deploy_tokens/1");
    assert_eq!(requests[8].path, "/api/v4/projects/7/deploy_keys/12");
}

#[tokio::test]
async fn open_merge_requests_and_notes() {
    let mr = r#"{"id":84,"iid":3,"project_id":7,"title":"t","state":"opened","draft":false,
        "source_branch":"f","target_branch":"main","source_project_id":7,"target_project_id":7,
        "sha":"abc","web_url":"https://x/mr/3","updated_at":"2024-01-02T03:04:05.000Z"}"#;
    let server = serve(move |request, _| match request.method.as_str() {
        "GET" => Reply::json(200, format!("[{mr}]")),
        "POST" => Reply::json(201, r#"{"id":11,"body":"hello"}"#),
        _ => Reply::json(200, r#"{"id":11,"body":"edited"}"#),
    })
    .await;
    let api = Api::bearer(&server.instance(), SecretString::from("t"));
    let after = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let open = api
        .list_open_merge_requests(7, Some(after), 50)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(open[0].sha.as_deref(), Some("abc"));
    assert_eq!(
        api.create_merge_request_note(7, 3, "hello")
            .await
            .unwrap()
            .id,
        11
    );
    assert_eq!(
        api.update_merge_request_note(7, 3, 11, "edited")
            .await
            .unwrap()
            .body,
        "edited"
    );
    let requests = server.requests();
    assert_eq!(requests[0].query_value("state").as_deref(), Some("opened"));
    assert_eq!(
        requests[0].query_value("updated_after").as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(
        requests[1].path,
        "/api/v4/projects/7/merge_requests/3/notes"
    );
    assert_eq!(requests[1].json()["body"], "hello");
    assert_eq!(requests[2].method, "PUT");
    assert_eq!(
        requests[2].path,
        "/api/v4/projects/7/merge_requests/3/notes/11"
    );
}
