//! Profile → Linked accounts against gitlab-sim: the link flow, every way the callback can fail
//! (each with its message and nothing half-made), unlink with revocation at GitLab.

use lablink_core::{Plan, Role};
use reqwest::Method;

use crate::on_both_backends;
use crate::support::gitlab::{
    GitLab, callback, free_port, lablink_with_operator_app, link, start_link, text,
};
use crate::support::{Backend, Browser, Page, TestApp};

on_both_backends!(
    link_show_check_and_unlink,
    callback_problems_each_say_what_to_do_and_link_nothing,
    read_only_users_cannot_link,
);

async fn link_status(browser: &Browser) -> serde_json::Value {
    let res = browser
        .api(Method::GET, "/api/v1/linked-accounts/gitlab", None, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn link_show_check_and_unlink(backend: Backend) {
    let gitlab = GitLab::start().await;
    let (app, _) = lablink_with_operator_app(backend, &gitlab).await;
    app.create_user("acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let browser = app.login("dev@acme.test").await;
    let alice = gitlab.user("alice").await;

    let before = browser.get("/profile/linked-accounts").await;
    assert!(
        before.body.contains("No connected account"),
        "{}",
        before.body
    );
    assert_eq!(link_status(&browser).await["status"], "not_linked");

    let page = link(&browser, &gitlab, &alice).await;
    assert!(
        page.body.contains("Linked as <strong>@alice</strong>"),
        "{}",
        page.body
    );
    let status = link_status(&browser).await;
    assert_eq!(status["status"], "linked");
    assert_eq!(status["username"], "alice");

    // The token works at GitLab now.
    let csrf = browser.get("/profile/linked-accounts").await.csrf();
    let check = browser
        .api(
            Method::POST,
            "/api/v1/linked-accounts/gitlab/check",
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.body);
    assert_eq!(check.json()["username"], "alice");

    // Unlink revokes at GitLab and deletes here.
    let res = browser
        .post_form(
            "/profile/linked-accounts/gitlab/unlink",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let res = browser.get("/profile/linked-accounts").await;
    assert!(
        text(&res.body).contains("lablink's access was revoked at GitLab"),
        "{}",
        res.body
    );
    assert!(res.body.contains("No connected account"), "{}", res.body);
    let tokens = gitlab.oauth_tokens_of(alice.id).await;
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0]["revoked"], true,
        "unlink must revoke the token at GitLab"
    );
    assert_eq!(link_status(&browser).await["status"], "not_linked");

    // GitLab failing to revoke does not keep the link: it is deleted here, and the page says so.
    link(&browser, &gitlab, &alice).await;
    gitlab.fail(None, "/oauth/revoke", 500, 1.0).await;
    let csrf = browser.get("/profile/linked-accounts").await.csrf();
    let res = browser
        .post_form(
            "/profile/linked-accounts/gitlab/unlink",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let res = browser.get("/profile/linked-accounts").await;
    let shown = text(&res.body);
    assert!(
        shown.contains("GitLab could not be told to revoke"),
        "{shown}"
    );
    assert!(shown.contains("Authorized applications"), "{shown}");
    assert_eq!(link_status(&browser).await["status"], "not_linked");
}

/// Asserts the callback answered 400 with `message`, and that no link exists.
async fn refused(browser: &Browser, res: Page, message: &str) {
    assert_eq!(
        res.status, 400,
        "expected a refusal saying {message:?}: {}",
        res.body
    );
    assert!(
        text(&res.body).contains(message),
        "expected {message:?} in:\n{}",
        res.body
    );
    assert!(
        res.body.contains("id=\"start-again\""),
        "no way forward offered: {}",
        res.body
    );
    assert_eq!(
        link_status(browser).await["status"],
        "not_linked",
        "half-made link"
    );
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

async fn callback_problems_each_say_what_to_do_and_link_nothing(backend: Backend) {
    let gitlab = GitLab::start().await;
    let (app, _) = lablink_with_operator_app(backend, &gitlab).await;
    app.create_user("acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let browser = app.login("dev@acme.test").await;
    let bob = gitlab.user("bob").await;

    // Consent denied.
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Deny").await;
    assert!(back.contains("error=access_denied"), "{back}");
    refused(
        &browser,
        callback(&browser, &back).await,
        "You declined access at GitLab",
    )
    .await;

    // State missing, unknown.
    refused(
        &browser,
        browser.get("/complete/gitlab?code=abc").await,
        "has no `state` parameter",
    )
    .await;
    refused(
        &browser,
        browser.get("/complete/gitlab?code=abc&state=forged").await,
        "does not match any authorization started here",
    )
    .await;

    // State from another browser session (same user, signed in elsewhere).
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    let other = app.login("dev@acme.test").await;
    refused(
        &other,
        callback(&other, &back).await,
        "another browser session",
    )
    .await;

    // Code expired (codes live 10 minutes at GitLab).
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    gitlab.advance_clock(11 * 60).await;
    refused(
        &browser,
        callback(&browser, &back).await,
        "did not accept the authorization code",
    )
    .await;

    // Code forged or reused.
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    refused(
        &browser,
        callback(&browser, &with_param(&back, "code", "not-a-code")).await,
        "did not accept the authorization code",
    )
    .await;

    // GitLab unreachable at the token endpoint.
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    gitlab.drop_connections("/oauth/token").await;
    refused(
        &browser,
        callback(&browser, &back).await,
        "could not reach GitLab",
    )
    .await;
    gitlab.clear_faults().await;

    // State expired (the authorization took longer than 10 minutes on lablink's side).
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    app.execute("UPDATE gitlab_oauth_states SET expires_at = 0 WHERE consumed_at IS NULL")
        .await;
    refused(
        &browser,
        callback(&browser, &back).await,
        "took longer than 10 minutes",
    )
    .await;

    // A good answer works once; replaying it is refused and changes nothing.
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&bob, &authorize, "Authorize").await;
    let done = callback(&browser, &back).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(link_status(&browser).await["username"], "bob");
    let replay = callback(&browser, &back).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert_eq!(link_status(&browser).await["status"], "linked");

    wrong_application_secret(backend, &gitlab).await;
}

/// The operator's secret is wrong (renewed in GitLab, say): GitLab answers `invalid_client`.
async fn wrong_application_secret(backend: Backend, gitlab: &GitLab) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let sim_app = gitlab.app(&[&base]).await;
    let listen = format!("127.0.0.1:{port}");
    let app = TestApp::spawn_with(
        backend,
        &[
            ("listen", &listen),
            ("public_url", &base),
            ("allow_http_loopback_gitlab", "true"),
            ("gitlab_url", &gitlab.base),
            ("gitlab_app_id", &sim_app.client_id),
            ("gitlab_app_secret", "gloas-not-the-secret"),
        ],
    )
    .await;
    app.create_user("acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let browser = app.login("dev@acme.test").await;
    let carol = gitlab.user("carol").await;
    let authorize = start_link(&browser).await;
    let back = gitlab.consent(&carol, &authorize, "Authorize").await;
    refused(
        &browser,
        callback(&browser, &back).await,
        "GitLab does not accept the account's GitLab application",
    )
    .await;
}

async fn read_only_users_cannot_link(backend: Backend) {
    let gitlab = GitLab::start().await;
    let (app, _) = lablink_with_operator_app(backend, &gitlab).await;
    app.create_user("acme", Plan::Starter, "viewer@acme.test", Role::ReadOnly)
        .await;
    let browser = app.login("viewer@acme.test").await;
    let page = browser.get("/profile/linked-accounts").await;
    assert_eq!(page.status, 200);
    let res = browser
        .post_form(
            "/profile/linked-accounts/gitlab/link",
            &[("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(
        res.body.contains("Read-only users cannot link"),
        "{}",
        res.body
    );
}
