//! What browsers are told and what lablink believes about them: the security headers of every
//! response, the served stylesheet, links from GitLab, planted pre-session cookies, and the
//! client address behind trusted proxies (and its spoof from anywhere else).

use lablink_core::{Plan, Role};

use crate::support::{Backend, PASSWORD, TestApp};

crate::on_both!(planted_pre_session_cookies_are_refused);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_tells_browsers_what_a_page_may_do() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    let b = app.login("dev@acme.test").await;
    for path in ["/", "/login", "/projects", "/no-such-page", "/api/v1/me"] {
        let page = b.get(path).await;
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("style-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("same-origin"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        // Served over http here: no HSTS (it would lock browsers out of a plain-http lablink).
        assert_eq!(page.header("strict-transport-security"), None);
        // No inline styles or scripts that the policy would block.
        for inline in ["<style", " style=\"", "<script>", " onclick="] {
            assert!(!page.body.contains(inline), "{path} has {inline}");
        }
    }
    let css = b.get("/assets/lablink.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains("body {"), "{}", css.body);
    assert!(
        b.get("/")
            .await
            .body
            .contains(r#"<link rel="stylesheet" href="/assets/lablink.css">"#)
    );
}

async fn planted_pre_session_cookies_are_refused(app: TestApp) {
    app.create_user("Acme", Plan::Starter, "dev@acme.test", Role::Developer)
        .await;
    // Someone who can set cookies for this host (a sibling subdomain, a network attacker on
    // http) plants a pre-session of their own and knows the CSRF token it derives.
    let b = app.browser();
    let planted = "p".repeat(43);
    b.plant_cookie("lablink_pre", &planted);
    let token = lablink_service::sessions::csrf_token(&planted);
    let r = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!b.has_cookie("lablink_session"));
    // The form shown instead carries a pre-session lablink issued, and that one works.
    let csrf = b.get("/login").await.csrf();
    assert_ne!(b.cookie("lablink_pre").as_deref(), Some(planted.as_str()));
    let ok = b
        .post_form(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", "dev@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
}

/// Fails a sign-in with `header` set and returns the address the audit log recorded for it.
async fn address_recorded_for(app: &TestApp, header: (&str, &str)) -> String {
    let b = app.browser();
    let csrf = b.get("/login").await.csrf();
    let req = reqwest::Client::new()
        .post(b.url("/login"))
        .header(header.0, header.1)
        .header(
            "cookie",
            format!("lablink_pre={}", b.cookie("lablink_pre").unwrap()),
        )
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "nobody@acme.test"),
            ("password", "wrong"),
        ]);
    assert_eq!(req.send().await.unwrap().status(), 401);
    let seen = app
        .column(
            "SELECT client_ip FROM audit_log WHERE action = 'login.failed' \
             ORDER BY created_at DESC, id DESC",
        )
        .await;
    seen.into_iter()
        .next()
        .expect("the failed sign-in is audited")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_from_trusted_proxies_only() {
    // No proxy is trusted: whatever the client claims, its own address is used.
    let direct = TestApp::spawn(Backend::Sqlite).await;
    let spoofed = address_recorded_for(&direct, ("x-forwarded-for", "198.51.100.7")).await;
    assert_eq!(spoofed, "127.0.0.1");
    let spoofed = address_recorded_for(&direct, ("forwarded", "for=198.51.100.7")).await;
    assert_eq!(spoofed, "127.0.0.1");

    // Behind a trusted proxy (the test's own loopback), the hop it appended is the client; a
    // hop the client wrote itself further left is not.
    let proxied = TestApp::spawn_with(
        Backend::Sqlite,
        &[("trusted_proxies", "127.0.0.1, 10.0.0.0/8")],
    )
    .await;
    let seen = address_recorded_for(
        &proxied,
        ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1"),
    )
    .await;
    assert_eq!(seen, "198.51.100.7");
    let seen = address_recorded_for(&proxied, ("forwarded", "for=\"[2001:db8::7]:443\"")).await;
    assert_eq!(seen, "2001:db8::7");
}
