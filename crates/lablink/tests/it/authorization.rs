//! The authorization matrix: every page and endpoint of this layer × anonymous, read-only,
//! developer, admin of the account, and admin of ANOTHER account. Nobody reaches what is not theirs.

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::support::{Browser, PASSWORD, TestApp, TestUser};

crate::on_both!(
    pages_and_endpoints_check_who_calls,
    projects_are_invisible_to_other_accounts,
    adding_a_user_does_not_reveal_other_accounts,
);

async fn adding_a_user_does_not_reveal_other_accounts(app: TestApp) {
    app.create_user(
        "Acme",
        Plan::Enterprise,
        "admin@acme.test",
        Role::AccountAdmin,
    )
    .await;
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    app.create_user(
        "Secret Beta",
        Plan::Enterprise,
        "ceo@beta.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@acme.test").await;
    let csrf = admin.get("/profile").await.csrf();
    let add = |email: &'static str| {
        let admin = &admin;
        let csrf = csrf.clone();
        async move {
            admin
                .api(
                    Method::POST,
                    "/api/v1/users",
                    Some(
                        json!({"email": email, "username": "x", "password": PASSWORD,
                                "role": "developer"}),
                    ),
                    Some(&csrf),
                )
                .await
        }
    };
    let elsewhere = add("ceo@beta.test").await;
    let here = add("dev@acme.test").await;
    assert_eq!((elsewhere.status, here.status), (409, 409));
    let said = elsewhere.json()["error"].as_str().unwrap().to_owned();
    assert_eq!(
        said,
        "ceo@beta.test cannot be added: the email is already in use in lablink. Ask the person \
         for another address."
    );
    assert_eq!(
        here.json()["error"].as_str().unwrap(),
        said.replace("ceo@beta.test", "dev@acme.test")
    );
    assert!(!elsewhere.body.contains("Beta"), "{}", elsewhere.body);
}

struct Caller {
    name: &'static str,
    browser: Option<Browser>,
    token: Option<String>,
}

