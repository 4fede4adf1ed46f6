//! Sign-in, sign-out, throttling, CSRF and session expiry.

use lablink_core::{Plan, Role};
use reqwest::Method;

use crate::support::{Browser, PASSWORD, TestApp};

crate::on_both!(
    sign_in_and_sign_out,
    repeated_failures_are_throttled,
    parallel_wrong_guesses_are_all_counted,
    forms_without_the_right_csrf_token_are_refused,
    sessions_expire_when_idle_or_old,
    logout_everywhere_ends_every_session,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let app = TestApp::spawn_with(
        crate::support::Backend::Sqlite,
        &[("public_url", "https://lablink.example.com")],
    )
    .await;
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = app.login("dev@acme.test").await;
    let cookies = b.set_cookies.lock().unwrap().clone();
    for name in ["__Host-lablink_pre=", "lablink_session="] {
        let c = cookies.iter().find(|c| c.starts_with(name)).unwrap();
        assert!(c.contains("; Secure"), "{c}");
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("Path=/") && !c.contains("Domain"), "{c}");
    }
    // Over https browsers must never fall back to http.
    let page = b.get("/").await;
    assert_eq!(
        page.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

async fn sign_in_and_sign_out(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = app.browser();
    let form = b.get("/login").await;
    let wrong = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "dev@acme.test"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("The email or password is not correct."));
    let unknown = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "nobody@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown
            .body
            .contains("The email or password is not correct.")
    );

    let b = app.login("dev@acme.test").await;
    let cookie = b
        .set_cookies
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.starts_with("lablink_session="))
        .cloned()
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: {cookie}"
    );
    // The cookie holds the session id; the database holds only its hash.
    let id = b.cookie("lablink_session").unwrap();
    assert!(!app.table_text("sessions").await.contains(&id));

    assert_eq!(b.get("/").await.status, 200);
    assert_eq!(b.get("/login").await.location.as_deref(), Some("/"));
    let logout = b.get("/logout").await;
    let out = b
        .post_form("/logout", &[("csrf_token", &logout.csrf())])
        .await;
    assert_eq!(out.location.as_deref(), Some("/login"));
    assert!(!b.has_cookie("lablink_session"));
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));
}

async fn repeated_failures_are_throttled(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = app.browser();
    let csrf = b.get("/login").await.csrf();
    for _ in 0..5 {
        let r = b
            .post_form(
                "/login",
                &[
                    ("csrf_token", &csrf),
                    ("email", "dev@acme.test"),
                    ("password", "wrong password"),
                ],
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // Now even the right password is refused, with a clear wait.
    let locked = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(locked.status, 429);
    assert!(
        locked
            .body
            .contains("Too many failed sign-in attempts. Try again in "),
        "{}",
        locked.body
    );
    // Other users are not affected.
    app.create_user("Acme", Plan::Starter, "other@acme.test", Role::Developer)
        .await;
    app.login("other@acme.test").await;
    // Once the lock is over (moved into the past here), the right password works again.
    app.execute("UPDATE login_throttle SET locked_until = 0")
        .await;
    app.login("dev@acme.test").await;
}

async fn parallel_wrong_guesses_are_all_counted(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = std::sync::Arc::new(app.browser());
    let csrf = b.get("/login").await.csrf();
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (b, csrf) = (b.clone(), csrf.clone());
        guesses.spawn(async move {
            let password = format!("wrong guess {i}");
            b.post_form(
                "/login",
                &[
                    ("csrf_token", &csrf),
                    ("email", "dev@acme.test"),
                    ("password", &password),
                ],
            )
            .await
            .status
        });
    }
    let statuses = guesses.join_all().await;
    // Guesses that arrived before the lock were checked (401) and every one of them is counted,
    // against the account and against the address; the rest were refused unchecked (429).
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked + statuses.iter().filter(|s| **s == 429).count(), 50);
    assert!(checked >= 5, "{statuses:?}");
    for key in ["account|dev@acme.test", "address|127.0.0.1"] {
        let counted = app
            .column(&format!(
                "SELECT CAST(failures AS TEXT) FROM login_throttle WHERE throttle_key = '{key}'"
            ))
            .await;
        assert_eq!(counted, [checked.to_string()], "{key}");
    }
}

async fn forms_without_the_right_csrf_token_are_refused(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    // Sign-in form without the pre-session cookie or with a wrong token.
    let fresh = app.browser();
    let r = fresh
        .post_form(
            "/login",
            &[
                ("csrf_token", "x"),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("CSRF check failed"));
    fresh.get("/login").await;
    let r = fresh
        .post_form(
            "/login",
            &[
                ("csrf_token", "wrong"),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);

    let b = app.login("dev@acme.test").await;
    let missing = b.post_form("/profile/tokens", &[("name", "ci")]).await;
    assert_eq!(missing.status, 403);
    assert!(missing.body.contains("CSRF check failed"));
    let wrong = b
        .post_form("/profile/tokens", &[("csrf_token", "0000"), ("name", "ci")])
        .await;
    assert_eq!(wrong.status, 403);
    // Another user's token does not work either.
    app.create_user("Acme", Plan::Starter, "other@acme.test", Role::Developer)
        .await;
    let other = app.login("other@acme.test").await;
    let other_csrf = other.get("/profile").await.csrf();
    let foreign = b
        .post_form(
            "/profile/tokens",
            &[("csrf_token", &other_csrf), ("name", "ci")],
        )
        .await;
    assert_eq!(foreign.status, 403);
    assert!(
        app.services
            .list_api_tokens(&session_principal(&app, &b).await)
            .await
            .unwrap()
            .is_empty()
    );

    // The JSON API with a session needs the token as a header for writes.
    let csrf = b.get("/profile").await.csrf();
    let body = serde_json::json!({"name": "ci"});
    let no_header = b
        .api(Method::POST, "/api/v1/tokens", Some(body.clone()), None)
        .await;
    assert_eq!(no_header.status, 403);
    assert!(no_header.json()["error"].as_str().unwrap().contains("CSRF"));
    let ok = b
        .api(Method::POST, "/api/v1/tokens", Some(body), Some(&csrf))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

async fn session_principal(app: &TestApp, b: &Browser) -> lablink_service::Principal {
    app.services
        .session(&b.cookie("lablink_session").unwrap())
        .await
        .unwrap()
        .principal
}

async fn sessions_expire_when_idle_or_old(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = app.login("dev@acme.test").await;
    assert_eq!(b.get("/").await.status, 200);
    // Idle for longer than the idle timeout (8 hours by default).
    app.execute("UPDATE sessions SET last_seen_at = last_seen_at - 9 * 3600 * 1000")
        .await;
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));
    let api = b.api(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(api.status, 401);

    // Active, but signed in longer ago than the absolute lifetime (7 days by default).
    let b = app.login("dev@acme.test").await;
    app.execute("UPDATE sessions SET created_at = created_at - 8 * 24 * 3600 * 1000")
        .await;
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));
}

async fn logout_everywhere_ends_every_session(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let laptop = app.login("dev@acme.test").await;
    let phone = app.login("dev@acme.test").await;
    assert_eq!(phone.get("/").await.status, 200);
    let csrf = laptop.get("/profile").await.csrf();
    let r = laptop
        .post_form("/logout/everywhere", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert_eq!(phone.get("/").await.location.as_deref(), Some("/login"));
    assert_eq!(laptop.get("/").await.location.as_deref(), Some("/login"));
}
