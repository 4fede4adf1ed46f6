//! Account settings → Integrations → GitLab against gitlab-sim: the admin's flow to "Integration
//! ready", a developer linking with the account's application, changing and removing the
//! application (what happens to links), plan refusal, and every bad input with its message.

use lablink_core::{Plan, Role};
use reqwest::Method;

use crate::on_both_backends;
use crate::support::gitlab::{GitLab, SimApp, callback, link, text};
use crate::support::{Backend, Browser, Page, TestApp};

on_both_backends!(
    admin_authorizes_then_developers_link_and_changes_say_what_happens,
    other_plans_are_told_why_they_use_the_operators_application,
    bad_input_is_refused_with_a_message_and_saves_nothing,
    only_admins_reach_the_integration,
);

const PAGE: &str = "/settings/integrations/gitlab";

async fn lablink(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("allow_http_loopback_gitlab", "true")]).await
}

async fn save(browser: &Browser, fields: &[(&str, &str)]) -> Page {
    let csrf = browser.get(PAGE).await.csrf();
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser.post_form(PAGE, &form).await
}

async fn save_app(browser: &Browser, gitlab: &GitLab, app: &SimApp) -> Page {
    save(
        browser,
        &[
            ("instance_url", &gitlab.base),
            ("application_id", &app.client_id),
            ("secret", &app.secret),
            ("ca_bundle_pem", ""),
        ],
    )
    .await
}

