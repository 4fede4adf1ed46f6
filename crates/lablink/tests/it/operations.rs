//! Health, readiness, metrics on their own listener, and the password given on stdin to
//! `lablink admin create-user`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::TestApp;

crate::on_both!(
    health_readiness_and_metrics,
    create_user_reads_the_password_from_stdin
);

async fn health_readiness_and_metrics(app: TestApp) {
    let b = app.browser();
    let health = b.get("/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let ready = b.get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    assert_eq!(b.get("/no-such-page").await.status, 404);

    // Oversized bodies are refused before any handler reads them. The server then closes that
    // connection without reading the rest, so this is sent by a browser of its own: a pooled
    // connection reused after it would be cut.
    let big = app.browser();
    let csrf = big.get("/login").await.csrf();
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = big
        .post_form(
            "/login",
            &[("csrf_token", &csrf), ("email", &huge), ("password", "p")],
        )
        .await;
    assert_eq!(r.status, 413);

    // Metrics are on the metrics listener only.
    assert_eq!(b.get("/metrics").await.status, 404);
    let metrics = b.get(&format!("{}/metrics", app.metrics_base)).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("lablink_http_requests_total"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("route=\"/healthz\""));
    assert!(
        metrics
            .body
            .contains("lablink_http_request_duration_seconds")
    );

    // Not ready once the schema is behind the binary.
    app.execute("DELETE FROM _sqlx_migrations").await;
    let not_ready = b.get("/readyz").await;
    // Anonymous callers learn nothing more than that (the reason is in the log).
    assert_eq!(
        (not_ready.status, not_ready.body.as_str()),
        (503, "not ready")
    );
    app.stop().await;
}

async fn create_user_reads_the_password_from_stdin(app: TestApp) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .args([
            "admin",
            "create-user",
            "--account",
            "Acme",
            "--email",
            "stdin@acme.test",
            "--role",
            "developer",
            "--password-stdin",
        ])
        .env("LABLINK_DATABASE_URL", &app.database_url)
        .env("LABLINK_SECRET_KEY", &app.secret_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", crate::support::PASSWORD).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("password"),
        "a given password is not echoed: {stdout}"
    );
    app.login("stdin@acme.test").await;
}
