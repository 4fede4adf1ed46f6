//! Personal API tokens: shown once, hashed at rest, usable as bearer tokens, revocable.

use lablink_core::{Plan, Role};
use reqwest::Method;

use crate::support::{Browser, TestApp};

crate::on_both!(tokens_are_shown_once_hashed_and_revocable);

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
