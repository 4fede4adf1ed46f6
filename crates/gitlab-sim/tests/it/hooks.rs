//! Project hooks CRUD: validation, write-only secrets, token reset on URL change.

use base64::Engine;
use gitlab_sim::state::access;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, json};

fn signing_token() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

#[tokio::test]
async fn create_get_update_delete() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let base = format!("/projects/{}/hooks", project.id);
    let created = t
        .post(&base, &user.token, json!({"url": "http://127.0.0.1:9/hook", "token": "s3cret", "signing_token": signing_token(), "merge_requests_events": true, "push_events": false, "note_events": "true", "name": "lablink"}))
        .await;
    let hook = expect(created, StatusCode::CREATED).await;
    assert_eq!(hook["token_present"], true);
    assert_eq!(hook["signing_token_present"], true);
    assert!(hook.get("token").is_none() && hook.get("signing_token").is_none());
    assert_eq!(hook["merge_requests_events"], true);
    assert_eq!(hook["push_events"], false);
    assert_eq!(hook["note_events"], true);
    assert_eq!(hook["tag_push_events"], false);
    assert_eq!(hook["enable_ssl_verification"], true);
    assert_eq!(hook["alert_status"], "executable");
    assert_eq!(hook["disabled_until"], serde_json::Value::Null);
    assert_eq!(hook["project_id"], project.id);
    let id = hook["id"].as_u64().expect("id");

    // The control API sees the write-only secrets.
    let raw = json(
        t.http
            .get(t.url(&format!("/-/sim/projects/{}/state", project.id)))
            .send()
            .await
            .expect("state"),
    )
    .await;
    assert_eq!(raw["hooks"][0]["token"], "s3cret");
    assert_eq!(raw["hooks"][0]["recent_failures"], 0);
    assert_eq!(raw["hooks"][0]["deliveries"], json!([]));

    // Same URL keeps the token; a new URL resets it.
    let same = expect(
        t.put(
            &format!("{base}/{id}"),
            &user.token,
            json!({"url": "http://127.0.0.1:9/hook", "name": "renamed"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(same["token_present"], true);
    assert_eq!(same["name"], "renamed");
    assert_eq!(same["merge_requests_events"], true);
    let moved = expect(
        t.put(
            &format!("{base}/{id}"),
            &user.token,
            json!({"url": "http://127.0.0.1:9/other"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["token_present"], false);
    assert_eq!(moved["signing_token_present"], true);

    let no_url = t
        .put(&format!("{base}/{id}"), &user.token, json!({"name": "x"}))
        .await;
    assert_eq!(
        expect(no_url, StatusCode::BAD_REQUEST).await,
        json!({"error": "url is missing"})
    );
    let list = json(t.get(&base, &user.token).await).await;
    assert_eq!(list.as_array().expect("a").len(), 1);
    expect(
        t.get(&format!("{base}/{id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    let deleted = t.delete(&format!("{base}/{id}"), &user.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = t.get(&format!("{base}/{id}"), &user.token).await;
    assert_eq!(
        expect(gone, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Hook Not Found"})
    );
    let again = t.delete(&format!("{base}/{id}"), &user.token).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validation_errors() {
    let t = TestSim::start().await;
    let user = t.user("bob");
    let dev = t.user("dev");
    let project = t.project_for(&user, access::MAINTAINER).await;
    t.handle()
        .add_project_member(project.id, dev.id, access::DEVELOPER)
        .expect("member");
    let base = format!("/projects/{}/hooks", project.id);
    let missing = t
        .post(&base, &user.token, json!({"push_events": true}))
        .await;
    assert_eq!(
        expect(missing, StatusCode::BAD_REQUEST).await,
        json!({"error": "url is missing"})
    );
    for bad in ["not a url", "ftp://example.com/x", "javascript:alert(1)"] {
        let r = t.post(&base, &user.token, json!({"url": bad})).await;
        assert_eq!(
            expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
            json!({"message": "Invalid url given"})
        );
    }
    let bad_signing = t
        .post(
            &base,
            &user.token,
            json!({"url": "https://example.com/h", "signing_token": "whsec_c2hvcnQ="}),
        )
        .await;
    assert_eq!(bad_signing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad_bool = t
        .post(
            &base,
            &user.token,
            json!({"url": "https://example.com/h", "push_events": "maybe"}),
        )
        .await;
    assert_eq!(
        expect(bad_bool, StatusCode::BAD_REQUEST).await,
        json!({"error": "push_events is invalid"})
    );
    let bad_header = t.post(&base, &user.token, json!({"url": "https://example.com/h", "custom_headers": [{"key": "X-Gitlab-Token", "value": "x"}]})).await;
    assert_eq!(
        expect(bad_header, StatusCode::UNPROCESSABLE_ENTITY).await,
        json!({"message": "Custom headers validation failed"})
    );
    let forbidden = t
        .post(&base, &dev.token, json!({"url": "https://example.com/h"}))
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    // Local network URLs are refused when the instance disallows them.
    t.http
        .put(t.url("/-/sim/settings"))
        .json(&json!({"allow_local_webhooks": false}))
        .send()
        .await
        .expect("settings");
    let local = t
        .post(
            &base,
            &user.token,
            json!({"url": "http://127.0.0.1:8080/h"}),
        )
        .await;
    assert_eq!(
        expect(local, StatusCode::UNPROCESSABLE_ENTITY).await,
        json!({"message": "Invalid url given"})
    );
    // Nothing was stored by the failed requests.
    assert_eq!(t.handle().lock().hooks_of(project.id).count(), 0);
}
