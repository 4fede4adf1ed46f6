//! IP restrictions end to end: rules of both families with nesting, the identical-range refusal,
//! the lockout guard, the address tester, enforcement on pages, the JSON API with tokens and
//! sign-in, a change reaching another replica, the shell's way back in, and the trusted-proxy
//! rule (a forwarded address counts only from a trusted proxy).

use std::process::Command;

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;

use crate::support::{Backend, Browser, PASSWORD, TestApp};

on_both_backends!(rules_are_enforced_everywhere_and_cannot_lock_the_admin_out);

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
    assert!(bad.body.contains("from 0 to 32") && bad.body.contains("`example.com`"));
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