async fn integration_json(browser: &Browser) -> serde_json::Value {
    let res = browser
        .api(Method::GET, "/api/v1/integrations/gitlab", None, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn admin_authorizes_then_developers_link_and_changes_say_what_happens(backend: Backend) {
    let gitlab = GitLab::start().await;
    let app = lablink(backend).await;
    app.create_user(
        "bigco",
        Plan::Enterprise,
        "admin@bigco.test",
        Role::AccountAdmin,
    )
    .await;
    app.create_user("bigco", Plan::Enterprise, "dev@bigco.test", Role::Developer)
        .await;
    let admin = app.login("admin@bigco.test").await;

    // The page tells the admin what to register in GitLab.
    let page = admin.get(PAGE).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let redirect_uri = format!("{}/complete/gitlab", app.base);
    assert!(page.body.contains(&redirect_uri), "{}", page.body);
    assert!(
        page.body.contains("<code id=\"scope\">api</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Confidential"), "{}", page.body);
    assert!(
        page.body.contains("value=\"https://gitlab.com\""),
        "default instance: {}",
        page.body
    );

    // Save → GitLab consent → back → "Integration ready", and the admin is linked.
    let sim_app = gitlab.app(&[&app.base]).await;
    let root = gitlab.user("root").await;
    let saved = save_app(&admin, &gitlab, &sim_app).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let authorize = saved.location.unwrap();
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", gitlab.base)),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("scope=api"), "{authorize}");
    assert_eq!(
        integration_json(&admin).await["status"],
        "pending_authorization"
    );
    let back = gitlab.consent(&root, &authorize, "Authorize").await;
    let done = callback(&admin, &back).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(PAGE));
    let page = admin.get(PAGE).await;
    assert!(page.body.contains("Integration ready"), "{}", page.body);
    assert!(
        !page.body.contains(&sim_app.secret),
        "the secret is never shown back"
    );
    let json = integration_json(&admin).await;
    assert_eq!(json["status"], "ready");
    assert_eq!(json["application_id"], sim_app.client_id.as_str());
    assert!(!json.to_string().contains(&sim_app.secret));
    let linked = admin.get("/profile/linked-accounts").await;
    assert!(
        linked.body.contains("Linked as <strong>@root</strong>"),
        "{}",
        linked.body
    );

    // A developer links with the account's application.
    let dev = app.login("dev@bigco.test").await;
    let dana = gitlab.user("dana").await;
    let page = link(&dev, &gitlab, &dana).await;
    assert!(
        page.body.contains("Linked as <strong>@dana</strong>"),
        "{}",
        page.body
    );

    // Saving only a new secret keeps links (same application).
    let page = admin.get(PAGE).await;
    assert!(
        text(&page.body).contains("2 GitLab account(s) are linked"),
        "{}",
        page.body
    );

    // Another application: the page said links made with the old one stop working; now they do.
    let other_app = gitlab.app(&[&app.base]).await;
    let saved = save_app(&admin, &gitlab, &other_app).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = dev.get("/profile/linked-accounts").await;
    let shown = text(&page.body);
    assert!(
        shown.contains("the GitLab application changed; link again"),
        "{shown}"
    );
    assert!(shown.contains("Link again"), "{shown}");
    let csrf = page.csrf();
    let check = dev
        .api(
            Method::POST,
            "/api/v1/linked-accounts/gitlab/check",
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(check.status, 409, "{}", check.body);
    assert!(
        check.json()["error"]
            .as_str()
            .unwrap()
            .contains("Link again"),
        "{}",
        check.body
    );
    // Developers cannot link until the admin authorized the new application.
    let res = dev
        .post_form(
            "/profile/linked-accounts/gitlab/link",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        text(&res.body).contains("an admin has not yet authorized it"),
        "{}",
        res.body
    );
    let back = gitlab
        .consent(&root, &saved.location.unwrap(), "Authorize")
        .await;
    assert_eq!(callback(&admin, &back).await.status, 303);
    let page = link(&dev, &gitlab, &dana).await;
    assert!(
        page.body.contains("Linked as <strong>@dana</strong>"),
        "{}",
        page.body
    );

    // Removing the application revokes and deletes the links made with it.
    let csrf = admin.get(PAGE).await.csrf();
    let removed = admin
        .post_form(&format!("{PAGE}/remove"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    let shown = admin.get(PAGE).await;
    assert!(
        text(&shown.body).contains("2 linked account(s) made with it were revoked"),
        "{}",
        shown.body
    );
    let page = dev.get("/profile/linked-accounts").await;
    assert!(page.body.contains("No connected account"), "{}", page.body);
    let dana_tokens = gitlab.oauth_tokens_of(dana.id).await;
    assert!(
        dana_tokens.iter().all(|t| t["revoked"] == true),
        "{dana_tokens:?}"
    );
    assert_eq!(integration_json(&admin).await["status"], "none");
}

async fn other_plans_are_told_why_they_use_the_operators_application(backend: Backend) {
    let gitlab = GitLab::start().await;
    let app = lablink(backend).await;
    app.create_user(
        "small",
        Plan::Starter,
        "admin@small.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@small.test").await;
    let page = admin.get(PAGE).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let shown = text(&page.body);
    assert!(shown.contains("Starter plan"), "{shown}");
    assert!(shown.contains("Enterprise and Enterprise+"), "{shown}");
    let sim_app = gitlab.app(&[&app.base]).await;
    let csrf = admin.get("/profile").await.csrf();
    let res = admin
        .post_form(
            PAGE,
            &[
                ("csrf_token", &csrf),
                ("instance_url", &gitlab.base),
                ("application_id", &sim_app.client_id),
                ("secret", &sim_app.secret),
            ],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    let shown = text(&res.body);
    assert!(
        shown.contains("Your account is on the Starter plan"),
        "{shown}"
    );
    assert!(
        shown.contains("lablink uses its operator's application for gitlab.com"),
        "{shown}"
    );
    assert_eq!(integration_json(&admin).await["status"], "none");
}

async fn bad_input_is_refused_with_a_message_and_saves_nothing(backend: Backend) {
    let gitlab = GitLab::start().await;
    let app = lablink(backend).await;
    app.create_user(
        "bigco",
        Plan::EnterprisePlus,
        "admin@bigco.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@bigco.test").await;
    let sim_app = gitlab.app(&[&app.base]).await;
    let cases: Vec<(String, &str, &str, &str, &str)> = vec![
        (
            "https://169.254.169.254".into(),
            "id",
            "s",
            "",
            "refused by lablink's network policy",
        ),
        (
            "https://10.0.0.1".into(),
            "id",
            "s",
            "",
            "refused by lablink's network policy",
        ),
        (
            "http://gitlab.example.com".into(),
            "id",
            "s",
            "",
            "use https://",
        ),
        (
            "https://user:pass@gitlab.example.com".into(),
            "id",
            "s",
            "",
            "remove the user name and password",
        ),
        (
            "https://gitlab.example.com/?a=b".into(),
            "id",
            "s",
            "",
            "remove the `?…` query",
        ),
        (
            "https://gitlab.example.com/#top".into(),
            "id",
            "s",
            "",
            "remove the `#…` fragment",
        ),
        (
            "ftp://gitlab.example.com".into(),
            "id",
            "s",
            "",
            "must start with https://",
        ),
        (
            "not a url".into(),
            "id",
            "s",
            "",
            "it is not a full address: start it with https://",
        ),
        (gitlab.base.clone(), "", "s", "", "Enter the Application ID"),
        (gitlab.base.clone(), "two words", "s", "", "single word"),
        (gitlab.base.clone(), "id", "", "", "Enter the Secret"),
        (
            gitlab.base.clone(),
            "id",
            "s",
            "garbage",
            "no `-----BEGIN CERTIFICATE-----` block",
        ),
        (
            gitlab.base.clone(),
            "id",
            "s",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----",
            "the CA bundle is not usable",
        ),
        // lablink itself is not GitLab.
        (
            app.base.clone(),
            "id",
            "s",
            "",
            "does not answer like GitLab",
        ),
    ];
    for (url, id, secret, ca, message) in cases {
        let res = save(
            &admin,
            &[
                ("instance_url", &url),
                ("application_id", id),
                ("secret", secret),
                ("ca_bundle_pem", ca),
            ],
        )
        .await;
        assert_eq!(res.status, 422, "{url:?}: {}", res.body);
        let shown = text(&res.body);
        assert!(
            shown.contains(message),
            "{url:?}: expected {message:?} in {shown}"
        );
        // What was typed is kept (so nothing is lost), the secret in its masked field.
        assert!(
            shown.contains(&format!("value=\"{url}\"")) || url.is_empty(),
            "{shown}"
        );
        assert!(
            res.body.contains(&format!(
                "type=\"password\" size=\"70\" autocomplete=\"new-password\" value=\"{secret}\""
            )),
            "{}",
            res.body
        );
        assert_eq!(
            integration_json(&admin).await["status"],
            "none",
            "{url:?} saved something"
        );
    }
    // The valid application still works afterwards; a wrong secret is caught when GitLab is asked.
    let saved = save(
        &admin,
        &[
            ("instance_url", &gitlab.base),
            ("application_id", &sim_app.client_id),
            ("secret", "gloas-wrong"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let root = gitlab.user("root").await;
    let back = gitlab
        .consent(&root, &saved.location.unwrap(), "Authorize")
        .await;
    let res = callback(&admin, &back).await;
    assert_eq!(res.status, 400, "{}", res.body);
    let shown = text(&res.body);
    assert!(
        shown.contains("GitLab does not accept the Application ID and Secret"),
        "{shown}"
    );
    assert_eq!(
        integration_json(&admin).await["status"],
        "pending_authorization"
    );
    let linked = admin.get("/profile/linked-accounts").await;
    assert!(
        linked.body.contains("No connected account"),
        "no half-made link: {}",
        linked.body
    );
}

async fn only_admins_reach_the_integration(backend: Backend) {
    let app = lablink(backend).await;
    app.create_user(
        "bigco",
        Plan::Enterprise,
        "admin@bigco.test",
        Role::AccountAdmin,
    )
    .await;
    app.create_user("bigco", Plan::Enterprise, "dev@bigco.test", Role::Developer)
        .await;
    app.create_user(
        "bigco",
        Plan::Enterprise,
        "viewer@bigco.test",
        Role::ReadOnly,
    )
    .await;
    for email in ["dev@bigco.test", "viewer@bigco.test"] {
        let b = app.login(email).await;
        assert_eq!(b.get(PAGE).await.status, 403, "{email}");
        let csrf = b.get("/profile").await.csrf();
        let res = b
            .post_form(
                PAGE,
                &[
                    ("csrf_token", &csrf),
                    ("application_id", "x"),
                    ("secret", "y"),
                ],
            )
            .await;
        assert_eq!(res.status, 403, "{email}: {}", res.body);
        let res = b
            .post_form(&format!("{PAGE}/remove"), &[("csrf_token", &csrf)])
            .await;
        assert_eq!(res.status, 403, "{email}");
        let res = b
            .api(Method::GET, "/api/v1/integrations/gitlab", None, None)
            .await;
        assert_eq!(res.status, 403, "{email}");
        let res = b
            .api(
                Method::PUT,
                "/api/v1/integrations/gitlab",
                Some(serde_json::json!({"application_id": "x", "secret": "y"})),
                Some(&csrf),
            )
            .await;
        assert_eq!(res.status, 403, "{email}");
    }
    // Anonymous visitors are sent to sign in (pages) or refused (API).
    let anon = app.browser();
    assert_eq!(anon.get(PAGE).await.location.as_deref(), Some("/login"));
    assert_eq!(
        anon.get("/profile/linked-accounts")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(
        anon.get("/complete/gitlab?code=a&state=b")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    for path in [
        "/api/v1/integrations/gitlab",
        "/api/v1/linked-accounts/gitlab",
    ] {
        assert_eq!(
            anon.api(Method::GET, path, None, None).await.status,
            401,
            "{path}"
        );
    }
    // An admin of another account sees only their own (empty) integration.
    app.create_user(
        "other",
        Plan::Enterprise,
        "admin@other.test",
        Role::AccountAdmin,
    )
    .await;
    let bigco_admin = app.login("admin@bigco.test").await;
    let gitlab = GitLab::start().await;
    let sim_app = gitlab.app(&[&app.base]).await;
    assert_eq!(save_app(&bigco_admin, &gitlab, &sim_app).await.status, 303);
    let other = app.login("admin@other.test").await;
    let json = integration_json(&other).await;
    assert_eq!(json["status"], "none");
    assert!(json["application_id"].is_null());
}
