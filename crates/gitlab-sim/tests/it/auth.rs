//! API authentication, scopes, visibility, rate limiting and fault injection.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, header};
use gitlab_sim::state::access;

#[tokio::test]
async fn credentials_are_read_from_every_place_gitlab_reads_them() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let none = t.http.get(t.api("/user")).send().await.expect("r");
    assert_eq!(
        expect(none, StatusCode::UNAUTHORIZED).await,
        json!({"message": "401 Unauthorized"})
    );
    let header_token = t.get("/user", &user.token).await;
    assert_eq!(expect(header_token, StatusCode::OK).await["id"], user.id);
    let bearer = t
        .http
        .get(t.api("/user"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("r");
    expect(bearer, StatusCode::OK).await;
    let query = t
        .http
        .get(t.api("/user"))
        .query(&[("private_token", &user.token)])
        .send()
        .await
        .expect("r");
    expect(query, StatusCode::OK).await;
    let bad = t.get("/user", "glpat-nope").await;
    let www = header(&bad, "www-authenticate").expect("www-authenticate");
    assert!(www.contains("invalid_token"), "{www}");
    assert_eq!(
        expect(bad, StatusCode::UNAUTHORIZED).await,
        json!({"error": "invalid_token", "error_description": "Bad Access Token."})
    );
}

#[tokio::test]
async fn scopes_are_enforced() {
    let t = TestSim::start().await;
    let user = t.user("bob");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let (read_user, read_api) = {
        let mut state = t.handle().lock();
        let (_, read_user) = state
            .create_personal_access_token(user.id, "ru", vec!["read_user".into()], None)
            .expect("pat");
        let (_, read_api) = state
            .create_personal_access_token(user.id, "ra", vec!["read_api".into()], None)
            .expect("pat");
        (read_user, read_api)
    };
    expect(t.get("/user", &read_user).await, StatusCode::OK).await;
    let denied = t.get("/projects", &read_user).await;
    assert!(
        header(&denied, "www-authenticate")
            .expect("header")
            .contains("insufficient_scope")
    );
    let body = expect(denied, StatusCode::FORBIDDEN).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        body["error_description"],
        "The request requires higher privileges than provided by the access token."
    );
    expect(
        t.get(&format!("/projects/{}", project.id), &read_api).await,
        StatusCode::OK,
    )
    .await;
    let write = t
        .post(
            &format!("/projects/{}/hooks", project.id),
            &read_api,
            json!({"url": "https://example.com/h"}),
        )
        .await;
    assert_eq!(
        expect(write, StatusCode::FORBIDDEN).await["error"],
        "insufficient_scope"
    );
}