impl Caller {
    async fn api(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> u16 {
        match &self.token {
            Some(t) => {
                Browser::bearer(&app.base, t, method, path, body)
                    .await
                    .status
            }
            None => app.browser().api(method, path, body, None).await.status,
        }
    }

    async fn get(&self, app: &TestApp, path: &str) -> crate::support::Page {
        match &self.browser {
            Some(b) => b.get(path).await,
            None => app.browser().get(path).await,
        }
    }

    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> crate::support::Page {
        match &self.browser {
            Some(b) => {
                let csrf = b.get("/profile").await.csrf();
                let mut with_csrf = vec![("csrf_token", csrf.as_str())];
                with_csrf.extend_from_slice(form);
                b.post_form(path, &with_csrf).await
            }
            None => app.browser().post_form(path, form).await,
        }
    }
}

async fn signed_in(app: &TestApp, name: &'static str, user: &TestUser) -> Caller {
    let browser = app.login(&user.email).await;
    let principal = app
        .services
        .session(&browser.cookie("lablink_session").unwrap())
        .await
        .unwrap()
        .principal;
    let token = app
        .services
        .create_api_token(&principal, "matrix", None)
        .await
        .unwrap();
    Caller {
        name,
        browser: Some(browser),
        token: Some(secrecy::ExposeSecret::expose_secret(&token.value).to_owned()),
    }
}

/// Who is expected to get what.
#[derive(Clone)]
struct Expect {
    anonymous: u16,
    read_only: u16,
    developer: u16,
    admin: u16,
    other_admin: u16,
}

async fn pages_and_endpoints_check_who_calls(app: TestApp) {
    let admin = app
        .create_user(
            "Acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let dev = app
        .create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let ro = app
        .create_user("Acme", Plan::Enterprise, "ro@acme.test", Role::ReadOnly)
        .await;
    let other = app
        .create_user(
            "Globex",
            Plan::Starter,
            "admin@globex.test",
            Role::AccountAdmin,
        )
        .await;
    let target = app
        .create_user("Acme", Plan::Enterprise, "target@acme.test", Role::ReadOnly)
        .await;
    let anonymous = Caller {
        name: "anonymous",
        browser: None,
        token: None,
    };
    let callers = [
        anonymous,
        signed_in(&app, "read_only", &ro).await,
        signed_in(&app, "developer", &dev).await,
        signed_in(&app, "admin", &admin).await,
        signed_in(&app, "other_admin", &other).await,
    ];
    let expected = |e: &Expect, name: &str| match name {
        "anonymous" => e.anonymous,
        "read_only" => e.read_only,
        "developer" => e.developer,
        "admin" => e.admin,
        _ => e.other_admin,
    };

    // Pages (GET). Anonymous visitors are sent to sign in (303).
    let pages = [
        (
            "/",
            Expect {
                anonymous: 303,
                read_only: 200,
                developer: 200,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            "/profile",
            Expect {
                anonymous: 303,
                read_only: 200,
                developer: 200,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            "/logout",
            Expect {
                anonymous: 303,
                read_only: 200,
                developer: 200,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            "/settings",
            Expect {
                anonymous: 303,
                read_only: 403,
                developer: 403,
                admin: 200,
                other_admin: 200,
            },
        ),
    ];
    for (path, e) in &pages {
        for c in &callers {
            let page = c.get(&app, path).await;
            assert_eq!(page.status, expected(e, c.name), "GET {path} as {}", c.name);
            if page.status == 303 {
                assert_eq!(page.location.as_deref(), Some("/login"));
            }
        }
    }
    // Another account's admin sees their own account only.
    let globex = callers[4].get(&app, "/settings").await;
    assert!(globex.body.contains("admin@globex.test"));
    assert!(!globex.body.contains("acme.test"));

    // Form posts.
    let role_path = format!("/settings/users/{}/role", target.id);
    for c in &callers {
        let r = c.post(&app, &role_path, &[("role", "developer")]).await;
        let want = match c.name {
            "anonymous" => 303,
            "read_only" | "developer" => 403,
            "other_admin" => 404,
            _ => 303,
        };
        assert_eq!(r.status, want, "POST {role_path} as {}", c.name);
        if c.name == "admin" {
            assert_eq!(r.location.as_deref(), Some("/settings"));
        }
    }
    let stored = app.db.user_by_id(&target.id).await.unwrap().unwrap();
    assert_eq!(
        stored.role,
        Role::Developer,
        "only Acme's admin changed the role"
    );
    for c in &callers {
        let email = format!("{}@new.test", c.name);
        let r = c
            .post(
                &app,
                "/settings/users",
                &[
                    ("email", &email),
                    ("username", "n"),
                    ("password", PASSWORD),
                    ("role", "account_admin"),
                ],
            )
            .await;
        let want = match c.name {
            "anonymous" => 303,
            "read_only" | "developer" => 403,
            _ => 303,
        };
        assert_eq!(r.status, want, "POST /settings/users as {}", c.name);
        let created = app.db.user_credentials_by_email(&email).await.unwrap();
        match c.name {
            "admin" => assert_eq!(created.unwrap().user.account_id, admin.account_id),
            "other_admin" => assert_eq!(created.unwrap().user.account_id, other.account_id),
            _ => assert!(created.is_none(), "{} created a user", c.name),
        }
    }

    // The JSON API, with bearer tokens.
    let admin_token = app
        .services
        .list_api_tokens(
            &app.services
                .principal_for_api_token(callers[3].token.as_ref().unwrap())
                .await
                .unwrap(),
        )
        .await
        .unwrap()[0]
        .id
        .clone();
    // A project of Acme with no repository yet: the workspace is refused by role first, then
    // (for those who may have one) because there is nothing to check out; Globex sees nothing.
    let acme_admin = callers[3].browser.as_ref().unwrap();
    let csrf = acme_admin.get("/profile").await.csrf();
    let project =
        crate::support::connected::create_project(acme_admin, &csrf, "Warehouse", "").await;
    let workspace = |rest: &str| format!("/api/v1/projects/{project}/workspace{rest}");
    let no_workspace = Expect {
        anonymous: 401,
        read_only: 403,
        developer: 404,
        admin: 404,
        other_admin: 404,
    };
    let endpoints: Vec<(Method, String, Option<serde_json::Value>, Expect)> = vec![
        (Method::GET, workspace(""), None, no_workspace.clone()),
        (
            Method::PUT,
            workspace("/files"),
            Some(json!({"path": "models/a.sql", "text": "select 1"})),
            no_workspace.clone(),
        ),
        (
            Method::POST,
            workspace("/commit"),
            Some(json!({"message": "m"})),
            no_workspace.clone(),
        ),
        (
            Method::POST,
            workspace("/refresh"),
            None,
            no_workspace.clone(),
        ),
        (Method::GET, workspace("/dbt"), None, no_workspace.clone()),
        (
            Method::GET,
            workspace("/dbt/01a24800-0000-7000-8000-000000000000"),
            None,
            no_workspace.clone(),
        ),
        (
            Method::POST,
            workspace("/repair-deploy-key"),
            None,
            no_workspace.clone(),
        ),
        (
            Method::PUT,
            workspace("/dbt/credentials"),
            Some(json!({"username": "dev_user", "password": "pw"})),
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 204,
                admin: 204,
                other_admin: 404,
            },
        ),
        (
            Method::DELETE,
            workspace("/dbt/credentials"),
            None,
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 204,
                admin: 204,
                other_admin: 404,
            },
        ),
        (Method::DELETE, workspace(""), None, no_workspace.clone()),
        (
            Method::GET,
            "/api/v1/workspaces".into(),
            None,
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 403,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            Method::PUT,
            "/api/v1/workspaces/disk-cap".into(),
            Some(json!({"cap_mb": 20480})),
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 403,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            Method::POST,
            workspace("/dbt"),
            Some(json!({"command": "dbt build"})),
            no_workspace,
        ),
        // Local git: Acme (Enterprise) users have no linked GitLab account (404); Globex
        // (Starter) has not allowed the shared credential (403).
        (
            Method::POST,
            "/api/v1/git-credential".into(),
            Some(json!({"protocol": "https", "host": "gitlab.com"})),
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 404,
                admin: 404,
                other_admin: 403,
            },
        ),
        (
            Method::GET,
            "/api/v1/me".into(),
            None,
            Expect {
                anonymous: 401,
                read_only: 200,
                developer: 200,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            Method::GET,
            "/api/v1/users".into(),
            None,
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 403,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(
                json!({"email": "x@y.test", "username": "x", "password": PASSWORD, "role": "developer"}),
            ),
            // Globex's admin asks first and gets the email; emails are unique across accounts.
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 403,
                admin: 409,
                other_admin: 201,
            },
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{}", target.id),
            Some(json!({"role": "read_only"})),
            Expect {
                anonymous: 401,
                read_only: 403,
                developer: 403,
                admin: 200,
                other_admin: 404,
            },
        ),
        (
            Method::GET,
            "/api/v1/tokens".into(),
            None,
            Expect {
                anonymous: 401,
                read_only: 200,
                developer: 200,
                admin: 200,
                other_admin: 200,
            },
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "t"})),
            Expect {
                anonymous: 401,
                read_only: 201,
                developer: 201,
                admin: 201,
                other_admin: 201,
            },
        ),
        // Acme admin's token: only its owner may revoke it, so it is revoked last.
        (
            Method::DELETE,
            format!("/api/v1/tokens/{admin_token}"),
            None,
            Expect {
                anonymous: 401,
                read_only: 404,
                developer: 404,
                admin: 204,
                other_admin: 404,
            },
        ),
    ];
    for (method, path, body, e) in &endpoints {
        // The admin of the account goes last, so others see the resources unchanged.
        for c in [
            &callers[0],
            &callers[1],
            &callers[2],
            &callers[4],
            &callers[3],
        ] {
            let status = c.api(&app, method.clone(), path, body.clone()).await;
            assert_eq!(status, expected(e, c.name), "{method} {path} as {}", c.name);
        }
    }
    let globex_users = Browser::bearer(
        &app.base,
        callers[4].token.as_ref().unwrap(),
        Method::GET,
        "/api/v1/users",
        None,
    )
    .await;
    assert!(
        !globex_users.body.contains("acme.test"),
        "{}",
        globex_users.body
    );

    // Every documented endpoint exists and refuses anonymous callers.
    let doc = app.browser().get("/api/v1/openapi.json").await.json();
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let p = path.replace("{id}", "some-id");
            let status = anonymous_api(&app, m, &p).await;
            assert_eq!(status, 401, "{method} {path} anonymously");
            n += 1;
        }
    }
    // Other layers document their own endpoints too; every one was checked above.
    assert!(n >= endpoints.len());
}

