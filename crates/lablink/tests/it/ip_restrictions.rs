//! IP restrictions end to end: rules of both families with nesting, the identical-range refusal,
//! the lockout guard, the address tester, enforcement on pages, the JSON API with tokens and
//! sign-in, a change reaching another replica, the shell's way back in, the trusted-proxy rule (a
//! forwarded address counts only from a trusted proxy), and webhook deliveries restricted to
//! GitLab's ranges with the doctor's report of the refused ones.

use std::process::Command;

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;

use crate::support::connected::Connected;
use crate::support::{Backend, Browser, PASSWORD, TestApp};

on_both_backends!(
    rules_are_enforced_everywhere_and_cannot_lock_the_admin_out,
    deliveries_from_outside_the_webhook_sources_are_refused_and_reported,
);

const DENIED: &str = "Access denied! Please contact your admin for more details.";
const OFFICE: &str = "198.51.100.7";
const HOME: &str = "203.0.113.9";
const OFFICE_V6: &str = "2001:db8:1::5";

async fn sign_in(app: &TestApp, address: &str, email: &str) -> (Browser, u16, String) {
    let b = Browser::from_address(&app.base, address);
    let form = b.get("/login").await;
    let res = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    (b, res.status, res.body)
}

async fn rules_are_enforced_everywhere_and_cannot_lock_the_admin_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("trusted_proxies", "127.0.0.1")]).await;
    app.create_user(
        "Acme",
        Plan::Enterprise,
        "admin@acme.test",
        Role::AccountAdmin,
    )
    .await;
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let (admin, status, _) = sign_in(&app, OFFICE, "admin@acme.test").await;
    assert_eq!(status, 303);
    let (dev, status, _) = sign_in(&app, HOME, "dev@acme.test").await;
    assert_eq!(status, 303);
    let page = admin.get("/settings/ip-restrictions").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("No rules yet"));
    let csrf = page.csrf();
    let add = |name: &'static str, kind: &'static str, ranges: &'static str| {
        let csrf = csrf.clone();
        let admin = &admin;
        async move {
            admin
                .post_form(
                    "/settings/ip-restrictions/rules",
                    &[
                        ("csrf_token", &csrf),
                        ("name", name),
                        ("description", ""),
                        ("kind", kind),
                        ("ranges", ranges),
                    ],
                )
                .await
        }
    };

    // Bad ranges are each named, and what was typed stays in the form.
    let bad = add(
        "office",
        "allow",
        "198.51.100.0/24\n10.0.0.0/33\nexample.com",
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains("2 of the ranges cannot be used"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("from 0 to 32") && bad.body.contains("<code>example.com</code>"));
    assert!(
        bad.body.contains("10.0.0.0/33\nexample.com</textarea>"),
        "{}",
        bad.body
    );

    // The lockout guard: an allow list without the admin's own address is refused.
    let locked_out = add("elsewhere", "allow", "192.0.2.0/24").await;
    assert_eq!(locked_out.status, 422);
    assert!(
        locked_out
            .body
            .contains("This would lock you out: your address 198.51.100.7"),
        "{}",
        locked_out.body
    );

    // Office (IPv4 and IPv6) allowed; a smaller network inside the office denied.
    let ok = add("office", "allow", "198.51.100.0/24\n2001:db8::/32").await;
    assert_eq!(
        (ok.status, ok.location.as_deref()),
        (303, Some("/settings/ip-restrictions?done=created"))
    );
    assert!(
        admin
            .get("/settings/ip-restrictions?done=created")
            .await
            .body
            .contains("The rule was added.")
    );
    let lab = add("lab", "deny", "198.51.100.128/25\n2001:db8:2::/48").await;
    assert_eq!(lab.status, 303, "{}", lab.body);
    // The identical range on the other list is refused, naming both rules.
    let twice = add("twice", "deny", "198.51.100.0/24").await;
    assert_eq!(twice.status, 422);
    assert!(
        twice
            .body
            .contains("is both allowed (rule “office”) and denied (rule “twice”)"),
        "{}",
        twice.body
    );

    // The address tester says which rule decides.
    let tested = admin
        .get("/settings/ip-restrictions?test=198.51.100.200")
        .await;
    assert!(
        tested
            .body
            .contains("denied by rule “lab” (198.51.100.128/25)"),
        "{}",
        tested.body
    );
    let tested = admin
        .get("/settings/ip-restrictions?test=2001:db8:1::5")
        .await;
    assert!(
        tested
            .body
            .contains("allowed by rule “office” (2001:db8::/32)")
    );
    let tested = admin
        .get("/settings/ip-restrictions?test=not-an-address")
        .await;
    assert!(tested.body.contains("is not an IP address"));
    let api_tested = admin
        .api(
            Method::GET,
            "/api/v1/ip-restrictions/validate?address=203.0.113.9",
            None,
            None,
        )
        .await
        .json();
    assert_eq!(api_tested["allowed"], false);
    assert_eq!(
        api_tested["explanation"],
        "denied: no allow rule matches this address"
    );

    // Rules alone enforce nothing.
    assert_eq!(dev.get("/").await.status, 200);
    let token = admin
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci"})),
            Some(&csrf),
        )
        .await
        .json()["value"]
        .as_str()
        .unwrap()
        .to_owned();

    // Enabled: the developer at home is refused on pages, and the API with a token from home too.
    let enabled = admin
        .post_form(
            "/settings/ip-restrictions/enabled",
            &[("csrf_token", &csrf), ("enabled", "true")],
        )
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.body);
    let refused = dev.get("/").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains(DENIED));
    let from_home = Browser::from_address(&app.base, HOME);
    let api = from_home
        .with_bearer(&token, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(
        (api.status, api.json()["error"].as_str()),
        (403, Some(DENIED))
    );
    let from_office = Browser::from_address(&app.base, OFFICE_V6);
    let api = from_office
        .with_bearer(&token, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(api.status, 200, "{}", api.body);
    // Inside the denied lab network, even the office rule does not help.
    let from_lab = Browser::from_address(&app.base, "198.51.100.200");
    let api = from_lab
        .with_bearer(&token, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(api.status, 403);
    // Signing in is refused from outside with the same words; from the office it works.
    let (_, status, body) = sign_in(&app, HOME, "dev@acme.test").await;
    assert_eq!(status, 403);
    assert!(body.contains(DENIED), "{body}");
    let (_, status, _) = sign_in(&app, "198.51.100.8", "dev@acme.test").await;
    assert_eq!(status, 303);

    // The admin cannot narrow the rule that lets them in so that it no longer does.
    let rules = admin
        .api(Method::GET, "/api/v1/ip-restrictions", None, None)
        .await
        .json();
    assert_eq!(rules["enabled"], true);
    assert_eq!(rules["your_address"], OFFICE);
    let office_id = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "office")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let narrowed = admin
        .api(
            Method::PUT,
            &format!("/api/v1/ip-restrictions/{office_id}"),
            Some(json!({"name": "office", "kind": "allow", "ranges": ["2001:db8::/32"]})),
            Some(&csrf),
        )
        .await;
    assert_eq!(narrowed.status, 422, "{}", narrowed.body);
    assert!(
        narrowed.json()["error"]
            .as_str()
            .unwrap()
            .contains("This would lock you out")
    );

    // A developer cannot change the rules, in the API or on the page.
    let (dev_office, _, _) = sign_in(&app, OFFICE, "dev@acme.test").await;
    assert_eq!(
        dev_office.get("/settings/ip-restrictions").await.status,
        403
    );
    let dev_csrf = dev_office.get("/profile").await.csrf();
    let sneaky = dev_office
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": false})),
            Some(&dev_csrf),
        )
        .await;
    assert_eq!(sneaky.status, 403);

    // A change made in the database by another replica reaches this one within seconds.
    app.execute("UPDATE ip_restriction_sets SET enabled = FALSE, version = version + 1")
        .await;
    let mut reached = false;
    for _ in 0..50 {
        if dev.get("/").await.status == 200 {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(reached, "the change did not reach the running server");

    // Enabled again, then the operator's way back in from a shell.
    let again = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": true})),
            Some(&csrf),
        )
        .await;
    assert_eq!(again.status, 204, "{}", again.body);
    assert_eq!(dev.get("/").await.status, 403);
    let out = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .args(["admin", "ip-restrictions", "disable", "--account", "Acme"])
        .env("LABLINK_DATABASE_URL", &app.database_url)
        .env("LABLINK_SECRET_KEY", &app.secret_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reached = false;
    for _ in 0..50 {
        if dev.get("/").await.status == 200 {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        reached,
        "the shell's disable did not reach the running server"
    );

    // Every change and the refusals are in the audit log.
    let actions = app
        .column("SELECT action FROM audit_log WHERE action LIKE 'ip_restrictions.%' ORDER BY created_at")
        .await;
    for expected in [
        "ip_restrictions.rule_created",
        "ip_restrictions.enabled",
        "ip_restrictions.denied",
        "ip_restrictions.disabled",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_address_from_an_untrusted_peer_does_not_dodge_a_rule() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user(
        "Acme",
        Plan::Enterprise,
        "admin@acme.test",
        Role::AccountAdmin,
    )
    .await;
    let admin = app.login("admin@acme.test").await;
    let csrf = admin.get("/settings/ip-restrictions").await.csrf();
    // Loopback is allowed; a documentation network is allowed too. The peer is 127.0.0.1.
    let created = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions",
            Some(json!({"name": "here", "kind": "allow", "ranges": ["127.0.0.0/8", "::1"]})),
            Some(&csrf),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let deny = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions",
            Some(json!({"name": "bad", "kind": "deny", "ranges": ["127.0.0.2"]})),
            Some(&csrf),
        )
        .await;
    assert_eq!(deny.status, 201, "{}", deny.body);
    let on = admin
        .api(
            Method::POST,
            "/api/v1/ip-restrictions/enabled",
            Some(json!({"enabled": true})),
            Some(&csrf),
        )
        .await;
    assert_eq!(on.status, 204, "{}", on.body);
    // Claiming to be a denied address through a header changes nothing: the peer decides.
    let spoof = Browser::from_address(&app.base, "127.0.0.2");
    let form = spoof.get("/login").await;
    let res = spoof
        .post_form(
            "/login",
            &[
                ("csrf_token", &form.csrf()),
                ("email", "admin@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    app.stop().await;
}

/// GitLab's own test delivery (the simulator sends it from 127.0.0.1, with the webhook's secret).
async fn gitlab_test_delivery(c: &Connected) -> (bool, String) {
    let pat = c.gitlab.personal_token(c.alice.id, "test").await;
    let state = c.gitlab.project_state(c.gitlab_project).await;
    let hook_id = state["hooks"][0]["id"].as_u64().unwrap();
    let res = reqwest::Client::new()
        .post(format!(
            "{}/api/v4/projects/{}/hooks/{hook_id}/test/tag_push_events",
            c.gitlab.base, c.gitlab_project
        ))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .await
        .unwrap();
    (res.status().is_success(), res.text().await.unwrap())
}

async fn deliveries_from_outside_the_webhook_sources_are_refused_and_reported(backend: Backend) {
    // GitLab sends test deliveries only for a project with a commit.
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("README.md"), "warehouse\n").unwrap();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    c.app
        .create_user(
            "acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let admin = c.app.login("admin@acme.test").await;
    let page = admin.get("/settings/ip-restrictions").await;
    // The simulator is a self-managed GitLab: no published ranges are offered.
    assert!(
        page.body.contains("For a self-managed GitLab"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let put = |body: serde_json::Value| {
        let (admin, csrf) = (&admin, csrf.clone());
        async move {
            admin
                .api(
                    Method::PUT,
                    "/api/v1/ip-restrictions/webhook-sources",
                    Some(body),
                    Some(&csrf),
                )
                .await
        }
    };

    // Restricting to nothing is refused; a developer cannot change it at all.
    let res = put(json!({"enabled": true, "ranges": []})).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(
        res.body
            .contains("Add the ranges GitLab sends webhooks from")
    );
    let dev_csrf = c.browser.get("/projects").await.csrf();
    let res = c
        .browser
        .api(
            Method::PUT,
            "/api/v1/ip-restrictions/webhook-sources",
            Some(json!({"enabled": true, "ranges": ["127.0.0.1"]})),
            Some(&dev_csrf),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);

    // Allowed: GitLab's delivery from 127.0.0.1 passes.
    let res = put(json!({"enabled": true, "ranges": ["127.0.0.0/8", "::1"]})).await;
    assert_eq!(res.status, 204, "{}", res.body);
    let (ok, body) = gitlab_test_delivery(&c).await;
    assert!(ok, "{body}");

    // Only GitLab.com's ranges (typed in the form): the same delivery is refused with 403, and
    // GitLab's test button shows the refusal.
    let form = admin
        .post_form(
            "/settings/ip-restrictions/webhook-sources",
            &[
                ("csrf_token", &csrf),
                ("enabled", "on"),
                ("ranges", "34.74.90.64/28\n34.74.226.0/24"),
            ],
        )
        .await;
    assert_eq!(form.status, 303, "{}", form.body);
    let page = admin
        .get("/settings/ip-restrictions?done=sources_saved")
        .await;
    assert!(
        page.body
            .contains("The webhook delivery settings were saved.")
    );
    assert!(
        page.body.contains("34.74.90.64/28\n34.74.226.0/24"),
        "{}",
        page.body
    );
    for _ in 0..2 {
        let (ok, body) = gitlab_test_delivery(&c).await;
        assert!(!ok);
        assert!(body.contains("hook responded with 403"), "{body}");
    }
    // A stranger without the secret still gets 401 and is not counted.
    let stranger = crate::support::webhooks::deliver(
        &c.app.base,
        &c.repository_id,
        "Push Hook",
        b"{}",
        "not-the-secret",
        None,
    )
    .await;
    assert_eq!(stranger, 401);

    // The doctor reports the refused deliveries with the address and count.
    let report = c
        .app
        .services
        .check_connection(&c.user.account_id, &c.project, false)
        .await
        .unwrap();
    let finding = report
        .findings
        .iter()
        .find(|f| f.code.as_str() == "webhook_sources_refused")
        .unwrap_or_else(|| panic!("{:?}", report.findings));
    assert!(
        finding
            .message
            .starts_with("2 webhook deliveries from outside the allowed ranges"),
        "{}",
        finding.message
    );
    assert!(
        finding.message.contains("127.0.0.1 (2×)"),
        "{}",
        finding.message
    );
    let connection = c
        .browser
        .get(&format!("/projects/{}/connection", c.project))
        .await;
    assert!(
        connection
            .body
            .contains("from outside the allowed ranges were refused"),
        "{}",
        connection.body
    );

    // The API shows the setting; the change is in the audit log.
    let got = admin
        .api(Method::GET, "/api/v1/ip-restrictions", None, None)
        .await
        .json();
    assert_eq!(got["webhook_sources"]["enabled"], true);
    assert_eq!(
        got["webhook_sources"]["ranges"],
        json!(["34.74.90.64/28", "34.74.226.0/24"])
    );
    let audit = admin
        .get("/settings/audit?action=ip_restrictions.webhook_sources_changed")
        .await;
    assert!(
        audit
            .body
            .contains("webhook deliveries restricted: 34.74.90.64/28, 34.74.226.0/24"),
        "{}",
        audit.body
    );

    // Turned off, deliveries pass again.
    let res = put(json!({"enabled": false, "ranges": ["34.74.90.64/28"]})).await;
    assert_eq!(res.status, 204, "{}", res.body);
    let (ok, body) = gitlab_test_delivery(&c).await;
    assert!(ok, "{body}");
}
