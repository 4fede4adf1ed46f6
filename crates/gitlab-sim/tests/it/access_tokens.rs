//! Project access tokens: roles, expiry rules, bot users, rotation families, Free mode.

use chrono::Days;
use gitlab_sim::state::access;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, json};

#[tokio::test]
async fn create_makes_a_bot_member_and_the_token_works() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let base = format!("/projects/{}/access_tokens", project.id);
    let today = t.handle().now().date_naive();
    let created = expect(t.post(&base, &user.token, json!({"name": "lablink token for GitLab project: 1", "scopes": ["api", "write_repository"]})).await, StatusCode::CREATED).await;
    assert_eq!(created["access_level"], 40);
    assert_eq!(created["active"], true);
    assert_eq!(created["revoked"], false);
    assert_eq!(created["expires_at"], (today + Days::new(365)).to_string());
    let token = created["token"].as_str().expect("token").to_owned();
    let bot_id = created["user_id"].as_u64().expect("bot");
    let bot = expect(t.get("/user", &token).await, StatusCode::OK).await;
    assert_eq!(bot["id"], bot_id);
    assert_eq!(bot["bot"], true);
    let username = bot["username"].as_str().expect("username");
    assert!(
        username.starts_with(&format!("project_{}_bot_", project.id)),
        "{username}"
    );
    assert_eq!(bot["email"], format!("{username}@noreply.127.0.0.1"));
    let member = expect(
        t.get(
            &format!("/projects/{}/members/all/{bot_id}", project.id),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(member["access_level"], 40);
    // Project access tokens cannot create other tokens.
    let nested = t
        .post(&base, &token, json!({"name": "x", "scopes": ["api"]}))
        .await;
    assert_eq!(
        expect(nested, StatusCode::BAD_REQUEST).await["message"],
        "400 Bad request - User does not have permission to create project access token"
    );
    let listed = json(t.get(&base, &user.token).await).await;
    assert_eq!(listed.as_array().expect("a").len(), 1);
    assert!(listed[0].get("token").is_none());
    let shown = expect(
        t.get(&format!("{base}/{}", created["id"]), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["name"], "lablink token for GitLab project: 1");
    let missing = t.get(&format!("{base}/999999"), &user.token).await;
    assert_eq!(
        expect(missing, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Project Access Token Not Found"})
    );
}

#[tokio::test]
async fn creation_rules() {
    let t = TestSim::start().await;
    let user = t.user("bob");
    let dev = t.user("dev");
    let project = t.project_for(&user, access::MAINTAINER).await;
    t.handle()
        .add_project_member(project.id, dev.id, access::DEVELOPER)
        .expect("member");
    let base = format!("/projects/{}/access_tokens", project.id);
    let no_permission = json!({"message": "400 Bad request - User does not have permission to create project access token"});
    assert_eq!(
        expect(
            t.post(&base, &dev.token, json!({"name": "x", "scopes": ["api"]}))
                .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        no_permission
    );
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"scopes": ["api"]})).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "name is missing"})
    );
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"name": "x"})).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "scopes is missing"})
    );
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"name": "x", "scopes": ["sudo"]}))
                .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "scopes does not have a valid value"})
    );
    let owner_level = expect(
        t.post(
            &base,
            &user.token,
            json!({"name": "x", "scopes": ["api"], "access_level": 50}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        owner_level["message"]
            .as_str()
            .expect("m")
            .starts_with("400 Bad request - Access level")
    );
    let today = t.handle().now().date_naive();
    let too_far = (today + Days::new(366)).to_string();
    assert_eq!(
        t.post(
            &base,
            &user.token,
            json!({"name": "x", "scopes": ["api"], "expires_at": too_far})
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    let ok_date = (today + Days::new(365)).to_string();
    expect(
        t.post(
            &base,
            &user.token,
            json!({"name": "x", "scopes": ["api"], "expires_at": ok_date, "access_level": 30}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        t.post(
            &base,
            &user.token,
            json!({"name": "x", "scopes": ["api"], "expires_at": "tomorrow"})
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    // gitlab.com Free.
    let r = t
        .http
        .put(t.url("/-/sim/settings"))
        .json(&json!({"gitlab_com_free": true}))
        .send()
        .await
        .expect("settings");
    expect(r, StatusCode::OK).await;
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"name": "x", "scopes": ["api"]}))
                .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        no_permission
    );
    // Reading needs Maintainer+.
    assert_eq!(
        t.get(&base, &dev.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rotation_revokes_the_old_token_and_reuse_revokes_the_family() {
    let t = TestSim::start().await;
    let user = t.user("carol");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let base = format!("/projects/{}/access_tokens", project.id);
    let first = expect(
        t.post(
            &base,
            &user.token,
            json!({"name": "rot", "scopes": ["api"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let first_id = first["id"].as_u64().expect("id");
    let first_token = first["token"].as_str().expect("t").to_owned();
    let rotated = expect(
        t.post(&format!("{base}/{first_id}/rotate"), &user.token, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let second_id = rotated["id"].as_u64().expect("id");
    assert_ne!(second_id, first_id);
    assert_eq!(rotated["user_id"], first["user_id"]);
    let week = t.handle().now().date_naive() + Days::new(7);
    assert_eq!(rotated["expires_at"], week.to_string());
    let second_token = rotated["token"].as_str().expect("t").to_owned();
    assert_eq!(
        expect(t.get("/user", &first_token).await, StatusCode::UNAUTHORIZED).await["error"],
        "invalid_token"
    );
    expect(t.get("/user", &second_token).await, StatusCode::OK).await;
    let old = expect(
        t.get(&format!("{base}/{first_id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(old["revoked"], true);
    assert_eq!(old["active"], false);
    // Rotating the revoked token again: refused, and the whole family is revoked.
    let reuse = t
        .post(&format!("{base}/{first_id}/rotate"), &user.token, json!({}))
        .await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        t.get("/user", &second_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let active = json(t.get(&format!("{base}?state=active"), &user.token).await).await;
    assert_eq!(active, json!([]));
}

#[tokio::test]
async fn self_rotation_and_revoke() {
    let t = TestSim::start().await;
    let user = t.user("dave");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let base = format!("/projects/{}/access_tokens", project.id);
    let created = expect(
        t.post(
            &base,
            &user.token,
            json!({"name": "self", "scopes": ["self_rotate", "read_api"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token = created["token"].as_str().expect("t");
    let rotated = expect(
        t.post(&format!("{base}/self/rotate"), token, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let new_token = rotated["token"].as_str().expect("t");
    assert_eq!(
        t.get("/user", token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let new_id = rotated["id"].as_u64().expect("id");
    let revoked = t.delete(&format!("{base}/{new_id}"), &user.token).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/user", new_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The bot is no longer a member.
    let bot = created["user_id"].as_u64().expect("bot");
    assert_eq!(
        t.get(
            &format!("/projects/{}/members/all/{bot}", project.id),
            &user.token
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
}
