//! Personal API tokens: shown once, hashed at rest, usable as bearer tokens, revocable.

use lablink_core::{Plan, Role};
use reqwest::Method;

use crate::support::{Browser, TestApp};

crate::on_both!(
    tokens_are_shown_once_hashed_and_revocable,
    tokens_expire_and_record_their_last_use_once_a_minute,
);

async fn tokens_expire_and_record_their_last_use_once_a_minute(app: TestApp) {
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let b = app.login("dev@acme.test").await;
    let csrf = b.get("/profile").await.csrf();
    // The expiry is chosen on the profile page and shown there.
    let bad = b
        .post_form(
            "/profile/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "ci"),
                ("expires_in_days", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body
            .contains("A token expires after 1 to 365 days (or never), not 0.")
    );
    let created = b
        .post_form(
            "/profile/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "ci"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let token = new_token_on(&created.body);
    let listed = Browser::bearer(&app.base, &token, Method::GET, "/api/v1/tokens", None).await;
    let expires_at = listed.json()[0]["expires_at"].as_i64().unwrap();
    let created_at = listed.json()[0]["created_at"].as_i64().unwrap();
    assert_eq!(expires_at - created_at, 30 * 24 * 3600 * 1000);
    let api = Browser::bearer(
        &app.base,
        &token,
        Method::POST,
        "/api/v1/tokens",
        Some(serde_json::json!({"name": "x", "expires_in_days": 400})),
    )
    .await;
    assert_eq!(api.status, 422, "{}", api.body);

    // Last use is written when it is older than a minute, not on every call.
    app.execute("UPDATE api_tokens SET last_used_at = 1000")
        .await;
    let last_use =
        || app.column("SELECT CAST(last_used_at AS TEXT) FROM api_tokens WHERE name = 'ci'");
    assert_eq!(
        Browser::bearer(&app.base, &token, Method::GET, "/api/v1/me", None)
            .await
            .status,
        200
    );
    let first = last_use().await;
    assert_ne!(first, ["1000"]);
    assert_eq!(
        Browser::bearer(&app.base, &token, Method::GET, "/api/v1/me", None)
            .await
            .status,
        200
    );
    assert_eq!(last_use().await, first);

    // Past its expiry the token is refused, saying so.
    app.execute("UPDATE api_tokens SET expires_at = 86400000 WHERE name = 'ci'")
        .await;
    let expired = Browser::bearer(&app.base, &token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("The API token expired on 1970-01-02."),
        "{}",
        expired.body
    );
    assert!(b.get("/profile").await.body.contains("Expires"));
}

fn new_token_on(page: &str) -> String {
    let start = page
        .find("id=\"new-token\">")
        .expect("the new token is shown")
        + 15;
    let end = page[start..].find('<').unwrap() + start;
    page[start..end].to_owned()
}

async fn tokens_are_shown_once_hashed_and_revocable(app: TestApp) {
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let b = app.login("dev@acme.test").await;
    let csrf = b.get("/profile").await.csrf();
    let created = b
        .post_form(
            "/profile/tokens",
            &[("csrf_token", &csrf), ("name", "laptop CLI")],
        )
        .await;
    assert_eq!(created.status, 200);
    let token = new_token_on(&created.body);
    assert!(token.starts_with("lablink_pat_"), "{token}");
    assert!(created.body.contains("It will not be shown again."));

    // Shown once: the next visit lists it by name and prefix only.
    let later = b.get("/profile").await;
    assert!(later.body.contains("laptop CLI"));
    assert!(!later.body.contains(&token));
    assert!(later.body.contains(&token[..18]));

    // Hashed at rest.
    let stored = app.table_text("api_tokens").await;
    assert!(!stored.contains(&token));
    assert!(stored.contains(&lablink_service::secrets::secret_hash(&token)));

    // Works as a bearer token.
    let me = Browser::bearer(&app.base, &token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "dev@acme.test");
    assert_eq!(me.json()["role"], "developer");
    assert_eq!(me.json()["plan"], "enterprise");
    let list = Browser::bearer(&app.base, &token, Method::GET, "/api/v1/tokens", None).await;
    let listed = list.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["last_used_at"].is_i64());
    assert!(!list.body.contains(&token));

    // A token made through the API is shown in that response only.
    let via_api = Browser::bearer(
        &app.base,
        &token,
        Method::POST,
        "/api/v1/tokens",
        Some(serde_json::json!({"name": "  "})),
    )
    .await;
    assert_eq!(via_api.status, 422);
    assert!(
        via_api.json()["error"]
            .as_str()
            .unwrap()
            .contains("token name")
    );
    let missing_field = Browser::bearer(
        &app.base,
        &token,
        Method::POST,
        "/api/v1/tokens",
        Some(serde_json::json!({"title": "ci"})),
    )
    .await;
    assert_eq!(missing_field.status, 422);
    assert!(
        missing_field.json()["error"]
            .as_str()
            .unwrap()
            .contains("missing field `name`"),
        "{}",
        missing_field.body
    );

    // Revoked: 401 from then on, with a message.
    let id = listed[0]["id"].as_str().unwrap();
    let revoked = Browser::bearer(
        &app.base,
        &token,
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204);
    let after = Browser::bearer(&app.base, &token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(after.status, 401);
    assert!(after.json()["error"].as_str().unwrap().contains("revoked"));
    let garbage = Browser::bearer(&app.base, "nonsense", Method::GET, "/api/v1/me", None).await;
    assert_eq!(garbage.status, 401);

    // Revoking from the page works too and is listed as revoked.
    let csrf = b.get("/profile").await.csrf();
    let second = b
        .post_form("/profile/tokens", &[("csrf_token", &csrf), ("name", "ci")])
        .await;
    let second_token = new_token_on(&second.body);
    let second_id = app
        .db
        .api_tokens_of_user(me.json()["user_id"].as_str().unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "ci")
        .unwrap()
        .id;
    let r = b
        .post_form(
            &format!("/profile/tokens/{second_id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/profile"));
    let after = Browser::bearer(&app.base, &second_token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(after.status, 401);
}