#[tokio::test]
async fn expired_and_revoked_personal_tokens_are_refused() {
    let t = TestSim::start().await;
    let user = t.user("carol");
    let tomorrow = t.handle().now().date_naive().succ_opt().expect("date");
    let (pat, token) = t
        .handle()
        .lock()
        .create_personal_access_token(user.id, "short", vec!["api".into()], Some(tomorrow))
        .expect("pat");
    expect(t.get("/user", &token).await, StatusCode::OK).await;
    t.handle().advance_clock(2 * 86_400);
    let expired = expect(t.get("/user", &token).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        expired["error_description"],
        "Token is expired. You can either do re-authorization or token refresh."
    );
    t.handle()
        .lock()
        .personal_access_tokens
        .get_mut(&pat.id)
        .expect("pat")
        .revoked = true;
    let revoked = expect(t.get("/user", &token).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(revoked["error"], "invalid_token");
}

#[tokio::test]
async fn invisible_projects_are_404_and_insufficient_roles_403() {
    let t = TestSim::start().await;
    let owner = t.user("owner");
    let stranger = t.user("stranger");
    let reporter = t.user("reporter");
    let project = t.project_for(&owner, access::OWNER).await;
    t.handle()
        .add_project_member(project.id, reporter.id, access::REPORTER)
        .expect("member");
    let hidden = t
        .get(&format!("/projects/{}", project.id), &stranger.token)
        .await;
    assert_eq!(
        expect(hidden, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Project Not Found"})
    );
    let anonymous = t
        .http
        .get(t.api(&format!("/projects/{}", project.id)))
        .send()
        .await
        .expect("r");
    assert_eq!(
        expect(anonymous, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Project Not Found"})
    );
    let hooks = t
        .get(&format!("/projects/{}/hooks", project.id), &reporter.token)
        .await;
    assert_eq!(
        expect(hooks, StatusCode::FORBIDDEN).await,
        json!({"message": "403 Forbidden"})
    );
    let unknown_route = t.get("/nothing/here", &owner.token).await;
    assert_eq!(
        expect(unknown_route, StatusCode::NOT_FOUND).await,
        json!({"error": "404 Not Found"})
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let t = TestSim::start().await;
    let user = t.user("dave");
    let r = t
        .http
        .put(t.url("/-/sim/settings"))
        .json(&json!({"rate_limit": {"limit": 2, "period_secs": 60}}))
        .send()
        .await
        .expect("settings");
    expect(r, StatusCode::OK).await;
    let first = t.get("/user", &user.token).await;
    assert_eq!(header(&first, "ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&first, "ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(
        header(&first, "ratelimit-name").as_deref(),
        Some("throttle_authenticated_api")
    );
    assert!(header(&first, "ratelimit-reset").is_some());
    expect(t.get("/user", &user.token).await, StatusCode::OK).await;
    let limited = t.get("/user", &user.token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = header(&limited, "retry-after")
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    assert!(
        header(&limited, "ratelimit-resettime")
            .expect("resettime")
            .ends_with("GMT")
    );
    assert_eq!(limited.text().await.expect("body").trim(), "Retry later");
    // The next window (sim clock) admits requests again.
    t.handle().advance_clock(60);
    expect(t.get("/user", &user.token).await, StatusCode::OK).await;
}

#[tokio::test]
async fn faults_are_injected_per_route() {
    let t = TestSim::start().await;
    let user = t.user("erin");
    let add = |body: serde_json::Value| t.http.post(t.url("/-/sim/faults")).json(&body).send();
    expect(
        add(json!({"path": "/api/v4/user", "error_rate": 1.0, "error_status": 503}))
            .await
            .expect("fault"),
        StatusCode::CREATED,
    )
    .await;
    let failed = t.get("/user", &user.token).await;
    assert_eq!(
        expect(failed, StatusCode::SERVICE_UNAVAILABLE).await["message"],
        "503 Service Unavailable"
    );
    // Other routes are unaffected.
    expect(
        t.get(&format!("/users/{}", user.id), &user.token).await,
        StatusCode::OK,
    )
    .await;
    t.http
        .delete(t.url("/-/sim/faults"))
        .send()
        .await
        .expect("clear");
    expect(
        add(json!({"path": "/api/v4/users/*", "rate_limited": true}))
            .await
            .expect("fault"),
        StatusCode::CREATED,
    )
    .await;
    let limited = t.get(&format!("/users/{}", user.id), &user.token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&limited, "retry-after").is_some());
    t.http
        .delete(t.url("/-/sim/faults"))
        .send()
        .await
        .expect("clear");
    expect(
        add(json!({"path": "/api/v4/user", "drop_connection": true}))
            .await
            .expect("fault"),
        StatusCode::CREATED,
    )
    .await;
    let dropped = match t
        .http
        .get(t.api("/user"))
        .header("PRIVATE-TOKEN", &user.token)
        .send()
        .await
    {
        Ok(r) => r.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(dropped, "the connection must be cut");
    t.http
        .delete(t.url("/-/sim/faults"))
        .send()
        .await
        .expect("clear");
    expect(t.get("/user", &user.token).await, StatusCode::OK).await;
}

#[tokio::test]
async fn malformed_input_gets_gitlab_errors_not_panics() {
    let t = TestSim::start().await;
    let user = t.user("frank");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let tokens = format!("/projects/{}/access_tokens", project.id);
    // -216 wraps to 40 as a byte: it must still be refused.
    let wrapped = t
        .post(
            &tokens,
            &user.token,
            json!({"name": "x", "scopes": ["api"], "access_level": -216}),
        )
        .await;
    assert_eq!(
        expect(wrapped, StatusCode::BAD_REQUEST).await,
        json!({"error": "access_level does not have a valid value"})
    );
    let not_json = t
        .http
        .post(t.api(&tokens))
        .header("PRIVATE-TOKEN", &user.token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("r");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let page = t.get("/projects?page=abc", &user.token).await;
    assert_eq!(
        expect(page, StatusCode::BAD_REQUEST).await,
        json!({"error": "page is invalid"})
    );
    let huge = t
        .get(
            &format!("/projects?page={}&per_page=100", u32::MAX),
            &user.token,
        )
        .await;
    assert_eq!(expect(huge, StatusCode::OK).await, json!([]));
    let encoded = t.get("/projects/%FF%FE", &user.token).await;
    assert!(encoded.status().is_client_error());
    let r = t
        .http
        .post(t.url("/-/sim/clock/advance"))
        .json(&json!({"seconds": i64::MAX}))
        .send()
        .await
        .expect("r");
    expect(r, StatusCode::OK).await;
    // The clock is clamped, the server keeps answering, and a token without expiry still works.
    expect(t.get("/user", &user.token).await, StatusCode::OK).await;
}
