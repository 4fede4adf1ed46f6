//! The audit trail walked end to end: every security-relevant action a user can take here ends up
//! in the log with its actor, target, outcome, address and user agent; the page filters and pages
//! through it, and exports the same selection as CSV and JSON; nothing can change an entry.

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::connected::Connected;
use crate::support::{Backend, Browser, PASSWORD};

on_both_backends!(every_security_action_is_in_the_audit_trail);

/// Every entry of the admin's account through the API, following the pages.
async fn all_entries(admin: &Browser, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let cursor = next.map(|c| format!("&before={c}")).unwrap_or_default();
        let page = admin
            .api(
                Method::GET,
                &format!("/api/v1/audit?{query}{cursor}"),
                None,
                None,
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => return entries,
        }
    }
}

async fn every_security_action_is_in_the_audit_trail(backend: Backend) {
    let c = Connected::start(
        backend,
        &[
            ("repository_deploy_keys", "true"),
            ("trusted_proxies", "127.0.0.1"),
        ],
        None,
    )
    .await;
    let app = &c.app;
    let (dev, dev_csrf) = (&c.browser, &c.csrf);
    app.create_user(
        "acme",
        Plan::Enterprise,
        "admin@acme.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@acme.test").await;
    let csrf = admin.get("/profile").await.csrf();

    // A wrong password.
    let stranger = app.browser();
    let form = stranger.get("/login").await;
    let wrong = stranger
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "admin@acme.test"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    // Users and roles.
    let added = admin
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "new@acme.test", "username": "new", "password": PASSWORD, "role": "developer"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let new_id = added.json()["id"].as_str().unwrap().to_owned();
    let changed = admin
        .api(
            Method::PATCH,
            &format!("/api/v1/users/{new_id}"),
            Some(json!({"role": "read_only"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);

    // Personal tokens.
    let token = admin
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci"})),
            Some(&csrf),
        )
        .await
        .json();
    let revoked = admin
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", token["id"].as_str().unwrap()),
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(revoked.status, 204);

    // CI jobs.
    let job = dev
        .api(
            Method::POST,
            &format!("/api/v1/projects/{}/ci-jobs", c.project),
            Some(json!({"name": "ci", "timeout_secs": 600, "warehouse": {"type": "duckdb"}, "mr_note": false})),
            Some(dev_csrf),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);
    let job_id = job.json()["id"].as_i64().unwrap();
    let update = dev
        .api(
            Method::PUT,
            &format!("/api/v1/ci-jobs/{job_id}"),
            Some(json!({"name": "ci", "timeout_secs": 900, "warehouse": {"type": "duckdb"}, "mr_note": false})),
            Some(dev_csrf),
        )
        .await;
    assert_eq!(update.status, 200, "{}", update.body);
    let deleted = dev
        .api(
            Method::DELETE,
            &format!("/api/v1/ci-jobs/{job_id}"),
            None,
            Some(dev_csrf),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);

    // The doctor repairs a deploy token a Maintainer deleted.
    let repo = app
        .db
        .live_repository_of_project(&c.project)
        .await
        .unwrap()
        .unwrap();
    let pat = c.gitlab.personal_token(c.alice.id, "audit").await;
    let gone = reqwest::Client::new()
        .delete(format!(
            "{}/api/v4/projects/{}/deploy_tokens/{}",
            c.gitlab.base,
            c.gitlab_project,
            repo.deploy_token_id.unwrap()
        ))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success());
    let panel = format!("/projects/{}/connection", c.project);
    let panel_csrf = dev.get(&panel).await.csrf();
    let fixed = dev
        .post_form(
            &format!("{panel}/fix"),
            &[
                ("csrf_token", &panel_csrf),
                ("code", "deploy_token_missing"),
            ],
        )
        .await;
    assert_eq!(fixed.status, 303, "{}", fixed.body);

    // IP restrictions: a rule, enforcement, a refusal from elsewhere, and back off.
    let rule = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions",
            Some(json!({"name": "here", "kind": "allow", "ranges": ["127.0.0.0/8", "::1"]})),
            Some(&csrf),
        )
        .await;
    assert_eq!(rule.status, 201, "{}", rule.body);
    let on = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": true})),
            Some(&csrf),
        )
        .await;
    assert_eq!(on.status, 204, "{}", on.body);
    let elsewhere = Browser::from_address(&app.base, "203.0.113.5");
    let form = elsewhere.get("/login").await;
    let denied = elsewhere
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(denied.status, 403);
    let off = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": false})),
            Some(&csrf),
        )
        .await;
    assert_eq!(off.status, 204);

    // The repository is disconnected, the link undone, and the developer signs out.
    let disconnected = dev
        .api(
            Method::DELETE,
            &format!("/api/v1/projects/{}/repository", c.project),
            None,
            Some(dev_csrf),
        )
        .await;
    assert!(disconnected.status < 300, "{}", disconnected.body);
    let unlinked = dev
        .api(
            Method::DELETE,
            "/api/v1/linked-accounts/gitlab",
            None,
            Some(dev_csrf),
        )
        .await;
    assert!(unlinked.status < 300, "{}", unlinked.body);
    let out = dev
        .post_form("/logout", &[("csrf_token", dev_csrf.as_str())])
        .await;
    assert_eq!(out.status, 303, "{}", out.body);

    let entries = all_entries(&admin, "").await;
    let find = |action: &str| -> Value {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| {
                let seen: Vec<&str> = entries
                    .iter()
                    .map(|e| e["action"].as_str().unwrap())
                    .collect();
                panic!("{action} is not in the audit log: {seen:?}")
            })
            .clone()
    };
    for (action, actor, target) in [
        ("login.succeeded", Some("admin@acme.test"), None),
        ("login.failed", None, Some("user admin@acme.test")),
        (
            "user.created",
            Some("admin@acme.test"),
            Some("user new@acme.test"),
        ),
        (
            "user.role_changed",
            Some("admin@acme.test"),
            Some("user new@acme.test"),
        ),
        (
            "api_token.created",
            Some("admin@acme.test"),
            Some("token ci"),
        ),
        ("api_token.revoked", Some("admin@acme.test"), None),
        ("gitlab.linked", Some("dev@acme.test"), Some("GitLab link")),
        (
            "repository.connected",
            Some("dev@acme.test"),
            Some("repository analytics/warehouse"),
        ),
        ("ci_job.created", Some("dev@acme.test"), Some("CI job ci")),
        ("ci_job.changed", Some("dev@acme.test"), Some("CI job ci")),
        ("ci_job.deleted", Some("dev@acme.test"), Some("CI job ci")),
        (
            "doctor.repaired",
            Some("dev@acme.test"),
            Some("repository analytics/warehouse"),
        ),
        (
            "ip_restrictions.rule_created",
            Some("admin@acme.test"),
            Some("rule here"),
        ),
        ("ip_restrictions.enabled", Some("admin@acme.test"), None),
        ("ip_restrictions.denied", None, Some("address 203.0.113.5")),
        ("ip_restrictions.disabled", Some("admin@acme.test"), None),
        (
            "repository.disconnected",
            Some("dev@acme.test"),
            Some("repository analytics/warehouse"),
        ),
        (
            "gitlab.unlinked",
            Some("dev@acme.test"),
            Some("GitLab link"),
        ),
        ("logout", Some("dev@acme.test"), None),
    ] {
        let entry = find(action);
        if let Some(actor) = actor {
            assert_eq!(entry["actor_email"], actor, "{entry}");
        }
        if let Some(target) = target {
            assert!(
                entry["target"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(target),
                "{entry}"
            );
        }
        assert!(entry["client_ip"].is_string(), "{entry}");
    }
    assert_eq!(find("login.failed")["outcome"], "failure");
    assert_eq!(find("ip_restrictions.denied")["outcome"], "denied");
    assert_eq!(find("ip_restrictions.denied")["client_ip"], "203.0.113.5");
    assert_eq!(find("ci_job.created")["user_agent"], "lablink-test-browser");

    // Filters: by action prefix, by actor; the page shows the same and exports it.
    let jobs = all_entries(&admin, "action=ci_job.").await;
    assert_eq!(jobs.len(), 3);
    let by_admin = all_entries(&admin, "actor=admin%40acme").await;
    assert!(
        by_admin
            .iter()
            .all(|e| e["actor_email"] == "admin@acme.test")
    );
    let page = admin.get("/settings/audit?action=ci_job.").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body.matches("<code>ci_job.").count(), 3);
    let csv = admin.get("/settings/audit/export.csv?action=ci_job.").await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "time,actor,action,target,outcome,client_ip,user_agent,detail"
    );
    assert_eq!(lines.len(), 1 + 3);
    let json = admin
        .get("/settings/audit/export.json?action=ci_job.")
        .await;
    assert_eq!(json.json().as_array().unwrap().len(), 3);
    let bad = admin.get("/settings/audit?from=yesterday").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("write from as YYYY-MM-DD"));

    // Paging: 120 more entries make three pages of 50 on the page, two of 100 in the API.
    for i in 0..120 {
        app.execute(&format!(
            "INSERT INTO audit_log (id, account_id, action, detail, outcome, created_at) \
             VALUES ('paging-{i:03}', '{}', 'paging.test', '', 'success', {})",
            c.user.account_id,
            1_000_000 + i
        ))
        .await;
    }
    let first = admin.get("/settings/audit?action=paging.").await;
    let older = first.body.split("id=\"older\" href=\"").nth(1).unwrap();
    let older = older[..older.find('"').unwrap()].replace("&amp;", "&");
    let second = admin.get(&older).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body.matches("<code>paging.test</code>").count(), 50);
    assert_eq!(all_entries(&admin, "action=paging.").await.len(), 120);

    // Only admins read it, and nothing changes an entry.
    assert_eq!(dev.get("/settings/audit").await.status, 303);
    let (developer, _) = (app.login("new@acme.test").await, ());
    assert_eq!(developer.get("/settings/audit").await.status, 403);
    let change = admin
        .api(Method::DELETE, "/api/v1/audit", None, Some(&csrf))
        .await;
    assert_eq!(change.status, 405);
    c.app.stop().await;
}