async fn anonymous_api(app: &TestApp, method: Method, path: &str) -> u16 {
    let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
    app.browser().api(method, path, body, None).await.status
}

/// A project, its repository, CI jobs, runs and connection panel belong to one account: the
/// admin of another account (or anyone signed out) reaches none of them, pages or API.
async fn projects_are_invisible_to_other_accounts(app: TestApp) {
    let admin = app
        .create_user(
            "Acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let other = app
        .create_user(
            "Globex",
            Plan::Enterprise,
            "admin@globex.test",
            Role::AccountAdmin,
        )
        .await;
    let acme = signed_in(&app, "admin", &admin).await;
    let globex = signed_in(&app, "other_admin", &other).await;
    let created = Browser::bearer(
        &app.base,
        acme.token.as_deref().unwrap(),
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "analytics", "subdirectory": "", "target_branch": ""})),
    )
    .await;
    assert!(
        created.status == 200 || created.status == 201,
        "{}",
        created.body
    );
    let id = serde_json::from_str::<serde_json::Value>(&created.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let pages = [
        format!("/projects/{id}"),
        format!("/projects/{id}/repository"),
        format!("/projects/{id}/ci-jobs"),
        format!("/projects/{id}/runs"),
        format!("/projects/{id}/connection"),
    ];
    for path in &pages {
        assert_eq!(
            acme.get(&app, path).await.status,
            200,
            "GET {path} as admin"
        );
        let page = globex.get(&app, path).await;
        assert!(
            page.status == 404 || page.status == 403,
            "GET {path} as another account's admin: {}",
            page.status
        );
        assert!(
            !page.body.contains("analytics"),
            "GET {path} leaks the name"
        );
        assert_eq!(
            app.browser().get(path).await.status,
            303,
            "GET {path} signed out"
        );
    }
    let endpoints = [
        format!("/api/v1/projects/{id}"),
        format!("/api/v1/projects/{id}/repository"),
        format!("/api/v1/projects/{id}/ci-jobs"),
        format!("/api/v1/projects/{id}/runs"),
    ];
    for path in &endpoints {
        let status = globex.api(&app, Method::GET, path, None).await;
        assert!(
            status == 404 || status == 403,
            "GET {path} as another account's admin: {status}"
        );
        assert_eq!(
            app.browser()
                .api(Method::GET, path, None, None)
                .await
                .status,
            401,
            "GET {path} signed out"
        );
    }
    let listed = Browser::bearer(
        &app.base,
        globex.token.as_deref().unwrap(),
        Method::GET,
        "/api/v1/projects",
        None,
    )
    .await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains(&id), "another account lists it");
    // Writes are refused too, and change nothing.
    let status = globex
        .api(
            &app,
            Method::PUT,
            &format!("/api/v1/projects/{id}"),
            Some(json!({"name": "taken", "subdirectory": "", "target_branch": ""})),
        )
        .await;
    assert!(
        status == 404 || status == 403,
        "PUT as another account: {status}"
    );
    let still = Browser::bearer(
        &app.base,
        acme.token.as_deref().unwrap(),
        Method::GET,
        &format!("/api/v1/projects/{id}"),
        None,
    )
    .await;
    assert_eq!(still.status, 200);
    assert!(still.body.contains("analytics") && !still.body.contains("taken"));
}
