//! Deploy tokens and deploy keys (fingerprints checked against ssh-keygen).

use std::process::Command;

use gitlab_sim::state::access;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestSim, expect, json};

#[tokio::test]
async fn deploy_tokens_create_list_get_delete() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let base = format!("/projects/{}/deploy_tokens", project.id);
    let created = expect(
        t.post(
            &base,
            &user.token,
            json!({"name": "lablink", "scopes": "read_repository"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_u64().expect("id");
    assert_eq!(created["username"], format!("gitlab+deploy-token-{id}"));
    assert_eq!(created["scopes"], json!(["read_repository"]));
    assert_eq!(created["expires_at"], serde_json::Value::Null);
    assert_eq!(created["expired"], false);
    let token = created["token"].as_str().expect("token");
    // Deploy tokens cannot use the API.
    assert_eq!(
        t.get("/user", token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let custom = expect(t.post(&base, &user.token, json!({"name": "c", "scopes": ["read_repository"], "username": "custom-user", "expires_at": "2099-01-01T00:00:00Z"})).await, StatusCode::CREATED).await;
    assert_eq!(custom["username"], "custom-user");
    assert_eq!(custom["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(
        expect(
            t.post(
                &base,
                &user.token,
                json!({"name": "x", "scopes": ["write_repository"]})
            )
            .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "scopes does not have a valid value"})
    );
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"scopes": ["read_repository"]}))
                .await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "name is missing"})
    );
    let listed = json(t.get(&base, &user.token).await).await;
    assert_eq!(listed.as_array().expect("a").len(), 2);
    assert!(listed[0].get("token").is_none());
    assert_eq!(
        t.delete(&format!("{base}/{id}"), &user.token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let gone = t.get(&format!("{base}/{id}"), &user.token).await;
    assert_eq!(
        expect(gone, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Deploy Token Not Found"})
    );
    // The record stays visible to the control API, revoked.
    let raw = json(
        t.http
            .get(t.url(&format!("/-/sim/projects/{}/state", project.id)))
            .send()
            .await
            .expect("state"),
    )
    .await;
    assert_eq!(raw["deploy_tokens"][0]["revoked"], true);
}

fn keygen(dir: &std::path::Path) -> (String, String, String) {
    let path = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@example", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .expect("pub")
        .trim()
        .to_owned();
    let fp = |hash: &str| {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", hash, "-f"])
            .arg(path.with_extension("pub"))
            .output()
            .expect("fingerprint");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fp")
            .to_owned()
    };
    let md5 = fp("md5").trim_start_matches("MD5:").to_owned();
    (public, md5, fp("sha256"))
}

#[tokio::test]
async fn deploy_keys_fingerprints_and_lifecycle() {
    let t = TestSim::start().await;
    let user = t.user("bob");
    let project = t.project_for(&user, access::MAINTAINER).await;
    let second = t
        .project("second", gitlab_sim::state::Namespace::User(user.id))
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let (public, md5, sha256) = keygen(dir.path());
    let base = format!("/projects/{}/deploy_keys", project.id);
    let created = expect(
        t.post(
            &base,
            &user.token,
            json!({"title": "lablink", "key": public, "can_push": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["fingerprint"], md5);
    assert_eq!(created["fingerprint_sha256"], sha256);
    assert_eq!(created["can_push"], true);
    let id = created["id"].as_u64().expect("id");
    let dup = t
        .post(&base, &user.token, json!({"title": "again", "key": public}))
        .await;
    assert_eq!(dup.status(), StatusCode::BAD_REQUEST);
    let bad_type = expect(
        t.post(
            &base,
            &user.token,
            json!({"title": "x", "key": "ssh-foo AAAA"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        bad_type["message"]["key"][0]
            .as_str()
            .expect("msg")
            .starts_with("type is forbidden")
    );
    let garbage = expect(
        t.post(
            &base,
            &user.token,
            json!({"title": "x", "key": "ssh-ed25519 bm90IGEga2V5"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(garbage["message"]["key"], json!(["is invalid"]));
    assert_eq!(
        expect(
            t.post(&base, &user.token, json!({"key": public})).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        json!({"error": "title is missing"})
    );
    let updated = expect(
        t.put(
            &format!("{base}/{id}"),
            &user.token,
            json!({"title": "renamed", "can_push": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["title"], "renamed");
    assert_eq!(updated["can_push"], false);
    // Enable the same key in another project the user maintains.
    let enabled = expect(
        t.post(
            &format!("/projects/{}/deploy_keys/{id}/enable", second.id),
            &user.token,
            json!({}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(enabled["id"], id);
    assert_eq!(
        json(
            t.get(&format!("/projects/{}/deploy_keys", second.id), &user.token)
                .await
        )
        .await
        .as_array()
        .expect("a")
        .len(),
        1
    );
    assert_eq!(
        t.delete(&format!("{base}/{id}"), &user.token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        expect(
            t.get(&format!("{base}/{id}"), &user.token).await,
            StatusCode::NOT_FOUND
        )
        .await,
        json!({"message": "404 Deploy Key Not Found"})
    );
    // Still enabled in the second project.
    expect(
        t.get(
            &format!("/projects/{}/deploy_keys/{id}", second.id),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
}
